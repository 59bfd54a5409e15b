"""Which scope decides: the global one or the strategy's own; pause outranks
reduce-only (CONTRACT §6)."""

from noctria_gate import RUNNING, Gate, Mode, Scope, Verdict

from wire import WALL_MS, command, heartbeat, pause_state


def open_gate(name="gw-1"):
    gate = Gate(name)
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    return gate


def test_a_global_pause_pauses_every_strategy():
    gate = open_gate()
    gate.on_command(command("c1", "pause", rule="daily_loss"), 1, WALL_MS)
    assert gate.may_trade("alpha", 1) == Verdict(Mode.PAUSED, ("daily_loss",))
    assert gate.may_trade("beta", 1) == Verdict(Mode.PAUSED, ("daily_loss",))


def test_a_strategy_pause_pauses_only_that_strategy():
    gate = open_gate()
    gate.on_command(command("c1", "pause", "alpha", rule="slippage_window"), 1, WALL_MS)
    assert gate.may_trade("alpha", 1) == Verdict(Mode.PAUSED, ("slippage_window",))
    assert gate.may_trade("beta", 1) == RUNNING


def test_reduce_only_on_either_scope_makes_the_strategy_reduce_only():
    gate = open_gate()
    gate.on_command(command("c1", "reduce_only", "alpha", rule="risk_event"), 1, WALL_MS)
    assert gate.may_trade("alpha", 1) == Verdict(Mode.REDUCE_ONLY, ("risk_event",))
    assert gate.may_trade("beta", 1) == RUNNING
    gate.on_command(command("c2", "reduce_only", rule="operator"), 1, WALL_MS)
    assert gate.may_trade("beta", 1) == Verdict(Mode.REDUCE_ONLY, ("operator",))
    assert gate.may_trade("alpha", 1) == Verdict(Mode.REDUCE_ONLY, ("operator", "risk_event"))


def test_a_pause_outranks_reduce_only_whichever_scope_holds_it():
    gate = open_gate()
    gate.on_command(command("c1", "reduce_only", rule="risk_event"), 1, WALL_MS)
    gate.on_command(command("c2", "pause", "alpha", rule="losing_streak"), 1, WALL_MS)
    assert gate.may_trade("alpha", 1) == Verdict(Mode.PAUSED, ("losing_streak",))
    assert gate.may_trade("beta", 1) == Verdict(Mode.REDUCE_ONLY, ("risk_event",))


def test_a_resume_returns_the_scope_to_running():
    gate = open_gate()
    gate.on_command(command("c1", "pause"), 1, WALL_MS)
    gate.on_command(command("c2", "resume"), 2, WALL_MS)
    assert gate.may_trade("alpha", 2) == RUNNING
    assert gate.scope_mode("global").command_id == "c2"
    assert gate.scope_mode(Scope()).mode is Mode.RUNNING


def test_a_verdict_tells_which_orders_may_go_out():
    gate = open_gate()
    gate.on_command(command("c1", "reduce_only", "alpha"), 1, WALL_MS)
    gate.on_command(command("c2", "pause", "beta"), 1, WALL_MS)
    alpha, beta, gamma = (gate.may_trade(s, 1) for s in ("alpha", "beta", "gamma"))
    assert (alpha.allows(reduces_position=True), alpha.allows(reduces_position=False)) == (True, False)
    assert (beta.allows(reduces_position=True), beta.allows(reduces_position=False)) == (False, False)
    assert (gamma.allows(reduces_position=True), gamma.allows(reduces_position=False)) == (True, True)


def test_a_gate_started_late_learns_every_scope_from_the_pause_state():
    # Given a gateway started after the guard paused global and set beta reduce-only
    gate = Gate("gw-2")
    gate.on_pause_state(pause_state("c9", "paused", reasons=["maintenance", "losing_streak"]), 0, WALL_MS)
    gate.on_pause_state(pause_state("c7", "reduce_only", "beta", reasons=["risk_event"]), 0, WALL_MS)
    # When it has read the topic to its end and hears the guard
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 10, WALL_MS)
    # Then every strategy is paused with the record's reasons
    assert gate.may_trade("zeta", 11) == Verdict(Mode.PAUSED, ("losing_streak", "maintenance"))
    # And once global resumes, beta stays reduce-only
    gate.on_pause_state(pause_state("c10", "running"), 12, WALL_MS)
    assert gate.may_trade("zeta", 12) == RUNNING
    assert gate.may_trade("beta", 12) == Verdict(Mode.REDUCE_ONLY, ("risk_event",))


def test_a_scope_that_returned_to_running_keeps_its_record():
    gate = open_gate()
    gate.on_pause_state(pause_state("c1", "running", "alpha"), 1, WALL_MS)
    assert gate.may_trade("alpha", 1) == RUNNING
    assert gate.state(1)["scopes"] == {"strategy:alpha": {"mode": "running", "reasons": [], "command_id": "c1"}}


def test_topic_names_take_an_optional_prefix():
    from noctria_gate import Topics

    assert Topics() == Topics.with_prefix("")
    assert Topics().pause_state == "guard_pause_state"
    named = Topics.with_prefix("stg.")
    assert (named.pause_state, named.command, named.heartbeat, named.ack) == (
        "stg.guard_pause_state", "stg.guard_command", "stg.guard_heartbeat", "stg.guard_ack")
