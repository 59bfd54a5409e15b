//! Deterministic ids for the guard's commands and risk events (CONTRACT §1.6).
//!
//! An id is a SHA-256 over the fields that make a decision unique, so the same input
//! history always yields the same id, whichever machine or restart produced it, and a
//! consumer can drop a re-published command as a duplicate. `decided_at` and the policy
//! version are left out on purpose: they do not change what was decided.

use sha2::{Digest, Sha256};

use crate::message::{Action, Rule, Scope};
use crate::time::Timestamp;

fn digest(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        // A separator that cannot occur in JSON-decoded ids keeps "a","bc" apart from "ab","c".
        hasher.update([0x1f]);
    }
    let bytes = hasher.finalize();
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    for b in &bytes[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The id of a guard command: action, scope, rule, trigger and the trigger's event time
/// (a maintenance window fires with the same trigger name every week).
pub fn command_id(
    action: Action,
    scope: &Scope,
    rule: Rule,
    trigger: &str,
    event_ts: Timestamp,
) -> String {
    digest(
        "cmd-",
        &[
            action.as_str(),
            &scope.to_string(),
            rule.as_str(),
            trigger,
            &event_ts.as_micros().to_string(),
        ],
    )
}

/// The id of a risk event raised by the guard: its kind, scope and trigger.
pub fn event_id(kind: &str, scope: &Scope, trigger: &str) -> String {
    digest("evt-", &[kind, &scope.to_string(), trigger])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinguish_their_fields() {
        let t = Timestamp::from_millis(1);
        let a = command_id(Action::Pause, &Scope::Global, Rule::SlippageWindow, "f1", t);
        assert_eq!(
            a,
            command_id(Action::Pause, &Scope::Global, Rule::SlippageWindow, "f1", t)
        );
        assert_ne!(
            a,
            command_id(
                Action::Resume,
                &Scope::Global,
                Rule::SlippageWindow,
                "f1",
                t
            )
        );
        assert_ne!(
            a,
            command_id(
                Action::Pause,
                &Scope::Global,
                Rule::SlippageWindow,
                "f1",
                Timestamp::from_millis(2)
            )
        );
        assert!(a.starts_with("cmd-") && a.len() == 36);
    }
}
