//! The pause state of every scope (CONTRACT §2, first paragraph).
//!
//! A scope is paused while its set of reasons is non-empty. Only transitions are
//! reported (running → paused, paused → running); the engine turns them into
//! commands.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::message::{Rule, Scope};
use crate::time::Timestamp;

/// A paused scope: why, and since when (event time of the first reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    /// Every active reason.
    pub reasons: BTreeSet<Rule>,
    /// Event time of the trigger that paused it.
    pub since: Timestamp,
}

/// The paused scopes; a scope missing here is running.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeBook {
    #[serde(with = "crate::engine::pairs")]
    paused: BTreeMap<Scope, Paused>,
}

impl ScopeBook {
    /// Adds `reason` to `scope`; true when that paused a running scope.
    pub fn add(&mut self, scope: &Scope, reason: Rule, at: Timestamp) -> bool {
        match self.paused.get_mut(scope) {
            Some(p) => {
                p.reasons.insert(reason);
                false
            }
            None => {
                let reasons = BTreeSet::from([reason]);
                self.paused
                    .insert(scope.clone(), Paused { reasons, since: at });
                true
            }
        }
    }

    /// Removes `reason` from `scope`; true when that resumed a paused scope.
    pub fn remove(&mut self, scope: &Scope, reason: Rule) -> bool {
        let Some(p) = self.paused.get_mut(scope) else {
            return false;
        };
        p.reasons.remove(&reason);
        if p.reasons.is_empty() {
            self.paused.remove(scope);
            true
        } else {
            false
        }
    }

    /// Clears every reason of `scope`; true when it was paused.
    pub fn clear(&mut self, scope: &Scope) -> bool {
        self.paused.remove(scope).is_some()
    }

    /// Whether `scope` is paused.
    pub fn is_paused(&self, scope: &Scope) -> bool {
        self.paused.contains_key(scope)
    }

    /// Whether a strategy may trade: neither the global scope nor its own is paused.
    pub fn may_trade(&self, strategy_id: &str) -> bool {
        !self.is_paused(&Scope::Global) && !self.is_paused(&Scope::strategy(strategy_id))
    }

    /// Every paused scope with its reasons.
    pub fn paused(&self) -> impl Iterator<Item = (&Scope, &Paused)> {
        self.paused.iter()
    }
}
