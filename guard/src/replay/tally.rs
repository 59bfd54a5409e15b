//! What a run decided, summed up for people: the `--report` and the sweep rows.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::message::{Action, Decision, GuardCommand, Input, RiskEvent, Rule, Scope, Severity};
use crate::time::{human_span, Span, Timestamp};

/// One rule trip (a risk event raised by the guard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trip {
    /// Event time of the trigger.
    #[serde(rename = "ts")]
    pub at: Timestamp,
    /// `slippage_window` or `losing_streak`.
    pub kind: String,
    /// The strategy whose fill tripped it.
    pub strategy_id: String,
    /// The trigger fill.
    pub fill_id: String,
}

/// Pauses, trips and time paused, in event time.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Pause commands per rule.
    pub pauses_by_rule: BTreeMap<Rule, u64>,
    /// Pause commands per scope.
    pub pauses_by_scope: BTreeMap<Scope, u64>,
    /// Trips per strategy and kind.
    pub trips_by_strategy: BTreeMap<String, BTreeMap<String, u64>>,
    /// Risk events raised.
    pub risk_events: u64,
    /// Commands issued.
    pub commands: u64,
    /// Time each scope spent paused.
    pub paused_for: BTreeMap<Scope, Span>,
    /// Time each scope spent reduce-only.
    pub reduce_only_for: BTreeMap<Scope, Span>,
    /// Commands not acknowledged in time by every gateway (CONTRACT §2.10).
    pub unacknowledged: u64,
    /// Warnings raised, per kind (not trips: they change no scope).
    pub warnings: BTreeMap<String, u64>,
    /// Commands to reduce-only per rule.
    pub reduce_only_by_rule: BTreeMap<Rule, u64>,
    /// Commands to reduce-only per scope.
    pub reduce_only_by_scope: BTreeMap<Scope, u64>,
    /// Resume commands (back to running).
    pub resumes: u64,
    /// The earliest event time of the run: of an applied message, or of a command
    /// (a maintenance window the first message lands in starts before that message).
    pub first_event: Option<Timestamp>,
    /// The latest event time of the run: the guard's clock when it ended.
    pub last_event: Option<Timestamp>,
    /// Scopes not running now: their mode (as the command's action) and since when.
    open: BTreeMap<Scope, (Action, Timestamp)>,
    /// The first trip.
    pub first_trip: Option<Trip>,
    /// The last trip.
    pub last_trip: Option<Trip>,
}

impl Tally {
    /// Folds the decisions one applied input led to.
    pub fn observe(&mut self, input: &Input, decisions: &[Decision]) {
        self.saw(input.event_time());
        for decision in decisions {
            match decision {
                Decision::GuardCommand(c) => self.observe_command(c),
                Decision::RiskEvent(e) => self.observe_risk_event(input, e),
            }
        }
    }

    /// Widens the span of event time the run covers to include `ts`.
    fn saw(&mut self, ts: Timestamp) {
        self.first_event = Some(self.first_event.map_or(ts, |first| first.min(ts)));
        self.last_event = Some(self.last_event.map_or(ts, |last| last.max(ts)));
    }

    fn observe_command(&mut self, c: &GuardCommand) {
        self.commands += 1;
        // A maintenance window entered by the first message starts before it.
        self.saw(c.event_ts);
        // A change of mode closes the time of the mode before.
        if let Some((mode, since)) = self.open.remove(&c.scope) {
            self.add_time(&c.scope, mode, c.event_ts.since(since));
        }
        match c.action {
            Action::Pause => {
                *self.pauses_by_rule.entry(c.rule).or_default() += 1;
                *self.pauses_by_scope.entry(c.scope.clone()).or_default() += 1;
                self.open
                    .insert(c.scope.clone(), (Action::Pause, c.event_ts));
            }
            Action::ReduceOnly => {
                *self.reduce_only_by_rule.entry(c.rule).or_default() += 1;
                *self
                    .reduce_only_by_scope
                    .entry(c.scope.clone())
                    .or_default() += 1;
                self.open
                    .insert(c.scope.clone(), (Action::ReduceOnly, c.event_ts));
            }
            Action::Resume => self.resumes += 1,
        }
    }

    fn observe_risk_event(&mut self, input: &Input, e: &RiskEvent) {
        self.risk_events += 1;
        if e.kind == "command_unacknowledged" {
            self.unacknowledged += 1;
            return;
        }
        if e.severity == Severity::Warning {
            *self.warnings.entry(e.kind.clone()).or_default() += 1;
            return;
        }
        let Input::Fill(fill) = input else { return };
        let trip = Trip {
            at: e.ts,
            kind: e.kind.clone(),
            strategy_id: fill.strategy_id.clone(),
            fill_id: fill.fill_id.clone(),
        };
        *self
            .trips_by_strategy
            .entry(trip.strategy_id.clone())
            .or_default()
            .entry(trip.kind.clone())
            .or_default() += 1;
        if self.first_trip.as_ref().is_none_or(|t| trip.at < t.at) {
            self.first_trip = Some(trip.clone());
        }
        if self.last_trip.as_ref().is_none_or(|t| trip.at >= t.at) {
            self.last_trip = Some(trip);
        }
    }

    /// Adds `span` to the time `scope` spent in the mode `mode` announced.
    fn add_time(&mut self, scope: &Scope, mode: Action, span: Span) {
        let times = match mode {
            Action::ReduceOnly => &mut self.reduce_only_for,
            Action::Pause | Action::Resume => &mut self.paused_for,
        };
        let total = times.entry(scope.clone()).or_insert(Span::from_micros(0));
        *total = Span::from_micros(total.as_micros() + span.as_micros().max(0));
    }

    /// Ends the run at `clock`: scopes still paused or reduce-only count until then.
    pub fn close(&mut self, clock: Option<Timestamp>) {
        if let Some(clock) = clock {
            self.saw(clock);
        }
        let open = std::mem::take(&mut self.open);
        for (scope, (mode, since)) in open {
            let end = clock.unwrap_or(since).max(since);
            self.add_time(&scope, mode, end.since(since));
        }
    }

    /// The event time the run covers: from [`Tally::first_event`] to
    /// [`Tally::last_event`] (zero without any).
    pub fn span(&self) -> Span {
        match (self.first_event, self.last_event) {
            (Some(first), Some(last)) => last.since(first),
            _ => Span::from_micros(0),
        }
    }

    /// Pauses in all.
    pub fn pauses(&self) -> u64 {
        self.pauses_by_rule.values().sum()
    }

    /// Time the global scope spent paused (no strategy could trade).
    pub fn global_paused(&self) -> Span {
        self.paused_for
            .get(&Scope::Global)
            .copied()
            .unwrap_or(Span::from_micros(0))
    }

    /// Time strategy scopes spent paused, summed over strategies.
    pub fn strategy_paused(&self) -> Span {
        Span::from_micros(
            self.paused_for
                .iter()
                .filter(|(s, _)| **s != Scope::Global)
                .map(|(_, d)| d.as_micros())
                .sum(),
        )
    }
}

/// How many entries each list of the report shows; the rest are counted.
const REPORT_TOP: usize = 10;

/// The `top` entries by descending weight (ties in key order) and how many were left out.
fn top<'a, K, V>(
    items: impl Iterator<Item = (&'a K, V)>,
    weight: impl Fn(&V) -> i64,
) -> (Vec<(&'a K, V)>, usize)
where
    K: 'a,
{
    let mut all: Vec<(&K, V)> = items.collect();
    // A stable sort keeps the map's key order among equal weights.
    all.sort_by_key(|(_, v)| std::cmp::Reverse(weight(v)));
    let rest = all.len().saturating_sub(REPORT_TOP);
    all.truncate(REPORT_TOP);
    (all, rest)
}

fn more(f: &mut fmt::Formatter<'_>, rest: usize) -> fmt::Result {
    if rest > 0 {
        writeln!(f, "    … and {rest} more")?;
    }
    Ok(())
}

impl fmt::Display for Tally {
    /// The `--report` text; long lists show their top ten.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "report:")?;
        writeln!(
            f,
            "  pauses: {} ({} commands, {} risk events raised)",
            self.pauses(),
            self.commands,
            self.risk_events
        )?;
        for (rule, n) in &self.pauses_by_rule {
            writeln!(f, "    by rule   {:<18}{n:>8}", rule.as_str())?;
        }
        let (scopes, rest) = top(self.pauses_by_scope.iter(), |n| **n as i64);
        for (scope, n) in scopes {
            writeln!(f, "    by scope  {:<18}{n:>8}", scope.to_string())?;
        }
        more(f, rest)?;
        if self.unacknowledged > 0 {
            writeln!(f, "  unacknowledged commands {:>8}", self.unacknowledged)?;
        }
        for (kind, n) in &self.warnings {
            writeln!(f, "  warnings  {kind:<26}{n:>6}")?;
        }
        if !self.trips_by_strategy.is_empty() {
            writeln!(f, "  trips by strategy:")?;
            let (strategies, rest) = top(self.trips_by_strategy.iter(), |kinds| {
                kinds.values().sum::<u64>() as i64
            });
            for (strategy, kinds) in strategies {
                let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                writeln!(f, "    {strategy:<24}{}", parts.join(", "))?;
            }
            more(f, rest)?;
        }
        writeln!(f, "  time paused (event time):")?;
        if self.paused_for.is_empty() {
            writeln!(f, "    none")?;
        }
        if let Some(global) = self.paused_for.get(&Scope::Global) {
            writeln!(f, "    {:<24}{}", "global", human_span(*global))?;
        }
        let strategies = self
            .paused_for
            .iter()
            .filter(|(scope, _)| **scope != Scope::Global);
        let (spans, rest) = top(strategies, |span| span.as_micros());
        for (scope, span) in spans {
            writeln!(f, "    {:<24}{}", scope.to_string(), human_span(*span))?;
        }
        more(f, rest)?;
        if !self.reduce_only_for.is_empty() {
            writeln!(f, "  reduce-only (event time):")?;
            for (rule, n) in &self.reduce_only_by_rule {
                writeln!(f, "    by rule   {:<18}{n:>8}", rule.as_str())?;
            }
            let (spans, rest) = top(self.reduce_only_for.iter(), |span| span.as_micros());
            for (scope, span) in spans {
                writeln!(f, "    {:<24}{}", scope.to_string(), human_span(*span))?;
            }
            more(f, rest)?;
        }
        for (label, trip) in [
            ("first trip", &self.first_trip),
            ("last trip", &self.last_trip),
        ] {
            match trip {
                Some(t) => writeln!(
                    f,
                    "  {label:<11}{} {} (strategy {}, fill {})",
                    t.at, t.kind, t.strategy_id, t.fill_id
                )?,
                None => writeln!(f, "  {label:<11}none")?,
            }
        }
        Ok(())
    }
}
