//! What a rule can do to the world: add or remove a reason of a scope (and so change
//! its mode), resume it, and raise its risk event.
//!
//! A rule never touches the scopes or the output list itself. It hands a [`Decide`]
//! its verdicts; `Decide` keeps the scope book (CONTRACT §2, first paragraph), turns
//! each transition into a command, and appends commands and risk events in the order
//! they were decided. A worker of a scaled-out guard keeps no scopes
//! ([`Role::Worker`]): there a pause or resume changes nothing and a trip yields only
//! its risk event, which the aggregator turns into the command.

use crate::message::{
    Action, Decision, Effect, GuardCommand, RiskAction, RiskEvent, Rule, Scope, Severity,
};
use crate::time::Timestamp;

use super::{ids, Role, ScopeBook};

/// What caused a decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger<'a> {
    /// The id of the message that caused it (or a maintenance window's name).
    pub id: &'a str,
    /// Its event time.
    pub event_ts: Timestamp,
    /// The ids of every message the decision rests on.
    pub evidence: Vec<String>,
    /// Human text.
    pub reason: String,
}

impl<'a> Trigger<'a> {
    /// A decision that rests on one input message alone.
    pub fn message(id: &'a str, event_ts: Timestamp, reason: String) -> Self {
        Trigger {
            id,
            event_ts,
            evidence: vec![id.to_owned()],
            reason,
        }
    }
}

/// The scopes and the decisions of one message, as the rules see them.
pub struct Decide<'a> {
    scopes: &'a mut ScopeBook,
    arrivals: &'a mut u64,
    out: &'a mut Vec<Decision>,
    role: Role,
    source: &'a str,
    policy_version: &'a str,
    warnings: bool,
}

impl<'a> Decide<'a> {
    /// Decisions of an engine with these parts appended to `out`.
    pub(crate) fn new(
        scopes: &'a mut ScopeBook,
        arrivals: &'a mut u64,
        out: &'a mut Vec<Decision>,
        role: Role,
        source: &'a str,
        policy_version: &'a str,
        warnings: bool,
    ) -> Self {
        Decide {
            scopes,
            arrivals,
            out,
            role,
            source,
            policy_version,
            warnings,
        }
    }

    /// The next number of the engine's arrival count: rules that keep what arrives
    /// sorted by event time number it, so equal times keep their arrival order.
    pub fn next_arrival(&mut self) -> u64 {
        *self.arrivals += 1;
        *self.arrivals
    }

    /// A rule tripped: add its reason with `effect` to `scope` (a command only on a
    /// change of mode), then raise the risk event that records the incident, whose
    /// `action` is that effect.
    pub fn trip(&mut self, rule: Rule, effect: Effect, scope: Scope, trigger: Trigger<'_>) {
        self.hold(rule, effect, &scope, &trigger);
        let action = effect.risk_action();
        self.raise(rule.as_str(), Severity::Critical, action, scope, trigger);
    }

    /// Whether warnings are on (`[warnings] enabled`): a rule keeps no warning memory
    /// while they are off.
    pub fn warnings(&self) -> bool {
        self.warnings
    }

    /// A rule is one step from tripping (CONTRACT §2.7): its warning, a risk event of
    /// kind `RULE_warning`, severity `warning`, action `none`, scoped like the trip it
    /// announces. Changes no scope; nothing while warnings are off.
    pub fn warn(&mut self, rule: Rule, scope: Scope, trigger: Trigger<'_>) {
        if !self.warnings {
            return;
        }
        let kind = format!("{}_warning", rule.as_str());
        self.event(&kind, Severity::Warning, scope, trigger);
    }

    /// A risk event of the guard's own that asks for nothing (action `none`): a
    /// warning, or an escalation such as `command_unacknowledged`.
    pub fn event(&mut self, kind: &str, severity: Severity, scope: Scope, trigger: Trigger<'_>) {
        self.raise(kind, severity, RiskAction::None, scope, trigger);
    }

    /// The guard's own risk event: its id derived from kind, scope and trigger.
    fn raise(
        &mut self,
        kind: &str,
        severity: Severity,
        action: RiskAction,
        scope: Scope,
        trigger: Trigger<'_>,
    ) {
        self.out.push(Decision::RiskEvent(RiskEvent {
            event_id: ids::event_id(kind, &scope, trigger.id),
            source: self.source.to_owned(),
            kind: kind.to_owned(),
            severity,
            scope,
            action: Some(action),
            reason: Some(trigger.reason),
            evidence: Some(trigger.evidence),
            ts: trigger.event_ts,
        }));
    }

    /// Adds the reason (`rule`, `effect`) to `scope`; a command when that changed the
    /// scope's mode.
    pub fn hold(&mut self, rule: Rule, effect: Effect, scope: &Scope, trigger: &Trigger<'_>) {
        if self.role == Role::Worker {
            return;
        }
        if let Some(mode) = self.scopes.add(scope, rule, effect, trigger.event_ts) {
            self.command(mode.action(), scope, rule, trigger);
        }
    }

    /// Adds the reason `rule` with effect `pause` to `scope`.
    pub fn pause(&mut self, rule: Rule, scope: &Scope, trigger: &Trigger<'_>) {
        self.hold(rule, Effect::Pause, scope, trigger);
    }

    /// Removes the reason (`rule`, `effect`) from `scope`; a command when that changed
    /// the scope's mode.
    pub fn lift(&mut self, rule: Rule, effect: Effect, scope: &Scope, trigger: &Trigger<'_>) {
        if self.role == Role::Worker {
            return;
        }
        if let Some(mode) = self.scopes.remove(scope, rule, effect, trigger.event_ts) {
            self.command(mode.action(), scope, rule, trigger);
        }
    }

    /// Clears every reason of `scope`; a command (caused by `rule`) when it was not
    /// running.
    pub fn resume(&mut self, rule: Rule, scope: &Scope, trigger: &Trigger<'_>) {
        if self.role != Role::Worker && self.scopes.clear(scope).is_some() {
            self.command(Action::Resume, scope, rule, trigger);
        }
    }

    fn command(&mut self, action: Action, scope: &Scope, rule: Rule, trigger: &Trigger<'_>) {
        self.out.push(Decision::GuardCommand(GuardCommand {
            command_id: ids::command_id(action, scope, rule, trigger.id, trigger.event_ts),
            action,
            scope: scope.clone(),
            rule,
            trigger: trigger.id.to_owned(),
            evidence: trigger.evidence.clone(),
            reason: trigger.reason.clone(),
            event_ts: trigger.event_ts,
            decided_at: trigger.event_ts,
            policy_version: self.policy_version.to_owned(),
        }));
    }
}
