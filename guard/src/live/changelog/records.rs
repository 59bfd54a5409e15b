//! The changelog's records, without Kafka: what the writer publishes for a written
//! checkpoint ([`Publisher`]) and how a reader assembles a snapshot from whatever
//! it has read ([`Reader`]).
//!
//! Format 2 (this build) carries what the store carries, as deltas:
//! - `GROUP/seen/LINEAGE/N`: a block of dedup entries (24 bytes each: key, event
//!   second), numbered `N` in its lineage, written once; a tombstone once every
//!   entry of the block is past the state horizon of a published snapshot;
//! - `GROUP/state/I`: the checkpoint without its dedup ids (engine, offsets, outbox,
//!   horizon) as JSON, in chunks small enough for any broker's message limit;
//! - `GROUP/manifest` last: the cut — the checkpoint number, the chunk count and
//!   SHA-256, and how many blocks (up to which number), entries and which digest of
//!   them make the dedup set of that checkpoint.
//!
//! A lineage (`EPOCH.INSTANCE`) starts when an instance becomes active: it writes its
//! whole dedup set once as new blocks, then only what each checkpoint adds, and
//! tombstones the blocks of older lineages it read. A reader restores the newest
//! manifest whose chunks and blocks are all present and match; anything else (a
//! half-written snapshot, a compacted-away chunk) is no snapshot at all.
//!
//! Format 1 (older builds) published whole snapshots; its manifest is refused with a
//! message saying so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::live::store::{Checkpoint, OutMsg, Partition, SeenEntry};

/// The changelog format this build writes and reads.
pub const FORMAT: u32 = 2;
/// Largest chunk of the state record in one message.
const CHUNK: usize = 256 * 1024;
/// Most dedup entries in one block (384 KiB).
pub const BLOCK_ENTRIES: usize = 16 * 1024;
const ENTRY: usize = 24;

/// One record to produce: a key under the group and a payload (`None`: a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key after `GROUP/`.
    pub key: String,
    /// The value; `None` deletes the key on the compacted topic.
    pub payload: Option<Vec<u8>>,
}

/// A snapshot restored from the changelog.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The instance that wrote it.
    pub instance: String,
    /// The checkpoint without its dedup ids.
    pub checkpoint: Checkpoint,
    /// Every dedup entry of the snapshot within its horizon.
    pub seen: Vec<SeenEntry>,
}

impl Published {
    /// How far into the inputs this snapshot reaches (to pick the newest of two).
    pub fn progress(&self) -> i64 {
        self.checkpoint.offsets.values().sum()
    }
}

/// The state record: the checkpoint without its dedup ids. On the wire this head as
/// one line of JSON, then the engine snapshot's own bytes (JSON text without the
/// dedup ids), so the snapshot is neither escaped nor copied into a string.
#[derive(Serialize, Deserialize)]
pub(super) struct StateRecord {
    pub instance: String,
    pub seq: u64,
    #[serde(with = "crate::engine::pairs")]
    pub offsets: BTreeMap<Partition, i64>,
    pub outbox: Vec<OutMsg>,
    pub seen_from: Option<i64>,
}

/// The cut a reader restores.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Manifest {
    /// Absent in format 1.
    #[serde(default = "format_1")]
    pub format: u32,
    #[serde(default)]
    pub lineage: String,
    #[serde(default)]
    pub epoch: u64,
    pub seq: u64,
    pub chunks: usize,
    pub sha256: String,
    #[serde(default)]
    pub seen_from: Option<i64>,
    /// The dedup set: blocks numbered up to `through`, of which `blocks` are within
    /// the horizon, holding `entries` entries, whose digests XOR to `digest`.
    #[serde(default)]
    pub through: u64,
    #[serde(default)]
    pub blocks: u64,
    #[serde(default)]
    pub entries: u64,
    #[serde(default)]
    pub digest: String,
}

fn format_1() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
pub(super) struct ChunkHeader {
    pub lineage: String,
    pub seq: u64,
    pub index: usize,
}

/// A block's own digest (the first 8 bytes of SHA-256 over its number and entries).
pub(super) fn block_digest(number: u64, bytes: &[u8]) -> u64 {
    let mut hash = Sha256::new();
    hash.update(number.to_be_bytes());
    hash.update(bytes);
    u64::from_be_bytes(hash.finalize()[..8].try_into().expect("8 bytes"))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_entries(entries: &[SeenEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY);
    for entry in entries {
        bytes.extend_from_slice(&entry.key().to_be_bytes());
        bytes.extend_from_slice(&entry.second().to_be_bytes());
    }
    bytes
}

pub(super) fn decode_entries(bytes: &[u8]) -> impl Iterator<Item = SeenEntry> + '_ {
    bytes.chunks_exact(ENTRY).map(|raw| {
        SeenEntry::new(
            u128::from_be_bytes(raw[..16].try_into().expect("16 bytes")),
            i64::from_be_bytes(raw[16..].try_into().expect("8 bytes")),
        )
    })
}

/// The state record of `checkpoint`: its head, a newline, its engine snapshot.
fn state_record(instance: &str, checkpoint: &Checkpoint) -> Vec<u8> {
    let head = StateRecord {
        instance: instance.to_owned(),
        seq: checkpoint.seq,
        offsets: checkpoint.offsets.clone(),
        outbox: checkpoint.outbox.clone(),
        seen_from: checkpoint.seen_from,
    };
    let head = serde_json::to_vec(&head).expect("state records serialise");
    let mut bytes = Vec::with_capacity(head.len() + 1 + checkpoint.engine.len());
    bytes.extend_from_slice(&head);
    bytes.push(b'\n');
    bytes.extend_from_slice(&checkpoint.engine);
    bytes
}

/// A block as the writer remembers it: enough to count it and to tombstone it.
#[derive(Clone, Copy)]
struct BlockMark {
    digest: u64,
    entries: u64,
}

/// The writer's side: turns written checkpoints into records.
pub struct Publisher {
    instance: String,
    epoch: u64,
    lineage: String,
    /// Blocks of this lineage within the horizon, by (newest second, number).
    live: BTreeMap<(i64, u64), BlockMark>,
    next_block: u64,
    digest: u64,
    entries: u64,
    /// Keys of older lineages, tombstoned after this lineage's first manifest.
    stale: Vec<String>,
    /// Chunks of the state record the last manifest named.
    chunks: usize,
    /// The lineage has published its whole dedup set.
    started: bool,
}

impl Publisher {
    /// A new lineage `epoch.instance`; `stale` are block keys of older lineages.
    pub fn new(instance: &str, epoch: u64, stale: Vec<String>) -> Self {
        Publisher {
            instance: instance.to_owned(),
            epoch,
            lineage: format!("{epoch}.{instance}"),
            live: BTreeMap::new(),
            next_block: 0,
            digest: 0,
            entries: 0,
            stale,
            chunks: 0,
            started: false,
        }
    }

    /// Starts the next lineage (after a record could not be published, the current
    /// one can no longer make a complete cut): it needs the whole dedup set again and
    /// tombstones every block of this one.
    pub fn restart(&mut self) {
        let mut stale = std::mem::take(&mut self.stale);
        stale.extend(
            self.live
                .keys()
                .map(|(_, n)| format!("seen/{}/{n}", self.lineage)),
        );
        let chunks = self.chunks;
        *self = Publisher::new(&self.instance.clone(), self.epoch + 1, stale);
        self.chunks = chunks;
    }

    /// Whether the lineage still needs the whole dedup set (its first checkpoint).
    pub fn wants_full(&self) -> bool {
        !self.started
    }

    /// The blocks of dedup entries new in a written checkpoint (`full`: the whole set,
    /// the first time).
    pub fn blocks(&mut self, seen: &[SeenEntry], full: bool) -> Vec<Record> {
        if full {
            self.started = true;
        }
        seen.chunks(BLOCK_ENTRIES)
            .map(|entries| {
                let number = self.next_block;
                self.next_block += 1;
                let bytes = encode_entries(entries);
                let newest = entries.iter().map(|e| e.second()).max().unwrap_or(i64::MIN);
                let mark = BlockMark {
                    digest: block_digest(number, &bytes),
                    entries: entries.len() as u64,
                };
                self.digest ^= mark.digest;
                self.entries += mark.entries;
                self.live.insert((newest, number), mark);
                Record {
                    key: format!("seen/{}/{number}", self.lineage),
                    payload: Some(bytes),
                }
            })
            .collect()
    }

    /// The state record and the manifest of `checkpoint` (whose blocks were published
    /// before), then the tombstones its horizon allows.
    pub fn snapshot(&mut self, checkpoint: &Checkpoint) -> Vec<Record> {
        let from = checkpoint.seen_from.unwrap_or(i64::MIN);
        let mut gone = Vec::new();
        while let Some(entry) = self.live.first_entry() {
            if entry.key().0 >= from {
                break;
            }
            let ((_, number), mark) = entry.remove_entry();
            self.digest ^= mark.digest;
            self.entries -= mark.entries;
            gone.push(number);
        }
        let bytes = state_record(&self.instance, checkpoint);
        let mut records = Vec::new();
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
        for (index, data) in chunks.iter().enumerate() {
            let header = ChunkHeader {
                lineage: self.lineage.clone(),
                seq: checkpoint.seq,
                index,
            };
            let mut payload = serde_json::to_vec(&header).expect("headers serialise");
            payload.push(b'\n');
            payload.extend_from_slice(data);
            records.push(Record {
                key: format!("state/{index}"),
                payload: Some(payload),
            });
        }
        let manifest = Manifest {
            format: FORMAT,
            lineage: self.lineage.clone(),
            epoch: self.epoch,
            seq: checkpoint.seq,
            chunks: chunks.len(),
            sha256: hex(&Sha256::digest(&bytes)),
            seen_from: checkpoint.seen_from,
            through: self.next_block,
            blocks: self.live.len() as u64,
            entries: self.entries,
            digest: format!("{:016x}", self.digest),
        };
        records.push(Record {
            key: "manifest".into(),
            payload: Some(serde_json::to_vec(&manifest).expect("manifests serialise")),
        });
        // After the manifest: a reader holding the previous cut keeps what it needs
        // until the one that no longer needs it is complete.
        let tombstone = |key: String| Record { key, payload: None };
        records.extend(
            gone.into_iter()
                .map(|n| tombstone(format!("seen/{}/{n}", self.lineage))),
        );
        records.extend(std::mem::take(&mut self.stale).into_iter().map(tombstone));
        records.extend((chunks.len()..self.chunks).map(|i| tombstone(format!("state/{i}"))));
        self.chunks = chunks.len();
        records
    }
}
