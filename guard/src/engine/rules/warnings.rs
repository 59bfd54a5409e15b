//! Warnings (CONTRACT §2.7), `[warnings]` in the policy: an early risk event before a
//! rule trips. Not a rule of its own — it changes no scope. The slippage window and
//! the losing streak raise their warnings through [`Decide::warn`](crate::engine::decide::Decide::warn)
//! where their trip would come; this file holds the switch, the slippage warning's
//! run and the memory that keeps a group from warning again within its window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Breach;
use crate::policy::{Reader, Section};
use crate::time::{Span, Timestamp};

/// `[warnings]` (CONTRACT §2.7): off unless `enabled = true`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WarningsPolicy {
    /// Whether the fill rules raise warnings.
    pub enabled: bool,
}

impl Section for WarningsPolicy {
    fn key(&self) -> &'static str {
        "warnings"
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        let Some(t) = r.table(value, "warnings") else {
            return;
        };
        r.keys(t, "warnings.", &["enabled"]);
        r.bool(t, "warnings.enabled", &mut self.enabled);
    }
}

/// Where the earliest run of `k` consecutive breaches (in the group's order) starts
/// that includes the one at `pos` and spans strictly less than `window`: the run that
/// trips (`k = trip_at`), or the one a warning names (`k = trip_at - 1`).
pub fn run_start(breaches: &[Breach], pos: usize, k: usize, window: Span) -> Option<usize> {
    if k == 0 {
        return None;
    }
    let first = pos.saturating_sub(k - 1);
    (first..=pos)
        .take_while(|s| s + k <= breaches.len())
        .find(|&s| breaches[s + k - 1].ts.since(breaches[s].ts) < window)
}

/// Each slippage group's last warning: the event time of its trigger fill. A group
/// remembers only its last one; a trip or a reset of the group forgets it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastWarnings {
    #[serde(with = "crate::engine::pairs")]
    groups: BTreeMap<Option<String>, Timestamp>,
}

impl LastWarnings {
    /// Whether `group` warned about a breach less than `window` away from `ts`
    /// (before or after).
    pub fn recent(&self, group: Option<&str>, ts: Timestamp, window: Span) -> bool {
        self.groups
            .get(&group.map(str::to_owned))
            .is_some_and(|last| ts.since(*last).abs() < window)
    }

    /// Notes `group`'s new last warning.
    pub fn note(&mut self, group: Option<&str>, ts: Timestamp) {
        self.groups.insert(group.map(str::to_owned), ts);
    }

    /// After a breach at `pos` of `group`'s `breaches` that did not trip: the fills of
    /// the run a warning names, when a run one short of `trip_at` includes the breach
    /// and the group did not warn within `window` of it; the warning is then noted.
    pub fn slippage(
        &mut self,
        group: Option<&str>,
        breaches: &[Breach],
        pos: usize,
        trip_at: usize,
        window: Span,
    ) -> Option<Vec<String>> {
        let ts = breaches[pos].ts;
        let start = run_start(breaches, pos, trip_at.checked_sub(1)?, window)?;
        if self.recent(group, ts, window) {
            return None;
        }
        self.note(group, ts);
        let run = &breaches[start..start + trip_at - 1];
        Some(run.iter().map(|b| String::from(&*b.fill_id)).collect())
    }

    /// Forgets `group`'s last warning (it tripped, or was reset).
    pub fn forget(&mut self, group: Option<&str>) {
        self.groups.remove(&group.map(str::to_owned));
    }

    /// Forgets every group's (a global resume).
    pub fn clear(&mut self) {
        self.groups.clear();
    }

    /// Forgets warnings older than `cutoff`.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        self.groups.retain(|_, ts| *ts >= cutoff);
    }

    /// Whether no group remembers one (then a snapshot leaves the memory out).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}
