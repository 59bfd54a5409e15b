//! Where the ids a decision names come from: a line of the files (decoded again
//! from the bytes kept), a decision of the guard, or a maintenance window.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::decode::decode_envelope;
use crate::engine::rules::ResumeBy;
use crate::engine::Engine;
use crate::message::{Decision, Input, Rule};

use super::kept::Known;
use super::watch::Watch;
use super::{Cited, Place, Source};

/// How the maintenance window that triggered a command ends, if it did.
pub(crate) fn window_resume(decision: &Decision, engine: &Engine) -> Option<&'static str> {
    let Decision::GuardCommand(c) = decision else {
        return None;
    };
    if c.rule != Rule::Maintenance {
        return None;
    }
    let windows = &engine.policy().rules.maintenance.windows;
    let window = windows.iter().find(|w| w.name == c.trigger)?;
    Some(match window.resume {
        ResumeBy::Auto => "auto",
        ResumeBy::Operator => "operator",
    })
}

impl Watch {
    /// Where `id` comes from, as seen before `decision` was made.
    pub(super) fn cite(&self, id: &str, decision: &Decision, engine: &Engine) -> Cited {
        let source = match self.kept.get(id) {
            Some(Known::Line(at, bytes)) => match decode_envelope(bytes) {
                Ok(input) => input_source(decision, self.place_of(at), &input),
                Err(_) => Source::Missing,
            },
            Some(Known::Decision(at, d)) => Source::Guard {
                place: self.place_of(at),
                decision: Arc::new(d.clone()),
            },
            None => match window_resume(decision, engine) {
                Some(resume) if decision_trigger(decision) == Some(id) => {
                    Source::MaintenanceWindow { resume }
                }
                _ => Source::Missing,
            },
        };
        Cited {
            id: id.to_owned(),
            source,
        }
    }
}

/// An input message at `place` cited by `decision`: decoded, with its adverse
/// slippage when the decision is about slippage.
pub fn input_source(decision: &Decision, place: Place, input: &Input) -> Source {
    input_source_as(decision, place, input, message_json(input))
}

/// [`input_source`] with the message's JSON already made (the cases of one step share
/// it).
pub fn input_source_as(
    decision: &Decision,
    place: Place,
    input: &Input,
    message: Message,
) -> Source {
    Source::Input {
        place,
        stream: input.stream(),
        slippage_bps: match input {
            Input::Fill(fill) if about_slippage(decision) => Some(fill.slippage_bps()),
            _ => None,
        },
        message,
    }
}

/// Whether a decision comes from the slippage window (a trip or a warning).
fn about_slippage(decision: &Decision) -> bool {
    match decision {
        Decision::GuardCommand(c) => c.rule == Rule::SlippageWindow,
        Decision::RiskEvent(e) => e.kind.starts_with(Rule::SlippageWindow.as_str()),
    }
}

fn decision_trigger(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::GuardCommand(c) => Some(&c.trigger),
        Decision::RiskEvent(_) => None,
    }
}

/// A decoded input message as compact JSON, its fields in the contract's order
/// (shared: the cases of one step cite one message).
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Message(Arc<RawValue>);

impl Message {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Whether `other` is this very copy of the text, not an equal one.
    pub fn shares(&self, other: &Message) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// An input message as JSON, as the guard decoded it.
pub(crate) fn message_json(input: &Input) -> Message {
    let text = match input {
        Input::Fill(m) => serde_json::to_string(m),
        Input::RiskEvent(m) => serde_json::to_string(m),
        Input::Release(m) => serde_json::to_string(m),
        Input::Ops(m) => serde_json::to_string(m),
        Input::Ack(m) => serde_json::to_string(m),
    };
    let raw = text.and_then(RawValue::from_string);
    Message(Arc::from(raw.unwrap_or_else(|_| {
        RawValue::from_string("null".into()).expect("valid JSON")
    })))
}
