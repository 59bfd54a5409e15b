//! The registry: the one place that lists the rules.
//!
//! [`RulePolicies`] holds every rule's policy section and [`Rules`] every rule's
//! state; `Rules::each` binds each rule to its section, in the order the rules judge
//! a message (CONTRACT §2: the slippage window, then the losing streak), and every
//! fan-out below goes through it. The engine sees only [`Rules`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Acks, AcksPolicy, Adoptions, DailyDrawdown, DailyLoss, DailyPolicy, EnhancedPolicy, GuardRule,
    LosingStreakPolicy, LosingStreaks, Maintenance, MaintenancePolicy, Monitoring, OperatorOrders,
    Place, RiskEvents, SlippagePolicy, SlippageWindows, WarningsPolicy,
};
use crate::engine::decide::Decide;
use crate::engine::trip::TripError;
use crate::message::{Action, Fill, Input, OpsCommand, RiskEvent, Rule, Scope, StrategyRelease};
use crate::policy::Section;
use crate::time::Timestamp;

/// Every rule's section of the policy. The field order is the order in which the
/// policy is printed and hashed into its version: keep it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RulePolicies {
    /// `[slippage]`: the slippage window.
    pub slippage: SlippagePolicy,
    /// `[losing_streak]`: the losing streak.
    pub losing_streak: LosingStreakPolicy,
    /// `[enhanced]`: enhanced monitoring after an adoption.
    pub enhanced: EnhancedPolicy,
    /// `[daily]`: daily loss and drawdown limits (version 2; left out while default).
    #[serde(skip_serializing_if = "crate::policy::is_default")]
    pub daily: DailyPolicy,
    /// `[acks]`: gateways' acknowledgements (version 2; left out while default).
    #[serde(skip_serializing_if = "crate::policy::is_default")]
    pub acks: AcksPolicy,
    /// `[warnings]`: warnings before a trip (version 2; left out while off).
    #[serde(skip_serializing_if = "crate::policy::is_default")]
    pub warnings: WarningsPolicy,
    /// `[[maintenance]]`: the weekly maintenance windows.
    pub maintenance: MaintenancePolicy,
}

impl RulePolicies {
    /// Every section, in the order they are read.
    pub(crate) fn sections(&mut self) -> [&mut dyn Section; 7] {
        [
            &mut self.slippage,
            &mut self.losing_streak,
            &mut self.enhanced,
            &mut self.daily,
            &mut self.acks,
            &mut self.warnings,
            &mut self.maintenance,
        ]
    }
}

/// Every rule's state. Each field is the rule's key in a snapshot (the engine state
/// flattens this struct into its own object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// Open slippage windows.
    pub slippage: SlippageWindows,
    /// Running losing streaks.
    pub streaks: LosingStreaks,
    /// Each group's trading days against the daily loss limit (version 2; left out
    /// of a snapshot while empty).
    #[serde(default, skip_serializing_if = "DailyLoss::is_empty")]
    pub daily_loss: DailyLoss,
    /// Each group's trading days against the daily drawdown limit.
    #[serde(default, skip_serializing_if = "DailyDrawdown::is_empty")]
    pub daily_drawdown: DailyDrawdown,
    /// Adoption times per strategy (enhanced monitoring).
    pub adoptions: Adoptions,
    /// Maintenance windows the clock is in, with the occurrence entered.
    pub maintenance: Maintenance,
    /// Commands awaiting gateways' acknowledgements (version 2; left out of a
    /// snapshot while acks are off).
    #[serde(default, skip_serializing_if = "Acks::is_empty")]
    pub acks: Acks,
}

impl Rules {
    /// Calls `f` with every rule bound to its policy section, in judging order.
    fn each(&mut self, p: &RulePolicies, mut f: impl FnMut(&mut dyn Unit)) {
        f(&mut Bound(&p.slippage, &mut self.slippage));
        f(&mut Bound(&p.losing_streak, &mut self.streaks));
        f(&mut Bound(&p.daily, &mut self.daily_loss));
        f(&mut Bound(&p.daily, &mut self.daily_drawdown));
        f(&mut Bound(&(), &mut RiskEvents));
        f(&mut Bound(&(), &mut OperatorOrders));
        f(&mut Bound(&p.maintenance, &mut self.maintenance));
    }

    /// Adds every rule's part of the `/state` document.
    pub fn view(&self, out: &mut Map<String, Value>) {
        self.slippage.view(out);
        self.view_without_windows(out);
    }

    /// [`Rules::view`] but the slippage windows, by far its largest part, which a
    /// caller may render from [`SlippageWindows::groups`] without building values.
    pub fn view_without_windows(&self, out: &mut Map<String, Value>) {
        self.streaks.view(out);
        self.daily_loss.view(out);
        self.daily_drawdown.view(out);
        self.maintenance.view(out);
        self.acks.view(out);
    }

    /// Applies a new message (not a duplicate) to every rule.
    // `#[inline]` here, on `on_fill` and on the rules' `on_fill`: the rules live in
    // other codegen units than the engine, and without the hints a fill cost about 75
    // more instructions than when one function judged it (callgrind).
    #[inline]
    pub(crate) fn apply(&mut self, p: &RulePolicies, input: &Input, decide: &mut Decide<'_>) {
        match input {
            Input::Fill(fill) => self.on_fill(p, fill, decide),
            Input::RiskEvent(event) => self.each(p, |r| r.on_risk_event(event, decide)),
            Input::Release(release) => self.adoptions.adopt(release),
            Input::Ops(command) => self.on_ops(p, command, decide),
            Input::Ack(ack) => self.acks.on_ack(ack),
        }
    }

    #[inline]
    fn on_fill(&mut self, p: &RulePolicies, fill: &Fill, decide: &mut Decide<'_>) {
        let monitoring = self.monitoring(&p.enhanced, fill);
        self.each(p, |r| r.on_fill(fill, monitoring, decide));
    }

    fn monitoring(&self, enhanced: &EnhancedPolicy, fill: &Fill) -> Monitoring {
        self.adoptions
            .monitoring(enhanced, &fill.strategy_id, fill.ts)
    }

    fn on_ops(&mut self, p: &RulePolicies, command: &OpsCommand, decide: &mut Decide<'_>) {
        if command.action == Action::Resume {
            self.each(p, |r| r.reset(&command.scope));
        }
        self.each(p, |r| r.on_ops(command, decide));
    }

    /// Whether `release` was applied before (a release has no id: it is its own).
    pub(crate) fn knows(&self, release: &StrategyRelease) -> bool {
        self.adoptions.contains(release)
    }

    /// Every rule sees the clock move forward to `now`.
    /// Deadlines of unacknowledged commands are checked after the maintenance
    /// windows (CONTRACT §2.10).
    pub(crate) fn on_clock(&mut self, p: &RulePolicies, now: Timestamp, decide: &mut Decide<'_>) {
        self.each(p, |r| r.on_clock(now, decide));
        self.acks.on_clock(&p.acks, now, decide);
    }

    /// Every rule forgets what the state horizon has passed.
    pub(crate) fn forget(&mut self, p: &RulePolicies, cutoff: Timestamp) {
        self.each(p, |r| r.forget(cutoff));
        self.adoptions.forget(&p.enhanced, cutoff);
    }

    /// Every rule drops what it derived from an earlier policy.
    pub(crate) fn adopt_policy(&mut self, p: &RulePolicies) {
        self.each(p, |r| r.adopt_policy());
    }

    /// The rule a forwarded trip names, when workers judge it.
    ///
    /// # Errors
    /// [`TripError`] when no rule has that name, or workers do not judge it.
    pub(crate) fn route(&mut self, p: &RulePolicies, name: &str) -> Result<Rule, TripError> {
        let mut found = None;
        self.each(p, |r| {
            if r.rule().as_str() == name {
                found = Some((r.rule(), r.place()));
            }
        });
        match found {
            None => Err(TripError::UnknownRule(name.to_owned())),
            Some((rule, Place::Scopes)) => Err(TripError::NotForwarded(rule)),
            Some((rule, Place::Workers)) => Ok(rule),
        }
    }
}

/// A rule bound to its policy section, whatever the rule: what [`Rules::each`] hands
/// out.
trait Unit {
    fn rule(&self) -> Rule;
    fn place(&self) -> Place;
    fn on_fill(&mut self, fill: &Fill, monitoring: Monitoring, decide: &mut Decide<'_>);
    fn on_risk_event(&mut self, event: &RiskEvent, decide: &mut Decide<'_>);
    fn on_ops(&mut self, command: &OpsCommand, decide: &mut Decide<'_>);
    fn on_clock(&mut self, now: Timestamp, decide: &mut Decide<'_>);
    fn reset(&mut self, scope: &Scope);
    fn forget(&mut self, cutoff: Timestamp);
    fn adopt_policy(&mut self);
}

struct Bound<'a, R: GuardRule>(&'a R::Policy, &'a mut R);

impl<R: GuardRule> Unit for Bound<'_, R> {
    fn rule(&self) -> Rule {
        R::RULE
    }

    fn place(&self) -> Place {
        R::PLACE
    }

    fn on_fill(&mut self, fill: &Fill, monitoring: Monitoring, decide: &mut Decide<'_>) {
        self.1.on_fill(self.0, fill, monitoring, decide);
    }

    fn on_risk_event(&mut self, event: &RiskEvent, decide: &mut Decide<'_>) {
        self.1.on_risk_event(self.0, event, decide);
    }

    fn on_ops(&mut self, command: &OpsCommand, decide: &mut Decide<'_>) {
        self.1.on_ops(self.0, command, decide);
    }

    fn on_clock(&mut self, now: Timestamp, decide: &mut Decide<'_>) {
        self.1.on_clock(self.0, now, decide);
    }

    fn reset(&mut self, scope: &Scope) {
        self.1.reset(scope);
    }

    fn forget(&mut self, cutoff: Timestamp) {
        self.1.forget(self.0, cutoff);
    }

    fn adopt_policy(&mut self) {
        self.1.adopt_policy(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Vec<(Rule, Place)> {
        let mut found = Vec::new();
        Rules::default().each(&RulePolicies::default(), |r| {
            found.push((r.rule(), r.place()));
        });
        found
    }

    #[test]
    fn every_wire_rule_is_judged_by_exactly_one_registered_rule() {
        let names: Vec<Rule> = registered().into_iter().map(|(rule, _)| rule).collect();
        for rule in Rule::ALL {
            let n = names.iter().filter(|r| **r == rule).count();
            assert_eq!(n, 1, "{} is registered {n} times", rule.as_str());
        }
        assert_eq!(names.len(), Rule::ALL.len());
    }

    #[test]
    fn fill_rules_judge_in_contract_order_slippage_before_streak() {
        let names: Vec<Rule> = registered().into_iter().map(|(rule, _)| rule).collect();
        let at = |rule| names.iter().position(|r| *r == rule).unwrap();
        assert!(at(Rule::SlippageWindow) < at(Rule::LosingStreak));
    }

    #[test]
    fn trips_of_rules_judged_on_workers_are_routed_to_their_rule() {
        let mut rules = Rules::default();
        let p = RulePolicies::default();
        for (rule, place) in registered() {
            let routed = rules.route(&p, rule.as_str());
            match place {
                Place::Workers => assert_eq!(routed, Ok(rule)),
                Place::Scopes => assert_eq!(routed, Err(TripError::NotForwarded(rule))),
            }
        }
        assert_eq!(rules.route(&p, "slippage_window"), Ok(Rule::SlippageWindow));
        assert_eq!(rules.route(&p, "losing_streak"), Ok(Rule::LosingStreak));
    }

    #[test]
    fn a_trip_of_an_unknown_rule_is_refused_not_taken_for_a_losing_streak() {
        let routed = Rules::default().route(&RulePolicies::default(), "drawdown");
        assert_eq!(routed, Err(TripError::UnknownRule("drawdown".into())));
    }

    #[test]
    fn every_section_has_its_own_key_in_print_order() {
        let mut p = RulePolicies::default();
        let keys: Vec<&str> = p.sections().iter().map(|s| s.key()).collect();
        assert_eq!(
            keys,
            [
                "slippage",
                "losing_streak",
                "enhanced",
                "daily",
                "acks",
                "warnings",
                "maintenance"
            ]
        );
        // A version-2 section is printed once it leaves its default.
        let default = serde_json::to_value(&p).unwrap();
        assert!(default.get("warnings").is_none(), "{default}");
        p.warnings.enabled = true;
        p.daily.max_loss = 1.0;
        p.acks.gateways = vec!["gw".into()];
        let printed = serde_json::to_value(&p).unwrap();
        let printed: Vec<&String> = printed.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(printed, sorted);
    }
}
