//! Builders for the rules' given/when/then tests: messages in the words of the
//! contract, and [`Given`], a rule with the scopes and decisions it works on.

use super::{GuardRule, Monitoring};
use crate::engine::decide::Decide;
use crate::engine::{Role, ScopeBook};
use crate::message::{
    Action, Decision, Fill, GuardCommand, OpsCommand, RiskEvent, Scope, Severity, Side,
    StrategyRelease,
};
use crate::time::Timestamp;

/// An RFC 3339 time.
pub(crate) fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("a valid time in a test")
}

/// 2025-08-11T00:00:00Z (a Monday, far from the runbook's maintenance window) plus
/// `secs` seconds.
pub(crate) fn t(secs: f64) -> Timestamp {
    Timestamp::from_micros(at("2025-08-11T00:00:00Z").as_micros() + (secs * 1e6).round() as i64)
}

/// A buy fill of `strategy` with the given adverse slippage (bps).
pub(crate) fn fill(id: &str, strategy: &str, slippage_bps: f64, ts: Timestamp) -> Fill {
    Fill {
        fill_id: id.into(),
        order_id: None,
        strategy_id: strategy.into(),
        strategy_version: None,
        symbol: "7203.T".into(),
        side: Side::Buy,
        qty: 100.0,
        expected_price: 100.0,
        fill_price: 100.0 + slippage_bps / 100.0,
        slippage_bps: Some(slippage_bps),
        realized_pnl: None,
        ts,
        env: None,
    }
}

/// A fill without slippage and with the given realised P&L.
pub(crate) fn pnl_fill(id: &str, strategy: &str, pnl: Option<f64>, ts: Timestamp) -> Fill {
    Fill {
        realized_pnl: pnl,
        ..fill(id, strategy, 0.0, ts)
    }
}

/// A `drawdown` risk event from Noctus.
pub(crate) fn risk_event(id: &str, severity: Severity, scope: Scope, ts: Timestamp) -> RiskEvent {
    RiskEvent {
        event_id: id.into(),
        source: "noctus".into(),
        kind: "drawdown".into(),
        severity,
        scope,
        action: None,
        reason: None,
        evidence: None,
        ts,
    }
}

/// An operator's order.
pub(crate) fn ops(id: &str, action: Action, scope: Scope, ts: Timestamp) -> OpsCommand {
    OpsCommand {
        command_id: id.into(),
        action,
        scope,
        operator: "tanaka".into(),
        reason: Some("test".into()),
        ts,
    }
}

/// An adoption.
pub(crate) fn release(strategy: &str, adopted_at: Timestamp) -> StrategyRelease {
    StrategyRelease {
        strategy_id: strategy.into(),
        version: "2.0.0".into(),
        adopted_at,
    }
}

/// A rule under test: its policy, its state, and the scopes and decisions it works on
/// (as an engine holds them). Each `when` method hands the rule one message and
/// returns what it decided, described.
pub(crate) struct Given<R: GuardRule> {
    pub(crate) policy: R::Policy,
    pub(crate) rule: R,
    pub(crate) scopes: ScopeBook,
    arrivals: u64,
    decided: Vec<Decision>,
    role: Role,
}

impl<R: GuardRule + Default> Given<R> {
    /// A fresh rule under `policy`, in a whole guard: every scope running.
    pub(crate) fn policy(policy: R::Policy) -> Self {
        Given {
            policy,
            rule: R::default(),
            scopes: ScopeBook::default(),
            arrivals: 0,
            decided: Vec::new(),
            role: Role::Whole,
        }
    }

    /// The same, on a scaled-out guard's worker, which keeps no scopes.
    pub(crate) fn on_a_worker(mut self) -> Self {
        self.role = Role::Worker;
        self
    }
}

impl<R: GuardRule> Given<R> {
    /// Runs `f` on the rule, its policy and what it decides through; the decisions
    /// it made, described.
    pub(crate) fn judge(
        &mut self,
        f: impl FnOnce(&mut R, &R::Policy, &mut Decide<'_>),
    ) -> Vec<String> {
        let from = self.decided.len();
        let mut decide = Decide::new(
            &mut self.scopes,
            &mut self.arrivals,
            &mut self.decided,
            self.role,
            "guard",
            "p-test",
            // Warnings are tested through the whole engine (tests/tests/rules_warnings.rs).
            false,
        );
        f(&mut self.rule, &self.policy, &mut decide);
        self.decided[from..].iter().map(describe).collect()
    }

    /// The rule judges `fill` as its policy says.
    pub(crate) fn fill(&mut self, fill: Fill) -> Vec<String> {
        self.fill_under(fill, Monitoring::Normal)
    }

    /// The rule judges `fill` under `monitoring`.
    pub(crate) fn fill_under(&mut self, fill: Fill, monitoring: Monitoring) -> Vec<String> {
        self.judge(|rule, policy, decide| rule.on_fill(policy, &fill, monitoring, decide))
    }

    /// The rule judges a risk event.
    pub(crate) fn risk_event(&mut self, event: RiskEvent) -> Vec<String> {
        self.judge(|rule, policy, decide| rule.on_risk_event(policy, &event, decide))
    }

    /// The rule judges an operator's order.
    pub(crate) fn ops(&mut self, command: OpsCommand) -> Vec<String> {
        self.judge(|rule, policy, decide| rule.on_ops(policy, &command, decide))
    }

    /// The clock moves to `now`.
    pub(crate) fn clock(&mut self, now: Timestamp) -> Vec<String> {
        self.judge(|rule, policy, decide| rule.on_clock(policy, now, decide))
    }

    /// The last command decided.
    pub(crate) fn last_command(&self) -> &GuardCommand {
        self.decided
            .iter()
            .rev()
            .find_map(|d| match d {
                Decision::GuardCommand(c) => Some(c),
                Decision::RiskEvent(_) => None,
            })
            .expect("a command was decided")
    }

    /// Whether `scope` is paused.
    pub(crate) fn paused(&self, scope: &Scope) -> bool {
        self.scopes.is_paused(scope)
    }
}

/// A decision in a line: `pause global slippage_window f3 [f1,f2,f3]` or
/// `event slippage_window global [f1,f2,f3]`.
pub(crate) fn describe(decision: &Decision) -> String {
    match decision {
        Decision::GuardCommand(c) => format!(
            "{} {} {} {} [{}]",
            c.action.as_str(),
            c.scope,
            c.rule.as_str(),
            c.trigger,
            c.evidence.join(",")
        ),
        Decision::RiskEvent(e) => format!(
            "event {} {} [{}]",
            e.kind,
            e.scope,
            e.evidence.clone().unwrap_or_default().join(",")
        ),
    }
}
