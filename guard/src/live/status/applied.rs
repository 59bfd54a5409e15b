//! The operators' orders the guard applied lately, for `GET /applied/ID`.

use std::collections::{HashMap, VecDeque};

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
