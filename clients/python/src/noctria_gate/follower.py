"""The I/O shell around `Gate`: a thread that follows the guard's topics on Kafka.

The thread owns a confluent-kafka consumer and producer. It ``assign``s partitions (it
never joins a consumer group: a group's first join can take many seconds, and a gateway
must not be held back by a rebalance): every partition of `guard_pause_state` from the
beginning, every partition of `guard_command` and `guard_heartbeat` from the end. Each
record goes into the gate under a lock; the acknowledgements it owes are published
afterwards, so every `guard_ack` leaves once its command is in force for
`Follower.may_trade`. The gateway's threads call `Follower.may_trade`, which takes the
lock for a lookup in memory and never waits on I/O.

The catch-up is done when every pause-state partition has been read up to the end
offset it had at the start **and** a poll found nothing left to process. The second
condition matters on brokers that under-report a partition's high watermark after a
batch of several records (tansu reports the batch's base offset + 1): the rest of that
batch arrives in the same fetch, so it is in the local queue once the reported end is
reached, and the empty poll shows it has been applied.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from .errors import InvalidRecord
from .gate import DEFAULT_MAX_SILENCE_MS, DEFAULT_REMEMBERED_IDS, Gate, Output
from .topics import Topics
from .verdict import Mode, Verdict

#: Why `Follower.may_trade` is paused once the follower has stopped or died: nothing
#: keeps the gate's view current any more.
FOLLOWER_STOPPED = "follower_stopped"
#: How often an acknowledgement is tried before the follower gives up on it (the guard
#: then raises `command_unacknowledged`, CONTRACT rule 10).
ACK_ATTEMPTS = 5

log = logging.getLogger("noctria_gate")


def monotonic_ms() -> int:
    """The gateway's monotonic clock in milliseconds (the gate's ``now_ms``)."""
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int:
    """The wall clock in milliseconds since the Unix epoch (the gate's ``wall_ms``)."""
    return time.time_ns() // 1_000_000


class Follower:
    """A `Gate` kept current from Kafka by a background thread.

    Usage::

        follower = Follower("broker:9092", gateway="gw-tokyo").start()
        ...
        if follower.may_trade("alpha").allows(reduces_position=order.reduces):
            send(order)
        ...
        follower.stop()
    """

    def __init__(
        self,
        bootstrap_servers: str,
        gateway: str,
        *,
        topic_prefix: str = "",
        topics: Optional[Topics] = None,
        max_silence_ms: int = DEFAULT_MAX_SILENCE_MS,
        remembered_ids: int = DEFAULT_REMEMBERED_IDS,
        consumer_config: Optional[Dict[str, Any]] = None,
        producer_config: Optional[Dict[str, Any]] = None,
        on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
        poll_timeout_s: float = 0.05,
    ) -> None:
        """A follower for the gateway named ``gateway``; nothing runs before `start`.

        ``topics`` overrides the names; otherwise the default names with
        ``topic_prefix``. ``consumer_config`` / ``producer_config`` are merged over the
        defaults (security settings go there). ``on_event`` is called on the
        follower's thread with every event of the gate (it must not block).

        Raises:
            ValueError: see `Gate`.
        """
        self._gate = Gate(gateway, max_silence_ms=max_silence_ms, remembered_ids=remembered_ids)
        self.gateway = gateway
        self.topics = topics or Topics.with_prefix(topic_prefix)
        self._consumer_config = {
            "bootstrap.servers": bootstrap_servers,
            # The client insists on a group id; it is never joined and nothing is committed.
            "group.id": f"noctria-gate.{gateway}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Several Kafka-protocol brokers hold a fetch the whole wait even when data
            # arrives: keep it short so a pause reaches the gateway in milliseconds.
            "fetch.wait.max.ms": 5,
            "fetch.error.backoff.ms": 50,
            "socket.nagle.disable": True,
            **(consumer_config or {}),
        }
        self._producer_config = {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 0,
            "enable.idempotence": True,
            "acks": "all",
            # A bounded delivery time: a failed acknowledgement is retried and logged.
            "message.timeout.ms": 10_000,
            "socket.nagle.disable": True,
            **(producer_config or {}),
        }
        self._on_event = on_event
        self._poll_timeout_s = poll_timeout_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._has_state = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopped = False
        self._retry: List[Tuple[Dict[str, Any], int]] = []
        self._counters = dict.fromkeys(("acks_sent", "ack_failures", "acks_given_up", "consume_errors"), 0)

    # --- the gateway's side ------------------------------------------------------------

    def start(self) -> "Follower":
        """Starts the follower's thread; returns self.

        Raises:
            RuntimeError: it was started before.
        """
        if self._thread is not None:
            raise RuntimeError("a follower starts once")
        self._thread = threading.Thread(target=self._run, name=f"noctria-gate-{self.gateway}", daemon=True)
        self._thread.start()
        return self

    def may_trade(self, strategy_id: str) -> Verdict:
        """What ``strategy_id`` may do now (`Gate.may_trade`); paused with
        ``follower_stopped`` once the follower has stopped or died. Never waits on I/O."""
        now = monotonic_ms()
        with self._lock:
            if self._stopped:
                return Verdict(Mode.PAUSED, (FOLLOWER_STOPPED,))
            return self._gate.may_trade(strategy_id, now)

    def wait_for_state(self, timeout_s: float) -> bool:
        """Blocks until the pause-state topic has been read to its end (for a gateway's
        start-up, not its order path); False if ``timeout_s`` passed first."""
        return self._has_state.wait(timeout_s)

    @property
    def running(self) -> bool:
        """Whether the follower's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def state(self) -> Dict[str, Any]:
        """The gate's state (`Gate.state`) and the follower's counters."""
        now = monotonic_ms()
        with self._lock:
            out = self._gate.state(now)
            out["counters"].update(self._counters)
            out["stopped"] = self._stopped
        return out

    def counters(self) -> Dict[str, int]:
        """The gate's counters and the follower's (acknowledgements sent and failed,
        consume errors)."""
        with self._lock:
            out = self._gate.counters()
            out.update(self._counters)
        return out

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stops the thread: closes the consumer, flushes the acknowledgements still in
        flight (up to 5 s), closes the producer. `may_trade` is paused from then on."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            self._stopped = True

    def __enter__(self) -> "Follower":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- the follower's thread ------------------------------------------------------------

    def _run(self) -> None:
        consumer = producer = None
        try:
            consumer = Consumer(self._consumer_config)
            producer = Producer(self._producer_config)
            self._feed(lambda gate, now, wall: gate.tick(now, wall), producer)
            start = self._start_offsets(consumer)
            if start is None:
                return
            assignment, unread = start
            consumer.assign(assignment)
            log.info(
                "gate %s follows %s from the beginning (%d partitions to read), %s and %s from the end",
                self.gateway, self.topics.pause_state, len(unread), self.topics.command, self.topics.heartbeat,
            )
            self._loop(consumer, producer, unread)
        except Exception:  # the gate must not fail open: may_trade pauses from now on
            log.exception("gate %s: the follower died; every strategy is paused", self.gateway)
        finally:
            with self._lock:
                self._stopped = True
            if consumer is not None:
                consumer.close()
            if producer is not None:
                left = producer.flush(5.0)
                if left:
                    log.error("gate %s: %d acknowledgements not delivered at stop", self.gateway, left)

    def _start_offsets(self, consumer: Consumer):
        """The assignment, and for every pause-state partition that holds records the end
        offset it has now; retried until the topics exist (the gate stays closed)."""
        warned_at = None
        while not self._stopping.is_set():
            try:
                partitions = {t: self._partitions(consumer, t) for t in (
                    self.topics.pause_state, self.topics.command, self.topics.heartbeat)}
                unread: Dict[int, int] = {}
                for p in partitions[self.topics.pause_state]:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(self.topics.pause_state, p), timeout=5.0, cached=False)
                    if high > low:
                        unread[p] = high
                assignment = [TopicPartition(self.topics.pause_state, p, OFFSET_BEGINNING)
                              for p in partitions[self.topics.pause_state]]
                for topic in (self.topics.command, self.topics.heartbeat):
                    assignment += [TopicPartition(topic, p, OFFSET_END) for p in partitions[topic]]
                return assignment, unread
            except (KafkaException, LookupError) as err:
                if warned_at is None or time.monotonic() - warned_at > 30:
                    log.warning("gate %s cannot start following yet (it stays closed): %s", self.gateway, err)
                    warned_at = time.monotonic()
                self._stopping.wait(1.0)
        return None

    @staticmethod
    def _partitions(consumer: Consumer, topic: str) -> List[int]:
        meta = consumer.list_topics(topic, timeout=5.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise LookupError(f"topic {topic} is not available: {None if meta is None else meta.error}")
        return sorted(meta.partitions)

    def _loop(self, consumer: Consumer, producer: Producer, unread: Dict[int, int]) -> None:
        handlers = {
            self.topics.pause_state: Gate.on_pause_state,
            self.topics.command: Gate.on_command,
            self.topics.heartbeat: Gate.on_heartbeat,
        }
        caught_up = False
        while not self._stopping.is_set():
            msg = consumer.poll(self._poll_timeout_s)
            if msg is None:
                # Nothing left from the polls before: all that was fetched is applied.
                if not caught_up and not unread:
                    caught_up = True
                    self._feed(lambda gate, now, wall: gate.caught_up(now, wall), producer)
                    self._has_state.set()
                    log.info("gate %s has the guard's state", self.gateway)
                else:
                    self._feed(lambda gate, now, wall: gate.tick(now, wall), producer)
            elif msg.error():
                with self._lock:
                    self._counters["consume_errors"] += 1
                log.warning("gate %s: %s", self.gateway, msg.error())
            else:
                topic = msg.topic()
                if topic == self.topics.pause_state and msg.partition() in unread:
                    if msg.offset() + 1 >= unread[msg.partition()]:
                        del unread[msg.partition()]
                handle = handlers[topic]
                value = msg.value()
                try:
                    self._feed(lambda gate, now, wall: handle(gate, value, now, wall), producer)
                except InvalidRecord as err:
                    log.warning("gate %s ignores an invalid record at %s[%d]@%d: %s",
                                self.gateway, topic, msg.partition(), msg.offset(), err)
            self._send_retries(producer)
            producer.poll(0)

    def _feed(self, step: Callable[[Gate, int, int], Output], producer: Producer) -> None:
        """Runs one input through the gate under the lock, then publishes its
        acknowledgements (the command is in force by then) and reports its events."""
        with self._lock:
            out = step(self._gate, monotonic_ms(), wall_ms())
        for ack in out.acks:
            self._send_ack(producer, ack, 1)
        for event in out.events:
            self._report(event)

    def _send_ack(self, producer: Producer, ack: Dict[str, Any], attempt: int) -> None:
        def delivered(err, _msg) -> None:
            if err is None:
                self._count("acks_sent")
                return
            self._count("ack_failures")
            if attempt < ACK_ATTEMPTS:
                log.warning("gate %s: ack of %s not delivered (%s); retrying", self.gateway, ack["command_id"], err)
                self._retry.append((ack, attempt + 1))
            else:
                self._count("acks_given_up")
                log.error("gate %s: ack of %s not delivered after %d attempts: %s",
                          self.gateway, ack["command_id"], attempt, err)

        payload = json.dumps(ack, separators=(",", ":"))
        try:
            producer.produce(self.topics.ack, key=ack["command_id"], value=payload, on_delivery=delivered)
        except BufferError:
            producer.poll(0.1)
            self._retry.append((ack, attempt))

    def _send_retries(self, producer: Producer) -> None:
        retry, self._retry = self._retry, []
        for ack, attempt in retry:
            self._send_ack(producer, ack, attempt)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def _report(self, event: Dict[str, Any]) -> None:
        if event["scope"] == "*":
            if event["mode"] == Mode.PAUSED.value:
                log.warning("gate %s fails closed: every strategy paused (%s)", self.gateway, event["reason"])
            else:
                log.info("gate %s is open again: every scope follows its own mode", self.gateway)
        else:
            log.info("gate %s: %s is %s (command %s)", self.gateway, event["scope"], event["mode"], event["command_id"])
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("gate %s: the on_event callback failed", self.gateway)
