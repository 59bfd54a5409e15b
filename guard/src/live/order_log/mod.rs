//! The order journal: the order in which the guard applied its inputs, made durable
//! in Kafka before any decision based on it is published (CONTRACT §1.6 "Order", §5).
//!
//! The input topics have no order among themselves; the guard picks one (the merge
//! of [`super::merge`]) and its decisions depend on it. A restart re-reads the inputs
//! after its snapshot, and a merge of what happens to be fetched then may interleave
//! them differently and re-decide differently. So the order is recorded, not
//! re-derived:
//!
//! - Every applied input message extends a **step** of the journal: a run of one
//!   partition up to an offset (`Run`), or a wall-clock tick that changed the state
//!   (`Tick`). Runs are merged while one partition keeps coming, so a record costs a
//!   few bytes per switch between partitions, not per message.
//! - Before a decision goes out, the steps applied since the last **record** are
//!   written as one record to `guard_state` (key `LINEAGE/order/LIFE-N`, partition 0),
//!   and the decision is held until the broker has acknowledged that record (group
//!   commit: one record serves every decision of a loop turn). The decision thread
//!   never waits: held decisions are released by the delivery report.
//! - Every snapshot (the local checkpoint, the changelog snapshot) is taken at a record
//!   boundary (the journal is cut then), and a local checkpoint is written only once
//!   the record that ends at it is acknowledged. So whatever snapshot a guard restores,
//!   the order after it is the chain of records that starts at its offsets.
//! - A restarting guard reads `guard_state` up to a barrier of its own (so every record
//!   acknowledged before it started is seen), builds the [`script`] from its restored
//!   offsets, and applies those messages in that order before it merges anything new.
//! - Records no published cut within the state horizon needs are deleted by the
//!   active guard's changelog writer ([`Trim`]): compaction alone keeps them all.
//!
//! A lineage names whose order it is: the whole guard (`GROUP`), a scale-out worker of
//! one partition (`GROUP/worker-pN`), or the aggregator (`GROUP/aggregator`), so the
//! next owner of that work finds it whichever instance it runs on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod placed;
mod recover;
mod trim;

pub use placed::Placed;
pub use recover::recover;
pub use trim::{Earlier, Run, Trim, DELETE_PER_CUT};

use super::config::LiveConfig;
use super::store::Partition;
use crate::engine::Role;

/// Offsets: the next offset to apply, per input partition.
pub type Offsets = BTreeMap<Partition, i64>;

/// One step of the applied order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Apply the messages of `topic`/`partition` up to (not including) offset `end`.
    Run {
        /// Input topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The next offset after the run.
        end: i64,
    },
    /// Tick the engine's wall clock to this time (microseconds since the epoch).
    Tick {
        /// The tick's time.
        at_micros: i64,
    },
}

/// One record of the journal: from these offsets, these steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The offsets the steps start from.
    #[serde(with = "crate::engine::pairs")]
    pub from: Offsets,
    /// The steps, in the order they were applied.
    pub steps: Vec<Step>,
}

impl Record {
    /// The offsets after every step.
    pub fn end(&self) -> Offsets {
        let mut at = self.from.clone();
        advance(&mut at, &self.steps);
        at
    }
}

fn advance(at: &mut Offsets, steps: &[Step]) {
    for step in steps {
        if let Step::Run {
            topic,
            partition,
            end,
        } = step
        {
            at.insert((topic.clone(), *partition), *end);
        }
    }
}

/// The lineage of the guard `config` describes (whose order the journal records).
pub fn lineage(config: &LiveConfig) -> String {
    match config.role {
        Role::Whole => config.group_id.clone(),
        Role::Worker => {
            let owned: Vec<String> = config.owned.iter().map(i32::to_string).collect();
            format!("{}/worker-p{}", config.group_id, owned.join("-"))
        }
        Role::Aggregator => format!("{}/aggregator", config.group_id),
    }
}

/// The steps to apply, in order, after restoring a snapshot at `at`: the chain of
/// records that starts there. A record is used once; where two records start at the
/// same offsets, the one written first comes first (a tick-only record starts and ends
/// at the same offsets and is followed by the record its life wrote next).
pub fn script(records: &[Record], at: &Offsets) -> Vec<Step> {
    let mut used = vec![false; records.len()];
    let mut cur = at.clone();
    let mut steps = Vec::new();
    while let Some(i) = (0..records.len()).find(|i| !used[*i] && records[*i].from == cur) {
        used[i] = true;
        steps.extend(records[i].steps.iter().cloned());
        advance(&mut cur, &records[i].steps);
    }
    steps
}

/// The writing side: the steps applied since the last record, and which records the
/// broker has acknowledged.
#[derive(Debug)]
pub struct Journal {
    prefix: String,
    from: Offsets,
    steps: Vec<Step>,
    /// Records written by this life, numbered from 1.
    written: u64,
    /// Every record up to this one is acknowledged.
    acked_through: u64,
    /// Acknowledged out of order (after a failed delivery was sent again).
    acked_later: BTreeSet<u64>,
    /// Records not yet acknowledged: number → (key, payload).
    in_flight: HashMap<u64, (String, Vec<u8>)>,
    /// Off while a restored order is replayed (it is in the journal already).
    recording: bool,
}

impl Journal {
    /// A journal for `lineage`, starting at `from`; `life` makes this process's keys
    /// unique.
    pub fn new(lineage: &str, life: &str, from: Offsets) -> Journal {
        Journal {
            prefix: format!("{lineage}/order/{life}-"),
            from,
            steps: Vec::new(),
            written: 0,
            acked_through: 0,
            acked_later: BTreeSet::new(),
            in_flight: HashMap::new(),
            recording: true,
        }
    }

    /// Stops recording (a restored order is being replayed).
    pub fn pause_recording(&mut self) {
        self.recording = false;
    }

    /// Records again, from `at` (where the replayed order ended).
    pub fn resume_recording(&mut self, at: Offsets) {
        self.recording = true;
        self.from = at;
        self.steps.clear();
    }

    /// The message at `offset` of `topic`/`partition` was applied.
    pub fn applied(&mut self, topic: &str, partition: i32, offset: i64) {
        if !self.recording {
            return;
        }
        if let Some(Step::Run {
            topic: t,
            partition: p,
            end,
        }) = self.steps.last_mut()
        {
            if *p == partition && t == topic {
                *end = offset + 1;
                return;
            }
        }
        self.steps.push(Step::Run {
            topic: topic.to_owned(),
            partition,
            end: offset + 1,
        });
    }

    /// A wall-clock tick at `at_micros` changed the state.
    pub fn ticked(&mut self, at_micros: i64) {
        if self.recording {
            self.steps.push(Step::Tick { at_micros });
        }
    }

    /// The record a decision made now must wait for (0: none).
    pub fn gate(&self) -> u64 {
        if self.steps.is_empty() {
            self.written
        } else {
            self.written + 1
        }
    }

    /// Whether every record up to `n` is acknowledged.
    pub fn is_acked(&self, n: u64) -> bool {
        n <= self.acked_through
    }

    /// Whether steps were applied since the last record.
    pub fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Closes the steps applied so far into a record, numbered; returns its number,
    /// key and payload, or `None` when there is nothing to record.
    pub fn cut(&mut self) -> Option<(u64, String, Vec<u8>)> {
        if self.steps.is_empty() {
            return None;
        }
        let record = Record {
            from: std::mem::take(&mut self.from),
            steps: std::mem::take(&mut self.steps),
        };
        self.from = record.end();
        self.written += 1;
        let key = format!("{}{}", self.prefix, self.written);
        let payload = serde_json::to_vec(&record).expect("records serialise");
        self.in_flight
            .insert(self.written, (key.clone(), payload.clone()));
        Some((self.written, key, payload))
    }

    /// Record `n` is on the broker.
    pub fn acked(&mut self, n: u64) {
        self.in_flight.remove(&n);
        if n <= self.acked_through {
            return;
        }
        self.acked_later.insert(n);
        while self.acked_later.remove(&(self.acked_through + 1)) {
            self.acked_through += 1;
        }
    }

    /// Record `n`, to send again after a failed delivery.
    pub fn unacked(&self, n: u64) -> Option<(&str, &[u8])> {
        self.in_flight
            .get(&n)
            .map(|(k, p)| (k.as_str(), p.as_slice()))
    }

    /// How many records this life has written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The key of every record of this life but its number
    /// (`LINEAGE/order/LIFE-`).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }
}

/// Why the journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OrderLogError {
    /// A client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The state topic does not exist.
    #[error("state topic {0:?} does not exist: it holds the order journal (create it with `guard topics`, or set --topic-state)")]
    MissingTopic(String),
    /// The barrier never came back.
    #[error("cannot read the order journal on {topic:?}: no answer within {waited:?} (the guard does not publish until it has read it)")]
    Unreadable {
        /// The state topic.
        topic: String,
        /// How long it tried.
        waited: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pairs: &[(&str, i64)]) -> Offsets {
        pairs
            .iter()
            .map(|(t, o)| (((*t).to_owned(), 0), *o))
            .collect()
    }

    fn run(topic: &str, end: i64) -> Step {
        Step::Run {
            topic: topic.into(),
            partition: 0,
            end,
        }
    }

    #[test]
    fn consecutive_messages_of_one_partition_are_one_run() {
        let mut j = Journal::new("g", "life", Offsets::new());
        for o in 0..3 {
            j.applied("fills", 0, o);
        }
        j.applied("ops", 0, 0);
        j.applied("fills", 0, 3);
        let (n, key, payload) = j.cut().unwrap();
        assert_eq!((n, key.as_str()), (1, "g/order/life-1"));
        let record: Record = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            record.steps,
            [run("fills", 3), run("ops", 1), run("fills", 4)]
        );
        assert_eq!(record.end(), at(&[("fills", 4), ("ops", 1)]));
        assert!(j.cut().is_none(), "nothing new: no record");
    }

    #[test]
    fn a_decision_waits_for_the_record_of_what_was_applied_before_it() {
        let mut j = Journal::new("g", "life", Offsets::new());
        assert_eq!(j.gate(), 0, "nothing applied: nothing to wait for");
        j.applied("fills", 0, 0);
        assert_eq!(j.gate(), 1);
        let (n, _, _) = j.cut().unwrap();
        assert_eq!(j.gate(), 1, "already recorded, not yet acknowledged");
        assert!(!j.is_acked(n));
        j.applied("fills", 0, 1);
        let (m, _, _) = j.cut().unwrap();
        j.acked(m);
        assert!(
            !j.is_acked(m),
            "record 2 is not enough while record 1 is missing"
        );
        assert!(j.unacked(n).is_some());
        j.acked(n);
        assert!(j.is_acked(m) && j.unacked(n).is_none());
    }

    #[test]
    fn the_script_follows_the_chain_from_the_restored_offsets() {
        let first = Record {
            from: Offsets::new(),
            steps: vec![run("fills", 2), run("ops", 1)],
        };
        let tick = Record {
            from: first.end(),
            steps: vec![Step::Tick { at_micros: 7 }],
        };
        let second = Record {
            from: first.end(),
            steps: vec![run("fills", 5)],
        };
        let stray = Record {
            from: at(&[("fills", 1)]),
            steps: vec![run("ops", 9)],
        };
        let records = [first.clone(), stray, tick, second];
        assert_eq!(
            script(&records, &Offsets::new()),
            [
                run("fills", 2),
                run("ops", 1),
                Step::Tick { at_micros: 7 },
                run("fills", 5)
            ]
        );
        assert_eq!(script(&records, &first.end()).len(), 2);
        assert!(script(&records, &at(&[("fills", 5), ("ops", 1)])).is_empty());
    }

    #[test]
    fn replaying_a_restored_order_is_not_recorded_again() {
        let mut j = Journal::new("g", "life", Offsets::new());
        j.pause_recording();
        j.applied("fills", 0, 0);
        j.ticked(5);
        assert!(!j.has_steps());
        j.resume_recording(at(&[("fills", 1)]));
        j.applied("ops", 0, 0);
        let (_, _, payload) = j.cut().unwrap();
        let record: Record = serde_json::from_slice(&payload).unwrap();
        assert_eq!(record.from, at(&[("fills", 1)]));
    }
}
