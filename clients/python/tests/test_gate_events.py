"""Events report changes of a scope's *effective* mode, what `may_trade` answers (the
Rust library's `ModeChange`): while the gate fails closed every strategy is paused, so
a scope's own change then is not reported; when the gate opens it reports `*` running
and then every scope held in another mode, global first, then the strategies by id."""

from noctria_gate import ALL_SCOPES, GUARD_SILENT, NO_STATE, Gate, Mode, Verdict

from wire import WALL_MS, command, heartbeat, pause_state


def seen(out):
    """The events as (scope, mode, command_id, reason)."""
    return [(e["scope"], e["mode"], e["command_id"], e.get("reason")) for e in out.events]


def acked(out):
    return [a["command_id"] for a in out.acks]


OPENED = (ALL_SCOPES, "running", None, None)


def closed(reason):
    return (ALL_SCOPES, "paused", None, reason)


def open_gate(max_silence_ms=1_000):
    gate = Gate("gw-1", max_silence_ms=max_silence_ms)
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    return gate


def test_a_decision_taken_while_the_guard_is_silent_is_reported_when_the_gate_opens():
    # Given an open gate that finds the guard silent
    gate = open_gate()
    assert seen(gate.tick(1_001, WALL_MS)) == [closed(GUARD_SILENT)]
    # When global is paused while the gate is closed
    out = gate.on_command(command("c1", "pause"), 1_002, WALL_MS)
    # Then no strategy's effective mode moved: nothing is reported, but the command is
    # in force in the gate, so it is acknowledged
    assert (seen(out), acked(out)) == ([], ["c1"])
    # When the guard is heard again: the opening, then the scope it holds
    out = gate.on_heartbeat(heartbeat(), 1_003, WALL_MS)
    assert seen(out) == [OPENED, ("global", "paused", "c1", None)]
    assert gate.may_trade("alpha", 1_003) == Verdict(Mode.PAUSED, ("operator",))


def test_the_opening_names_every_scope_held_global_first_then_strategies_by_id():
    # Given zeta and beta paused and alpha reduce-only while the gate was open
    gate = open_gate()
    gate.on_command(command("z1", "pause", "zeta"), 1, WALL_MS)
    gate.on_command(command("a1", "reduce_only", "alpha"), 1, WALL_MS)
    gate.on_command(command("b1", "pause", "beta"), 1, WALL_MS)
    # And, while the guard was silent, beta resumed and global paused: nothing reported
    assert seen(gate.tick(1_002, WALL_MS)) == [closed(GUARD_SILENT)]
    assert seen(gate.on_command(command("b2", "resume", "beta"), 1_003, WALL_MS)) == []
    assert seen(gate.on_pause_state(pause_state("g1", "paused", reasons=["maintenance"]), 1_004, WALL_MS)) == []
    # When the gate opens: every scope held in another mode, changed while closed or
    # not; beta, running again, is not named
    assert seen(gate.on_heartbeat(heartbeat(), 1_005, WALL_MS)) == [
        OPENED,
        ("global", "paused", "g1", None),
        ("strategy:alpha", "reduce_only", "a1", None),
        ("strategy:zeta", "paused", "z1", None),
    ]


def test_a_silence_noticed_at_a_record_is_reported_first_and_hides_the_records_change():
    # Given an open gate whose guard fell silent, not noticed yet
    gate = open_gate()
    # When a record pauses alpha after max_silence
    out = gate.on_pause_state(pause_state("c1", "paused", "alpha", ["operator"]), 1_001, WALL_MS)
    # Then the closing is reported, alpha's own change is not (it was paused anyway)
    assert (seen(out), acked(out)) == ([closed(GUARD_SILENT)], ["c1"])


def test_the_end_of_the_catch_up_without_a_heartbeat_reports_the_scopes_at_the_opening():
    # Given a pause state with global paused and alpha resumed
    gate = Gate("gw-1")
    assert seen(gate.on_pause_state(pause_state("g1", "paused", reasons=["maintenance"]), 0, WALL_MS)) == [
        closed(NO_STATE)]
    gate.on_pause_state(pause_state("a1", "running", "alpha"), 0, WALL_MS)
    # When the catch-up ends before any heartbeat: still closed, now for silence
    assert seen(gate.caught_up(1, WALL_MS)) == [closed(GUARD_SILENT)]
    # When the guard is heard: the opening names global, the one scope held
    assert seen(gate.on_heartbeat(heartbeat(), 2, WALL_MS)) == [OPENED, ("global", "paused", "g1", None)]


def test_the_end_of_the_catch_up_reports_the_scopes_in_force_not_the_commands_that_came_meanwhile():
    # Given a catch-up that reads global paused and beta reduce-only, while commands
    # resume global and pause alpha, and the guard is heard
    gate = Gate("gw-1")
    gate.on_pause_state(pause_state("g1", "paused", reasons=["maintenance"]), 0, WALL_MS)
    gate.on_pause_state(pause_state("b1", "reduce_only", "beta", ["risk_event"]), 0, WALL_MS)
    gate.on_command(command("g2", "resume"), 0, WALL_MS)
    gate.on_command(command("a1", "pause", "alpha"), 0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    # When the catch-up ends
    out = gate.caught_up(1, WALL_MS)
    # Then the gate opens and names the scopes held then, once each
    assert seen(out) == [
        OPENED,
        ("strategy:alpha", "paused", "a1", None),
        ("strategy:beta", "reduce_only", "b1", None),
    ]
    # And every decision in force at the end of the read, and every command, is acknowledged
    assert sorted(acked(out)) == ["a1", "b1", "g1", "g2"]
