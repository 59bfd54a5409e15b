//! rdkafka clients tuned for latency (see the broker notes in the README): small
//! fetch waits on the inputs (and only there: a held fetch is a round trip a
//! millisecond), no Nagle, no linger, an idempotent producer with a bounded delivery
//! timeout. Extra `--kafka key=value` settings (SASL/SSL) are applied last.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Message as _};

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

/// How long a broker may hold a fetch of a consumer that is not on the decision path
/// (the changelog, start-up reads, tools). Apache Kafka answers a fetch as soon as data
/// comes, but the mock cluster and tansu hold every empty fetch for this long, so a
/// 1 ms wait costs a fetch round trip a millisecond — a few percent of a core each on
/// a small machine — even when nothing flows. A constant for now; a setting later.
pub const FOLLOW_FETCH_WAIT_MS: u32 = 100;

/// A consumer with manual offsets (the store is the source of truth) whose fetches
/// may be held up to [`FOLLOW_FETCH_WAIT_MS`]: for topics read in the background (the
/// changelog: leases are judged in seconds) and by tools.
pub fn consumer(config: &LiveConfig) -> ClientConfig {
    consumer_waiting(config, FOLLOW_FETCH_WAIT_MS)
}

/// The input fetch wait for the mock cluster, which holds every empty fetch for the
/// whole wait even when data comes during it: the demo, the benchmarks and the tests
/// on the mock set [`LiveConfig::input_fetch_wait`] to this, so a fill is fetched
/// within a millisecond or so. (The default, for Kafka, is 40 ms.)
pub const MOCK_INPUT_FETCH_WAIT: Duration = Duration::from_millis(1);

/// A consumer of the input topics: [`consumer`] with fetches held at most
/// [`LiveConfig::input_fetch_wait`] (40 ms by default: Kafka answers a held fetch as
/// soon as data comes). Also for the order journal read at start (a takeover waits
/// for it) and for clients that measure the guard's latency.
pub fn input_consumer(config: &LiveConfig) -> ClientConfig {
    let ms = config
        .input_fetch_wait
        .as_millis()
        .clamp(1, u128::from(u32::MAX));
    consumer_waiting(config, u32::try_from(ms).unwrap_or(u32::MAX))
}

fn consumer_waiting(config: &LiveConfig, fetch_wait_ms: u32) -> ClientConfig {
    let mut c = base(config);
    c.set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("fetch.error.backoff.ms", "10")
        // A partition whose prefetch queue is over its bound is fetched again this long
        // after the bound was seen: with a bound of 1 MiB a backlog fills it at every
        // fetch, and at 10 ms the guard sat idle between fetches (a drain 40 % slower,
        // bench/README.md).
        .set("fetch.queue.backoff.ms", "1")
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

/// Waits until `producer` holds no unacknowledged message, at most `limit`: `false`
/// when some are left. Not `flush`, which librdkafka serves in steps of 100 ms: a
/// start that flushed its order journal's barrier waited 100 ms for a round trip of
/// about one.
pub fn wait_delivered<C: ProducerContext>(
    producer: &rdkafka::producer::BaseProducer<C>,
    limit: Duration,
) -> bool {
    use rdkafka::producer::Producer;
    let until = Instant::now() + limit;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= until {
            return false;
        }
        producer.poll(Duration::from_millis(1));
    }
    true
}

/// A producer of records that are only read back (the order journal's barrier): the
/// command producer's settings, but not idempotent. An idempotent producer first asks
/// the broker for a producer id, and librdkafka took 0.5-1 s for that on tansu and the
/// mock cluster, on the takeover path; a barrier written twice by a retry is still
/// read once.
pub fn barrier_producer(config: &LiveConfig) -> ClientConfig {
    let mut c = producer(config);
    c.set("enable.idempotence", "false");
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
    /// Where the broker put it, when it went to the echo topic
    /// ([`DeliveryContext::echoing`]): partition and offset.
    pub echo: Option<(i32, i64)>,
    /// The offset the broker gave it, once acknowledged.
    pub offset: Option<i64>,
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
    echo_topic: Option<Arc<str>>,
}

impl DeliveryContext {
    /// Reports also say where each message sent to `topic` landed: the guard reads
    /// its own risk events back on that input and needs to tell them from others'.
    pub fn echoing(topic: &str) -> Self {
        DeliveryContext {
            reports: Arc::default(),
            echo_topic: Some(topic.into()),
        }
    }

    /// The reports received since the last call.
    pub fn drain(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let echo = match (result, &self.echo_topic) {
            (Ok(message), Some(topic)) if message.topic() == &**topic => {
                Some((message.partition(), message.offset()))
            }
            _ => None,
        };
        let offset = result.as_ref().ok().map(|message| message.offset());
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
                echo,
                offset,
            });
    }
}

/// How long to wait for a metadata or admin answer.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_wait(c: &ClientConfig) -> Option<&str> {
        c.get("fetch.wait.max.ms")
    }

    #[test]
    fn the_input_fetch_wait_is_the_input_consumers_alone() {
        let mut config = LiveConfig::new("b:9092", "state");
        assert_eq!(fetch_wait(&input_consumer(&config)), Some("40"));
        config.input_fetch_wait = Duration::from_millis(20);
        assert_eq!(fetch_wait(&input_consumer(&config)), Some("20"));
        // The background readers keep their own wait.
        assert_eq!(
            fetch_wait(&consumer(&config)),
            Some(FOLLOW_FETCH_WAIT_MS.to_string().as_str())
        );
        // librdkafka counts whole milliseconds, and 0 would spin.
        config.input_fetch_wait = Duration::from_micros(300);
        assert_eq!(fetch_wait(&input_consumer(&config)), Some("1"));
        // A `--kafka fetch.wait.max.ms=…` pair still has the last word.
        config.kafka = vec![("fetch.wait.max.ms".into(), "7".into())];
        assert_eq!(fetch_wait(&input_consumer(&config)), Some("7"));
    }
}
