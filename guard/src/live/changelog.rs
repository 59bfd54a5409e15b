//! The state changelog (CONTRACT §5 layer 2) and the standby lease.
//!
//! The active guard publishes to the compacted `guard_state` topic, keyed under its
//! group id:
//! - `GROUP/lease` every second: which instance is active, and when it last said so;
//! - `GROUP/chunk/I` and `GROUP/manifest` about once a second: the full engine
//!   snapshot (with the seen ids) and the input offsets it covers, split into chunks
//!   small enough for any broker's message limit, the manifest last.
//!
//! A standby tails the topic, keeps the newest complete snapshot in memory, and takes
//! over when no lease has arrived for `lease_timeout`. Two instances that both
//! believe they are active publish the same deterministic ids, so the worst case is
//! harmless duplicates until the one with the larger instance name steps down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::config::LiveConfig;
use super::kafka;
use super::store::{OutMsg, Partition};

/// Largest chunk of a snapshot in one message.
const CHUNK: usize = 256 * 1024;

/// What the active guard says every second.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// The active instance.
    pub instance: String,
    /// Wall-clock milliseconds when it was sent.
    pub at_ms: i64,
}

/// The snapshot as carried on the changelog.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Published {
    /// The instance that wrote it.
    pub instance: String,
    /// Full engine snapshot (with the seen ids), as the engine's JSON text.
    pub engine: String,
    /// Input offsets it covers.
    #[serde(with = "crate::engine::pairs")]
    pub offsets: BTreeMap<Partition, i64>,
    /// Messages not yet acknowledged when it was taken.
    pub outbox: Vec<OutMsg>,
}

impl Published {
    /// How far into the inputs this snapshot reaches (to pick the newest of two).
    pub fn progress(&self) -> i64 {
        self.offsets.values().sum()
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    seq: u64,
    chunks: usize,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct ChunkHeader {
    seq: u64,
    index: usize,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads and writes the changelog.
pub struct Changelog {
    topic: String,
    group: String,
    instance: String,
    consumer: BaseConsumer,
    producer: BaseProducer,
    chunks: BTreeMap<usize, (u64, Vec<u8>)>,
    latest: Option<Published>,
    last_lease: Option<(Lease, Instant)>,
    published_seq: u64,
    last_lease_sent: Option<Instant>,
    last_snapshot_sent: Option<Instant>,
    snapshot_every: Duration,
    active: bool,
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
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&config.topics.state, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let producer: BaseProducer = kafka::producer(config).create()?;
        Ok(Changelog {
            topic: config.topics.state.clone(),
            group: config.group_id.clone(),
            instance: config.instance.clone(),
            consumer,
            producer,
            chunks: BTreeMap::new(),
            latest: None,
            last_lease: None,
            published_seq: 0,
            last_lease_sent: None,
            last_snapshot_sent: None,
            snapshot_every: Duration::from_secs(1),
            active: false,
        })
    }

    /// Reads whatever has arrived, waiting at most `wait` for the first message.
    pub fn poll(&mut self, wait: Duration) {
        let mut timeout = wait;
        for _ in 0..1_000 {
            let Some(polled) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let Ok(message) = polled else { continue };
            let Some(key) = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
            else {
                continue;
            };
            let Some(rest) = key.strip_prefix(&format!("{}/", self.group)) else {
                continue;
            };
            let payload = message.payload().unwrap_or_default();
            if rest == "lease" {
                if let Ok(lease) = serde_json::from_slice::<Lease>(payload) {
                    self.last_lease = Some((lease, Instant::now()));
                }
            } else if self.active {
                // The active instance wrote these itself; assembling them is waste.
                continue;
            } else if let Some(index) = rest.strip_prefix("chunk/") {
                let Some(split) = payload.iter().position(|b| *b == b'\n') else {
                    continue;
                };
                if let (Ok(header), Ok(index)) = (
                    serde_json::from_slice::<ChunkHeader>(&payload[..split]),
                    index.parse::<usize>(),
                ) {
                    if header.index == index {
                        self.chunks
                            .insert(index, (header.seq, payload[split + 1..].to_vec()));
                    }
                }
            } else if rest == "manifest" {
                if let Ok(manifest) = serde_json::from_slice::<Manifest>(payload) {
                    self.assemble(&manifest);
                }
            }
        }
    }

    fn assemble(&mut self, manifest: &Manifest) {
        let mut bytes = Vec::new();
        for i in 0..manifest.chunks {
            match self.chunks.get(&i) {
                Some((seq, data)) if *seq == manifest.seq => bytes.extend_from_slice(data),
                _ => return,
            }
        }
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != manifest.sha256 {
            warn!(
                seq = manifest.seq,
                "changelog snapshot fails its checksum; ignored"
            );
            return;
        }
        match serde_json::from_slice::<Published>(&bytes) {
            Ok(published) => {
                debug!(
                    seq = manifest.seq,
                    progress = published.progress(),
                    "changelog snapshot complete"
                );
                self.latest = Some(published);
            }
            Err(e) => warn!(error = %e, "changelog snapshot unreadable; ignored"),
        }
    }

    /// The newest complete snapshot read so far.
    pub fn latest(&self) -> Option<&Published> {
        self.latest.as_ref()
    }

    /// Whether another instance holds a live lease (seen within `timeout`, and not
    /// older than `timeout` by its own clock).
    pub fn other_active(&self, timeout: Duration) -> Option<&Lease> {
        let (lease, seen) = self.last_lease.as_ref()?;
        let fresh = seen.elapsed() < timeout && now_ms() - lease.at_ms < timeout.as_millis() as i64;
        (lease.instance != self.instance && fresh).then_some(lease)
    }

    /// Marks this instance active (it stops assembling snapshots it wrote itself).
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
        if active {
            self.chunks.clear();
        }
    }

    /// Publishes the lease (once a second) and the snapshot when the state moved: at
    /// most once a second, and never more than ~5% of the time (a large state is
    /// published less often).
    pub fn publish(&mut self, seq: u64, snapshot: impl FnOnce() -> Published) {
        if self
            .last_lease_sent
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_lease_sent = Some(Instant::now());
            let lease = Lease {
                instance: self.instance.clone(),
                at_ms: now_ms(),
            };
            let payload = serde_json::to_vec(&lease).unwrap_or_default();
            let key = format!("{}/lease", self.group);
            if let Err((e, _)) = self
                .producer
                .send(BaseRecord::to(&self.topic).key(&key).payload(&payload))
            {
                warn!(error = %e, "cannot publish the lease");
            }
        }
        if seq > self.published_seq
            && self
                .last_snapshot_sent
                .is_none_or(|t| t.elapsed() >= self.snapshot_every)
        {
            let started = Instant::now();
            self.last_snapshot_sent = Some(started);
            self.published_seq = seq;
            let bytes = serde_json::to_vec(&snapshot()).unwrap_or_default();
            let sha256: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
            for (index, data) in chunks.iter().enumerate() {
                let mut payload =
                    serde_json::to_vec(&ChunkHeader { seq, index }).unwrap_or_default();
                payload.push(b'\n');
                payload.extend_from_slice(data);
                let key = format!("{}/chunk/{index}", self.group);
                self.send_waiting(&key, &payload);
            }
            let manifest = serde_json::to_vec(&Manifest {
                seq,
                chunks: chunks.len(),
                sha256,
            })
            .unwrap_or_default();
            let key = format!("{}/manifest", self.group);
            self.send_waiting(&key, &manifest);
            self.snapshot_every = (started.elapsed() * 20).max(Duration::from_secs(1));
        }
        self.producer.poll(Duration::ZERO);
    }

    fn send_waiting(&self, key: &str, payload: &[u8]) {
        for _ in 0..200 {
            match self
                .producer
                .send(BaseRecord::to(&self.topic).key(key).payload(payload))
            {
                Ok(()) => return,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    warn!(error = %e, "cannot publish to the changelog");
                    return;
                }
            }
        }
    }

    /// Flushes what was published.
    pub fn flush(&self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }

    /// Reads the changelog until it has been quiet for `quiet` (catching up at start).
    pub fn catch_up(&mut self, quiet: Duration) {
        let started = Instant::now();
        let mut last = Instant::now();
        // An active peer keeps writing leases; ten seconds is enough to reach the end.
        while last.elapsed() < quiet && started.elapsed() < Duration::from_secs(10) {
            let before = (
                self.last_lease.as_ref().map(|l| l.0.at_ms),
                self.chunks.len(),
                self.latest.is_some(),
            );
            self.poll(Duration::from_millis(50));
            if before
                != (
                    self.last_lease.as_ref().map(|l| l.0.at_ms),
                    self.chunks.len(),
                    self.latest.is_some(),
                )
            {
                last = Instant::now();
            }
        }
        info!(snapshot = self.latest.is_some(), lease = ?self.last_lease.as_ref().map(|l| &l.0.instance), "changelog read");
    }
}
