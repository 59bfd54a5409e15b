//! The guard's heartbeat on `guard_heartbeat` (CONTRACT §1.8): what lets an order
//! gateway tell a guard that is watching from one that is gone.
//!
//! The instance that decides — the single guard while active, or the scale-out
//! instance that holds the aggregation — sends `active: true` every
//! [`HEARTBEAT_EVERY`] from its decision loop, so a loop that stops turning stops the
//! heartbeat too; an instance that does not decide (a standby, an instance with only
//! scale-out workers) sends `active: false`. A gateway fails closed when the newest
//! `active: true` heartbeat is older than its `max_silence` (CONTRACT §6, default 3 s).
//! Heartbeats are not decisions: they do not pass through the outbox or the order
//! journal, and one that cannot be delivered is counted and logged, never retried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use tracing::warn;

use super::config::LiveConfig;
use super::kafka::{self, METADATA_TIMEOUT};
use super::pipeline::LiveError;
use super::status::StatusHandle;
use crate::engine::Engine;
use crate::message::Heartbeat;
use crate::time::Timestamp;

/// How often a heartbeat goes out: twice as often as the contract's "at least once a
/// second", so one lost or late heartbeat does not leave a gateway a second short.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

/// Counts heartbeats the broker did not take.
#[derive(Clone, Default)]
struct Failures(Arc<AtomicU64>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if self.0.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
                warn!(error = %e, "a heartbeat was not delivered (logged once per 100)");
            }
        }
    }
}

/// Sends this instance's heartbeats.
pub struct Beacon {
    producer: BaseProducer<Failures>,
    failures: Failures,
    topic: String,
    instance: String,
    policy_version: String,
    last: Option<Instant>,
    /// Where the failures are shown (`guard_heartbeat_failures_total`), and how many
    /// were shown last.
    status: Option<(StatusHandle, u64)>,
}

impl Beacon {
    /// A beacon on the configured heartbeat topic.
    ///
    /// # Errors
    /// [`LiveError::MissingTopic`] when the topic does not exist (`guard topics`
    /// creates it), or the client's error.
    pub fn open(config: &LiveConfig) -> Result<Beacon, LiveError> {
        let failures = Failures::default();
        let producer: BaseProducer<Failures> =
            kafka::producer(config).create_with_context(failures.clone())?;
        let topic = config.topics.heartbeat.clone();
        let metadata = producer
            .client()
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(LiveError::MissingTopic(topic));
        }
        Ok(Beacon {
            producer,
            failures,
            topic,
            instance: config.instance.clone(),
            policy_version: config.policy.version(),
            last: None,
            status: None,
        })
    }

    /// Shows the count of failed heartbeats in `status`'s metrics from now on.
    pub fn report_to(&mut self, status: &StatusHandle) {
        self.status = Some((status.clone(), 0));
    }

    /// Shows the failures, when their count changed.
    fn show_failures(&mut self) {
        let failures = self.failures();
        if let Some((status, shown)) = &mut self.status {
            if failures != *shown {
                *shown = failures;
                status.edit().metrics.heartbeat_failures = failures;
                status.publish();
            }
        }
    }

    /// Sends a heartbeat when one is due: `active` with the deciding engine's count of
    /// paused scopes, or a standby's (`engine` `None`: 0 paused scopes, not known).
    pub fn beat(&mut self, engine: Option<&Engine>) {
        self.producer.poll(Duration::ZERO);
        self.show_failures();
        if self.last.is_some_and(|at| at.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let heartbeat = Heartbeat {
            instance: self.instance.clone(),
            ts: Timestamp::now(),
            active: engine.is_some(),
            policy_version: engine
                .map_or_else(|| self.policy_version.clone(), |e| e.policy().version()),
            paused_scopes: engine.map_or(0, |e| e.state().scopes.paused().count() as u64),
        };
        let payload = serde_json::to_vec(&heartbeat).expect("heartbeats serialise");
        let record = BaseRecord::to(&self.topic)
            .key(self.instance.as_str())
            .payload(payload.as_slice());
        if let Err((e, _)) = self.producer.send(record) {
            self.failures.delivery_failed(&e);
            self.show_failures();
        }
    }

    /// Says at once that this instance no longer decides (`active: false`) and sends
    /// what is queued: on stepping down and at shutdown.
    pub fn stand_down(&mut self) {
        self.last = None;
        self.beat(None);
        kafka::wait_delivered(&self.producer, Duration::from_secs(2));
    }

    /// Heartbeats that could not be sent or delivered so far.
    pub fn failures(&self) -> u64 {
        self.failures.0.load(Ordering::Relaxed)
    }
}

impl Failures {
    fn delivery_failed(&self, e: &rdkafka::error::KafkaError) {
        if self.0.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
            warn!(error = %e, "a heartbeat could not be sent (logged once per 100)");
        }
    }
}
