//! Trips forwarded from the workers of a scaled-out guard to its aggregator
//! (docs/SCALING.md).

use serde::{Deserialize, Serialize};

use crate::message::{RiskEvent, Rule};

/// A trip decided by a [`super::Role::Worker`] engine, forwarded to the aggregator:
/// the rule's risk event and the message that tripped it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripFact {
    /// The fill that tripped the rule.
    pub trigger: String,
    /// The rule's risk event (its kind names the rule, its scope the scope to pause).
    pub event: RiskEvent,
}

impl TripFact {
    /// The wire name of the rule that tripped: its risk event's kind.
    pub fn rule_name(&self) -> &str {
        &self.event.kind
    }
}

/// Why the aggregator refused a trip. A refused trip changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TripError {
    /// The trip names no rule this guard has.
    #[error("a trip of {0:?}, which is no rule of this guard")]
    UnknownRule(String),
    /// The rule is judged where the scopes are, so no worker trips it.
    #[error("a trip of {}, which workers do not judge", .0.as_str())]
    NotForwarded(Rule),
}
