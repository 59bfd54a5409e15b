//! The operators' orders the guard applied lately, for `GET /ops/applied/ID`.

use std::collections::{HashMap, VecDeque};

use crate::message::Decision;

/// Whether the operator's order `command_id` changed a scope: one of its step's
/// decisions is a command it triggered. Other decisions of the same step are not its
/// doing — on event time, the order's own stamp can open a maintenance window that
/// pauses the scope first, and `guard pause` must then hear "already paused", not
/// wait for a command that will not come.
pub fn changed_by(command_id: &str, decisions: &[Decision]) -> bool {
    decisions
        .iter()
        .any(|d| matches!(d, Decision::GuardCommand(c) if c.trigger == command_id))
}

/// Operators' orders applied recently, each with whether it changed a scope (read by
/// `guard pause`/`resume` to report "already in that state"): the oldest are forgotten
/// first beyond [`AppliedOrders::KEPT`].
#[derive(Clone, Debug, Default)]
pub struct AppliedOrders {
    changed: HashMap<String, bool>,
    /// Ids, oldest first.
    order: VecDeque<String>,
}

impl AppliedOrders {
    /// How many orders are kept.
    pub const KEPT: usize = 10_000;

    /// Notes an applied order (an id seen before keeps its place and first answer).
    pub fn insert(&mut self, command_id: &str, changed: bool) {
        if self.changed.contains_key(command_id) {
            return;
        }
        self.changed.insert(command_id.to_owned(), changed);
        self.order.push_back(command_id.to_owned());
        while self.order.len() > Self::KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.changed.remove(&oldest);
            }
        }
    }

    /// Whether the order was applied, and if so whether it changed a scope.
    pub fn get(&self, command_id: &str) -> Option<bool> {
        self.changed.get(command_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineOptions};
    use crate::message::Input;
    use crate::policy::Policy;

    #[test]
    fn an_order_changed_a_scope_only_through_a_command_of_its_own() {
        let decide = |lines: &[&str]| {
            let mut engine = Engine::new(Policy::default(), EngineOptions::default());
            let mut out = Vec::new();
            for line in lines {
                let input: Input = crate::decode::decode_envelope(line.as_bytes()).unwrap();
                out = engine.apply(&input).decisions;
            }
            out
        };
        let order = |ts: &str| {
            format!(
                r#"{{"stream":"ops_command","event":{{"command_id":"ops-1","action":"pause","scope":{{"kind":"global"}},"operator":"tanaka","reason":"test","ts":"{ts}"}}}}"#
            )
        };
        // Its stamp opens the default maintenance window (Monday 17:00-18:00 UTC):
        // the step pauses global for maintenance, and the order changes nothing.
        let in_window = decide(&[&order("2026-11-30T17:06:00Z")]);
        assert!(
            !in_window.is_empty(),
            "the window opens at the order's step"
        );
        assert!(!changed_by("ops-1", &in_window));
        // Outside it, the order pauses global itself.
        let outside = decide(&[&order("2026-11-30T12:00:00Z")]);
        assert!(changed_by("ops-1", &outside), "{outside:?}");
        assert!(!changed_by("ops-2", &outside));
    }

    #[test]
    fn applied_orders_forget_the_oldest_first() {
        let mut applied = AppliedOrders::default();
        // The first order's id sorts last: it is still the first to go.
        applied.insert("z-first", true);
        for n in 0..AppliedOrders::KEPT {
            applied.insert(&format!("a-{n:05}"), false);
        }
        assert_eq!(applied.get("z-first"), None);
        assert_eq!(applied.get("a-00000"), Some(false));
        applied.insert("a-00000", true);
        assert_eq!(
            applied.get("a-00000"),
            Some(false),
            "the first answer stays"
        );
        applied.insert("b-new", true);
        assert_eq!(applied.get("a-00000"), None);
        assert_eq!(applied.get("a-00001"), Some(false));
        assert_eq!(applied.get("b-new"), Some(true));
    }
}
