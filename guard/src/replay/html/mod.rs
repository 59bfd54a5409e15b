//! `guard replay --html`: a replayed day on one self-contained HTML page, for the
//! people who read the end-of-day report (risk desk, operators).
//!
//! The page is drawn from what the replay computes — its [`Summary`], its closed
//! [`Tally`] and their [`ReplayFigures`], so every count equals `--summary-json`'s —
//! and from what a [`PageFacts`] gathers while it watches the replay step by step
//! ([`super::Replay::feed_with`]): every command per scope (the timeline's bands),
//! every applied fill's adverse slippage (the histogram), and the first and last
//! trips with their evidence cited by `FILE:LINE`.
//!
//! Everything is inline: CSS in a `<style>`, charts as SVG written here; no script,
//! no font, no URL, and a Content-Security-Policy that would block them anyway. Every
//! text that comes from the input or the policy is escaped ([`escape`]). The page
//! depends on the input and the policy alone (no wall time), so two runs over the
//! same day write the same bytes.
//!
//! | file | what |
//! |---|---|
//! | `facts.rs` | [`PageFacts`]: what the page needs beyond the summary, per step |
//! | `timeline.rs` | [`bands`] of a scope's modes from its commands, and their SVG |
//! | `histogram.rs` | [`SlippageHistogram`]: fine buckets, [`Bin`]s, their SVG |
//! | `trips.rs` | [`TripCard`]: a trip with its trigger and cited evidence |
//! | `tables.rs` | the header's counts and the tables of trips, pauses and modes |
//! | `page.rs` | the page: skeleton, CSS, sections, policy |
//! | `escape.rs` | text and attribute escaping |
//! | `axis.rs` | time ticks and their labels |

mod axis;
mod escape;
mod facts;
mod histogram;
mod page;
mod tables;
mod timeline;
mod trips;

pub use axis::{time_ticks, Tick};
pub use escape::escape;
pub use facts::{FillIndex, PageFacts};
pub use histogram::{Bin, SlippageHistogram};
pub use timeline::{bands, Band};
pub use trips::{CitedFill, TripCard};

use crate::policy::Policy;

use super::{ReplayFigures, Summary, Tally};

/// What a finished run hands the page besides the facts gathered while it ran.
pub struct Run<'a> {
    /// The input files, as given on the command line.
    pub inputs: &'a [String],
    /// The run's counters.
    pub summary: &'a Summary,
    /// The run's tally, closed at the end of the run.
    pub tally: &'a Tally,
    /// The policy in force.
    pub policy: &'a Policy,
    /// Its version.
    pub policy_version: &'a str,
}

impl Run<'_> {
    /// The run's figures, as `--summary-json` writes them.
    pub fn figures(&self) -> ReplayFigures {
        ReplayFigures::new(self.summary, self.tally, self.policy_version)
    }
}

impl PageFacts {
    /// The whole page of a finished run.
    pub fn render(&self, run: &Run<'_>) -> String {
        page::render(self, run)
    }
}

#[cfg(test)]
mod tests;
