//! `guard run`: the live guard. Settings come from flags, `GUARD_*` variables and an
//! optional `--config` TOML file, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use guard::engine::ClockMode;
use guard::live::http::{self, HttpState};
use guard::live::{kafka, LiveConfig, SledStore, StatusHandle};
use guard::time::Span;

use super::{load_policy, Failure};

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

fn span(text: &str, key: &str) -> Result<Duration, Failure> {
    let span = Span::parse(text).map_err(|e| Failure::usage(format!("{key}: {e}")))?;
    Ok(Duration::from_micros(span.as_micros().max(1) as u64))
}

/// Resolves flags, environment and file into a [`LiveConfig`] and the log format.
pub fn resolve(args: RunArgs) -> Result<(LiveConfig, LogFormat), Failure> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileSettings::default(),
    };
    let brokers = args.brokers.or(file.brokers).ok_or_else(|| {
        Failure::usage(
            "no brokers: pass --brokers HOST:PORT (or GUARD_BROKERS, or `brokers` in --config)",
        )
    })?;
    let (_, policy) = load_policy(args.policy.or(file.policy).as_deref())?;
    let state_dir = args
        .state_dir
        .or(file.state_dir)
        .unwrap_or_else(|| PathBuf::from("guard-state"));
    let mut config = LiveConfig::new(brokers, state_dir);
    config.policy = policy;
    if let Some(g) = args.group_id.or(file.group_id) {
        config.group_id = g;
    }
    match args.http_listen.or(file.http_listen).as_deref() {
        None => {}
        Some("off") => config.http_listen = None,
        Some(addr) => {
            config.http_listen = Some(addr.parse::<SocketAddr>().map_err(|e| {
                Failure::usage(format!(
                    "--http-listen {addr:?}: {e} (expected e.g. 127.0.0.1:8686, or off)"
                ))
            })?)
        }
    }
    let t = &mut config.topics;
    for (flag, from_file, slot) in [
        (
            args.topic_exec_result,
            file.topic_exec_result,
            &mut t.exec_result,
        ),
        (
            args.topic_risk_event,
            file.topic_risk_event,
            &mut t.risk_event,
        ),
        (
            args.topic_strategy_release,
            file.topic_strategy_release,
            &mut t.strategy_release,
        ),
        (
            args.topic_ops_command,
            file.topic_ops_command,
            &mut t.ops_command,
        ),
        (
            args.topic_guard_command,
            file.topic_guard_command,
            &mut t.guard_command,
        ),
        (args.topic_dlq, file.topic_dlq, &mut t.dlq),
        (args.topic_state, file.topic_state, &mut t.state),
        (args.topic_facts, file.topic_facts, &mut t.facts),
    ] {
        if let Some(name) = flag.or(from_file) {
            *slot = name;
        }
    }
    let mut kafka: Vec<(String, String)> = Vec::new();
    for (key, value) in file.kafka.unwrap_or_default() {
        let value = match value {
            toml::Value::String(s) => s,
            other => other.to_string(),
        };
        kafka.push((key, value));
    }
    for pair in &args.kafka {
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
    config.kafka = kafka;
    config.clock = match args.clock.or(file.clock).unwrap_or(ClockArg::Wall) {
        ClockArg::Wall => ClockMode::External,
        ClockArg::EventTime => ClockMode::EventTime,
    };
    if let Some(text) = args.checkpoint_interval.or(file.checkpoint_interval) {
        config.checkpoint_interval = span(&text, "checkpoint_interval")?;
    }
    if let Some(text) = args.message_timeout.or(file.message_timeout) {
        config.message_timeout = span(&text, "message_timeout")?;
    }
    if let Some(text) = args.fail_closed_after.or(file.fail_closed_after) {
        config.fail_closed_after = span(&text, "fail_closed_after")?;
    }
    if let Some(text) = args.max_future.or(file.max_future) {
        config.max_future = span(&text, "max_future")?;
    }
    if let Some(text) = args.max_order_wait.or(file.max_order_wait) {
        config.max_order_wait = if text.trim() == "0" {
            Duration::ZERO
        } else {
            span(&text, "max_order_wait")?
        };
    }
    if let Some(text) = &args.rebuild_from {
        config.rebuild_from = Some(
            guard::time::Timestamp::parse(text)
                .map_err(|e| Failure::usage(format!("--rebuild-from: {e}")))?,
        );
    }
    Ok((
        config,
        args.log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Human),
    ))
}

/// Installs the tracing subscriber (stderr; `RUST_LOG` filters, default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rdkafka=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Starts the HTTP server and the signal handler on a small runtime of their own; the
/// pipeline keeps the main thread for itself.
pub fn start_shell(
    config: &LiveConfig,
    status: StatusHandle,
    stop: Arc<AtomicBool>,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("guard-http")
        .build()
        .map_err(|e| Failure::run(format!("cannot start the HTTP runtime: {e}")))?;
    let producer = kafka::producer(config).create().ok();
    let token = std::env::var("GUARD_OPS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Arc::from);
    if token.is_none() {
        tracing::info!("GUARD_OPS_TOKEN is not set: POST /ops/* will refuse every order");
    }
    let state = HttpState {
        status,
        producer,
        ops_topic: config.topics.ops_command.clone(),
        token,
    };
    let listen = config.http_listen;
    let bound = Arc::new(std::sync::Mutex::new(None::<String>));
    let bound_err = bound.clone();
    std::thread::Builder::new()
        .name("guard-shell".into())
        .spawn(move || {
            runtime.block_on(async move {
                let signals = async {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    tracing::info!("signal received: stopping");
                    stop.store(true, Ordering::Relaxed);
                };
                match listen {
                    Some(addr) => {
                        tokio::select! {
                            result = http::serve(addr, state) => {
                                if let Err(e) = result {
                                    *bound_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("cannot listen on {addr}: {e}"));
                                }
                                std::future::pending::<()>().await;
                            }
                            () = signals => {}
                        }
                    }
                    None => signals.await,
                }
            });
        })
        .map_err(|e| Failure::run(format!("cannot start the shell thread: {e}")))?;
    std::thread::sleep(Duration::from_millis(50));
    if let Some(err) = bound.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Failure::usage(err));
    }
    Ok(())
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let rebuild = args.rebuild;
    let scale_out = args.scale_out;
    let (config, log_format) = resolve(args)?;
    if scale_out && config.policy.rules.slippage.group_by == guard::policy::GroupBy::Global {
        return Err(Failure::usage(
            "--scale-out shards the rules by strategy: a slippage window with group_by = \"global\" needs one guard (docs/SCALING.md)",
        ));
    }
    init_logs(log_format);
    tracing::info!(brokers = %config.brokers, state_dir = %config.state_dir.display(), policy = %config.policy.version(), instance = %config.instance, scale_out, "guard starting");
    let status = StatusHandle::default();
    let stop = Arc::new(AtomicBool::new(false));
    start_shell(&config, status.clone(), stop.clone())?;
    if scale_out {
        return guard::live::scaled::run(config, status, &stop)
            .map_err(|e| Failure::run(e.to_string()));
    }
    let store = match SledStore::open(&config.state_dir) {
        Ok(store) if !rebuild => store,
        Ok(store) => {
            drop(store);
            move_aside(&config.state_dir)?
        }
        Err(e) if rebuild => {
            tracing::warn!(error = %e, "state store unusable; rebuilding");
            move_aside(&config.state_dir)?
        }
        Err(e) => {
            return Err(Failure::run(format!(
                "{e} (state dir {}). The guard will not start on a store it cannot trust: run with --rebuild to move it aside and rebuild the state from the changelog or the input topics",
                config.state_dir.display()
            )))
        }
    };
    guard::live::standby::run(config, store, status, &stop).map_err(|e| Failure::run(e.to_string()))
}

/// Moves a damaged state directory aside and opens a fresh store in its place.
fn move_aside(dir: &Path) -> Result<SledStore, Failure> {
    if dir.exists() {
        let aside = PathBuf::from(format!(
            "{}.damaged-{}",
            dir.display(),
            guard::time::Timestamp::now().as_micros() / 1_000_000
        ));
        std::fs::rename(dir, &aside)
            .map_err(|e| Failure::run(format!("cannot move {} aside: {e}", dir.display())))?;
        tracing::warn!(moved_to = %aside.display(), "damaged state store moved aside");
    }
    SledStore::open(dir).map_err(|e| Failure::run(format!("{e} (new state dir {})", dir.display())))
}
