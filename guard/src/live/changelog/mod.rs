//! The state changelog (CONTRACT §5 layer 2) and the standby lease.
//!
//! The active guard publishes to the compacted `guard_state` topic, keyed under its
//! group id:
//! - `GROUP/lease` every second (from the decision thread: it says the guard is
//!   alive): which instance is active, and when it last said so;
//! - what its store holds, as deltas (from the store writer thread, after each
//!   written checkpoint; [`records`] has the format): the dedup ids each checkpoint
//!   added, in blocks under keys of their own, and about once a second the
//!   checkpoint without its dedup ids and the manifest that makes a consistent cut.
//!
//! A standby tails the topic, holds what it read, and takes over when no lease has
//! arrived for `lease_timeout`, restoring the newest snapshot whose every part is
//! present and matches its manifest. Two instances that both believe they are active
//! publish the same deterministic ids, so the worst case is harmless duplicates until
//! the one with the larger instance name steps down; the one that stays starts a new
//! lineage when it reads the other's (whose tombstones may have hit its blocks).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::config::LiveConfig;
use super::kafka;
use super::order_log::{Earlier, Trim};

#[cfg(test)]
mod catch_up_tests;
#[cfg(test)]
mod delivery_tests;
mod publish;
mod reader;
mod records;
#[cfg(test)]
mod rival_tests;
#[cfg(test)]
mod tests;

pub use publish::ChangelogWriter;
pub use reader::{ReadError, Reader};
use records::Manifest;
pub use records::{Published, Publisher, Record, FORMAT};

/// What the active guard says every second.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// The active instance.
    pub instance: String,
    /// Wall-clock milliseconds when it was sent.
    pub at_ms: i64,
    /// The active instance's store ([`crate::live::Store::id`]), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

use super::merge::now_ms;

/// Assigns the changelog's one partition to `consumer` from its beginning.
fn read_from_start(consumer: &BaseConsumer, topic: &str) -> Result<(), rdkafka::error::KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)
}

/// A manifest read while active, when it is a rival's. One of another instance's
/// lineage means two instances believe they are active: the newer one's first
/// manifest is followed by tombstones of every block it had read, this instance's
/// lineage's among them, so no later manifest of that lineage is complete. The
/// instance that stays (the smaller name: the other steps down once it sees this
/// one's lease) has its store writer start a new lineage above the rival's epoch,
/// once per rival lineage; the one that steps down does nothing.
fn rival(own: &str, payload: Option<&[u8]>) -> Option<Manifest> {
    let manifest = serde_json::from_slice::<Manifest>(payload?).ok()?;
    let (_, instance) = manifest.lineage.split_once('.')?;
    (instance > own).then_some(manifest)
}

/// Tails the changelog and publishes the lease.
pub struct Changelog {
    config: LiveConfig,
    consumer: BaseConsumer,
    producer: BaseProducer,
    reader: Reader,
    /// The newest lease of each instance read, and when it was read.
    leases: BTreeMap<String, (Lease, Instant)>,
    last_lease_sent: Option<Instant>,
    active: bool,
    /// The offset after the last record read.
    next_offset: i64,
    /// This instance's store, named in its lease.
    store: Option<String>,
    /// The order records of the guard's lives read so far (deleted by the next
    /// active lineage once no snapshot within the horizon needs them).
    order_records: Earlier,
    /// Rival lineages read while active ([`rival`]).
    rivals: BTreeSet<String>,
    /// What this activation's store writer is told ([`Signals`]).
    signals: Arc<Signals>,
}

/// What the decision thread, reading the changelog, tells the store writer that
/// publishes it.
#[derive(Debug, Default)]
pub struct Signals {
    /// The newest epoch of a rival lineage read and not yet answered (0: none): the
    /// writer starts a new lineage above it ([`rival`]).
    pub rival_epoch: AtomicU64,
    /// The instance steps down: its writer publishes nothing more. The instance that
    /// stays is the one to follow; a last snapshot of this one's, after the other's
    /// new lineage began, would only stand in its way.
    pub stepping_down: AtomicBool,
}

impl Changelog {
    /// Opens the changelog of `config` and starts tailing it from the beginning.
    ///
    /// # Errors
    /// The Kafka error when the clients cannot be created or the topic assigned.
    pub fn open(config: &LiveConfig) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = kafka::consumer(config)
            .set("group.id", format!("{}.changelog", config.group_id))
            .create()?;
        // The topic's leader known before the assignment: librdkafka looks up where
        // "the beginning" is only once it knows the leader, and retries that 500 ms
        // later when it does not, which a takeover waited for. An error here shows again
        // in the reads.
        let _ = consumer.fetch_metadata(Some(&config.topics.state), kafka::METADATA_TIMEOUT);
        read_from_start(&consumer, &config.topics.state)?;
        let producer: BaseProducer = kafka::producer(config).create()?;
        Ok(Changelog {
            config: config.clone(),
            consumer,
            producer,
            reader: Reader::default(),
            leases: BTreeMap::new(),
            last_lease_sent: None,
            active: false,
            next_offset: 0,
            store: None,
            order_records: Earlier::default(),
            rivals: BTreeSet::new(),
            signals: Arc::default(),
        })
    }

    /// Names this instance's store in its lease. A lease naming it was written by an
    /// earlier process on the same state directory, which is gone (this process holds
    /// the store's lock): it is not another instance's, and a restart need not wait
    /// for it to age.
    pub fn own_store(&mut self, id: Option<&str>) {
        self.store = id.map(str::to_owned);
    }

    /// Reads whatever has arrived, waiting at most `wait` for the first message.
    pub fn poll(&mut self, wait: Duration) {
        let prefix = format!("{}/", self.config.group_id);
        let mut timeout = wait;
        for _ in 0..1_000 {
            let Some(polled) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let Ok(message) = polled else { continue };
            self.next_offset = self.next_offset.max(message.offset() + 1);
            let Some(key) = message.key() else { continue };
            let key = String::from_utf8_lossy(key);
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            if rest.starts_with("order/") {
                // Also while active: a life's records are one run, and a later
                // activation of this instance deletes those this life leaves.
                let deleted = message.payload().is_none_or(<[u8]>::is_empty);
                self.order_records.take(rest, message.offset(), deleted);
            } else if rest == "lease" {
                let payload = message.payload().unwrap_or_default();
                // Each instance's newest: this instance's lease read back must not
                // hide another's (a guard that had just stepped down took the
                // active role again), nor an older one a newer (reading again).
                if let Ok(lease) = serde_json::from_slice::<Lease>(payload) {
                    if self
                        .leases
                        .get(&lease.instance)
                        .is_none_or(|(held, _)| held.at_ms <= lease.at_ms)
                    {
                        self.leases
                            .insert(lease.instance.clone(), (lease, Instant::now()));
                    }
                }
            } else if self.active {
                // The active instance wrote these itself (or will tombstone them):
                // holding them is waste. Only the epochs are followed.
                if rest == "manifest" {
                    if let Some(rival) = rival(&self.config.instance, message.payload()) {
                        if self.rivals.insert(rival.lineage.clone()) {
                            warn!(rival = %rival.lineage, "another instance published a snapshot lineage while this one is active: this one starts a new lineage");
                            self.signals
                                .rival_epoch
                                .fetch_max(rival.epoch.max(1), Ordering::Relaxed);
                        }
                    }
                    self.reader.take(rest, message.payload());
                    self.reader.clear();
                }
            } else {
                self.reader.take(rest, message.payload());
            }
        }
    }

    /// The newest complete snapshot read so far (`None`, with a warning, when the
    /// newest one is incomplete or of another format).
    pub fn latest(&self) -> Option<Published> {
        match self.reader.snapshot() {
            Ok(snapshot) => snapshot,
            Err(e) => {
                warn!(error = %e, "no snapshot from the changelog");
                None
            }
        }
    }

    /// Whether another instance holds a live lease (seen within `timeout`, and not
    /// older than `timeout` by its own clock); of several, the one with the smallest
    /// name (the one that stays).
    pub fn other_active(&self, timeout: Duration) -> Option<&Lease> {
        self.leases.values().find_map(|(lease, seen)| {
            let fresh =
                seen.elapsed() < timeout && now_ms() - lease.at_ms < timeout.as_millis() as i64;
            (!self.is_own(lease) && fresh).then_some(lease)
        })
    }

    /// Whether `lease` is this instance's, or names its store (written by an earlier
    /// process on the same state directory).
    fn is_own(&self, lease: &Lease) -> bool {
        lease.instance == self.config.instance
            || (lease.store.is_some() && lease.store == self.store)
    }

    /// Tells peers at once that this instance takes the active role (a peer starting
    /// now waits for it rather than taking the role too), and waits briefly for the
    /// broker to have it.
    pub fn announce(&mut self) {
        self.last_lease_sent = None;
        self.publish_lease();
        kafka::wait_delivered(&self.producer, Duration::from_secs(1));
    }

    /// Takes the active role: the publisher of a new lineage for the store writer
    /// (it deletes the blocks of every older one read so far, and the order records
    /// read so far once no cut within the horizon needs them); from here on this
    /// instance holds nothing of what it reads but the lease and where order records
    /// are.
    ///
    /// # Errors
    /// The Kafka error when the writer's producer cannot be created.
    pub fn activate(&mut self) -> Result<ChangelogWriter, rdkafka::error::KafkaError> {
        let publisher = Publisher::new(
            &self.config.instance,
            self.reader.max_epoch() + 1,
            self.reader.block_keys(),
        );
        self.active = true;
        self.rivals.clear();
        self.signals = Arc::default();
        let (cuts, runs) = self.reader.order_trail();
        self.reader.clear();
        // A copy: the reader goes on noting them (and their deletions), so a later
        // activation of this process still knows what is left.
        let mut earlier = self.order_records.clone();
        earlier.carry(runs);
        let mut trim = Trim::new(self.config.policy.state.horizon, earlier);
        trim.seed_cuts(cuts);
        let mut writer = ChangelogWriter::open(&self.config, publisher, trim)?;
        writer.follow(Arc::clone(&self.signals));
        Ok(writer)
    }

    /// This instance steps down: its store writer publishes nothing more.
    pub fn step_down(&self) {
        self.signals.stepping_down.store(true, Ordering::Relaxed);
    }

    /// Back to standby, after stepping down: reads the changelog again from its
    /// beginning. While active it held none of the blocks and state it read, so of the
    /// lineage the instance that stays started meanwhile (on reading this one's: see
    /// [`rival`]) it would hold only what came after, and never restore it.
    ///
    /// # Errors
    /// The Kafka error when the topic cannot be assigned again.
    pub fn deactivate(&mut self) -> Result<(), rdkafka::error::KafkaError> {
        self.active = false;
        read_from_start(&self.consumer, &self.config.topics.state)?;
        self.reader = Reader::default();
        self.order_records = Earlier::default();
        self.next_offset = 0;
        self.catch_up(Duration::from_millis(700));
        Ok(())
    }

    /// Publishes the lease, once a second.
    pub fn publish_lease(&mut self) {
        if self
            .last_lease_sent
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            self.producer.poll(Duration::ZERO);
            return;
        }
        self.last_lease_sent = Some(Instant::now());
        let lease = Lease {
            instance: self.config.instance.clone(),
            at_ms: now_ms(),
            store: self.store.clone(),
        };
        let payload = serde_json::to_vec(&lease).unwrap_or_default();
        let key = format!("{}/lease", self.config.group_id);
        if let Err((e, _)) = self.producer.send(
            BaseRecord::to(&self.config.topics.state)
                .key(&key)
                .payload(&payload),
        ) {
            warn!(error = %e, "cannot publish the lease");
        }
        self.producer.poll(Duration::ZERO);
    }

    /// Flushes what was published.
    pub fn flush(&self) {
        kafka::wait_delivered(&self.producer, Duration::from_secs(5));
    }

    /// Reads the changelog at start: up to its end as the broker reports it now
    /// (every record written before, an active peer's last lease among them), or, when
    /// the broker does not tell, until it has been quiet for `quiet`. `true` when it
    /// stopped at the end.
    pub fn catch_up(&mut self, quiet: Duration) -> bool {
        let started = Instant::now();
        let end = self
            .consumer
            .fetch_watermarks(&self.config.topics.state, 0, kafka::METADATA_TIMEOUT)
            .ok()
            .map(|(low, high)| (high > low).then_some(high));
        let mut last = Instant::now();
        let mut at_end = false;
        // An active peer keeps writing leases; ten seconds is enough to reach the end.
        while last.elapsed() < quiet && started.elapsed() < Duration::from_secs(10) {
            if let Some(end) = end {
                if end.is_none_or(|end| self.next_offset >= end) {
                    // tansu may report the end as the last batch's first offset + 1:
                    // the rest of that batch came with it and is taken too.
                    self.poll(Duration::ZERO);
                    at_end = true;
                    break;
                }
            }
            // Any record read is progress: the order records the reader does not hold
            // (many, between two cuts) included.
            let before = self.next_offset;
            self.poll(Duration::from_millis(50));
            if self.next_offset != before {
                last = Instant::now();
            }
        }
        info!(
            snapshot = self.reader.has_cut(),
            leases = ?self.leases.keys().collect::<Vec<_>>(),
            at_end,
            took_ms = started.elapsed().as_millis() as u64,
            "changelog read"
        );
        at_end
    }
}
