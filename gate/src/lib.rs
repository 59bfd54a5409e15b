//! The order gateways' side of a guard pause (CONTRACT §6), as a library an order
//! gateway embeds.
//!
//! [`Gate`] is the pure core: it folds what the guard publishes — `guard_pause_state`
//! (read from the beginning: every scope's present mode), `guard_command` and
//! `guard_heartbeat` — into each scope's mode, and answers [`Gate::may_trade`] without
//! I/O. It **fails closed**: every strategy is paused while the gate has no state yet
//! (the pause-state topic not read to its end) or while the newest heartbeat of an
//! active guard is older than `max_silence`. Time comes in as an argument (the
//! gateway's clock, in milliseconds), so the core is testable and deterministic. A
//! command that is in force returns the acknowledgement the gateway owes
//! (`guard_ack`, CONTRACT §1.7).

use std::collections::HashMap;

use guard::message::{GuardAck, GuardCommand, Heartbeat, Mode, PauseState, Scope};
use guard::time::Timestamp;

/// What a strategy may do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Trade as usual.
    Running,
    /// Only orders that reduce its position.
    ReduceOnly,
    /// No orders: why (the scopes' reasons, or `no_state` / `guard_silent`).
    Paused(Vec<String>),
}

/// A scope's mode as the gate knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    mode: Mode,
    reasons: Vec<String>,
    command_id: String,
}

/// The gate's view of the guard.
#[derive(Debug)]
pub struct Gate {
    gateway: String,
    max_silence_ms: i64,
    /// The pause-state topic was read to its end: the gate knows every scope.
    has_state: bool,
    /// The gateway's clock (ms) when the newest heartbeat of an active guard came.
    heard_ms: Option<i64>,
    global: Option<Known>,
    strategies: HashMap<String, Known>,
}

impl Gate {
    /// A gate for `gateway` that fails closed after `max_silence_ms` without a
    /// heartbeat from an active guard (CONTRACT §6 default: 3,000).
    pub fn new(gateway: impl Into<String>, max_silence_ms: i64) -> Self {
        Gate {
            gateway: gateway.into(),
            max_silence_ms,
            has_state: false,
            heard_ms: None,
            global: None,
            strategies: HashMap::new(),
        }
    }

    /// The pause-state topic has been read to its end: from now on the gate answers
    /// from what it knows.
    pub fn caught_up(&mut self) {
        self.has_state = true;
    }

    /// A `guard_pause_state` record: the scope's present mode.
    pub fn on_pause_state(&mut self, state: &PauseState) {
        let known = Known {
            mode: state.mode,
            reasons: state.reasons.clone(),
            command_id: state.command_id.clone(),
        };
        self.set(&state.scope, known);
    }

    /// A `guard_command`: the scope's new mode, now in force here. Returns the
    /// acknowledgement the gateway owes, stamped `now`.
    pub fn on_command(&mut self, command: &GuardCommand, now: Timestamp) -> GuardAck {
        let mode = match command.action {
            guard::message::Action::Pause => Mode::Paused,
            guard::message::Action::ReduceOnly => Mode::ReduceOnly,
            guard::message::Action::Resume => Mode::Running,
        };
        let known = Known {
            mode,
            reasons: vec![command.rule.as_str().to_owned()],
            command_id: command.command_id.clone(),
        };
        self.set(&command.scope, known);
        GuardAck {
            command_id: command.command_id.clone(),
            gateway: self.gateway.clone(),
            ts: now,
        }
    }

    /// A `guard_heartbeat`, received when the gateway's clock read `now_ms`. Only an
    /// active guard's keeps the gate open.
    pub fn on_heartbeat(&mut self, heartbeat: &Heartbeat, now_ms: i64) {
        if heartbeat.active {
            self.heard_ms = Some(now_ms);
        }
    }

    /// What `strategy_id` may do at the gateway's clock `now_ms`: paused while the
    /// global scope or its own is paused (or the gate fails closed), reduce-only while
    /// either is reduce-only, else running.
    #[inline]
    pub fn may_trade(&self, strategy_id: &str, now_ms: i64) -> Verdict {
        if !self.has_state {
            return Verdict::Paused(vec!["no_state".into()]);
        }
        if self
            .heard_ms
            .is_none_or(|heard| now_ms - heard > self.max_silence_ms)
        {
            return Verdict::Paused(vec!["guard_silent".into()]);
        }
        let own = self.strategies.get(strategy_id);
        let scopes = [self.global.as_ref(), own];
        if scopes.iter().flatten().any(|k| k.mode == Mode::Paused) {
            let reasons = scopes
                .iter()
                .flatten()
                .filter(|k| k.mode == Mode::Paused)
                .flat_map(|k| k.reasons.iter().cloned())
                .collect();
            return Verdict::Paused(reasons);
        }
        if scopes.iter().flatten().any(|k| k.mode == Mode::ReduceOnly) {
            return Verdict::ReduceOnly;
        }
        Verdict::Running
    }

    /// The command that set `scope`'s present mode, if any.
    pub fn command_of(&self, scope: &Scope) -> Option<&str> {
        match scope {
            Scope::Global => self.global.as_ref(),
            Scope::Strategy { strategy_id } => self.strategies.get(strategy_id),
        }
        .map(|k| k.command_id.as_str())
    }

    fn set(&mut self, scope: &Scope, known: Known) {
        match scope {
            Scope::Global => self.global = Some(known),
            Scope::Strategy { strategy_id } => {
                self.strategies.insert(strategy_id.clone(), known);
            }
        }
    }
}

#[cfg(test)]
mod tests;
