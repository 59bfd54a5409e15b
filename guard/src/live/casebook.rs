//! What the live guard keeps to explain its recent decisions (`GET /explain/ID`,
//! `guard explain ID --http URL`): one [`Case`] per decision, made by the step that
//! decided, linked to the next command of its scope when that is made.
//!
//! Bounded twice: a case is forgotten once its decision is older than the state's
//! horizon (the guard keeps no evidence longer either), and the oldest go first
//! beyond `capacity` cases. Cases live in memory only: after a restart or a takeover
//! the guard explains what it decided since; `guard explain --input` explains
//! anything over recorded streams (docs/OPERATIONS.md).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::engine::{Engine, ScopeBook};
use crate::message::{Decision, Scope};
use crate::replay::explain::{Case, Later, ScopeState, Source, StepShared, StepView};
use crate::time::Timestamp;

/// The decisions the guard can explain, by id.
#[derive(Debug)]
pub struct Casebook {
    /// Boxed: a case inline made a slot of ~640 bytes, and the table keeps up to
    /// about twice as many slots as cases (1.3 of the 3.1 KB a kept case cost,
    /// `tests/casebook_memory.rs`).
    cases: HashMap<String, Box<Case>>,
    /// Ids in the order they were recorded (oldest first).
    order: VecDeque<String>,
    /// Per scope, the cases still waiting for the scope's next command.
    waiting: HashMap<Scope, Vec<String>>,
    /// Each scope of a kept case as its latest decision left it, with how many kept
    /// cases are of that scope (a scope goes with its last case: strategies come and
    /// go, and the casebook must not grow with every scope ever decided).
    now: HashMap<Scope, (ScopeState, usize)>,
    capacity: usize,
}

/// What is known of an id the guard cannot explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    /// How many decisions it can explain.
    pub kept: usize,
    /// The oldest decision's event time.
    pub oldest: Option<Timestamp>,
    /// Kept ids that look like the one asked for.
    pub nearest: Vec<String>,
}

impl Casebook {
    /// An empty casebook of at most `capacity` cases.
    pub fn new(capacity: usize) -> Casebook {
        Casebook {
            cases: HashMap::new(),
            order: VecDeque::new(),
            waiting: HashMap::new(),
            now: HashMap::new(),
            capacity,
        }
    }

    /// Records every decision of `step`, given the scopes `before` it and the engine
    /// after it. A decision already recorded (decided again after a restart, with the
    /// same id) keeps its first case.
    ///
    /// The cases of one step share its decisions and its message ([`StepShared`]):
    /// a trip's command and risk event each cite the other and the same fill.
    pub fn record(&mut self, step: &StepView<'_>, before: &ScopeBook, engine: &Engine) {
        let shared = StepShared::of(step);
        for (i, decision) in step.decisions.iter().enumerate() {
            if let Decision::GuardCommand(command) = decision {
                self.link_next(&command.scope, step, &shared.decisions[i]);
            }
            if self.cases.contains_key(decision.id()) {
                continue;
            }
            let known = |id: &str| {
                self.cases.get(id).map(|c| Source::Guard {
                    place: c.explanation.step.place.clone(),
                    decision: c.explanation.decision.clone(),
                })
            };
            let scope = decision.scope();
            let case = Case::of(step, &shared, i, before.get(scope), engine, &known);
            match self.now.get_mut(scope) {
                Some(now) => {
                    now.0.clone_from(&case.explanation.after);
                    now.1 += 1;
                }
                None => {
                    self.now
                        .insert(scope.clone(), (case.explanation.after.clone(), 1));
                }
            }
            self.waiting
                .entry(scope.clone())
                .or_default()
                .push(decision.id().to_owned());
            self.order.push_back(decision.id().to_owned());
            self.cases.insert(decision.id().to_owned(), Box::new(case));
        }
        while self.order.len() > self.capacity {
            self.drop_oldest();
        }
    }

    /// Every case of `scope` still waiting gets `decision` as its next command.
    fn link_next(&mut self, scope: &Scope, step: &StepView<'_>, decision: &Arc<Decision>) {
        let Some(waiting) = self.waiting.remove(scope) else {
            return;
        };
        for id in waiting {
            if let Some(case) = self.cases.get_mut(&id) {
                case.explanation.next_command = Some(Later {
                    place: step.place.clone(),
                    decision: Arc::clone(decision),
                });
            }
        }
    }

    /// Forgets every case decided before `cutoff` (the state's horizon).
    pub fn forget(&mut self, cutoff: Timestamp) {
        while let Some(oldest) = self.order.front() {
            match self.cases.get(oldest) {
                Some(case) if case.event_time >= cutoff => break,
                _ => self.drop_oldest(),
            }
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(id) = self.order.pop_front() {
            if let Some(case) = self.cases.remove(&id) {
                let scope = &case.explanation.scope;
                if let Some(waiting) = self.waiting.get_mut(scope) {
                    waiting.retain(|w| *w != id);
                    if waiting.is_empty() {
                        self.waiting.remove(scope);
                    }
                }
                if let Some(now) = self.now.get_mut(scope) {
                    now.1 -= 1;
                    if now.1 == 0 {
                        self.now.remove(scope);
                    }
                }
            }
        }
    }

    /// The case of the decision `id`: with the scope as it is now when no command of
    /// its scope followed yet.
    ///
    /// # Errors
    /// [`Unknown`] when the guard has no case of that id.
    pub fn get(&self, id: &str) -> Result<Case, Unknown> {
        let Some(case) = self.cases.get(id) else {
            return Err(self.unknown(id));
        };
        let mut case = Case::clone(case);
        let x = &mut case.explanation;
        if x.next_command.is_none() {
            x.at_end = self.now.get(&x.scope).map(|(state, _)| state.clone());
        }
        Ok(case)
    }

    fn unknown(&self, id: &str) -> Unknown {
        let mut nearest: Vec<(usize, &String)> = self
            .order
            .iter()
            .map(|kept| (common_start(id, kept), kept))
            .filter(|(n, _)| *n > "cmd-".len())
            .collect();
        nearest.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        Unknown {
            kept: self.cases.len(),
            oldest: self
                .order
                .front()
                .and_then(|id| self.cases.get(id))
                .map(|c| c.event_time),
            nearest: nearest
                .into_iter()
                .take(3)
                .map(|(_, id)| id.clone())
                .collect(),
        }
    }

    /// How many decisions it can explain.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether it can explain none.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }
}

impl Default for Casebook {
    fn default() -> Casebook {
        Casebook::new(DEFAULT_CAPACITY)
    }
}

/// How many decisions the guard keeps to explain by default (a few KB each).
pub const DEFAULT_CAPACITY: usize = 2_000;

/// The length of the start two ids share (case-insensitive).
fn common_start(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
        .count()
}

#[cfg(test)]
mod tests;
