//! Reading a lineage's order journal back at start, up to a barrier of our own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::{Earlier, OrderLogError, Record};
use crate::live::config::LiveConfig;
use crate::live::kafka;

/// How long a start waits for its barrier to come back before giving up.
const RECOVER_LIMIT: Duration = Duration::from_secs(60);

/// Reads every record of `lineage` on the state topic from offset `from` (its start
/// when `None`), in the order they were written, and the runs of them read, after
/// `carried` (the runs the checkpoint carried, which the tombstones read shorten:
/// the deletions of its own cut are sent after it), for a guard that deletes them
/// itself ([`super::Trim`]). Reads up to a barrier this call
/// writes itself, so every record the broker acknowledged before the call is
/// included.
///
/// Compaction never removes a record (each has a key of its own; the active guard
/// deletes them a state horizon after no cut needs them, [`super::Trim`]), so reading
/// from the start reads up to a horizon's worth; a checkpoint says where the records
/// after it begin ([`crate::live::store::Checkpoint::journal_from`]).
///
/// # Errors
/// [`OrderLogError`] when the topic cannot be read or the barrier never comes back.
pub fn recover(
    config: &LiveConfig,
    lineage: &str,
    from: Option<i64>,
    carried: Vec<super::Run>,
) -> Result<(Vec<Record>, Earlier), OrderLogError> {
    let topic = &config.topics.state;
    let consumer = open_at(config, topic, from)?;
    let producer: BaseProducer = kafka::barrier_producer(config).create()?;
    let barrier = Barrier {
        key: format!("{lineage}/barrier/{}", config.instance),
        nonce: format!("{}", crate::time::Timestamp::now().as_micros()),
    };
    let mut found = Found::new(format!("{lineage}/order/"));
    let mut earlier = Earlier::default();
    earlier.carry(carried);
    let group = format!("{lineage}/");
    let started = Instant::now();
    let mut last_barrier: Option<Instant> = None;
    let mut read = 0u64;
    loop {
        if last_barrier.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            if last_barrier.is_some() {
                warn!(topic, waited = ?started.elapsed(), "the order journal's barrier has not come back yet; sending it again");
            }
            last_barrier = Some(Instant::now());
            barrier.send(&producer, topic);
        }
        if started.elapsed() >= RECOVER_LIMIT {
            return Err(OrderLogError::Unreadable {
                topic: topic.clone(),
                waited: started.elapsed(),
            });
        }
        let message = match consumer.poll(Duration::from_millis(50)) {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                warn!(error = %e, "reading the order journal");
                continue;
            }
        };
        read += 1;
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        if key == barrier.key && message.payload() == Some(barrier.nonce.as_bytes()) {
            break;
        }
        found.take(key, message.payload());
        if let Some(rest) = key.strip_prefix(&group) {
            earlier.take(rest, message.offset(), message.payload().is_none());
        }
    }
    let records = found.in_written_order();
    info!(
        lineage,
        from = ?from,
        records = records.len(),
        messages_read = read,
        took_ms = started.elapsed().as_millis() as u64,
        "order journal read"
    );
    // Closed on a thread of their own: closing a client waits for its threads, up to
    // 100 ms for the consumer, and the start has no need to wait for that.
    let closing = std::thread::Builder::new()
        .name("guard-journal-close".into())
        .spawn(move || drop((consumer, producer)));
    if let Err(e) = closing {
        warn!(error = %e, "cannot close the order journal's reader on a thread of its own");
    }
    Ok((records, earlier))
}

/// A reader of partition 0 of the state topic from offset `from`, or from its
/// beginning (also when `from` is no longer on the broker: `auto.offset.reset`).
///
/// # Errors
/// [`OrderLogError::MissingTopic`] when the topic does not exist.
fn open_at(
    config: &LiveConfig,
    topic: &str,
    from: Option<i64>,
) -> Result<BaseConsumer, OrderLogError> {
    // On the takeover path: read with the inputs' short fetch waits.
    let consumer: BaseConsumer = kafka::input_consumer(config)
        .set("group.id", format!("{}.order", config.group_id))
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), kafka::METADATA_TIMEOUT)?;
    if !metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    {
        return Err(OrderLogError::MissingTopic(topic.to_owned()));
    }
    let mut tpl = TopicPartitionList::new();
    let from = from.filter(|from| {
        // An offset the partition does not hold (a store restored beside a topic made
        // anew, or a broker that under-reports its end): from the beginning instead.
        let held = consumer
            .fetch_watermarks(topic, 0, kafka::METADATA_TIMEOUT)
            .is_ok_and(|(low, high)| (low..=high).contains(from));
        if !held {
            warn!(topic, from, "the checkpoint's order records are not where it says; reading the order journal from the beginning");
        }
        held
    });
    let at = from.map_or(Offset::Beginning, Offset::Offset);
    tpl.add_partition_offset(topic, 0, at)?;
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// A message this guard writes to the state topic and reads back: every record the
/// broker acknowledged before it is then read (the high watermark is not trusted).
struct Barrier {
    key: String,
    nonce: String,
}

impl Barrier {
    fn send(&self, producer: &BaseProducer, topic: &str) {
        let record = BaseRecord::to(topic)
            .partition(0)
            .key(&self.key)
            .payload(&self.nonce);
        if let Err((e, _)) = producer.send(record) {
            warn!(error = %e, "cannot send the order journal's barrier");
        }
        kafka::wait_delivered(producer, Duration::from_secs(5));
    }
}

/// The records of one lineage read so far: the latest per key, in the order the keys
/// were first written; a tombstone removes its key.
struct Found {
    prefix: String,
    order: Vec<String>,
    records: HashMap<String, Record>,
}

impl Found {
    fn new(prefix: String) -> Self {
        Found {
            prefix,
            order: Vec::new(),
            records: HashMap::new(),
        }
    }

    fn take(&mut self, key: &str, payload: Option<&[u8]>) {
        if !key.starts_with(&self.prefix) {
            return;
        }
        match payload {
            None | Some(b"") => {
                self.records.remove(key);
            }
            Some(payload) => match serde_json::from_slice::<Record>(payload) {
                Ok(record) => {
                    if !self.records.contains_key(key) {
                        self.order.push(key.to_owned());
                    }
                    self.records.insert(key.to_owned(), record);
                }
                Err(e) => warn!(key, error = %e, "unreadable order record; ignored"),
            },
        }
    }

    fn in_written_order(mut self) -> Vec<Record> {
        let order = std::mem::take(&mut self.order);
        order
            .iter()
            .filter_map(|k| self.records.remove(k))
            .collect()
    }
}
