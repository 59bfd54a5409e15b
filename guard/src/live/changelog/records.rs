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

use crate::live::order_log::Run;
use crate::live::store::{Checkpoint, OutMsg, Partition, SeenBlocks, SeenEntry};

/// The changelog format this build writes. Format 3 keeps the outbox's payloads as
/// text where format 2 wrote arrays of bytes; both are read ([`READS`]).
pub const FORMAT: u32 = 3;
/// The changelog formats this build reads.
pub const READS: [u32; 2] = [2, 3];
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
    pub seen: SeenBlocks,
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
    /// Absent from records of older builds.
    #[serde(default)]
    pub journal_from: Option<i64>,
    /// The writer's order-record cuts before this one (absent from older builds).
    #[serde(default)]
    pub order_cuts: Vec<[i64; 2]>,
    /// The order records before this cut not deleted yet (absent from older builds).
    #[serde(default)]
    pub order_runs: Vec<Run>,
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

/// The head of `checkpoint`'s state record and the newline after it; the engine
/// snapshot's bytes follow on the wire. Serialised from borrowed fields: the outbox
/// is not copied.
fn state_head(instance: &str, checkpoint: &Checkpoint) -> Vec<u8> {
    #[derive(Serialize)]
    struct Head<'a> {
        instance: &'a str,
        seq: u64,
        #[serde(serialize_with = "crate::engine::pairs::serialize_ref")]
        offsets: &'a BTreeMap<Partition, i64>,
        outbox: &'a [OutMsg],
        seen_from: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        journal_from: Option<i64>,
        #[serde(skip_serializing_if = "<[[i64; 2]]>::is_empty")]
        order_cuts: &'a [[i64; 2]],
        #[serde(skip_serializing_if = "<[Run]>::is_empty")]
        order_runs: &'a [Run],
    }
    let mut head = serde_json::to_vec(&Head {
        instance,
        seq: checkpoint.seq,
        offsets: &checkpoint.offsets,
        outbox: &checkpoint.outbox,
        seen_from: checkpoint.seen_from,
        journal_from: checkpoint.journal_from,
        order_cuts: &checkpoint.order_cuts,
        order_runs: &checkpoint.order_runs,
    })
    .expect("state records serialise");
    head.push(b'\n');
    head
}

/// Bytes `start..end` of `first` followed by `second`, appended to `out`.
fn extend_from_joined(out: &mut Vec<u8>, first: &[u8], second: &[u8], start: usize, end: usize) {
    let split = first.len();
    if start < split {
        out.extend_from_slice(&first[start..end.min(split)]);
    }
    if end > split {
        out.extend_from_slice(&second[start.max(split) - split..end - split]);
    }
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
        self.restart_above(0);
    }

    /// [`Publisher::restart`] with an epoch above `floor` too (a rival lineage's).
    pub fn restart_above(&mut self, floor: u64) {
        let mut stale = std::mem::take(&mut self.stale);
        stale.extend(
            self.live
                .keys()
                .map(|(_, n)| format!("seen/{}/{n}", self.lineage)),
        );
        let chunks = self.chunks;
        *self = Publisher::new(&self.instance.clone(), self.epoch.max(floor) + 1, stale);
        self.chunks = chunks;
    }

    /// The lineage's epoch (a restart takes the next).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the lineage still needs the whole dedup set (its first checkpoint).
    pub fn wants_full(&self) -> bool {
        !self.started
    }

    /// The blocks of dedup entries new in a written checkpoint (`full`: the whole set,
    /// the first time).
    pub fn blocks(&mut self, seen: &[SeenEntry], full: bool) -> Vec<Record> {
        let mut records = Vec::new();
        self.blocks_each(&SeenBlocks::from(seen), full, |record| {
            records.push(record);
            true
        });
        records
    }

    /// [`Publisher::blocks`] one block at a time, handed to `send` as it is encoded;
    /// stops at the first record `send` refuses and returns `false`.
    pub fn blocks_each(
        &mut self,
        seen: &SeenBlocks,
        full: bool,
        mut send: impl FnMut(Record) -> bool,
    ) -> bool {
        if full {
            self.started = true;
        }
        for entries in seen.slices().flat_map(|slice| slice.chunks(BLOCK_ENTRIES)) {
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
            let record = Record {
                key: format!("seen/{}/{number}", self.lineage),
                payload: Some(bytes),
            };
            if !send(record) {
                return false;
            }
        }
        true
    }

    /// The state record and the manifest of `checkpoint` (whose blocks were published
    /// before), then the tombstones its horizon allows.
    pub fn snapshot(&mut self, checkpoint: &Checkpoint) -> Vec<Record> {
        let mut records = Vec::new();
        self.snapshot_each(checkpoint, |record| {
            records.push(record);
            true
        });
        records
    }

    /// Forgets the blocks whose newest entry is before `from`; their numbers.
    fn forget_blocks_before(&mut self, from: i64) -> Vec<u64> {
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
        gone
    }

    /// [`Publisher::snapshot`] one record at a time, handed to `send` as it is made
    /// (the state record is never whole in memory twice); stops at the first record
    /// `send` refuses and returns `false`.
    pub fn snapshot_each(
        &mut self,
        checkpoint: &Checkpoint,
        mut send: impl FnMut(Record) -> bool,
    ) -> bool {
        let gone = self.forget_blocks_before(checkpoint.seen_from.unwrap_or(i64::MIN));
        let head = state_head(&self.instance, checkpoint);
        let engine = &checkpoint.engine;
        let total = head.len() + engine.len();
        let chunks = total.div_ceil(CHUNK);
        let manifest = Manifest {
            format: FORMAT,
            lineage: self.lineage.clone(),
            epoch: self.epoch,
            seq: checkpoint.seq,
            chunks,
            sha256: hex(&Sha256::new()
                .chain_update(&head)
                .chain_update(engine)
                .finalize()),
            seen_from: checkpoint.seen_from,
            through: self.next_block,
            blocks: self.live.len() as u64,
            entries: self.entries,
            digest: format!("{:016x}", self.digest),
        };
        // After the manifest: a reader holding the previous cut keeps what it needs
        // until the one that no longer needs it is complete.
        let mut tombstones: Vec<String> = gone
            .into_iter()
            .map(|n| format!("seen/{}/{n}", self.lineage))
            .collect();
        tombstones.append(&mut self.stale);
        tombstones.extend((chunks..self.chunks).map(|i| format!("state/{i}")));
        self.chunks = chunks;
        for index in 0..chunks {
            let header = ChunkHeader {
                lineage: self.lineage.clone(),
                seq: checkpoint.seq,
                index,
            };
            let mut payload = serde_json::to_vec(&header).expect("headers serialise");
            payload.push(b'\n');
            let start = index * CHUNK;
            extend_from_joined(
                &mut payload,
                &head,
                engine,
                start,
                (start + CHUNK).min(total),
            );
            let record = Record {
                key: format!("state/{index}"),
                payload: Some(payload),
            };
            if !send(record) {
                return false;
            }
        }
        let manifest = Record {
            key: "manifest".into(),
            payload: Some(serde_json::to_vec(&manifest).expect("manifests serialise")),
        };
        std::iter::once(manifest)
            .chain(
                tombstones
                    .into_iter()
                    .map(|key| Record { key, payload: None }),
            )
            .all(send)
    }
}

#[cfg(test)]
mod tests {
    use super::extend_from_joined;

    #[test]
    fn any_range_of_two_joined_slices_is_the_range_of_their_concatenation() {
        let (first, second) = (b"head\n".as_slice(), b"engine bytes".as_slice());
        let joined = [first, second].concat();
        for start in 0..=joined.len() {
            for end in start..=joined.len() {
                let mut out = b"prefix".to_vec();
                extend_from_joined(&mut out, first, second, start, end);
                assert_eq!(&out[6..], &joined[start..end], "{start}..{end}");
            }
        }
    }
}
