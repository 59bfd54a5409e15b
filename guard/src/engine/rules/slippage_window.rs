//! The slippage window rule (CONTRACT §2.1), `[slippage]` in the policy.
//!
//! Each group keeps its breaches sorted by (event time, arrival). A new breach takes
//! its place by `ts` — fills may arrive late — and the rule looks for a run of
//! `trip_at` consecutive breaches that contains it and spans strictly less than the
//! window; the earliest such run trips and its breaches leave the group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{run_start, GuardRule, LastWarnings, Monitoring, Place};
use crate::engine::decide::{Decide, Trigger};
use crate::message::{Effect, Fill, Rule, Scope};
use crate::policy::{
    is_default, GroupBy, PauseTarget, Reader, Section, ACTION_CHOICES, PAUSE_CHOICES,
};
use crate::time::{Span, Timestamp};

mod breach;
mod stored;

pub use breach::Breach;

/// `[slippage]` (CONTRACT §2.1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlippagePolicy {
    /// Off when false.
    pub enabled: bool,
    /// A fill breaches when its adverse slippage is strictly greater.
    pub threshold_bps: f64,
    /// Consecutive breaches that trip.
    pub trip_at: u32,
    /// A run trips when `last.ts - first.ts < window`.
    pub window: Span,
    /// Which breaches share a window.
    pub group_by: GroupBy,
    /// Which scope a trip pauses.
    pub pause: PauseTarget,
    /// The effect of the reason a trip adds (version 2; left out while `pause`).
    #[serde(skip_serializing_if = "is_default")]
    pub action: Effect,
}

impl Default for SlippagePolicy {
    /// The runbook's: 3 breaches of more than 5 bps within 10 minutes, per strategy,
    /// pause everything.
    fn default() -> Self {
        SlippagePolicy {
            enabled: true,
            threshold_bps: 5.0,
            trip_at: 3,
            window: Span::from_secs(600),
            group_by: GroupBy::Strategy,
            pause: PauseTarget::Global,
            action: Effect::Pause,
        }
    }
}

impl Section for SlippagePolicy {
    fn key(&self) -> &'static str {
        "slippage"
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        let Some(t) = r.table(value, "slippage") else {
            return;
        };
        let keys = [
            "enabled",
            "threshold_bps",
            "trip_at",
            "window",
            "group_by",
            "pause",
            "action",
        ];
        r.keys(t, "slippage.", &keys);
        r.bool(t, "slippage.enabled", &mut self.enabled);
        r.number(
            t,
            "slippage.threshold_bps",
            &mut self.threshold_bps,
            |v| v >= 0.0,
            "a number >= 0",
        );
        r.count(t, "slippage.trip_at", &mut self.trip_at);
        r.span(t, "slippage.window", &mut self.window);
        r.choice(
            t,
            "slippage.group_by",
            &mut self.group_by,
            &[("strategy", GroupBy::Strategy), ("global", GroupBy::Global)],
        );
        r.choice(t, "slippage.pause", &mut self.pause, &PAUSE_CHOICES);
        r.choice(t, "slippage.action", &mut self.action, &ACTION_CHOICES);
    }
}

/// The breaches of every group. The key is the strategy id, or `None` for the single
/// window of `group_by = "global"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlippageWindows {
    #[serde(with = "stored")]
    groups: BTreeMap<Option<String>, Vec<Breach>>,
    /// Each group's last warning (CONTRACT §2.7), left out of a snapshot while empty.
    #[serde(default, skip_serializing_if = "LastWarnings::is_empty")]
    warned: LastWarnings,
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
        self.insert(group, breach, trip_at, window).ok()
    }

    /// [`SlippageWindows::add`]: the run that trips, or else where the breach now
    /// stands in its group.
    fn insert(
        &mut self,
        group: Option<&str>,
        breach: Breach,
        trip_at: usize,
        window: Span,
    ) -> Result<Vec<Breach>, usize> {
        let key = group.map(str::to_owned);
        let breaches = self.groups.entry(key).or_default();
        // The new breach arrived last, so among equal times it goes after the others.
        let pos = breaches.partition_point(|b| b.ts <= breach.ts);
        breaches.insert(pos, breach);
        let k = trip_at.max(1);
        let Some(start) = run_start(breaches, pos, k, window) else {
            return Err(pos);
        };
        let run: Vec<Breach> = breaches.drain(start..start + k).collect();
        if breaches.is_empty() {
            self.groups.retain(|_, b| !b.is_empty());
        }
        self.warned.forget(group);
        Ok(run)
    }

    /// Forgets every breach and warning (a global resume).
    pub fn clear(&mut self) {
        self.groups.clear();
        self.warned.clear();
    }

    /// Forgets one strategy's breaches, in its own group and in a shared one, and its
    /// group's last warning.
    pub fn clear_strategy(&mut self, strategy_id: &str) {
        self.groups.remove(&Some(strategy_id.to_owned()));
        self.warned.forget(Some(strategy_id));
        if let Some(shared) = self.groups.get_mut(&None) {
            shared.retain(|b| b.strategy(None) != strategy_id);
        }
        self.groups.retain(|_, b| !b.is_empty());
    }

    /// Forgets the breaches and warnings older than `cutoff`.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        self.warned.forget_before(cutoff);
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

impl GuardRule for SlippageWindows {
    type Policy = SlippagePolicy;
    const RULE: Rule = Rule::SlippageWindow;
    const PLACE: Place = Place::Workers;

    #[inline]
    fn on_fill(
        &mut self,
        policy: &SlippagePolicy,
        fill: &Fill,
        monitoring: Monitoring,
        decide: &mut Decide<'_>,
    ) {
        if !policy.enabled {
            return;
        }
        let threshold = monitoring.scale(policy.threshold_bps);
        let breach = fill.slippage_bps() > threshold;
        if !breach {
            return;
        }
        let group = match policy.group_by {
            GroupBy::Strategy => Some(fill.strategy_id.as_str()),
            GroupBy::Global => None,
        };
        let trip_at = monitoring.trip_at(policy.trip_at);
        let window = policy.window;
        let breach = Breach::new(
            fill.ts,
            decide.next_arrival(),
            &fill.fill_id,
            &fill.strategy_id,
            group,
        );
        // Built only for a trip or a warning, not for every breach.
        let scope = || match (policy.pause, group) {
            (PauseTarget::Group, Some(strategy)) => Scope::strategy(strategy),
            _ => Scope::Global,
        };
        let whose =
            || group.map_or_else(|| "all strategies".to_owned(), |s| format!("strategy {s}"));
        let run = match self.insert(group, breach, trip_at, window) {
            Ok(run) => run,
            Err(pos) => {
                if !decide.warnings() {
                    return;
                }
                let breaches = &self.groups[&group.map(str::to_owned)];
                let Some(evidence) = self.warned.slippage(group, breaches, pos, trip_at, window)
                else {
                    return;
                };
                let reason = format!(
                    "{} fills with slippage > {threshold:?} bps within {window} ({}): one more trips{}",
                    evidence.len(),
                    whose(),
                    monitoring.note()
                );
                let trigger = Trigger {
                    id: &fill.fill_id,
                    event_ts: fill.ts,
                    evidence,
                    reason,
                };
                return decide.warn(Rule::SlippageWindow, scope(), trigger);
            }
        };
        let reason = format!(
            "{trip_at} fills with slippage > {threshold:?} bps within {window} ({}){}",
            whose(),
            monitoring.note()
        );
        let trigger = Trigger {
            id: &fill.fill_id,
            event_ts: fill.ts,
            evidence: run.into_iter().map(|b| String::from(b.fill_id)).collect(),
            reason,
        };
        decide.trip(Rule::SlippageWindow, policy.action, scope(), trigger);
    }

    fn reset(&mut self, scope: &Scope) {
        match scope {
            Scope::Global => self.clear(),
            Scope::Strategy { strategy_id } => self.clear_strategy(strategy_id),
        }
    }

    fn forget(&mut self, policy: &SlippagePolicy, cutoff: Timestamp) {
        // A breach can still join a run with a breach up to one window later.
        self.forget_before(cutoff.minus(policy.window));
    }

    fn view(&self, out: &mut Map<String, Value>) {
        let windows: Vec<Value> = self
            .groups()
            .map(|(group, breaches)| {
                json!({
                    "group": group.unwrap_or("(all strategies)"),
                    "breaches": breaches.iter().map(|b| json!({"fill_id": b.fill_id, "strategy_id": b.strategy(group), "ts": b.ts})).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.insert("slippage_windows".into(), Value::Array(windows));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{fill, t, Given};

    fn breach(ms: i64, seq: u64) -> Breach {
        Breach::new(
            Timestamp::from_millis(ms),
            seq,
            &format!("f{seq}"),
            "a",
            Some("a"),
        )
    }

    /// The runbook's rule with `change` made to it.
    fn given(change: impl FnOnce(&mut SlippagePolicy)) -> Given<SlippageWindows> {
        let mut policy = SlippagePolicy::default();
        change(&mut policy);
        Given::policy(policy)
    }

    /// Fills `f0`, `f1`, … of `strategy` with `bps` of slippage at `secs`; every
    /// decision, described.
    fn fills(
        g: &mut Given<SlippageWindows>,
        strategy: &str,
        bps: f64,
        secs: &[f64],
    ) -> Vec<String> {
        let mut decided = Vec::new();
        for (i, s) in secs.iter().enumerate() {
            decided.extend(g.fill(fill(&format!("f{i}"), strategy, bps, t(*s))));
        }
        decided
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
        let ids: Vec<_> = run.iter().map(|b| &*b.fill_id).collect();
        assert_eq!(ids, ["f1", "f4", "f2"]);
        assert_eq!(w.groups().next().unwrap().1.len(), 1);
    }

    #[test]
    fn slippage_third_breach_within_window_pauses_globally() {
        // Given the runbook's rule (3 breaches > 5 bps within 10 minutes, pause global)
        let mut g = given(|_| {});
        // When three breaching fills of alpha arrive within 9 minutes
        assert!(g.fill(fill("f1", "alpha", 6.0, t(0.0))).is_empty());
        assert!(g.fill(fill("f2", "alpha", 7.0, t(240.0))).is_empty());
        let decided = g.fill(fill("f3", "alpha", 8.0, t(540.0)));
        // Then the global scope pauses, the command before the risk event, the run as
        // evidence, and the run leaves the window
        assert_eq!(
            decided,
            [
                "pause global slippage_window f3 [f1,f2,f3]",
                "event slippage_window global [f1,f2,f3]"
            ]
        );
        assert_eq!(
            g.last_command().reason,
            "3 fills with slippage > 5.0 bps within 600 s (strategy alpha)"
        );
        assert_eq!(g.rule.breaches(), 0);
    }

    #[test]
    fn slippage_equal_to_the_threshold_is_not_a_breach() {
        let mut g = given(|_| {});
        assert!(fills(&mut g, "alpha", 5.0, &[0.0, 10.0, 20.0]).is_empty());
        assert_eq!(g.rule.breaches(), 0);
    }

    #[test]
    fn breaches_exactly_a_window_apart_do_not_trip() {
        let mut g = given(|_| {});
        assert!(fills(&mut g, "alpha", 6.0, &[0.0, 300.0, 600.0]).is_empty());
        assert_eq!(g.rule.breaches(), 3);
    }

    #[test]
    fn a_group_pause_pauses_the_strategy_that_tripped() {
        let mut g = given(|p| p.pause = PauseTarget::Group);
        let decided = fills(&mut g, "alpha", 6.0, &[0.0, 10.0, 20.0]);
        assert_eq!(
            decided[0],
            "pause strategy:alpha slippage_window f2 [f0,f1,f2]"
        );
        assert!(!g.paused(&Scope::Global));
    }

    #[test]
    fn a_global_window_counts_the_breaches_of_every_strategy_and_pauses_globally() {
        // Given one window for all strategies, even with `pause = "group"`
        let mut g = given(|p| {
            p.group_by = GroupBy::Global;
            p.pause = PauseTarget::Group;
        });
        g.fill(fill("a1", "alpha", 6.0, t(0.0)));
        g.fill(fill("b1", "beta", 6.0, t(10.0)));
        let decided = g.fill(fill("c1", "gamma", 6.0, t(20.0)));
        assert_eq!(decided[0], "pause global slippage_window c1 [a1,b1,c1]");
        assert!(g.last_command().reason.ends_with("(all strategies)"));
    }

    #[test]
    fn under_enhanced_monitoring_the_threshold_and_trip_at_are_scaled() {
        // Given half the limits: a breach is > 2.5 bps and two breaches trip
        let mut g = given(|_| {});
        let enhanced = Monitoring::Enhanced { factor: 0.5 };
        g.fill_under(fill("f1", "alpha", 2.6, t(0.0)), enhanced);
        g.fill_under(fill("f2", "alpha", 2.6, t(10.0)), enhanced);
        assert_eq!(
            g.last_command().reason,
            "2 fills with slippage > 2.5 bps within 600 s (strategy alpha), enhanced monitoring"
        );
    }

    #[test]
    fn a_switched_off_rule_keeps_no_breach() {
        let mut g = given(|p| p.enabled = false);
        assert!(fills(&mut g, "alpha", 60.0, &[0.0, 10.0, 20.0]).is_empty());
        assert_eq!(g.rule.breaches(), 0);
    }

    #[test]
    fn on_a_worker_a_trip_raises_its_risk_event_without_a_command() {
        let mut g = given(|_| {}).on_a_worker();
        assert_eq!(
            fills(&mut g, "alpha", 6.0, &[0.0, 10.0, 20.0]),
            ["event slippage_window global [f0,f1,f2]"]
        );
    }

    #[test]
    fn a_strategy_resume_forgets_its_breaches_in_its_own_and_a_shared_window() {
        let mut g = given(|p| p.group_by = GroupBy::Global);
        g.fill(fill("a1", "alpha", 6.0, t(0.0)));
        g.fill(fill("b1", "beta", 6.0, t(1.0)));
        g.rule.reset(&Scope::strategy("alpha"));
        assert_eq!(g.rule.breaches(), 1);
        g.rule.reset(&Scope::Global);
        assert_eq!(g.rule.breaches(), 0);
    }

    #[test]
    fn beyond_the_horizon_a_breach_is_kept_one_window_longer() {
        // Given a breach at 0 s and a 600 s window
        let mut g = given(|_| {});
        g.fill(fill("f1", "alpha", 6.0, t(0.0)));
        // When the horizon's cutoff passes it by less than a window, it stays
        g.rule.forget(&g.policy, t(600.0));
        assert_eq!(g.rule.breaches(), 1);
        // Then once the cutoff is more than a window past it, it is forgotten
        g.rule.forget(&g.policy, t(600.001));
        assert_eq!(g.rule.breaches(), 0);
    }

    #[test]
    fn a_breach_of_a_strategys_own_group_holds_one_allocation_in_48_bytes() {
        let own = Breach::new(t(0.0), 1, "f1", "alpha", Some("alpha"));
        assert_eq!(std::mem::size_of::<Breach>(), 48);
        assert_eq!(own.other_strategy, None);
        assert_eq!(own.strategy(Some("alpha")), "alpha");
        let shared = Breach::new(t(0.0), 2, "f2", "beta", None);
        assert_eq!(shared.strategy(None), "beta");
    }

    #[test]
    fn the_status_view_lists_each_open_window_with_its_breaches() {
        let mut g = given(|_| {});
        g.fill(fill("f1", "alpha", 6.0, t(0.0)));
        let mut view = Map::new();
        g.rule.view(&mut view);
        let breach = json!({"fill_id": "f1", "strategy_id": "alpha", "ts": t(0.0)});
        assert_eq!(
            view["slippage_windows"],
            json!([{"group": "alpha", "breaches": [breach]}])
        );
    }
}
