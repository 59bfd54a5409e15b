//! Durable state of the live guard (CONTRACT §5 layer 1): the engine snapshot, the
//! next offset of every input partition and the outbox, written in one atomic batch.
//!
//! [`Store`] is the boundary; [`SledStore`] keeps it in sled (one tree, one
//! `sled::Batch` per checkpoint, then an fsync), [`MemStore`] in memory for tests and
//! benchmarks. The set of seen ids is written incrementally (one block file per
//! checkpoint, beside sled) so a checkpoint costs what changed, not the whole history.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::live::order_log::Run;

pub mod backup;
mod seen_files;
use seen_files::SeenFiles;

/// A message on its way out, kept until the broker acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMsg {
    /// The decision's id (`command_id` / `event_id`), or a DLQ entry's source position.
    pub id: String,
    /// Destination topic.
    pub topic: String,
    /// Kafka key.
    pub key: String,
    /// Payload (JSON). Kept as text ([`payload_text`]).
    #[serde(with = "payload_text")]
    pub payload: Vec<u8>,
    /// Headers (DLQ entries carry the reason and the source position).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Kafka timestamp to give the message (ms); the producer's clock when `None`.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
}

/// Payloads as text where they are UTF-8 (see the module).
mod payload_text;

/// Input position: topic and partition.
pub type Partition = (String, i32);

/// What a checkpoint holds besides the seen ids.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Monotonic number of this checkpoint (compared with the changelog's).
    pub seq: u64,
    /// The engine snapshot, without the seen ids. The sled store keeps it as raw
    /// bytes in a file of its own (layouts 4 and 5); a layout-3 checkpoint carried it
    /// inside its JSON, and is still read.
    #[serde(default)]
    pub engine: Vec<u8>,
    /// Next offset to read, per input partition.
    #[serde(with = "crate::engine::pairs")]
    pub offsets: BTreeMap<Partition, i64>,
    /// Messages decided but not yet acknowledged.
    pub outbox: Vec<OutMsg>,
    /// Seen ids of an event time (seconds) before this are forgotten: a store drops
    /// them, and never loads them back.
    #[serde(default)]
    pub seen_from: Option<i64>,
    /// Where on the state topic the order journal's records after this checkpoint
    /// begin: a restart reads the journal from here, not from the topic's start (its
    /// records are deleted only a state horizon later). `None` (a checkpoint of an
    /// older build, one from a backup, one cut at a record sent again:
    /// [`crate::live::order_log::Placed`]): from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_from: Option<i64>,
    /// What the order-record trimmer hands the next life
    /// ([`crate::live::order_log::Trim`]): the records before this checkpoint not
    /// deleted yet, and (below) its cuts before it as (forgetting floor, where their
    /// records begin). Empty from older builds. A guard whose changelog writer
    /// deletes takes them from the changelog's snapshot, not from its local store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_runs: Vec<Run>,
    /// See `order_runs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_cuts: Vec<[i64; 2]>,
}

/// A checkpoint as the sled store writes it under `c/checkpoint`: everything but the
/// engine snapshot (read back as a [`Checkpoint`]).
#[derive(Serialize)]
struct CheckpointHead<'a> {
    seq: u64,
    #[serde(serialize_with = "crate::engine::pairs::serialize_ref")]
    offsets: &'a BTreeMap<Partition, i64>,
    outbox: &'a [OutMsg],
    seen_from: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_from: Option<i64>,
    #[serde(skip_serializing_if = "<[Run]>::is_empty")]
    order_runs: &'a [Run],
    #[serde(skip_serializing_if = "<[[i64; 2]]>::is_empty")]
    order_cuts: &'a [[i64; 2]],
}

/// A seen-id entry: the dedup key and the event time (seconds) of its message.
pub use crate::engine::{SeenBlocks, SeenEntry};

/// A checkpoint as loaded, with every seen id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Every dedup entry persisted within the horizon.
    pub seen: Vec<SeenEntry>,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, disk full, corruption).
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// The stored checkpoint cannot be read by this build.
    #[error("state store holds an unreadable checkpoint: {0}")]
    Corrupt(String),
}

/// Durable state: load the last checkpoint, save a new one atomically.
pub trait Store: Send + 'static {
    /// The last saved checkpoint, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read or holds garbage.
    fn load(&self) -> Result<Option<Restored>, StoreError>;

    /// Saves `checkpoint` and adds `new_seen` in one atomic, durable write.
    ///
    /// # Errors
    /// [`StoreError`] when the write or the flush fails; nothing of it is then
    /// considered saved.
    fn save(&mut self, checkpoint: &Checkpoint, new_seen: &SeenBlocks) -> Result<(), StoreError>;

    /// The store's own name, made when it was created and kept with it (`None`: a
    /// store that does not outlive its process). An active guard's lease names it.
    fn id(&self) -> Option<&str> {
        None
    }
}

/// A store in memory.
#[derive(Default, Debug, Clone)]
pub struct MemStore {
    checkpoint: Option<Checkpoint>,
    seen: Vec<SeenEntry>,
}

impl Store for MemStore {
    fn load(&self) -> Result<Option<Restored>, StoreError> {
        Ok(self.checkpoint.clone().map(|checkpoint| Restored {
            checkpoint,
            seen: self.seen.clone(),
        }))
    }

    fn save(&mut self, checkpoint: &Checkpoint, new_seen: &SeenBlocks) -> Result<(), StoreError> {
        self.checkpoint = Some(checkpoint.clone());
        self.seen.extend(new_seen.iter());
        if let Some(from) = checkpoint.seen_from {
            self.seen.retain(|entry| entry.second() >= from);
        }
        Ok(())
    }
}

/// How long opening waits for a lock its own process is just letting go of.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);
const CHECKPOINT_KEY: &[u8] = b"c/checkpoint";
/// Where the engine snapshot of checkpoint `seq` is kept, raw (its JSON text): in a
/// file, as sled held on to every multi-megabyte value it was given.
fn engine_file(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join("engine").join(format!("{seq:016x}.json"))
}
const SEEN_PREFIX: u8 = b's';
/// Bumped when the layout changes; a store of another version is refused at start,
/// but for layouts 3 and 4, which the first checkpoint migrates.
const LAYOUT_KEY: &[u8] = b"c/layout";
const LAYOUT: &[u8] = b"noctria-guard/5";
/// Layout 4: the outbox's payloads as JSON arrays of bytes (layout 5: as text).
const LAYOUT_4: &[u8] = b"noctria-guard/4";
/// Layout 3: the engine snapshot inside `c/checkpoint`, as a JSON array of bytes.
const LAYOUT_3: &[u8] = b"noctria-guard/3";

/// The sled-backed store: one tree, key `c/checkpoint` (number, offsets, outbox,
/// horizon); the engine snapshot of that checkpoint in `engine/<number>.json`, and a
/// file per checkpoint under `seen/`
/// holding the entries it first saw (24 bytes each: key, event second), named by the
/// block's newest event second so that blocks wholly beyond the state horizon are
/// the first files. Layout 3 kept those blocks in sled (`s<newest><seq>`); they are
/// still read, and deleted at the horizon.
pub struct SledStore {
    db: sled::Db,
    seen: SeenFiles,
    dir: std::path::PathBuf,
    marker: std::path::PathBuf,
    marked: bool,
    /// A write failed: sled keeps its I/O error for good, so the next save reopens
    /// the store (dropping what the failed write left in memory) before it writes.
    failed: bool,
    /// [`Store::id`].
    id: String,
}

/// The store's name, made when it is created ([`Store::id`] adds where it is).
const STORE_ID_KEY: &[u8] = b"c/store_id";

/// [`Store::id`] of the store in `db` at `dir`: the name kept in it (made now when
/// it has none: time, process and a count of the stores this process made), and a
/// digest of the host's name and the directory's path. A copy of the directory
/// elsewhere is not the same store: its lease is another instance's.
fn store_id(db: &sled::Db, dir: &Path) -> Result<String, StoreError> {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = match db.get(STORE_ID_KEY)? {
        Some(name) => String::from_utf8_lossy(&name).into_owned(),
        None => {
            let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = crate::time::Timestamp::now().as_micros();
            let name = format!("{now:x}-{:x}-{made:x}", std::process::id());
            db.insert(STORE_ID_KEY, name.as_bytes())?;
            db.flush()?;
            name
        }
    };
    let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut host = [0u8; 256];
    // SAFETY: a buffer of its length; the name is cut at its first NUL below.
    let host = match unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } {
        0 => host.split(|b| *b == 0).next().unwrap_or_default().to_vec(),
        _ => Vec::new(),
    };
    let place = xxhash_rust::xxh3::xxh3_64(
        &[&host[..], b"\0", path.as_os_str().as_encoded_bytes()].concat(),
    );
    Ok(format!("{name}.{place:016x}"))
}

/// A file beside sled's own saying a checkpoint was written here: sled 0.34 opens a
/// directory of damaged files as an empty store without complaint, and an empty store
/// must then not pass for a fresh one.
const MARKER: &str = "guard-store.json";

/// `s`, the block's newest event second (sign bit flipped, so keys sort as numbers),
/// the checkpoint number.
fn seen_block_key(newest: i64, seq: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = SEEN_PREFIX;
    key[1..9].copy_from_slice(&((newest as u64) ^ (1 << 63)).to_be_bytes());
    key[9..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// [`StoreError`] when sled cannot open the directory, or it holds another layout.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = Self::open_db(dir)?;
        match db.get(LAYOUT_KEY)? {
            Some(layout) if ![LAYOUT, LAYOUT_4, LAYOUT_3].contains(&layout.as_ref()) => {
                return Err(StoreError::Corrupt(format!(
                    "layout {:?}, this build reads {:?} (and migrates {:?} and {:?})",
                    String::from_utf8_lossy(&layout),
                    String::from_utf8_lossy(LAYOUT),
                    String::from_utf8_lossy(LAYOUT_4),
                    String::from_utf8_lossy(LAYOUT_3)
                )))
            }
            Some(_) => {}
            None => {
                db.insert(LAYOUT_KEY, LAYOUT)?;
                db.flush()?;
            }
        }
        let marker = dir.join(MARKER);
        let marked = match std::fs::read_to_string(&marker) {
            Ok(text) => {
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", marker.display())))?;
                value["checkpointed"] == true
            }
            Err(_) => false,
        };
        if marked && db.get(CHECKPOINT_KEY)?.is_none() {
            return Err(StoreError::Corrupt(
                "the store says a checkpoint was written, but none can be read".into(),
            ));
        }
        let seen = SeenFiles::open(&dir.join("seen"))
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", dir.join("seen").display())))?;
        let id = store_id(&db, dir)?;
        Ok(SledStore {
            db,
            seen,
            dir: dir.to_owned(),
            marker,
            marked,
            failed: false,
            id,
        })
    }

    fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
        // sled 0.34 lets go of its file lock a moment after the last handle is
        // dropped (its background threads hold it): a reopen right after a close
        // waits for that, briefly, instead of failing.
        let mut waited = std::time::Duration::ZERO;
        loop {
            // A small page cache: the store is written, and read only at start.
            match sled::Config::new()
                .path(dir)
                .flush_every_ms(None)
                .cache_capacity(8 << 20)
                .open()
            {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && waited < LOCK_PATIENCE =>
                {
                    std::thread::sleep(LOCK_RETRY);
                    waited += LOCK_RETRY;
                }
                result => return Ok(result?),
            }
        }
    }

    /// Drops the open database (and its file lock) and opens the directory again:
    /// what is read back is what reached the disk.
    fn reopen(&mut self) -> Result<(), StoreError> {
        let placeholder = sled::Config::new().temporary(true).open()?;
        drop(std::mem::replace(&mut self.db, placeholder));
        self.db = Self::open_db(&self.dir)?;
        Ok(())
    }

    fn write(&mut self, checkpoint: &Checkpoint, new_seen: &SeenBlocks) -> Result<(), StoreError> {
        if self.failed {
            self.reopen()?;
            self.failed = false;
        }
        let mut batch = sled::Batch::default();
        // The engine snapshot goes raw under its own key: as a JSON array of bytes
        // inside the checkpoint it took three to four times its size, every time.
        let head = CheckpointHead {
            seq: checkpoint.seq,
            offsets: &checkpoint.offsets,
            outbox: &checkpoint.outbox,
            seen_from: checkpoint.seen_from,
            journal_from: checkpoint.journal_from,
            order_runs: &checkpoint.order_runs,
            order_cuts: &checkpoint.order_cuts,
        };
        let bytes = serde_json::to_vec(&head).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        batch.insert(CHECKPOINT_KEY, bytes);
        let engine = engine_file(&self.dir, checkpoint.seq);
        std::fs::create_dir_all(self.dir.join("engine"))
            .and_then(|()| seen_files::write_durably(&engine, &checkpoint.engine))
            .map_err(|e| StoreError::Corrupt(format!("cannot write {}: {e}", engine.display())))?;
        // A layout-3 or -4 store is migrated by its first checkpoint, in the same batch.
        batch.insert(LAYOUT_KEY, LAYOUT);
        // The block is on disk before the checkpoint that names it is committed.
        self.seen
            .write(checkpoint.seq, new_seen)
            .map_err(|e| StoreError::Corrupt(format!("cannot write a block of seen ids: {e}")))?;
        if let Some(from) = checkpoint.seen_from {
            // Layout-3 blocks whose newest entry is beyond the horizon.
            let end = seen_block_key(from, 0);
            for entry in self.db.range(&[SEEN_PREFIX][..]..&end[..]) {
                let (key, _) = entry?;
                batch.remove(key);
            }
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        // Committed: the engine snapshots of earlier checkpoints are no longer needed.
        for entry in std::fs::read_dir(self.dir.join("engine"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path() != engine {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Some(from) = checkpoint.seen_from {
            // Committed: the blocks beyond its horizon are no longer needed.
            self.seen.forget_before(from).map_err(|e| {
                StoreError::Corrupt(format!("cannot delete a block of seen ids: {e}"))
            })?;
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn id(&self) -> Option<&str> {
        Some(&self.id)
    }

    fn load(&self) -> Result<Option<Restored>, StoreError> {
        let Some(bytes) = self.db.get(CHECKPOINT_KEY)? else {
            return Ok(None);
        };
        let mut checkpoint: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if self.db.get(LAYOUT_KEY)?.as_deref() != Some(LAYOUT_3) {
            let path = engine_file(&self.dir, checkpoint.seq);
            checkpoint.engine = std::fs::read(&path).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the checkpoint's engine snapshot {}: {e}",
                    path.display()
                ))
            })?;
        }
        let mut seen = Vec::new();
        let from = checkpoint.seen_from.unwrap_or(i64::MIN);
        for entry in self.db.scan_prefix([SEEN_PREFIX]) {
            let (_, ids) = entry?;
            if ids.len() % 24 != 0 {
                return Err(StoreError::Corrupt(
                    "a block of seen ids has a partial entry".into(),
                ));
            }
            seen.extend(
                ids.chunks_exact(24)
                    .map(|raw| {
                        SeenEntry::new(
                            u128::from_be_bytes(raw[..16].try_into().expect("16 bytes")),
                            i64::from_be_bytes(raw[16..].try_into().expect("8 bytes")),
                        )
                    })
                    .filter(|entry| entry.second() >= from),
            );
        }
        self.seen
            .read(checkpoint.seq, from, &mut seen)
            .map_err(StoreError::Corrupt)?;
        Ok(Some(Restored { checkpoint, seen }))
    }

    fn save(&mut self, checkpoint: &Checkpoint, new_seen: &SeenBlocks) -> Result<(), StoreError> {
        if let Err(e) = self.write(checkpoint, new_seen) {
            self.failed = true;
            return Err(e);
        }
        if !self.marked {
            std::fs::write(
                &self.marker,
                format!(
                    r#"{{"layout":"{}","checkpointed":true}}"#,
                    String::from_utf8_lossy(LAYOUT)
                ),
            )
            .map_err(|e| {
                StoreError::Corrupt(format!("cannot write {}: {e}", self.marker.display()))
            })?;
            self.marked = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
