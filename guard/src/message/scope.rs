//! What a pause applies to (CONTRACT §1.5).

use std::fmt;

use serde::{Deserialize, Serialize};

/// `{"kind": "global"}` or `{"kind": "strategy", "strategy_id": "..."}`.
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

    /// The strategy of a strategy scope.
    pub fn strategy_id(&self) -> Option<&str> {
        match self {
            Scope::Global => None,
            Scope::Strategy { strategy_id } => Some(strategy_id),
        }
    }

    /// Parses the command-line form: `global` or `strategy:ID`.
    ///
    /// # Errors
    /// A message saying which forms are allowed.
    pub fn parse_cli(text: &str) -> Result<Scope, String> {
        match text.split_once(':') {
            None if text == "global" => Ok(Scope::Global),
            Some(("strategy", id)) if !id.is_empty() => Ok(Scope::strategy(id)),
            _ => Err(format!(
                "scope must be `global` or `strategy:ID`, not {text:?}"
            )),
        }
    }
}

impl fmt::Display for Scope {
    /// `global` or `strategy:ID`, the form used as Kafka key and on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Strategy { strategy_id } => write!(f, "strategy:{strategy_id}"),
        }
    }
}
