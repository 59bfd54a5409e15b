//! Acknowledgements (CONTRACT §2.10), `[acks]` in the policy: every command the guard
//! decides must be acknowledged (`guard_ack`) by every listed gateway before its
//! deadline — the guard's clock when it decided the command plus `timeout`. When the
//! clock reaches a deadline with gateways still missing, the guard raises a
//! `command_unacknowledged` risk event and forgets the command.
//!
//! Not a rule in the registry's sense: it adds no reason and sends no command. The
//! engine hands it every command decided ([`Acks::register`]), every ack
//! ([`Acks::on_ack`]) and every move of the clock ([`Acks::on_clock`], after the
//! maintenance windows).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::engine::decide::{Decide, Trigger};
use crate::message::{Action, GuardAck, Scope, Severity};
use crate::policy::{Reader, Section};
use crate::time::{human_span, Span, Timestamp};

/// Most commands awaiting acknowledgement; past it the one due first is escalated at
/// once (its deadline as the event's time), so the state stays bounded even when the
/// clock stands still.
pub const MAX_PENDING: usize = 10_000;

/// `[acks]` (CONTRACT §2.10): off while `gateways` is empty.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AcksPolicy {
    /// The gateways that must acknowledge every command, sorted.
    pub gateways: Vec<String>,
    /// How long after its decision a command must be acknowledged.
    pub timeout: Span,
}

impl Default for AcksPolicy {
    fn default() -> Self {
        AcksPolicy {
            gateways: Vec::new(),
            timeout: Span::from_secs(2),
        }
    }
}

impl Section for AcksPolicy {
    fn key(&self) -> &'static str {
        "acks"
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        let Some(t) = r.table(value, "acks") else {
            return;
        };
        r.keys(t, "acks.", &["gateways", "timeout"]);
        r.span(t, "acks.timeout", &mut self.timeout);
        let Some(list) = t.get("gateways") else {
            return;
        };
        let names: Option<Vec<String>> = list.as_array().and_then(|items| {
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_owned)
                })
                .collect()
        });
        match names {
            Some(mut names) => {
                names.sort();
                names.dedup();
                self.gateways = names;
            }
            None => r.problem(
                "acks.gateways",
                "must be a list of gateway names (non-empty strings)",
            ),
        }
    }
}

/// A command awaiting acknowledgements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The guard's clock when it decided the command, plus the timeout.
    pub deadline: Timestamp,
    /// The order the commands were decided in (ties of deadlines).
    pub seq: u64,
    /// The command's action and scope.
    pub action: Action,
    /// The command's scope.
    pub scope: Scope,
    /// The gateways that have not acknowledged it yet.
    pub missing: BTreeSet<String>,
}

/// The commands awaiting acknowledgements, by command id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acks {
    pending: BTreeMap<String, Pending>,
    /// Commands registered so far: the next one's `seq`.
    decided: u64,
}

impl Acks {
    /// Whether no command is awaited (a snapshot then leaves this out).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.decided == 0
    }

    /// Notes `commands` (id, action, scope), decided at `clock`, as awaiting every
    /// listed gateway.
    pub fn register(
        &mut self,
        policy: &AcksPolicy,
        commands: Vec<(String, Action, Scope)>,
        clock: Timestamp,
        decide: &mut Decide<'_>,
    ) {
        if policy.gateways.is_empty() {
            return;
        }
        for (id, action, scope) in commands {
            self.decided += 1;
            let pending = Pending {
                deadline: clock.plus(policy.timeout),
                seq: self.decided,
                action,
                scope,
                missing: policy.gateways.iter().cloned().collect(),
            };
            self.pending.insert(id, pending);
        }
        while self.pending.len() > MAX_PENDING {
            let Some(first) = self.due(None).into_iter().next() else {
                break;
            };
            self.escalate(policy, &first, decide);
        }
    }

    /// An acknowledgement: a listed gateway leaves the command's missing set; the
    /// command is forgotten once none is missing.
    pub fn on_ack(&mut self, ack: &GuardAck) {
        let Some(pending) = self.pending.get_mut(&ack.command_id) else {
            return;
        };
        pending.missing.remove(&ack.gateway);
        if pending.missing.is_empty() {
            self.pending.remove(&ack.command_id);
        }
    }

    /// The clock moved to `now`: every command whose deadline it reached is escalated,
    /// in deadline order (ties: the order they were decided).
    pub fn on_clock(&mut self, policy: &AcksPolicy, now: Timestamp, decide: &mut Decide<'_>) {
        for id in self.due(Some(now)) {
            self.escalate(policy, &id, decide);
        }
    }

    /// The ids of the commands due at `now` (every one when `None`), in escalation
    /// order.
    fn due(&self, now: Option<Timestamp>) -> Vec<String> {
        let mut due: Vec<(&String, &Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.is_none_or(|now| p.deadline <= now))
            .collect();
        due.sort_by_key(|(_, p)| (p.deadline, p.seq));
        due.into_iter().map(|(id, _)| id.clone()).collect()
    }

    fn escalate(&mut self, policy: &AcksPolicy, id: &str, decide: &mut Decide<'_>) {
        let Some(p) = self.pending.remove(id) else {
            return;
        };
        let severity = match p.action {
            Action::Resume => Severity::Warning,
            Action::Pause | Action::ReduceOnly => Severity::Critical,
        };
        let missing: Vec<&str> = p.missing.iter().map(String::as_str).collect();
        let trigger = Trigger {
            id,
            event_ts: p.deadline,
            evidence: vec![id.to_owned()],
            reason: format!(
                "command {id} ({} {}) not acknowledged within {} by {}",
                p.action.as_str(),
                p.scope,
                human_span(policy.timeout),
                missing.join(", ")
            ),
        };
        decide.event("command_unacknowledged", severity, p.scope, trigger);
    }

    /// Adds the awaited commands to the `/state` document.
    pub fn view(&self, out: &mut Map<String, Value>) {
        if self.pending.is_empty() {
            return;
        }
        let pending: Vec<Value> = self
            .pending
            .iter()
            .map(|(id, p)| {
                json!({"command_id": id, "action": p.action, "scope": p.scope, "deadline": p.deadline, "missing": p.missing})
            })
            .collect();
        out.insert("acks_pending".into(), Value::Array(pending));
    }
}
