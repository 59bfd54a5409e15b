//! rdkafka clients tuned for latency (see the broker notes in the README): small
//! fetch waits, no Nagle, no linger, an idempotent producer with a bounded delivery
//! timeout. Extra `--kafka key=value` settings (SASL/SSL) are applied last.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use super::config::LiveConfig;

/// The settings every client shares.
pub fn base(config: &LiveConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("socket.nagle.disable", "true")
        .set("client.id", format!("noctria-guard-{}", config.instance));
    for (key, value) in &config.kafka {
        c.set(key, value);
    }
    c
}

/// A consumer of the input topics: manual offsets (the store is the source of truth),
/// fetches answered within a few milliseconds.
pub fn consumer(config: &LiveConfig) -> ClientConfig {
    let mut c = base(config);
    c.set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "1")
        .set("fetch.error.backoff.ms", "10")
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.partition.eof", "false")
        // Bound the prefetch queue: memory stays flat when the guard falls behind.
        // 1 MiB is ~4,000 fills, over 10 ms of the guard's work; at 16 MiB the
        // queue and its fetch buffers were ~45-75 MB of a drain's peak RSS
        // (bench/README.md).
        .set("queued.max.messages.kbytes", "1024");
    for (key, value) in &config.kafka {
        c.set(key, value);
    }
    c
}

/// The command producer: idempotent, acks from all replicas, sent at once, bounded
/// delivery time so an outage is noticed in seconds, not minutes.
pub fn producer(config: &LiveConfig) -> ClientConfig {
    let mut c = base(config);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set(
            "message.timeout.ms",
            config.message_timeout.as_millis().to_string(),
        )
        .set("retry.backoff.ms", "20");
    for (key, value) in &config.kafka {
        c.set(key, value);
    }
    c
}

/// One delivery report: the message id, when it was handed to the producer, and the
/// outcome.
#[derive(Debug)]
pub struct Delivery {
    /// The outbox id (`order` for an order-journal record).
    pub id: String,
    /// The outbox sequence number, or the order record's number.
    pub seq: u64,
    /// When it was sent.
    pub sent: Instant,
    /// `Ok` once the broker acknowledged it.
    pub result: Result<(), KafkaError>,
}

/// What the producer hands back with each message.
pub struct Pending {
    /// Outbox id (`order` for an order-journal record).
    pub id: String,
    /// The outbox sequence number, or the order record's number.
    pub seq: u64,
    /// Send time.
    pub sent: Instant,
}

/// Collects delivery reports for the pipeline to drain.
#[derive(Clone, Default)]
pub struct DeliveryContext {
    reports: Arc<Mutex<Vec<Delivery>>>,
}

impl DeliveryContext {
    /// The reports received since the last call.
    pub fn drain(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Delivery {
                id: pending.id,
                seq: pending.seq,
                sent: pending.sent,
                result,
            });
    }
}

/// How long to wait for a metadata or admin answer.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
