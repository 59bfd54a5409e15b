//! An owned picture of the gate for status pages and metrics: every scope's mode,
//! reasons and command, whether it fails closed and why, and the counters.

use serde::Serialize;

use crate::gate::{Counters, Gate};
use crate::wire::Mode;

/// One scope in a [`GateState`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeEntry {
    /// `global` or `strategy:ID`.
    pub scope: String,
    /// The mode the guard gave it (what holds once the gate is open).
    pub mode: Mode,
    /// Its reasons, rule names.
    pub reasons: Vec<String>,
    /// The command that set the mode.
    pub command_id: Option<String>,
    /// Since when, as the guard wrote it.
    pub since: Option<String>,
}

/// What the gate knows at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateState {
    /// This gateway.
    pub gateway: String,
    /// The pause-state topic was read to its end.
    pub caught_up: bool,
    /// An active guard was heard within `max_silence`.
    pub heard: bool,
    /// Milliseconds since the newest heartbeat of an active guard (`None`: never).
    pub ms_since_heartbeat: Option<i64>,
    /// `no_state` or `guard_silent` while the gate fails closed.
    pub fail_closed: Option<&'static str>,
    /// The global scope first, then the strategies by id.
    pub scopes: Vec<ScopeEntry>,
    /// The core's counters.
    pub counters: Counters,
}

impl GateState {
    /// How many scopes the guard holds in `mode` (the global scope included).
    pub fn scopes_in(&self, mode: Mode) -> usize {
        self.scopes.iter().filter(|s| s.mode == mode).count()
    }
}

impl Gate {
    /// The gate's state at the monotonic time `now_ms`.
    pub fn state(&self, now_ms: i64) -> GateState {
        let entry = |scope: String, s: &crate::ScopeState| ScopeEntry {
            scope,
            mode: s.mode,
            reasons: s.reasons.clone(),
            command_id: s.command_id.clone(),
            since: s.since.clone(),
        };
        let mut strategies: Vec<_> = self.strategies().collect();
        strategies.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut scopes = vec![entry("global".into(), self.global())];
        scopes.extend(
            strategies
                .into_iter()
                .map(|(id, s)| entry(format!("strategy:{id}"), s)),
        );
        let ms_since_heartbeat = self.heard_ms().map(|h| now_ms.saturating_sub(h));
        GateState {
            gateway: self.gateway().to_owned(),
            caught_up: self.has_state(),
            heard: ms_since_heartbeat.is_some_and(|ms| ms <= self.max_silence_ms()),
            ms_since_heartbeat,
            fail_closed: self.fail_closed(now_ms).map(|f| f.as_str()),
            scopes,
            counters: self.counters(),
        }
    }
}
