//! The live path on librdkafka's mock cluster (real Kafka protocol, in process):
//! commands equal replay's, restarts apply nothing twice, invalid input goes to the
//! dead-letter topic, and a broker outage delays a pause but does not lose it.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use guard::decode::decode_envelope;
use guard::engine::{ClockMode, Engine};
use guard::live::heartbeat::Beacon;
use guard::live::{LiveConfig, LiveGuard, MemStore, SledStore, StatusHandle, Store};
use guard::message::{Action, GuardCommand, Heartbeat, Mode, PauseState};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn root() -> PathBuf {
    common::root()
}

/// (topic, payload) of every input line of a replay file (invalid events included).
fn messages(file: &str) -> Vec<(String, Vec<u8>)> {
    common::messages(&root().join(file))
}

fn replay_commands(file: &str) -> (Vec<GuardCommand>, Engine) {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    common::replay(&lines)
}

/// A record read back: its key, payload and headers.
type Record = (Option<String>, Vec<u8>, BTreeMap<String, String>);

struct Rig {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    config: LiveConfig,
    producer: BaseProducer,
    sent: BTreeMap<String, i64>,
    last_topic: String,
}

impl Rig {
    fn new(name: &str) -> Rig {
        Rig::on(MockCluster::new(1).unwrap(), name, 1, |_, config| {
            config.message_timeout = Duration::from_secs(3);
        })
    }

    /// A rig on `cluster`, its topics created with `replication`; `arrange` then
    /// adjusts the cluster and the guard's settings.
    fn on(
        cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        name: &str,
        replication: i32,
        arrange: impl FnOnce(
            &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
            &mut LiveConfig,
        ),
    ) -> Rig {
        let dir = std::env::temp_dir().join(format!("guard-live-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = LiveConfig::new(cluster.bootstrap_servers(), dir);
        config.http_listen = None;
        config.clock = ClockMode::EventTime;
        config.checkpoint_interval = Duration::from_millis(20);
        config.input_fetch_wait = guard::live::kafka::MOCK_INPUT_FETCH_WAIT;
        for topic in config.topics.all() {
            cluster.create_topic(&topic, 1, replication).unwrap();
        }
        arrange(&cluster, &mut config);
        let producer = guard::live::kafka::producer(&config).create().unwrap();
        Rig {
            cluster,
            config,
            producer,
            sent: BTreeMap::new(),
            last_topic: String::new(),
        }
    }

    /// Produces one message and turns the guard until it has read it, so the guard
    /// sees messages of different topics in exactly the order they were sent.
    fn feed<S: Store>(&mut self, guard: &mut LiveGuard<S>, topic: &str, payload: &[u8]) {
        if self.last_topic != topic {
            // Messages of different topics a millisecond apart at least: Kafka
            // timestamps are what orders them for the guard, then and on a restart.
            std::thread::sleep(Duration::from_millis(2));
            self.last_topic = topic.to_owned();
        }
        self.producer
            .send(BaseRecord::to(topic).key("k").payload(payload))
            .unwrap();
        // Not `flush`: librdkafka's flush sleeps in steps of 100 ms.
        let sent = Instant::now() + Duration::from_secs(5);
        while self.producer.in_flight_count() > 0 {
            assert!(
                Instant::now() < sent,
                "the mock broker did not take {topic}"
            );
            self.producer.poll(Duration::from_millis(1));
        }
        let next = self.sent.entry(topic.to_owned()).or_insert(0);
        *next += 1;
        let want = *next;
        let deadline = Instant::now() + Duration::from_secs(20);
        while guard.next_offset(topic, 0).unwrap_or(0) < want {
            assert!(
                Instant::now() < deadline,
                "the guard did not read {topic} offset {}",
                want - 1
            );
            guard.turn(Duration::from_millis(1));
        }
    }

    /// Turns the guard until it has read `total` messages of the input topics.
    fn read_backlog<S: Store>(&self, guard: &mut LiveGuard<S>, total: usize, within: Duration) {
        let deadline = Instant::now() + within;
        let read = |guard: &LiveGuard<S>| -> i64 {
            self.config
                .topics
                .inputs()
                .iter()
                .map(|t| guard.next_offset(t, 0).unwrap_or(0))
                .sum()
        };
        while read(guard) < total as i64 {
            assert!(
                Instant::now() < deadline,
                "the guard did not read the backlog"
            );
            guard.turn(Duration::from_millis(2));
        }
    }

    fn settle<S: Store>(&self, guard: &mut LiveGuard<S>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while guard.outbox_len() > 0 && Instant::now() < deadline {
            guard.turn(Duration::from_millis(5));
        }
        guard.checkpoint();
        // The store is written on a thread of its own: wait until the state as it
        // stands is there (or the deadline passes, as when the store fails).
        while !guard.at_rest() && Instant::now() < deadline {
            guard.turn(Duration::from_millis(5));
        }
    }

    fn read_topic(&self, topic: &str) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("group.id", "reader")
            .set("fetch.wait.max.ms", "5")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(5))
            .unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while (out.len() as i64) < high && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_owned(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                ));
            }
        }
        out
    }

    fn commands(&self) -> Vec<GuardCommand> {
        self.read_topic(&self.config.topics.guard_command)
            .into_iter()
            .map(|(_, p, _)| serde_json::from_slice(&p).unwrap())
            .collect()
    }
}

/// The fields the contract judges a command by (not `decided_at`).
fn judged(c: &GuardCommand) -> String {
    format!(
        "{} {} {} {} {} [{}]",
        c.command_id,
        c.action.as_str(),
        c.scope,
        c.rule.as_str(),
        c.trigger,
        c.evidence.join(",")
    )
}

#[test]
fn live_commands_equal_replay_for_the_same_messages() {
    let file = "tests/golden/runbook_day/input.jsonl";
    let mut rig = Rig::new("equal");
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    for (topic, payload) in messages(file) {
        rig.feed(&mut guard, &topic, &payload);
    }
    rig.settle(&mut guard);
    let (expected, replay_engine) = replay_commands(file);
    let live: Vec<String> = rig.commands().iter().map(judged).collect();
    assert_eq!(live, expected.iter().map(judged).collect::<Vec<_>>());
    assert_eq!(guard.engine().state(), replay_engine.state());
    // Commands are keyed by scope.
    let keys: Vec<Option<String>> = rig
        .read_topic("guard_command")
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(keys[0].as_deref(), Some("global"));
}

#[test]
fn every_command_goes_out_with_its_scopes_pause_state_in_the_same_order() {
    // CONTRACT §1.8: guard_pause_state holds, per scope key, the mode each command
    // announced, written with every command; a compacted read (the last record per
    // key) gives every scope's present mode, and a resumed scope keeps its record.
    let file = "tests/golden/runbook_day/input.jsonl";
    let mut rig = Rig::new("pausestate");
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    for (topic, payload) in messages(file) {
        rig.feed(&mut guard, &topic, &payload);
    }
    rig.settle(&mut guard);
    let commands = rig.commands();
    let states: Vec<(Option<String>, PauseState)> = rig
        .read_topic("guard_pause_state")
        .into_iter()
        .map(|(k, p, _)| (k, serde_json::from_slice(&p).unwrap()))
        .collect();
    assert!(commands.iter().any(|c| c.action == Action::Resume));
    assert_eq!(states.len(), commands.len(), "one record per command");
    let policy_version = guard.engine().policy().version();
    let mut last: BTreeMap<String, &PauseState> = BTreeMap::new();
    for (command, (key, state)) in commands.iter().zip(&states) {
        assert_eq!(state.command_id, command.command_id, "in command order");
        assert_eq!(key.as_deref(), Some(command.scope.to_string().as_str()));
        assert_eq!(state.scope, command.scope);
        let mode = match command.action {
            Action::Pause => Mode::Paused,
            Action::ReduceOnly => Mode::ReduceOnly,
            Action::Resume => Mode::Running,
        };
        assert_eq!(state.mode, mode);
        assert_eq!(state.mode == Mode::Running, state.reasons.is_empty());
        let mut sorted = state.reasons.clone();
        sorted.sort();
        assert_eq!(state.reasons, sorted, "reasons sorted");
        assert_eq!(state.policy_version, policy_version);
        last.insert(command.scope.to_string(), state);
    }
    // The compacted view is the engine's present state.
    let scopes = &guard.engine().state().scopes;
    for state in last.values() {
        assert_eq!(state.mode, scopes.mode(&state.scope), "{}", state.scope);
        if let Some(held) = scopes.get(&state.scope) {
            let mut reasons: Vec<&str> = held.all().map(|(r, _)| r.as_str()).collect();
            reasons.sort();
            reasons.dedup();
            assert_eq!(state.reasons, reasons);
            assert_eq!(state.since, held.since);
        }
    }
}

#[test]
fn the_beacon_says_whether_its_instance_decides() {
    let rig = Rig::new("heartbeat");
    let guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    let mut beacon = Beacon::open(&rig.config).unwrap();
    beacon.beat(Some(guard.engine()));
    // Within the interval nothing more goes out; standing down goes out at once.
    beacon.beat(Some(guard.engine()));
    beacon.stand_down();
    let beats: Vec<(Option<String>, Heartbeat)> = rig
        .read_topic("guard_heartbeat")
        .into_iter()
        .map(|(k, p, _)| (k, serde_json::from_slice(&p).unwrap()))
        .collect();
    assert_eq!(beats.len(), 2, "{beats:?}");
    assert!(beats[0].1.active && !beats[1].1.active);
    for (key, beat) in &beats {
        assert_eq!(key.as_deref(), Some(rig.config.instance.as_str()));
        assert_eq!(beat.instance, rig.config.instance);
        assert_eq!(beat.policy_version, rig.config.policy.version());
        assert_eq!(beat.paused_scopes, 0);
    }
}

/// Heartbeats the broker does not take are counted in the status's metrics
/// (`guard_heartbeat_failures_total`): gateways that hear none halt trading although
/// the guard decides, and the operator must be able to see why.
#[test]
fn heartbeats_the_broker_does_not_take_are_counted() {
    let mut rig = Rig::new("heartbeat-failures");
    rig.config.message_timeout = Duration::from_secs(1);
    let status = StatusHandle::default();
    let mut beacon = Beacon::open(&rig.config).unwrap();
    beacon.report_to(&status);
    beacon.beat(None);
    assert_eq!(status.read().metrics.heartbeat_failures, 0);
    rig.cluster.broker_down(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status.read().metrics.heartbeat_failures == 0 && Instant::now() < deadline {
        beacon.beat(None);
        std::thread::sleep(Duration::from_millis(100));
    }
    rig.cluster.broker_up(1).unwrap();
    assert!(status.read().metrics.heartbeat_failures > 0);
    assert_eq!(
        status.read().metrics.heartbeat_failures,
        beacon.failures(),
        "the status shows the beacon's count"
    );
}

#[test]
fn a_backlog_of_every_stream_is_applied_in_kafka_timestamp_order() {
    // Everything is on the broker before the guard starts, as after a crash: the
    // fetches return the four topics in whatever order, and the merge by Kafka
    // timestamp (one millisecond apart here, in file order) restores the file's order.
    let file = "tests/golden/runbook_day/input.jsonl";
    let rig = Rig::new("backlog");
    let start_ms = 1_700_000_000_000i64;
    for (i, (topic, payload)) in messages(file).iter().enumerate() {
        rig.producer
            .send(
                BaseRecord::to(topic)
                    .key("k")
                    .payload(payload)
                    .timestamp(start_ms + i as i64),
            )
            .unwrap();
    }
    rig.producer.flush(Duration::from_secs(5)).unwrap();
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    rig.read_backlog(&mut guard, messages(file).len(), Duration::from_secs(20));
    rig.settle(&mut guard);
    let (expected, replay_engine) = replay_commands(file);
    let live: Vec<String> = rig.commands().iter().map(judged).collect();
    assert_eq!(live, expected.iter().map(judged).collect::<Vec<_>>());
    assert_eq!(guard.engine().state(), replay_engine.state());
}

#[test]
fn a_backlog_is_applied_in_timestamp_order_however_slow_its_fetches() {
    // Everything is on the broker before the guard starts, and every fetch takes
    // 150 ms (the broker's round trip), longer than `max_order_wait`: the operators'
    // orders and risk events come whole with the first fetch, the fills a megabyte a
    // fetch. The merge must wait for the fills the broker holds rather than apply the
    // later-stamped orders ahead of them (which a wait bounded by `max_order_wait`
    // did: the guard then decided differently from replay).
    let run = slow_backlog("slowfetch", None);
    assert!(!run.expected.is_empty(), "the stream makes decisions");
    assert_eq!(run.live, run.expected);
    assert!(run.same_state);
    assert_eq!(
        run.applied_late, 0,
        "every input applied in timestamp order"
    );
}

#[test]
fn inputs_applied_out_of_timestamp_order_are_counted() {
    // The same backlog in fetch order (`max_order_wait` 0): the orders and risk
    // events of the first fetch go ahead of the fills stamped before them, and each
    // such fill is counted.
    let run = slow_backlog("fetchorder", Some(Duration::ZERO));
    assert!(run.applied_late > 0, "no input counted as applied late");
}

/// `--order-grace` (docs/LIVE.md "Order grace"): a fill fetched while the operators'
/// topic is idle waits for an order stamped before it that reaches the broker after
/// it, as a broker whose watermark lags shows them. Without the grace the fill goes
/// first and is counted as applied late (the control); with it, the two are applied
/// in the order of their stamps.
#[test]
fn a_fill_at_the_live_edge_waits_out_the_order_grace_for_an_earlier_stamped_order() {
    assert_eq!(
        overtaken_at_the_edge("grace-off", Duration::ZERO),
        1,
        "without a grace the fill goes first"
    );
    assert_eq!(
        overtaken_at_the_edge("grace-on", Duration::from_secs(3)),
        0,
        "with a grace the order stamped first goes first"
    );
}

/// Sends a fill stamped now, turns the guard for 200 ms, then sends an operator's
/// order stamped 50 ms before the fill; returns how many inputs the guard counted as
/// applied after a later-stamped one.
fn overtaken_at_the_edge(name: &str, grace: Duration) -> u64 {
    let rig = Rig::on(MockCluster::new(1).unwrap(), name, 1, |_, config| {
        config.message_timeout = Duration::from_secs(3);
        config.order_grace = grace;
    });
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    let send = |topic: &str, payload: &[u8], stamp: i64| {
        rig.producer
            .send(
                BaseRecord::to(topic)
                    .key("k")
                    .payload(payload)
                    .timestamp(stamp),
            )
            .unwrap();
        while rig.producer.in_flight_count() > 0 {
            rig.producer.poll(Duration::from_millis(1));
        }
    };
    let stamped = guard::live::merge::now_ms();
    send(
        "exec_result",
        br#"{"fill_id":"f1","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2025-08-11T00:00:01Z"}"#,
        stamped,
    );
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        guard.turn(Duration::from_millis(1));
    }
    send(
        "ops_command",
        br#"{"command_id":"ops-1","action":"pause","scope":{"kind":"strategy","strategy_id":"a"},"operator":"oncall","reason":"test","ts":"2025-08-11T00:00:00Z"}"#,
        stamped - 50,
    );
    rig.read_backlog(&mut guard, 2, Duration::from_secs(20));
    status.read().metrics.inputs_applied_late
}

/// What a guard decided from a mixed backlog of 12,000 lines read through 150 ms
/// fetches, against replay.
struct SlowBacklog {
    live: Vec<String>,
    expected: Vec<String>,
    same_state: bool,
    applied_late: u64,
}

fn slow_backlog(name: &str, max_order_wait: Option<Duration>) -> SlowBacklog {
    let lines = common::stream(12_000, 100);
    let file = std::env::temp_dir().join(format!("guard-{name}-{}.jsonl", std::process::id()));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let all = common::messages(&file);
    let _ = std::fs::remove_file(&file);
    let fills = all.iter().filter(|(t, _)| t == "exec_result").count();
    assert!(
        fills > 10_000 && fills < all.len(),
        "a mixed stream with a backlog of fills"
    );
    let rig = Rig::on(MockCluster::new(1).unwrap(), name, 1, |_, config| {
        config.message_timeout = Duration::from_secs(10);
        if let Some(wait) = max_order_wait {
            config.max_order_wait = wait;
        }
    });
    let start_ms = 1_700_000_000_000i64;
    for (i, (topic, payload)) in all.iter().enumerate() {
        rig.producer
            .send(
                BaseRecord::to(topic)
                    .key("k")
                    .payload(payload)
                    .timestamp(start_ms + i as i64),
            )
            .unwrap();
        rig.producer.poll(Duration::ZERO);
    }
    rig.producer.flush(Duration::from_secs(20)).unwrap();
    rig.cluster
        .broker_round_trip_time(1, Duration::from_millis(150))
        .unwrap();
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.read_backlog(&mut guard, all.len(), Duration::from_secs(120));
    rig.cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .unwrap();
    rig.settle(&mut guard);
    let (expected, replay_engine) = common::replay(&lines);
    let applied_late = status.read().metrics.inputs_applied_late;
    SlowBacklog {
        live: rig.commands().iter().map(judged).collect(),
        expected: expected.iter().map(judged).collect(),
        same_state: guard.engine().state() == replay_engine.state(),
        applied_late,
    }
}

/// A restart from the local store reads the order journal from where its checkpoint
/// says the records after it begin, and decides on as replay does.
#[test]
fn a_restart_from_sled_applies_nothing_twice() {
    let file = "tests/golden/late_breaches/input.jsonl";
    let all = messages(file);
    let mut rig = Rig::new("restart");
    let (first, second) = all.split_at(all.len() / 2);
    {
        let store = SledStore::open(&rig.config.state_dir).unwrap();
        let mut guard =
            LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
        for (topic, payload) in first {
            rig.feed(&mut guard, topic, payload);
        }
        rig.settle(&mut guard);
        guard.shutdown();
    }
    assert_journal_from_is_the_cut(&rig);
    let store = SledStore::open(&rig.config.state_dir).unwrap();
    let mut guard = LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
    for (topic, payload) in second {
        rig.feed(&mut guard, topic, payload);
    }
    rig.settle(&mut guard);
    // late_breaches uses a policy without maintenance; the default policy decides the
    // same here because no message is near the Monday window.
    let (expected, replay_engine) = replay_commands(file);
    assert_eq!(
        rig.commands().iter().map(judged).collect::<Vec<_>>(),
        expected.iter().map(judged).collect::<Vec<_>>()
    );
    assert_eq!(guard.engine().state(), replay_engine.state());
}

/// The loop sleeps until its next due work: a guard with a change not yet in a
/// checkpoint wakes by the time the checkpoint is due, and an idle one (everything
/// written, nothing in the outbox, no clock to tick on event time) sleeps longer than
/// a busy one's 5 ms: an idle guard does not wake 200 times a second.
#[test]
fn an_idle_guard_sleeps_until_its_next_due_work() {
    let all = messages("tests/golden/late_breaches/input.jsonl");
    let mut rig = Rig::new("sleep");
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    let (topic, payload) = &all[0];
    rig.feed(&mut guard, topic, payload);
    let changed = guard.sleep_limit();
    assert!(
        changed <= rig.config.checkpoint_interval,
        "a change waits for its checkpoint, yet the loop would sleep {changed:?}"
    );
    rig.settle(&mut guard);
    let idle = guard.sleep_limit();
    assert!(
        idle > Duration::from_millis(5),
        "nothing is due, yet the loop would wake after {idle:?}"
    );
}

/// The checkpoint in the rig's store, and where it says its order records begin.
fn stored_journal_from(rig: &Rig) -> (guard::live::store::Checkpoint, i64) {
    let stored = SledStore::open(&rig.config.state_dir)
        .unwrap()
        .load()
        .unwrap()
        .unwrap()
        .checkpoint;
    let from = stored
        .journal_from
        .expect("the checkpoint says where its order records begin");
    (stored, from)
}

/// A checkpoint says where on `guard_state` the order records after it begin: at
/// the record that ends where the checkpoint is cut, so a restart reads the journal
/// from there, not from the topic's start (compaction never removes its records).
fn assert_journal_from_is_the_cut(rig: &Rig) {
    let (stored, from) = stored_journal_from(rig);
    let from = usize::try_from(from).unwrap();
    let state = rig.read_topic(&rig.config.topics.state);
    let (key, payload, _) = &state[from];
    let key = key.as_deref().unwrap_or_default();
    assert!(key.contains("/order/"), "offset {from} holds {key}");
    let record: guard::live::order_log::Record = serde_json::from_slice(payload).unwrap();
    assert_eq!(
        record.end(),
        stored.offsets,
        "the record at {from} ends elsewhere"
    );
    assert!(
        state[..from]
            .iter()
            .any(|(k, _, _)| k.as_deref().is_some_and(|k| k.contains("/order/"))),
        "earlier order records, which a restart now skips"
    );
}

#[test]
fn a_crash_before_the_checkpoint_re_decides_with_the_same_ids() {
    let file = "tests/golden/runbook_day/input.jsonl";
    let all = messages(file);
    let mut rig = Rig::new("crash");
    rig.config.checkpoint_interval = Duration::from_secs(3600);
    let cut = 9;
    {
        let store = SledStore::open(&rig.config.state_dir).unwrap();
        let mut guard =
            LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
        for (topic, payload) in &all[..3] {
            rig.feed(&mut guard, topic, payload);
        }
        guard.checkpoint();
        for (topic, payload) in &all[3..cut] {
            rig.feed(&mut guard, topic, payload);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while guard.outbox_len() > 0 && Instant::now() < deadline {
            guard.turn(Duration::from_millis(5));
        }
        assert_eq!(
            guard.outbox_len(),
            0,
            "the commands were published before the crash"
        );
        // Dropped without a checkpoint: as if killed after publishing.
    }
    let store = SledStore::open(&rig.config.state_dir).unwrap();
    let mut guard = LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
    // The restart re-reads messages 3..cut from the stored offsets.
    let deadline = Instant::now() + Duration::from_secs(20);
    while guard.next_offset("exec_result", 0).unwrap_or(0) < *rig.sent.get("exec_result").unwrap()
        && Instant::now() < deadline
    {
        guard.turn(Duration::from_millis(2));
    }
    for (topic, payload) in &all[cut..] {
        rig.feed(&mut guard, topic, payload);
    }
    rig.settle(&mut guard);
    let (expected, replay_engine) = replay_commands(file);
    let published = rig.commands();
    let mut distinct: Vec<String> = Vec::new();
    for c in &published {
        let j = judged(c);
        if !distinct.contains(&j) {
            distinct.push(j);
        }
    }
    assert_eq!(distinct, expected.iter().map(judged).collect::<Vec<_>>());
    assert!(
        published.len() > expected.len(),
        "the replayed part should have re-published duplicates"
    );
    assert_eq!(guard.engine().state(), replay_engine.state());
}

#[test]
fn invalid_messages_go_to_the_dead_letter_topic_with_their_position() {
    let mut rig = Rig::new("dlq");
    rig.config.max_message_bytes = 4_096;
    rig.config.clock = ClockMode::External;
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", b"{not json");
    rig.feed(
        &mut guard,
        "ops_command",
        br#"{"command_id":"x","action":"halt"}"#,
    );
    let big = vec![b' '; rig.config.max_message_bytes + 1];
    rig.feed(&mut guard, "risk_event", &big);
    // Valid, but stamped decades ahead of the wall clock the guard runs on: it would
    // age every streak out at once.
    rig.feed(&mut guard, "exec_result", br#"{"fill_id":"f-future","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2099-01-01T00:00:00Z"}"#);
    rig.settle(&mut guard);
    let dead = rig.read_topic("guard_dlq");
    assert_eq!(dead.len(), 4);
    assert_eq!(dead[0].1, b"{not json");
    assert_eq!(
        dead[0].2.get("source_topic").map(String::as_str),
        Some("exec_result")
    );
    assert_eq!(
        dead[0].2.get("source_offset").map(String::as_str),
        Some("0")
    );
    assert!(
        dead[1].2["reason"].contains("ops_command"),
        "{:?}",
        dead[1].2
    );
    assert!(
        dead[2].2["reason"].contains("exceeds the limit"),
        "{:?}",
        dead[2].2
    );
    assert!(
        dead[3].2["reason"].contains("ahead of the guard's clock"),
        "{:?}",
        dead[3].2
    );
    assert_eq!(guard.engine().state().newest, None);
    assert_eq!(status.read().metrics.invalid, 4);
    // The guard goes on: a valid pause still works.
    rig.feed(&mut guard, "ops_command", br#"{"command_id":"o1","action":"pause","scope":{"kind":"global"},"operator":"a","ts":"2025-08-11T00:00:00Z"}"#);
    rig.settle(&mut guard);
    assert_eq!(rig.commands().len(), 1);
}

#[test]
fn on_event_time_a_future_stamped_message_is_applied_as_replay_applies_it() {
    let mut rig = Rig::new("future");
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    rig.feed(&mut guard, "exec_result", br#"{"fill_id":"f-future","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2099-01-01T00:00:00Z"}"#);
    rig.settle(&mut guard);
    assert!(rig.read_topic("guard_dlq").is_empty());
    assert_eq!(
        guard.engine().state().newest,
        Some(guard::time::Timestamp::parse("2099-01-01T00:00:00Z").unwrap())
    );
}

#[test]
fn a_pause_decided_while_the_broker_is_down_goes_out_when_it_is_back() {
    let mut rig = Rig::new("outage");
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", br#"{"fill_id":"f1","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100.1,"ts":"2025-08-11T00:00:00Z"}"#);
    rig.feed(&mut guard, "exec_result", br#"{"fill_id":"f2","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100.1,"ts":"2025-08-11T00:00:01Z"}"#);
    rig.settle(&mut guard);
    // The third breach arrives, then the broker goes down before the command is out
    // (a slow broker keeps the pause and its order record in flight meanwhile).
    rig.cluster
        .broker_round_trip_time(1, Duration::from_millis(300))
        .unwrap();
    rig.producer.send(BaseRecord::to("exec_result").key("k").payload(&br#"{"fill_id":"f3","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100.1,"ts":"2025-08-11T00:00:02Z"}"#[..])).unwrap();
    rig.producer.flush(Duration::from_secs(5)).unwrap();
    while guard.next_offset("exec_result", 0).unwrap_or(0) < 3 {
        guard.turn(Duration::from_millis(1));
    }
    rig.cluster.broker_down(1).unwrap();
    let down_until = Instant::now() + Duration::from_secs(5); // longer than message.timeout.ms (3 s)
    while Instant::now() < down_until {
        guard.turn(Duration::from_millis(10));
    }
    rig.cluster.broker_up(1).unwrap();
    rig.cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .unwrap();
    rig.settle(&mut guard);
    let commands = rig.commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0].trigger, "f3");
    assert!(
        status.read().metrics.delivery_failures > 0,
        "an outage longer than message.timeout.ms is counted"
    );
    let degraded = rig
        .read_topic("risk_event")
        .into_iter()
        .filter(|(_, p, _)| String::from_utf8_lossy(p).contains("guard_degraded"))
        .count();
    assert!(
        degraded >= 1,
        "the failed delivery is raised as a risk event"
    );
}

fn breach(id: &str, secs: u32) -> Vec<u8> {
    format!(r#"{{"fill_id":"{id}","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100.1,"ts":"2025-08-11T00:00:{secs:02}Z"}}"#).into_bytes()
}

#[test]
fn produce_errors_delay_the_pause_but_do_not_lose_it() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mut rig = Rig::new("produce-errors");
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f1", 0));
    rig.feed(&mut guard, "exec_result", &breach("f2", 1));
    rig.settle(&mut guard);
    // The next produce requests fail with retriable and fatal-for-the-batch errors.
    rig.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    rig.feed(&mut guard, "exec_result", &breach("f3", 2));
    rig.settle(&mut guard);
    let commands = rig.commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0].trigger, "f3");
    assert_eq!(guard.outbox_len(), 0);
}

#[test]
fn state_shows_an_input_applied_after_a_wait_in_a_turn_that_fetched_nothing() {
    // An aggregator holds an operator's order for the workers' progress (none comes
    // here), then applies it in a later turn that fetches nothing: `/state` must show
    // the order's offset all the same (operators and the tests wait on it).
    let mut rig = Rig::new("late-apply");
    rig.config.role = guard::engine::Role::Aggregator;
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.producer
        .send(BaseRecord::to("ops_command").key("k").payload(
            br#"{"command_id":"o1","action":"pause","scope":{"kind":"global"},"operator":"a","ts":"2025-08-11T00:00:00Z"}"#,
        ))
        .unwrap();
    rig.producer.flush(Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while guard.next_offset("ops_command", 0).unwrap_or(0) < 1 {
        assert!(
            Instant::now() < deadline,
            "the aggregator did not apply the order"
        );
        guard.turn(Duration::from_millis(5));
    }
    // One more idle turn, as the live loop would run.
    guard.turn(Duration::from_millis(5));
    assert_eq!(
        status.read().offsets.get("ops_command/0").copied(),
        Some(1),
        "the status shows the applied order's offset"
    );
}

#[test]
fn added_round_trip_time_slows_but_does_not_break_the_guard() {
    let mut rig = Rig::new("rtt");
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.cluster
        .broker_round_trip_time(1, Duration::from_millis(200))
        .unwrap();
    for (i, id) in ["f1", "f2", "f3"].iter().enumerate() {
        rig.feed(&mut guard, "exec_result", &breach(id, i as u32));
    }
    rig.settle(&mut guard);
    rig.cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .unwrap();
    let commands = rig.commands();
    assert_eq!(commands.len(), 1);
    // Both decisions (command and risk event) were acknowledged and measured.
    assert_eq!(status.read().metrics.decision_latency.len(), 2);
    assert_eq!(status.read().metrics.delivery_failures, 0);
}

#[test]
fn fetch_and_offset_commit_errors_and_a_leader_change_do_not_stop_the_guard() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mut rig = Rig::on(MockCluster::new(2).unwrap(), "faults", 2, |_, _| {});
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f1", 0));
    // Fetches fail for a while, offset commits fail, the partition leader moves.
    rig.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    rig.cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 5],
    );
    rig.feed(&mut guard, "exec_result", &breach("f2", 1));
    rig.cluster
        .partition_leader("exec_result", 0, Some(2))
        .unwrap();
    rig.cluster
        .partition_leader("guard_command", 0, Some(2))
        .unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f3", 2));
    rig.settle(&mut guard);
    let commands = rig.commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0].trigger, "f3");
    assert!(status.read().metrics.checkpoints > 0);
}

/// A store whose disk fills up when told to.
#[derive(Clone, Default)]
struct FillingStore {
    inner: MemStore,
    full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Store for FillingStore {
    fn load(&self) -> Result<Option<guard::live::store::Restored>, guard::live::store::StoreError> {
        self.inner.load()
    }
    fn save(
        &mut self,
        checkpoint: &guard::live::store::Checkpoint,
        new_seen: &guard::live::store::SeenBlocks,
    ) -> Result<(), guard::live::store::StoreError> {
        if self.full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(guard::live::store::StoreError::Corrupt(
                "No space left on device".into(),
            ));
        }
        self.inner.save(checkpoint, new_seen)
    }
}

#[test]
fn a_guard_that_cannot_persist_fails_closed_with_a_global_pause() {
    let mut rig = Rig::new("fail-closed");
    rig.config.fail_closed_after = Duration::from_millis(300);
    let store = FillingStore::default();
    let full = store.full.clone();
    let status = StatusHandle::default();
    let mut guard = LiveGuard::start(rig.config.clone(), store, status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f1", 0));
    rig.settle(&mut guard);
    full.store(true, std::sync::atomic::Ordering::Relaxed);
    rig.feed(&mut guard, "exec_result", &breach("f2", 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while (rig.commands().is_empty()
        || !guard
            .engine()
            .state()
            .scopes
            .is_paused(&guard::message::Scope::Global))
        && Instant::now() < deadline
    {
        guard.turn(Duration::from_millis(20));
        guard.checkpoint();
    }
    let mut commands = rig.commands();
    // Published at once, and again by the engine when it reads the order back: the
    // same id, a harmless duplicate.
    commands.dedup_by(|a, b| a.command_id == b.command_id);
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(
        (commands[0].action, &commands[0].scope),
        (
            guard::message::Action::Pause,
            &guard::message::Scope::Global
        )
    );
    assert!(
        commands[0].trigger.starts_with("guard-degraded-"),
        "{}",
        commands[0].trigger
    );
    assert!(
        commands[0].reason.contains("guard_degraded"),
        "{}",
        commands[0].reason
    );
    assert!(status.read().degraded);
    // The disk recovers: readiness comes back, the pause stays until an operator resumes.
    full.store(false, std::sync::atomic::Ordering::Relaxed);
    // The checkpoint is written once its order record is on the broker.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status.read().degraded && Instant::now() < deadline {
        guard.checkpoint();
        guard.turn(Duration::from_millis(5));
    }
    assert!(!status.read().degraded);
    assert!(guard
        .engine()
        .state()
        .scopes
        .is_paused(&guard::message::Scope::Global));
}

#[test]
fn a_guard_idle_longer_than_the_fail_closed_limit_does_not_fail_closed_on_its_next_input() {
    // Failing closed is for changes that cannot reach the store, not for time spent
    // with nothing to write: after a quiet spell the next checkpoint is on its way
    // for a few milliseconds and must not count the quiet spell as unpersisted.
    let mut rig = Rig::new("idle");
    // Above the input watch's probe interval (1 s), so idle inputs stay readable.
    rig.config.fail_closed_after = Duration::from_secs(2);
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f1", 0));
    rig.settle(&mut guard);
    let quiet = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < quiet {
        guard.turn(Duration::from_millis(20));
    }
    let checkpoints = status.read().metrics.checkpoints;
    rig.feed(&mut guard, "exec_result", &breach("f2", 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while status.read().metrics.checkpoints == checkpoints && Instant::now() < deadline {
        guard.turn(Duration::from_millis(1));
    }
    assert!(
        status.read().metrics.checkpoints > checkpoints,
        "the next checkpoint was written"
    );
    assert!(
        !status.read().degraded,
        "a quiet spell is not a failure to persist"
    );
    assert!(rig.commands().is_empty(), "no pause: {:?}", rig.commands());
}

#[test]
fn readable_idle_inputs_do_not_fail_closed_under_a_short_limit() {
    // A limit shorter than a second: the inputs must be probed within it, or quiet
    // but readable inputs look unreadable between two probes.
    let mut rig = Rig::new("short-limit");
    rig.config.fail_closed_after = Duration::from_millis(400);
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f1", 0));
    rig.settle(&mut guard);
    let quiet = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < quiet {
        guard.turn(Duration::from_millis(20));
    }
    assert!(
        !status.read().degraded,
        "quiet inputs are not unreadable ones"
    );
    assert!(rig.commands().is_empty(), "no pause: {:?}", rig.commands());
}

#[test]
fn a_guard_that_cannot_read_its_inputs_fails_closed_with_a_global_pause() {
    // Two brokers: the inputs' leader (1) goes down, the command topic's (2) stays up.
    let mut rig = Rig::on(
        MockCluster::new(2).unwrap(),
        "inputs",
        1,
        |cluster, config| {
            config.fail_closed_after = Duration::from_secs(2);
            for topic in config.topics.all() {
                let leader = if config.topics.inputs().contains(&topic) {
                    1
                } else {
                    2
                };
                cluster.partition_leader(&topic, 0, Some(leader)).unwrap();
            }
            for group in [config.group_id.clone(), "reader".to_owned()] {
                cluster
                    .coordinator(rdkafka::mocking::MockCoordinator::Group(group), 2)
                    .unwrap();
            }
        },
    );
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    rig.feed(&mut guard, "exec_result", &breach("f1", 0));
    rig.settle(&mut guard);
    // Quiet inputs are not unreadable ones: nothing happens while the leader answers.
    let quiet_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet_until {
        guard.turn(Duration::from_millis(20));
    }
    assert!(rig.commands().is_empty());
    assert!(!status.read().degraded);

    rig.cluster.broker_down(1).unwrap();
    let t0 = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.commands().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no global pause while the inputs were unreadable"
        );
        guard.turn(Duration::from_millis(50));
    }
    let commands = rig.commands();
    assert_eq!(
        (commands[0].action, &commands[0].scope),
        (
            guard::message::Action::Pause,
            &guard::message::Scope::Global
        )
    );
    assert!(
        commands[0].reason.contains("guard_degraded"),
        "{}",
        commands[0].reason
    );
    assert!(status.read().degraded, "/readyz reports the guard degraded");

    // The leader is back: the guard reads its own order back and its state agrees
    // with the pause it published; the pause stays until an operator resumes.
    eprintln!("failed closed after {:?}", t0.elapsed());
    rig.cluster.broker_up(1).unwrap();
    let t0 = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !guard
        .engine()
        .state()
        .scopes
        .is_paused(&guard::message::Scope::Global)
        || status.read().degraded
    {
        assert!(Instant::now() < deadline, "the guard did not recover");
        guard.turn(Duration::from_millis(20));
    }
    eprintln!("recovered after {:?}", t0.elapsed());
    rig.settle(&mut guard);
    let mut ids: Vec<String> = rig.commands().into_iter().map(|c| c.command_id).collect();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "one pause, published again only with the same id: {ids:?}"
    );
}

/// A tmpfs of `size` mounted on `dir` for the life of the value (needs root).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// Fills the filesystem of `dir` until the kernel says it is full.
fn fill_up(dir: &std::path::Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                break;
            }
        }
    }
    let _ = file.sync_all();
    path
}

fn committed_offset(rig: &Rig, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", rig.cluster.bootstrap_servers())
        .set("group.id", &rig.config.group_id)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    committed
        .find_partition(topic, 0)
        .and_then(|e| e.offset().to_raw())
        .unwrap_or(-1)
}

#[test]
fn a_full_disk_stops_the_commits_fails_closed_and_loses_nothing() {
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        eprintln!("SKIPPED: mounting a size-limited tmpfs needs root");
        return;
    }
    let mut rig = Rig::new("full-disk");
    rig.config.fail_closed_after = Duration::from_millis(500);
    let mount = rig.config.state_dir.with_extension("tmpfs");
    let _tmpfs = Tmpfs::mount(&mount, "16m").expect("mount a 16 MiB tmpfs");
    rig.config.state_dir = mount.join("state");
    let file = "tests/golden/runbook_day/input.jsonl";
    let all = messages(file);
    let half = all.len() / 2;
    let status = StatusHandle::default();
    let persisted_before;
    {
        let store = SledStore::open(&rig.config.state_dir).unwrap();
        let mut guard = LiveGuard::start(rig.config.clone(), store, status.clone()).unwrap();
        for (topic, payload) in &all[..half] {
            rig.feed(&mut guard, topic, payload);
        }
        rig.settle(&mut guard);
        persisted_before = guard.next_offset("exec_result", 0).unwrap();
        let failures_before = status.read().metrics.checkpoint_failures;

        // The disk fills up; the rest of the day arrives.
        let filler = fill_up(&mount);
        for (topic, payload) in &all[half..] {
            rig.feed(&mut guard, topic, payload);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !status.read().degraded {
            assert!(Instant::now() < deadline, "the guard did not fail closed");
            guard.turn(Duration::from_millis(20));
            guard.checkpoint();
        }
        // The pause goes out once the order record of the inputs before it is on the
        // broker: a few turns.
        for _ in 0..20 {
            guard.turn(Duration::from_millis(5));
        }
        assert!(status.read().metrics.checkpoint_failures > failures_before);
        let applied = guard.next_offset("exec_result", 0).unwrap();
        assert!(applied > persisted_before);
        // Input offsets are never committed past the state that could not be saved.
        let committed = committed_offset(&rig, "exec_result");
        assert!(
            committed <= persisted_before,
            "committed {committed} past the persisted {persisted_before}"
        );
        let pause = rig
            .commands()
            .into_iter()
            .find(|c| c.trigger.starts_with("guard-degraded-"))
            .expect("a global pause for the full disk");
        assert_eq!(pause.scope, guard::message::Scope::Global);

        // Space comes back: the next checkpoint succeeds and commits catch up.
        std::fs::remove_file(filler).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while status.read().degraded {
            assert!(Instant::now() < deadline, "the guard did not recover");
            guard.turn(Duration::from_millis(20));
            guard.checkpoint();
        }
        rig.settle(&mut guard);
        // Dropped without a clean stop, as if killed.
    }
    // A restart from the disk that was full has every message, once.
    let store = SledStore::open(&rig.config.state_dir).unwrap();
    let mut guard = LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
    for _ in 0..50 {
        guard.turn(Duration::from_millis(10));
    }
    let (_, replay_engine) = replay_commands(file);
    // The replay has no full disk: apply the guard's own pause order to it as well.
    let own_order = rig
        .read_topic(&rig.config.topics.ops_command)
        .into_iter()
        .filter_map(|(_, p, _)| decode_envelope(format!(r#"{{"stream":"ops_command","event":{}}}"#, String::from_utf8_lossy(&p)).as_bytes()).ok())
        .filter(|input| matches!(input, guard::message::Input::Ops(c) if c.command_id.starts_with("guard-degraded-")))
        .collect::<Vec<_>>();
    assert_eq!(
        own_order.len(),
        1,
        "one pause order, however often the disk failed"
    );
    for (topic, next) in &rig.sent {
        // ops_command also holds the guard's own order.
        assert!(
            guard.next_offset(topic, 0) >= Some(*next),
            "{topic} read to the end"
        );
    }
    assert!(guard
        .engine()
        .state()
        .scopes
        .is_paused(&guard::message::Scope::Global));
    assert_eq!(
        guard.engine().state().seen.len(),
        replay_engine.state().seen.len() + 1,
        "every message applied once, and the guard's own pause order"
    );
}

#[test]
fn an_aggregator_sends_a_trip_naming_no_rule_of_the_guard_to_the_dead_letter_topic() {
    let mut rig = Rig::new("unknown-trip");
    rig.config.role = guard::engine::Role::Aggregator;
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    let trip = |kind: &str| {
        let event = guard::message::RiskEvent {
            event_id: format!("evt-{kind}"),
            source: "guard".into(),
            kind: kind.into(),
            severity: guard::message::Severity::Critical,
            scope: guard::message::Scope::Global,
            action: None,
            reason: Some("5 losing fills in a row (strategy beta)".into()),
            evidence: Some(vec!["f5".into()]),
            ts: guard::time::Timestamp::parse("2025-08-11T00:00:00Z").unwrap(),
        };
        let fact = guard::engine::TripFact {
            trigger: "f5".into(),
            event,
        };
        serde_json::to_vec(&fact).unwrap()
    };
    let facts = rig.config.topics.facts.clone();
    // A trip of a rule the guard does not have, then one of the losing streak.
    rig.feed(&mut guard, &facts, &trip("drawdown"));
    rig.feed(&mut guard, &facts, &trip("losing_streak"));
    rig.settle(&mut guard);
    let dead = rig.read_topic("guard_dlq");
    assert_eq!(dead.len(), 1, "only the unknown rule's trip is refused");
    assert!(
        dead[0].2["reason"].contains("\"drawdown\", which is no rule of this guard"),
        "{:?}",
        dead[0].2
    );
    let commands = rig.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].rule, guard::message::Rule::LosingStreak);
}

/// CONTRACT §2.10 live: with `[acks]` in the policy the guard reads `guard_ack`, and
/// a command a gateway did not acknowledge in time is escalated — the same decisions
/// as replay of the same messages.
#[test]
fn an_unacknowledged_command_is_escalated_as_replay_escalates_it() {
    let mut rig = Rig::new("acks");
    rig.config.policy = guard::policy::Policy::from_toml(
        "maintenance = []\n[acks]\ngateways = [\"gw-a\"]\ntimeout = \"2s\"",
    )
    .unwrap();
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    let mut lines = Vec::new();
    let mut feed = |rig: &mut Rig, guard: &mut LiveGuard<MemStore>, topic: &str, event: String| {
        rig.feed(guard, topic, event.as_bytes());
        lines.push(format!(r#"{{"stream":"{topic}","event":{event}}}"#));
    };
    let pause = r#"{"command_id":"o1","action":"pause","scope":{"kind":"global"},"operator":"a","ts":"2025-08-11T00:00:00Z"}"#;
    feed(&mut rig, &mut guard, "ops_command", pause.into());
    rig.settle(&mut guard);
    let paused: GuardCommand =
        serde_json::from_slice(&rig.read_topic("guard_command")[0].1).unwrap();
    let ack = format!(
        r#"{{"command_id":"{}","gateway":"gw-a","ts":"2025-08-11T00:00:01Z"}}"#,
        paused.command_id
    );
    feed(&mut rig, &mut guard, "guard_ack", ack);
    let resume = r#"{"command_id":"o2","action":"resume","scope":{"kind":"global"},"operator":"a","ts":"2025-08-11T00:00:01.500Z"}"#;
    feed(&mut rig, &mut guard, "ops_command", resume.into());
    let late = r#"{"fill_id":"f1","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2025-08-11T00:00:10Z"}"#;
    feed(&mut rig, &mut guard, "exec_result", late.into());
    rig.settle(&mut guard);
    let events: Vec<serde_json::Value> = rig
        .read_topic("risk_event")
        .iter()
        .map(|(_, payload, _)| serde_json::from_slice(payload).unwrap())
        .collect();
    let escalated: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "command_unacknowledged")
        .collect();
    let commands: Vec<GuardCommand> = rig
        .read_topic("guard_command")
        .iter()
        .map(|(_, payload, _)| serde_json::from_slice(payload).unwrap())
        .collect();
    assert_eq!(commands.len(), 2);
    assert_eq!(escalated.len(), 1, "{events:?}");
    assert_eq!(escalated[0]["evidence"][0], commands[1].command_id.as_str());
    assert_eq!(escalated[0]["severity"], "warning");
    // Replay of the same messages decides the same.
    let engine = Engine::new(rig.config.policy.clone(), Default::default());
    let (decided, _, _) = guard::replay::run(engine, &lines);
    let ids: Vec<&str> = decided.iter().map(|d| d.id()).collect();
    let mut published: Vec<String> = commands.iter().map(|c| c.command_id.clone()).collect();
    published.extend(
        events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned()),
    );
    let mut expected: Vec<&str> = ids.clone();
    expected.sort_unstable();
    published.sort_unstable();
    assert_eq!(published, expected);
}

/// CONTRACT version 2 live: the golden version-2 stream (reduce-only trips, warnings,
/// the environment filter, an operator-resumed maintenance window, operators'
/// reduce-only) fed message by message to the live guard under its policy publishes
/// what replay decides, in the same order, ids included.
#[test]
fn a_version_2_stream_is_decided_live_as_replay_decides_it() {
    let dir = root().join("tests/golden/v2_modes_warnings_env");
    let policy = guard::policy::Policy::from_toml(
        &std::fs::read_to_string(dir.join("policy.toml")).unwrap(),
    )
    .unwrap();
    let mut rig = Rig::new("v2");
    rig.config.policy = policy.clone();
    let mut guard = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    )
    .unwrap();
    let lines: Vec<String> = std::fs::read_to_string(dir.join("input.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for (topic, payload) in messages("tests/golden/v2_modes_warnings_env/input.jsonl") {
        rig.feed(&mut guard, &topic, &payload);
    }
    rig.settle(&mut guard);
    let (decided, _, _) = guard::replay::run(Engine::new(policy, Default::default()), &lines);
    for (topic, stream) in [
        ("guard_command", "guard_command"),
        ("risk_event", "risk_event"),
    ] {
        let live: Vec<String> = rig
            .read_topic(topic)
            .iter()
            .map(|(_, payload, _)| serde_json::from_slice::<serde_json::Value>(payload).unwrap())
            // The risk_event topic carries Noctus's events too: the guard's are its own.
            .filter(|v| v.get("source").is_none_or(|s| s == "guard"))
            .map(|v| {
                let id = v.get("command_id").or(v.get("event_id")).unwrap();
                id.as_str().unwrap().to_owned()
            })
            .collect();
        let replayed: Vec<String> = decided
            .iter()
            .filter(|d| serde_json::to_value(d).unwrap()["stream"] == stream)
            .map(|d| d.id().to_owned())
            .collect();
        assert!(!replayed.is_empty());
        assert_eq!(live, replayed, "{topic}");
    }
}

/// On the wall clock an acknowledgement's timeout is decided by a clock tick, not by
/// a message; its risk event is counted in the metrics all the same
/// (`guard_risk_events_total{kind="command_unacknowledged"}`, which the alert
/// `GuardCommandUnacknowledged` watches).
#[test]
fn decisions_of_a_clock_tick_are_counted_in_the_metrics() {
    let mut rig = Rig::new("tick-metrics");
    rig.config.clock = ClockMode::External;
    rig.config.policy = guard::policy::Policy::from_toml(
        "maintenance = []\n[acks]\ngateways = [\"gw-a\"]\ntimeout = \"1s\"",
    )
    .unwrap();
    let status = StatusHandle::default();
    let mut guard =
        LiveGuard::start(rig.config.clone(), MemStore::default(), status.clone()).unwrap();
    let pause = format!(
        r#"{{"command_id":"o1","action":"pause","scope":{{"kind":"global"}},"operator":"a","ts":"{}"}}"#,
        guard::time::Timestamp::now()
    );
    rig.feed(&mut guard, "ops_command", pause.as_bytes());
    let counted = |status: &StatusHandle| {
        status
            .read()
            .metrics
            .risk_events
            .get("command_unacknowledged")
            .copied()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while counted(&status) == 0 && Instant::now() < deadline {
        guard.turn(Duration::from_millis(5));
    }
    rig.settle(&mut guard);
    let escalations = rig
        .read_topic("risk_event")
        .iter()
        .filter(|(_, payload, _)| {
            serde_json::from_slice::<serde_json::Value>(payload).unwrap()["kind"]
                == "command_unacknowledged"
        })
        .count();
    assert_eq!(escalations, 1, "the timeout was escalated once");
    assert_eq!(counted(&status), 1, "and counted");
}

/// The order records on `guard_state`, in topic order: (life, number, deleted).
fn order_records(rig: &Rig) -> Vec<(String, u64, bool)> {
    let prefix = format!("{}/order/", rig.config.group_id);
    rig.read_topic(&rig.config.topics.state)
        .into_iter()
        .filter_map(|(key, payload, _)| {
            let rest = key?.strip_prefix(&prefix)?.to_owned();
            let (life, n) = rest.rsplit_once('-')?;
            Some((life.to_owned(), n.parse().ok()?, payload.is_empty()))
        })
        .collect()
}

/// Feeds `lines` in batches, each followed by a changelog cut (published at most once
/// a second), so the cuts stand at event times far enough apart.
fn feed_with_cuts<S: Store>(rig: &mut Rig, guard: &mut LiveGuard<S>, lines: &[String]) {
    for batch in lines.chunks(20) {
        for line in batch {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let topic = value["stream"].as_str().unwrap().to_owned();
            let payload = serde_json::to_vec(&value["event"]).unwrap();
            rig.feed(guard, &topic, &payload);
        }
        rig.settle(guard);
        let until = Instant::now() + Duration::from_millis(1_300);
        while Instant::now() < until {
            guard.turn(Duration::from_millis(20));
        }
    }
}

/// After a first life on `rig`: some order records were deleted, the oldest first and
/// each once, the newest kept, and none at or after the stored checkpoint's record.
/// Returns the first life's name.
fn assert_the_oldest_order_records_deleted(rig: &Rig) -> String {
    let records = order_records(rig);
    let deleted: Vec<u64> = records.iter().filter(|r| r.2).map(|r| r.1).collect();
    assert!(
        !deleted.is_empty(),
        "no order record was deleted: {records:?}"
    );
    assert_eq!(
        deleted,
        (1..=deleted.len() as u64).collect::<Vec<_>>(),
        "the oldest records go first, each once"
    );
    let written = records.iter().filter(|r| !r.2).count() as u64;
    assert!(
        (deleted.len() as u64) < written,
        "the newest records stay (the cuts within the horizon need them)"
    );
    // The stored checkpoint's record and every record after it are kept.
    let (_, from) = stored_journal_from(rig);
    let state = rig.read_topic(&rig.config.topics.state);
    let (key, _, _) = &state[usize::try_from(from).unwrap()];
    let (_, cut) = key.as_deref().unwrap().rsplit_once('-').unwrap();
    let cut: u64 = cut.parse().unwrap();
    assert!(
        deleted.iter().all(|n| *n < cut),
        "record {cut} (the checkpoint's) or a later one was deleted: {deleted:?}"
    );
    records[0].0.clone()
}

/// The guard published replay's commands for `lines` under the rig's policy, and
/// holds replay's state.
fn assert_decided_as_replay<S: Store>(rig: &Rig, guard: &LiveGuard<S>, lines: &[String]) {
    let (decisions, replay_engine) = common::replay_with(rig.config.policy.clone(), lines);
    let expected: Vec<String> = decisions
        .iter()
        .filter_map(|d| match d {
            guard::message::Decision::GuardCommand(c) => Some(judged(c)),
            guard::message::Decision::RiskEvent(_) => None,
        })
        .collect();
    assert_eq!(
        rig.commands().iter().map(judged).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(guard.engine().state(), replay_engine.state());
}

/// An active guard deletes (tombstones) the order records no published cut within
/// the state horizon needs: its own life's below the record of the newest cut a
/// horizon behind, and, after a restart, the records of the life before. What the
/// restored checkpoint's chain needs is kept, and the restart applies nothing twice.
#[test]
fn order_records_a_horizon_behind_the_newest_cut_are_deleted() {
    let mut rig = Rig::new("trim");
    rig.config.policy.state.horizon = guard::time::Span::from_secs(60);
    // Messages 20 s apart: a batch of 20 spans over six minutes, many horizons.
    let lines = common::stream(120, 100);
    let (first, second) = lines.split_at(60);
    let start = start_with_changelog;
    {
        let mut guard = start(&rig);
        feed_with_cuts(&mut rig, &mut guard, first);
        guard.shutdown();
    }
    let first_life = assert_the_oldest_order_records_deleted(&rig);
    let mut guard = start(&rig);
    feed_with_cuts(&mut rig, &mut guard, second);
    assert_decided_as_replay(&rig, &guard, &lines);
    guard.shutdown();
    assert_all_deleted(&rig, &first_life);
}

/// Every order record of `life` on the state topic was deleted.
fn assert_all_deleted(rig: &Rig, life: &str) {
    let mut left = BTreeMap::new();
    for (of, n, gone) in order_records(rig) {
        if of == life {
            left.insert(n, !gone);
        }
    }
    let kept: Vec<u64> = left
        .into_iter()
        .filter(|(_, kept)| *kept)
        .map(|(n, _)| n)
        .collect();
    assert!(
        kept.is_empty(),
        "the next life deletes the records of the one before: {kept:?} kept"
    );
}

/// Starts a guard on `rig` with a changelog (standby read, then active), as `guard run`.
fn start_with_changelog(rig: &Rig) -> LiveGuard<SledStore> {
    use guard::live::changelog::Changelog;
    let mut changelog = Changelog::open(&rig.config).unwrap();
    changelog.catch_up(Duration::from_millis(300));
    let writer = changelog.activate().unwrap();
    let store = SledStore::open(&rig.config.state_dir).unwrap();
    LiveGuard::start_from(
        rig.config.clone(),
        store,
        StatusHandle::default(),
        None,
        Some(writer),
    )
    .unwrap()
}

/// Starts a guard on `rig` without a changelog (a scale-out worker's way).
fn start_alone(rig: &Rig) -> LiveGuard<SledStore> {
    let store = SledStore::open(&rig.config.state_dir).unwrap();
    LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap()
}

/// A first life over two horizons of event time, then a second over less than one:
/// the second deletes records of the first, going on from the cuts the first left
/// (in its checkpoint or its changelog snapshot). Without them it would delete
/// nothing before it had lived a horizon itself, and a guard restarted more often
/// than that would never delete.
fn a_life_shorter_than_the_horizon_deletes(name: &str, start: fn(&Rig) -> LiveGuard<SledStore>) {
    let mut rig = Rig::new(name);
    // Messages 20 s apart: 80 span 1,600 s, the last 20 span 400 s.
    rig.config.policy.state.horizon = guard::time::Span::from_secs(900);
    let lines = common::stream(100, 100);
    let (first, second) = lines.split_at(80);
    {
        let mut guard = start(&rig);
        feed_with_cuts(&mut rig, &mut guard, first);
        guard.shutdown();
    }
    let gone = |rig: &Rig| -> Vec<u64> {
        let records = order_records(rig);
        let first_life = &records[0].0;
        records
            .iter()
            .filter(|(life, _, deleted)| life == first_life && *deleted)
            .map(|r| r.1)
            .collect()
    };
    let after_first = gone(&rig);
    let mut guard = start(&rig);
    feed_with_cuts(&mut rig, &mut guard, second);
    assert_decided_as_replay(&rig, &guard, &lines);
    guard.shutdown();
    drop(guard);
    assert_chain_kept(&rig);
    let after_second = gone(&rig);
    assert!(
        after_second.len() > after_first.len(),
        "the second life deleted none of the first's records: {after_first:?} deleted by the first, {after_second:?} in all"
    );
    let distinct: std::collections::BTreeSet<u64> = after_second.iter().copied().collect();
    assert_eq!(distinct.len(), after_second.len(), "each deleted once");
}

/// No order record at or after where the stored checkpoint's chain begins on the
/// state topic was deleted (what a restart from it reads).
fn assert_chain_kept(rig: &Rig) {
    let (_, from) = stored_journal_from(rig);
    let state = rig.read_topic(&rig.config.topics.state);
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    for (offset, (key, payload, _)) in state.iter().enumerate() {
        let Some(key) = key.as_deref().filter(|k| k.contains("/order/")) else {
            continue;
        };
        if payload.is_empty() {
            let at = written.get(key).copied();
            assert!(
                at.is_some_and(|at| (at as i64) < from),
                "{key} (written at {at:?}) was deleted, though the stored checkpoint's chain begins at {from}"
            );
        } else {
            written.entry(key.to_owned()).or_insert(offset);
        }
    }
}

#[test]
fn a_restarted_guard_goes_on_deleting_from_the_cuts_of_its_changelog() {
    a_life_shorter_than_the_horizon_deletes("trail-changelog", start_with_changelog);
}

#[test]
fn a_restarted_guard_without_a_changelog_goes_on_deleting_from_its_checkpoints_cuts() {
    a_life_shorter_than_the_horizon_deletes("trail-local", start_alone);
}

/// A guard whose input topic is missing does not start, and says which topic: the
/// partitions of every topic it reads come from one metadata request.
#[test]
fn a_missing_input_topic_stops_the_start_and_names_it() {
    let mut rig = Rig::new("missing");
    rig.config.topics.ops_command = "absent-ops".into();
    let started = LiveGuard::start(
        rig.config.clone(),
        MemStore::default(),
        StatusHandle::default(),
    );
    let error = started
        .err()
        .expect("a guard without its input topic started");
    assert!(error.to_string().contains("\"absent-ops\""), "{error}");
}

/// A guard without a changelog (a scale-out worker, the aggregator) deletes its own
/// order records too, once no local checkpoint within the state horizon needs them,
/// a restart after that applies nothing twice, and the next life deletes what the
/// one before left.
#[test]
fn without_a_changelog_the_guard_deletes_its_order_records_itself() {
    let mut rig = Rig::new("trim-local");
    rig.config.policy.state.horizon = guard::time::Span::from_secs(60);
    let lines = common::stream(120, 100);
    let (first, second) = lines.split_at(60);
    {
        let store = SledStore::open(&rig.config.state_dir).unwrap();
        let mut guard =
            LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
        feed_with_cuts(&mut rig, &mut guard, first);
        guard.shutdown();
    }
    let first_life = assert_the_oldest_order_records_deleted(&rig);
    let store = SledStore::open(&rig.config.state_dir).unwrap();
    let mut guard = LiveGuard::start(rig.config.clone(), store, StatusHandle::default()).unwrap();
    feed_with_cuts(&mut rig, &mut guard, second);
    assert_decided_as_replay(&rig, &guard, &lines);
    guard.shutdown();
    // Those before its checkpoint it learnt of from the checkpoint, those after it
    // from the journal it read back.
    assert_all_deleted(&rig, &first_life);
}
