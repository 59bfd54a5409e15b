"""The follower against a real Kafka-protocol broker (tansu): records produced by a real
producer, the gate's answers read through `Follower.may_trade`. No timing assertions:
every step waits for its condition with a generous deadline."""

from __future__ import annotations

import json
import threading

import pytest
from confluent_kafka import Producer

from noctria_gate import FOLLOWER_STOPPED, GUARD_SILENT, NO_STATE, RUNNING, Follower, Mode, Verdict

from guard_side import GuardSide, wait_for
from wire import command, pause_state


@pytest.fixture
def guard(tansu, prefix):
    side = GuardSide(tansu.bootstrap, prefix)
    side.create_topics()
    yield side
    side.close()


class Events:
    """The follower's events, collected from its thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items = []

    def __call__(self, event) -> None:
        with self._lock:
            self.items.append(event)

    def star(self):
        with self._lock:
            return [(e["mode"], e["reason"]) for e in self.items if e["scope"] == "*"]

    def scoped(self):
        with self._lock:
            return [(e["scope"], e["mode"]) for e in self.items if e["scope"] != "*"]

    def last(self):
        with self._lock:
            return self.items[-1] if self.items else None


def follower(tansu, guard, events=None, **kwargs):
    return Follower(tansu.bootstrap, "gw-it", topics=guard.topics, on_event=events, **kwargs)


def test_starts_paused_with_no_state_then_follows_the_pause_state(tansu, guard):
    # Given a guard that paused alpha (slippage) and set global reduce-only, then resumed global
    guard.state(pause_state("c1", "paused", "alpha", ["slippage_window"]))
    guard.state(pause_state("c2", "reduce_only", reasons=["risk_event"]))
    guard.state(pause_state("c3", "running"))
    guard.start_heartbeats()
    events = Events()
    gate = follower(tansu, guard, events)
    # Then before it has read anything, every strategy is paused for want of state
    assert gate.may_trade("alpha") == Verdict(Mode.PAUSED, (NO_STATE,))
    with gate:
        # When it has read the pause state and heard the guard
        assert gate.wait_for_state(30)
        wait_for(lambda: gate.may_trade("beta") == RUNNING, "beta running")
        # Then alpha is paused for its own reason and the others run
        assert gate.may_trade("alpha") == Verdict(Mode.PAUSED, ("slippage_window",))
        # And its events began with the closed start and ended with the opening, which
        # named the one scope held, after `*` running
        wait_for(lambda: events.scoped() == [("strategy:alpha", "paused")], "alpha named at the opening")
        assert events.star()[0] == ("paused", NO_STATE)
        assert events.star()[-1] == ("running", None)
        assert events.last()["scope"] == "strategy:alpha"


def test_a_gateway_started_after_a_command_starts_paused_from_the_pause_state(tansu, guard):
    # Given a guard that paused global (command and pause-state record) before the gateway started
    guard.command(command("c1", "pause", rule="daily_loss"))
    guard.state(pause_state("c1", "paused", reasons=["daily_loss"]))
    guard.start_heartbeats()
    # When the gateway starts
    with follower(tansu, guard) as gate:
        assert gate.wait_for_state(30)
        wait_for(lambda: gate.may_trade("alpha").reasons != (GUARD_SILENT,), "a heartbeat heard")
        # Then it is paused from the pause-state topic, though it never read that command
        assert gate.may_trade("alpha") == Verdict(Mode.PAUSED, ("daily_loss",))
        # And it acknowledges the decision in force
        acks = guard.acks(expected=1)
    assert [(a["key"], a["command_id"], a["gateway"]) for a in acks] == [("c1", "c1", "gw-it")]


def test_follows_commands_takes_the_records_reasons_and_acknowledges_each_once(tansu, guard):
    guard.start_heartbeats()
    with follower(tansu, guard) as gate:
        assert gate.wait_for_state(30)
        wait_for(lambda: gate.may_trade("alpha") == RUNNING, "alpha running")
        # When the guard pauses alpha: command first, then its pause-state record
        guard.command(command("c1", "pause", "alpha", rule="losing_streak"))
        wait_for(lambda: gate.may_trade("alpha").paused, "alpha paused by the command")
        assert gate.may_trade("beta") == RUNNING
        guard.state(pause_state("c1", "paused", "alpha", ["losing_streak", "operator"]))
        wait_for(lambda: gate.may_trade("alpha").reasons == ("losing_streak", "operator"),
                 "the record's reasons")
        # When it sets global reduce-only (record first, then command), then resumes alpha
        guard.state(pause_state("c2", "reduce_only", reasons=["risk_event"]))
        guard.command(command("c2", "reduce_only", rule="risk_event"))
        guard.command(command("c3", "resume", "alpha"))
        wait_for(lambda: gate.may_trade("alpha") == Verdict(Mode.REDUCE_ONLY, ("risk_event",)),
                 "alpha reduce-only under global")
        # Then every decision is acknowledged exactly once, keyed by its id
        acks = guard.acks(expected=3)
        wait_for(lambda: gate.counters()["acks_sent"] == 3, "three acks delivered")
    assert sorted((a["key"], a["command_id"]) for a in acks) == [("c1", "c1"), ("c2", "c2"), ("c3", "c3")]
    assert {a["gateway"] for a in acks} == {"gw-it"}
    assert all(a["ts"].endswith("Z") for a in acks)


def test_repeats_after_a_guard_restart_do_not_move_a_scope_back(tansu, guard):
    guard.start_heartbeats()
    with follower(tansu, guard) as gate:
        assert gate.wait_for_state(30)
        wait_for(lambda: gate.may_trade("alpha") == RUNNING, "open")
        guard.command(command("c1", "pause", rule="operator"))
        guard.command(command("c2", "resume", rule="operator"))
        wait_for(lambda: gate.counters()["commands_applied"] == 2, "two commands applied")
        # When a restarted guard re-publishes c1 and everything after it
        guard.command(command("c1", "pause", rule="operator"))
        guard.command(command("c2", "resume", rule="operator"))
        wait_for(lambda: gate.counters()["commands_known"] == 2, "two repeats read")
        # Then global is still running, and each command was acknowledged once
        assert gate.may_trade("alpha") == RUNNING
        assert gate.counters()["acks_owed"] == 2
        acks = guard.acks(expected=2)
    assert sorted(a["command_id"] for a in acks) == ["c1", "c2"]


def test_fails_closed_after_max_silence_and_reopens_on_the_next_active_heartbeat(tansu, guard):
    events = Events()
    guard.start_heartbeats(every_s=0.1)
    with follower(tansu, guard, events, max_silence_ms=1_000) as gate:
        assert gate.wait_for_state(30)
        wait_for(lambda: gate.may_trade("alpha") == RUNNING, "open")
        # When the guard falls silent
        guard.stop_heartbeats()
        # Then the gate closes and says so
        wait_for(lambda: gate.may_trade("alpha") == Verdict(Mode.PAUSED, (GUARD_SILENT,)), "closed for silence")
        wait_for(lambda: events.star()[-1] == ("paused", GUARD_SILENT), "the closing reported")
        # When only a standby speaks, it stays closed
        standby_before = gate.counters()["standby_heartbeats"]
        guard.beat(active=False)
        wait_for(lambda: gate.counters()["standby_heartbeats"] > standby_before, "the standby heard")
        assert gate.may_trade("alpha") == Verdict(Mode.PAUSED, (GUARD_SILENT,))
        # When the active guard's next heartbeat comes, it opens again
        guard.beat(active=True)
        wait_for(lambda: gate.may_trade("alpha") == RUNNING, "open again")
        wait_for(lambda: events.star()[-1] == ("running", None), "the opening reported")


def test_a_stopped_follower_pauses_every_strategy(tansu, guard):
    guard.start_heartbeats()
    gate = follower(tansu, guard).start()
    assert gate.wait_for_state(30)
    wait_for(lambda: gate.may_trade("alpha") == RUNNING, "open")
    gate.stop()
    assert not gate.running
    assert gate.may_trade("alpha") == Verdict(Mode.PAUSED, (FOLLOWER_STOPPED,))


def test_the_catch_up_ends_only_after_the_last_record_of_a_batch(tansu, guard):
    # Given a pause state written as one batch of many records (a broker may report the
    # partition's end as the batch's base offset + 1), beta's pause the very last
    producer = Producer({"bootstrap.servers": tansu.bootstrap, "linger.ms": 200})
    for i in range(20):
        record = pause_state(f"s{i}", "reduce_only", f"s{i}", ["risk_event"])
        producer.produce(guard.topics.pause_state, key=f"strategy:s{i}", value=json.dumps(record))
    last = pause_state("b1", "paused", "beta", ["losing_streak"])
    producer.produce(guard.topics.pause_state, key="strategy:beta", value=json.dumps(last))
    assert producer.flush(10) == 0
    # When the catch-up ends (seen from the follower's own thread, at that very moment:
    # the end of `no_state`, while no heartbeat has come)
    at_catch_up = []

    def on_event(event):
        if event["scope"] == "*" and event["reason"] == GUARD_SILENT and not at_catch_up:
            at_catch_up.append(gate.state()["scopes"])

    gate = follower(tansu, guard, on_event)
    gate.start()
    try:
        assert gate.wait_for_state(30)
        wait_for(lambda: at_catch_up, "the end of the catch-up reported")
        # Then the gate had every record of the batch, the last one included
        scopes = at_catch_up[0]
        assert len(scopes) == 21
        assert scopes["strategy:beta"]["mode"] == "paused"
    finally:
        gate.stop()


def test_a_follower_started_before_the_topics_exist_stays_closed_until_they_do(tansu, prefix):
    guard = GuardSide(tansu.bootstrap, prefix)
    try:
        gate = follower(tansu, guard).start()
        try:
            # Given no topics yet: the gate stays closed for want of state
            assert not gate.wait_for_state(2)
            assert gate.may_trade("alpha") == Verdict(Mode.PAUSED, (NO_STATE,))
            # When the topics appear and the guard speaks, it opens
            guard.create_topics()
            guard.state(pause_state("c1", "paused", "alpha", ["operator"]))
            guard.start_heartbeats()
            assert gate.wait_for_state(60)
            wait_for(lambda: gate.may_trade("beta") == RUNNING, "open")
            assert gate.may_trade("alpha").paused
        finally:
            gate.stop()
    finally:
        guard.close()
