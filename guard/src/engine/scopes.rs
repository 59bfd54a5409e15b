//! The mode of every scope (CONTRACT §2, first paragraph).
//!
//! A scope holds a set of reasons, each a rule name with an effect (`pause` or
//! `reduce_only`). Its mode is `paused` while it holds a reason with effect `pause`,
//! else `reduce_only` while it holds one with effect `reduce_only`, else `running`.
//! Only changes of mode are reported; the engine turns them into commands.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::message::{Effect, Mode, Rule, Scope};
use crate::time::Timestamp;

/// A scope that is not running: its reasons, and since when it is in its mode.
///
/// The reasons with effect `pause` are `reasons` (the only kind version 1 knew, so a
/// snapshot of a version-1 state reads and writes the same), those with effect
/// `reduce_only` are `reduce_only`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Every reason with effect `pause`.
    pub reasons: BTreeSet<Rule>,
    /// Every reason with effect `reduce_only`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub reduce_only: BTreeSet<Rule>,
    /// Event time of the trigger that put the scope in its present mode.
    pub since: Timestamp,
}

impl Held {
    /// The mode these reasons make.
    pub fn mode(&self) -> Mode {
        if !self.reasons.is_empty() {
            Mode::Paused
        } else if !self.reduce_only.is_empty() {
            Mode::ReduceOnly
        } else {
            Mode::Running
        }
    }

    fn set(&mut self, effect: Effect) -> &mut BTreeSet<Rule> {
        match effect {
            Effect::Pause => &mut self.reasons,
            Effect::ReduceOnly => &mut self.reduce_only,
        }
    }

    /// Every reason with its effect, sorted by rule name's order then effect.
    pub fn all(&self) -> impl Iterator<Item = (Rule, Effect)> + '_ {
        self.reasons
            .iter()
            .map(|r| (*r, Effect::Pause))
            .chain(self.reduce_only.iter().map(|r| (*r, Effect::ReduceOnly)))
    }
}

/// The scopes that are not running; a scope missing here is running.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeBook {
    #[serde(rename = "paused", with = "crate::engine::pairs")]
    held: BTreeMap<Scope, Held>,
}

impl ScopeBook {
    /// Adds the reason (`rule`, `effect`) to `scope`; the new mode when that changed it.
    pub fn add(
        &mut self,
        scope: &Scope,
        rule: Rule,
        effect: Effect,
        at: Timestamp,
    ) -> Option<Mode> {
        let held = self.held.entry(scope.clone()).or_insert_with(|| Held {
            reasons: BTreeSet::new(),
            reduce_only: BTreeSet::new(),
            since: at,
        });
        let before = held.mode();
        held.set(effect).insert(rule);
        self.changed(scope, before, at)
    }

    /// Removes the reason (`rule`, `effect`) from `scope`; the new mode when that
    /// changed it.
    pub fn remove(
        &mut self,
        scope: &Scope,
        rule: Rule,
        effect: Effect,
        at: Timestamp,
    ) -> Option<Mode> {
        let held = self.held.get_mut(scope)?;
        let before = held.mode();
        held.set(effect).remove(&rule);
        self.changed(scope, before, at)
    }

    /// Clears every reason of `scope`; `Some(Running)` when it was not running.
    pub fn clear(&mut self, scope: &Scope) -> Option<Mode> {
        self.held.remove(scope).map(|_| Mode::Running)
    }

    /// After a change to `scope`'s reasons: drops a scope that runs again, notes since
    /// when it is in a new mode, and returns that mode.
    fn changed(&mut self, scope: &Scope, before: Mode, at: Timestamp) -> Option<Mode> {
        let held = self.held.get_mut(scope)?;
        let after = held.mode();
        if after == Mode::Running {
            self.held.remove(scope);
        } else if after != before {
            held.since = at;
        }
        (after != before).then_some(after)
    }

    /// The mode of `scope`.
    pub fn mode(&self, scope: &Scope) -> Mode {
        self.held.get(scope).map_or(Mode::Running, Held::mode)
    }

    /// `scope`'s reasons, when it is not running.
    pub fn get(&self, scope: &Scope) -> Option<&Held> {
        self.held.get(scope)
    }

    /// Whether `scope` is paused.
    pub fn is_paused(&self, scope: &Scope) -> bool {
        self.mode(scope) == Mode::Paused
    }

    /// Whether a strategy may trade: neither the global scope nor its own is paused
    /// (while either is `reduce_only`, only orders that reduce a position).
    pub fn may_trade(&self, strategy_id: &str) -> bool {
        !self.is_paused(&Scope::Global) && !self.is_paused(&Scope::strategy(strategy_id))
    }

    /// Every paused scope, with its reasons.
    pub fn paused(&self) -> impl Iterator<Item = (&Scope, &Held)> {
        self.held.iter().filter(|(_, h)| h.mode() == Mode::Paused)
    }

    /// Every scope that is not running, with its reasons.
    pub fn held(&self) -> impl Iterator<Item = (&Scope, &Held)> {
        self.held.iter()
    }

    /// Makes `scope` here what it is in `other`.
    pub fn copy_scope(&mut self, other: &ScopeBook, scope: &Scope) {
        match other.held.get(scope) {
            Some(held) => {
                self.held.insert(scope.clone(), held.clone());
            }
            None => {
                self.held.remove(scope);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn the_mode_follows_the_strongest_reason_and_only_changes_are_reported() {
        let mut book = ScopeBook::default();
        let g = Scope::Global;
        assert_eq!(
            book.add(&g, Rule::RiskEvent, Effect::ReduceOnly, t(1)),
            Some(Mode::ReduceOnly)
        );
        assert_eq!(
            book.add(&g, Rule::RiskEvent, Effect::ReduceOnly, t(2)),
            None
        );
        assert_eq!(
            book.add(&g, Rule::Maintenance, Effect::Pause, t(3)),
            Some(Mode::Paused)
        );
        assert_eq!(book.add(&g, Rule::Operator, Effect::ReduceOnly, t(4)), None);
        assert_eq!(
            book.remove(&g, Rule::Maintenance, Effect::Pause, t(5)),
            Some(Mode::ReduceOnly)
        );
        assert_eq!(book.held().next().unwrap().1.since, t(5));
        assert_eq!(
            book.remove(&g, Rule::RiskEvent, Effect::ReduceOnly, t(6)),
            None
        );
        assert_eq!(book.remove(&g, Rule::Operator, Effect::Pause, t(7)), None);
        assert_eq!(
            book.remove(&g, Rule::Operator, Effect::ReduceOnly, t(8)),
            Some(Mode::Running)
        );
        assert_eq!(book.mode(&g), Mode::Running);
        assert_eq!(book.held().count(), 0);
        assert_eq!(book.clear(&g), None);
    }

    #[test]
    fn a_pause_only_book_serialises_as_version_1_did() {
        let mut book = ScopeBook::default();
        book.add(&Scope::Global, Rule::Operator, Effect::Pause, t(1));
        let json = serde_json::to_string(&book).unwrap();
        assert!(
            json.contains(r#""paused""#) && !json.contains("reduce_only"),
            "{json}"
        );
        let back: ScopeBook = serde_json::from_str(&json).unwrap();
        assert_eq!(back, book);
    }
}
