//! Backtesting guard rules: every combination of `--sweep key=v1,v2,…` over the same
//! input in one pass of the file.

use std::fmt::Write as _;

use crate::engine::{Disposition, Engine, EngineOptions};
use crate::message::{Decision, Input};
use crate::policy::{Policy, PolicyError};
use crate::time::human_span;

use super::{InvalidLine, Summary, Tally};

/// A count a sweep column shows, read from a variant's tally.
type Count = fn(&Tally) -> u64;

/// One `--sweep` dimension: a policy key and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepAxis {
    /// e.g. `slippage.threshold_bps`.
    pub key: String,
    /// e.g. `["3", "5", "8"]`.
    pub values: Vec<String>,
}

/// Parses `slippage.threshold_bps=3,5,8`.
///
/// # Errors
/// A message saying the expected form.
pub fn parse_sweep(text: &str) -> Result<SweepAxis, String> {
    let (key, values) = text.split_once('=').ok_or_else(|| {
        format!("--sweep takes KEY=V1,V2,…, e.g. slippage.threshold_bps=3,5,8; got {text:?}")
    })?;
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if key.trim().is_empty() || values.is_empty() {
        return Err(format!("--sweep takes KEY=V1,V2,…; got {text:?}"));
    }
    Ok(SweepAxis {
        key: key.trim().to_owned(),
        values,
    })
}

/// One combination of sweep values and the engine that runs it.
pub struct SweepVariant {
    /// `key=value` pairs of this variant.
    pub settings: Vec<(String, String)>,
    /// Its engine.
    pub engine: Engine,
    /// What it decided.
    pub tally: Tally,
    /// What it read: the same lines as every variant, but a fill of another
    /// environment counts as such only where the variant's `env` says so.
    pub summary: Summary,
}

/// Every variant of a sweep, fed the same inputs.
pub struct Sweep {
    /// The variants, in the order of the cartesian product.
    pub variants: Vec<SweepVariant>,
    scratch: Vec<Decision>,
}

impl Sweep {
    /// Builds one engine per combination of `axes` over the base policy text.
    ///
    /// # Errors
    /// [`PolicyError`] naming the combination that is not a valid policy.
    pub fn new(
        policy_text: &str,
        axes: &[SweepAxis],
        options: &EngineOptions,
    ) -> Result<Sweep, PolicyError> {
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for axis in axes {
            combos = combos
                .into_iter()
                .flat_map(|combo| {
                    axis.values.iter().map(move |v| {
                        let mut next = combo.clone();
                        next.push((axis.key.clone(), v.clone()));
                        next
                    })
                })
                .collect();
        }
        let mut variants = Vec::with_capacity(combos.len());
        for settings in combos {
            let policy = Policy::with_overrides(policy_text, &settings)?;
            variants.push(SweepVariant {
                settings,
                engine: Engine::new(policy, options.clone()),
                tally: Tally::default(),
                summary: Summary::default(),
            });
        }
        Ok(Sweep {
            variants,
            scratch: Vec::new(),
        })
    }

    /// Applies one input to every variant and returns what happened to it in the
    /// first one (the summary's count). Duplicates and the own source do not depend on
    /// the policy; a fill of another environment does, when `env` is swept.
    pub fn apply(&mut self, input: &Input) -> Disposition {
        let mut first = None;
        for variant in &mut self.variants {
            self.scratch.clear();
            let disposition = variant.engine.apply_into(input, &mut self.scratch);
            first.get_or_insert(disposition);
            variant.summary.record(input.stream(), disposition);
            if disposition == Disposition::Applied {
                variant.tally.observe(input, &self.scratch);
            }
        }
        first.unwrap_or(Disposition::Applied)
    }

    /// Counts a line that is not valid, in every variant.
    pub fn record_invalid(&mut self, line: &InvalidLine) {
        for variant in &mut self.variants {
            variant.summary.record_invalid(line.clone());
        }
    }

    /// Closes every tally at its engine's clock.
    pub fn finish(&mut self) {
        for variant in &mut self.variants {
            variant.tally.close(variant.engine.state().clock);
        }
    }

    /// Every variant's full `--report`, headed by its settings and policy version.
    pub fn reports(&self) -> String {
        let mut out = String::new();
        for v in &self.variants {
            let settings: Vec<String> =
                v.settings.iter().map(|(k, x)| format!("{k}={x}")).collect();
            let _ = writeln!(
                out,
                "== {} ({})\n{}",
                settings.join(" "),
                v.engine.policy_version(),
                v.tally
            );
        }
        out
    }

    /// The table: one row per variant.
    pub fn table(&self) -> String {
        let header_settings: Vec<&str> = self
            .variants
            .first()
            .map(|v| v.settings.iter().map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        let mut rows: Vec<Vec<String>> = vec![header_settings
            .iter()
            .map(|k| (*k).to_owned())
            .chain(
                [
                    "policy",
                    "pauses",
                    "risk_events",
                    "global_paused",
                    "strategy_paused",
                    "first_trip",
                ]
                .map(String::from),
            )
            .collect()];
        // Version-2 outcomes get their columns only when some variant has any.
        let extra: Vec<(&str, Count)> = [
            (
                "reduce_only",
                (|t: &Tally| t.reduce_only_by_rule.values().sum()) as Count,
            ),
            ("warnings", |t: &Tally| t.warnings.values().sum()),
            ("unacknowledged", |t: &Tally| t.unacknowledged),
        ]
        .into_iter()
        .filter(|(_, count)| self.variants.iter().any(|v| count(&v.tally) > 0))
        .collect();
        rows[0].extend(extra.iter().map(|(name, _)| (*name).to_owned()));
        for v in &self.variants {
            let mut row: Vec<String> = v.settings.iter().map(|(_, val)| val.clone()).collect();
            row.push(v.engine.policy_version().to_owned());
            row.push(v.tally.pauses().to_string());
            row.push(v.tally.risk_events.to_string());
            row.push(human_span(v.tally.global_paused()));
            row.push(human_span(v.tally.strategy_paused()));
            row.push(
                v.tally
                    .first_trip
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |t| format!("{} {}", t.at, t.kind)),
            );
            row.extend(extra.iter().map(|(_, count)| count(&v.tally).to_string()));
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }
}
