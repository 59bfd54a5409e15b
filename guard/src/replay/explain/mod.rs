//! `guard explain`: the chain behind one decision, over replay files.
//!
//! An [`Explainer`] runs a [`Replay`] — the engine and the code path of `guard
//! replay`, so ids match — and watches every step through [`Replay::feed_with`]. Until
//! it meets the decision it keeps the line of every applied message by id (evidence
//! can only be a message the guard applied; an invalid line is skipped as replay skips
//! it) and the scopes after the last step; then it looks for the next command of the
//! decision's scope. [`Explainer::finish`] resolves trigger and evidence to their
//! `FILE:LINE` and decoded message and says what to do ([`Act`]).
//!
//! Memory: the bytes of every applied line that has an id, up to the step that made
//! the decision — no more than the files read — with an index of a few dozen bytes a
//! line (`kept`), and the guard's decisions up to there.

mod act;
mod case;
mod cite;
mod kept;
mod text;
mod watch;

pub use act::{playbook, Act, Playbook, PLAYBOOKS};
pub use case::{Case, StepShared, StepView};
pub use cite::{input_source, Message};
pub use watch::input_id;

use std::fmt;
use std::io;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::engine::{Engine, Held};
use crate::message::{Decision, Effect, Mode, Rule, Scope, Stream};
use crate::time::Timestamp;

use super::{DecisionSink, Line, Replay, Summary};
use cite::window_resume;
use watch::{Found, Watch};

/// Where a message is: a line of the replay files (`FILE:LINE`), or a message of an
/// input topic of the live guard (`TOPIC/PARTITION@OFFSET`); for a decision the live
/// guard made on its clock rather than on a message, the clock's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Place {
    /// A line of the replay files.
    File {
        /// The file's name as given.
        file: String,
        /// 1-based line number.
        line: u64,
    },
    /// A message of a topic.
    Topic {
        /// The topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
    },
    /// A tick of the live guard's clock (a maintenance window's edge, an
    /// acknowledgement's deadline) or the guard's own doing (failing closed).
    Clock {
        /// The wall-clock time of the tick.
        clock: Timestamp,
    },
}

impl Place {
    /// A line of the files.
    pub fn line(file: impl Into<String>, line: u64) -> Place {
        Place::File {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File { file, line } => write!(f, "{file}:{line}"),
            Place::Topic {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}@{offset}"),
            Place::Clock { clock } => write!(f, "the clock at {clock}"),
        }
    }
}

/// Where the id of a trigger or of a piece of evidence comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Source {
    /// A message of the files that the guard applied, as it decoded it.
    Input {
        /// Where it is.
        #[serde(flatten)]
        place: Place,
        /// Its stream.
        stream: Stream,
        /// The decoded message (times in UTC).
        message: Message,
        /// For a fill behind a slippage decision: its adverse slippage in bps, given
        /// or computed from the prices.
        #[serde(skip_serializing_if = "Option::is_none")]
        slippage_bps: Option<f64>,
    },
    /// A decision of the guard (e.g. the command an unacknowledged-command event names),
    /// made while it applied the line at `place`.
    Guard {
        /// The line being applied.
        #[serde(flatten)]
        place: Place,
        /// The decision, as `guard replay` writes it.
        decision: Arc<Decision>,
    },
    /// A maintenance window of the policy: the trigger of a maintenance command.
    MaintenanceWindow {
        /// `auto` (its end resumes) or `operator` (an operator resumes).
        resume: &'static str,
    },
    /// Not a message these files hold, or one the guard did not apply.
    Missing,
    /// Live: not found in the input topics where it was looked for.
    Unfound {
        /// Where it was looked for.
        searched: String,
    },
}

/// An id with where it comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cited {
    /// The id (`fill_id`, `event_id`, `command_id`, or a window's name).
    pub id: String,
    /// Where it comes from.
    #[serde(flatten)]
    pub source: Source,
}

/// A reason a scope holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The rule that added it.
    pub rule: Rule,
    /// What it does: `pause` or `reduce_only`.
    pub effect: Effect,
}

/// A scope's mode and reasons at one point of the replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeState {
    /// Its mode.
    pub mode: Mode,
    /// Every reason it holds.
    pub reasons: Vec<Reason>,
    /// Event time since which it is in that mode (none while running).
    pub since: Option<Timestamp>,
}

impl ScopeState {
    /// The state of a scope that holds `held` (`None`: running).
    pub fn of(held: Option<&Held>) -> ScopeState {
        match held {
            None => ScopeState {
                mode: Mode::Running,
                reasons: Vec::new(),
                since: None,
            },
            Some(held) => ScopeState {
                mode: held.mode(),
                reasons: held
                    .all()
                    .map(|(rule, effect)| Reason { rule, effect })
                    .collect(),
                since: Some(held.since),
            },
        }
    }
}

/// The line the guard was applying when it decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepPlace {
    /// Where it is.
    #[serde(flatten)]
    pub place: Place,
    /// Its stream (none for a tick of the live guard's clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// Its message's id, if it has one (a release has none).
    pub id: Option<String>,
}

/// A later command, with the line the guard was applying when it decided it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Later {
    /// The line.
    #[serde(flatten)]
    pub place: Place,
    /// The command, as `guard replay` writes it (shared with the other cases that
    /// name it).
    pub decision: Arc<Decision>,
}

/// The chain behind one decision; `--json` prints it as one object with these keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The id asked for.
    pub id: String,
    /// The decision, as `guard replay` writes it: `{"stream", "event"}` (shared with
    /// the cases of its step that name it).
    pub decision: Arc<Decision>,
    /// The policy in force.
    pub policy_version: String,
    /// The line being applied when the guard decided.
    pub step: StepPlace,
    /// What caused it (`None`: a risk event whose trigger could not be told).
    pub trigger: Option<Cited>,
    /// Every message it rests on, in its order.
    pub evidence: Vec<Cited>,
    /// The decision's scope (`global` or `strategy:ID`).
    #[serde(serialize_with = "scope_key")]
    pub scope: Scope,
    /// The scope before the step.
    pub before: ScopeState,
    /// The scope after the step.
    pub after: ScopeState,
    /// The other decisions of the step with the same trigger (for a command: the risk
    /// events of its trip).
    pub same_trigger: Vec<Arc<Decision>>,
    /// The next command of the scope later in the files, if any.
    pub next_command: Option<Later>,
    /// Without a next command: the scope at the end of the files.
    pub at_end: Option<ScopeState>,
    /// What to do about it.
    pub act: Act,
}

fn scope_key<S: Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(scope)
}

/// The id names no decision of these files.
#[derive(Clone, Debug, PartialEq)]
pub struct NotFound {
    /// The id asked for.
    pub id: String,
    /// Guard commands the files led to.
    pub commands: u64,
    /// Risk events the guard raised.
    pub events: u64,
    /// Decision ids that look like it (a shared start, or containing it), closest first.
    pub nearest: Vec<String>,
    /// When it is the id of an input message: where that is, and its stream.
    pub input: Option<(Place, Stream)>,
    /// Decisions that name it as trigger or evidence (the first few).
    pub cited_by: Vec<String>,
}

/// A sink that keeps nothing: the explainer watches decisions as they are made.
struct Discard;

impl DecisionSink for Discard {
    fn emit(&mut self, _: &[Decision]) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A replay that explains one decision.
pub struct Explainer {
    replay: Replay<Discard>,
    watch: Watch,
}

impl Explainer {
    /// Explains the decision with id `id` (a `command_id` or a guard `event_id`) of a
    /// replay through `engine`.
    pub fn new(engine: Engine, id: impl Into<String>) -> Explainer {
        Explainer {
            replay: Replay::new(engine, Discard),
            watch: Watch::new(id.into()),
        }
    }

    /// Refuses events larger than `limit` bytes, as `guard replay` does.
    pub fn with_max_message_bytes(mut self, limit: usize) -> Self {
        self.replay = self.replay.with_max_message_bytes(limit);
        self
    }

    /// Feeds one line as `guard replay` does (an invalid line is counted and skipped).
    /// Returns whether later lines can still change the explanation: once the decision
    /// and the next command of its scope are found, the rest need not be read.
    pub fn feed(&mut self, line: &Line<'_>) -> bool {
        if self.watch.settled() {
            return false;
        }
        let place = self.watch.place(line);
        let watch = &mut self.watch;
        // An invalid line cannot be evidence; a sink that keeps nothing cannot fail.
        let _ = self
            .replay
            .feed_with(line, |step| watch.observe(place, line.bytes, step));
        !self.watch.settled()
    }

    /// The counters so far (invalid lines, duplicates).
    pub fn summary(&self) -> &Summary {
        self.replay.summary()
    }

    /// The explanation, or why there is none.
    ///
    /// # Errors
    /// [`NotFound`] when no decision of the lines fed has the id.
    pub fn finish(self) -> Result<Explanation, Box<NotFound>> {
        let engine = self.replay.engine();
        let watch = self.watch;
        let Some(found) = watch.found.as_ref() else {
            return Err(Box::new(watch.not_found()));
        };
        let scope = found.decision.scope().clone();
        let cite = |id: &str| watch.cite(id, &found.decision, engine);
        let trigger = found.trigger.as_deref().map(cite);
        let evidence = evidence_of(&found.decision)
            .iter()
            .map(|id| cite(id))
            .collect();
        let after = ScopeState::of(found.after.as_ref());
        let next_command = watch.next.as_ref().map(|(at, decision)| Later {
            place: watch.place_of(*at),
            decision: Arc::new(decision.clone()),
        });
        let at_end = next_command
            .is_none()
            .then(|| ScopeState::of(engine.state().scopes.get(&scope)));
        let act = Act::new(
            &found.decision,
            &after,
            window_resume(&found.decision, engine),
        );
        Ok(Explanation {
            id: watch.target.clone(),
            policy_version: policy_version(&found.decision, engine),
            step: found_step(&watch, found),
            trigger,
            evidence,
            before: ScopeState::of(found.before.as_ref()),
            after,
            same_trigger: found.same_trigger.iter().cloned().map(Arc::new).collect(),
            next_command,
            at_end,
            act,
            scope,
            decision: Arc::new(found.decision.clone()),
        })
    }
}

/// Explains `id` over `text` as the lines of the file `file`, as `guard explain`
/// does; also how many lines were read (it stops once nothing later can change the
/// explanation).
///
/// # Errors
/// As [`Explainer::finish`].
pub fn explain_text(
    engine: Engine,
    id: &str,
    file: &str,
    text: &str,
) -> (Result<Explanation, Box<NotFound>>, usize) {
    let mut explainer = Explainer::new(engine, id);
    let mut read = 0;
    for (i, bytes) in text.lines().enumerate() {
        read += 1;
        let line = Line {
            file,
            number: i as u64 + 1,
            bytes: bytes.as_bytes(),
        };
        if !explainer.feed(&line) {
            break;
        }
    }
    (explainer.finish(), read)
}

fn found_step(watch: &Watch, found: &Found) -> StepPlace {
    StepPlace {
        place: watch.place_of(found.step),
        stream: Some(found.stream),
        id: found.input_id.clone(),
    }
}

/// The ids a decision rests on.
fn evidence_of(decision: &Decision) -> &[String] {
    match decision {
        Decision::GuardCommand(c) => &c.evidence,
        Decision::RiskEvent(e) => e.evidence.as_deref().unwrap_or_default(),
    }
}

/// A command's own policy version; for a risk event, the engine's.
fn policy_version(decision: &Decision, engine: &Engine) -> String {
    match decision {
        Decision::GuardCommand(c) => c.policy_version.clone(),
        Decision::RiskEvent(_) => engine.policy_version().to_owned(),
    }
}

#[cfg(test)]
mod tests;
