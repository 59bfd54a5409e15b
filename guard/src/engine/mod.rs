//! The guard engine: a pure, synchronous fold of input messages into decisions.
//!
//! No I/O, no wall clock, no logging. Time arrives with the messages (event time) or
//! through [`Engine::tick`]; everything the rules remember lives in [`EngineState`],
//! which serialises to a snapshot and restores to the same behaviour.
//!
//! One call to [`Engine::apply`] handles one message, in this order (CONTRACT §2):
//! 1. a risk event of the guard's own source is ignored;
//! 2. a repeated id is a duplicate and changes nothing;
//! 3. the clock advances (event-time mode) and maintenance windows are entered or
//!    left *before* the message is applied;
//! 4. the message's rules run: a fill is judged by the slippage window, then the
//!    losing streak; for each trip the command (if the scope changes state) comes
//!    before its risk event.

mod ids;
mod maintenance;
pub(crate) mod pairs;
mod scopes;
mod seen;
mod slippage;
mod streak;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use maintenance::{occurrence_ending_after, Occurrence};
pub use scopes::{Paused, ScopeBook};
pub use seen::Seen;
pub use slippage::{Breach, SlippageWindows};
pub use streak::LosingStreaks;

use crate::message::{
    Action, Decision, Fill, GuardCommand, Input, OpsCommand, RiskAction, RiskEvent, Rule, Scope,
    Severity, StrategyRelease, Stream,
};
use crate::policy::{GroupBy, PauseTarget, Policy};
use crate::time::{Span, Timestamp};

/// Where the engine's clock comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// The largest event time seen so far (replay).
    #[default]
    EventTime,
    /// Only [`Engine::tick`] moves the clock (live: the shell ticks the wall clock).
    External,
}

/// How the engine is run, as opposed to what it enforces (that is the [`Policy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// The guard's own `source` name: its risk events carry it, and risk events that
    /// carry it are ignored.
    pub source: String,
    /// Where time comes from.
    pub clock: ClockMode,
    /// The whole guard, or one side of a scaled-out guard.
    pub role: Role,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            source: "guard".into(),
            clock: ClockMode::EventTime,
            role: Role::Whole,
        }
    }
}

/// Which part of the rules an engine runs (docs/SCALING.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Role {
    /// Every rule and every scope: the single guard, and replay.
    #[default]
    Whole,
    /// The per-strategy rules of the strategies of some input partitions: fills and
    /// adoptions in, operators' orders for their resets; out come only the trips (the
    /// rules' risk events), which an aggregator turns into commands. No scope, no
    /// maintenance window, no command.
    Worker,
    /// The scopes: operators' orders, risk events from other sources, maintenance
    /// windows, and the trips of every worker ([`Engine::apply_trip`]).
    Aggregator,
}

/// A trip decided by a [`Role::Worker`] engine, forwarded to the aggregator: the
/// rule's risk event and the message that tripped it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripFact {
    /// The fill that tripped the rule.
    pub trigger: String,
    /// The rule's risk event (its kind names the rule, its scope the scope to pause).
    pub event: RiskEvent,
}

/// What happened to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Applied (it may or may not have led to decisions).
    Applied,
    /// A repeat of an id already applied; nothing changed.
    Duplicate,
    /// A risk event of the guard's own source; nothing changed.
    OwnEvent,
}

/// The result of one [`Engine::apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What happened to the message.
    pub disposition: Disposition,
    /// The decisions, in the order they were made.
    pub decisions: Vec<Decision>,
}

/// Everything the rules remember. Serialises deterministically.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// The engine's clock; `None` before the first message.
    pub clock: Option<Timestamp>,
    /// Breaches added so far, to order breaches with equal event times.
    pub arrivals: u64,
    /// Paused scopes and their reasons.
    pub scopes: ScopeBook,
    /// Open slippage windows.
    pub slippage: SlippageWindows,
    /// Running losing streaks.
    pub streaks: LosingStreaks,
    /// Adoption times per strategy, sorted.
    pub adoptions: BTreeMap<String, Vec<Timestamp>>,
    /// Maintenance windows the clock is in, with the occurrence entered.
    pub maintenance: BTreeMap<String, Occurrence>,
    /// Ids applied within the state horizon.
    pub seen: Seen,
    /// The newest event time applied (the state horizon counts back from it).
    #[serde(default)]
    pub newest: Option<Timestamp>,
    /// Everything older than this was forgotten (the last sweep's cutoff).
    #[serde(default)]
    pub forgotten_before: Option<Timestamp>,
}

/// A serialised engine state with the policy it was taken under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format of this snapshot; bumped when [`EngineState`] changes incompatibly.
    pub format: u32,
    /// The policy in force when it was taken.
    pub policy_version: String,
    /// The state.
    pub state: EngineState,
}

/// The snapshot format this build writes. It also reads format 2, whose dedup keys
/// are full 128-bit digests (the set keeps their top 80 bits since format 3).
pub const SNAPSHOT_FORMAT: u32 = 3;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot.
    #[error("snapshot is not readable: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Written by an incompatible build.
    #[error(
        "snapshot format {found} is not supported (this build reads formats 2 to {SNAPSHOT_FORMAT})"
    )]
    Format {
        /// The format found.
        found: u32,
    },
}

/// The rules of CONTRACT §2 over [`EngineState`].
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    policy_version: String,
    options: EngineOptions,
    state: EngineState,
    /// Per policy window: the occurrence ending after the clock (derived, not state).
    occurrences: Vec<Option<Occurrence>>,
}

/// What caused a decision.
struct Trigger<'a> {
    id: &'a str,
    event_ts: Timestamp,
    evidence: Vec<String>,
    reason: String,
}

impl Engine {
    /// A fresh engine with no history.
    pub fn new(policy: Policy, options: EngineOptions) -> Engine {
        Engine::with_state(policy, options, EngineState::default())
    }

    /// An engine that continues from `state`.
    pub fn with_state(policy: Policy, options: EngineOptions, state: EngineState) -> Engine {
        let policy_version = policy.version();
        let occurrences = vec![None; policy.maintenance.len()];
        Engine {
            policy,
            policy_version,
            options,
            state,
            occurrences,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy's version, as written into every command.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// The state, read-only.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// The serialised state (JSON), restorable with [`Engine::restore`].
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotRef {
            format: SNAPSHOT_FORMAT,
            policy_version: &self.policy_version,
            state: &self.state,
        };
        serde_json::to_vec(&snapshot).expect("engine state always serialises")
    }

    /// The snapshot without the set of seen ids, which a store keeps incrementally
    /// (see [`Engine::drain_seen_journal`]); restore it with [`Engine::restore`] and
    /// put the ids back with [`Engine::restore_seen`].
    pub fn snapshot_without_seen(&mut self) -> Vec<u8> {
        let seen = std::mem::take(&mut self.state.seen);
        let bytes = self.snapshot();
        self.state.seen = seen;
        bytes
    }

    /// Starts journaling the ids of applied messages for incremental persistence.
    pub fn enable_seen_journal(&mut self) {
        self.state.seen.enable_journal();
    }

    /// The dedup keys added since the last call (empty unless journaling).
    pub fn drain_seen_journal(&mut self) -> Vec<(u128, i64)> {
        self.state.seen.drain_journal()
    }

    /// Adds dedup entries back after [`Engine::restore`] of a snapshot taken without
    /// them; entries older than the state's horizon are left out.
    pub fn restore_seen(&mut self, entries: impl IntoIterator<Item = (u128, i64)>) {
        let from = self.seen_forgotten_before().unwrap_or(i64::MIN);
        self.state
            .seen
            .extend_entries(entries.into_iter().filter(|(_, second)| *second >= from));
    }

    /// Seconds (event time) before which seen ids are forgotten, once a sweep ran.
    pub fn seen_forgotten_before(&self) -> Option<i64> {
        self.state.forgotten_before.map(Timestamp::whole_seconds)
    }

    /// An engine continuing from a snapshot taken by [`Engine::snapshot`]; the
    /// snapshot's own policy version is returned so the caller can say when the
    /// policy changed across the restart.
    ///
    /// # Errors
    /// [`SnapshotError`] when the bytes are not a snapshot of this format.
    pub fn restore(
        policy: Policy,
        options: EngineOptions,
        bytes: &[u8],
    ) -> Result<(Engine, String), SnapshotError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        if !(2..=SNAPSHOT_FORMAT).contains(&snapshot.format) {
            return Err(SnapshotError::Format {
                found: snapshot.format,
            });
        }
        Ok((
            Engine::with_state(policy, options, snapshot.state),
            snapshot.policy_version,
        ))
    }

    /// Applies one message and returns what happened and what was decided.
    pub fn apply(&mut self, input: &Input) -> Outcome {
        let mut decisions = Vec::new();
        let disposition = self.apply_into(input, &mut decisions);
        Outcome {
            disposition,
            decisions,
        }
    }

    /// [`Engine::apply`], appending decisions to `out` (no allocation when nothing
    /// is decided).
    pub fn apply_into(&mut self, input: &Input, out: &mut Vec<Decision>) -> Disposition {
        if let Input::RiskEvent(event) = input {
            if event.source == self.options.source {
                return Disposition::OwnEvent;
            }
        }
        let event_time = input.event_time();
        let second = event_time.whole_seconds();
        let fresh = match input {
            Input::Fill(m) => self
                .state
                .seen
                .insert(Stream::ExecResult, &m.fill_id, second),
            Input::RiskEvent(m) => self
                .state
                .seen
                .insert(Stream::RiskEvent, &m.event_id, second),
            Input::Ops(m) => self
                .state
                .seen
                .insert(Stream::OpsCommand, &m.command_id, second),
            Input::Release(m) => !self
                .state
                .adoptions
                .get(&m.strategy_id)
                .is_some_and(|times| times.contains(&m.adopted_at)),
        };
        if !fresh {
            return Disposition::Duplicate;
        }
        if self.options.clock == ClockMode::EventTime {
            self.advance_clock(input.event_time(), out);
        }
        match input {
            Input::Fill(fill) => self.on_fill(fill, out),
            Input::RiskEvent(event) => self.on_risk_event(event, out),
            Input::Release(release) => self.on_release(release),
            Input::Ops(command) => self.on_ops(command, out),
        }
        self.observe_event_time(event_time);
        Disposition::Applied
    }

    /// Moves the newest event time forward and forgets what fell beyond the horizon.
    fn observe_event_time(&mut self, ts: Timestamp) {
        if self.state.newest.is_none_or(|n| ts > n) {
            self.state.newest = Some(ts);
            self.forget_old();
        }
    }

    /// Forgets what lies beyond the state horizon behind the newest event time, once
    /// the cutoff has moved by an eighth of the horizon since the last sweep (so a
    /// sweep's cost is spread over many messages). Deterministic: it depends on event
    /// times only.
    fn forget_old(&mut self) {
        let Some(newest) = self.state.newest else {
            return;
        };
        let horizon = self.policy.state.horizon;
        let cutoff = newest.minus(horizon);
        let every = Span::from_micros((horizon.as_micros() / 8).max(1_000_000));
        if self
            .state
            .forgotten_before
            .is_some_and(|before| cutoff < before.plus(every))
        {
            return;
        }
        self.state.seen.forget_before(cutoff.whole_seconds());
        self.state.streaks.forget_before(cutoff);
        // A breach can still join a run with a breach up to one window later.
        self.state
            .slippage
            .forget_before(cutoff.minus(self.policy.slippage.window));
        let lookback = self.policy.enhanced.lookback;
        self.state.adoptions.retain(|_, times| {
            times.retain(|adopted| adopted.plus(lookback) >= cutoff);
            !times.is_empty()
        });
        self.state.forgotten_before = Some(cutoff);
    }

    /// Applies a worker's trip ([`Role::Aggregator`]): moves the clock to its event time
    /// (event-time mode), pauses the scope — a command on a transition — and raises
    /// the risk event, exactly as the whole engine does when the fill trips. A trip
    /// forwarded twice (a worker re-reading after a crash) is a duplicate by its
    /// deterministic event id.
    pub fn apply_trip(&mut self, fact: &TripFact, out: &mut Vec<Decision>) -> Disposition {
        let event = &fact.event;
        let second = event.ts.whole_seconds();
        if !self
            .state
            .seen
            .insert(Stream::RiskEvent, &event.event_id, second)
        {
            return Disposition::Duplicate;
        }
        if self.options.clock == ClockMode::EventTime {
            self.advance_clock(event.ts, out);
        }
        let rule = match event.kind.as_str() {
            "slippage_window" => Rule::SlippageWindow,
            _ => Rule::LosingStreak,
        };
        let trigger = Trigger {
            id: &fact.trigger,
            event_ts: event.ts,
            evidence: event.evidence.clone().unwrap_or_default(),
            reason: event.reason.clone().unwrap_or_default(),
        };
        self.trip(event.scope.clone(), rule, trigger, out);
        self.observe_event_time(event.ts);
        Disposition::Applied
    }

    /// Moves the clock to `now` (if later) and enters or leaves maintenance windows.
    /// Live, the shell calls this with the wall clock; replay never needs to.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Decision> {
        let mut out = Vec::new();
        self.advance_clock(now, &mut out);
        out
    }

    fn on_fill(&mut self, fill: &Fill, out: &mut Vec<Decision>) {
        let enhanced = self.is_enhanced(&fill.strategy_id, fill.ts);
        self.judge_slippage(fill, enhanced, out);
        self.judge_streak(fill, enhanced, out);
    }

    fn judge_slippage(&mut self, fill: &Fill, enhanced: bool, out: &mut Vec<Decision>) {
        let rule = &self.policy.slippage;
        if !rule.enabled {
            return;
        }
        let threshold = if enhanced {
            rule.threshold_bps * self.policy.enhanced.factor
        } else {
            rule.threshold_bps
        };
        if !(fill.slippage_bps() > threshold) {
            return;
        }
        let group = match rule.group_by {
            GroupBy::Strategy => Some(fill.strategy_id.as_str()),
            GroupBy::Global => None,
        };
        let trip_at = self.scaled(rule.trip_at, enhanced);
        let window = rule.window;
        self.state.arrivals += 1;
        let breach = Breach {
            ts: fill.ts,
            seq: self.state.arrivals,
            fill_id: fill.fill_id.clone(),
            strategy_id: fill.strategy_id.clone(),
        };
        let Some(run) = self.state.slippage.add(group, breach, trip_at, window) else {
            return;
        };
        let scope = match (rule.pause, group) {
            (PauseTarget::Group, Some(strategy)) => Scope::strategy(strategy),
            _ => Scope::Global,
        };
        let whose = group.map_or_else(|| "all strategies".to_owned(), |s| format!("strategy {s}"));
        let reason = format!(
            "{trip_at} fills with slippage > {threshold:?} bps within {window} ({whose}){}",
            if enhanced {
                ", enhanced monitoring"
            } else {
                ""
            }
        );
        let trigger = Trigger {
            id: &fill.fill_id,
            event_ts: fill.ts,
            evidence: run.into_iter().map(|b| b.fill_id).collect(),
            reason,
        };
        self.trip(scope, Rule::SlippageWindow, trigger, out);
    }

    fn judge_streak(&mut self, fill: &Fill, enhanced: bool, out: &mut Vec<Decision>) {
        let rule = &self.policy.losing_streak;
        if !rule.enabled {
            return;
        }
        let trip_at = self.scaled(rule.trip_at, enhanced);
        let pause = rule.pause;
        let Some(losing) = self.state.streaks.observe(
            &fill.strategy_id,
            &fill.fill_id,
            fill.ts,
            fill.realized_pnl,
            trip_at,
        ) else {
            return;
        };
        let scope = match pause {
            PauseTarget::Global => Scope::Global,
            PauseTarget::Group => Scope::strategy(&fill.strategy_id),
        };
        let reason = format!(
            "{} losing fills in a row (strategy {}){}",
            losing.len(),
            fill.strategy_id,
            if enhanced {
                ", enhanced monitoring"
            } else {
                ""
            }
        );
        let trigger = Trigger {
            id: &fill.fill_id,
            event_ts: fill.ts,
            evidence: losing,
            reason,
        };
        self.trip(scope, Rule::LosingStreak, trigger, out);
    }

    /// A rule tripped: pause its scope (a command only on a transition), then raise
    /// the risk event that records the incident.
    fn trip(&mut self, scope: Scope, rule: Rule, trigger: Trigger<'_>, out: &mut Vec<Decision>) {
        if self.options.role != Role::Worker {
            self.pause(&scope, rule, &trigger, out);
        }
        let kind = rule.as_str();
        out.push(Decision::RiskEvent(RiskEvent {
            event_id: ids::event_id(kind, &scope, trigger.id),
            source: self.options.source.clone(),
            kind: kind.to_owned(),
            severity: Severity::Critical,
            scope,
            action: Some(RiskAction::Pause),
            reason: Some(trigger.reason),
            evidence: Some(trigger.evidence),
            ts: trigger.event_ts,
        }));
    }

    fn on_risk_event(&mut self, event: &RiskEvent, out: &mut Vec<Decision>) {
        if self.options.role == Role::Worker || event.effective_action() != RiskAction::Pause {
            return;
        }
        let reason = format!(
            "risk event {} ({}) from {}{}",
            event.kind,
            severity_name(event.severity),
            event.source,
            detail(event.reason.as_deref())
        );
        let trigger = Trigger::message(&event.event_id, event.ts, reason);
        self.pause(&event.scope, Rule::RiskEvent, &trigger, out);
    }

    fn on_release(&mut self, release: &StrategyRelease) {
        let times = self
            .state
            .adoptions
            .entry(release.strategy_id.clone())
            .or_default();
        let at = times.partition_point(|t| *t < release.adopted_at);
        times.insert(at, release.adopted_at);
    }

    fn on_ops(&mut self, command: &OpsCommand, out: &mut Vec<Decision>) {
        let reason = format!(
            "operator {} {}d {}{}",
            command.operator,
            command.action.as_str(),
            command.scope,
            detail(command.reason.as_deref())
        );
        let trigger = Trigger::message(&command.command_id, command.ts, reason);
        if self.options.role == Role::Worker {
            // A worker keeps no scope: an order matters to it only for the rule state
            // a resume resets.
            if command.action == Action::Resume {
                self.reset_rules(&command.scope);
            }
            return;
        }
        match command.action {
            Action::Pause => self.pause(&command.scope, Rule::Operator, &trigger, out),
            Action::Resume => {
                // A resume also forgets the rule state that feeds the scope, so the
                // breaches that caused a pause cannot trip it again at once.
                self.reset_rules(&command.scope);
                if self.state.scopes.clear(&command.scope) {
                    out.push(self.command(
                        Action::Resume,
                        &command.scope,
                        Rule::Operator,
                        &trigger,
                    ));
                }
            }
        }
    }

    fn reset_rules(&mut self, scope: &Scope) {
        match scope {
            Scope::Global => {
                self.state.slippage.clear();
                self.state.streaks.clear();
            }
            Scope::Strategy { strategy_id } => {
                self.state.slippage.clear_strategy(strategy_id);
                self.state.streaks.clear_strategy(strategy_id);
            }
        }
    }

    fn pause(&mut self, scope: &Scope, rule: Rule, trigger: &Trigger<'_>, out: &mut Vec<Decision>) {
        if self.state.scopes.add(scope, rule, trigger.event_ts) {
            out.push(self.command(Action::Pause, scope, rule, trigger));
        }
    }

    fn command(
        &self,
        action: Action,
        scope: &Scope,
        rule: Rule,
        trigger: &Trigger<'_>,
    ) -> Decision {
        Decision::GuardCommand(GuardCommand {
            command_id: ids::command_id(action, scope, rule, trigger.id, trigger.event_ts),
            action,
            scope: scope.clone(),
            rule,
            trigger: trigger.id.to_owned(),
            evidence: trigger.evidence.clone(),
            reason: trigger.reason.clone(),
            event_ts: trigger.event_ts,
            decided_at: trigger.event_ts,
            policy_version: self.policy_version.clone(),
        })
    }

    fn is_enhanced(&self, strategy_id: &str, ts: Timestamp) -> bool {
        let enhanced = &self.policy.enhanced;
        enhanced.enabled
            && self.state.adoptions.get(strategy_id).is_some_and(|times| {
                times
                    .iter()
                    .any(|adopted| *adopted <= ts && ts < adopted.plus(enhanced.lookback))
            })
    }

    /// `trip_at` under enhanced monitoring: `ceil(trip_at * factor)`, at least 1. The
    /// tolerance keeps float noise (10 * 0.3 = 3.0000000000000004) from adding one.
    fn scaled(&self, trip_at: u32, enhanced: bool) -> usize {
        if !enhanced {
            return trip_at as usize;
        }
        let scaled = (f64::from(trip_at) * self.policy.enhanced.factor - 1e-9).ceil();
        (scaled as usize).max(1)
    }

    fn advance_clock(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        if self.options.role == Role::Worker || self.state.clock.is_some_and(|clock| now <= clock) {
            return;
        }
        self.state.clock = Some(now);
        if self.policy.maintenance.is_empty() && self.state.maintenance.is_empty() {
            return;
        }
        // (time, is_enter, name, occurrence): leaves sort before enters at equal times.
        let mut changes: Vec<(Timestamp, bool, String, Occurrence)> = Vec::new();
        for (i, window) in self.policy.maintenance.iter().enumerate() {
            if !window.enabled {
                continue;
            }
            let occurrence = match self.occurrences[i] {
                Some(o) if now < o.end => o,
                _ => {
                    let o = occurrence_ending_after(window, now);
                    self.occurrences[i] = Some(o);
                    o
                }
            };
            let inside = occurrence.contains(now);
            let entered = self.state.maintenance.get(&window.name).copied();
            if let Some(previous) = entered {
                if !inside || previous != occurrence {
                    changes.push((previous.end, false, window.name.clone(), previous));
                }
            }
            if inside && entered != Some(occurrence) {
                changes.push((occurrence.start, true, window.name.clone(), occurrence));
            }
        }
        // A window the policy no longer has (or has switched off) is left now.
        for (name, occurrence) in &self.state.maintenance {
            if !self
                .policy
                .maintenance
                .iter()
                .any(|w| w.enabled && &w.name == name)
            {
                changes.push((occurrence.end.min(now), false, name.clone(), *occurrence));
            }
        }
        changes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (at, enter, name, occurrence) in changes {
            let trigger = Trigger {
                id: &name,
                event_ts: at,
                evidence: Vec::new(),
                reason: format!(
                    "maintenance window {name} {} ({} to {})",
                    if enter { "started" } else { "ended" },
                    occurrence.start,
                    occurrence.end
                ),
            };
            if enter {
                self.state.maintenance.insert(name.clone(), occurrence);
                self.pause(&Scope::Global, Rule::Maintenance, &trigger, out);
            } else {
                self.state.maintenance.remove(&name);
                if self.state.maintenance.is_empty()
                    && self.state.scopes.remove(&Scope::Global, Rule::Maintenance)
                {
                    out.push(self.command(
                        Action::Resume,
                        &Scope::Global,
                        Rule::Maintenance,
                        &trigger,
                    ));
                }
            }
        }
    }
}

impl<'a> Trigger<'a> {
    /// A decision that rests on one input message alone.
    fn message(id: &'a str, event_ts: Timestamp, reason: String) -> Self {
        Trigger {
            id,
            event_ts,
            evidence: vec![id.to_owned()],
            reason,
        }
    }
}

/// `": text"` for an optional human reason, or nothing.
fn detail(reason: Option<&str>) -> String {
    reason.map(|r| format!(": {r}")).unwrap_or_default()
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: u32,
    policy_version: &'a str,
    state: &'a EngineState,
}
