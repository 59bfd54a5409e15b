//! The reader's side of the changelog: it holds what it has read (the dedup blocks as
//! raw bytes, the state record of the newest complete manifest) and assembles the
//! snapshot only when asked, checking it against the manifest.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::records::{
    block_digest, decode_entries, hex, ChunkHeader, Manifest, Published, StateRecord, READS,
};
use crate::live::order_log::Run;
use crate::live::store::{Checkpoint, SeenBlocks};

/// Why the newest manifest gives no snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Written by a build with another changelog format.
    #[error("the changelog holds a snapshot of format {found} (this build reads formats {} and {}); it is ignored: the guard restores from its local store or the input topics", READS[0], READS[1])]
    Format {
        /// The format found.
        found: u32,
    },
    /// The manifest's chunks or blocks are not all there, or do not match it.
    #[error("the changelog snapshot {seq} of {lineage} is incomplete: {why}")]
    Incomplete {
        /// Its lineage.
        lineage: String,
        /// Its checkpoint number.
        seq: u64,
        /// What is missing or wrong.
        why: String,
    },
}

/// Holds what has been read of one group's changelog.
#[derive(Default)]
pub struct Reader {
    chunks: BTreeMap<usize, (String, u64, Vec<u8>)>,
    /// Dedup blocks by lineage and number.
    blocks: BTreeMap<String, BTreeMap<u64, Vec<u8>>>,
    /// The newest manifest of this format whose state record is complete, with it.
    cut: Option<(Manifest, Vec<u8>)>,
    /// The newest manifest's problem, when it gave no cut.
    problem: Option<ReadError>,
    /// Block keys of lineages older than the cut's (to tombstone).
    stale: BTreeSet<String>,
    /// Lineages a cut of a newer epoch superseded: their blocks went to `stale`, so a
    /// later manifest of theirs (of two active instances, the one that steps down may
    /// publish one after the survivor's new lineage began, before it sees the
    /// survivor's lease) names blocks no longer held, and must not replace the newer
    /// cut.
    superseded: BTreeSet<String>,
    max_epoch: u64,
}

fn epoch_of(lineage: &str) -> u64 {
    lineage
        .split_once('.')
        .and_then(|(e, _)| e.parse().ok())
        .unwrap_or(0)
}

impl Reader {
    /// Takes one record (`key` after `GROUP/`; `None` payload: a tombstone).
    pub fn take(&mut self, key: &str, payload: Option<&[u8]>) {
        if let Some(rest) = key.strip_prefix("seen/") {
            let Some((lineage, number)) = rest.rsplit_once('/') else {
                return;
            };
            let Ok(number) = number.parse::<u64>() else {
                return;
            };
            match payload {
                Some(bytes) => {
                    self.blocks
                        .entry(lineage.to_owned())
                        .or_default()
                        .insert(number, bytes.to_vec());
                }
                None => {
                    self.stale.remove(key);
                    if let Some(held) = self.blocks.get_mut(lineage) {
                        held.remove(&number);
                        if held.is_empty() {
                            self.blocks.remove(lineage);
                        }
                    }
                }
            }
        } else if let Some(index) = key.strip_prefix("state/") {
            let Ok(index) = index.parse::<usize>() else {
                return;
            };
            self.take_chunk(index, payload);
        } else if key == "manifest" {
            if let Some(manifest) = payload.and_then(|p| serde_json::from_slice(p).ok()) {
                self.take_manifest(manifest);
            }
        }
    }

    fn take_chunk(&mut self, index: usize, payload: Option<&[u8]>) {
        let Some(payload) = payload else {
            self.chunks.remove(&index);
            return;
        };
        let Some(split) = payload.iter().position(|b| *b == b'\n') else {
            return;
        };
        if let Ok(header) = serde_json::from_slice::<ChunkHeader>(&payload[..split]) {
            if header.index == index {
                let data = payload[split + 1..].to_vec();
                self.chunks
                    .insert(index, (header.lineage, header.seq, data));
            }
        }
    }

    fn take_manifest(&mut self, manifest: Manifest) {
        if self.superseded.contains(&manifest.lineage) {
            return;
        }
        if !READS.contains(&manifest.format) {
            self.problem = Some(ReadError::Format {
                found: manifest.format,
            });
            return;
        }
        self.max_epoch = self.max_epoch.max(manifest.epoch);
        let incomplete = |why: String| ReadError::Incomplete {
            lineage: manifest.lineage.clone(),
            seq: manifest.seq,
            why,
        };
        let mut bytes = Vec::new();
        for i in 0..manifest.chunks {
            match self.chunks.get(&i) {
                Some((lineage, seq, data))
                    if *seq == manifest.seq && *lineage == manifest.lineage =>
                {
                    bytes.extend_from_slice(data);
                }
                _ => {
                    self.problem = Some(incomplete(format!("state chunk {i} is missing")));
                    return;
                }
            }
        }
        if hex(&Sha256::digest(&bytes)) != manifest.sha256 {
            self.problem = Some(incomplete("the state fails its checksum".into()));
            return;
        }
        // Lineages older than this one are superseded: their blocks are only kept
        // as keys, for the next active instance to tombstone.
        let older: Vec<String> = self
            .blocks
            .keys()
            .filter(|l| epoch_of(l) < manifest.epoch)
            .cloned()
            .collect();
        for lineage in older {
            if let Some(held) = self.blocks.remove(&lineage) {
                self.stale
                    .extend(held.keys().map(|n| format!("seen/{lineage}/{n}")));
            }
            self.superseded.insert(lineage);
        }
        self.problem = None;
        self.cut = Some((manifest, bytes));
    }

    /// The newest epoch of any manifest read.
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    /// Every block key read and not yet tombstoned (what a new lineage deletes).
    pub fn block_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.stale.iter().cloned().collect();
        for (lineage, held) in &self.blocks {
            keys.extend(held.keys().map(|n| format!("seen/{lineage}/{n}")));
        }
        keys
    }

    /// Whether a manifest with its state record has been read.
    pub fn has_cut(&self) -> bool {
        self.cut.is_some()
    }

    /// The order-record trimmer's cuts that the newest snapshot's writer had, with
    /// that snapshot itself as the newest, as (forgetting floor, where its records
    /// begin), and the records before it that writer had not deleted: the next writer
    /// goes on from them ([`crate::live::order_log::Trim::seed_cuts`],
    /// [`crate::live::order_log::Earlier::carry`]). Empty without a snapshot.
    pub fn order_trail(&self) -> (Vec<[i64; 2]>, Vec<Run>) {
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(default)]
            seen_from: Option<i64>,
            #[serde(default)]
            journal_from: Option<i64>,
            #[serde(default)]
            order_cuts: Vec<[i64; 2]>,
            #[serde(default)]
            order_runs: Vec<Run>,
        }
        let head = self.cut.as_ref().and_then(|(_, bytes)| {
            let split = bytes.iter().position(|b| *b == b'\n')?;
            serde_json::from_slice::<Head>(&bytes[..split]).ok()
        });
        let Some(head) = head else {
            return (Vec::new(), Vec::new());
        };
        let mut cuts = head.order_cuts;
        if let (Some(seen_from), Some(journal_from)) = (head.seen_from, head.journal_from) {
            cuts.push([seen_from, journal_from]);
        }
        (cuts, head.order_runs)
    }

    /// Forgets every snapshot (an active instance does not read its own).
    pub fn clear(&mut self) {
        let max_epoch = self.max_epoch;
        *self = Reader {
            max_epoch,
            ..Reader::default()
        };
    }

    /// The newest complete snapshot: the state record of the newest manifest and
    /// exactly the dedup blocks it names, checked against it.
    ///
    /// # Errors
    /// [`ReadError`] when the newest manifest is of another format or its snapshot
    /// is not wholly present; `Ok(None)` when there is none.
    pub fn snapshot(&self) -> Result<Option<Published>, ReadError> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        let Some((manifest, bytes)) = &self.cut else {
            return Ok(None);
        };
        let incomplete = |why: String| ReadError::Incomplete {
            lineage: manifest.lineage.clone(),
            seq: manifest.seq,
            why,
        };
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| incomplete("the state has no head".into()))?;
        let state: StateRecord = serde_json::from_slice(&bytes[..split])
            .map_err(|e| incomplete(format!("the state is unreadable: {e}")))?;
        let from = manifest.seen_from.unwrap_or(i64::MIN);
        let (mut blocks, mut entries, mut digest) = (0u64, 0u64, 0u64);
        let mut seen = SeenBlocks::default();
        let held = self.blocks.get(&manifest.lineage);
        for (number, bytes) in held.into_iter().flatten() {
            let newest = decode_entries(bytes).map(|e| e.second()).max();
            if *number >= manifest.through || newest.is_none_or(|n| n < from) {
                continue;
            }
            blocks += 1;
            entries += (bytes.len() / 24) as u64;
            digest ^= block_digest(*number, bytes);
            for entry in decode_entries(bytes).filter(|e| e.second() >= from) {
                seen.push(entry);
            }
        }
        if (blocks, entries, format!("{digest:016x}"))
            != (manifest.blocks, manifest.entries, manifest.digest.clone())
        {
            return Err(incomplete(format!(
                "{blocks} dedup blocks of {entries} entries held, the manifest names {} of {}",
                manifest.blocks, manifest.entries
            )));
        }
        Ok(Some(Published {
            instance: state.instance,
            checkpoint: Checkpoint {
                seq: state.seq,
                engine: bytes[split + 1..].to_vec(),
                offsets: state.offsets,
                outbox: state.outbox,
                seen_from: state.seen_from,
                journal_from: state.journal_from,
                order_runs: state.order_runs,
                order_cuts: state.order_cuts,
            },
            seen,
        }))
    }
}
