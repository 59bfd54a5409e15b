//! One scope as the gate holds it: its mode, reasons and command, and the decisions
//! it has applied, which is what makes a repeat harmless.
//!
//! # Why a bounded memory of decisions is enough
//! After a restart or a takeover the guard re-publishes exact repeats of earlier
//! commands and pause-state records in decision order, each followed by everything
//! decided after it (CONTRACT §1.6). A repeat of a decision the gate has applied must
//! not move the scope back, so every scope remembers the ids of the last
//! [`REMEMBERED_DECISIONS`] decisions applied to it, oldest forgotten first.
//!
//! The guard repeats only what it decided after its last durable checkpoint (its
//! outbox and the inputs after the stored offsets): for one scope that is a few
//! transitions, since every transition needs a trip or an operator's order and a
//! scope changes mode only by alternating decisions. 64 covers 64 transitions of one
//! scope inside one re-publication window. A repeat reaching further back still ends
//! right: its first message is forgotten and moves the scope back, but each message
//! re-applied forgets the oldest remembered id, which is the next one the repeat
//! brings, so every later message of the repeat is applied again in order and the
//! scope ends on the newest decision (the brief rollback is reported as changes).
//!
//! The gate learns a scope's history from `guard_pause_state`, read from the
//! beginning; a repeat of a decision whose record the topic had compacted away before
//! the gate started is not recognised. Keep the guard's re-publication window inside
//! the topic's uncompacted head (Kafka never compacts the active segment; set
//! `min.compaction.lag.ms` above the guard's checkpoint interval).

use std::collections::VecDeque;

use serde::Serialize;

use crate::wire::{GuardCommand, Mode, PauseState};

/// How many applied decisions each scope remembers (see the module docs).
pub const REMEMBERED_DECISIONS: usize = 64;

/// One scope's present mode as the gate knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScopeState {
    /// The mode.
    pub mode: Mode,
    /// The rule names of its reasons: a pause-state record's full list, or the rule of
    /// the command when its record has not come yet.
    pub reasons: Vec<String>,
    /// The command that set the mode; `None` for a scope never commanded (the global
    /// scope before any record).
    pub command_id: Option<String>,
    /// Since when, as the guard wrote it.
    pub since: Option<String>,
    #[serde(skip)]
    applied: Applied,
}

/// What a command or a record did to its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A decision the scope had not seen: it is now the scope's decision.
    Applied,
    /// The other half of a decision seen before (a command after its record, or the
    /// record after its command): nothing moves; a record brings its full reasons if
    /// its decision is still the scope's.
    Paired,
    /// A message already folded: nothing changes.
    Repeat,
}

impl ScopeState {
    /// Folds a command.
    pub(crate) fn take_command(&mut self, command: &GuardCommand) -> Outcome {
        match self.applied.find(&command.command_id) {
            Some(seen) if seen.command => Outcome::Repeat,
            Some(seen) => {
                seen.command = true;
                Outcome::Paired
            }
            None => {
                self.applied.remember(&command.command_id, true, false);
                self.mode = command.action.mode();
                self.reasons = vec![command.rule.clone()];
                self.command_id = Some(command.command_id.clone());
                self.since = command.decided_at.clone();
                Outcome::Applied
            }
        }
    }

    /// Folds a pause-state record.
    pub(crate) fn take_record(&mut self, record: &PauseState) -> Outcome {
        let current = self.command_id.as_deref() == Some(record.command_id.as_str());
        let outcome = match self.applied.find(&record.command_id) {
            Some(seen) if seen.record => return Outcome::Repeat,
            Some(seen) => {
                seen.record = true;
                Outcome::Paired
            }
            None => {
                self.applied.remember(&record.command_id, false, true);
                Outcome::Applied
            }
        };
        if outcome == Outcome::Applied || current {
            self.mode = record.mode;
            self.reasons.clone_from(&record.reasons);
            self.command_id = Some(record.command_id.clone());
            self.since.clone_from(&record.since);
        }
        outcome
    }

    /// Whether the acknowledgement of `command_id`, a decision of this scope, is
    /// still owed; if so it is owed no more (each id is acknowledged once).
    pub(crate) fn take_ack(&mut self, command_id: &str) -> bool {
        match self.applied.find(command_id) {
            Some(seen) if !seen.acked => {
                seen.acked = true;
                true
            }
            _ => false,
        }
    }
}

/// A decision applied to a scope, which of its two messages came, and whether it was
/// acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    command_id: Box<str>,
    command: bool,
    record: bool,
    /// Its acknowledgement was owed (and returned) already.
    acked: bool,
}

/// The last [`REMEMBERED_DECISIONS`] decisions of a scope, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Applied {
    seen: VecDeque<Seen>,
}

impl Applied {
    fn find(&mut self, command_id: &str) -> Option<&mut Seen> {
        self.seen
            .iter_mut()
            .rev()
            .find(|s| &*s.command_id == command_id)
    }

    fn remember(&mut self, command_id: &str, command: bool, record: bool) {
        if self.seen.len() == REMEMBERED_DECISIONS {
            self.seen.pop_front();
        }
        self.seen.push_back(Seen {
            command_id: command_id.into(),
            command,
            record,
            acked: false,
        });
    }
}
