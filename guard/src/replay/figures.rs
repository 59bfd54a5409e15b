//! The figures of a replay as one JSON object, for jobs that read them
//! (`guard replay --summary-json`): the counts of the [`Summary`] and of the
//! [`Tally`] (the `--report`) under stable key names, described by
//! `schemas/replay_summary.schema.json`.
//!
//! Only figures of the input and of event time go in: the wall time and memory the
//! summary prints are left out, so the object depends on the input and the policy
//! alone and two runs over the same day write the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::message::{Rule, Scope, Stream};
use crate::time::{Span, Timestamp};

use super::summary::StreamCounts;
use super::tally::Trip;
use super::{InvalidLine, Summary, Sweep, Tally};

/// Every figure of one replay run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayFigures {
    /// The version of the policy in force.
    pub policy_version: String,
    /// Where the run's span of event time starts: the earliest event time of an
    /// applied message or of a decided command; `None` when nothing was applied.
    pub first_event_ts: Option<Timestamp>,
    /// Where the span ends: the guard's clock at the end, the latest event time of
    /// an applied message.
    pub last_event_ts: Option<Timestamp>,
    /// The span's length in seconds.
    pub span_seconds: f64,
    /// Lines read, valid or not.
    pub lines: u64,
    /// Valid messages per input stream.
    pub inputs: Inputs,
    /// Duplicates over every stream.
    pub duplicates: u64,
    /// Invalid lines.
    pub invalid: u64,
    /// The first invalid lines (as many as the text summary lists).
    pub invalid_lines: Vec<InvalidLine>,
    /// What the guard decided: commands and its own risk events.
    pub decisions: Decisions,
    /// Commands per action.
    pub commands: Commands,
    /// Commands that paused a scope, per rule and per scope.
    pub pauses: ModeChanges,
    /// Commands that made a scope reduce-only, per rule and per scope.
    pub reduce_only: ModeChanges,
    /// Rule trips (the guard's critical risk events raised for a fill).
    pub trips: Trips,
    /// Trips of the daily limits: `daily_loss` and `daily_drawdown`.
    pub daily_limit_trips: u64,
    /// Warnings per kind.
    pub warnings: Warnings,
    /// Commands some gateway did not acknowledge in time (`command_unacknowledged`).
    pub unacknowledged_commands: u64,
    /// Seconds of the span each scope spent in each mode: `global` and every scope
    /// that was ever paused or reduce-only, keyed `global` or `strategy:ID`.
    pub mode_seconds: BTreeMap<String, ModeSeconds>,
}

/// Valid messages of each input stream; every stream is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// Fills.
    pub exec_result: StreamFigures,
    /// Risk events.
    pub risk_event: StreamFigures,
    /// Adoptions.
    pub strategy_release: StreamFigures,
    /// Operators' orders.
    pub ops_command: StreamFigures,
    /// Gateways' acknowledgements.
    pub guard_ack: StreamFigures,
}

/// What became of one stream's valid messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamFigures {
    /// Valid messages read.
    pub read: u64,
    /// Of those, applied by the engine: the rest are the three counts below.
    pub applied: u64,
    /// Repeats of an id already applied.
    pub duplicates: u64,
    /// Risk events of the guard's own source, ignored.
    pub own_ignored: u64,
    /// Fills of another environment than the policy's `env`, ignored.
    pub other_env: u64,
}

/// Decisions per output stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decisions {
    /// Guard commands.
    pub guard_command: u64,
    /// The guard's own risk events (trips, warnings, escalations).
    pub risk_event: u64,
}

/// Commands per action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commands {
    /// To paused.
    pub pause: u64,
    /// To reduce-only.
    pub reduce_only: u64,
    /// Back to running.
    pub resume: u64,
}

/// Commands into one mode, counted two ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeChanges {
    /// In all.
    pub total: u64,
    /// Per rule of the command.
    pub by_rule: BTreeMap<String, u64>,
    /// Per scope key.
    pub by_scope: BTreeMap<String, u64>,
}

/// Trips, counted per rule and per strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trips {
    /// In all.
    pub total: u64,
    /// Per rule (the risk event's kind).
    pub by_rule: BTreeMap<String, u64>,
    /// Per strategy of the tripping fill, then per rule.
    pub by_strategy: BTreeMap<String, BTreeMap<String, u64>>,
    /// The trip with the earliest event time.
    pub first: Option<Trip>,
    /// The trip with the latest event time.
    pub last: Option<Trip>,
}

/// Warnings per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warnings {
    /// In all.
    pub total: u64,
    /// Per kind (`slippage_window_warning`, `losing_streak_warning`).
    pub by_kind: BTreeMap<String, u64>,
}

/// Seconds of event time one scope spent in each mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeSeconds {
    /// Paused.
    pub paused: f64,
    /// Reduce-only.
    pub reduce_only: f64,
    /// Running: the rest of the span (never below zero).
    pub running: f64,
}

fn seconds(span: Span) -> f64 {
    span.as_micros().max(0) as f64 / 1e6
}

fn by_scope(map: &BTreeMap<Scope, u64>) -> BTreeMap<String, u64> {
    map.iter()
        .map(|(scope, n)| (scope.to_string(), *n))
        .collect()
}

fn by_rule(map: &BTreeMap<Rule, u64>) -> BTreeMap<String, u64> {
    map.iter()
        .map(|(rule, n)| (rule.as_str().to_owned(), *n))
        .collect()
}

impl StreamFigures {
    fn new(counts: Option<&StreamCounts>) -> Self {
        let c = counts.cloned().unwrap_or_default();
        StreamFigures {
            read: c.read,
            applied: c.read - c.duplicates - c.own - c.other_env,
            duplicates: c.duplicates,
            own_ignored: c.own,
            other_env: c.other_env,
        }
    }
}

impl Inputs {
    fn new(summary: &Summary) -> Self {
        let of = |stream: Stream| StreamFigures::new(summary.streams.get(&stream));
        Inputs {
            exec_result: of(Stream::ExecResult),
            risk_event: of(Stream::RiskEvent),
            strategy_release: of(Stream::StrategyRelease),
            ops_command: of(Stream::OpsCommand),
            guard_ack: of(Stream::GuardAck),
        }
    }
}

impl Trips {
    fn new(tally: &Tally) -> Self {
        let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
        for kinds in tally.trips_by_strategy.values() {
            for (kind, n) in kinds {
                *by_rule.entry(kind.clone()).or_default() += n;
            }
        }
        Trips {
            total: by_rule.values().sum(),
            by_rule,
            by_strategy: tally.trips_by_strategy.clone(),
            first: tally.first_trip.clone(),
            last: tally.last_trip.clone(),
        }
    }
}

/// Every scope's seconds in each mode; `global` is always there.
fn mode_seconds(tally: &Tally) -> BTreeMap<String, ModeSeconds> {
    let span = seconds(tally.span());
    let zero = Span::from_micros(0);
    let scopes = tally
        .paused_for
        .keys()
        .chain(tally.reduce_only_for.keys())
        .chain([&Scope::Global]);
    scopes
        .map(|scope| {
            let paused = seconds(*tally.paused_for.get(scope).unwrap_or(&zero));
            let reduce_only = seconds(*tally.reduce_only_for.get(scope).unwrap_or(&zero));
            let running = (span - paused - reduce_only).max(0.0);
            let times = ModeSeconds {
                paused,
                reduce_only,
                running,
            };
            (scope.to_string(), times)
        })
        .collect()
}

impl ReplayFigures {
    /// The figures of a run that read what `summary` counts and decided what
    /// `tally` folded (closed), under the policy `policy_version`.
    pub fn new(summary: &Summary, tally: &Tally, policy_version: &str) -> Self {
        let trips = Trips::new(tally);
        let daily_limit_trips = ["daily_loss", "daily_drawdown"]
            .iter()
            .filter_map(|kind| trips.by_rule.get(*kind))
            .sum();
        ReplayFigures {
            policy_version: policy_version.to_owned(),
            first_event_ts: tally.first_event,
            last_event_ts: tally.last_event,
            span_seconds: seconds(tally.span()),
            lines: summary.messages() + summary.invalid,
            inputs: Inputs::new(summary),
            duplicates: summary.duplicates(),
            invalid: summary.invalid,
            invalid_lines: summary.invalid_shown.clone(),
            decisions: Decisions {
                guard_command: tally.commands,
                risk_event: tally.risk_events,
            },
            commands: Commands {
                pause: tally.pauses(),
                reduce_only: tally.reduce_only_by_rule.values().sum(),
                resume: tally.resumes,
            },
            pauses: ModeChanges {
                total: tally.pauses(),
                by_rule: by_rule(&tally.pauses_by_rule),
                by_scope: by_scope(&tally.pauses_by_scope),
            },
            reduce_only: ModeChanges {
                total: tally.reduce_only_by_rule.values().sum(),
                by_rule: by_rule(&tally.reduce_only_by_rule),
                by_scope: by_scope(&tally.reduce_only_by_scope),
            },
            trips,
            daily_limit_trips,
            warnings: Warnings {
                total: tally.warnings.values().sum(),
                by_kind: tally.warnings.clone(),
            },
            unacknowledged_commands: tally.unacknowledged,
            mode_seconds: mode_seconds(tally),
        }
    }
}

/// The figures of a sweep: one entry per variant, in the order of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepFigures {
    /// One entry per swept policy.
    pub sweep: Vec<SweepEntry>,
}

/// One variant of a sweep and its figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepEntry {
    /// The swept keys and this variant's values, typed as the policy reads them.
    pub policy: BTreeMap<String, serde_json::Value>,
    /// The variant's policy version (also in its summary).
    pub policy_version: String,
    /// The variant's figures, as a single run under its policy would report them.
    pub summary: ReplayFigures,
}

impl SweepFigures {
    /// The figures of every variant of a finished sweep.
    pub fn new(sweep: &Sweep) -> Self {
        let entries = sweep.variants.iter().map(|v| {
            let version = v.engine.policy_version();
            let policy = v
                .settings
                .iter()
                .map(|(key, raw)| {
                    let value = crate::policy::override_value(raw);
                    let json = serde_json::to_value(value).unwrap_or_default();
                    (key.clone(), json)
                })
                .collect();
            SweepEntry {
                policy,
                policy_version: version.to_owned(),
                summary: ReplayFigures::new(&v.summary, &v.tally, version),
            }
        });
        SweepFigures {
            sweep: entries.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::policy::Policy;
    use crate::replay::{Line, MemorySink, Replay};

    fn fill(id: &str, ts: &str) -> String {
        format!(
            r#"{{"stream":"exec_result","event":{{"fill_id":"{id}","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"{ts}"}}}}"#
        )
    }

    fn figures(lines: &[String]) -> ReplayFigures {
        let engine = Engine::new(Policy::default(), Default::default());
        let mut replay = Replay::new(engine, MemorySink::default());
        for (i, line) in lines.iter().enumerate() {
            let line = Line {
                file: "memory",
                number: i as u64 + 1,
                bytes: line.as_bytes(),
            };
            replay.feed(&line).expect("valid lines");
        }
        let (engine, _, summary, tally) = replay.finish().expect("memory");
        ReplayFigures::new(&summary, &tally, engine.policy_version())
    }

    /// The default window is Monday 17:00–18:00 UTC: a first fill at 17:30 pauses
    /// from 17:00, so the span starts there and the paused hour fits in it.
    #[test]
    fn a_maintenance_window_the_first_message_lands_in_starts_the_span() {
        let f = figures(&[
            fill("f1", "2025-08-11T17:30:00Z"),
            fill("f2", "2025-08-11T18:30:00Z"),
        ]);
        assert_eq!(
            f.first_event_ts.unwrap().to_string(),
            "2025-08-11T17:00:00.000Z"
        );
        assert_eq!(
            f.last_event_ts.unwrap().to_string(),
            "2025-08-11T18:30:00.000Z"
        );
        assert_eq!(f.span_seconds, 5400.0);
        let global = &f.mode_seconds["global"];
        assert_eq!((global.paused, global.running), (3600.0, 1800.0));
        assert_eq!(f.pauses.by_rule["maintenance"], 1);
        assert_eq!(f.commands.resume, 1);
    }

    /// Without a message applied there is no span, and every figure is zero.
    #[test]
    fn an_empty_run_has_no_span_and_global_is_listed() {
        let f = figures(&[]);
        assert_eq!((f.first_event_ts, f.last_event_ts), (None, None));
        assert_eq!(f.span_seconds, 0.0);
        assert_eq!(f.mode_seconds.keys().collect::<Vec<_>>(), ["global"]);
        assert_eq!(f.inputs.guard_ack.read, 0);
    }
}
