//! Where replay decisions go: a JSON Lines writer, or memory for tests.

use std::io::{self, Write};

use crate::message::Decision;

/// Takes decisions in the order the engine made them.
pub trait DecisionSink {
    /// Writes `decisions`.
    ///
    /// # Errors
    /// The I/O error that stopped the write.
    fn emit(&mut self, decisions: &[Decision]) -> io::Result<()>;

    /// Makes everything written so far durable or visible.
    ///
    /// # Errors
    /// The I/O error that stopped the flush.
    fn flush(&mut self) -> io::Result<()>;
}

/// Writes each decision as one envelope line: `{"stream": "guard_command", "event": {…}}`.
pub struct JsonlSink<W: Write> {
    out: W,
}

impl<W: Write> JsonlSink<W> {
    /// A sink writing to `out` (buffer it: every decision is one small write).
    pub fn new(out: W) -> Self {
        JsonlSink { out }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> DecisionSink for JsonlSink<W> {
    fn emit(&mut self, decisions: &[Decision]) -> io::Result<()> {
        for decision in decisions {
            serde_json::to_writer(&mut self.out, decision)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Keeps decisions in memory.
#[derive(Default, Debug, Clone)]
pub struct MemorySink(pub Vec<Decision>);

impl DecisionSink for MemorySink {
    fn emit(&mut self, decisions: &[Decision]) -> io::Result<()> {
        self.0.extend_from_slice(decisions);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
