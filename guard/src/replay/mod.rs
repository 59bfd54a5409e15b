//! The replay tool (CONTRACT §4): the same engine over recorded streams.
//!
//! [`JsonlSource`] reads envelopes in file order, [`Replay`] feeds them to the engine
//! and hands decisions to a [`DecisionSink`], counting everything in a [`Summary`].
//! [`Tally`] turns decisions into the human report and the sweep table;
//! [`ReplayFigures`] and [`SweepFigures`] give both as JSON for jobs;
//! [`explain::Explainer`] watches a replay for the chain behind one decision;
//! [`html::PageFacts`] watches one for the `--html` page.

pub mod explain;
mod figures;
pub mod html;
mod sink;
mod source;
mod summary;
mod sweep;
mod tally;

pub use figures::{ReplayFigures, SweepEntry, SweepFigures};
pub use sink::{DecisionSink, JsonlSink, MemorySink};
pub use source::{JsonlSource, Line, SourceError};
pub use summary::{InvalidLine, Summary};
pub use sweep::{parse_sweep, Sweep, SweepAxis, SweepVariant};
pub use tally::{Tally, Trip};

use crate::decode::Admission;
use crate::engine::{Disposition, Engine};
use crate::message::{Decision, Input};

/// The engine, a sink and the counters of one replay run.
pub struct Replay<S: DecisionSink> {
    engine: Engine,
    sink: S,
    summary: Summary,
    tally: Tally,
    decisions: Vec<Decision>,
    admission: Admission,
}

impl<S: DecisionSink> Replay<S> {
    /// A replay through `engine` into `sink`.
    pub fn new(engine: Engine, sink: S) -> Self {
        Replay {
            engine,
            sink,
            summary: Summary::default(),
            tally: Tally::default(),
            decisions: Vec::new(),
            admission: Admission::default(),
        }
    }

    /// Refuses events larger than `limit` bytes, as `guard run --max-message-bytes`
    /// does (1 MiB unless changed).
    pub fn with_max_message_bytes(mut self, limit: usize) -> Self {
        self.admission.max_message_bytes = limit;
        self
    }

    /// Decodes and applies one line; an invalid line is counted and returned as the
    /// error, and the engine is left untouched.
    ///
    /// # Errors
    /// [`ReplayError::Invalid`] for an invalid line, [`ReplayError::Sink`] when the
    /// decisions cannot be written.
    pub fn feed(&mut self, line: &Line<'_>) -> Result<(), ReplayError> {
        self.feed_with(line, |_| {})
    }

    /// [`Replay::feed`], then shows `observe` the step of a valid line: its message,
    /// what happened to it and what was decided, with the engine after it. `guard
    /// explain` watches a replay through it, so it sees exactly what `guard replay`
    /// decides.
    ///
    /// # Errors
    /// As [`Replay::feed`]; `observe` is not called for an invalid line.
    pub fn feed_with(
        &mut self,
        line: &Line<'_>,
        observe: impl FnOnce(Step<'_>),
    ) -> Result<(), ReplayError> {
        let input = match self.admission.line(line.bytes) {
            Ok(input) => input,
            Err(reason) => {
                let invalid = InvalidLine {
                    file: line.file.to_owned(),
                    line: line.number,
                    reason: reason.to_string(),
                };
                self.summary.record_invalid(invalid.clone());
                return Err(ReplayError::Invalid(invalid));
            }
        };
        self.decisions.clear();
        let disposition = self.engine.apply_into(&input, &mut self.decisions);
        self.summary.record(input.stream(), disposition);
        if disposition == Disposition::Applied {
            self.tally.observe(&input, &self.decisions);
            self.summary.record_decisions(&self.decisions);
            self.sink.emit(&self.decisions).map_err(ReplayError::Sink)?;
        }
        observe(Step {
            input: &input,
            disposition,
            decisions: &self.decisions,
            engine: &self.engine,
        });
        Ok(())
    }

    /// Flushes the sink and returns the engine, sink, summary and tally.
    ///
    /// # Errors
    /// [`ReplayError::Sink`] when the sink cannot be flushed.
    pub fn finish(mut self) -> Result<(Engine, S, Summary, Tally), ReplayError> {
        self.sink.flush().map_err(ReplayError::Sink)?;
        self.tally.close(self.engine.state().clock);
        Ok((self.engine, self.sink, self.summary, self.tally))
    }

    /// The engine as it stands.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The counters so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// One valid line as the replay applied it ([`Replay::feed_with`]).
pub struct Step<'a> {
    /// The decoded message.
    pub input: &'a Input,
    /// What happened to it.
    pub disposition: Disposition,
    /// What was decided, in order (none unless it was applied).
    pub decisions: &'a [Decision],
    /// The engine after the line.
    pub engine: &'a Engine,
}

/// Replays `lines` (envelopes, in order) through `engine` in memory and returns the
/// decisions in the order they were made, the engine after the last line and the
/// counts; an invalid line is counted and skipped, as `guard replay` does. The one
/// oracle every test compares the live guard with.
pub fn run<L: AsRef<[u8]>>(
    engine: Engine,
    lines: impl IntoIterator<Item = L>,
) -> (Vec<Decision>, Engine, Summary) {
    let mut replay = Replay::new(engine, MemorySink::default());
    for (i, line) in lines.into_iter().enumerate() {
        let line = Line {
            file: "memory",
            number: i as u64 + 1,
            bytes: line.as_ref(),
        };
        // Invalid lines are counted in the summary; a memory sink cannot fail.
        let _ = replay.feed(&line);
    }
    let (engine, sink, summary, _) = replay.finish().expect("a memory sink cannot fail");
    (sink.0, engine, summary)
}

/// Why a replay step failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The line is not a valid envelope; the run may go on.
    #[error("{0}")]
    Invalid(InvalidLine),
    /// The output cannot be written; the run must stop.
    #[error("cannot write decisions: {0}")]
    Sink(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn fill_line(padding: usize) -> String {
        format!(
            r#"{{"stream":"exec_result","event":{{"fill_id":"f1","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2026-01-01T00:00:00Z"{}}}}}"#,
            " ".repeat(padding)
        )
    }

    /// The event's own bytes are measured, as the live guard measures a message's
    /// payload: a line just over the limit because of its envelope still passes.
    #[test]
    fn an_event_over_the_size_limit_is_invalid_as_live() {
        let event_len = fill_line(0).len() - r#"{"stream":"exec_result","event":}"#.len();
        let engine = || Engine::new(Policy::default(), Default::default());
        for (limit, padding, invalid) in [
            (event_len, 0, 0),
            (event_len + 9, 10, 1),
            (event_len + 10, 10, 0),
        ] {
            let mut replay =
                Replay::new(engine(), MemorySink::default()).with_max_message_bytes(limit);
            let line = fill_line(padding);
            let result = replay.feed(&Line {
                file: "memory",
                number: 1,
                bytes: line.as_bytes(),
            });
            assert_eq!(replay.summary().invalid, invalid, "limit {limit}");
            if invalid == 1 {
                let reason = result.unwrap_err().to_string();
                assert!(reason.contains("exceeds the limit"), "{reason}");
            }
        }
    }
}
