//! The explanation the live guard keeps of each decision it makes (see
//! `live::casebook`): everything the deciding step settles at once — the decision,
//! the step's message and its place in a topic, the trigger, the scope before and
//! after, the step's other decisions with the same trigger, what to do — with the
//! evidence that is an earlier message named only by its id, looked up in the input
//! topics when somebody asks (the guard does not keep every message it applies).

use std::cell::OnceCell;
use std::sync::Arc;

use crate::engine::{Engine, Held};
use crate::message::{Decision, Input};
use crate::time::Timestamp;

use super::cite::{input_source_as, message_json, window_resume, Message};
use super::watch::{input_id, same_trigger_at, trigger_of};
use super::{
    evidence_of, policy_version, Act, Cited, Explanation, Place, ScopeState, Source, StepPlace,
};

/// The step that made some decisions: where it is, its message (none for a tick of
/// the clock) and every decision it made, in order.
pub struct StepView<'a> {
    /// Where the step's message is, or the clock's tick.
    pub place: Place,
    /// The message applied.
    pub input: Option<&'a Input>,
    /// Everything the step decided.
    pub decisions: &'a [Decision],
}

/// What the cases of one step share, kept once: its decisions (a trip's command and
/// risk event each name the other) and its message as JSON (the trigger of both).
pub struct StepShared {
    /// The step's decisions, in order.
    pub decisions: Vec<Arc<Decision>>,
    message: OnceCell<Message>,
}

impl StepShared {
    /// Nothing shared yet but the step's decisions.
    pub fn of(step: &StepView<'_>) -> StepShared {
        StepShared {
            decisions: step.decisions.iter().cloned().map(Arc::new).collect(),
            message: OnceCell::new(),
        }
    }

    /// The step's message as JSON, made the first time a case asks.
    fn message(&self, input: &Input) -> Message {
        self.message.get_or_init(|| message_json(input)).clone()
    }
}

/// One decision's explanation as its step left it.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The explanation; trigger and evidence not yet found are [`Source::Missing`],
    /// and the next command is filled in when one is made.
    pub explanation: Explanation,
    /// The ids of the trigger and evidence still to look up in the input topics.
    pub unresolved: Vec<String>,
    /// The decision's event time (the case is forgotten with the state's horizon).
    pub event_time: Timestamp,
}

impl Case {
    /// The case of `step.decisions[i]`, given what the step's cases share, its scope
    /// as it was `before` the step, the `engine` after it, and `known`: where ids
    /// decided earlier come from (the guard's own earlier decisions).
    pub fn of(
        step: &StepView<'_>,
        shared: &StepShared,
        i: usize,
        before: Option<&Held>,
        engine: &Engine,
        known: &dyn Fn(&str) -> Option<Source>,
    ) -> Case {
        let decision = &step.decisions[i];
        let scope = decision.scope().clone();
        let input_id = step.input.and_then(input_id);
        let trigger = trigger_of(decision, input_id, step.decisions);
        let same = match &trigger {
            Some(t) => same_trigger_at(decision, t, step.decisions)
                .map(|j| Arc::clone(&shared.decisions[j]))
                .collect(),
            None => Vec::new(),
        };
        let mut unresolved = Vec::new();
        let mut cite = |id: &str| {
            let source = cite(id, decision, (step, shared), engine, known);
            if source == Source::Missing && !unresolved.iter().any(|u| u == id) {
                unresolved.push(id.to_owned());
            }
            Cited {
                id: id.to_owned(),
                source,
            }
        };
        let trigger = trigger.as_deref().map(&mut cite);
        let evidence = evidence_of(decision).iter().map(|id| cite(id)).collect();
        let after = ScopeState::of(engine.state().scopes.get(&scope));
        let act = Act::new(decision, &after, window_resume(decision, engine));
        Case {
            explanation: Explanation {
                id: decision.id().to_owned(),
                decision: Arc::clone(&shared.decisions[i]),
                policy_version: policy_version(decision, engine),
                step: StepPlace {
                    place: step.place.clone(),
                    stream: step.input.map(Input::stream),
                    id: input_id.map(str::to_owned),
                },
                trigger,
                evidence,
                scope,
                before: ScopeState::of(before),
                after,
                same_trigger: same,
                next_command: None,
                at_end: None,
                act,
            },
            unresolved,
            event_time: event_time(decision),
        }
    }

    /// Says where `id` comes from, in the trigger and wherever the evidence names it.
    pub fn resolve(&mut self, id: &str, source: &Source) {
        let x = &mut self.explanation;
        for cited in x.trigger.iter_mut().chain(x.evidence.iter_mut()) {
            if cited.id == id {
                cited.source = source.clone();
            }
        }
        self.unresolved.retain(|u| u != id);
    }
}

/// The event time a decision carries.
pub fn event_time(decision: &Decision) -> Timestamp {
    match decision {
        Decision::GuardCommand(c) => c.event_ts,
        Decision::RiskEvent(e) => e.ts,
    }
}

/// Where `id` comes from, as far as the step and the guard's earlier decisions tell.
fn cite(
    id: &str,
    decision: &Decision,
    (step, shared): (&StepView<'_>, &StepShared),
    engine: &Engine,
    known: &dyn Fn(&str) -> Option<Source>,
) -> Source {
    if let Some(input) = step.input.filter(|i| input_id(i) == Some(id)) {
        return input_source_as(decision, step.place.clone(), input, shared.message(input));
    }
    if let Some(earlier) = step.decisions.iter().position(|d| d.id() == id) {
        return Source::Guard {
            place: step.place.clone(),
            decision: Arc::clone(&shared.decisions[earlier]),
        };
    }
    if let Some(source) = known(id) {
        return source;
    }
    match (window_resume(decision, engine), decision) {
        (Some(resume), Decision::GuardCommand(c)) if c.trigger == id => {
            Source::MaintenanceWindow { resume }
        }
        _ => Source::Missing,
    }
}
