//! What the page needs beyond the summary and the tally, gathered step by step while
//! the replay runs: the commands of every scope, the slippage of every applied fill,
//! and the first and last trips with their evidence.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::engine::{Disposition, Engine};
use crate::message::{Action, Decision, Fill, Input, Mode, RiskEvent, Scope, Severity};
use crate::policy::Policy;
use crate::time::Timestamp;

use super::histogram::SlippageHistogram;
use super::trips::{CitedFill, TripCard};
use crate::replay::{Line, Step};

/// The fills that may yet be cited as evidence, with the line they came from.
///
/// A trip's evidence is the breaches of a slippage window, the losing fills of a
/// streak, or the tripping fill itself (a daily limit): fills the engine holds when
/// the trip is decided, or the fill being applied. So only fills that could be a
/// breach (slippage above the lowest threshold any strategy can have: the policy's,
/// times the enhanced factor) or a loss are kept, and whenever the index has doubled
/// since it was last trimmed, it is trimmed to the fills the engine still holds in its
/// slippage windows and losing streaks. Memory stays within about twice what the
/// engine holds (at least a few thousand fills), not the size of the day.
#[derive(Debug, Default)]
pub struct FillIndex {
    /// A fill with at most this slippage and no loss cannot be a breach or a loss.
    floor_bps: f64,
    files: Vec<String>,
    kept: HashMap<String, (u32, u64, Fill)>,
    trim_at: usize,
}

/// The index is never trimmed below this many fills.
const KEEP_AT_LEAST: usize = 4096;

impl FillIndex {
    /// An index for a run under `policy`.
    pub fn new(policy: &Policy) -> Self {
        let enhanced = &policy.rules.enhanced;
        let factor = if enhanced.enabled {
            enhanced.factor.min(1.0)
        } else {
            1.0
        };
        FillIndex {
            floor_bps: policy.rules.slippage.threshold_bps * factor,
            ..FillIndex::default()
        }
    }

    /// Keeps `fill`, read from `line`, if it could be a slippage breach or a loss.
    pub fn keep(&mut self, line: &Line<'_>, fill: &Fill) {
        let loss = fill.realized_pnl.is_some_and(|pnl| pnl < 0.0);
        if !loss && fill.slippage_bps() <= self.floor_bps {
            return;
        }
        if self.files.last().is_none_or(|f| f != line.file) {
            self.files.push(line.file.to_owned());
        }
        let file = (self.files.len() - 1) as u32;
        self.kept
            .insert(fill.fill_id.clone(), (file, line.number, fill.clone()));
    }

    /// The fill `id` and where it came from, if kept.
    pub fn cite(&self, id: &str) -> Option<CitedFill> {
        self.kept.get(id).map(|(file, line, fill)| CitedFill {
            file: self.files[*file as usize].clone(),
            line: *line,
            fill: fill.clone(),
        })
    }

    /// Fills kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Trims the index to the fills `engine` holds, once it has grown enough since
    /// the last trim.
    pub fn trim(&mut self, engine: &Engine) {
        if self.kept.len() < self.trim_at.max(KEEP_AT_LEAST) {
            return;
        }
        let rules = &engine.state().rules;
        let held: HashSet<&str> = rules
            .slippage
            .groups()
            .flat_map(|(_, breaches)| breaches.iter().map(|b| &*b.fill_id))
            .chain(
                rules
                    .streaks
                    .iter()
                    .flat_map(|(_, fills)| fills.iter().map(String::as_str)),
            )
            .collect();
        self.kept.retain(|id, _| held.contains(id.as_str()));
        self.trim_at = self.kept.len() * 2;
    }
}

/// The facts of one run the page draws, gathered through [`crate::replay::Replay::feed_with`].
#[derive(Debug)]
pub struct PageFacts {
    changes: BTreeMap<Scope, Vec<(Timestamp, Mode)>>,
    slippage: SlippageHistogram,
    fills: FillIndex,
    first: Option<TripCard>,
    last: Option<TripCard>,
}

impl PageFacts {
    /// Facts for a run under `policy` (its slippage threshold marks the histogram).
    pub fn new(policy: &Policy) -> Self {
        PageFacts {
            changes: BTreeMap::new(),
            slippage: SlippageHistogram::new(policy.rules.slippage.threshold_bps),
            fills: FillIndex::new(policy),
            first: None,
            last: None,
        }
    }

    /// Folds one step of the replay, read from `line`.
    pub fn observe(&mut self, line: &Line<'_>, step: &Step<'_>) {
        if step.disposition != Disposition::Applied {
            return;
        }
        if let Input::Fill(fill) = step.input {
            self.slippage.add(fill.slippage_bps());
            self.fills.keep(line, fill);
        }
        for decision in step.decisions {
            match decision {
                Decision::GuardCommand(c) => {
                    let mode = match c.action {
                        Action::Pause => Mode::Paused,
                        Action::ReduceOnly => Mode::ReduceOnly,
                        Action::Resume => Mode::Running,
                    };
                    let changes = self.changes.entry(c.scope.clone()).or_default();
                    changes.push((c.event_ts, mode));
                }
                Decision::RiskEvent(e) => self.trip(line, step, e),
            }
        }
        self.fills.trim(step.engine);
    }

    /// Keeps the card of a trip if it is the first or the last so far, as the
    /// report's first and last trip are chosen (the earliest event time, the first
    /// of equals; the latest, the last of equals).
    fn trip(&mut self, line: &Line<'_>, step: &Step<'_>, e: &RiskEvent) {
        let Input::Fill(fill) = step.input else {
            return;
        };
        if e.kind == "command_unacknowledged" || e.severity == Severity::Warning {
            return;
        }
        let is_first = self.first.as_ref().is_none_or(|t| e.ts < t.at());
        let is_last = self.last.as_ref().is_none_or(|t| e.ts >= t.at());
        if !(is_first || is_last) {
            return;
        }
        let command = step.decisions.iter().find_map(|d| match d {
            Decision::GuardCommand(c) if c.trigger == fill.fill_id && c.rule.as_str() == e.kind => {
                Some(c.clone())
            }
            _ => None,
        });
        // The trigger is the fill being applied: cited from its line, kept or not.
        let trigger = CitedFill {
            file: line.file.to_owned(),
            line: line.number,
            fill: fill.clone(),
        };
        let cite = |id: &String| {
            if *id == fill.fill_id {
                Some(trigger.clone())
            } else {
                self.fills.cite(id)
            }
        };
        let evidence = e.evidence.as_deref().unwrap_or_default();
        let evidence = evidence.iter().map(|id| (id.clone(), cite(id))).collect();
        let card = TripCard {
            event: e.clone(),
            command,
            trigger,
            evidence,
        };
        if is_first {
            self.first = Some(card.clone());
        }
        if is_last {
            self.last = Some(card);
        }
    }

    /// Every scope's commands: event time and new mode, in the order decided.
    pub fn changes(&self) -> &BTreeMap<Scope, Vec<(Timestamp, Mode)>> {
        &self.changes
    }

    /// The applied fills' slippage.
    pub fn slippage(&self) -> &SlippageHistogram {
        &self.slippage
    }

    /// The trip with the earliest event time.
    pub fn first_trip(&self) -> Option<&TripCard> {
        self.first.as_ref()
    }

    /// The trip with the latest event time.
    pub fn last_trip(&self) -> Option<&TripCard> {
        self.last.as_ref()
    }

    /// The fills kept for citing.
    pub fn fill_index(&self) -> &FillIndex {
        &self.fills
    }
}
