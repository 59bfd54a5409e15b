//! The losing streak rule (CONTRACT §2.2), per strategy in arrival order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One strategy's running streak.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    /// The losing fills, in arrival order.
    pub fills: Vec<String>,
    /// Event time of the last losing fill (a streak idle beyond the state horizon is
    /// forgotten).
    pub last: Timestamp,
}

/// The losing fills of each strategy's current streak; a strategy with no streak has
/// no entry, so thousands of quiet strategies cost nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LosingStreaks {
    streaks: BTreeMap<String, Streak>,
}

impl LosingStreaks {
    /// Folds one fill's realised P&L into its strategy's streak and returns the
    /// streak's fills when it has reached `trip_at` (the streak then restarts at zero).
    pub fn observe(
        &mut self,
        strategy_id: &str,
        fill_id: &str,
        ts: Timestamp,
        realized_pnl: Option<f64>,
        trip_at: usize,
    ) -> Option<Vec<String>> {
        match realized_pnl {
            Some(pnl) if pnl < 0.0 => {
                let streak = self.streaks.entry(strategy_id.to_owned()).or_default();
                streak.fills.push(fill_id.to_owned());
                streak.last = streak.last.max(ts);
            }
            Some(pnl) if pnl > 0.0 => {
                self.streaks.remove(strategy_id);
            }
            _ => {}
        }
        let streak = self.streaks.get(strategy_id)?;
        if streak.fills.len() >= trip_at.max(1) {
            self.streaks.remove(strategy_id).map(|s| s.fills)
        } else {
            None
        }
    }

    /// Forgets every streak (a global resume).
    pub fn clear(&mut self) {
        self.streaks.clear();
    }

    /// Forgets one strategy's streak.
    pub fn clear_strategy(&mut self, strategy_id: &str) {
        self.streaks.remove(strategy_id);
    }

    /// Forgets the streaks whose last loss is older than `cutoff`.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        self.streaks.retain(|_, s| s.last >= cutoff);
    }

    /// How many strategies have a running streak.
    pub fn len(&self) -> usize {
        self.streaks.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.streaks.is_empty()
    }

    /// Every running streak: strategy and its losing fills.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.streaks
            .iter()
            .map(|(k, v)| (k.as_str(), v.fills.as_slice()))
    }
}
