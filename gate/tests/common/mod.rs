//! A rig on librdkafka's mock cluster (the real Kafka protocol over loopback, in
//! process): the guard's topics, a producer standing in for the guard, a thread that
//! beats like an active guard or a standby, and a reader of `guard_ack`. Waits are
//! for conditions, with generous deadlines; nothing asserts on timing.

#![allow(dead_code)] // each test file uses its own share

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gate::follow::{FollowConfig, Topics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long any condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `done` holds, or fails naming `what`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub struct Rig {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub topics: Topics,
    producer: BaseProducer,
}

impl Rig {
    /// A cluster with the guard's topics: pause state and commands on 3 partitions.
    pub fn new() -> Rig {
        let cluster = MockCluster::new(1).expect("a mock cluster");
        let topics = Topics::with_prefix("t.");
        cluster.create_topic(&topics.pause_state, 3, 1).unwrap();
        cluster.create_topic(&topics.command, 3, 1).unwrap();
        cluster.create_topic(&topics.heartbeat, 1, 1).unwrap();
        cluster.create_topic(&topics.ack, 1, 1).unwrap();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "20")
            .create()
            .expect("a producer");
        Rig {
            cluster,
            topics,
            producer,
        }
    }

    /// The follower's settings for this cluster.
    pub fn follow_config(&self) -> FollowConfig {
        let mut config = FollowConfig::new(self.cluster.bootstrap_servers());
        config.topics = self.topics.clone();
        config
    }

    /// Queues one message keyed `key` (not yet flushed: messages queued together
    /// go out as multi-message batches).
    pub fn queue(&self, topic: &str, key: &str, payload: &str) {
        self.producer
            .send(BaseRecord::to(topic).key(key).payload(payload))
            .expect("queued");
    }

    /// Sends what is queued and waits for the broker to have it.
    pub fn flush(&self) {
        self.producer
            .flush(Duration::from_secs(10))
            .expect("flushed");
    }

    /// A pause-state record, sent.
    pub fn record(&self, id: &str, scope: &str, mode: &str, reasons: &[&str]) {
        self.queue(
            &self.topics.pause_state,
            &key(scope),
            &record(id, scope, mode, reasons),
        );
        self.flush();
    }

    /// A guard command, sent.
    pub fn command(&self, id: &str, action: &str, scope: &str, rule: &str) {
        self.queue(
            &self.topics.command,
            &key(scope),
            &command(id, action, scope, rule),
        );
        self.flush();
    }

    /// Every `guard_ack` so far as (key, payload), waiting until there are `n`.
    pub fn acks(&self, n: usize) -> Vec<(String, serde_json::Value)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("group.id", "ack-reader")
            .set("fetch.wait.max.ms", "5")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topics.ack, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut acks = Vec::new();
        wait_for(&format!("{n} acks"), || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                acks.push((key, value));
            }
            acks.len() >= n
        });
        acks
    }

    /// A thread that sends heartbeats every 100 ms, as set by [`Beats::set`].
    pub fn beats(&self) -> Beats {
        let how = Arc::new(AtomicU8::new(Beats::ACTIVE));
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("linger.ms", "0")
            .create()
            .unwrap();
        let topic = self.topics.heartbeat.clone();
        let shared = how.clone();
        let thread = std::thread::spawn(move || loop {
            let active = match shared.load(Ordering::Relaxed) {
                Beats::ACTIVE => true,
                Beats::STANDBY => false,
                Beats::SILENT => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                _ => return,
            };
            let beat = format!(
                r#"{{"instance":"g1","ts":"2025-08-11T00:09:30.000Z","active":{active},"policy_version":"p","paused_scopes":0}}"#
            );
            let _ = producer.send(BaseRecord::to(&topic).key("g1").payload(&beat));
            let _ = producer.flush(Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(100));
        });
        Beats {
            how,
            thread: Some(thread),
        }
    }
}

/// The heartbeat thread: an active guard, a standby, or silence.
pub struct Beats {
    how: Arc<AtomicU8>,
    thread: Option<JoinHandle<()>>,
}

impl Beats {
    pub const ACTIVE: u8 = 0;
    pub const STANDBY: u8 = 1;
    pub const SILENT: u8 = 2;
    const STOP: u8 = 3;

    pub fn set(&self, how: u8) {
        self.how.store(how, Ordering::Relaxed);
    }
}

impl Drop for Beats {
    fn drop(&mut self) {
        self.how.store(Beats::STOP, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The Kafka key of a scope written `global` or `alpha` (a strategy).
pub fn key(scope: &str) -> String {
    if scope == "global" {
        scope.to_owned()
    } else {
        format!("strategy:{scope}")
    }
}

fn scope_json(scope: &str) -> String {
    if scope == "global" {
        r#"{"kind":"global"}"#.to_owned()
    } else {
        format!(r#"{{"kind":"strategy","strategy_id":"{scope}"}}"#)
    }
}

pub fn record(id: &str, scope: &str, mode: &str, reasons: &[&str]) -> String {
    let reasons = serde_json::to_string(reasons).unwrap();
    format!(
        r#"{{"scope":{},"mode":"{mode}","reasons":{reasons},"since":"2025-08-11T00:09:30.000Z","command_id":"{id}","policy_version":"p-83158d3f4bdf"}}"#,
        scope_json(scope)
    )
}

pub fn command(id: &str, action: &str, scope: &str, rule: &str) -> String {
    format!(
        r#"{{"command_id":"{id}","action":"{action}","scope":{},"rule":"{rule}","trigger":"f-004","evidence":["f-004"],"reason":"test","event_ts":"2025-08-11T00:09:30.000Z","decided_at":"2025-08-11T00:09:30.000Z","policy_version":"p-83158d3f4bdf"}}"#,
        scope_json(scope)
    )
}
