"""The runbook's slippage rule with quixstreams: a stateful per-strategy function over
the fills (state in RocksDB, keyed by strategy_id as the message key), emitting a pause
when 3 breaches > 5 bps fall within 10 minutes.

Usage: quix_guard.py BROKERS IN_TOPIC OUT_TOPIC EXPECTED_MESSAGES
Speaks the drain protocol of bench/compare.sh (bench/src/drain.rs): prints `ready` once
the consumer group has assigned the input partition and `done N` once N messages are
judged; then stops the application and prints one JSON line with its counts. It does
not time itself: drain-timer does.
"""
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime

from quixstreams import Application, State

THRESHOLD_BPS, TRIP_AT, WINDOW_MS = 5.0, 3, 600_000
counters = {"seen": 0, "trips": 0, "expected": None}


def ts_ms(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def judge(fill: dict, state: State):
    counters["seen"] += 1
    if counters["seen"] == counters["expected"]:
        print(f"done {counters['seen']}", flush=True)
    exp, got = fill["expected_price"], fill["fill_price"]
    bps = fill.get("slippage_bps")
    if bps is None:
        bps = ((got - exp) if fill["side"] == "buy" else (exp - got)) / exp * 10_000
    if bps <= THRESHOLD_BPS:
        return None
    now = ts_ms(fill["ts"])
    window = [b for b in state.get("breaches", []) if now - b[0] < WINDOW_MS]
    window.append([now, fill["fill_id"]])
    if len(window) >= TRIP_AT:
        state.set("breaches", [])
        counters["trips"] += 1
        return {"action": "pause", "scope": {"kind": "strategy", "strategy_id": fill["strategy_id"]},
                "rule": "slippage_window", "trigger": fill["fill_id"], "evidence": [f for _, f in window]}
    state.set("breaches", window)
    return None


class ReadyApplication(Application):
    """Says `ready` once, after the group has assigned the input partitions."""

    announced = False

    def _on_assign(self, consumer, topic_partitions):
        super()._on_assign(consumer, topic_partitions)
        if topic_partitions and not ReadyApplication.announced:
            ReadyApplication.announced = True
            print("ready", flush=True)


def main():
    brokers, in_topic, out_topic, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    counters["expected"] = expected
    state_dir = tempfile.mkdtemp(prefix="quix-state-")
    app = ReadyApplication(broker_address=brokers, consumer_group=f"quix-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                           use_changelog_topics=False, state_dir=state_dir,
                           consumer_extra_config={"fetch.wait.max.ms": 5, "fetch.queue.backoff.ms": 1},
                           producer_extra_config={"linger.ms": 0})
    source = app.topic(in_topic, value_deserializer="json")
    sink = app.topic(out_topic, value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.apply(judge, stateful=True).filter(lambda v: v is not None)
    sdf.to_topic(sink)

    def watchdog():
        while counters["seen"] < expected:
            time.sleep(0.05)
        app.stop()

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    print(json.dumps({"peer": "quixstreams", "messages": counters["seen"], "trips": counters["trips"]}))


if __name__ == "__main__":
    main()
