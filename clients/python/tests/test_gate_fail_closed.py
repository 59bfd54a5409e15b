"""The gate fails closed: no state yet, or an active guard silent too long (CONTRACT §6)."""

from noctria_gate import GUARD_SILENT, NO_STATE, RUNNING, Gate, Mode, Verdict

from wire import WALL_MS, heartbeat


def closed(reason):
    return Verdict(Mode.PAUSED, (reason,))


def test_a_new_gate_pauses_every_strategy_with_no_state():
    # Given a gate that has read nothing
    gate = Gate("gw-1")
    # Then every strategy is paused for want of state, even with a heartbeat
    assert gate.may_trade("alpha", 0) == closed(NO_STATE)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    assert gate.may_trade("alpha", 0) == closed(NO_STATE)
    assert gate.may_trade("beta", 0) == closed(NO_STATE)


def test_caught_up_without_any_heartbeat_the_guard_is_silent():
    # Given a gate that has read the pause state to its end
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    # When no heartbeat has come yet
    # Then it stays closed, now because the guard is silent
    assert gate.may_trade("alpha", 0) == closed(GUARD_SILENT)


def test_a_heartbeat_of_an_active_guard_opens_the_gate():
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(active=True), 10, WALL_MS)
    assert gate.may_trade("alpha", 10) == RUNNING


def test_a_standby_heartbeat_never_keeps_the_gate_open():
    # Given a caught-up gate that has only heard a standby
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(active=False), 0, WALL_MS)
    # Then it is still closed
    assert gate.may_trade("alpha", 0) == closed(GUARD_SILENT)
    # And when the active guard was heard and then only the standby keeps talking
    gate.on_heartbeat(heartbeat(active=True), 0, WALL_MS)
    gate.on_heartbeat(heartbeat(active=False, instance="guard-2"), 3_000, WALL_MS)
    # Then the standby's heartbeat does not move the silence on
    assert gate.may_trade("alpha", 3_001) == closed(GUARD_SILENT)
    assert gate.counters()["standby_heartbeats"] == 2


def test_silence_of_exactly_max_silence_is_open_and_one_ms_more_is_closed():
    # Given a gate that heard the active guard at t=1000 (default max_silence 3 s)
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 1_000, WALL_MS)
    # Then at exactly 3 s of silence it is open, one ms later closed
    assert gate.may_trade("alpha", 4_000) == RUNNING
    assert gate.may_trade("alpha", 4_001) == closed(GUARD_SILENT)


def test_max_silence_is_configurable():
    gate = Gate("gw-1", max_silence_ms=500)
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    assert gate.may_trade("alpha", 500) == RUNNING
    assert gate.may_trade("alpha", 501) == closed(GUARD_SILENT)


def test_the_next_active_heartbeat_reopens_a_silent_gate():
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    gate.on_heartbeat(heartbeat(), 0, WALL_MS)
    assert gate.may_trade("alpha", 10_000) == closed(GUARD_SILENT)
    gate.on_heartbeat(heartbeat(), 10_000, WALL_MS)
    assert gate.may_trade("alpha", 10_000) == RUNNING


def test_fail_closed_outranks_what_the_scopes_say():
    # A gate that knows a scope is running still pauses it while the guard is silent.
    gate = Gate("gw-1")
    gate.caught_up(0, WALL_MS)
    assert gate.may_trade("alpha", 0).reasons == (GUARD_SILENT,)
    assert gate.closed_reason(0) == GUARD_SILENT
