//! Whether the guard can still read its inputs.
//!
//! An idle input topic and an unreadable one look the same to a consumer: no message.
//! So a thread of its own asks the leader of every input partition for its offsets
//! (a `ListOffsets` request, answered only by a reachable leader of a readable topic)
//! once a second — four times within `fail_closed_after` when that is shorter — with
//! its own client so a slow answer never holds up a decision. The
//! pipeline counts a message it fetched as proof too, and fails closed when neither
//! has been seen for `fail_closed_after`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tracing::{debug, warn};

use super::config::LiveConfig;
use super::kafka;

/// How often the input partitions are probed at most (and how long a probe waits).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often they are probed at least.
const PROBE_AT_MOST_EVERY: Duration = Duration::from_millis(50);

/// The probe thread; stops when dropped.
pub struct InputWatch {
    partitions: Arc<Mutex<Vec<(String, i32)>>>,
    last_ok: Arc<Mutex<Instant>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl InputWatch {
    /// Starts probing (nothing until [`InputWatch::watch`] names the partitions).
    pub fn start(config: &LiveConfig) -> Self {
        let partitions: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
        let last_ok = Arc::new(Mutex::new(Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut client = kafka::base(config);
        client.set(
            "client.id",
            format!("noctria-guard-{}-input-watch", config.instance),
        );
        let consumer: Option<BaseConsumer> = match client.create() {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(error = %e, "cannot create the input probe; only fetched messages show the inputs are readable");
                None
            }
        };
        // Readable idle inputs must be probed well within the fail-closed limit, or
        // a short limit fails closed between two probes.
        let every = (config.fail_closed_after / 4).clamp(PROBE_AT_MOST_EVERY, PROBE_EVERY);
        let thread = consumer.map(|consumer| {
            let (partitions, last_ok, stop) = (partitions.clone(), last_ok.clone(), stop.clone());
            std::thread::Builder::new()
                .name("guard-input-watch".into())
                .spawn(move || probe_loop(&consumer, &partitions, &last_ok, &stop, every))
                .expect("spawn the input probe thread")
        });
        InputWatch {
            partitions,
            last_ok,
            stop,
            thread,
        }
    }

    /// The partitions to probe (the ones the guard was assigned).
    pub fn watch(&self, partitions: Vec<(String, i32)>) {
        *self.partitions.lock().expect("input watch lock") = partitions;
        *self.last_ok.lock().expect("input watch lock") = Instant::now();
    }

    /// How long ago the inputs were last known to be readable.
    pub fn unreadable_for(&self) -> Duration {
        self.last_ok.lock().expect("input watch lock").elapsed()
    }
}

impl Drop for InputWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn probe_loop(
    consumer: &BaseConsumer,
    partitions: &Mutex<Vec<(String, i32)>>,
    last_ok: &Mutex<Instant>,
    stop: &AtomicBool,
    every: Duration,
) {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(PROBE_AT_MOST_EVERY.min(every));
            continue;
        }
        next = Instant::now() + every;
        let wanted = partitions.lock().expect("input watch lock").clone();
        if wanted.is_empty() {
            continue;
        }
        let started = Instant::now();
        let failed = wanted.iter().find_map(|(topic, partition)| {
            consumer
                .fetch_watermarks(topic, *partition, PROBE_EVERY)
                .err()
                .map(|e| format!("{topic}/{partition}: {e}"))
        });
        match failed {
            None => {
                let mut last = last_ok.lock().expect("input watch lock");
                if started > *last {
                    *last = started;
                }
            }
            Some(why) => debug!(error = %why, "input probe failed"),
        }
    }
}
