//! `guard run`'s flags. Each flag (or its `GUARD_*` variable) is merged over the
//! `--config` TOML file key by key and the result read as one
//! [`guard::live::settings::Settings`], where every default lives; the help's
//! `[default: …]` texts are checked against it by a test.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use guard::live::settings::{ClockSetting, LogFormat, Settings};
use guard::live::LiveConfig;

use super::super::{load_policy, Failure};

#[derive(Args, Debug, Default, Serialize)]
pub struct RunArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `state_dir`,
    /// `topic_exec_result`, and a `[kafka]` table); flags and GUARD_* variables win.
    #[arg(long, env = "GUARD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers, HOST:PORT[,...].
    #[arg(long, env = "GUARD_BROKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    /// Policy file (TOML); the runbook default when left out.
    #[arg(long, env = "GUARD_POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    /// Where the state (sled) lives. [default: ./guard-state]
    #[arg(long, env = "GUARD_STATE_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Consumer group for offset commits (lag monitoring). [default: noctria-guard]
    #[arg(long, env = "GUARD_GROUP_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// HTTP address for /healthz, /readyz, /metrics, /state, /ops/*; `off` disables. [default: 127.0.0.1:8686]
    #[arg(long, env = "GUARD_HTTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// Per-operator tokens for POST /ops/* (TOML: [[operator]] name, token_sha256,
    /// role = "operator" | "viewer"; docs/OPERATIONS.md). The order's operator is the
    /// token's name. Reread on SIGHUP. Instead of the shared GUARD_OPS_TOKEN.
    #[arg(long, env = "GUARD_OPS_TOKENS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_tokens: Option<PathBuf>,
    /// Topic of fills. [default: exec_result]
    #[arg(long, env = "GUARD_TOPIC_EXEC_RESULT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_exec_result: Option<String>,
    /// Topic of risk events (read and written). [default: risk_event]
    #[arg(long, env = "GUARD_TOPIC_RISK_EVENT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_risk_event: Option<String>,
    /// Topic of adoptions. [default: strategy_release]
    #[arg(long, env = "GUARD_TOPIC_STRATEGY_RELEASE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_strategy_release: Option<String>,
    /// Topic of operators' orders. [default: ops_command]
    #[arg(long, env = "GUARD_TOPIC_OPS_COMMAND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_ops_command: Option<String>,
    /// Topic of gateways' acknowledgements (CONTRACT §1.7). [default: guard_ack]
    #[arg(long, env = "GUARD_TOPIC_GUARD_ACK")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_guard_ack: Option<String>,
    /// Topic of the guard's commands. [default: guard_command]
    #[arg(long, env = "GUARD_TOPIC_GUARD_COMMAND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_guard_command: Option<String>,
    /// Dead-letter topic. [default: guard_dlq]
    #[arg(long, env = "GUARD_TOPIC_DLQ")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_dlq: Option<String>,
    /// State changelog topic (compacted). [default: guard_state]
    #[arg(long, env = "GUARD_TOPIC_STATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_state: Option<String>,
    /// Trips from scale-out workers to the aggregator (one partition). [default:
    /// guard_facts]
    #[arg(long, env = "GUARD_TOPIC_FACTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_facts: Option<String>,
    /// Every scope's present mode for the gateways (CONTRACT §1.8; compacted, keyed
    /// by scope). [default: guard_pause_state]
    #[arg(long, env = "GUARD_TOPIC_PAUSE_STATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_pause_state: Option<String>,
    /// The guard's heartbeat, at least once a second (CONTRACT §1.8). [default:
    /// guard_heartbeat]
    #[arg(long, env = "GUARD_TOPIC_HEARTBEAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_heartbeat: Option<String>,
    /// Scale out (docs/SCALING.md): run as one of several instances sharing the input
    /// partitions through the consumer groups GROUP-workers and GROUP-aggregator,
    /// instead of one active guard with hot standbys. Needs every input topic with the
    /// same partition count, keyed by strategy, and the guard_facts topic.
    #[arg(long, env = "GUARD_SCALE_OUT")]
    #[serde(skip)]
    pub scale_out: bool,
    /// librdkafka setting KEY=VALUE, repeatable (e.g. security.protocol=SASL_SSL).
    /// Secrets (passwords, keys) are refused here: set them as GUARD_KAFKA_<KEY> in
    /// the environment, e.g. GUARD_KAFKA_SASL_PASSWORD for sasl.password.
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    #[serde(skip)]
    pub kafka: Vec<String>,
    /// Log format. [default: human]
    #[arg(long, env = "GUARD_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Clock for maintenance windows. [default: wall]
    #[arg(long, env = "GUARD_CLOCK", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockSetting>,
    /// Most time between checkpoints of state, offsets and outbox. [default: 200ms]
    #[arg(long, env = "GUARD_CHECKPOINT_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval: Option<String>,
    /// Bound on the delivery of one command (librdkafka message.timeout.ms). [default: 10s]
    #[arg(long, env = "GUARD_MESSAGE_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_timeout: Option<String>,
    /// Fail closed: when no checkpoint could be written for this long, request a global
    /// pause (an ops_command from the guard itself). [default: 10s]
    #[arg(long, env = "GUARD_FAIL_CLOSED_AFTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_closed_after: Option<String>,
    /// Input order: a fetched message waits up to this long for another input
    /// partition whose high watermark is a few offsets ahead of what was fetched, so
    /// messages of all streams are applied in Kafka-timestamp order and a restart
    /// re-reads them in the same order. A partition with a backlog on the broker (more
    /// than 8 offsets) is waited for up to 30 s, or this long if longer. 0 applies
    /// messages in fetch order. [default: 50ms]
    #[arg(long, env = "GUARD_MAX_ORDER_WAIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_order_wait: Option<String>,
    /// Input order at the live edge: a fetched message stamped (Kafka timestamp) less
    /// than this before the wall clock waits up to this long, while another input
    /// partition holds nothing, for an earlier-stamped message of it the broker's high
    /// watermark did not show yet. A broker whose fetch response is not one instant
    /// across partitions (tansu) otherwise lets a message overtake an earlier-stamped
    /// one of another topic, and a replay of the same messages by timestamp may then
    /// decide differently. Costs up to this much latency on every decision at the
    /// live edge; a backlog is not held. 0 never waits. [default: 0]
    #[arg(long, env = "GUARD_ORDER_GRACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_grace: Option<String>,
    /// How long a broker may hold a fetch of the inputs (librdkafka fetch.wait.max.ms
    /// of the input consumer and of the order journal's read at start). Kafka answers
    /// as soon as data comes, so the wait costs no latency there, and a longer one
    /// saves the fetch round trips of an idle guard (1ms: ~1,000 a second). Keep it
    /// below --max-order-wait. The librdkafka mock cluster and tansu hold every fetch
    /// this long: there it is added to every decision's latency, so use 1ms on the
    /// mock and 5ms on tansu (a fetch shorter than tansu's scan of a partition's
    /// record batches comes back empty, and a longer one is not one instant across
    /// partitions: docs/LIVE.md "Input fetch wait"). [default: 40ms]
    #[arg(long, env = "GUARD_INPUT_FETCH_WAIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_fetch_wait: Option<String>,
    /// With --clock wall: messages stamped further than this ahead of the wall clock
    /// are invalid (to the dead-letter topic): a producer's clock gone wrong must not
    /// move the state horizon and age every streak out. With --clock event-time there
    /// is no such limit (the guard decides as replay does). [default: 5m]
    #[arg(long, env = "GUARD_MAX_FUTURE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_future: Option<String>,
    /// Largest input message accepted, in bytes; larger ones go to the dead-letter topic
    /// with their position. [default: 1048576]
    #[arg(long, env = "GUARD_MAX_MESSAGE_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// Print the settings in force (file, flags and variables over the defaults) as a
    /// TOML file that --config reads, and exit. Secrets from GUARD_KAFKA_* are left out.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// The state store is damaged or from another version: move it aside
    /// (STATE_DIR.damaged-<time>) and rebuild the state — from the newest changelog
    /// snapshot when there is one, else by replaying the input topics.
    #[arg(long)]
    #[serde(skip)]
    pub rebuild: bool,
    /// With --rebuild and no changelog snapshot: replay the inputs from this time
    /// (RFC 3339) instead of from the start of their retention.
    #[arg(long, value_name = "TIME", requires = "rebuild")]
    #[serde(skip)]
    pub rebuild_from: Option<String>,
}

/// The settings as given: the `--config` file, with every flag and `GUARD_*` variable
/// merged over it key by key (`--kafka` pairs into its `[kafka]` table), read over the
/// defaults.
///
/// # Errors
/// A usage [`Failure`] naming the flag or the file key that cannot be read.
pub fn settings(args: &RunArgs) -> Result<Settings, Failure> {
    let mut table = match &args.config {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    let flags = toml::Table::try_from(args)
        .map_err(|e| Failure::run(format!("cannot read the flags: {e}")))?;
    for (key, value) in flags {
        // Each flag alone first, so an error names the flag that caused it.
        let alone: toml::Table = [(key.clone(), value.clone())].into_iter().collect();
        Settings::deserialize(alone).map_err(|e| {
            Failure::usage(format!("--{}: {}", key.replace('_', "-"), one_line(&e)))
        })?;
        table.insert(key, value);
    }
    if !args.kafka.is_empty() {
        let kafka = table
            .entry("kafka")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(kafka) = kafka else {
            return Err(Failure::usage("`kafka` in --config must be a table"));
        };
        for pair in &args.kafka {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| Failure::usage(format!("--kafka takes KEY=VALUE, not {pair:?}")))?;
            kafka.insert(key.trim().to_owned(), toml::Value::String(value.to_owned()));
        }
    }
    Settings::deserialize(table).map_err(|e| {
        let origin = args
            .config
            .as_ref()
            .map_or("settings".to_owned(), |p| p.display().to_string());
        Failure::usage(format!("{origin}: {}", one_line(&e)))
    })
}

/// A `--config` file as a table of settings.
///
/// # Errors
/// A usage [`Failure`] when it cannot be read or is not TOML.
fn read_file(path: &std::path::Path) -> Result<toml::Table, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read config {}: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: {}", path.display(), one_line(&e))))
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().trim().replace('\n', " ")
}

/// Resolves flags, environment and file into a [`LiveConfig`] and the log format.
///
/// # Errors
/// A usage [`Failure`] for the first setting found missing or malformed.
pub fn resolve(args: &RunArgs) -> Result<(LiveConfig, LogFormat), Failure> {
    let settings = settings(args)?;
    let (_, policy) = load_policy(settings.policy.as_deref())?;
    let mut config = settings
        .resolve(policy)
        .map_err(|e| Failure::usage(e.to_string()))?;
    if let Some(text) = &args.rebuild_from {
        config.rebuild_from = Some(
            guard::time::Timestamp::parse(text)
                .map_err(|e| Failure::usage(format!("--rebuild-from: {e}")))?,
        );
    }
    Ok((config, settings.log_format))
}

/// `--print-config`: the settings in force as a file `--config` reads.
///
/// # Errors
/// A usage [`Failure`] when the settings cannot be read.
pub fn print(args: &RunArgs) -> Result<(), Failure> {
    let settings = settings(args)?;
    let text = toml::to_string(&settings)
        .map_err(|e| Failure::run(format!("cannot write the settings: {e}")))?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    /// Every `[default: …]` in `guard run --help` says what [`Settings::default`] holds:
    /// the defaults live in one place, and the help may not drift from it.
    #[test]
    fn the_help_shows_the_defaults_the_settings_hold() {
        let defaults = toml::Table::try_from(Settings::default()).unwrap();
        let mut checked = 0;
        for arg in Cli::command().get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(shown) = help
                .split("[default: ")
                .nth(1)
                .and_then(|rest| rest.split(']').next())
            else {
                continue;
            };
            let key = arg.get_id().as_str();
            let value = defaults
                .get(key)
                .unwrap_or_else(|| panic!("--{key} shows a default the settings do not hold"));
            let held = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let held = if key == "state_dir" {
                format!("./{held}")
            } else {
                held
            };
            assert_eq!(shown, held, "--{key}");
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} defaults found in the help");
    }

    #[test]
    fn a_flag_wins_over_the_file_key_by_key() {
        let dir = std::env::temp_dir().join(format!("guard-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("guard.toml");
        std::fs::write(
            &file,
            "brokers = \"file:1\"\ngroup_id = \"from-file\"\ncheckpoint_interval = \"1s\"\n[kafka]\n\"socket.timeout.ms\" = 3000\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(file),
            brokers: Some("flag:2".into()),
            kafka: vec!["client.rack=r1".into()],
            ..RunArgs::default()
        };
        let settings = settings(&args).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(settings.brokers.as_deref(), Some("flag:2"));
        assert_eq!(settings.group_id, "from-file");
        assert_eq!(settings.checkpoint_interval.as_millis(), 1000);
        assert_eq!(settings.kafka.len(), 2);
        assert_eq!(settings.max_order_wait, Settings::default().max_order_wait);
    }

    #[test]
    fn a_bad_flag_is_named_as_a_flag() {
        let args = RunArgs {
            brokers: Some("b:1".into()),
            fail_closed_after: Some("soon".into()),
            ..RunArgs::default()
        };
        let err = settings(&args).unwrap_err().message;
        assert!(err.contains("--fail-closed-after"), "{err}");
    }
}
