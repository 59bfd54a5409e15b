//! The losing streak rule (CONTRACT §2.2), `[losing_streak]` in the policy: per
//! strategy, in the order fills arrive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{GuardRule, Monitoring, Place};
use crate::engine::decide::{Decide, Trigger};
use crate::message::{Effect, Fill, Rule, Scope};
use crate::policy::{is_default, PauseTarget, Reader, Section, ACTION_CHOICES, PAUSE_CHOICES};
use crate::time::Timestamp;

/// `[losing_streak]` (CONTRACT §2.2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LosingStreakPolicy {
    /// Off when false.
    pub enabled: bool,
    /// Losing fills in a row that trip.
    pub trip_at: u32,
    /// Which scope a trip pauses.
    pub pause: PauseTarget,
    /// The effect of the reason a trip adds (version 2; left out while `pause`).
    #[serde(skip_serializing_if = "is_default")]
    pub action: Effect,
}

impl Default for LosingStreakPolicy {
    /// The runbook's: five losing fills in a row pause everything.
    fn default() -> Self {
        LosingStreakPolicy {
            enabled: true,
            trip_at: 5,
            pause: PauseTarget::Global,
            action: Effect::Pause,
        }
    }
}

impl Section for LosingStreakPolicy {
    fn key(&self) -> &'static str {
        "losing_streak"
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        let Some(t) = r.table(value, "losing_streak") else {
            return;
        };
        r.keys(
            t,
            "losing_streak.",
            &["enabled", "trip_at", "pause", "action"],
        );
        r.bool(t, "losing_streak.enabled", &mut self.enabled);
        r.count(t, "losing_streak.trip_at", &mut self.trip_at);
        r.choice(t, "losing_streak.pause", &mut self.pause, &PAUSE_CHOICES);
        r.choice(t, "losing_streak.action", &mut self.action, &ACTION_CHOICES);
    }
}

/// One strategy's running streak.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    /// The losing fills, in arrival order.
    pub fills: Vec<String>,
    /// Event time of the last losing fill (a streak idle beyond the state horizon is
    /// forgotten).
    pub last: Timestamp,
}

/// The losing fills of each strategy's current streak; a strategy with no streak has
/// no entry, so thousands of quiet strategies cost nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LosingStreaks {
    streaks: BTreeMap<String, Streak>,
}

impl LosingStreaks {
    /// Folds one fill's realised P&L into its strategy's streak and returns the
    /// streak's fills when it has reached `trip_at` (the streak then restarts at zero).
    pub fn observe(
        &mut self,
        strategy_id: &str,
        fill_id: &str,
        ts: Timestamp,
        realized_pnl: Option<f64>,
        trip_at: usize,
    ) -> Option<Vec<String>> {
        match realized_pnl {
            Some(pnl) if pnl < 0.0 => {
                let streak = self.streaks.entry(strategy_id.to_owned()).or_default();
                streak.fills.push(fill_id.to_owned());
                streak.last = streak.last.max(ts);
            }
            Some(pnl) if pnl > 0.0 => {
                self.streaks.remove(strategy_id);
            }
            _ => {}
        }
        let streak = self.streaks.get(strategy_id)?;
        if streak.fills.len() >= trip_at.max(1) {
            self.streaks.remove(strategy_id).map(|s| s.fills)
        } else {
            None
        }
    }

    /// Forgets every streak (a global resume).
    pub fn clear(&mut self) {
        self.streaks.clear();
    }

    /// Forgets one strategy's streak.
    pub fn clear_strategy(&mut self, strategy_id: &str) {
        self.streaks.remove(strategy_id);
    }

    /// Forgets the streaks whose last loss is older than `cutoff`.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        self.streaks.retain(|_, s| s.last >= cutoff);
    }

    /// How many strategies have a running streak.
    pub fn len(&self) -> usize {
        self.streaks.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.streaks.is_empty()
    }

    /// Every running streak: strategy and its losing fills.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.streaks
            .iter()
            .map(|(k, v)| (k.as_str(), v.fills.as_slice()))
    }
}

impl LosingStreaks {
    /// After a losing fill that did not trip (CONTRACT §2.7): the warning, when it
    /// brought the streak to exactly `trip_at - 1` (`trip_at` at least 2).
    fn warn(
        &self,
        fill: &Fill,
        trip_at: usize,
        scope: Scope,
        monitoring: Monitoring,
        decide: &mut Decide<'_>,
    ) {
        let Some(streak) = self.streaks.get(&fill.strategy_id) else {
            return;
        };
        if trip_at < 2 || streak.fills.len() != trip_at - 1 {
            return;
        }
        let reason = format!(
            "{} losing fills in a row (strategy {}): one more trips{}",
            streak.fills.len(),
            fill.strategy_id,
            monitoring.note()
        );
        let trigger = Trigger {
            id: &fill.fill_id,
            event_ts: fill.ts,
            evidence: streak.fills.clone(),
            reason,
        };
        decide.warn(Rule::LosingStreak, scope, trigger);
    }
}

impl GuardRule for LosingStreaks {
    type Policy = LosingStreakPolicy;
    const RULE: Rule = Rule::LosingStreak;
    const PLACE: Place = Place::Workers;

    #[inline]
    fn on_fill(
        &mut self,
        policy: &LosingStreakPolicy,
        fill: &Fill,
        monitoring: Monitoring,
        decide: &mut Decide<'_>,
    ) {
        if !policy.enabled {
            return;
        }
        let trip_at = monitoring.trip_at(policy.trip_at);
        let tripped = self.observe(
            &fill.strategy_id,
            &fill.fill_id,
            fill.ts,
            fill.realized_pnl,
            trip_at,
        );
        let scope = || match policy.pause {
            PauseTarget::Global => Scope::Global,
            PauseTarget::Group => Scope::strategy(&fill.strategy_id),
        };
        let Some(losing) = tripped else {
            if decide.warnings() && fill.realized_pnl.is_some_and(|pnl| pnl < 0.0) {
                self.warn(fill, trip_at, scope(), monitoring, decide);
            }
            return;
        };
        let reason = format!(
            "{} losing fills in a row (strategy {}){}",
            losing.len(),
            fill.strategy_id,
            monitoring.note()
        );
        let trigger = Trigger {
            id: &fill.fill_id,
            event_ts: fill.ts,
            evidence: losing,
            reason,
        };
        decide.trip(Rule::LosingStreak, policy.action, scope(), trigger);
    }

    fn reset(&mut self, scope: &Scope) {
        match scope {
            Scope::Global => self.clear(),
            Scope::Strategy { strategy_id } => self.clear_strategy(strategy_id),
        }
    }

    fn forget(&mut self, _policy: &LosingStreakPolicy, cutoff: Timestamp) {
        self.forget_before(cutoff);
    }

    fn view(&self, out: &mut Map<String, Value>) {
        let streaks: Vec<Value> = self
            .iter()
            .map(|(s, fills)| json!({"strategy_id": s, "losing_fills": fills}))
            .collect();
        out.insert("losing_streaks".into(), Value::Array(streaks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{pnl_fill, t, Given};

    /// The runbook's rule with `change` made to it.
    fn given(change: impl FnOnce(&mut LosingStreakPolicy)) -> Given<LosingStreaks> {
        let mut policy = LosingStreakPolicy::default();
        change(&mut policy);
        Given::policy(policy)
    }

    /// Fills `S0`, `S1`, … of strategy `S` with these P&Ls, a second apart; every
    /// decision, described.
    fn pnls(g: &mut Given<LosingStreaks>, strategy: &str, pnls: &[Option<f64>]) -> Vec<String> {
        let mut decided = Vec::new();
        for (i, pnl) in pnls.iter().enumerate() {
            let id = format!("{strategy}{i}");
            decided.extend(g.fill(pnl_fill(&id, strategy, *pnl, t(i as f64))));
        }
        decided
    }

    #[test]
    fn the_fifth_losing_fill_in_a_row_pauses_globally_and_restarts_the_count() {
        // Given the runbook's rule (5 losses in a row, pause global)
        let mut g = given(|_| {});
        // When beta loses five times in a row
        let decided = pnls(&mut g, "beta", &[Some(-1.0); 5]);
        // Then the global scope pauses with the losses as evidence
        assert_eq!(
            decided,
            [
                "pause global losing_streak beta4 [beta0,beta1,beta2,beta3,beta4]",
                "event losing_streak global [beta0,beta1,beta2,beta3,beta4]"
            ]
        );
        assert_eq!(
            g.last_command().reason,
            "5 losing fills in a row (strategy beta)"
        );
        assert!(g.rule.is_empty(), "the streak restarts at zero");
    }

    #[test]
    fn a_winning_fill_resets_the_streak_and_a_flat_or_unknown_one_leaves_it() {
        let mut g = given(|_| {});
        let history = [
            Some(-1.0),
            Some(-1.0),
            Some(2.0),
            Some(-1.0),
            None,
            Some(0.0),
        ];
        assert!(pnls(&mut g, "beta", &history).is_empty());
        let (_, losing) = g.rule.iter().next().unwrap();
        assert_eq!(losing, ["beta3"]);
    }

    #[test]
    fn each_strategy_keeps_its_own_streak() {
        let mut g = given(|p| p.trip_at = 2);
        assert!(pnls(&mut g, "alpha", &[Some(-1.0)]).is_empty());
        assert!(pnls(&mut g, "beta", &[Some(-1.0)]).is_empty());
        assert_eq!(g.rule.len(), 2);
    }

    #[test]
    fn a_group_pause_pauses_the_losing_strategy() {
        let mut g = given(|p| p.pause = PauseTarget::Group);
        pnls(&mut g, "beta", &[Some(-1.0); 5]);
        assert!(g.paused(&Scope::strategy("beta")));
        assert!(!g.paused(&Scope::Global));
    }

    #[test]
    fn under_enhanced_monitoring_trip_at_is_scaled_up_to_a_whole_fill() {
        // Given half the limits: ceil(5 * 0.5) = 3 losses trip
        let mut g = given(|_| {});
        let enhanced = Monitoring::Enhanced { factor: 0.5 };
        for i in 0..3 {
            let f = pnl_fill(&format!("l{i}"), "beta", Some(-1.0), t(f64::from(i)));
            g.fill_under(f, enhanced);
        }
        assert_eq!(
            g.last_command().reason,
            "3 losing fills in a row (strategy beta), enhanced monitoring"
        );
    }

    #[test]
    fn a_switched_off_rule_keeps_no_streak() {
        let mut g = given(|p| p.enabled = false);
        assert!(pnls(&mut g, "beta", &[Some(-1.0); 6]).is_empty());
        assert!(g.rule.is_empty());
    }

    #[test]
    fn on_a_worker_a_trip_raises_its_risk_event_without_a_command() {
        let mut g = given(|p| p.trip_at = 1).on_a_worker();
        assert_eq!(
            pnls(&mut g, "beta", &[Some(-1.0)]),
            ["event losing_streak global [beta0]"]
        );
    }

    #[test]
    fn a_resume_forgets_the_streaks_that_feed_its_scope() {
        let mut g = given(|_| {});
        pnls(&mut g, "alpha", &[Some(-1.0)]);
        pnls(&mut g, "beta", &[Some(-1.0)]);
        g.rule.reset(&Scope::strategy("alpha"));
        assert_eq!(g.rule.iter().map(|(s, _)| s).collect::<Vec<_>>(), ["beta"]);
        g.rule.reset(&Scope::Global);
        assert!(g.rule.is_empty());
    }

    #[test]
    fn a_streak_idle_beyond_the_horizon_is_forgotten() {
        let mut g = given(|_| {});
        g.fill(pnl_fill("l1", "beta", Some(-1.0), t(10.0)));
        g.rule.forget(&g.policy, t(10.0));
        assert_eq!(g.rule.len(), 1);
        g.rule.forget(&g.policy, t(10.001));
        assert!(g.rule.is_empty());
    }

    #[test]
    fn the_status_view_lists_each_running_streak() {
        let mut g = given(|_| {});
        g.fill(pnl_fill("l1", "beta", Some(-1.0), t(0.0)));
        let mut view = Map::new();
        g.rule.view(&mut view);
        assert_eq!(
            view["losing_streaks"],
            json!([{"strategy_id": "beta", "losing_fills": ["l1"]}])
        );
    }
}
