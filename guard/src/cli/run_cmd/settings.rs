//! `guard run`'s settings: flags, `GUARD_*` variables and an optional `--config` TOML
//! file, in that order of precedence, resolved into one [`LiveConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use guard::engine::ClockMode;
use guard::live::LiveConfig;

use super::super::{load_policy, span_flag, Failure};

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Which clock drives maintenance windows.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClockArg {
    /// The wall clock (CONTRACT §2.6, live).
    Wall,
    /// The largest event time seen, exactly as `guard replay`.
    EventTime,
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `state_dir`,
    /// `topic_exec_result`, and a `[kafka]` table); flags and GUARD_* variables win.
    #[arg(long, env = "GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers, HOST:PORT[,...].
    #[arg(long, env = "GUARD_BROKERS")]
    pub brokers: Option<String>,
    /// Policy file (TOML); the runbook default when left out.
    #[arg(long, env = "GUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Where the state (sled) lives. [default: ./guard-state]
    #[arg(long, env = "GUARD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Consumer group for offset commits (lag monitoring). [default: noctria-guard]
    #[arg(long, env = "GUARD_GROUP_ID")]
    pub group_id: Option<String>,
    /// HTTP address for /healthz, /readyz, /metrics, /state, /ops/*; `off` disables. [default: 127.0.0.1:8686]
    #[arg(long, env = "GUARD_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Topic of fills. [default: exec_result]
    #[arg(long, env = "GUARD_TOPIC_EXEC_RESULT")]
    pub topic_exec_result: Option<String>,
    /// Topic of risk events (read and written). [default: risk_event]
    #[arg(long, env = "GUARD_TOPIC_RISK_EVENT")]
    pub topic_risk_event: Option<String>,
    /// Topic of adoptions. [default: strategy_release]
    #[arg(long, env = "GUARD_TOPIC_STRATEGY_RELEASE")]
    pub topic_strategy_release: Option<String>,
    /// Topic of operators' orders. [default: ops_command]
    #[arg(long, env = "GUARD_TOPIC_OPS_COMMAND")]
    pub topic_ops_command: Option<String>,
    /// Topic of the guard's commands. [default: guard_command]
    #[arg(long, env = "GUARD_TOPIC_GUARD_COMMAND")]
    pub topic_guard_command: Option<String>,
    /// Dead-letter topic. [default: guard_dlq]
    #[arg(long, env = "GUARD_TOPIC_DLQ")]
    pub topic_dlq: Option<String>,
    /// State changelog topic (compacted). [default: guard_state]
    #[arg(long, env = "GUARD_TOPIC_STATE")]
    pub topic_state: Option<String>,
    /// Trips from scale-out workers to the aggregator (one partition). [default:
    /// guard_facts]
    #[arg(long, env = "GUARD_TOPIC_FACTS")]
    pub topic_facts: Option<String>,
    /// Scale out (docs/SCALING.md): run as one of several instances sharing the input
    /// partitions through the consumer groups GROUP-workers and GROUP-aggregator,
    /// instead of one active guard with hot standbys. Needs every input topic with the
    /// same partition count, keyed by strategy, and the guard_facts topic.
    #[arg(long, env = "GUARD_SCALE_OUT")]
    pub scale_out: bool,
    /// librdkafka setting KEY=VALUE, repeatable (e.g. security.protocol=SASL_SSL).
    /// Secrets (passwords, keys) are refused here: set them as GUARD_KAFKA_<KEY> in
    /// the environment, e.g. GUARD_KAFKA_SASL_PASSWORD for sasl.password.
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
    /// Log format. [default: human]
    #[arg(long, env = "GUARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Clock for maintenance windows. [default: wall]
    #[arg(long, env = "GUARD_CLOCK", value_enum)]
    pub clock: Option<ClockArg>,
    /// Most time between checkpoints of state, offsets and outbox. [default: 200ms]
    #[arg(long, env = "GUARD_CHECKPOINT_INTERVAL")]
    pub checkpoint_interval: Option<String>,
    /// Bound on the delivery of one command (librdkafka message.timeout.ms). [default: 10s]
    #[arg(long, env = "GUARD_MESSAGE_TIMEOUT")]
    pub message_timeout: Option<String>,
    /// Fail closed: when no checkpoint could be written for this long, request a global
    /// pause (an ops_command from the guard itself). [default: 10s]
    #[arg(long, env = "GUARD_FAIL_CLOSED_AFTER")]
    pub fail_closed_after: Option<String>,
    /// Input order: a fetched message waits up to this long for another input
    /// partition that has more on the broker, so messages of all streams are applied
    /// in Kafka-timestamp order and a restart re-reads them in the same order; 0
    /// applies them in fetch order. [default: 50ms]
    #[arg(long, env = "GUARD_MAX_ORDER_WAIT")]
    pub max_order_wait: Option<String>,
    /// With --clock wall: messages stamped further than this ahead of the wall clock
    /// are invalid (to the dead-letter topic): a producer's clock gone wrong must not
    /// move the state horizon and age every streak out. With --clock event-time there
    /// is no such limit (the guard decides as replay does). [default: 5m]
    #[arg(long, env = "GUARD_MAX_FUTURE")]
    pub max_future: Option<String>,
    /// The state store is damaged or from another version: move it aside
    /// (STATE_DIR.damaged-<time>) and rebuild the state — from the newest changelog
    /// snapshot when there is one, else by replaying the input topics.
    #[arg(long)]
    pub rebuild: bool,
    /// With --rebuild and no changelog snapshot: replay the inputs from this time
    /// (RFC 3339) instead of from the start of their retention.
    #[arg(long, value_name = "TIME", requires = "rebuild")]
    pub rebuild_from: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    brokers: Option<String>,
    policy: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    group_id: Option<String>,
    http_listen: Option<String>,
    topic_exec_result: Option<String>,
    topic_risk_event: Option<String>,
    topic_strategy_release: Option<String>,
    topic_ops_command: Option<String>,
    topic_guard_command: Option<String>,
    topic_dlq: Option<String>,
    topic_state: Option<String>,
    topic_facts: Option<String>,
    kafka: Option<toml::Table>,
    log_format: Option<LogFormat>,
    clock: Option<ClockArg>,
    checkpoint_interval: Option<String>,
    message_timeout: Option<String>,
    fail_closed_after: Option<String>,
    max_order_wait: Option<String>,
    max_future: Option<String>,
}

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|s| k.contains(s))
        || k.ends_with(".key.pem")
        || k == "ssl.key.pem"
}

fn read_file(path: &Path) -> Result<FileSettings, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read config {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{}: {}",
            path.display(),
            e.to_string().trim().replace('\n', " ")
        ))
    })
}

/// A setting from its flag (or `GUARD_*` variable) when given, else from the config
/// file: the precedence every setting of `guard run` follows.
fn flag_or_file<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.as_ref().or(file.as_ref()).cloned()
}

/// Resolves flags, environment and file into a [`LiveConfig`] and the log format.
///
/// # Errors
/// A usage [`Failure`] for the first setting found missing or malformed.
pub fn resolve(args: RunArgs) -> Result<(LiveConfig, LogFormat), Failure> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileSettings::default(),
    };
    let mut config = base_config(&args, &file)?;
    name_topics(&mut config, &args, &file);
    config.kafka = kafka_settings(&args.kafka, file.kafka.as_ref())?;
    config.clock = match flag_or_file(&args.clock, &file.clock).unwrap_or(ClockArg::Wall) {
        ClockArg::Wall => ClockMode::External,
        ClockArg::EventTime => ClockMode::EventTime,
    };
    set_timings(&mut config, &args, &file)?;
    if let Some(text) = &args.rebuild_from {
        config.rebuild_from = Some(
            guard::time::Timestamp::parse(text)
                .map_err(|e| Failure::usage(format!("--rebuild-from: {e}")))?,
        );
    }
    let log_format = flag_or_file(&args.log_format, &file.log_format).unwrap_or(LogFormat::Human);
    Ok((config, log_format))
}

/// The settings without a default that every run needs (brokers), and those that say
/// where the guard lives: policy, state directory, consumer group, HTTP address.
///
/// # Errors
/// A usage [`Failure`] when no brokers are given, the policy is unreadable or invalid,
/// or the HTTP address does not parse.
fn base_config(args: &RunArgs, file: &FileSettings) -> Result<LiveConfig, Failure> {
    let brokers = flag_or_file(&args.brokers, &file.brokers).ok_or_else(|| {
        Failure::usage(
            "no brokers: pass --brokers HOST:PORT (or GUARD_BROKERS, or `brokers` in --config)",
        )
    })?;
    let (_, policy) = load_policy(flag_or_file(&args.policy, &file.policy).as_deref())?;
    let state_dir = flag_or_file(&args.state_dir, &file.state_dir)
        .unwrap_or_else(|| PathBuf::from("guard-state"));
    let mut config = LiveConfig::new(brokers, state_dir);
    config.policy = policy;
    if let Some(g) = flag_or_file(&args.group_id, &file.group_id) {
        config.group_id = g;
    }
    if let Some(text) = flag_or_file(&args.http_listen, &file.http_listen) {
        config.http_listen = http_listen(&text)?;
    }
    Ok(config)
}

/// `off` switches the HTTP server off; anything else must be an address to bind.
///
/// # Errors
/// A usage [`Failure`] that shows what an address looks like.
fn http_listen(text: &str) -> Result<Option<SocketAddr>, Failure> {
    if text == "off" {
        return Ok(None);
    }
    text.parse::<SocketAddr>().map(Some).map_err(|e| {
        Failure::usage(format!(
            "--http-listen {text:?}: {e} (expected e.g. 127.0.0.1:8686, or off)"
        ))
    })
}

/// Each topic named by a flag or the file replaces the contract's name, one by one, so
/// a deployment can rename a single topic.
fn name_topics(config: &mut LiveConfig, args: &RunArgs, file: &FileSettings) {
    let t = &mut config.topics;
    for (flag, from_file, slot) in [
        (
            &args.topic_exec_result,
            &file.topic_exec_result,
            &mut t.exec_result,
        ),
        (
            &args.topic_risk_event,
            &file.topic_risk_event,
            &mut t.risk_event,
        ),
        (
            &args.topic_strategy_release,
            &file.topic_strategy_release,
            &mut t.strategy_release,
        ),
        (
            &args.topic_ops_command,
            &file.topic_ops_command,
            &mut t.ops_command,
        ),
        (
            &args.topic_guard_command,
            &file.topic_guard_command,
            &mut t.guard_command,
        ),
        (&args.topic_dlq, &file.topic_dlq, &mut t.dlq),
        (&args.topic_state, &file.topic_state, &mut t.state),
        (&args.topic_facts, &file.topic_facts, &mut t.facts),
    ] {
        if let Some(name) = flag_or_file(flag, from_file) {
            *slot = name;
        }
    }
}

/// librdkafka settings: the file's `[kafka]` table, then `--kafka` pairs, then
/// `GUARD_KAFKA_*` variables, the only place a secret may come from.
///
/// # Errors
/// A usage [`Failure`] for a pair without `=`, or for a secret in a flag or the file.
fn kafka_settings(
    flags: &[String],
    file: Option<&toml::Table>,
) -> Result<Vec<(String, String)>, Failure> {
    let mut kafka: Vec<(String, String)> = Vec::new();
    for (key, value) in file.into_iter().flatten() {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        kafka.push((key.clone(), value));
    }
    for pair in flags {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--kafka takes KEY=VALUE, not {pair:?}")))?;
        kafka.push((key.trim().to_owned(), value.to_owned()));
    }
    if let Some((key, _)) = kafka.iter().find(|(k, _)| is_secret(k)) {
        let var = format!("GUARD_KAFKA_{}", key.to_ascii_uppercase().replace('.', "_"));
        return Err(Failure::usage(format!(
            "{key} is a secret: set it in the environment as {var}, not in a flag or file"
        )));
    }
    kafka.extend(guard::live::config::kafka_settings_from_env());
    Ok(kafka)
}

/// The intervals and bounds given as spans (`200ms`, `10s`, `5m`); the ones left out
/// keep their defaults.
///
/// # Errors
/// A usage [`Failure`] naming the first setting whose span does not parse.
fn set_timings(
    config: &mut LiveConfig,
    args: &RunArgs,
    file: &FileSettings,
) -> Result<(), Failure> {
    if let Some(text) = flag_or_file(&args.checkpoint_interval, &file.checkpoint_interval) {
        config.checkpoint_interval = span_flag(&text, "checkpoint_interval")?;
    }
    if let Some(text) = flag_or_file(&args.message_timeout, &file.message_timeout) {
        config.message_timeout = span_flag(&text, "message_timeout")?;
    }
    if let Some(text) = flag_or_file(&args.fail_closed_after, &file.fail_closed_after) {
        config.fail_closed_after = span_flag(&text, "fail_closed_after")?;
    }
    if let Some(text) = flag_or_file(&args.max_future, &file.max_future) {
        config.max_future = span_flag(&text, "max_future")?;
    }
    if let Some(text) = flag_or_file(&args.max_order_wait, &file.max_order_wait) {
        config.max_order_wait = if text.trim() == "0" {
            Duration::ZERO
        } else {
            span_flag(&text, "max_order_wait")?
        };
    }
    Ok(())
}
