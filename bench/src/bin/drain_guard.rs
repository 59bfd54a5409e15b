//! `drain-guard`: the guard as a contender of bench/compare.sh's backlog drain. It runs
//! the library's `guard run` path (`live::standby::run` with a sled store, the config
//! `guard run` builds from the same flags, the HTTP server off) and speaks the drain
//! protocol (`bench::drain`): `ready` when the guard reports its inputs assigned, and
//! `done N` as soon as the offsets it publishes (those `/state` shows) say N input
//! messages are applied; then it stops the guard, which checkpoints and flushes as on
//! a SIGTERM, and exits.
//!
//!   drain-guard --brokers B --policy FILE --state-dir DIR --exec-result TOPIC
//!               [--topic-prefix P] --messages N
//!
//! The other topics are P + their default names (`risk_event`, `guard_command`, …).
//! `DRAIN_CHECKPOINT_MS=N` sets the guard's `--checkpoint-interval` (what a checkpoint
//! carries grows with the drain's rate times the interval: a slow machine shows a
//! fast drain's checkpoints with a longer interval).
//! A thread reads the published status once a millisecond, without a lock (the guard
//! publishes it once per turn).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bench::drain;
use guard::engine::ClockMode;
use guard::live::{kafka, LiveConfig, SledStore, StatusHandle};
use guard::policy::Policy;

fn die(m: &str) -> ! {
    eprintln!("drain-guard: {m}");
    std::process::exit(2)
}

struct Args {
    brokers: String,
    policy: String,
    state_dir: String,
    exec_result: String,
    prefix: String,
    messages: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        brokers: String::new(),
        policy: String::new(),
        state_dir: String::new(),
        exec_result: String::new(),
        prefix: String::new(),
        messages: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| die(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--brokers" => a.brokers = value,
            "--policy" => a.policy = value,
            "--state-dir" => a.state_dir = value,
            "--exec-result" => a.exec_result = value,
            "--topic-prefix" => a.prefix = value,
            "--messages" => {
                a.messages = value
                    .parse()
                    .unwrap_or_else(|_| die("--messages takes a count"))
            }
            other => die(&format!("unknown flag {other}")),
        }
    }
    if a.brokers.is_empty() || a.state_dir.is_empty() || a.exec_result.is_empty() {
        die("usage: drain-guard --brokers B --policy FILE --state-dir DIR --exec-result TOPIC [--topic-prefix P] --messages N");
    }
    a
}

fn config_of(args: &Args) -> LiveConfig {
    let mut config = LiveConfig::new(args.brokers.as_str(), args.state_dir.as_str());
    if !args.policy.is_empty() {
        let text = std::fs::read_to_string(&args.policy)
            .unwrap_or_else(|e| die(&format!("{}: {e}", args.policy)));
        config.policy = Policy::from_toml(&text).unwrap_or_else(|e| die(&e.to_string()));
    }
    config.http_listen = None;
    config.clock = ClockMode::EventTime;
    config.kafka = guard::live::config::kafka_settings_from_env();
    // The fetch wait of every drain in bench/README.md (and the ceiling's): 1 ms.
    config.input_fetch_wait = kafka::MOCK_INPUT_FETCH_WAIT;
    config.topics.prefix(&args.prefix);
    config.topics.exec_result.clone_from(&args.exec_result);
    if let Ok(ms) = std::env::var("DRAIN_CHECKPOINT_MS") {
        let ms = ms
            .parse()
            .unwrap_or_else(|_| die("DRAIN_CHECKPOINT_MS takes milliseconds"));
        config.checkpoint_interval = Duration::from_millis(ms);
    }
    config
}

/// Input messages applied so far: the sum of the next offsets of the input topic's
/// partitions (the topic is read from offset 0).
fn applied(status: &StatusHandle, prefix: &str) -> u64 {
    status
        .read()
        .offsets
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(_, next)| (*next).max(0) as u64)
        .sum()
}

fn main() {
    // As `guard` does at start.
    guard::live::memory::hold_mmap_threshold();
    // The guard's own log on stderr, for investigations: `DRAIN_GUARD_LOG=debug`.
    if let Ok(filter) = std::env::var("DRAIN_GUARD_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let args = parse_args();
    let config = config_of(&args);
    let status = StatusHandle::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (status, stop) = (status.clone(), stop.clone());
        let key_prefix = format!("{}/", args.exec_result);
        let expected = args.messages;
        std::thread::spawn(move || {
            while !status.read().ready {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            drain::announce_ready();
            loop {
                let seen = applied(&status, &key_prefix);
                if seen >= expected {
                    drain::announce_done(seen);
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let store = SledStore::open(&config.state_dir).unwrap_or_else(|e| die(&e.to_string()));
    let result = guard::live::standby::run(config, store, status, &stop);
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if let Err(e) = result {
        die(&format!("guard: {e}"));
    }
}
