//! Effects of reasons and modes of scopes (CONTRACT §2, version 2).

use serde::{Deserialize, Serialize};

use super::{Action, RiskAction};

/// What a reason does to its scope (CONTRACT §2): every rule that adds a reason has
/// an `action` key that sets it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// No trading at all.
    #[default]
    Pause,
    /// Only orders that reduce a position.
    ReduceOnly,
}

impl Effect {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Pause => "pause",
            Effect::ReduceOnly => "reduce_only",
        }
    }

    /// The `action` of the risk event of a trip that adds a reason with this effect.
    pub fn risk_action(self) -> RiskAction {
        match self {
            Effect::Pause => RiskAction::Pause,
            Effect::ReduceOnly => RiskAction::ReduceOnly,
        }
    }
}

/// A scope's mode (CONTRACT §2): `paused` while it holds a reason with effect
/// `pause`, else `reduce_only` while it holds one with effect `reduce_only`, else
/// `running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Trading as usual.
    Running,
    /// Only orders that reduce a position.
    ReduceOnly,
    /// No trading.
    Paused,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Running => "running",
            Mode::ReduceOnly => "reduce_only",
            Mode::Paused => "paused",
        }
    }

    /// The command that announces a change to this mode.
    pub fn action(self) -> Action {
        match self {
            Mode::Running => Action::Resume,
            Mode::ReduceOnly => Action::ReduceOnly,
            Mode::Paused => Action::Pause,
        }
    }
}
