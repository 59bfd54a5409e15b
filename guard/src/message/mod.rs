//! The messages of CONTRACT §1, as the guard reads and writes them.
//!
//! Inputs ([`Fill`], [`RiskEvent`], [`StrategyRelease`], [`OpsCommand`]) decode with
//! serde and are then checked by [`crate::decode`]; unknown fields are ignored and
//! `null` means absent. Outputs are [`GuardCommand`] and the guard's own
//! [`RiskEvent`]s, wrapped in a [`Decision`].

mod mode;
mod scope;

pub use mode::{Effect, Mode};
pub use scope::Scope;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// `buy` or `sell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Bought: a fill above the expected price is adverse.
    Buy,
    /// Sold: a fill below the expected price is adverse.
    Sell,
}

/// Deployment environment a fill came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    /// Production.
    Prod,
    /// Staging.
    Stg,
    /// Development.
    Dev,
}

/// One `exec_result`: a fill published by the Do layer (CONTRACT §1.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    /// Unique per fill; a repeat is a duplicate delivery.
    pub fill_id: String,
    /// The order this fill belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The strategy that traded.
    pub strategy_id: String,
    /// The strategy version that traded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_version: Option<String>,
    /// Instrument.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity, > 0.
    pub qty: f64,
    /// The price the strategy expected, > 0.
    pub expected_price: f64,
    /// The price obtained, > 0.
    pub fill_price: f64,
    /// Adverse slippage in bps when the Do layer computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slippage_bps: Option<f64>,
    /// Realised profit or loss when the fill closes (part of) a position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_pnl: Option<f64>,
    /// Event time of the fill.
    pub ts: Timestamp,
    /// Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
}

impl Fill {
    /// Adverse slippage in basis points: the given value, or computed from the prices
    /// (positive = worse than expected).
    pub fn slippage_bps(&self) -> f64 {
        self.slippage_bps.unwrap_or_else(|| {
            let diff = match self.side {
                Side::Buy => self.fill_price - self.expected_price,
                Side::Sell => self.expected_price - self.fill_price,
            };
            diff / self.expected_price * 10_000.0
        })
    }
}

/// How bad a risk event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Warning,
    /// Pauses by default.
    Critical,
}

/// What a risk event asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    /// Nothing: the event is for the record.
    None,
    /// Pause the event's scope.
    Pause,
    /// Let the event's scope only reduce positions (CONTRACT §2.3).
    ReduceOnly,
}

impl RiskAction {
    /// The effect of the reason this asks for, if any.
    pub fn effect(self) -> Option<Effect> {
        match self {
            RiskAction::None => None,
            RiskAction::Pause => Some(Effect::Pause),
            RiskAction::ReduceOnly => Some(Effect::ReduceOnly),
        }
    }
}

/// A `risk_event` (CONTRACT §1.2), read from Noctus and written by the guard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskEvent {
    /// Unique; repeats are ignored.
    pub event_id: String,
    /// Who raised it; the guard ignores its own.
    pub source: String,
    /// What was detected, e.g. `slippage_window`.
    pub kind: String,
    /// How bad.
    pub severity: Severity,
    /// What it concerns.
    pub scope: Scope,
    /// What it asks for; absent means `pause` for critical events, else `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RiskAction>,
    /// Human text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ids of the messages that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Vec<String>>,
    /// Event time.
    pub ts: Timestamp,
}

impl RiskEvent {
    /// The explicit action, or the contract's default for the severity.
    pub fn effective_action(&self) -> RiskAction {
        self.action.unwrap_or(match self.severity {
            Severity::Critical => RiskAction::Pause,
            Severity::Info | Severity::Warning => RiskAction::None,
        })
    }
}

/// A `guard_ack` (CONTRACT §1.7): a gateway has applied a guard command. A repeat of
/// the same (`command_id`, `gateway`) is a duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardAck {
    /// The command applied.
    pub command_id: String,
    /// The gateway that applied it.
    pub gateway: String,
    /// When it was applied.
    pub ts: Timestamp,
}

/// A `strategy_release` (CONTRACT §1.3): a version adopted in production.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyRelease {
    /// The strategy.
    pub strategy_id: String,
    /// The adopted version.
    pub version: String,
    /// When it was adopted; enhanced monitoring starts here.
    pub adopted_at: Timestamp,
}

/// An operator's order, and a guard command's new mode for its scope (CONTRACT §1.4,
/// §1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stop trading in the scope.
    Pause,
    /// Only orders that reduce a position.
    ReduceOnly,
    /// Trading in the scope may go on.
    Resume,
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::ReduceOnly => "reduce_only",
            Action::Resume => "resume",
        }
    }
}

/// An `ops_command` (CONTRACT §1.4): an operator's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpsCommand {
    /// Unique; repeats are ignored.
    pub command_id: String,
    /// Pause, reduce only, or resume.
    pub action: Action,
    /// Which scope.
    pub scope: Scope,
    /// Who gave the order.
    pub operator: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was given.
    pub ts: Timestamp,
}

/// Why a scope is paused; also the `rule` of a [`GuardCommand`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Too many slippage breaches within the window.
    SlippageWindow,
    /// Too many losing fills in a row.
    LosingStreak,
    /// A trading day lost too much.
    DailyLoss,
    /// A trading day fell too far from its peak.
    DailyDrawdown,
    /// A risk event asked for a pause.
    RiskEvent,
    /// An operator's order.
    Operator,
    /// A maintenance window.
    Maintenance,
}

impl Rule {
    /// Every rule, in the order of CONTRACT §1.6.
    pub const ALL: [Rule; 7] = [
        Rule::SlippageWindow,
        Rule::LosingStreak,
        Rule::DailyLoss,
        Rule::DailyDrawdown,
        Rule::RiskEvent,
        Rule::Operator,
        Rule::Maintenance,
    ];

    /// The rule with this wire name.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SlippageWindow => "slippage_window",
            Rule::LosingStreak => "losing_streak",
            Rule::DailyLoss => "daily_loss",
            Rule::DailyDrawdown => "daily_drawdown",
            Rule::RiskEvent => "risk_event",
            Rule::Operator => "operator",
            Rule::Maintenance => "maintenance",
        }
    }
}

/// A `guard_command` (CONTRACT §1.6): the guard's order to the gateways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardCommand {
    /// Deterministic: a hash of action, scope, rule, trigger and event time.
    pub command_id: String,
    /// The scope's new mode: pause, reduce_only (only orders that reduce a position) or resume.
    pub action: Action,
    /// The scope that changed state.
    pub scope: Scope,
    /// What caused the transition.
    pub rule: Rule,
    /// Id of the input message that caused it, or the maintenance window's name.
    pub trigger: String,
    /// Ids of every message the decision rests on.
    pub evidence: Vec<String>,
    /// Human text.
    pub reason: String,
    /// Event time of the trigger.
    pub event_ts: Timestamp,
    /// When the decision was made: wall clock live, `event_ts` in replay.
    pub decided_at: Timestamp,
    /// The policy in force.
    pub policy_version: String,
}

/// One decision of the engine, in the order it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stream", content = "event", rename_all = "snake_case")]
pub enum Decision {
    /// A pause or resume for the gateways.
    GuardCommand(GuardCommand),
    /// A risk event raised by the guard.
    RiskEvent(RiskEvent),
}

impl Decision {
    /// The id of the decision (`command_id` or `event_id`).
    pub fn id(&self) -> &str {
        match self {
            Decision::GuardCommand(c) => &c.command_id,
            Decision::RiskEvent(e) => &e.event_id,
        }
    }

    /// The scope the decision concerns.
    pub fn scope(&self) -> &Scope {
        match self {
            Decision::GuardCommand(c) => &c.scope,
            Decision::RiskEvent(e) => &e.scope,
        }
    }
}

/// One input message, decoded and valid.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A fill.
    Fill(Fill),
    /// A risk event.
    RiskEvent(RiskEvent),
    /// An adoption of a strategy version.
    Release(StrategyRelease),
    /// An operator's order.
    Ops(OpsCommand),
    /// A gateway's acknowledgement of a command.
    Ack(GuardAck),
}

impl Input {
    /// The message's event time: `ts`, or `adopted_at` for a release.
    pub fn event_time(&self) -> Timestamp {
        match self {
            Input::Fill(m) => m.ts,
            Input::RiskEvent(m) => m.ts,
            Input::Release(m) => m.adopted_at,
            Input::Ack(m) => m.ts,
            Input::Ops(m) => m.ts,
        }
    }

    /// The stream this message belongs to.
    pub fn stream(&self) -> Stream {
        match self {
            Input::Fill(_) => Stream::ExecResult,
            Input::RiskEvent(_) => Stream::RiskEvent,
            Input::Release(_) => Stream::StrategyRelease,
            Input::Ops(_) => Stream::OpsCommand,
            Input::Ack(_) => Stream::GuardAck,
        }
    }
}

impl From<Fill> for Input {
    fn from(m: Fill) -> Self {
        Input::Fill(m)
    }
}

impl From<RiskEvent> for Input {
    fn from(m: RiskEvent) -> Self {
        Input::RiskEvent(m)
    }
}

impl From<StrategyRelease> for Input {
    fn from(m: StrategyRelease) -> Self {
        Input::Release(m)
    }
}

impl From<OpsCommand> for Input {
    fn from(m: OpsCommand) -> Self {
        Input::Ops(m)
    }
}

impl From<GuardAck> for Input {
    fn from(m: GuardAck) -> Self {
        Input::Ack(m)
    }
}

/// The input streams of CONTRACT §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Fills.
    ExecResult,
    /// Risk events.
    RiskEvent,
    /// Adoptions.
    StrategyRelease,
    /// Operators' orders.
    OpsCommand,
    /// Gateways' acknowledgements (version 2).
    GuardAck,
}

impl Stream {
    /// Every input stream, in the order summaries list them.
    pub const ALL: [Stream; 5] = [
        Stream::ExecResult,
        Stream::RiskEvent,
        Stream::StrategyRelease,
        Stream::OpsCommand,
        Stream::GuardAck,
    ];

    /// The wire name (also the default topic).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::ExecResult => "exec_result",
            Stream::RiskEvent => "risk_event",
            Stream::StrategyRelease => "strategy_release",
            Stream::OpsCommand => "ops_command",
            Stream::GuardAck => "guard_ack",
        }
    }

    /// The stream's place in [`Stream::ALL`]: how messages of equal timestamps on
    /// different streams are ordered.
    pub fn rank(self) -> usize {
        self as usize
    }

    /// The stream with this wire name.
    pub fn from_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_listed_once_and_found_by_its_wire_name() {
        for (i, rule) in Rule::ALL.into_iter().enumerate() {
            // Exhaustive: a new rule does not compile here until it has its place in ALL.
            let place = match rule {
                Rule::SlippageWindow => 0,
                Rule::LosingStreak => 1,
                Rule::DailyLoss => 2,
                Rule::DailyDrawdown => 3,
                Rule::RiskEvent => 4,
                Rule::Operator => 5,
                Rule::Maintenance => 6,
            };
            assert_eq!(place, i, "{rule:?}");
            assert_eq!(Rule::from_name(rule.as_str()), Some(rule));
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.as_str());
        }
        assert_eq!(Rule::from_name("drawdown"), None);
    }
}
