//! Trips forwarded from the workers of a scaled-out guard to its aggregator
//! (docs/SCALING.md).

use serde::{Deserialize, Serialize};

use crate::message::RiskEvent;

/// A trip decided by a [`super::Role::Worker`] engine, forwarded to the aggregator:
/// the rule's risk event and the message that tripped it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripFact {
    /// The fill that tripped the rule.
    pub trigger: String,
    /// The rule's risk event (its kind names the rule, its scope the scope to pause).
    pub event: RiskEvent,
}
