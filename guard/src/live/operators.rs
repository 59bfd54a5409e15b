//! Who may give the guard orders over HTTP (`/ops/*`): per-operator tokens.
//!
//! The tokens file (`--ops-tokens FILE`, TOML) names every operator, the SHA-256 of
//! their token (never the token itself) and a role:
//!
//! ```toml
//! [[operator]]
//! name = "tanaka"
//! token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! role = "operator"        # may pause, reduce-only and resume
//!
//! [[operator]]
//! name = "audit-bot"
//! token_sha256 = "…"
//! role = "viewer"          # may read; every order is refused
//! ```
//!
//! The `operator` of the `ops_command` an order publishes is the name its token
//! belongs to, never what the request body claims. The file is read at start and
//! again on SIGHUP; a file that does not read keeps the operators in force.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::http::constant_time_eq;

/// What an operator may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Pause, reduce-only and resume.
    Operator,
    /// Read only: every order is refused.
    Viewer,
}

/// One operator of the tokens file.
#[derive(Clone, Debug)]
pub struct Operator {
    /// Who: the `operator` of every order they give.
    pub name: String,
    /// What they may do.
    pub role: Role,
    hash: [u8; 32],
}

/// Every operator of a tokens file.
#[derive(Clone, Debug, Default)]
pub struct Operators {
    operators: Vec<Operator>,
}

/// A tokens file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the ops tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("ops tokens file {path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the entry.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    operator: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token_sha256: String,
    role: Role,
}

impl Operators {
    /// Reads a tokens file.
    ///
    /// # Errors
    /// [`TokensError`] when it cannot be read, is not TOML of the form above, names an
    /// operator twice, lists a hash twice, or has an empty or `unknown` name or a hash
    /// that is not 64 hex digits.
    pub fn load(path: &Path) -> Result<Operators, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Operators::parse(&text).map_err(|why| TokensError::Invalid {
            path: path.display().to_string(),
            why,
        })
    }

    /// Reads the text of a tokens file; the error says which entry is wrong.
    ///
    /// # Errors
    /// What is wrong, as text.
    pub fn parse(text: &str) -> Result<Operators, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut operators: Vec<Operator> = Vec::new();
        for (i, entry) in file.operator.into_iter().enumerate() {
            let at = format!("operator #{}", i + 1);
            let name = entry.name.trim().to_owned();
            if name.is_empty() || name == "unknown" {
                return Err(format!(
                    "{at}: name must name someone (not empty, not \"unknown\")"
                ));
            }
            let hash = parse_hash(&entry.token_sha256)
                .ok_or_else(|| format!("{at} ({name}): token_sha256 must be 64 hex digits"))?;
            if operators.iter().any(|o| o.name == name) {
                return Err(format!("{at}: {name} is listed twice"));
            }
            if operators.iter().any(|o| o.hash == hash) {
                return Err(format!("{at} ({name}): the same token as another operator"));
            }
            operators.push(Operator {
                name,
                role: entry.role,
                hash,
            });
        }
        if operators.is_empty() {
            return Err("no [[operator]] entry: nobody could give an order".into());
        }
        Ok(Operators { operators })
    }

    /// The operator a presented token belongs to. Every entry is compared, in time
    /// independent of where a hash differs.
    pub fn identify(&self, token: &str) -> Option<&Operator> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for operator in &self.operators {
            if constant_time_eq(&operator.hash, &presented) {
                found = Some(operator);
            }
        }
        found
    }

    /// How many operators are listed.
    pub fn len(&self) -> usize {
        self.operators.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn file(entries: &[(&str, &str, &str)]) -> String {
        entries
            .iter()
            .map(|(name, token, role)| {
                format!(
                    "[[operator]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nrole = \"{role}\"\n",
                    sha(token)
                )
            })
            .collect()
    }

    #[test]
    fn a_token_identifies_its_operator_and_role() {
        let ops = Operators::parse(&file(&[
            ("tanaka", "t-secret", "operator"),
            ("audit", "a-secret", "viewer"),
        ]))
        .unwrap();
        assert_eq!(ops.len(), 2);
        let tanaka = ops.identify("t-secret").unwrap();
        assert_eq!(
            (tanaka.name.as_str(), tanaka.role),
            ("tanaka", Role::Operator)
        );
        assert_eq!(ops.identify("a-secret").unwrap().role, Role::Viewer);
        assert!(ops.identify("t-secre").is_none());
        assert!(ops.identify("").is_none());
    }

    #[test]
    fn a_file_that_would_blur_who_did_it_is_refused() {
        let twice = file(&[("tanaka", "a", "operator"), ("tanaka", "b", "operator")]);
        assert!(Operators::parse(&twice)
            .unwrap_err()
            .contains("listed twice"));
        let shared = file(&[("tanaka", "a", "operator"), ("sato", "a", "operator")]);
        assert!(Operators::parse(&shared)
            .unwrap_err()
            .contains("same token"));
        let unknown = file(&[("unknown", "a", "operator")]);
        assert!(Operators::parse(&unknown)
            .unwrap_err()
            .contains("name must name"));
        let bad_role = file(&[("tanaka", "a", "admin")]);
        assert!(Operators::parse(&bad_role).is_err());
        let short = "[[operator]]\nname = \"x\"\ntoken_sha256 = \"abcd\"\nrole = \"operator\"\n";
        assert!(Operators::parse(short)
            .unwrap_err()
            .contains("64 hex digits"));
        assert!(Operators::parse("").unwrap_err().contains("nobody"));
        let extra = format!("{}extra = 1\n", file(&[("tanaka", "a", "operator")]));
        assert!(Operators::parse(&extra).is_err());
    }
}
