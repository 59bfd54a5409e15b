//! The guard engine: a pure, synchronous fold of input messages into decisions.
//!
//! No I/O, no wall clock, no logging. Time arrives with the messages (event time) or
//! through [`Engine::tick`]; everything the rules remember lives in [`EngineState`],
//! which serialises to a snapshot and restores to the same behaviour.
//!
//! The engine keeps what is common to every rule — ids seen (duplicates), the clock,
//! the state horizon and the scopes — and folds each message over the rules of
//! [`rules`], one file per rule, listed in their registry. One call to
//! [`Engine::apply`] handles one message, in this order (CONTRACT §2):
//! 1. a risk event of the guard's own source is ignored;
//! 2. a repeated id is a duplicate and changes nothing;
//! 3. the clock advances (event-time mode) and every rule sees it move — maintenance
//!    windows are entered or left — *before* the message is applied;
//! 4. the rules judge the message in registry order: a fill by the slippage window,
//!    then the losing streak; for each trip the command (if the scope changes state)
//!    comes before its risk event;
//! 5. what lies beyond the state horizon behind the newest event time is forgotten.

mod decide;
mod ids;
pub(crate) mod pairs;
pub mod rules;
mod scopes;
mod seen;
mod snapshot;
mod trip;

pub use decide::{Decide, Trigger};
pub use ids::event_id;
pub use rules::{
    occurrence_ending_after, Breach, GuardRule, LosingStreaks, Occurrence, Place, Rules,
    SlippageWindows,
};
pub use scopes::{Held, ScopeBook};
pub use seen::{Seen, SeenBlocks, SeenEntry};
pub use snapshot::{EngineState, Snapshot, SnapshotError, SNAPSHOT_FORMAT};
pub use trip::{TripError, TripFact};

use crate::message::{Action, Decision, Effect, Input, RiskAction, Scope, Stream};
use crate::policy::{Policy, RulePolicies};
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
    /// The per-strategy rules ([`Place::Workers`]) of the strategies of some input
    /// partitions: fills and adoptions in, operators' orders for their resets; out
    /// come only the trips (the rules' risk events), which an aggregator turns into
    /// commands. No scope, no maintenance window, no command.
    Worker,
    /// The scopes: operators' orders, risk events from other sources, maintenance
    /// windows, and the trips of every worker ([`Engine::apply_trip`]).
    Aggregator,
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
    /// A fill of another environment than the policy's `env` (CONTRACT §2.9): valid,
    /// but not applied, not recorded as seen, and the clock did not move.
    OtherEnv,
}

/// The result of one [`Engine::apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What happened to the message.
    pub disposition: Disposition,
    /// The decisions, in the order they were made.
    pub decisions: Vec<Decision>,
}

/// The rules of CONTRACT §2 over [`EngineState`].
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    policy_version: String,
    options: EngineOptions,
    state: EngineState,
}

impl Engine {
    /// A fresh engine with no history.
    pub fn new(policy: Policy, options: EngineOptions) -> Engine {
        Engine::with_state(policy, options, EngineState::default())
    }

    /// An engine that continues from `state` (taken under this or another policy).
    pub fn with_state(policy: Policy, options: EngineOptions, mut state: EngineState) -> Engine {
        let policy_version = policy.version();
        state.rules.adopt_policy(&policy.rules);
        Engine {
            policy,
            policy_version,
            options,
            state,
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
        match input {
            Input::RiskEvent(event) if event.source == self.options.source => {
                return Disposition::OwnEvent;
            }
            Input::Fill(fill)
                if self
                    .policy
                    .env
                    .is_some_and(|env| fill.env.is_some_and(|e| e != env)) =>
            {
                return Disposition::OtherEnv;
            }
            _ => {}
        }
        if !self.is_new(input) {
            return Disposition::Duplicate;
        }
        let event_time = input.event_time();
        if self.options.clock == ClockMode::EventTime {
            self.advance_clock(event_time, out);
        }
        let from = out.len();
        let (rules, policies, mut decide) = self.parts(out);
        rules.apply(policies, input, &mut decide);
        self.await_acks(out, from);
        self.observe_event_time(event_time);
        Disposition::Applied
    }

    /// Applies a worker's trip ([`Role::Aggregator`]). The trip names its rule; the
    /// registry routes it to that rule, which must be one the workers judge. Then, as
    /// the whole engine does when the fill trips: the clock moves to the trip's event
    /// time (event-time mode), the rule's reason is added to the scope — a command on
    /// a transition — and the risk event is raised. A trip forwarded twice (a worker
    /// re-reading after a crash) is a duplicate by its deterministic event id. A
    /// worker's warning (kind `RULE_warning`) is raised as the whole engine raises it,
    /// changing no scope.
    ///
    /// # Errors
    /// [`TripError`] when the trip names no rule of this guard, or one the workers do
    /// not judge; nothing changes then.
    pub fn apply_trip(
        &mut self,
        fact: &TripFact,
        out: &mut Vec<Decision>,
    ) -> Result<Disposition, TripError> {
        let (name, warning) = match fact.rule_name().strip_suffix("_warning") {
            Some(rule) => (rule, true),
            None => (fact.rule_name(), false),
        };
        let rule = self.state.rules.route(&self.policy.rules, name)?;
        let event = &fact.event;
        let second = event.ts.whole_seconds();
        if !self
            .state
            .seen
            .insert(Stream::RiskEvent, &event.event_id, second)
        {
            return Ok(Disposition::Duplicate);
        }
        if self.options.clock == ClockMode::EventTime {
            self.advance_clock(event.ts, out);
        }
        let trigger = Trigger {
            id: &fact.trigger,
            event_ts: event.ts,
            evidence: event.evidence.clone().unwrap_or_default(),
            reason: event.reason.clone().unwrap_or_default(),
        };
        let from = out.len();
        let (_, _, mut decide) = self.parts(out);
        if warning {
            decide.warn(rule, event.scope.clone(), trigger);
        } else {
            // The worker's risk event carries the effect of the reason its trip adds.
            let effect = event
                .action
                .and_then(RiskAction::effect)
                .unwrap_or(Effect::Pause);
            decide.trip(rule, effect, event.scope.clone(), trigger);
        }
        self.await_acks(out, from);
        self.observe_event_time(event.ts);
        Ok(Disposition::Applied)
    }

    /// Moves the clock to `now` (if later) and lets every rule see it move (maintenance
    /// windows are entered or left). Live, the shell calls this with the wall clock;
    /// replay never needs to.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Decision> {
        let mut out = Vec::new();
        self.advance_clock(now, &mut out);
        out
    }

    /// Whether the message was not applied before: a new id, or a new adoption.
    #[inline]
    fn is_new(&mut self, input: &Input) -> bool {
        let second = input.event_time().whole_seconds();
        let seen = &mut self.state.seen;
        match input {
            Input::Fill(m) => seen.insert(Stream::ExecResult, &m.fill_id, second),
            Input::RiskEvent(m) => seen.insert(Stream::RiskEvent, &m.event_id, second),
            Input::Ops(m) => seen.insert(Stream::OpsCommand, &m.command_id, second),
            Input::Release(m) => !self.state.rules.knows(m),
            Input::Ack(m) => {
                let id = format!("{}\u{1f}{}", m.command_id, m.gateway);
                seen.insert(Stream::GuardAck, &id, second)
            }
        }
    }

    /// Every command decided since `out[from]` awaits the gateways' acknowledgements
    /// (CONTRACT §2.10), from the guard's clock now.
    fn await_acks(&mut self, out: &mut Vec<Decision>, from: usize) {
        if self.policy.rules.acks.gateways.is_empty() || self.options.role == Role::Worker {
            return;
        }
        let commands: Vec<(String, Action, Scope, Timestamp)> = out[from..]
            .iter()
            .filter_map(|d| match d {
                Decision::GuardCommand(c) => {
                    Some((c.command_id.clone(), c.action, c.scope.clone(), c.event_ts))
                }
                Decision::RiskEvent(_) => None,
            })
            .collect();
        let Some(first) = commands.first() else {
            return;
        };
        // Live, before the first tick, the clock is the trigger's time.
        let clock = self.state.clock.unwrap_or(first.3);
        let commands = commands
            .into_iter()
            .map(|(id, a, s, _)| (id, a, s))
            .collect();
        let (rules, policies, mut decide) = self.parts(out);
        rules
            .acks
            .register(&policies.acks, commands, clock, &mut decide);
    }

    /// The rules, their policies and the scopes they decide on, borrowed apart.
    fn parts<'s>(
        &'s mut self,
        out: &'s mut Vec<Decision>,
    ) -> (&'s mut Rules, &'s RulePolicies, Decide<'s>) {
        let EngineState {
            rules,
            scopes,
            arrivals,
            ..
        } = &mut self.state;
        let decide = Decide::new(
            scopes,
            arrivals,
            out,
            self.options.role,
            &self.options.source,
            &self.policy_version,
            self.policy.rules.warnings.enabled,
        );
        (rules, &self.policy.rules, decide)
    }

    fn advance_clock(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        if self.options.role == Role::Worker || self.state.clock.is_some_and(|clock| now <= clock) {
            return;
        }
        self.state.clock = Some(now);
        let from = out.len();
        let (rules, policies, mut decide) = self.parts(out);
        rules.on_clock(policies, now, &mut decide);
        self.await_acks(out, from);
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
        self.state.rules.forget(&self.policy.rules, cutoff);
        self.state.forgotten_before = Some(cutoff);
    }
}

#[cfg(test)]
mod tests;
