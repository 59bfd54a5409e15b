//! What the explainer keeps to show evidence: the line of every applied message by
//! its id, the bytes one after another in one buffer (so no more than the files read,
//! plus a few dozen bytes of index a message), and the guard's decisions by id.

use std::collections::HashMap;

use crate::message::Decision;

/// A line of the files: an index into the file names, and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct At {
    pub file: u32,
    pub line: u64,
}

/// What an id names.
pub(super) enum Known<'a> {
    /// An applied input message: where it is and its line's bytes.
    Line(At, &'a [u8]),
    /// A decision of the guard, with the line being applied when it was made.
    Decision(At, &'a Decision),
}

/// Lines and decisions by id; the first of an id wins (a later one is a duplicate).
#[derive(Default)]
pub(super) struct Kept {
    bytes: Vec<u8>,
    lines: HashMap<Box<str>, (At, usize, usize)>,
    decisions: HashMap<Box<str>, (At, Decision)>,
}

impl Kept {
    /// Keeps the line of the message `id`.
    pub fn line(&mut self, id: &str, at: At, bytes: &[u8]) {
        if self.lines.contains_key(id) {
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.lines.insert(id.into(), (at, start, self.bytes.len()));
    }

    /// Keeps a decision of the guard.
    pub fn decision(&mut self, at: At, decision: &Decision) {
        if !self.decisions.contains_key(decision.id()) {
            let id = decision.id().into();
            self.decisions.insert(id, (at, decision.clone()));
        }
    }

    /// What `id` names, if it was kept.
    pub fn get(&self, id: &str) -> Option<Known<'_>> {
        if let Some((at, start, end)) = self.lines.get(id) {
            return Some(Known::Line(*at, &self.bytes[*start..*end]));
        }
        let (at, decision) = self.decisions.get(id)?;
        Some(Known::Decision(*at, decision))
    }
}
