//! Enhanced monitoring after an adoption (CONTRACT §2.5), `[enhanced]` in the policy.
//!
//! Not a rule of its own: it pauses nothing. It remembers when each strategy version
//! was adopted and tells the fill rules how strictly to judge a fill ([`Monitoring`]):
//! for `lookback` after an adoption, thresholds are multiplied by `factor` and every
//! `trip_at` becomes `ceil(trip_at * factor)`, at least 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::StrategyRelease;
use crate::policy::{Reader, Section};
use crate::time::{Span, Timestamp};

/// `[enhanced]` (CONTRACT §2.5).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnhancedPolicy {
    /// Off when false.
    pub enabled: bool,
    /// How long after `adopted_at` the stricter thresholds apply.
    pub lookback: Span,
    /// Multiplier for thresholds and `trip_at`s, in (0, 1].
    pub factor: f64,
}

impl Default for EnhancedPolicy {
    /// The runbook's: half the thresholds for a day after an adoption.
    fn default() -> Self {
        EnhancedPolicy {
            enabled: true,
            lookback: Span::from_secs(86_400),
            factor: 0.5,
        }
    }
}

impl Section for EnhancedPolicy {
    fn key(&self) -> &'static str {
        "enhanced"
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        let Some(t) = r.table(value, "enhanced") else {
            return;
        };
        r.keys(t, "enhanced.", &["enabled", "lookback", "factor"]);
        r.bool(t, "enhanced.enabled", &mut self.enabled);
        r.span(t, "enhanced.lookback", &mut self.lookback);
        r.number(
            t,
            "enhanced.factor",
            &mut self.factor,
            |v| v > 0.0 && v <= 1.0,
            "a number in (0, 1]",
        );
    }
}

/// How strictly a fill is judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Monitoring {
    /// As the policy says.
    Normal,
    /// Inside an enhanced range: limits times `factor`.
    Enhanced {
        /// `enhanced.factor`.
        factor: f64,
    },
}

impl Monitoring {
    /// A threshold or limit as it applies: times the factor when enhanced.
    pub fn scale(self, limit: f64) -> f64 {
        match self {
            Monitoring::Normal => limit,
            Monitoring::Enhanced { factor } => limit * factor,
        }
    }

    /// A `trip_at` as it applies: `ceil(trip_at * factor)`, at least 1, when enhanced.
    /// The tolerance keeps float noise (10 * 0.3 = 3.0000000000000004) from adding one.
    pub fn trip_at(self, trip_at: u32) -> usize {
        match self {
            Monitoring::Normal => trip_at as usize,
            Monitoring::Enhanced { factor } => {
                let scaled = (f64::from(trip_at) * factor - 1e-9).ceil();
                (scaled as usize).max(1)
            }
        }
    }

    /// What a trip's reason adds: `", enhanced monitoring"`, or nothing.
    pub fn note(self) -> &'static str {
        match self {
            Monitoring::Normal => "",
            Monitoring::Enhanced { .. } => ", enhanced monitoring",
        }
    }
}

/// The adoption times of each strategy, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Adoptions {
    times: BTreeMap<String, Vec<Timestamp>>,
}

impl Adoptions {
    /// Records an adoption.
    pub fn adopt(&mut self, release: &StrategyRelease) {
        let times = self.times.entry(release.strategy_id.clone()).or_default();
        let at = times.partition_point(|t| *t < release.adopted_at);
        times.insert(at, release.adopted_at);
    }

    /// Whether this adoption was recorded (a repeat of it is a duplicate).
    pub fn contains(&self, release: &StrategyRelease) -> bool {
        self.times
            .get(&release.strategy_id)
            .is_some_and(|times| times.contains(&release.adopted_at))
    }

    /// How a fill of `strategy_id` at `ts` is judged, on the adoptions received so far.
    pub fn monitoring(
        &self,
        policy: &EnhancedPolicy,
        strategy_id: &str,
        ts: Timestamp,
    ) -> Monitoring {
        let inside = policy.enabled
            && self.times.get(strategy_id).is_some_and(|times| {
                times
                    .iter()
                    .any(|adopted| *adopted <= ts && ts < adopted.plus(policy.lookback))
            });
        if inside {
            Monitoring::Enhanced {
                factor: policy.factor,
            }
        } else {
            Monitoring::Normal
        }
    }

    /// Forgets the adoptions whose enhanced range ended before `cutoff`.
    pub fn forget(&mut self, policy: &EnhancedPolicy, cutoff: Timestamp) {
        self.times.retain(|_, times| {
            times.retain(|adopted| adopted.plus(policy.lookback) >= cutoff);
            !times.is_empty()
        });
    }

    /// How many strategies have an adoption on record.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{release, t};

    fn adopted(strategy: &str, secs: f64) -> Adoptions {
        let mut adoptions = Adoptions::default();
        adoptions.adopt(&release(strategy, t(secs)));
        adoptions
    }

    #[test]
    fn a_fill_inside_the_lookback_after_an_adoption_is_judged_enhanced() {
        // Given alpha adopted at 1000 s and the runbook's 24 h lookback
        let adoptions = adopted("alpha", 1_000.0);
        let policy = EnhancedPolicy::default();
        // Then its fills from the adoption up to (not including) 24 h later are enhanced
        let at = |secs| adoptions.monitoring(&policy, "alpha", t(secs));
        assert_eq!(at(1_000.0), Monitoring::Enhanced { factor: 0.5 });
        assert_eq!(
            at(1_000.0 + 86_399.999),
            Monitoring::Enhanced { factor: 0.5 }
        );
        // And before it, from 24 h on, and for other strategies, normal
        assert_eq!(at(999.999), Monitoring::Normal);
        assert_eq!(at(1_000.0 + 86_400.0), Monitoring::Normal);
        assert_eq!(
            adoptions.monitoring(&policy, "beta", t(1_000.0)),
            Monitoring::Normal
        );
    }

    #[test]
    fn switched_off_enhanced_monitoring_judges_every_fill_normally() {
        let adoptions = adopted("alpha", 0.0);
        let policy = EnhancedPolicy {
            enabled: false,
            ..EnhancedPolicy::default()
        };
        assert_eq!(
            adoptions.monitoring(&policy, "alpha", t(1.0)),
            Monitoring::Normal
        );
    }

    #[test]
    fn enhanced_monitoring_scales_limits_and_rounds_trip_at_up_to_at_least_one() {
        let half = Monitoring::Enhanced { factor: 0.5 };
        assert_eq!(half.scale(5.0), 2.5);
        assert_eq!(half.trip_at(5), 3);
        assert_eq!(half.trip_at(1), 1);
        assert_eq!(half.note(), ", enhanced monitoring");
        // 10 * 0.3 is 3.0000000000000004 in floats: still 3, not 4.
        assert_eq!(Monitoring::Enhanced { factor: 0.3 }.trip_at(10), 3);
        assert_eq!(Monitoring::Normal.trip_at(5), 5);
        assert_eq!(Monitoring::Normal.scale(5.0), 5.0);
        assert_eq!(Monitoring::Normal.note(), "");
    }

    #[test]
    fn an_adoption_is_known_once_recorded_and_forgotten_after_its_lookback() {
        let mut adoptions = adopted("alpha", 0.0);
        assert!(adoptions.contains(&release("alpha", t(0.0))));
        assert!(!adoptions.contains(&release("alpha", t(1.0))));
        let policy = EnhancedPolicy::default();
        // Given a cutoff exactly at the end of its range, it is kept
        adoptions.forget(&policy, t(86_400.0));
        assert_eq!(adoptions.len(), 1);
        // When the cutoff passes the end of its range, it is forgotten
        adoptions.forget(&policy, t(86_400.001));
        assert!(adoptions.is_empty());
    }
}
