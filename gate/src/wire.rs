//! What the gate reads from the guard and writes back (CONTRACT §1.5–1.8), as tolerant
//! serde views: unknown fields are ignored and fields the gate does not use may be
//! absent, so a guard that adds a field never stops a gateway. Times the gate does not
//! compute with stay strings.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a pause applies to (CONTRACT §1.5): `{"kind": "global"}` or
/// `{"kind": "strategy", "strategy_id": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Scope {
    /// Every strategy.
    Global,
    /// One strategy.
    Strategy {
        /// The strategy.
        strategy_id: String,
    },
}

impl Scope {
    /// The scope of one strategy.
    pub fn strategy(id: impl Into<String>) -> Scope {
        Scope::Strategy {
            strategy_id: id.into(),
        }
    }

    /// The key form, `global` or `strategy:ID`: the Kafka key the guard writes
    /// commands and pause-state records under.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Parses the key form, `global` or `strategy:ID`.
    ///
    /// # Errors
    /// [`WireError::BadScopeKey`] for anything else.
    pub fn parse_key(text: &str) -> Result<Scope, WireError> {
        match text.split_once(':') {
            None if text == "global" => Ok(Scope::Global),
            Some(("strategy", id)) if !id.is_empty() => Ok(Scope::strategy(id)),
            _ => Err(WireError::BadScopeKey(text.to_owned())),
        }
    }
}

impl fmt::Display for Scope {
    /// `global` or `strategy:ID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Strategy { strategy_id } => write!(f, "strategy:{strategy_id}"),
        }
    }
}

/// A scope's mode (CONTRACT §2).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Trading as usual.
    #[default]
    Running,
    /// Only orders that reduce a position.
    ReduceOnly,
    /// No trading.
    Paused,
}

impl Mode {
    /// The wire name: `running`, `reduce_only` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Running => "running",
            Mode::ReduceOnly => "reduce_only",
            Mode::Paused => "paused",
        }
    }
}

/// What a guard command does: the scope's new mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// To `paused`.
    Pause,
    /// To `reduce_only`.
    ReduceOnly,
    /// To `running`.
    Resume,
}

impl Action {
    /// The mode the scope is in after the command.
    pub fn mode(self) -> Mode {
        match self {
            Action::Pause => Mode::Paused,
            Action::ReduceOnly => Mode::ReduceOnly,
            Action::Resume => Mode::Running,
        }
    }
}

/// A `guard_command` (CONTRACT §1.6), as far as the gate reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCommand {
    /// Deterministic: a repeat after a guard restart carries the same id.
    pub command_id: String,
    /// The scope's new mode.
    pub action: Action,
    /// The scope.
    pub scope: Scope,
    /// The rule that caused it (`slippage_window`, `operator`, ...); `unknown` when a
    /// command lacks it: the action and the scope are what a gateway must obey, and a
    /// pause must not be dropped for a missing label.
    #[serde(default = "unknown_rule")]
    pub rule: String,
    /// Event time of the trigger, as written.
    #[serde(default)]
    pub event_ts: Option<String>,
    /// When the guard decided it, as written.
    #[serde(default)]
    pub decided_at: Option<String>,
}

fn unknown_rule() -> String {
    "unknown".to_owned()
}

/// A `guard_pause_state` record (CONTRACT §1.8): one scope's present mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseState {
    /// The scope.
    pub scope: Scope,
    /// Its mode.
    pub mode: Mode,
    /// The rule names of the reasons it holds, sorted.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Since when, as written.
    #[serde(default)]
    pub since: Option<String>,
    /// The command that announced the mode: the same decision as that command.
    pub command_id: String,
    /// The guard's policy, as written.
    #[serde(default)]
    pub policy_version: Option<String>,
}

/// A `guard_heartbeat` (CONTRACT §1.8): the guard's sign of life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The guard instance that sent it.
    pub instance: String,
    /// When it was sent, as written (the gate times heartbeats by its own clock).
    #[serde(default)]
    pub ts: Option<String>,
    /// Whether that instance is the active guard: only an active guard's heartbeat
    /// keeps a gate open.
    pub active: bool,
    /// The guard's policy, as written.
    #[serde(default)]
    pub policy_version: Option<String>,
    /// How many scopes the guard has paused.
    #[serde(default)]
    pub paused_scopes: Option<u64>,
}

/// A `guard_ack` (CONTRACT §1.7): the gateway has the command in force. Published
/// keyed by `command_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardAck {
    /// The command.
    pub command_id: String,
    /// This gateway's name.
    pub gateway: String,
    /// When, UTC with milliseconds: `2025-08-11T00:09:30.120Z`.
    pub ts: String,
}

impl GuardAck {
    /// The JSON the gateway publishes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an ack serializes")
    }
}

/// A decode failure: the message is not what the contract says.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The payload is not JSON of the expected shape.
    #[error("{stream}: {source}")]
    Json {
        /// `guard_command`, `guard_pause_state` or `guard_heartbeat`.
        stream: &'static str,
        /// What serde found.
        source: serde_json::Error,
    },
    /// A scope key that is neither `global` nor `strategy:ID`.
    #[error("scope must be `global` or `strategy:ID`, not {0:?}")]
    BadScopeKey(String),
}

fn decode<'a, T: Deserialize<'a>>(stream: &'static str, bytes: &'a [u8]) -> Result<T, WireError> {
    serde_json::from_slice(bytes).map_err(|source| WireError::Json { stream, source })
}

impl GuardCommand {
    /// Decodes a `guard_command` payload.
    ///
    /// # Errors
    /// [`WireError::Json`] when a field the gate needs is missing or of the wrong type.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode("guard_command", bytes)
    }
}

impl PauseState {
    /// Decodes a `guard_pause_state` payload.
    ///
    /// # Errors
    /// [`WireError::Json`] when a field the gate needs is missing or of the wrong type.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode("guard_pause_state", bytes)
    }
}

impl Heartbeat {
    /// Decodes a `guard_heartbeat` payload.
    ///
    /// # Errors
    /// [`WireError::Json`] when a field the gate needs is missing or of the wrong type.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode("guard_heartbeat", bytes)
    }
}

/// Milliseconds since the Unix epoch as the contract writes times:
/// `2025-08-11T00:09:30.120Z` (UTC, three fractional digits, `Z`).
pub fn utc_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The wall clock in milliseconds since the Unix epoch (for the shell; the core is
/// given its times).
pub fn wall_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_command_with_fields_the_gate_does_not_know_decodes() {
        let text = br#"{"command_id":"cmd-916a5ec32e69bb6e202c3281110962fa","action":"pause","scope":{"kind":"global"},"rule":"slippage_window","trigger":"f-004","evidence":["f-002","f-003","f-004"],"reason":"3 fills ...","event_ts":"2025-08-11T00:09:30.000Z","decided_at":"2025-08-11T00:09:30.000Z","policy_version":"p-83158d3f4bdf","future":1}"#;
        let command = GuardCommand::decode(text).unwrap();
        assert_eq!(command.action, Action::Pause);
        assert_eq!(command.scope.key(), "global");
        assert_eq!(command.rule, "slippage_window");
    }

    #[test]
    fn a_command_without_a_rule_is_still_obeyed() {
        let command = GuardCommand::decode(
            br#"{"command_id":"c","action":"pause","scope":{"kind":"global"}}"#,
        )
        .unwrap();
        assert_eq!(command.action, Action::Pause);
        assert_eq!(command.rule, "unknown");
    }

    #[test]
    fn a_command_without_a_scope_is_refused_with_the_streams_name() {
        let error =
            GuardCommand::decode(br#"{"command_id":"c","action":"pause","rule":"r"}"#).unwrap_err();
        assert!(error.to_string().starts_with("guard_command: "), "{error}");
    }

    #[test]
    fn pause_state_and_heartbeat_records_decode() {
        let state = PauseState::decode(br#"{"scope":{"kind":"strategy","strategy_id":"alpha"},"mode":"reduce_only","reasons":["operator"],"since":"2025-08-11T00:09:30.000Z","command_id":"c1","policy_version":"p"}"#).unwrap();
        assert_eq!(state.scope.key(), "strategy:alpha");
        assert_eq!(state.mode, Mode::ReduceOnly);
        let beat = Heartbeat::decode(br#"{"instance":"g1","ts":"2025-08-11T00:09:30.000Z","active":false,"policy_version":"p","paused_scopes":2}"#).unwrap();
        assert!(!beat.active);
    }

    #[test]
    fn scope_keys_read_back() {
        for key in ["global", "strategy:alpha", "strategy:a:b"] {
            assert_eq!(Scope::parse_key(key).unwrap().key(), key);
        }
        assert!(Scope::parse_key("strategy:").is_err());
        assert!(Scope::parse_key("everything").is_err());
    }

    #[test]
    fn acks_are_stamped_utc_with_three_fractional_digits() {
        let ack = GuardAck {
            command_id: "c1".into(),
            gateway: "gw-1".into(),
            ts: utc_millis(1_754_870_970_120),
        };
        assert_eq!(
            ack.to_json(),
            r#"{"command_id":"c1","gateway":"gw-1","ts":"2025-08-11T00:09:30.120Z"}"#
        );
        assert_eq!(utc_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
