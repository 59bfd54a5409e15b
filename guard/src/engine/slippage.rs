//! The slippage window rule (CONTRACT §2.1).
//!
//! Each group keeps its breaches sorted by (event time, arrival). A new breach takes
//! its place by `ts` — fills may arrive late — and the rule looks for a run of
//! `trip_at` consecutive breaches that contains it and spans strictly less than the
//! window; the earliest such run trips and its breaches leave the group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::{Span, Timestamp};

/// One fill whose adverse slippage exceeded its threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// Event time of the fill.
    pub ts: Timestamp,
    /// Arrival order, to keep equal times in the order they came.
    pub seq: u64,
    /// The fill.
    pub fill_id: String,
    /// Its strategy (a global window mixes strategies).
    pub strategy_id: String,
}

/// The breaches of every group. The key is the strategy id, or `None` for the single
/// window of `group_by = "global"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlippageWindows {
    #[serde(with = "crate::engine::pairs")]
    groups: BTreeMap<Option<String>, Vec<Breach>>,
}

impl SlippageWindows {
    /// Adds a breach to `group` and returns the run that trips, if any.
    pub fn add(
        &mut self,
        group: Option<&str>,
        breach: Breach,
        trip_at: usize,
        window: Span,
    ) -> Option<Vec<Breach>> {
        let key = group.map(str::to_owned);
        let breaches = self.groups.entry(key).or_default();
        // The new breach arrived last, so among equal times it goes after the others.
        let pos = breaches.partition_point(|b| b.ts <= breach.ts);
        breaches.insert(pos, breach);
        let k = trip_at.max(1);
        let first_start = pos.saturating_sub(k - 1);
        let run_start = (first_start..=pos)
            .take_while(|s| s + k <= breaches.len())
            .find(|&s| breaches[s + k - 1].ts.since(breaches[s].ts) < window)?;
        let run: Vec<Breach> = breaches.drain(run_start..run_start + k).collect();
        if breaches.is_empty() {
            self.groups.retain(|_, b| !b.is_empty());
        }
        Some(run)
    }

    /// Forgets every breach (a global resume).
    pub fn clear(&mut self) {
        self.groups.clear();
    }

    /// Forgets one strategy's breaches, in its own group and in a shared one.
    pub fn clear_strategy(&mut self, strategy_id: &str) {
        self.groups.remove(&Some(strategy_id.to_owned()));
        if let Some(shared) = self.groups.get_mut(&None) {
            shared.retain(|b| b.strategy_id != strategy_id);
        }
        self.groups.retain(|_, b| !b.is_empty());
    }

    /// Forgets the breaches older than `cutoff`.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        for breaches in self.groups.values_mut() {
            // Sorted by event time: the old ones are a prefix.
            let old = breaches.partition_point(|b| b.ts < cutoff);
            breaches.drain(..old);
        }
        self.groups.retain(|_, b| !b.is_empty());
    }

    /// How many breaches are held, in every group.
    pub fn breaches(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// The open windows: group and its breaches in event-time order.
    pub fn groups(&self) -> impl Iterator<Item = (Option<&str>, &[Breach])> {
        self.groups
            .iter()
            .map(|(k, v)| (k.as_deref(), v.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breach(ms: i64, seq: u64) -> Breach {
        Breach {
            ts: Timestamp::from_millis(ms),
            seq,
            fill_id: format!("f{seq}"),
            strategy_id: "a".into(),
        }
    }

    #[test]
    fn earliest_qualifying_run_trips() {
        let mut w = SlippageWindows::default();
        let window = Span::from_secs(10);
        assert!(w.add(Some("a"), breach(0, 1), 3, window).is_none());
        assert!(w.add(Some("a"), breach(2_000, 2), 3, window).is_none());
        assert!(w.add(Some("a"), breach(11_000, 3), 3, window).is_none());
        // A late breach at 1 s makes both [0,1,2] and [1,2,11] runs; [0,1,2] is earlier.
        let run = w.add(Some("a"), breach(1_000, 4), 3, window).unwrap();
        let ids: Vec<_> = run.iter().map(|b| b.fill_id.as_str()).collect();
        assert_eq!(ids, ["f1", "f4", "f2"]);
        assert_eq!(w.groups().next().unwrap().1.len(), 1);
    }
}
