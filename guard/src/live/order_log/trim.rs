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

/// Most runs a checkpoint carries ([`Trim::leftovers`]): a life is about one run, so
/// this many lives a horizon, a crash loop of one restart every ~85 s at the default
/// day. Beyond it the oldest stay on the topic (deleted by no one, as before runs
/// were carried), and the checkpoint stays small (~100 bytes a run).
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
    pub fn carry(&mut self, runs: Vec<Run>) {
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

    /// This life's records are keyed `PREFIX` + number (after `GROUP/`).
    pub fn own_life(&mut self, prefix: String) {
        self.own = Some(prefix);
        self.own_from = 1;
    }

    /// The records not deleted yet that stand before a checkpoint taken at this
    /// life's record `record`, whose records after it begin at `journal_from` on the
    /// topic: the earlier lives' runs, and this life's below `record` (their last
    /// offset taken as the one before `journal_from`; none when it is unknown). A
    /// checkpoint carries them, so the next life deletes them in turn: it reads the
    /// journal from `journal_from` on only, and would never learn of them.
    /// At most [`CARRIED_RUNS`], the newest on the topic.
    pub fn leftovers(&self, record: u64, journal_from: Option<i64>) -> Vec<Run> {
        let mut runs = self.earlier.clone();
        if runs.len() >= CARRIED_RUNS {
            runs.sort_by_key(|r| std::cmp::Reverse(r.last_offset));
            runs.truncate(CARRIED_RUNS - 1);
        }
        if let (Some(prefix), Some(from)) = (&self.own, journal_from) {
            if self.own_from < record {
                runs.push(Run {
                    prefix: prefix.clone(),
                    lo: self.own_from,
                    hi: record - 1,
                    last_offset: from - 1,
                });
            }
        }
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
mod tests {
    use super::*;

    const HOUR: i64 = 3_600;

    fn earlier(records: &[(&str, i64)]) -> Earlier {
        let mut e = Earlier::default();
        for (key, offset) in records {
            e.take(key, *offset, false);
        }
        e
    }

    fn publish(
        trim: &mut Trim,
        seen_from: i64,
        journal_from: Option<i64>,
        record: u64,
    ) -> Vec<String> {
        let mut deleted = Vec::new();
        assert!(
            trim.published(Some(seen_from), journal_from, record, 100, |k| {
                deleted.push(k);
                true
            })
        );
        deleted
    }

    #[test]
    fn a_lifes_records_arrive_as_one_run_and_its_deletions_shorten_it() {
        let mut e = earlier(&[
            ("order/a-1", 10),
            ("order/a-2", 12),
            ("manifest", 13),
            ("order/b-1", 14),
            ("order/a-3", 15),
        ]);
        assert_eq!(e.runs.len(), 2);
        assert_eq!(e.records(), 4);
        e.take("order/a-1", 20, true);
        e.take("order/a-3", 21, true); // not the lowest: the run keeps it
        assert_eq!(e.records(), 3);
        e.take("order/b-1", 22, true);
        assert_eq!(e.runs.len(), 1, "a run deleted whole is gone");
        e.take("order/a-9", 23, false);
        assert_eq!(e.runs.len(), 2, "a gap in the numbers starts a run");
    }

    #[test]
    fn nothing_is_deleted_until_a_cut_is_a_horizon_behind_the_newest() {
        let mut trim = Trim::new(Span::from_secs(HOUR), Earlier::default());
        trim.own_life("order/me-".into());
        assert!(publish(&mut trim, 1_000, Some(50), 5).is_empty());
        assert!(publish(&mut trim, 1_000 + HOUR / 2, Some(80), 9).is_empty());
        assert!(publish(&mut trim, 1_000 + HOUR - 1, Some(90), 12).is_empty());
        let deleted = publish(&mut trim, 1_000 + HOUR, Some(99), 15);
        assert_eq!(
            deleted,
            ["order/me-1", "order/me-2", "order/me-3", "order/me-4"],
            "below the record of the cut a horizon behind, never that record itself"
        );
        assert!(
            publish(&mut trim, 1_000 + HOUR, Some(120), 20).is_empty(),
            "each record is deleted once"
        );
        let deleted = publish(&mut trim, 1_000 + HOUR * 3 / 2, Some(130), 22);
        assert_eq!(
            deleted,
            ["order/me-5", "order/me-6", "order/me-7", "order/me-8"]
        );
    }

    #[test]
    fn earlier_lives_go_once_a_cut_a_horizon_behind_stands_after_them() {
        let old = earlier(&[
            ("order/a-1", 10),
            ("order/a-2", 11),
            ("order/b-1", 40),
            ("order/b-2", 70),
        ]);
        let mut trim = Trim::new(Span::from_secs(HOUR), old);
        trim.own_life("order/me-".into());
        publish(&mut trim, 0, Some(60), 0);
        let deleted = publish(&mut trim, HOUR, Some(100), 3);
        assert_eq!(
            deleted,
            ["order/a-1", "order/a-2"],
            "b's run ends after the cut's records begin: kept"
        );
        publish(&mut trim, HOUR + 10, None, 4);
        let deleted = publish(&mut trim, 2 * HOUR + 10, Some(200), 8);
        assert_eq!(
            deleted,
            ["order/me-1", "order/me-2", "order/me-3"],
            "a cut that does not know where its records begin deletes only this life's"
        );
        let deleted = publish(&mut trim, 3 * HOUR + 10, Some(300), 9);
        assert_eq!(
            deleted,
            [
                "order/me-4",
                "order/me-5",
                "order/me-6",
                "order/me-7",
                "order/b-1",
                "order/b-2"
            ]
        );
    }

    #[test]
    fn what_a_life_leaves_a_checkpoint_carries_and_the_next_life_deletes() {
        let mut first = Trim::new(Span::from_secs(HOUR), earlier(&[("order/old-4", 3)]));
        first.own_life("order/me-".into());
        publish(&mut first, 1_000, Some(40), 5);
        assert_eq!(
            publish(&mut first, 1_000 + HOUR, Some(60), 8),
            [
                "order/me-1",
                "order/me-2",
                "order/me-3",
                "order/me-4",
                "order/old-4"
            ]
        );
        // A checkpoint at record 10, whose records after it begin at offset 70.
        let carried = first.leftovers(10, Some(70));
        assert_eq!(
            carried,
            [Run {
                prefix: "order/me-".into(),
                lo: 5,
                hi: 9,
                last_offset: 69
            }]
        );
        assert!(
            first.leftovers(10, None).is_empty(),
            "unknown offsets: none"
        );
        assert_eq!(
            first.leftovers(5, Some(70)),
            [],
            "nothing below the cut left"
        );

        // The next life: the records from offset 70 on it reads, the rest carried.
        let mut read = earlier(&[("order/me-10", 70), ("order/me-11", 72)]);
        read.carry(carried);
        let mut next = Trim::new(Span::from_secs(HOUR), read);
        next.own_life("order/next-".into());
        assert!(publish(&mut next, 5_000, Some(72), 1).is_empty());
        assert_eq!(
            publish(&mut next, 5_000 + HOUR, Some(90), 3),
            [
                "order/me-5",
                "order/me-6",
                "order/me-7",
                "order/me-8",
                "order/me-9"
            ],
            "a cut a horizon behind and after the carried run deletes it"
        );
        assert_eq!(
            publish(&mut next, 5_000 + 2 * HOUR, Some(99), 5),
            ["order/next-1", "order/next-2", "order/me-10", "order/me-11"],
            "the run read goes once a cut a horizon behind stands after it"
        );
        assert!(next.leftovers(3, Some(90)).is_empty());
    }

    #[test]
    fn a_checkpoint_carries_the_newest_runs_only() {
        let lives: Vec<(String, i64)> = (0..CARRIED_RUNS as i64 + 10)
            .map(|i| (format!("order/life{i}-1"), i))
            .collect();
        let read: Vec<(&str, i64)> = lives.iter().map(|(k, o)| (k.as_str(), *o)).collect();
        let mut trim = Trim::new(Span::from_secs(HOUR), earlier(&read));
        trim.own_life("order/me-".into());
        let carried = trim.leftovers(3, Some(5_000));
        assert_eq!(carried.len(), CARRIED_RUNS);
        assert_eq!(
            carried.last().unwrap().prefix,
            "order/me-",
            "its own life's run"
        );
        assert!(
            carried.iter().all(|r| r.prefix != "order/life10-"),
            "the oldest runs are left"
        );
        assert!(carried.iter().any(|r| r.prefix == "order/life11-"));
    }

    #[test]
    fn a_cut_deletes_at_most_its_budget_and_the_next_goes_on() {
        let old = earlier(&[("order/a-1", 10), ("order/a-2", 11)]);
        let mut trim = Trim::new(Span::from_secs(HOUR), old);
        trim.own_life("order/me-".into());
        publish(&mut trim, 0, Some(50), 4);
        let mut deleted = Vec::new();
        let mut take = |trim: &mut Trim, seen_from| {
            assert!(trim.published(Some(seen_from), Some(60), 5, 2, |k| {
                deleted.push(k);
                true
            }));
        };
        take(&mut trim, HOUR);
        take(&mut trim, HOUR + 1);
        take(&mut trim, HOUR + 2);
        assert_eq!(
            deleted,
            [
                "order/me-1",
                "order/me-2",
                "order/me-3",
                "order/a-1",
                "order/a-2"
            ]
        );
    }

    #[test]
    fn a_refused_deletion_is_offered_again() {
        let mut trim = Trim::new(Span::from_secs(HOUR), Earlier::default());
        trim.own_life("order/me-".into());
        publish(&mut trim, 0, Some(1), 4);
        let mut offered = 0;
        assert!(!trim.published(Some(HOUR), Some(2), 6, 100, |_| {
            offered += 1;
            offered < 2
        }));
        assert_eq!(
            publish(&mut trim, HOUR, Some(2), 6),
            ["order/me-2", "order/me-3"],
            "the first went out; the refused one comes again"
        );
    }
}
