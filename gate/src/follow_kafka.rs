//! The follower's Kafka clients: settings, partition metadata, and the delivery
//! reports of acknowledgements.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::follow::{with_extra, FollowConfig, FollowError};
use crate::handle::GateHandle;

/// A consumer that is assigned partitions and never commits: the gate's position is
/// the beginning of the pause state and the end of the live topics, every start.
pub(crate) fn consumer_config(config: &FollowConfig, gateway: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", format!("noctria-gate-{gateway}"))
        // Required by librdkafka; never joined (partitions are assigned).
        .set("group.id", format!("noctria-gate-{gateway}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Should retention ever delete what the gate has not read yet, read on from
        // the oldest record rather than skip: guard_pause_state must be read whole,
        // and a re-read of guard_command ends on each scope's newest decision
        // (CONTRACT §1.6) while a skipped pause would be lost.
        .set("auto.offset.reset", "earliest")
        .set("socket.nagle.disable", "true")
        .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string())
        .set("fetch.error.backoff.ms", "10")
        .set("fetch.queue.backoff.ms", "10")
        .set("topic.metadata.refresh.interval.ms", "10000");
    with_extra(c, &config.kafka)
}

/// The acknowledgement producer: idempotent, acks from all replicas, sent at once,
/// with a bounded delivery time so a failure is counted in seconds.
pub(crate) fn producer_config(config: &FollowConfig, gateway: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", format!("noctria-gate-{gateway}-acks"))
        .set("socket.nagle.disable", "true")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("retry.backoff.ms", "20")
        .set(
            "message.timeout.ms",
            config.ack_timeout.as_millis().max(1).to_string(),
        );
    with_extra(c, &config.kafka)
}

/// The partitions of `topic`, from the cluster's metadata.
///
/// # Errors
/// [`FollowError::Kafka`] when the metadata cannot be read or the topic does not
/// exist (yet).
pub(crate) fn partitions(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, FollowError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|source| FollowError::Kafka {
            what: "reading topic metadata",
            source,
        })?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    let missing = || FollowError::Kafka {
        what: "finding a topic",
        source: rdkafka::error::KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ),
    };
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(missing()),
    }
}

/// Counts delivered and failed acknowledgements.
pub(crate) struct AckContext {
    handle: GateHandle,
}

impl AckContext {
    pub(crate) fn new(handle: GateHandle) -> Self {
        AckContext { handle }
    }
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.handle.shell().ack_delivered(result.is_ok());
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "an acknowledgement was not delivered");
        }
    }
}
