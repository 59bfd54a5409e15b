//! The losing streak rule (CONTRACT §2.2), per strategy in arrival order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The losing fills of each strategy's current streak; a strategy with no streak has
/// no entry, so thousands of quiet strategies cost nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LosingStreaks {
    streaks: BTreeMap<String, Vec<String>>,
}

impl LosingStreaks {
    /// Folds one fill's realised P&L into its strategy's streak and returns the
    /// streak's fills when it has reached `trip_at` (the streak then restarts at zero).
    pub fn observe(
        &mut self,
        strategy_id: &str,
        fill_id: &str,
        realized_pnl: Option<f64>,
        trip_at: usize,
    ) -> Option<Vec<String>> {
        match realized_pnl {
            Some(pnl) if pnl < 0.0 => self
                .streaks
                .entry(strategy_id.to_owned())
                .or_default()
                .push(fill_id.to_owned()),
            Some(pnl) if pnl > 0.0 => {
                self.streaks.remove(strategy_id);
            }
            _ => {}
        }
        let streak = self.streaks.get(strategy_id)?;
        if streak.len() >= trip_at.max(1) {
            self.streaks.remove(strategy_id)
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

    /// Every running streak: strategy and its losing fills.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.streaks.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}
