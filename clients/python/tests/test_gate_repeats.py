"""Repeats after a guard restart, and one decision seen on two topics (CONTRACT §1.6)."""

from noctria_gate import RUNNING, Gate, Mode, Verdict

from wire import WALL_MS, command, heartbeat, pause_state


def open_gate(**kwargs):
    gate = Gate("gw-1", **kwargs)
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    return gate


def test_a_repeated_command_does_not_move_a_scope_back():
    # Given alpha paused by c1 and resumed by c2
    gate = open_gate()
    gate.on_command(command("c1", "pause", "alpha", rule="slippage_window"), 1, WALL_MS)
    gate.on_command(command("c2", "resume", "alpha"), 2, WALL_MS)
    # When a restarted guard re-publishes c1, then everything after it
    first = gate.on_command(command("c1", "pause", "alpha", rule="slippage_window"), 3, WALL_MS)
    # Then alpha is never paused again, and the repeat owes nothing
    assert gate.may_trade("alpha", 3) == RUNNING
    assert (first.acks, first.events) == ([], [])
    gate.on_command(command("c2", "resume", "alpha"), 4, WALL_MS)
    assert gate.may_trade("alpha", 4) == RUNNING
    assert gate.counters()["commands_known"] == 2


def test_repeated_state_records_do_not_move_a_scope_back():
    gate = open_gate()
    gate.on_pause_state(pause_state("c1", "paused", reasons=["operator"]), 1, WALL_MS)
    gate.on_pause_state(pause_state("c2", "running"), 2, WALL_MS)
    out = gate.on_pause_state(pause_state("c1", "paused", reasons=["operator"]), 3, WALL_MS)
    assert gate.may_trade("alpha", 3) == RUNNING
    assert (out.acks, out.events) == ([], [])
    gate.on_pause_state(pause_state("c2", "running"), 4, WALL_MS)
    assert gate.may_trade("alpha", 4) == RUNNING
    assert gate.counters()["pause_states_known"] == 1


def test_a_repeat_read_on_the_other_topic_does_not_move_a_scope_back():
    # Given c1 (pause) learnt from its command and c2 (resume) from its record
    gate = open_gate()
    gate.on_command(command("c1", "pause"), 1, WALL_MS)
    gate.on_pause_state(pause_state("c2", "running"), 2, WALL_MS)
    # When c1's record comes late, and c2's command after it
    gate.on_pause_state(pause_state("c1", "paused", reasons=["operator"]), 3, WALL_MS)
    gate.on_command(command("c2", "resume"), 4, WALL_MS)
    # Then the scope stays on its newest decision
    assert gate.may_trade("alpha", 4) == RUNNING
    assert gate.scope_mode("global").command_id == "c2"


def test_command_then_record_of_one_decision_ends_with_the_records_reasons():
    gate = open_gate()
    first = gate.on_command(command("c1", "pause", rule="losing_streak"), 1, WALL_MS)
    assert gate.may_trade("alpha", 1) == Verdict(Mode.PAUSED, ("losing_streak",))
    second = gate.on_pause_state(
        pause_state("c1", "paused", reasons=["losing_streak", "maintenance"]), 2, WALL_MS)
    assert gate.may_trade("alpha", 2) == Verdict(Mode.PAUSED, ("losing_streak", "maintenance"))
    # One decision: one acknowledgement, one event
    assert [a["command_id"] for a in first.acks + second.acks] == ["c1"]
    assert [e["scope"] for e in first.events + second.events] == ["global"]


def test_record_then_command_of_one_decision_ends_with_the_records_reasons():
    gate = open_gate()
    first = gate.on_pause_state(
        pause_state("c1", "paused", reasons=["losing_streak", "maintenance"]), 1, WALL_MS)
    second = gate.on_command(command("c1", "pause", rule="losing_streak"), 2, WALL_MS)
    assert gate.may_trade("alpha", 2) == Verdict(Mode.PAUSED, ("losing_streak", "maintenance"))
    assert [a["command_id"] for a in first.acks + second.acks] == ["c1"]
    assert [e["scope"] for e in first.events + second.events] == ["global"]


def test_an_old_record_read_during_the_catch_up_does_not_override_a_newer_command():
    # Given a gateway reading the pause state from the beginning (c1: paused) while
    # c2 (resume) arrives on the command topic before c2's record has been read
    gate = Gate("gw-1")
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    gate.on_command(command("c2", "resume"), 1, WALL_MS)
    gate.on_pause_state(pause_state("c1", "paused", reasons=["operator"]), 2, WALL_MS)
    # When the catch-up ends
    gate.caught_up(3, WALL_MS)
    # Then the newer command is in force
    assert gate.may_trade("alpha", 3) == RUNNING
    # And c2's record, read later, changes nothing
    gate.on_pause_state(pause_state("c2", "running"), 4, WALL_MS)
    assert gate.may_trade("alpha", 4) == RUNNING


def test_a_command_already_in_the_pause_state_changes_nothing_after_the_catch_up():
    gate = Gate("gw-1")
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    gate.on_command(command("c1", "pause", rule="operator"), 1, WALL_MS)
    gate.on_pause_state(pause_state("c1", "paused", reasons=["daily_loss", "operator"]), 2, WALL_MS)
    gate.caught_up(3, WALL_MS)
    assert gate.may_trade("alpha", 3) == Verdict(Mode.PAUSED, ("daily_loss", "operator"))


def test_the_memory_of_ids_is_bounded_and_an_id_forgotten_counts_as_new():
    # Given a gate that remembers two ids
    gate = open_gate(remembered_ids=2)
    gate.on_command(command("c1", "pause"), 1, WALL_MS)
    gate.on_command(command("c2", "resume"), 2, WALL_MS)
    gate.on_command(command("c3", "reduce_only", "alpha"), 3, WALL_MS)
    assert gate.counters()["remembered_ids"] == 2
    assert gate.counters()["forgotten_ids"] == 1
    # When c2 is repeated, it is still known; c1, forgotten, is taken for new
    gate.on_command(command("c2", "resume"), 4, WALL_MS)
    assert gate.may_trade("beta", 4) == RUNNING
    gate.on_command(command("c1", "pause"), 5, WALL_MS)
    assert gate.may_trade("beta", 5) == Verdict(Mode.PAUSED, ("operator",))
