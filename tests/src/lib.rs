//! Shared helpers for the guard's integration tests: message builders in the words of
//! the contract, a harness that records decisions, and the JSON Schemas.

use std::path::{Path, PathBuf};

use guard::engine::{Engine, EngineOptions};
use guard::message::{
    Action, Decision, Fill, GuardCommand, Input, OpsCommand, RiskEvent, Rule, Scope, Severity,
    Side, StrategyRelease,
};
use guard::policy::Policy;
use guard::time::Timestamp;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// An RFC 3339 time.
pub fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap_or_else(|e| panic!("bad time in test: {e}"))
}

/// 2025-08-11T00:00:00Z plus `secs` seconds — a Monday, far from the default
/// maintenance window (Monday 17:00–18:00 UTC).
pub fn t(secs: f64) -> Timestamp {
    Timestamp::from_micros(at("2025-08-11T00:00:00Z").as_micros() + (secs * 1e6).round() as i64)
}

/// A buy fill of `strategy` with the given adverse slippage (bps) at `ts`.
pub fn fill(id: &str, strategy: &str, slippage_bps: f64, ts: Timestamp) -> Fill {
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

/// A fill with no slippage and the given realised P&L.
pub fn pnl_fill(id: &str, strategy: &str, pnl: Option<f64>, ts: Timestamp) -> Fill {
    Fill {
        realized_pnl: pnl,
        ..fill(id, strategy, 0.0, ts)
    }
}

/// A risk event.
pub fn risk_event(
    id: &str,
    source: &str,
    severity: Severity,
    scope: Scope,
    ts: Timestamp,
) -> RiskEvent {
    RiskEvent {
        event_id: id.into(),
        source: source.into(),
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
pub fn ops(id: &str, action: Action, scope: Scope, ts: Timestamp) -> OpsCommand {
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
pub fn release(strategy: &str, adopted_at: Timestamp) -> StrategyRelease {
    StrategyRelease {
        strategy_id: strategy.into(),
        version: "2.0.0".into(),
        adopted_at,
    }
}

/// A policy with no maintenance window and the given TOML on top, so tests of other
/// rules are not disturbed by the weekly window.
pub fn policy(extra: &str) -> Policy {
    let text = if extra.contains("maintenance") {
        extra.to_owned()
    } else {
        format!("maintenance = []\n{extra}")
    };
    Policy::from_toml(&text).unwrap_or_else(|e| panic!("bad policy in test: {e}"))
}

/// An engine with every decision it makes recorded.
pub struct Harness {
    /// The engine under test.
    pub engine: Engine,
    /// Every decision, in order.
    pub decisions: Vec<Decision>,
}

impl Harness {
    /// A fresh engine in event-time mode.
    pub fn new(policy: Policy) -> Self {
        Harness {
            engine: Engine::new(policy, EngineOptions::default()),
            decisions: Vec::new(),
        }
    }

    /// Applies one message and returns the decisions it led to.
    pub fn apply(&mut self, input: impl Into<Input>) -> Vec<Decision> {
        let outcome = self.engine.apply(&input.into());
        self.decisions.extend(outcome.decisions.iter().cloned());
        outcome.decisions
    }

    /// The commands among all decisions so far.
    pub fn commands(&self) -> Vec<&GuardCommand> {
        self.decisions
            .iter()
            .filter_map(|d| match d {
                Decision::GuardCommand(c) => Some(c),
                Decision::RiskEvent(_) => None,
            })
            .collect()
    }

    /// The guard's risk events among all decisions so far.
    pub fn risk_events(&self) -> Vec<&RiskEvent> {
        self.decisions
            .iter()
            .filter_map(|d| match d {
                Decision::RiskEvent(e) => Some(e),
                Decision::GuardCommand(_) => None,
            })
            .collect()
    }

    /// Whether `scope` is paused.
    pub fn paused(&self, scope: &Scope) -> bool {
        self.engine.state().scopes.is_paused(scope)
    }
}

/// A compact view of a decision for assertions: `pause global slippage_window f3 [f1,f2,f3]`.
pub fn describe(decision: &Decision) -> String {
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

/// [`describe`] over a list.
pub fn describe_all(decisions: &[Decision]) -> Vec<String> {
    decisions.iter().map(describe).collect()
}

/// The rule of a command, for readability in tests.
pub fn rule_of(c: &GuardCommand) -> Rule {
    c.rule
}

/// Loads `schemas/NAME.schema.json` with every sibling schema registered, so `$ref`s
/// between them resolve without any network.
pub fn schema(name: &str) -> jsonschema::Validator {
    let dir = repo_root().join("schemas");
    let load = |file: &str| -> serde_json::Value {
        let text =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let mut options = jsonschema::options().should_validate_formats(true);
    for entry in std::fs::read_dir(&dir).expect("schemas/ exists") {
        let file = entry
            .expect("readable dir")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if file.ends_with(".schema.json") {
            let value = load(&file);
            let id = value["$id"]
                .as_str()
                .unwrap_or_else(|| panic!("{file} has no $id"))
                .to_owned();
            let resource = jsonschema::Resource::from_contents(value)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            options = options.with_resource(id, resource);
        }
    }
    options
        .build(&load(&format!("{name}.schema.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
