"""The acknowledgements a gateway owes (CONTRACT §1.7) and the events it logs."""

import pytest

from noctria_gate import ALL_SCOPES, GUARD_SILENT, NO_STATE, Gate, InvalidRecord

from wire import WALL_MS, WALL_TEXT, command, heartbeat, pause_state


def open_gate():
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    return gate


def test_a_new_command_owes_one_acknowledgement_stamped_in_utc():
    gate = open_gate()
    out = gate.on_command(command("c1", "pause"), 1, WALL_MS)
    assert out.acks == [{"command_id": "c1", "gateway": "gw-1", "ts": WALL_TEXT}]
    assert gate.on_command(command("c1", "pause"), 2, WALL_MS).acks == []
    assert gate.counters()["acks_owed"] == 1


def test_a_resume_is_acknowledged_too():
    gate = open_gate()
    gate.on_command(command("c1", "pause"), 1, WALL_MS)
    out = gate.on_command(command("c2", "resume"), 2, WALL_MS + 5)
    assert out.acks == [{"command_id": "c2", "gateway": "gw-1", "ts": "2025-08-11T00:09:30.125Z"}]


def test_a_new_pause_state_record_owes_the_acknowledgement_of_its_command():
    gate = open_gate()
    out = gate.on_pause_state(pause_state("c1", "paused", "alpha", ["operator"]), 1, WALL_MS)
    assert [a["command_id"] for a in out.acks] == ["c1"]


def test_no_acknowledgement_before_the_gate_has_state_then_one_per_decision_in_force():
    # Given a catch-up that reads alpha's two records and global's one, and a live command
    gate = Gate("gw-1")
    outs = [
        gate.on_pause_state(pause_state("a1", "paused", "alpha", ["operator"]), 0, WALL_MS),
        gate.on_pause_state(pause_state("a2", "running", "alpha"), 0, WALL_MS),
        gate.on_pause_state(pause_state("g1", "reduce_only", reasons=["risk_event"]), 0, WALL_MS),
        gate.on_command(command("b1", "pause", "beta"), 0, WALL_MS),
    ]
    # Then nothing is owed while the gate has no state
    assert [a for o in outs for a in o.acks] == []
    # When the catch-up ends
    out = gate.caught_up(1, WALL_MS)
    # Then the decisions in force are acknowledged, the overtaken a1 is not
    assert sorted(a["command_id"] for a in out.acks) == ["a2", "b1", "g1"]


def test_a_live_command_overtaken_during_the_catch_up_is_still_acknowledged():
    gate = Gate("gw-1")
    gate.on_command(command("c1", "pause"), 0, WALL_MS)
    gate.on_command(command("c2", "resume"), 0, WALL_MS)
    out = gate.caught_up(1, WALL_MS)
    assert [a["command_id"] for a in out.acks] == ["c1", "c2"]


def test_a_command_that_comes_after_a_newer_decision_of_its_scope_is_acknowledged_once():
    # Given a catch-up that read alpha paused (c1) then resumed (c2): c1 was overtaken
    # there and never in force, so the end of the catch-up acknowledges c2 alone
    gate = Gate("gw-1")
    gate.on_pause_state(pause_state("c1", "paused", "alpha", ["operator"]), 0, WALL_MS)
    gate.on_pause_state(pause_state("c2", "running", "alpha"), 0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    assert [a["command_id"] for a in gate.caught_up(1, WALL_MS).acks] == ["c2"]
    # When c1's command comes after it: the guard awaits its ack, and a newer decision
    # is in force, so it is acknowledged, and moves nothing
    out = gate.on_command(command("c1", "pause", "alpha"), 2, WALL_MS)
    assert ([a["command_id"] for a in out.acks], out.events) == (["c1"], [])
    assert gate.may_trade("alpha", 2).mode.value == "running"
    # And its repeat, and c2's command, owe nothing
    assert gate.on_command(command("c1", "pause", "alpha"), 3, WALL_MS).acks == []
    assert gate.on_command(command("c2", "resume", "alpha"), 4, WALL_MS).acks == []
    assert gate.counters()["acks_owed"] == 2


def test_a_scope_changing_mode_is_reported_and_an_unchanged_mode_is_not():
    gate = open_gate()
    out = gate.on_command(command("c1", "pause", "alpha"), 1, WALL_MS)
    assert out.events == [
        {"gateway": "gw-1", "scope": "strategy:alpha", "mode": "paused", "command_id": "c1", "at": WALL_TEXT}
    ]
    # A new decision that keeps the mode (another pause reason) is acknowledged, not reported
    out = gate.on_pause_state(pause_state("c2", "paused", "alpha", ["operator", "risk_event"]), 2, WALL_MS)
    assert ([a["command_id"] for a in out.acks], out.events) == (["c2"], [])
    out = gate.on_command(command("c3", "resume", "alpha"), 3, WALL_MS)
    assert [(e["scope"], e["mode"]) for e in out.events] == [("strategy:alpha", "running")]


def test_the_opening_after_the_catch_up_reports_every_scope_that_is_not_running():
    gate = Gate("gw-1")
    gate.on_pause_state(pause_state("g1", "paused", reasons=["maintenance"]), 0, WALL_MS)
    gate.on_pause_state(pause_state("a1", "running", "alpha"), 0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    out = gate.caught_up(1, WALL_MS)
    scoped = [(e["scope"], e["mode"], e["command_id"]) for e in out.events if e["scope"] != ALL_SCOPES]
    assert scoped == [("global", "paused", "g1")]


def test_failing_closed_and_opening_again_are_reported_under_the_star_scope():
    gate = Gate("gw-1", max_silence_ms=1_000)

    def star(out):
        return [(e["mode"], e["reason"]) for e in out.events if e["scope"] == ALL_SCOPES]

    # Given a new gate: its first input reports that it is closed for want of state
    assert star(gate.tick(0, WALL_MS)) == [("paused", NO_STATE)]
    assert star(gate.tick(1, WALL_MS)) == []
    # When the catch-up ends before any heartbeat: closed, now for silence
    assert star(gate.caught_up(2, WALL_MS)) == [("paused", GUARD_SILENT)]
    # When the active guard is heard: open
    assert star(gate.on_heartbeat(heartbeat(), 3, WALL_MS)) == [("running", None)]
    # When it is silent one ms longer than max_silence: closed, found by a tick
    assert star(gate.tick(1_003, WALL_MS)) == []
    assert star(gate.tick(1_004, WALL_MS)) == [("paused", GUARD_SILENT)]
    # When it is heard again: open again
    assert star(gate.on_heartbeat(heartbeat(), 1_005, WALL_MS)) == [("running", None)]
    counters = gate.counters()
    assert (counters["fail_closed_no_state"], counters["fail_closed_guard_silent"]) == (1, 2)


def test_a_star_event_names_the_gateway_and_the_time():
    gate = Gate("gw-osaka")
    assert gate.tick(0, WALL_MS).events == [
        {"gateway": "gw-osaka", "scope": "*", "mode": "paused", "command_id": None, "at": WALL_TEXT,
         "reason": "no_state"}
    ]


@pytest.mark.parametrize(
    "feed, record",
    [
        ("on_command", {"command_id": "c1", "action": "halt", "scope": {"kind": "global"}}),
        ("on_command", {"command_id": "", "action": "pause", "scope": {"kind": "global"}}),
        ("on_command", {"command_id": "c1", "action": "pause", "scope": {"kind": "strategy"}}),
        ("on_pause_state", {"scope": {"kind": "global"}, "mode": "stopped", "command_id": "c1"}),
        ("on_pause_state", {"scope": {"kind": "desk"}, "mode": "paused", "command_id": "c1"}),
        ("on_heartbeat", {"instance": "g", "active": "yes"}),
        ("on_command", b"not json"),
        ("on_command", b"[1, 2]"),
    ],
)
def test_an_invalid_record_changes_nothing_and_is_counted(feed, record):
    gate = open_gate()
    with pytest.raises(InvalidRecord):
        getattr(gate, feed)(record, 1, WALL_MS)
    assert gate.counters()["invalid_records"] == 1
    assert gate.state(1)["scopes"] == {}
    assert gate.may_trade("alpha", 1).mode.value == "running"


def test_unknown_fields_are_ignored_and_json_values_are_accepted():
    gate = open_gate()
    record = dict(command("c1", "pause", "alpha"), extra={"anything": 1}, future_field=True)
    import json
    gate.on_command(json.dumps(record).encode(), 1, WALL_MS)
    assert gate.may_trade("alpha", 1).paused


def test_a_command_without_a_rule_still_pauses():
    gate = open_gate()
    record = command("c1", "pause")
    del record["rule"]
    gate.on_command(record, 1, WALL_MS)
    assert gate.may_trade("alpha", 1).reasons == ("unknown",)


def test_the_state_shows_scopes_silence_and_counters():
    gate = open_gate()
    gate.on_command(command("c1", "reduce_only", "alpha", rule="risk_event"), 5, WALL_MS)
    state = gate.state(7)
    assert state["gateway"] == "gw-1"
    assert state["has_state"] is True
    assert state["closed_reason"] is None
    assert state["silent_for_ms"] == 7
    assert state["scopes"] == {"strategy:alpha": {"mode": "reduce_only", "reasons": ["risk_event"], "command_id": "c1"}}
    assert state["counters"]["commands_applied"] == 1
