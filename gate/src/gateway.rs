//! The reference gateway process (`guard gate`, or the standalone `guard-gate`): it
//! follows the guard, prints one JSON line on stdout for every change of a scope's
//! effective mode, acknowledges every command, and optionally serves `/healthz`,
//! `/metrics` and `/gate?strategy=ID` (see [`crate::http`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use crate::follow::{FollowConfig, FollowError, Follower, Topics};
use crate::handle::GateHandle;
use crate::http::HttpServer;
use crate::Gate;

/// The gateway's command line (every flag also from a `GATE_*` variable).
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "GATE_BROKERS")]
    pub brokers: String,
    /// This gateway's name, as its acknowledgements (guard_ack) carry it.
    #[arg(long, env = "GATE_GATEWAY")]
    pub gateway: String,
    /// Fail closed (every strategy paused) after this long without a heartbeat of an
    /// active guard: `3s`, `500ms`, `1.5s`.
    #[arg(long, env = "GATE_MAX_SILENCE", default_value = "3s", value_parser = parse_span)]
    pub max_silence: Duration,
    /// Serve GET /healthz, /metrics and /gate?strategy=ID on this address.
    #[arg(long, env = "GATE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Prefix of every topic name (as the guard's `--prefix`, e.g. `stg.`).
    #[arg(long, env = "GATE_TOPICS_PREFIX", default_value = "")]
    pub topics_prefix: String,
    /// librdkafka setting KEY=VALUE, applied last; repeatable. Secrets belong in the
    /// environment: GATE_KAFKA_SASL_PASSWORD=... is sasl.password=...
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
}

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is wrong.
    #[error("{0}")]
    Usage(String),
    /// Following the guard failed.
    #[error(transparent)]
    Follow(#[from] FollowError),
    /// The HTTP address cannot be served.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code: 2 for a usage error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Parses a span as the contract writes them: `3s`, `500ms`, `1.5s`, `2m`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as 3s, 500ms or 1.5s, not {text:?}");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

impl Args {
    /// The follower's settings: topics behind the prefix, the `--kafka` settings and
    /// then `GATE_KAFKA_*` from the environment.
    ///
    /// # Errors
    /// [`Error::Usage`] for a `--kafka` value without `=`.
    pub fn follow_config(&self) -> Result<FollowConfig, Error> {
        let mut config = FollowConfig::new(&self.brokers);
        config.topics = Topics::with_prefix(&self.topics_prefix);
        for setting in &self.kafka {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--kafka {setting:?}: expected KEY=VALUE")))?;
            config.kafka.push((key.to_owned(), value.to_owned()));
        }
        config
            .kafka
            .extend(std::env::vars().filter_map(|(var, value)| {
                var.strip_prefix("GATE_KAFKA_")
                    .map(|rest| (rest.to_ascii_lowercase().replace('_', "."), value))
            }));
        Ok(config)
    }

    fn max_silence_ms(&self) -> i64 {
        i64::try_from(self.max_silence.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Runs the gateway until `stop` is raised: prints every change of a scope's
/// effective mode as a JSON line on stdout (the first says the gate fails closed with
/// `no_state`), acknowledges every command, and serves HTTP when `--http-listen` is
/// given.
///
/// # Errors
/// [`Error::Usage`] for a bad setting, [`Error::Http`] when the address cannot be
/// bound, [`Error::Follow`] when the Kafka clients cannot be created or the follower
/// fails.
pub fn run(args: Args, stop: &AtomicBool) -> Result<(), Error> {
    let config = args.follow_config()?;
    if args.gateway.is_empty() {
        return Err(Error::Usage("--gateway must not be empty".into()));
    }
    let handle = GateHandle::new(Gate::new(&args.gateway, args.max_silence_ms()));
    let changes = handle.subscribe();
    let http = match args.http_listen {
        Some(addr) => Some(
            HttpServer::start(addr, handle.clone())
                .map_err(|source| Error::Http { addr, source })?,
        ),
        None => None,
    };
    let follower = Follower::start(config, handle)?;
    let print = |line: String| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the gate: its log is a courtesy.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    while !stop.load(Ordering::Relaxed) && follower.is_running() {
        match changes.recv_timeout(Duration::from_millis(50)) {
            Ok(change) => print(change.to_json()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let ended = follower.stop();
    for change in changes.try_iter() {
        print(change.to_json());
    }
    if let Some(http) = http {
        http.stop();
    }
    ended.map_err(Error::from)
}

/// Raises `stop` on SIGINT or SIGTERM, so the gateway stops from inside (flushing
/// its acknowledgements) rather than being killed.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn stop_on_signal(stop: &'static AtomicBool) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, before the gateway starts, so no early signal is lost.
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            tracing::info!("signal received: stopping");
            stop.store(true, Ordering::Relaxed);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn spans_read_in_seconds_and_milliseconds() {
        assert_eq!(parse_span("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_span("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_span("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_span("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "3", "s", "3h", "-1s", "1.2.3s"] {
            assert!(parse_span(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_command_line_needs_brokers_and_a_gateway_and_defaults_the_rest() {
        assert!(Cli::try_parse_from(["gate", "--brokers", "b:9092"]).is_err());
        let cli =
            Cli::try_parse_from(["gate", "--brokers", "b:9092", "--gateway", "gw-1"]).unwrap();
        assert_eq!(cli.args.max_silence, Duration::from_secs(3));
        assert_eq!(cli.args.http_listen, None);
        let config = cli.args.follow_config().unwrap();
        assert_eq!(config.topics, Topics::default());
        let cli = Cli::try_parse_from([
            "gate",
            "--brokers",
            "b",
            "--gateway",
            "g",
            "--max-silence",
            "500ms",
            "--topics-prefix",
            "stg.",
            "--http-listen",
            "127.0.0.1:0",
            "--kafka",
            "a.b=c",
        ])
        .unwrap();
        assert_eq!(cli.args.max_silence_ms(), 500);
        let config = cli.args.follow_config().unwrap();
        assert_eq!(config.topics.ack, "stg.guard_ack");
        assert!(config.kafka.contains(&("a.b".into(), "c".into())));
    }
}
