//! The configuration the live guard runs with: [`LiveConfig`], resolved from the
//! [`Settings`] that flags, `GUARD_*` variables and a TOML file give (where the
//! defaults live), and the topic names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::ClockMode;
use crate::message::Stream;
use crate::policy::Policy;

use super::settings::Settings;

/// Topic names (CONTRACT §1), each overridable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    /// Fills.
    pub exec_result: String,
    /// Risk events, read and written.
    pub risk_event: String,
    /// Adoptions.
    pub strategy_release: String,
    /// Operators' orders.
    pub ops_command: String,
    /// Gateways' acknowledgements (version 2).
    pub guard_ack: String,
    /// The guard's commands.
    pub guard_command: String,
    /// Dead letters.
    pub dlq: String,
    /// State changelog (compacted).
    pub state: String,
    /// Trips from scale-out workers to the aggregator (one partition).
    pub facts: String,
    /// Every scope's present mode, for the gateways (compacted, keyed by scope).
    pub pause_state: String,
    /// The guard's sign of life, for the gateways and monitoring.
    pub heartbeat: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            exec_result: "exec_result".into(),
            risk_event: "risk_event".into(),
            strategy_release: "strategy_release".into(),
            ops_command: "ops_command".into(),
            guard_ack: "guard_ack".into(),
            guard_command: "guard_command".into(),
            dlq: "guard_dlq".into(),
            state: "guard_state".into(),
            facts: "guard_facts".into(),
            pause_state: "guard_pause_state".into(),
            heartbeat: "guard_heartbeat".into(),
        }
    }
}

impl Topics {
    /// The topic of an input stream.
    pub fn of(&self, stream: Stream) -> &str {
        match stream {
            Stream::ExecResult => &self.exec_result,
            Stream::RiskEvent => &self.risk_event,
            Stream::StrategyRelease => &self.strategy_release,
            Stream::OpsCommand => &self.ops_command,
            Stream::GuardAck => &self.guard_ack,
        }
    }

    /// The input stream a topic carries.
    pub fn stream_of(&self, topic: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| self.of(*s) == topic)
    }

    /// The input topics of the version-1 streams; the live guard reads `guard_ack`
    /// besides only while the policy awaits acknowledgements.
    pub fn inputs(&self) -> Vec<String> {
        Stream::ALL
            .iter()
            .filter(|s| **s != Stream::GuardAck)
            .map(|s| self.of(*s).to_owned())
            .collect()
    }

    /// Puts `prefix` before the name of every topic (benchmarks and tests that share a
    /// broker): one list, so a topic added later cannot be left out.
    pub fn prefix(&mut self, prefix: &str) {
        let Topics {
            exec_result,
            risk_event,
            strategy_release,
            ops_command,
            guard_ack,
            guard_command,
            dlq,
            state,
            facts,
            pause_state,
            heartbeat,
        } = self;
        for topic in [
            exec_result,
            risk_event,
            strategy_release,
            ops_command,
            guard_ack,
            guard_command,
            dlq,
            state,
            facts,
            pause_state,
            heartbeat,
        ] {
            topic.insert_str(0, prefix);
        }
    }

    /// Every topic the guard touches.
    pub fn all(&self) -> Vec<String> {
        let mut all = self.inputs();
        all.extend([
            self.guard_ack.clone(),
            self.guard_command.clone(),
            self.dlq.clone(),
            self.state.clone(),
            self.facts.clone(),
            self.pause_state.clone(),
            self.heartbeat.clone(),
        ]);
        all
    }
}

/// Everything `guard run` needs.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// `host:port[,...]`.
    pub brokers: String,
    /// The policy in force.
    pub policy: Policy,
    /// Where sled keeps the state.
    pub state_dir: PathBuf,
    /// Consumer group (offsets for lag monitoring, and the standby election).
    pub group_id: String,
    /// HTTP listen address; `None` switches the server off.
    pub http_listen: Option<SocketAddr>,
    /// Per-operator tokens for `/ops/*` ([`super::operators`]); `None`: the shared
    /// `GUARD_OPS_TOKEN`, if set.
    pub ops_tokens: Option<PathBuf>,
    /// Topic names.
    pub topics: Topics,
    /// Extra librdkafka settings (`key=value`), applied to every client.
    pub kafka: Vec<(String, String)>,
    /// The guard's own source name.
    pub source: String,
    /// Wall clock (the contract's live mode) or event time (as replay).
    pub clock: ClockMode,
    /// How often state, offsets and outbox are checkpointed at most.
    pub checkpoint_interval: Duration,
    /// Bound on a message's delivery time (librdkafka `message.timeout.ms`).
    pub message_timeout: Duration,
    /// Largest input message accepted; larger ones go to the dead-letter topic.
    pub max_message_bytes: usize,
    /// Instance name, for logs and the changelog key.
    pub instance: String,
    /// With no stored state, replay the inputs from this time instead of from the
    /// start of their retention (`--rebuild-from`).
    pub rebuild_from: Option<crate::time::Timestamp>,
    /// Fail closed: when no checkpoint could be written for this long, the guard asks
    /// for a global pause (an `ops_command` of operator = its source name).
    pub fail_closed_after: Duration,
    /// How long a fetched message may wait for another input partition that has more
    /// on the broker, so that messages are applied in Kafka-timestamp order (zero:
    /// apply in fetch order).
    pub max_order_wait: Duration,
    /// How long a fetched message stamped within this of the wall clock waits, while
    /// an input partition holds nothing, for that partition's earlier-stamped messages
    /// the broker's watermark did not show yet (zero: not at all; docs/LIVE.md "Order
    /// grace").
    pub order_grace: Duration,
    /// How long a broker may hold a fetch of the inputs, and of the order journal
    /// read at start (librdkafka `fetch.wait.max.ms`). Kafka answers a fetch as soon
    /// as data comes; the mock cluster and tansu hold every fetch this long, so there
    /// it adds to the trigger → command latency ([`super::kafka::MOCK_INPUT_FETCH_WAIT`]
    /// for the mock), and on tansu a fetch shorter than its scan of a partition's
    /// batches comes back empty (docs/LIVE.md "Input fetch wait").
    pub input_fetch_wait: Duration,
    /// On the wall clock, messages whose event time is further than this ahead of it go
    /// to the dead-letter topic (a clock gone wrong must not age the whole state out).
    /// On event time, as replay, there is no such limit.
    pub max_future: Duration,
    /// The whole guard, or one side of a scaled-out guard (docs/SCALING.md).
    pub role: crate::engine::Role,
    /// A worker's partitions of `exec_result` and `strategy_release`.
    pub owned: Vec<i32>,
}

impl LiveConfig {
    /// A configuration with every default ([`Settings::default`]), for `brokers` and
    /// `state_dir`.
    pub fn new(brokers: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        let defaults = Settings::default();
        LiveConfig {
            brokers: brokers.into(),
            policy: Policy::default(),
            state_dir: state_dir.into(),
            http_listen: defaults.http_listen.parse().ok(),
            ops_tokens: None,
            topics: defaults.topics(),
            group_id: defaults.group_id,
            kafka: Vec::new(),
            source: "guard".into(),
            clock: ClockMode::External,
            checkpoint_interval: defaults.checkpoint_interval,
            message_timeout: defaults.message_timeout,
            max_message_bytes: defaults.max_message_bytes,
            instance: default_instance(),
            rebuild_from: None,
            fail_closed_after: defaults.fail_closed_after,
            max_order_wait: defaults.max_order_wait,
            order_grace: defaults.order_grace,
            input_fetch_wait: defaults.input_fetch_wait,
            max_future: defaults.max_future,
            role: crate::engine::Role::Whole,
            owned: Vec::new(),
        }
    }

    /// The limits inputs are admitted under.
    pub fn admission(&self) -> crate::decode::Admission {
        crate::decode::Admission {
            max_message_bytes: self.max_message_bytes,
            max_future: crate::time::Span::from_micros(
                i64::try_from(self.max_future.as_micros()).unwrap_or(i64::MAX),
            ),
        }
    }
}

/// librdkafka settings from the environment: `GUARD_KAFKA_SASL_PASSWORD=…` is
/// `sasl.password=…` (librdkafka keys have dots, never underscores). This is where
/// secrets come from; flags and files may not carry them.
pub fn kafka_settings_from_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter_map(|(var, value)| {
            var.strip_prefix("GUARD_KAFKA_")
                .map(|rest| (rest.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect()
}

fn default_instance() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "guard".into());
    format!("{host}-{}", std::process::id())
}
