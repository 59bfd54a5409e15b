//! Publishing an operator's order (`ops_command`), shared by `guard pause`/`resume`
//! and the HTTP ops endpoints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::message::{Action, OpsCommand, Scope};
use crate::time::Timestamp;

/// A fresh, unique command id: `ops-` + time + process + a counter.
pub fn new_command_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ops-{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Builds an operator's order stamped with the wall clock.
pub fn command(action: Action, scope: Scope, operator: &str, reason: Option<String>) -> OpsCommand {
    OpsCommand {
        command_id: new_command_id(),
        action,
        scope,
        operator: operator.to_owned(),
        reason,
        ts: Timestamp::now(),
    }
}

/// Publishes `command` to `topic`, keyed by scope, and waits for the broker's
/// acknowledgement.
///
/// # Errors
/// The Kafka error when the broker did not take it within `timeout`.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    command: &OpsCommand,
    timeout: Duration,
) -> Result<(), rdkafka::error::KafkaError> {
    let payload = serde_json::to_vec(command).expect("ops commands serialise");
    let key = command.scope.to_string();
    producer
        .send(FutureRecord::to(topic).key(&key).payload(&payload), timeout)
        .await
        .map(drop)
        .map_err(|(e, _)| e)
}
