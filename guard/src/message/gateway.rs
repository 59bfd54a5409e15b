//! The live-only streams between the guard and the order gateways (CONTRACT §1.8):
//! `guard_pause_state` (compacted, keyed by scope) and `guard_heartbeat`.

use serde::{Deserialize, Serialize};

use super::{Action, GuardCommand, Mode, Scope};
use crate::engine::Held;
use crate::time::Timestamp;

/// One scope's present mode, as `guard_pause_state` carries it (keyed by scope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseState {
    /// The scope.
    pub scope: Scope,
    /// Its mode.
    pub mode: Mode,
    /// The rule names of the reasons it holds, sorted.
    pub reasons: Vec<String>,
    /// Since when it is in this mode.
    pub since: Timestamp,
    /// The command that announced the mode.
    pub command_id: String,
    /// The policy in force.
    pub policy_version: String,
}

impl PauseState {
    /// The record that goes with `command`, given what its scope holds after the
    /// decision (`None`: running). Deterministic — a re-published command goes out
    /// with an exact repeat of its record. When a later decision of the same step
    /// already changed the scope again, what it holds is not this command's mode:
    /// then the record names only the command's own rule.
    pub fn after(command: &GuardCommand, held: Option<&Held>) -> PauseState {
        let mode = match command.action {
            Action::Pause => Mode::Paused,
            Action::ReduceOnly => Mode::ReduceOnly,
            Action::Resume => Mode::Running,
        };
        let held = held.filter(|h| h.mode() == mode);
        let mut reasons: Vec<String> = match (held, mode) {
            (Some(h), _) => h.all().map(|(rule, _)| rule.as_str().to_owned()).collect(),
            (None, Mode::Running) => Vec::new(),
            (None, _) => vec![command.rule.as_str().to_owned()],
        };
        reasons.sort();
        reasons.dedup();
        PauseState {
            scope: command.scope.clone(),
            mode,
            reasons,
            since: held.map_or(command.event_ts, |h| h.since),
            command_id: command.command_id.clone(),
            policy_version: command.policy_version.clone(),
        }
    }
}

/// The guard's sign of life (`guard_heartbeat`), at least once a second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The instance that sends it.
    pub instance: String,
    /// When it was sent.
    pub ts: Timestamp,
    /// Whether that instance is the active guard.
    pub active: bool,
    /// The policy in force.
    pub policy_version: String,
    /// How many scopes are paused.
    pub paused_scopes: u64,
}
