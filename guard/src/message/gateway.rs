//! The live-only streams between the guard and the order gateways (CONTRACT §1.8):
//! `guard_pause_state` (compacted, keyed by scope) and `guard_heartbeat`.

use serde::{Deserialize, Serialize};

use super::{Mode, Scope};
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
