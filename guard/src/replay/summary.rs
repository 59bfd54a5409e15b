//! The counters a replay prints on stderr when it ends.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::engine::Disposition;
use crate::message::{Decision, Stream};

/// How many invalid lines the summary lists; the rest are only counted.
pub const INVALID_SHOWN: usize = 20;

/// A line that was reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidLine {
    /// File name as given.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Why it is invalid.
    pub reason: String,
}

impl fmt::Display for InvalidLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Per-stream counts of one replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamCounts {
    /// Valid messages read.
    pub read: u64,
    /// Of those, duplicates.
    pub duplicates: u64,
    /// Of those, risk events of the guard's own source (ignored).
    pub own: u64,
    /// Of those, fills of another environment than the policy's `env` (ignored).
    pub other_env: u64,
}

/// What one replay read, skipped and wrote.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Valid messages per stream.
    pub streams: BTreeMap<Stream, StreamCounts>,
    /// Invalid lines in all.
    pub invalid: u64,
    /// The first [`INVALID_SHOWN`] invalid lines.
    pub invalid_shown: Vec<InvalidLine>,
    /// Guard commands written.
    pub commands: u64,
    /// Risk events written.
    pub risk_events: u64,
    /// Wall time of the run (set by the caller).
    pub elapsed: Duration,
    /// Peak resident memory of the process in bytes, when the caller could read it.
    pub peak_rss: Option<u64>,
}

impl Summary {
    /// Counts one valid message.
    pub fn record(&mut self, stream: Stream, disposition: Disposition) {
        let counts = self.streams.entry(stream).or_default();
        counts.read += 1;
        match disposition {
            Disposition::Applied => {}
            Disposition::Duplicate => counts.duplicates += 1,
            Disposition::OwnEvent => counts.own += 1,
            Disposition::OtherEnv => counts.other_env += 1,
        }
    }

    /// Counts one invalid line.
    pub fn record_invalid(&mut self, line: InvalidLine) {
        self.invalid += 1;
        if self.invalid_shown.len() < INVALID_SHOWN {
            self.invalid_shown.push(line);
        }
    }

    /// Counts decisions written.
    pub fn record_decisions(&mut self, decisions: &[Decision]) {
        for d in decisions {
            match d {
                Decision::GuardCommand(_) => self.commands += 1,
                Decision::RiskEvent(_) => self.risk_events += 1,
            }
        }
    }

    /// Valid messages in all.
    pub fn messages(&self) -> u64 {
        self.streams.values().map(|c| c.read).sum()
    }

    /// Duplicates in all.
    pub fn duplicates(&self) -> u64 {
        self.streams.values().map(|c| c.duplicates).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.messages() + self.invalid;
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { lines as f64 / secs } else { 0.0 };
        writeln!(
            f,
            "replay: {lines} lines in {secs:.3} s ({rate:.0} lines/s)"
        )?;
        for stream in Stream::ALL {
            let c = self.streams.get(&stream).cloned().unwrap_or_default();
            if stream == Stream::GuardAck && c.read == 0 {
                // Version 2's stream is listed only when the input has some.
                continue;
            }
            write!(f, "  {:<18}{:>10} read", stream.as_str(), c.read)?;
            if c.duplicates > 0 {
                write!(f, ", {} duplicates", c.duplicates)?;
            }
            if c.own > 0 {
                write!(f, ", {} own risk events ignored", c.own)?;
            }
            if c.other_env > 0 {
                write!(f, ", {} of another environment ignored", c.other_env)?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  {:<18}{:>10}", "duplicates", self.duplicates())?;
        writeln!(f, "  {:<18}{:>10}", "invalid lines", self.invalid)?;
        for line in &self.invalid_shown {
            writeln!(f, "    {line}")?;
        }
        if self.invalid > self.invalid_shown.len() as u64 {
            writeln!(
                f,
                "    … and {} more",
                self.invalid - self.invalid_shown.len() as u64
            )?;
        }
        write!(
            f,
            "  written: {} guard_command, {} risk_event",
            self.commands, self.risk_events
        )?;
        if let Some(bytes) = self.peak_rss {
            write!(
                f,
                "\n  peak memory: {:.1} MiB",
                bytes as f64 / (1024.0 * 1024.0)
            )?;
        }
        Ok(())
    }
}
