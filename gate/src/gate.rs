//! The pure core: folds what the guard publishes into every scope's mode and answers
//! [`Gate::may_trade`]. No I/O, no clock: each call is given the time.

use std::collections::HashMap;

use serde::Serialize;

use crate::held::{Outcome, ScopeState};
use crate::verdict::{FailClosed, Verdict, Why};
use crate::wire::{utc_millis, GuardAck, GuardCommand, Heartbeat, Mode, PauseState, Scope};

/// The time of a call: the gateway's monotonic clock (judges silence) and the wall
/// clock (stamps acknowledgements and changes), both in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock in milliseconds, from any origin; `may_trade` takes the same.
    pub mono_ms: i64,
    /// Milliseconds since the Unix epoch, UTC.
    pub utc_ms: i64,
}

/// A change of a scope's effective mode, as the gateway logs it: one JSON line
/// `{"gateway","scope","mode","command_id","at"}`, with a `reason` when the gate fails
/// closed. Scope `*` is every scope at once: `paused` with the reason when the gate
/// fails closed, `running` when it opens again — followed then by every scope the
/// guard holds in another mode, so a scope not named runs. While the gate is closed
/// no other change is reported (no scope's effective mode moves).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModeChange {
    /// This gateway.
    pub gateway: String,
    /// `global`, `strategy:ID`, or `*` when the gate closes or opens.
    pub scope: String,
    /// The scope's effective mode from now on.
    pub mode: Mode,
    /// The guard's command that set it; `null` for `*`.
    pub command_id: Option<String>,
    /// When the gateway saw the change (UTC, milliseconds).
    pub at: String,
    /// `no_state` or `guard_silent` when the gate fails closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ModeChange {
    /// The JSON line (without the newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a change serializes")
    }
}

/// What a call leaves the shell to do: acknowledgements to publish (each for a
/// command now in force) and changes of effective mode to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// `guard_ack`s owed, in the order the commands came.
    pub acks: Vec<GuardAck>,
    /// Changes of effective mode, in the order they happened.
    pub changes: Vec<ModeChange>,
}

impl Effects {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.changes.is_empty()
    }

    /// Appends `other`'s effects after this one's.
    pub fn append(&mut self, mut other: Effects) {
        self.acks.append(&mut other.acks);
        self.changes.append(&mut other.changes);
    }
}

/// What the gate has folded so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// `guard_pause_state` records.
    pub records: u64,
    /// `guard_command`s received, repeats included.
    pub commands: u64,
    /// Commands that set their scope's mode (a decision new to the gate).
    pub commands_applied: u64,
    /// Commands and records of a decision already folded (a repeat, or a record that
    /// came after a newer decision of its scope): nothing changed.
    pub repeats_dropped: u64,
    /// Heartbeats, a standby's included.
    pub heartbeats: u64,
    /// Acknowledgements owed: one per command id, once the gate has state.
    pub acks_owed: u64,
    /// Times the gate started failing closed (the start, before any state, is one).
    pub fail_closed_episodes: u64,
}

/// What the gate last reported about failing closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reported {
    Nothing,
    Closed(FailClosed),
    Open,
}

/// The gate's view of the guard (CONTRACT §6). See the crate docs for the calls a
/// shell owes it.
#[derive(Debug)]
pub struct Gate {
    gateway: String,
    max_silence_ms: i64,
    /// The pause-state topic was read to its end.
    has_state: bool,
    /// The monotonic time of the newest heartbeat of an active guard.
    heard_ms: Option<i64>,
    global: ScopeState,
    strategies: HashMap<String, ScopeState>,
    /// Commands received before the state: applied once it is read (see `on_command`).
    deferred: Vec<GuardCommand>,
    reported: Reported,
    counters: Counters,
}

impl Gate {
    /// A gate for `gateway` that fails closed after `max_silence_ms` without a
    /// heartbeat of an active guard (CONTRACT §6 default: 3,000). It starts closed:
    /// `no_state` until [`Gate::caught_up`].
    pub fn new(gateway: impl Into<String>, max_silence_ms: i64) -> Self {
        Gate {
            gateway: gateway.into(),
            max_silence_ms,
            has_state: false,
            heard_ms: None,
            global: ScopeState::default(),
            strategies: HashMap::new(),
            deferred: Vec::new(),
            reported: Reported::Nothing,
            counters: Counters::default(),
        }
    }

    /// What `strategy_id` may do at the monotonic time `now_ms`: paused while the
    /// gate fails closed or the global scope or the strategy's own is paused,
    /// reduce-only while either is reduce-only, else running. Allocates nothing.
    ///
    /// Silence is judged here, not in [`Gate::tick`]: a gate whose newest heartbeat of
    /// an active guard came exactly `max_silence` ago is open; a millisecond later it
    /// is closed.
    #[inline]
    pub fn may_trade(&self, strategy_id: &str, now_ms: i64) -> Verdict<'_> {
        if let Some(why) = self.fail_closed(now_ms) {
            return Verdict::Paused(Why::FailClosed(why));
        }
        let global = &self.global;
        let own = self.strategies.get(strategy_id);
        let own_mode = own.map_or(Mode::Running, |s| s.mode);
        if global.mode == Mode::Paused || own_mode == Mode::Paused {
            let paused = |s: &'_ ScopeState| s.mode == Mode::Paused;
            return Verdict::Paused(Why::Held {
                global: if paused(global) { &global.reasons } else { &[] },
                strategy: match own {
                    Some(s) if paused(s) => &s.reasons,
                    _ => &[],
                },
            });
        }
        if global.mode == Mode::ReduceOnly || own_mode == Mode::ReduceOnly {
            return Verdict::ReduceOnly;
        }
        Verdict::Running
    }

    /// Why the gate fails closed at the monotonic time `now_ms`, if it does.
    #[inline]
    pub fn fail_closed(&self, now_ms: i64) -> Option<FailClosed> {
        if !self.has_state {
            return Some(FailClosed::NoState);
        }
        match self.heard_ms {
            Some(heard) if now_ms.saturating_sub(heard) <= self.max_silence_ms => None,
            _ => Some(FailClosed::GuardSilent),
        }
    }

    /// A `guard_pause_state` record: the scope's present mode. The topic is read
    /// from its beginning, so this is how the gate learns every scope. Once the gate
    /// has state, a record that brings a decision into force owes its command's
    /// acknowledgement (unless the command came first and owed it).
    pub fn on_pause_state(&mut self, record: &PauseState, now: Now) -> Effects {
        let mut fx = Effects::default();
        self.observe(now, &mut fx);
        self.counters.records += 1;
        let open = self.reported == Reported::Open;
        let held = scope_mut(&mut self.global, &mut self.strategies, &record.scope);
        let before = held.mode;
        match held.take_record(record) {
            Outcome::Repeat => self.counters.repeats_dropped += 1,
            Outcome::Paired => {}
            Outcome::Applied if self.has_state => {
                let id = &record.command_id;
                owe_ack(&self.gateway, &mut self.counters, held, id, now, &mut fx);
            }
            Outcome::Applied => {}
        }
        if open && held.mode != before {
            fx.changes
                .push(change(&self.gateway, &record.scope, held, now));
        }
        fx
    }

    /// A `guard_command`: the scope's new mode. A command owes its acknowledgement
    /// (returned in [`Effects::acks`]) unless its record brought it into force and
    /// owed it already; a repeat changes nothing and owes nothing.
    ///
    /// Before the pause-state topic is read to its end the command waits, and is
    /// applied by [`Gate::caught_up`]: a record read later in the initial read may be
    /// older than it and must not be taken for its successor.
    pub fn on_command(&mut self, command: &GuardCommand, now: Now) -> Effects {
        let mut fx = Effects::default();
        self.observe(now, &mut fx);
        self.counters.commands += 1;
        if self.has_state {
            self.apply_command(command, now, &mut fx);
        } else {
            self.deferred.push(command.clone());
        }
        fx
    }

    /// A `guard_heartbeat`, received at `now`. Only an active guard's keeps the gate
    /// open; a standby's is counted and otherwise ignored.
    pub fn on_heartbeat(&mut self, heartbeat: &Heartbeat, now: Now) -> Effects {
        self.counters.heartbeats += 1;
        if heartbeat.active {
            self.heard_ms = Some(self.heard_ms.map_or(now.mono_ms, |h| h.max(now.mono_ms)));
        }
        let mut fx = Effects::default();
        self.observe(now, &mut fx);
        fx
    }

    /// The pause-state topic has been read to the end it had when the gate started:
    /// from now on the gate answers from what it knows. Owes the acknowledgement of
    /// the decision in force in every scope (each id once: the guard may be waiting
    /// for this gateway's), then applies the commands that came meanwhile.
    pub fn caught_up(&mut self, now: Now) -> Effects {
        let mut fx = Effects::default();
        if !self.has_state {
            self.has_state = true;
            let (gateway, counters) = (&self.gateway, &mut self.counters);
            let scopes = std::iter::once(&mut self.global).chain(self.strategies.values_mut());
            for held in scopes {
                if let Some(id) = held.command_id.clone() {
                    owe_ack(gateway, counters, held, &id, now, &mut fx);
                }
            }
            for command in std::mem::take(&mut self.deferred) {
                self.apply_command(&command, now, &mut fx);
            }
        }
        self.observe(now, &mut fx);
        fx
    }

    /// Lets the gate notice the time: reports failing closed when the guard fell
    /// silent. Call it often (every poll of the shell); `may_trade` does not need it.
    pub fn tick(&mut self, now: Now) -> Effects {
        let mut fx = Effects::default();
        self.observe(now, &mut fx);
        fx
    }

    fn apply_command(&mut self, command: &GuardCommand, now: Now, fx: &mut Effects) {
        let open = self.reported == Reported::Open;
        let held = scope_mut(&mut self.global, &mut self.strategies, &command.scope);
        let before = held.mode;
        let outcome = held.take_command(command);
        if open && held.mode != before {
            fx.changes
                .push(change(&self.gateway, &command.scope, held, now));
        }
        match outcome {
            Outcome::Repeat => self.counters.repeats_dropped += 1,
            Outcome::Applied | Outcome::Paired => {
                if outcome == Outcome::Applied {
                    self.counters.commands_applied += 1;
                }
                let id = &command.command_id;
                owe_ack(&self.gateway, &mut self.counters, held, id, now, fx);
            }
        }
    }

    /// Reports a change of failing closed: `*` paused with the reason when the gate
    /// closes (or its reason changes); `*` running when it opens, then every scope
    /// the guard holds in another mode (global first, strategies by id) — any scope
    /// not named runs.
    fn observe(&mut self, now: Now, fx: &mut Effects) {
        let closed = self.fail_closed(now.mono_ms);
        let next = closed.map_or(Reported::Open, Reported::Closed);
        if next == self.reported {
            return;
        }
        if closed.is_some() && !matches!(self.reported, Reported::Closed(_)) {
            self.counters.fail_closed_episodes += 1;
        }
        self.reported = next;
        fx.changes.push(ModeChange {
            gateway: self.gateway.clone(),
            scope: "*".into(),
            mode: if closed.is_some() {
                Mode::Paused
            } else {
                Mode::Running
            },
            command_id: None,
            at: utc_millis(now.utc_ms),
            reason: closed.map(|why| why.as_str().into()),
        });
        if closed.is_some() {
            return;
        }
        if self.global.mode != Mode::Running {
            fx.changes
                .push(change(&self.gateway, &Scope::Global, &self.global, now));
        }
        let mut held: Vec<_> = (self.strategies.iter())
            .filter(|(_, s)| s.mode != Mode::Running)
            .collect();
        held.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (id, state) in held {
            let scope = Scope::strategy(id.as_str());
            fx.changes.push(change(&self.gateway, &scope, state, now));
        }
    }
}

/// Read access to what the gate knows.
impl Gate {
    /// This gateway's name, as acknowledgements carry it.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The silence after which the gate fails closed, in milliseconds.
    pub fn max_silence_ms(&self) -> i64 {
        self.max_silence_ms
    }

    /// Whether the pause-state topic was read to its end.
    pub fn has_state(&self) -> bool {
        self.has_state
    }

    /// The monotonic time of the newest heartbeat of an active guard.
    pub fn heard_ms(&self) -> Option<i64> {
        self.heard_ms
    }

    /// The global scope (running and without a command until the guard says more).
    pub fn global(&self) -> &ScopeState {
        &self.global
    }

    /// A scope, if the gate knows it (the global scope always).
    pub fn scope(&self, scope: &Scope) -> Option<&ScopeState> {
        match scope {
            Scope::Global => Some(&self.global),
            Scope::Strategy { strategy_id } => self.strategies.get(strategy_id),
        }
    }

    /// Every strategy scope the guard has spoken of, in no particular order.
    pub fn strategies(&self) -> impl Iterator<Item = (&str, &ScopeState)> {
        self.strategies.iter().map(|(id, s)| (id.as_str(), s))
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

fn scope_mut<'a>(
    global: &'a mut ScopeState,
    strategies: &'a mut HashMap<String, ScopeState>,
    scope: &Scope,
) -> &'a mut ScopeState {
    match scope {
        Scope::Global => global,
        Scope::Strategy { strategy_id } => {
            if !strategies.contains_key(strategy_id) {
                strategies.insert(strategy_id.clone(), ScopeState::default());
            }
            strategies.get_mut(strategy_id).expect("inserted above")
        }
    }
}

/// Owes the acknowledgement of `command_id`, a decision of `held`, unless it was owed
/// already.
fn owe_ack(
    gateway: &str,
    counters: &mut Counters,
    held: &mut ScopeState,
    command_id: &str,
    now: Now,
    fx: &mut Effects,
) {
    if held.take_ack(command_id) {
        counters.acks_owed += 1;
        fx.acks.push(GuardAck {
            command_id: command_id.to_owned(),
            gateway: gateway.to_owned(),
            ts: utc_millis(now.utc_ms),
        });
    }
}

fn change(gateway: &str, scope: &Scope, held: &ScopeState, now: Now) -> ModeChange {
    ModeChange {
        gateway: gateway.to_owned(),
        scope: scope.key(),
        mode: held.mode,
        command_id: held.command_id.clone(),
        at: utc_millis(now.utc_ms),
        reason: None,
    }
}
