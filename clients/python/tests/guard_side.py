"""The guard's side of the integration tests: creates the topics and publishes what a
guard publishes, with a real producer; reads the gateways' acknowledgements back."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from noctria_gate import Topics

from wire import heartbeat


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """Polls ``condition`` until it is truthy; fails after a generous deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what} (last: {value!r})")
        time.sleep(0.02)


class GuardSide:
    """Topics under one prefix on the test broker, and a producer on them."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.topics = Topics.with_prefix(prefix)
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True})
        self._beating = threading.Event()
        self._beater = None

    def create_topics(self) -> None:
        """Creates the four topics (tansu does not create topics for consumers);
        `guard_pause_state` is compacted, as the guard's `guard topics` makes it."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        new = [NewTopic(self.topics.pause_state, num_partitions=1, replication_factor=1,
                        config={"cleanup.policy": "compact"})]
        new += [NewTopic(t, num_partitions=1, replication_factor=1)
                for t in (self.topics.command, self.topics.heartbeat, self.topics.ack)]
        for topic, future in admin.create_topics(new, operation_timeout=10).items():
            future.result(timeout=30)

    def publish(self, topic: str, key: str, record: Dict[str, Any]) -> None:
        self._producer.produce(topic, key=key, value=json.dumps(record))
        assert self._producer.flush(10) == 0, f"a record to {topic} was not delivered"

    def state(self, record: Dict[str, Any]) -> None:
        self.publish(self.topics.pause_state, _scope_key(record["scope"]), record)

    def command(self, record: Dict[str, Any]) -> None:
        self.publish(self.topics.command, _scope_key(record["scope"]), record)

    def beat(self, active: bool = True) -> None:
        self.publish(self.topics.heartbeat, "guard-1", heartbeat(active=active))

    def start_heartbeats(self, every_s: float = 0.2) -> None:
        """An active guard's heartbeat every ``every_s`` until `stop_heartbeats`."""
        self._beating.set()

        def run() -> None:
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
            while self._beating.is_set():
                producer.produce(self.topics.heartbeat, key="guard-1", value=json.dumps(heartbeat()))
                producer.flush(5)
                time.sleep(every_s)

        self._beater = threading.Thread(target=run, daemon=True)
        self._beater.start()

    def stop_heartbeats(self) -> None:
        self._beating.clear()
        if self._beater is not None:
            self._beater.join(10)
            self._beater = None

    def acks(self, expected: int, timeout_s: float = 30.0) -> List[Dict[str, Any]]:
        """The acknowledgements on `guard_ack`, read from the beginning until
        ``expected`` are there (each with its Kafka key), and a little longer for any
        extra one."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "it-acks",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        consumer.assign([TopicPartition(self.topics.ack, 0, OFFSET_BEGINNING)])
        found: List[Dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        quiet_until = None
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.1)
                if msg is not None and not msg.error():
                    found.append(dict(json.loads(msg.value()), key=msg.key().decode()))
                    continue
                if len(found) >= expected:
                    quiet_until = quiet_until or time.monotonic() + 1.0
                    if time.monotonic() > quiet_until:
                        break
        finally:
            consumer.close()
        return found

    def close(self) -> None:
        self.stop_heartbeats()
        self._producer.flush(10)


def _scope_key(scope: Dict[str, Any]) -> str:
    return "global" if scope["kind"] == "global" else f"strategy:{scope['strategy_id']}"
