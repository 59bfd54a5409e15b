//! The rules of CONTRACT §2, one file each.
//!
//! A rule is a type that holds what the rule remembers (its state, part of every
//! snapshot) and implements [`GuardRule`]: how it judges the messages it cares about,
//! what an operator's resume makes it forget, what it forgets beyond the state
//! horizon, and what `/state` shows of it. Its file also holds its section of the
//! policy file (the type, its defaults and how it is read) and its given/when/then
//! tests. A rule decides through [`Decide`]: it pauses, lifts or resumes scopes and
//! raises its risk event, and `Decide` keeps the scopes and writes the commands.
//!
//! | file | rule | policy | state |
//! |---|---|---|---|
//! | `slippage_window.rs` | §2.1 slippage window | `[slippage]` | `slippage` |
//! | `losing_streak.rs` | §2.2 losing streak | `[losing_streak]` | `streaks` |
//! | `daily/loss.rs` | §2.8 daily loss | `[daily]` | `daily_loss` |
//! | `daily/drawdown.rs` | §2.8 daily drawdown | `[daily]` | `daily_drawdown` |
//! | `risk_event.rs` | §2.3 risk events from other sources | — | — |
//! | `operator.rs` | §2.4 operators' orders | — | — |
//! | `enhanced.rs` | §2.5 enhanced monitoring (a modifier, not a rule) | `[enhanced]` | `adoptions` |
//! | `maintenance.rs` | §2.6 maintenance windows | `[[maintenance]]` | `maintenance` |
//! | `acks.rs` | §2.10 acknowledgements (escalates; changes no scope) | `[acks]` | `acks` |
//! | `warnings.rs` | §2.7 warnings (raised by the fill rules; changes no scope) | `[warnings]` | in `slippage` |
//!
//! Enhanced monitoring pauses nothing: it changes how strictly the fill rules judge a
//! fill. The registry asks it for the fill's [`Monitoring`] and hands that to every
//! rule's [`GuardRule::on_fill`]; a rule applies it to its own thresholds.
//!
//! # Adding a rule
//! 1. Write `rules/NAME.rs`: its policy section (a type with the runbook's values as
//!    `Default`, serialised in the order of its keys, implementing `Section` to read
//!    itself), its state (`Default`, `Serialize`, `Deserialize`, `PartialEq`), and
//!    `impl GuardRule` for the state, overriding only the hooks it needs (mark an
//!    `on_fill` `#[inline]`: it runs for every fill). Put its given/when/then tests
//!    at the bottom (`testing.rs` has `Given` and the message builders).
//! 2. Register it in `registry.rs`: its section in [`RulePolicies`] and in
//!    `RulePolicies::sections`, its state in [`Rules`], one line in `Rules::each` at
//!    its place in the judging order, and one in `Rules::view` if `/state` shows it.
//! 3. Give it its wire name in [`crate::message::Rule`] (and `Rule::ALL`), and add
//!    the name and the section to the JSON Schemas in `schemas/`.
//!
//! The engine, the policy reader, scale-out's trip routing and the status view pick
//! it up from the registry; nothing else changes. The registry's tests fail when a
//! wire name has no rule or a rule no wire name.

mod acks;
mod daily;
mod enhanced;
mod losing_streak;
mod maintenance;
mod operator;
mod registry;
mod risk_event;
mod slippage_window;
#[cfg(test)]
pub(crate) mod testing;
mod warnings;

use serde_json::{Map, Value};

pub use acks::{Acks, AcksPolicy, Pending, MAX_PENDING};
pub use daily::{Daily, DailyDrawdown, DailyLoss, DailyPolicy, Day, DayBook, Limit};
pub use enhanced::{Adoptions, EnhancedPolicy, Monitoring};
pub use losing_streak::{LosingStreakPolicy, LosingStreaks, Streak};
pub use maintenance::{
    occurrence_ending_after, Maintenance, MaintenancePolicy, MaintenanceWindow, Occurrence,
    ResumeBy,
};
pub use operator::OperatorOrders;
pub use registry::{RulePolicies, Rules};
pub use risk_event::RiskEvents;
pub use slippage_window::{Breach, SlippagePolicy, SlippageWindows};
pub use warnings::{run_start, LastWarnings, WarningsPolicy};

use super::decide::Decide;
use crate::message::{Fill, OpsCommand, RiskEvent, Rule, Scope};
use crate::time::Timestamp;

/// Where a scaled-out guard judges a rule (docs/SCALING.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Where the scopes are: the whole guard, or the aggregator.
    Scopes,
    /// Per strategy, on the workers that read the strategy's fills; their trips are
    /// forwarded to the aggregator, which pauses the scope.
    Workers,
}

/// One rule of CONTRACT §2, implemented by the type that holds its state.
///
/// Every hook does nothing unless the rule overrides it. The engine calls them in
/// this order for one message: [`GuardRule::on_clock`] when the message moved the
/// clock, then the hook of the message's stream; after an operator's resume,
/// [`GuardRule::reset`] comes before [`GuardRule::on_ops`].
pub trait GuardRule {
    /// The rule's section of the policy; `()` for a rule without one.
    type Policy;

    /// Its wire name: the `rule` of the commands it causes, the `kind` of its risk
    /// events.
    const RULE: Rule;

    /// Where a scaled-out guard judges it.
    const PLACE: Place = Place::Scopes;

    /// Judges a fill, as strictly as `monitoring` says.
    fn on_fill(
        &mut self,
        _policy: &Self::Policy,
        _fill: &Fill,
        _monitoring: Monitoring,
        _decide: &mut Decide<'_>,
    ) {
    }

    /// Judges a risk event from another source.
    fn on_risk_event(
        &mut self,
        _policy: &Self::Policy,
        _event: &RiskEvent,
        _decide: &mut Decide<'_>,
    ) {
    }

    /// Judges an operator's order.
    fn on_ops(&mut self, _policy: &Self::Policy, _command: &OpsCommand, _decide: &mut Decide<'_>) {}

    /// The engine's clock moved forward to `now`, before the message that moved it
    /// is applied.
    fn on_clock(&mut self, _policy: &Self::Policy, _now: Timestamp, _decide: &mut Decide<'_>) {}

    /// An operator resumed `scope`: forget what feeds it, so what caused a pause
    /// cannot trip it again at once (CONTRACT §2.4).
    fn reset(&mut self, _scope: &Scope) {}

    /// Forgets what can no longer matter once the state horizon has passed `cutoff`.
    fn forget(&mut self, _policy: &Self::Policy, _cutoff: Timestamp) {}

    /// Adds the rule's part of the `/state` document.
    fn view(&self, _out: &mut Map<String, Value>) {}

    /// The state now runs under `policy`, which may not be the one it was built
    /// under: drop anything derived from the old one.
    fn adopt_policy(&mut self, _policy: &Self::Policy) {}
}

/// `": text"` for an optional human reason, or nothing.
fn detail(reason: Option<&str>) -> String {
    reason.map(|r| format!(": {r}")).unwrap_or_default()
}
