//! The guard's policy (CONTRACT §3): a TOML file, every key optional.
//!
//! The file is read into a `toml::Table` and walked by hand rather than through
//! `#[serde(deny_unknown_fields)]`, so that [`Policy::from_toml`] reports every
//! problem at once, each with its key path and what is allowed, instead of stopping at
//! the first. The same walk applies `--sweep` overrides ([`Policy::with_overrides`]).
//!
//! Each rule owns its section — its type, defaults and reading live in the rule's file
//! under [`crate::engine::rules`] — and the rules' registry lists the sections
//! ([`RulePolicies`]). This module holds what they share: the `Reader` that walks a
//! table, the guard's own `[state]` section, and the policy's version.

mod print;
mod reader;

use serde::Serialize;
use sha2::{Digest, Sha256};
use toml::{Table, Value};

pub use crate::engine::rules::{
    EnhancedPolicy, LosingStreakPolicy, MaintenancePolicy, MaintenanceWindow, RulePolicies,
    SlippagePolicy,
};
use crate::message::{Effect, Env};
use crate::time::Span;

pub(crate) use reader::Reader;

/// Which breaches share a slippage window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One window per `strategy_id`.
    Strategy,
    /// One window for all strategies.
    Global,
}

/// Which scope a tripped rule pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseTarget {
    /// The global scope: every strategy stops.
    Global,
    /// The group's own scope: the strategy that tripped (global for a global window).
    Group,
}

/// The values of a `pause` key.
pub(crate) const PAUSE_CHOICES: [(&str, PauseTarget); 2] = [
    ("global", PauseTarget::Global),
    ("group", PauseTarget::Group),
];

/// The values of an `action` key: the effect of the reason a rule adds (CONTRACT §2).
pub(crate) const ACTION_CHOICES: [(&str, Effect); 2] = [
    ("pause", Effect::Pause),
    ("reduce_only", Effect::ReduceOnly),
];

/// Whether a key holds its default: a key of version 2 is left out of the resolved
/// policy then, so a version-1 policy keeps its `policy_version` (CONTRACT §3).
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The whole policy, every default filled in.
///
/// It serialises as one object: the rules' sections in registry order, then `state`
/// when it is not the default (the form [`Policy::version`] hashes and `guard policy`
/// prints).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// The environment the guard guards (CONTRACT §2.9): a fill of another is ignored.
    /// Absent (every fill counts) by default, and then not part of the version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
    /// Every rule's section.
    #[serde(flatten)]
    pub rules: RulePolicies,
    /// How far back the guard remembers. Left out of the version while it is the
    /// default, so the contract's policy keeps its name.
    #[serde(skip_serializing_if = "StatePolicy::is_default")]
    pub state: StatePolicy,
}

/// How much history the guard keeps (not in CONTRACT §3: the guard's own key).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatePolicy {
    /// Ids, streaks, breaches and adoptions older than this behind the newest event
    /// time are forgotten: memory is bounded by the message rate times this span.
    pub horizon: Span,
}

impl StatePolicy {
    /// The default horizon: a day, as long as the enhanced-monitoring lookback.
    pub const DEFAULT_HORIZON: Span = Span::from_secs(86_400);

    fn is_default(&self) -> bool {
        self.horizon == Self::DEFAULT_HORIZON
    }

    fn read(&mut self, value: &Value, r: &mut Reader) {
        let Some(t) = r.table(value, "state") else {
            return;
        };
        r.keys(t, "state.", &["horizon"]);
        r.span(t, "state.horizon", &mut self.horizon);
        if self.horizon < Span::from_secs(60) {
            r.problem(
                "state.horizon",
                format_args!(
                    "{} is too short (at least 1m: late and duplicate messages must still be recognised)",
                    crate::time::human_span(self.horizon)
                ),
            );
        }
    }
}

impl Default for StatePolicy {
    fn default() -> Self {
        StatePolicy {
            horizon: Self::DEFAULT_HORIZON,
        }
    }
}

/// Every problem found in a policy, one line each with the key's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {}", .0.join("; "))]
pub struct PolicyError(pub Vec<String>);

impl Default for Policy {
    /// The runbook's policy (CONTRACT §3).
    fn default() -> Self {
        Policy {
            env: None,
            rules: RulePolicies::default(),
            state: StatePolicy::default(),
        }
    }
}

/// A rule's section of the policy file.
pub(crate) trait Section {
    /// Its top-level key.
    fn key(&self) -> &'static str;

    /// Whether it is an array of tables (`[[key]]`) rather than a table (`[key]`).
    fn is_array(&self) -> bool {
        false
    }

    /// Reads the section's value over the defaults already in `self`, reporting every
    /// problem to `r`.
    fn read(&mut self, value: &Value, r: &mut Reader);
}

impl Policy {
    /// Reads a policy from TOML text; an empty text is the default policy.
    ///
    /// # Errors
    /// [`PolicyError`] listing every unknown key and bad value.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            PolicyError(vec![e.to_string().trim().replace('\n', " ")])
        })?;
        Policy::from_table(&table)
    }

    /// Resolves a parsed TOML table.
    ///
    /// # Errors
    /// [`PolicyError`] listing every unknown key and bad value.
    pub fn from_table(table: &Table) -> Result<Policy, PolicyError> {
        let mut r = Reader::default();
        let mut policy = Policy::default();
        let mut sections = policy.rules.sections();
        let mut allowed: Vec<&str> = sections.iter().map(|s| s.key()).collect();
        allowed.push("state");
        allowed.push("env");
        r.keys(table, "", &allowed);
        r.choice(
            table,
            "env",
            &mut policy.env,
            &[
                ("prod", Some(Env::Prod)),
                ("stg", Some(Env::Stg)),
                ("dev", Some(Env::Dev)),
            ],
        );
        // `[state]` comes after the tables and before the arrays of tables: the order
        // in which problems have always been listed.
        let state_at = sections
            .iter()
            .position(|s| s.is_array())
            .unwrap_or(sections.len());
        for (i, section) in sections.iter_mut().enumerate() {
            if i == state_at {
                if let Some(value) = table.get("state") {
                    policy.state.read(value, &mut r);
                }
            }
            if let Some(value) = table.get(section.key()) {
                section.read(value, &mut r);
            }
        }
        if state_at == sections.len() {
            if let Some(value) = table.get("state") {
                policy.state.read(value, &mut r);
            }
        }
        if r.problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError(r.problems))
        }
    }

    /// The policy with `key=value` overrides applied to its TOML text (for `--sweep`).
    ///
    /// # Errors
    /// [`PolicyError`] when the text or an override is not valid.
    pub fn with_overrides(
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Policy, PolicyError> {
        let mut table: Table = text.parse().map_err(|e: toml::de::Error| {
            PolicyError(vec![e.to_string().trim().replace('\n', " ")])
        })?;
        for (key, raw) in overrides {
            let Some((section, leaf)) = key.split_once('.') else {
                // A top-level key (`env`).
                table.insert(key.clone(), override_value(raw));
                continue;
            };
            let entry = table.entry(section.to_owned()).or_insert_with(|| {
                if section == "maintenance" {
                    Value::Array(vec![Value::Table(Table::new())])
                } else {
                    Value::Table(Table::new())
                }
            });
            match entry {
                Value::Table(section_table) => {
                    section_table.insert(leaf.to_owned(), override_value(raw));
                }
                // `maintenance.KEY` sets the key of every window.
                Value::Array(windows) => {
                    for window in windows {
                        if let Value::Table(w) = window {
                            w.insert(leaf.to_owned(), override_value(raw));
                        }
                    }
                }
                _ => {
                    return Err(PolicyError(vec![format!(
                        "{key}: [{section}] is not a table"
                    )]))
                }
            }
        }
        Policy::from_table(&table)
    }

    /// A short, stable name of this policy: `p-` and 12 hex digits of the SHA-256 of
    /// its resolved form, so two files that mean the same policy have the same version.
    pub fn version(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a policy always serialises");
        let digest = Sha256::digest(&canonical);
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("p-{hex}")
    }
}

/// A `--sweep` value as the policy reads it: an integer, a float, a boolean, or
/// else a string.
pub fn override_value(raw: &str) -> Value {
    if let Ok(i) = raw.parse::<i64>() {
        Value::Integer(i)
    } else if let Ok(f) = raw.parse::<f64>() {
        Value::Float(f)
    } else if let Ok(b) = raw.parse::<bool>() {
        Value::Boolean(b)
    } else {
        Value::String(raw.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_runbook_policy() {
        assert_eq!(Policy::from_toml("").unwrap(), Policy::default());
    }

    #[test]
    fn the_contract_example_is_the_default() {
        let text = r#"
[slippage]
threshold_bps = 5.0
trip_at = 3
window = "10m"
group_by = "strategy"
pause = "global"
[losing_streak]
trip_at = 5
pause = "global"
[enhanced]
lookback = "24h"
factor = 0.5
[[maintenance]]
name = "weekly-os-patch"
weekday = "Tue"
start = "02:00"
end = "03:00"
tz = "Asia/Tokyo"
"#;
        let p = Policy::from_toml(text).unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.version(), Policy::default().version());
    }

    #[test]
    fn the_runbook_policy_keeps_its_version() {
        // The name every decision under the default policy carries.
        assert_eq!(Policy::default().version(), "p-83158d3f4bdf");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Policy::from_toml("[slippage]\nthreshold = 3\ntrip_at = 0\nwindow = \"10\"\n[[maintenance]]\ntz = \"Mars/Base\"\n").unwrap_err();
        let text = err.to_string();
        for needle in [
            "slippage.threshold: unknown key",
            "slippage.trip_at",
            "slippage.window",
            "maintenance[0].tz",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
        assert_eq!(err.0.len(), 4, "{text}");
    }

    #[test]
    fn problems_are_listed_sections_first_then_state_then_windows() {
        let err = Policy::from_toml(
            "foo = 1\n[state]\nhorizon = \"10s\"\n[enhanced]\nfactor = 2\n[[maintenance]]\ntz = \"Mars/Base\"\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "foo",
                "enhanced.factor",
                "state.horizon",
                "maintenance[0].tz"
            ]
        );
    }

    #[test]
    fn overrides_replace_single_keys() {
        let p = Policy::with_overrides(
            "",
            &[
                ("slippage.threshold_bps".into(), "8".into()),
                ("slippage.trip_at".into(), "2".into()),
            ],
        )
        .unwrap();
        assert_eq!(p.rules.slippage.threshold_bps, 8.0);
        assert_eq!(p.rules.slippage.trip_at, 2);
        assert_ne!(p.version(), Policy::default().version());
    }

    #[test]
    fn an_empty_maintenance_list_means_no_windows() {
        assert!(Policy::from_toml("maintenance = []")
            .unwrap()
            .rules
            .maintenance
            .windows
            .is_empty());
    }
}
