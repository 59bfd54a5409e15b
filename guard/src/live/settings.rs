//! Every setting of `guard run` that a `--config` file, a flag or a `GUARD_*` variable
//! can give, in one serde struct whose [`Default`] is the one place defaults live.
//!
//! A file's keys are the flags' names in snake case (`state_dir` is `--state-dir`), so
//! the flags are merged over the file key by key and the result read as one
//! [`Settings`]; unknown keys are refused. [`Settings::resolve`] turns it into the
//! [`LiveConfig`] the guard runs with, and `guard run --print-config` writes it back as
//! a file `--config` reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{LiveConfig, Topics};
use crate::engine::ClockMode;
use crate::policy::Policy;

/// Which clock drives maintenance windows and the future-stamp check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClockSetting {
    /// The wall clock (CONTRACT §2.6, live).
    #[default]
    Wall,
    /// The largest event time seen, exactly as `guard replay`.
    EventTime,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The settings of `guard run` (see `guard run --help` for each one's meaning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Kafka bootstrap servers; required, so no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    /// Policy file; the runbook default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    /// Where sled keeps the state.
    pub state_dir: PathBuf,
    /// Consumer group.
    pub group_id: String,
    /// HTTP address, or `off`.
    pub http_listen: String,
    /// Per-operator tokens for `/ops/*` (TOML; reread on SIGHUP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_tokens: Option<PathBuf>,
    /// Topic of fills.
    pub topic_exec_result: String,
    /// Topic of risk events (read and written).
    pub topic_risk_event: String,
    /// Topic of adoptions.
    pub topic_strategy_release: String,
    /// Topic of operators' orders.
    pub topic_ops_command: String,
    /// Topic of gateways' acknowledgements.
    pub topic_guard_ack: String,
    /// Topic of the guard's commands.
    pub topic_guard_command: String,
    /// Dead-letter topic.
    pub topic_dlq: String,
    /// State changelog topic (compacted).
    pub topic_state: String,
    /// Every scope's present mode (compacted, keyed by scope).
    pub topic_pause_state: String,
    /// The guard's heartbeat.
    pub topic_heartbeat: String,
    /// Trips from scale-out workers to the aggregator.
    pub topic_facts: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Clock for maintenance windows.
    pub clock: ClockSetting,
    /// Most time between checkpoints.
    #[serde(with = "span")]
    pub checkpoint_interval: Duration,
    /// Bound on the delivery of one message (librdkafka `message.timeout.ms`).
    #[serde(with = "span")]
    pub message_timeout: Duration,
    /// Fail closed when the store has not had a change for this long.
    #[serde(with = "span")]
    pub fail_closed_after: Duration,
    /// Longest wait of a fetched message for another input partition (0: fetch order).
    #[serde(with = "span")]
    pub max_order_wait: Duration,
    /// How long a fetched message stamped within this of the wall clock waits for
    /// earlier-stamped messages of idle input partitions (0: not at all; docs/LIVE.md
    /// "Order grace").
    #[serde(with = "span")]
    pub order_grace: Duration,
    /// How long a broker may hold a fetch of the inputs (librdkafka
    /// `fetch.wait.max.ms` of the input consumer and of the order journal's read).
    /// 40 ms: Kafka answers a held fetch as soon as data comes, so the wait costs no
    /// latency there and saves the idle fetch round trips; it stays below
    /// `max_order_wait`. Brokers that hold every fetch this long (the mock cluster,
    /// tansu) need a short one (docs/LIVE.md "Input fetch wait").
    #[serde(with = "span")]
    pub input_fetch_wait: Duration,
    /// With the wall clock: largest lead of an event time over it.
    #[serde(with = "span")]
    pub max_future: Duration,
    /// Largest input message accepted, in bytes.
    pub max_message_bytes: usize,
    /// librdkafka settings (`[kafka]` table of a file; `--kafka KEY=VALUE` flags).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: BTreeMap<String, toml::Value>,
}

impl Default for Settings {
    fn default() -> Self {
        let topics = Topics::default();
        Settings {
            brokers: None,
            policy: None,
            state_dir: PathBuf::from("guard-state"),
            group_id: "noctria-guard".into(),
            http_listen: "127.0.0.1:8686".into(),
            ops_tokens: None,
            topic_exec_result: topics.exec_result,
            topic_risk_event: topics.risk_event,
            topic_strategy_release: topics.strategy_release,
            topic_ops_command: topics.ops_command,
            topic_guard_ack: topics.guard_ack,
            topic_guard_command: topics.guard_command,
            topic_dlq: topics.dlq,
            topic_state: topics.state,
            topic_facts: topics.facts,
            topic_pause_state: topics.pause_state,
            topic_heartbeat: topics.heartbeat,
            log_format: LogFormat::Human,
            clock: ClockSetting::Wall,
            checkpoint_interval: Duration::from_millis(200),
            message_timeout: Duration::from_secs(10),
            fail_closed_after: Duration::from_secs(10),
            max_order_wait: Duration::from_millis(50),
            order_grace: Duration::ZERO,
            input_fetch_wait: Duration::from_millis(40),
            max_future: Duration::from_secs(300),
            max_message_bytes: crate::decode::MAX_MESSAGE_BYTES,
            kafka: BTreeMap::new(),
        }
    }
}

/// A setting that cannot be used as given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// No `brokers` anywhere.
    #[error("no brokers: pass --brokers HOST:PORT (or GUARD_BROKERS, or `brokers` in --config)")]
    NoBrokers,
    /// `http_listen` is neither `off` nor an address.
    #[error("http_listen {0:?}: {1} (expected e.g. 127.0.0.1:8686, or off)")]
    HttpListen(String, String),
    /// A span that must be positive is zero.
    #[error("{0} must be longer than 0 (only max_order_wait may be 0)")]
    Zero(&'static str),
    /// `max_message_bytes` is zero.
    #[error("max_message_bytes must be at least 1")]
    NoMessageBytes,
    /// A secret in a file or flag.
    #[error("{key} is a secret: set it in the environment as {var}, not in a flag or file")]
    Secret {
        /// The librdkafka key.
        key: String,
        /// The variable to use instead.
        var: String,
    },
}

impl Settings {
    /// Checks the settings and turns them into the configuration the guard runs with,
    /// under `policy` (loaded from [`Settings::policy`] by the caller). librdkafka
    /// settings: the `kafka` table, then `GUARD_KAFKA_*` variables.
    ///
    /// # Errors
    /// [`SettingsError`] for the first setting that cannot be used.
    pub fn resolve(&self, policy: Policy) -> Result<LiveConfig, SettingsError> {
        let brokers = self.brokers.clone().ok_or(SettingsError::NoBrokers)?;
        for (name, span) in [
            ("checkpoint_interval", self.checkpoint_interval),
            ("message_timeout", self.message_timeout),
            ("fail_closed_after", self.fail_closed_after),
            ("max_future", self.max_future),
            ("input_fetch_wait", self.input_fetch_wait),
        ] {
            if span.is_zero() {
                return Err(SettingsError::Zero(name));
            }
        }
        if self.max_message_bytes == 0 {
            return Err(SettingsError::NoMessageBytes);
        }
        let mut config = LiveConfig::new(brokers, self.state_dir.clone());
        config.policy = policy;
        config.group_id = self.group_id.clone();
        config.http_listen = http_listen(&self.http_listen)?;
        config.ops_tokens = self.ops_tokens.clone();
        config.topics = self.topics();
        config.kafka = self.kafka_pairs()?;
        config
            .kafka
            .extend(super::config::kafka_settings_from_env());
        config.clock = match self.clock {
            ClockSetting::Wall => ClockMode::External,
            ClockSetting::EventTime => ClockMode::EventTime,
        };
        config.checkpoint_interval = self.checkpoint_interval;
        config.message_timeout = self.message_timeout;
        config.fail_closed_after = self.fail_closed_after;
        config.max_order_wait = self.max_order_wait;
        config.order_grace = self.order_grace;
        config.input_fetch_wait = self.input_fetch_wait;
        config.max_future = self.max_future;
        config.max_message_bytes = self.max_message_bytes;
        Ok(config)
    }

    /// The topic names.
    pub fn topics(&self) -> Topics {
        Topics {
            exec_result: self.topic_exec_result.clone(),
            risk_event: self.topic_risk_event.clone(),
            strategy_release: self.topic_strategy_release.clone(),
            ops_command: self.topic_ops_command.clone(),
            guard_ack: self.topic_guard_ack.clone(),
            guard_command: self.topic_guard_command.clone(),
            dlq: self.topic_dlq.clone(),
            state: self.topic_state.clone(),
            facts: self.topic_facts.clone(),
            pause_state: self.topic_pause_state.clone(),
            heartbeat: self.topic_heartbeat.clone(),
        }
    }

    /// The `kafka` table as librdkafka pairs (a non-string value in its TOML form).
    ///
    /// # Errors
    /// [`SettingsError::Secret`] for a password, key or token: those come from the
    /// environment only.
    fn kafka_pairs(&self) -> Result<Vec<(String, String)>, SettingsError> {
        let mut pairs = Vec::new();
        for (key, value) in &self.kafka {
            if is_secret(key) {
                return Err(SettingsError::Secret {
                    key: key.clone(),
                    var: format!("GUARD_KAFKA_{}", key.to_ascii_uppercase().replace('.', "_")),
                });
            }
            let value = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            pairs.push((key.clone(), value));
        }
        Ok(pairs)
    }
}

/// Whether a librdkafka key holds a secret (which only the environment may carry).
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|s| k.contains(s))
        || k.ends_with(".key.pem")
}

/// `off` switches the HTTP server off; anything else must be an address to bind.
fn http_listen(text: &str) -> Result<Option<SocketAddr>, SettingsError> {
    if text == "off" {
        return Ok(None);
    }
    text.parse::<SocketAddr>()
        .map(Some)
        .map_err(|e| SettingsError::HttpListen(text.to_owned(), e.to_string()))
}

/// Spans as text (`200ms`, `10s`, `5m`; `0` for none), written back exactly.
pub mod span {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses a span; `0` is zero.
    ///
    /// # Errors
    /// The span parser's message.
    pub fn parse(text: &str) -> Result<Duration, String> {
        if text.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        let span = crate::time::Span::parse(text.trim()).map_err(|e| e.to_string())?;
        Ok(Duration::from_micros(span.as_micros().max(0) as u64))
    }

    /// A span in the largest unit that states it exactly.
    pub fn format(d: Duration) -> String {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        crate::time::exact_span(crate::time::Span::from_micros(micros))
    }

    /// serde: write.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// serde: read.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_live_configs_defaults() {
        let settings = Settings {
            brokers: Some("b:9092".into()),
            ..Settings::default()
        };
        let from_settings = settings.resolve(Policy::default()).unwrap();
        let mut direct = LiveConfig::new("b:9092", "guard-state");
        // The environment may add librdkafka settings to both alike.
        direct.kafka = super::super::config::kafka_settings_from_env();
        direct.instance = from_settings.instance.clone();
        assert_eq!(format!("{from_settings:?}"), format!("{direct:?}"));
    }

    #[test]
    fn settings_written_out_read_back_the_same() {
        let mut settings = Settings {
            brokers: Some("b:9092".into()),
            checkpoint_interval: Duration::from_millis(1500),
            max_order_wait: Duration::ZERO,
            max_future: Duration::from_micros(2_500),
            ..Settings::default()
        };
        settings
            .kafka
            .insert("socket.timeout.ms".into(), toml::Value::Integer(3000));
        let text = toml::to_string(&settings).unwrap();
        let back: Settings = toml::from_str(&text).unwrap();
        assert_eq!(back, settings, "{text}");
    }

    #[test]
    fn unknown_keys_zero_spans_and_secrets_are_refused() {
        let err = toml::from_str::<Settings>("checkpoint_intervall = \"1s\"").unwrap_err();
        assert!(err.to_string().contains("checkpoint_intervall"), "{err}");
        let err = toml::from_str::<Settings>("max_future = \"5\"").unwrap_err();
        assert!(err.to_string().contains("max_future"), "{err}");
        let zero: Settings =
            toml::from_str("brokers = \"b\"\ncheckpoint_interval = \"0\"").unwrap();
        assert_eq!(
            zero.resolve(Policy::default()).unwrap_err(),
            SettingsError::Zero("checkpoint_interval")
        );
        let secret: Settings =
            toml::from_str("brokers = \"b\"\n[kafka]\n\"sasl.password\" = \"x\"").unwrap();
        assert!(matches!(
            secret.resolve(Policy::default()).unwrap_err(),
            SettingsError::Secret { var, .. } if var == "GUARD_KAFKA_SASL_PASSWORD"
        ));
    }

    #[test]
    fn spans_are_written_in_the_largest_exact_unit() {
        for (d, text) in [
            (Duration::from_secs(600), "10m"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(90), "90s"),
            (Duration::ZERO, "0"),
            (Duration::from_micros(7), "7us"),
        ] {
            assert_eq!(span::format(d), text);
            assert_eq!(span::parse(text).unwrap(), d);
        }
    }
}
