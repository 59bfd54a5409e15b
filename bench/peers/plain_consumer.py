"""The runbook's slippage rule as a team would write it with a plain confluent-kafka
consumer loop: 3 fills of one strategy with slippage > 5 bps within 10 minutes ->
publish a pause for that strategy (its breaches are then forgotten).

Usage: plain_consumer.py BROKERS IN_TOPIC OUT_TOPIC EXPECTED_MESSAGES
Reads IN_TOPIC from the beginning and stops after EXPECTED_MESSAGES. Speaks the drain
protocol of bench/compare.sh (bench/src/drain.rs): prints `ready` once the partition is
assigned and `done N` once N messages are judged; then flushes its pauses and prints
one JSON line with its counts. It does not time itself: drain-timer does.
"""
import json
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, Producer, TopicPartition

THRESHOLD_BPS, TRIP_AT, WINDOW_MS = 5.0, 3, 600_000


def ts_ms(text):
    # 2025-08-11T00:00:00.123Z -> ms (UTC); enough for the generated stream
    from datetime import datetime
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def main():
    brokers, in_topic, out_topic, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"plain-{time.time()}", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5, "fetch.queue.backoff.ms": 1, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "enable.idempotence": True})
    consumer.assign([TopicPartition(in_topic, 0, 0)])
    print("ready", flush=True)
    breaches = defaultdict(list)
    seen = 0
    trips = 0
    while seen < expected:
        # Up to 500 at a time, but never wait more than 2 ms for a batch to fill.
        batch = consumer.consume(500, 0.002)
        for msg in batch:
            if msg.error():
                continue
            seen += 1
            fill = json.loads(msg.value())
            side = fill["side"]
            exp, got = fill["expected_price"], fill["fill_price"]
            bps = fill.get("slippage_bps")
            if bps is None:
                bps = ((got - exp) if side == "buy" else (exp - got)) / exp * 10_000
            if bps <= THRESHOLD_BPS:
                continue
            now = ts_ms(fill["ts"])
            # Fills arrive late, so an expired breach need not be at the front.
            window = [b for b in breaches[fill["strategy_id"]] if now - b[0] < WINDOW_MS]
            window.append((now, fill["fill_id"]))
            breaches[fill["strategy_id"]] = window
            if len(window) >= TRIP_AT:
                trips += 1
                command = {"action": "pause", "scope": {"kind": "strategy", "strategy_id": fill["strategy_id"]},
                           "rule": "slippage_window", "trigger": fill["fill_id"], "evidence": [f for _, f in window]}
                producer.produce(out_topic, key=fill["strategy_id"], value=json.dumps(command))
                producer.poll(0)
                window.clear()
    print(f"done {seen}", flush=True)
    producer.flush(10)
    consumer.close()
    print(json.dumps({"peer": "confluent-kafka loop", "messages": seen, "trips": trips}))


if __name__ == "__main__":
    main()
