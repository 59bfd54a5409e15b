//! The explanations the guard keeps of its decisions ([`crate::live::casebook`]): one
//! per decision, made by the step that decided and kept in the status for
//! `GET /explain/ID`. Only the instance that decides keeps them (a worker's trips are
//! decided again by the aggregator).

use crate::replay::explain::{Place, StepView};

use super::*;

impl<S: Store> LiveGuard<S> {
    /// Stamps the step's commands with the wall-clock time of the decision (as they
    /// are published), keeps a case of every decision of the step at `place` (a
    /// message, or a tick of the clock), then remembers the scopes it left: the next
    /// step's "before".
    pub(super) fn keep_cases(
        &mut self,
        place: Place,
        input: Option<&Input>,
        decisions: &mut [Decision],
    ) {
        stamp(decisions);
        if !decisions.is_empty() && self.config.role != Role::Worker {
            let view = StepView {
                place,
                input,
                decisions,
            };
            self.status
                .cases()
                .record(&view, &self.case_scopes, &self.engine);
        }
        let scopes = &self.engine.state().scopes;
        if decisions.is_empty() {
            // Rare (an order, a risk event, a tick that changed nothing visible): an
            // order may still have added a reason to a scope in the same mode.
            if *scopes != self.case_scopes {
                self.case_scopes = scopes.clone();
            }
        } else {
            // A trip always decides something about its scope: only those changed.
            for decision in decisions.iter() {
                self.case_scopes.copy_scope(scopes, decision.scope());
            }
        }
    }

    /// Forgets the cases older than the state's horizon at `now`.
    pub(super) fn forget_cases(&mut self, now: Timestamp) {
        let cutoff = now.minus(self.engine.policy().state.horizon);
        self.status.cases().forget(cutoff);
    }
}

/// Sets `decided_at` of every command to now: when the live guard decided it.
pub(super) fn stamp(decisions: &mut [Decision]) {
    let now = Timestamp::now();
    for decision in decisions {
        if let Decision::GuardCommand(command) = decision {
            command.decided_at = now;
        }
    }
}

/// The place of a message of an input topic.
pub(super) fn topic_place(topic: &str, partition: i32, offset: i64) -> Place {
    Place::Topic {
        topic: topic.to_owned(),
        partition,
        offset,
    }
}
