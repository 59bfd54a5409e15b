//! Operators' orders (CONTRACT §2.4): `pause` (or `reduce_only`) adds the reason
//! `operator` with that effect to the scope; `resume` clears every reason of the scope. What a resume makes the other
//! rules forget is theirs to say ([`GuardRule::reset`]); the registry resets them
//! before this rule resumes the scope. No policy section, no state.

use super::{detail, GuardRule};
use crate::engine::decide::{Decide, Trigger};
use crate::message::{Action, Effect, OpsCommand, Rule};

/// The rule for operators' orders (`guard pause`, `guard resume`, the GUI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperatorOrders;

impl GuardRule for OperatorOrders {
    type Policy = ();
    const RULE: Rule = Rule::Operator;

    fn on_ops(&mut self, _policy: &(), command: &OpsCommand, decide: &mut Decide<'_>) {
        let did = match command.action {
            Action::Pause => "paused",
            Action::ReduceOnly => "set reduce-only on",
            Action::Resume => "resumed",
        };
        let reason = format!(
            "operator {} {did} {}{}",
            command.operator,
            command.scope,
            detail(command.reason.as_deref())
        );
        let trigger = Trigger::message(&command.command_id, command.ts, reason);
        match command.action {
            Action::Pause => decide.pause(Rule::Operator, &command.scope, &trigger),
            Action::ReduceOnly => {
                decide.hold(Rule::Operator, Effect::ReduceOnly, &command.scope, &trigger);
            }
            Action::Resume => decide.resume(Rule::Operator, &command.scope, &trigger),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{ops, t, Given};
    use crate::message::Scope;

    #[test]
    fn an_operators_pause_pauses_the_scope_with_the_order_as_evidence() {
        let mut g = Given::<OperatorOrders>::policy(());
        let order = ops("o1", Action::Pause, Scope::strategy("alpha"), t(0.0));
        assert_eq!(g.ops(order), ["pause strategy:alpha operator o1 [o1]"]);
        assert_eq!(
            g.last_command().reason,
            "operator tanaka paused strategy:alpha: test"
        );
    }

    #[test]
    fn a_resume_clears_every_reason_of_the_scope() {
        // Given the global scope paused by a rule and by an operator
        let mut g = Given::<OperatorOrders>::policy(());
        let trip = Trigger::message("f1", t(0.0), "trip".into());
        g.judge(|_, _, decide| decide.pause(Rule::LosingStreak, &Scope::Global, &trip));
        g.ops(ops("o1", Action::Pause, Scope::Global, t(1.0)));
        // When an operator resumes it
        let decided = g.ops(ops("o2", Action::Resume, Scope::Global, t(2.0)));
        // Then one resume command clears both reasons
        assert_eq!(decided, ["resume global operator o2 [o2]"]);
        assert!(!g.paused(&Scope::Global));
    }

    #[test]
    fn a_resume_of_a_running_scope_decides_nothing() {
        let mut g = Given::<OperatorOrders>::policy(());
        assert!(g
            .ops(ops("o1", Action::Resume, Scope::Global, t(0.0)))
            .is_empty());
    }

    #[test]
    fn a_pause_of_a_paused_scope_decides_nothing_more() {
        let mut g = Given::<OperatorOrders>::policy(());
        g.ops(ops("o1", Action::Pause, Scope::Global, t(0.0)));
        assert!(g
            .ops(ops("o2", Action::Pause, Scope::Global, t(1.0)))
            .is_empty());
    }

    #[test]
    fn a_worker_decides_nothing_for_an_operators_order() {
        let mut g = Given::<OperatorOrders>::policy(()).on_a_worker();
        assert!(g
            .ops(ops("o1", Action::Pause, Scope::Global, t(0.0)))
            .is_empty());
        assert!(g
            .ops(ops("o2", Action::Resume, Scope::Global, t(1.0)))
            .is_empty());
    }
}
