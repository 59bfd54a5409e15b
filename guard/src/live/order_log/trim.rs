//! Deleting order records no snapshot within the horizon needs.
//!
//! Every order record has a key of its own (`GROUP/order/LIFE-N`), so compaction
//! never removes one: without deletion the state topic grows by every record the
//! guard ever wrote, and every start reads them all. A record is needed only by a
//! snapshot taken before it (the chain after that snapshot runs through it). The
//! active guard's changelog writer therefore tombstones, after publishing a manifest
//! (a guard without a changelog, a scale-out worker or the aggregator: its decision
//! thread, after writing a local checkpoint, the checkpoints standing for the cuts):
//!
//! - the records of its own life numbered below the record a published cut `C` was
//!   taken at;
//! - the records of earlier lives (read on the state topic before it took over; a
//!   guard without a changelog reads only those after its checkpoint, and learns of
//!   the earlier ones from the checkpoint: [`Trim::leftovers`]) that stand before
//!   `C`'s record on the topic,
//!
//! where `C` is the newest published cut that is a whole state horizon behind the
//! newest one: its forgetting floor (`seen_from`) plus the horizon is at or before the
//! newest cut's floor, so everything it holds by event time the newest has forgotten.
//! Snapshots within the horizon, the local stores' older checkpoints among them,
//! keep their chains; a snapshot older than that (a backup file, say) is restored
//! without its order and re-merges the inputs after it by timestamp (docs/LIVE.md).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::time::Span;

/// Most order records deleted after one cut: far more than a guard writes between two
/// cuts, and few enough that the first cut after an upgrade (a topic holding every
/// record ever written) does not hold the store writer up.
pub const DELETE_PER_CUT: usize = 4_096;

/// Most runs a checkpoint carries ([`Trim::leftovers`]): a life leaves about ten (its
/// own split at its cuts), so about a hundred lives within a horizon. Beyond it the
/// oldest stay on the topic (deleted by no one), and the checkpoint stays small
/// (~100 bytes a run).
pub const CARRIED_RUNS: usize = 1_024;

/// A run of consecutively numbered order records of one life, as read on the state
/// topic (or carried in a checkpoint: [`Trim::leftovers`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The key of every record of the life but its number (`order/LIFE-`).
    prefix: String,
    /// The lowest and highest number of the run.
    lo: u64,
    hi: u64,
    /// The offset of its last record on the topic.
    last_offset: i64,
}

/// The order records of earlier lives read so far, as runs (a life's records
/// arrive in number order, so a life is about one run whatever its length).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Earlier {
    runs: Vec<Run>,
}

impl Earlier {
    /// Takes one record of the state topic: `key` after `GROUP/`, at `offset`, a
    /// tombstone when `deleted`. Keys other than `order/LIFE-N` are ignored.
    pub fn take(&mut self, key: &str, offset: i64, deleted: bool) {
        let Some((prefix, n)) = split(key) else {
            return;
        };
        if deleted {
            // Lives delete their records from the lowest number up.
            if let Some(at) = self
                .runs
                .iter()
                .position(|r| r.prefix == prefix && r.lo == n)
            {
                let run = &mut self.runs[at];
                if run.lo == run.hi {
                    self.runs.remove(at);
                } else {
                    run.lo += 1;
                }
            }
            return;
        }
        if let Some(run) = self.runs.iter_mut().rev().find(|r| r.prefix == prefix) {
            if run.hi + 1 == n {
                run.hi = n;
                run.last_offset = offset;
                return;
            }
        }
        self.runs.push(Run {
            prefix: prefix.to_owned(),
            lo: n,
            hi: n,
            last_offset: offset,
        });
    }

    /// Adds runs a checkpoint carried: records not deleted before it was written.
    /// A run read on the topic that they cover from its start is shortened to what
    /// they leave (its records would otherwise be deleted twice).
    pub fn carry(&mut self, runs: Vec<Run>) {
        for carried in &runs {
            for read in &mut self.runs {
                if read.prefix == carried.prefix && (carried.lo..=carried.hi).contains(&read.lo) {
                    read.lo = carried.hi + 1;
                }
            }
        }
        self.runs.retain(|r| r.lo <= r.hi);
        self.runs.extend(runs);
    }

    /// How many records the runs hold.
    #[cfg(test)]
    fn records(&self) -> u64 {
        self.runs.iter().map(|r| r.hi - r.lo + 1).sum()
    }
}

/// `order/LIFE-N` as (`order/LIFE-`, N).
fn split(key: &str) -> Option<(&str, u64)> {
    if !key.starts_with("order/") {
        return None;
    }
    let dash = key.rfind('-')?;
    let n = key[dash + 1..].parse().ok()?;
    Some((&key[..=dash], n))
}

/// A published cut as the trimmer remembers it.
#[derive(Clone, Copy, Debug)]
struct Cut {
    seen_from: i64,
    journal_from: Option<i64>,
    record: u64,
}

/// Decides which order records may be deleted as cuts are published.
#[derive(Debug)]
pub struct Trim {
    horizon_s: i64,
    /// This life's key prefix (`order/LIFE-`), when its records are under the group.
    own: Option<String>,
    /// This life's records numbered below this one are deleted.
    own_from: u64,
    earlier: Vec<Run>,
    /// Published cuts, oldest first: the newest of each forgetting floor (the floor
    /// moves in eighths of the horizon, so about nine are kept).
    cuts: VecDeque<Cut>,
}

impl Trim {
    /// A trimmer for a state `horizon`, with the records of `earlier` lives read.
    pub fn new(horizon: Span, earlier: Earlier) -> Trim {
        Trim {
            horizon_s: horizon.as_micros() / 1_000_000,
            own: None,
            own_from: 1,
            earlier: earlier.runs,
            cuts: VecDeque::new(),
        }
    }

    /// The cuts it remembers whose records' place is known, oldest first, as
    /// (forgetting floor, where its records begin on the topic): what a checkpoint
    /// carries, so the next life goes on from them ([`Trim::seed_cuts`]).
    pub fn cuts(&self) -> Vec<[i64; 2]> {
        self.cuts
            .iter()
            .filter_map(|c| Some([c.seen_from, c.journal_from?]))
            .collect()
    }

    /// Takes the cuts of earlier lives, oldest first: those a checkpoint carried and
    /// that checkpoint itself. Without them a life would delete nothing before it had
    /// lived a whole horizon of event time, and a guard restarted more often than
    /// that would never delete. This life has no records below them.
    pub fn seed_cuts(&mut self, cuts: impl IntoIterator<Item = [i64; 2]>) {
        for [seen_from, journal_from] in cuts {
            let cut = Cut {
                seen_from,
                journal_from: Some(journal_from),
                record: 0,
            };
            match self.cuts.back_mut() {
                Some(last) if last.seen_from == seen_from => *last = cut,
                Some(last) if last.seen_from > seen_from => {}
                _ => self.cuts.push_back(cut),
            }
        }
    }

    /// This life's records are keyed `PREFIX` + number (after `GROUP/`).
    pub fn own_life(&mut self, prefix: String) {
        self.own = Some(prefix);
        self.own_from = 1;
    }

    /// The records not deleted yet that stand before a checkpoint taken at this
    /// life's record `record`, whose records after it begin at `journal_from` on the
    /// topic: the earlier lives' runs, and this life's below `record`, split where
    /// its remembered cuts were taken (each part ending before the offset of the
    /// record its cut was taken at, so the next life, handed the cuts, deletes them
    /// part by part: [`Trim::seed_cuts`]); none of this life's when `journal_from` is
    /// unknown. A checkpoint carries them, so the next life deletes them in turn: it
    /// reads the journal from `journal_from` on only, and would never learn of them.
    /// At most [`CARRIED_RUNS`], the newest on the topic.
    pub fn leftovers(&self, record: u64, journal_from: Option<i64>) -> Vec<Run> {
        let mut own = Vec::new();
        if let (Some(prefix), Some(from)) = (&self.own, journal_from) {
            let first = self.own_from;
            let mut lo = first;
            let bounds = self
                .cuts
                .iter()
                .filter(|c| c.record > first && c.record < record)
                .filter_map(|c| Some((c.record, c.journal_from?)))
                .chain(std::iter::once((record, from)));
            for (to, offset) in bounds {
                if lo < to {
                    own.push(Run {
                        prefix: prefix.clone(),
                        lo,
                        hi: to - 1,
                        last_offset: offset - 1,
                    });
                    lo = to;
                }
            }
        }
        let mut runs = self.earlier.clone();
        let room = CARRIED_RUNS.saturating_sub(own.len());
        if runs.len() > room {
            runs.sort_by_key(|r| std::cmp::Reverse(r.last_offset));
            runs.truncate(room);
            runs.sort_by_key(|r| r.last_offset);
        }
        runs.extend(own);
        runs
    }

    /// A cut was published: its forgetting floor, where its order records begin on
    /// the topic and the number of this life's record it was taken at (0: none yet).
    /// Hands the keys that may now be deleted to `delete`, in order, at most
    /// `budget` of them (the rest go with later cuts); stops at the first it refuses
    /// and returns `false`.
    pub fn published(
        &mut self,
        seen_from: Option<i64>,
        journal_from: Option<i64>,
        record: u64,
        budget: usize,
        mut delete: impl FnMut(String) -> bool,
    ) -> bool {
        let Some(seen_from) = seen_from else {
            return true;
        };
        let cut = Cut {
            seen_from,
            journal_from,
            record,
        };
        match self.cuts.back_mut() {
            Some(last) if last.seen_from == seen_from => *last = cut,
            _ => self.cuts.push_back(cut),
        }
        let floor = seen_from.saturating_sub(self.horizon_s);
        let Some(behind) = self.cuts.iter().rposition(|c| c.seen_from <= floor) else {
            return true;
        };
        self.cuts.drain(..behind);
        let cut = self.cuts[0];
        let mut left = budget;
        if let Some(prefix) = &self.own {
            while self.own_from < cut.record {
                if left == 0 {
                    return true;
                }
                left -= 1;
                if !delete(format!("{prefix}{}", self.own_from)) {
                    return false;
                }
                self.own_from += 1;
            }
        }
        let Some(before) = cut.journal_from else {
            return true;
        };
        while let Some(at) = self.earlier.iter().position(|r| r.last_offset < before) {
            let run = &mut self.earlier[at];
            while run.lo <= run.hi {
                if left == 0 {
                    return true;
                }
                left -= 1;
                if !delete(format!("{}{}", run.prefix, run.lo)) {
                    return false;
                }
                run.lo += 1;
            }
            self.earlier.remove(at);
        }
        true
    }
}

#[cfg(test)]
mod tests;
