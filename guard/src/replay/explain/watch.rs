//! What the explainer keeps while the replay runs: the lines by id, the scopes after
//! the last step, the decision once it is made, and the next command of its scope.

use crate::engine::{event_id, Disposition, Held, ScopeBook};
use crate::message::{Decision, Input, Stream};

use super::super::{Line, Step};
use super::kept::{At, Kept};
use super::{NotFound, Place};

/// Decision ids offered when the id is unknown.
const NEAREST: usize = 3;
/// How much an id must share with the one asked for to be offered: more than the
/// `cmd-`/`evt-` every id starts with.
const MIN_CLOSENESS: usize = 6;
/// Decisions listed as naming an input id.
const CITED_BY: usize = 10;

/// The decision asked for, as the step that made it left things.
pub(super) struct Found {
    pub decision: Decision,
    pub step: At,
    pub stream: Stream,
    pub input_id: Option<String>,
    pub trigger: Option<String>,
    pub same_trigger: Vec<Decision>,
    pub before: Option<Held>,
    pub after: Option<Held>,
}

/// The explainer's view of the replay.
pub(super) struct Watch {
    pub target: String,
    files: Vec<String>,
    pub kept: Kept,
    scopes: ScopeBook,
    pub found: Option<Found>,
    pub next: Option<(At, Decision)>,
    commands: u64,
    events: u64,
    nearest: Vec<(usize, String)>,
    input: Option<(At, Stream)>,
    cited_by: Vec<String>,
}

impl Watch {
    pub fn new(target: String) -> Watch {
        Watch {
            target,
            files: Vec::new(),
            kept: Kept::default(),
            scopes: ScopeBook::default(),
            found: None,
            next: None,
            commands: 0,
            events: 0,
            nearest: Vec::new(),
            input: None,
            cited_by: Vec::new(),
        }
    }

    /// Whether nothing later can change the explanation.
    pub fn settled(&self) -> bool {
        self.found.is_some() && self.next.is_some()
    }

    /// The line's place, its file's name kept once.
    pub fn place(&mut self, line: &Line<'_>) -> At {
        if self.files.last().is_none_or(|f| f != line.file) {
            self.files.push(line.file.to_owned());
        }
        At {
            file: (self.files.len() - 1) as u32,
            line: line.number,
        }
    }

    pub fn place_of(&self, at: At) -> Place {
        Place::line(self.files[at.file as usize].clone(), at.line)
    }

    /// One valid line, after the engine applied it.
    pub fn observe(&mut self, at: At, bytes: &[u8], step: Step<'_>) {
        if step.disposition != Disposition::Applied {
            return;
        }
        let searching = self.found.is_none();
        let input_id = input_id(step.input);
        if searching {
            if let Some(id) = input_id {
                if id == self.target {
                    self.input = Some((at, step.input.stream()));
                }
                self.kept.line(id, at, bytes);
            }
        }
        for (i, decision) in step.decisions.iter().enumerate() {
            if self.found.is_none() {
                self.note(at, decision);
                if decision.id() == self.target {
                    self.found = Some(self.found_at(at, &step, i));
                }
            } else if self.next.is_none() && self.is_next(decision) {
                // Also a later decision of the step that made the one asked for.
                self.next = Some((at, decision.clone()));
            }
        }
        if self.found.is_none() && step.engine.state().scopes != self.scopes {
            self.scopes = step.engine.state().scopes.clone();
        }
    }

    /// Whether `decision` is a later command of the found decision's scope.
    fn is_next(&self, decision: &Decision) -> bool {
        let Some(found) = &self.found else {
            return false;
        };
        matches!(decision, Decision::GuardCommand(c) if c.scope == *found.decision.scope())
    }

    /// A decision made before the one asked for: counted, indexed, compared.
    fn note(&mut self, at: At, decision: &Decision) {
        match decision {
            Decision::GuardCommand(c) => {
                self.commands += 1;
                if c.trigger == self.target || c.evidence.contains(&self.target) {
                    self.cite_by(&c.command_id);
                }
            }
            Decision::RiskEvent(e) => {
                self.events += 1;
                if e.evidence.iter().flatten().any(|id| *id == self.target) {
                    self.cite_by(&e.event_id);
                }
            }
        }
        self.consider(decision.id());
        self.kept.decision(at, decision);
    }

    fn cite_by(&mut self, id: &str) {
        if self.cited_by.len() < CITED_BY {
            self.cited_by.push(id.to_owned());
        }
    }

    /// Keeps `id` among the nearest when it looks like the id asked for.
    fn consider(&mut self, id: &str) {
        let score = closeness(&self.target, id);
        if score < MIN_CLOSENESS || self.nearest.iter().any(|(_, n)| n == id) {
            return;
        }
        self.nearest.push((score, id.to_owned()));
        // Stable: among equals, the earlier decision first.
        self.nearest.sort_by_key(|n| std::cmp::Reverse(n.0));
        self.nearest.truncate(NEAREST);
    }

    /// The decision `step.decisions[i]`, with what its step changed.
    fn found_at(&self, at: At, step: &Step<'_>, i: usize) -> Found {
        let decision = step.decisions[i].clone();
        let scope = decision.scope();
        let input_id = input_id(step.input);
        let trigger = trigger_of(&decision, input_id, step.decisions);
        let same_trigger = match &trigger {
            Some(t) => same_trigger(&decision, t, step.decisions),
            None => Vec::new(),
        };
        Found {
            before: self.scopes.get(scope).cloned(),
            after: step.engine.state().scopes.get(scope).cloned(),
            step: at,
            stream: step.input.stream(),
            input_id: input_id.map(str::to_owned),
            trigger,
            same_trigger,
            decision,
        }
    }

    /// Why the id names no decision.
    pub fn not_found(&self) -> NotFound {
        NotFound {
            id: self.target.clone(),
            commands: self.commands,
            events: self.events,
            nearest: self.nearest.iter().map(|(_, id)| id.clone()).collect(),
            input: self.input.map(|(at, stream)| (self.place_of(at), stream)),
            cited_by: self.cited_by.clone(),
        }
    }
}

/// The id of an input message that evidence can name (acks and releases have none).
pub fn input_id(input: &Input) -> Option<&str> {
    match input {
        Input::Fill(m) => Some(&m.fill_id),
        Input::RiskEvent(m) => Some(&m.event_id),
        Input::Ops(m) => Some(&m.command_id),
        Input::Release(_) | Input::Ack(_) => None,
    }
}

/// A command's trigger; for a risk event of the guard, the candidate its id was made
/// from: the step's message, a command's trigger, or an id of its evidence.
pub(crate) fn trigger_of(
    decision: &Decision,
    input_id: Option<&str>,
    step: &[Decision],
) -> Option<String> {
    match decision {
        Decision::GuardCommand(c) => Some(c.trigger.clone()),
        Decision::RiskEvent(e) => {
            let commands = step.iter().filter_map(|d| match d {
                Decision::GuardCommand(c) => Some(c.trigger.as_str()),
                Decision::RiskEvent(_) => None,
            });
            let evidence = e.evidence.iter().flatten().map(String::as_str);
            input_id
                .into_iter()
                .chain(commands)
                .chain(evidence)
                .find(|t| event_id(&e.kind, &e.scope, t) == e.event_id)
                .map(str::to_owned)
        }
    }
}

/// The other decisions of the step with trigger `trigger`.
pub(crate) fn same_trigger(decision: &Decision, trigger: &str, step: &[Decision]) -> Vec<Decision> {
    same_trigger_at(decision, trigger, step)
        .map(|i| step[i].clone())
        .collect()
}

/// Where in `step` the decisions of [`same_trigger`] are.
pub(crate) fn same_trigger_at<'a>(
    decision: &'a Decision,
    trigger: &'a str,
    step: &'a [Decision],
) -> impl Iterator<Item = usize> + 'a {
    step.iter()
        .enumerate()
        .filter(move |(_, d)| d.id() != decision.id())
        .filter(move |(_, d)| match d {
            Decision::GuardCommand(c) => c.trigger == trigger,
            Decision::RiskEvent(e) => event_id(&e.kind, &e.scope, trigger) == e.event_id,
        })
        .map(|(i, _)| i)
}

/// How much `candidate` looks like `target`: the length of their common start, or
/// all of `target` when `candidate` contains it.
fn closeness(target: &str, candidate: &str) -> usize {
    let start = target
        .bytes()
        .zip(candidate.bytes())
        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
        .count();
    let contains = candidate.contains(target) as usize * target.len();
    start.max(contains)
}
