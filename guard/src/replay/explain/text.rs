//! The human text of `guard explain`: the decision, its trigger and evidence with
//! `FILE:LINE`, the scope before and after, what followed, and what to do.

use std::fmt::{self, Display, Formatter, Write};

use crate::message::{Decision, RiskAction, RiskEvent, Severity};

use super::{Cited, Explanation, NotFound, Place, ScopeState, Source};

impl Display for Explanation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.write_decision(f)?;
        self.write_causes(f)?;
        writeln!(f, "\nscope {}", self.scope)?;
        writeln!(f, "  before  {}", self.before)?;
        writeln!(f, "  after   {}", self.after)?;
        self.write_related(f)?;
        writeln!(f, "\nwhat to do")?;
        writeln!(f, "  {}", self.act.advice)?;
        if let Some(command) = &self.act.command {
            writeln!(f, "  {command}")?;
        }
        writeln!(
            f,
            "  runbook: {:?} {}",
            self.act.runbook.title, self.act.runbook.link
        )
    }
}

impl Explanation {
    fn write_decision(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &*self.decision {
            Decision::GuardCommand(c) => {
                writeln!(
                    f,
                    "guard_command {}: {} {}",
                    c.command_id,
                    c.action.as_str(),
                    c.scope
                )?;
                writeln!(f, "  rule        {}", c.rule.as_str())?;
                writeln!(f, "  reason      {}", c.reason)?;
                writeln!(f, "  event time  {}", c.event_ts)?;
            }
            Decision::RiskEvent(e) => {
                writeln!(f, "risk_event {}: {} {}", e.event_id, e.kind, e.scope)?;
                writeln!(f, "  severity    {} (action {})", severity(e), action(e))?;
                writeln!(f, "  reason      {}", e.reason.as_deref().unwrap_or("-"))?;
                writeln!(f, "  event time  {}", e.ts)?;
            }
        }
        writeln!(f, "  policy      {}", self.policy_version)?;
        let step = &self.step;
        let Some(stream) = step.stream else {
            return writeln!(f, "  decided     on {}", step.place);
        };
        write!(
            f,
            "  decided     while applying {} ({}",
            step.place,
            stream.as_str()
        )?;
        match &step.id {
            Some(id) => writeln!(f, " {id})"),
            None => writeln!(f, ")"),
        }
    }

    fn write_causes(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let trigger_in_evidence = self
            .trigger
            .as_ref()
            .is_some_and(|t| self.evidence.iter().any(|e| e.id == t.id));
        match &self.trigger {
            Some(trigger) => {
                write!(f, "\ntrigger  ")?;
                write_cited(f, trigger, !trigger_in_evidence)?;
            }
            None => writeln!(f, "\ntrigger  (not told by its id)")?,
        }
        match self.evidence.len() {
            0 => writeln!(f, "evidence none"),
            n => {
                writeln!(f, "evidence {n} message{}", if n == 1 { "" } else { "s" })?;
                for cited in &self.evidence {
                    write!(f, "  ")?;
                    write_cited(f, cited, true)?;
                }
                Ok(())
            }
        }
    }

    fn write_related(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if !self.same_trigger.is_empty() {
            let trigger = self.trigger.as_ref().map_or("", |t| t.id.as_str());
            writeln!(f, "\nsame trigger {trigger}")?;
            for decision in &self.same_trigger {
                writeln!(f, "  {}", one_line(decision))?;
            }
        }
        match (&self.next_command, &self.at_end) {
            (Some(later), _) => {
                let same = if later.place == self.step.place {
                    "the same step, "
                } else {
                    ""
                };
                writeln!(
                    f,
                    "\nnext command of {} ({same}applying {})",
                    self.scope, later.place
                )?;
                writeln!(f, "  {}", one_line(&later.decision))?;
                if let Decision::GuardCommand(c) = &*later.decision {
                    writeln!(f, "    {}", c.reason)?;
                }
            }
            (None, Some(end)) if matches!(self.step.place, Place::File { .. }) => {
                writeln!(f, "\nnext command of {}: none in these files", self.scope)?;
                writeln!(f, "  at their end: {end}")?;
            }
            (None, Some(now)) => {
                writeln!(f, "\nnext command of {}: none since", self.scope)?;
                writeln!(f, "  now: {now}")?;
            }
            (None, None) => {}
        }
        Ok(())
    }
}

/// `cmd-… resume (rule operator, trigger ops-1) at T` or `evt-… kind severity`.
fn one_line(decision: &Decision) -> String {
    match decision {
        Decision::GuardCommand(c) => format!(
            "guard_command {} {} {} (rule {}, trigger {}) at {}",
            c.command_id,
            c.action.as_str(),
            c.scope,
            c.rule.as_str(),
            c.trigger,
            c.event_ts
        ),
        Decision::RiskEvent(e) => format!(
            "risk_event {} {} {} {} (action {})",
            e.event_id,
            e.kind,
            e.scope,
            severity(e),
            action(e)
        ),
    }
}

fn action(e: &RiskEvent) -> &'static str {
    match e.action.unwrap_or(RiskAction::None) {
        RiskAction::None => "none",
        RiskAction::Pause => "pause",
        RiskAction::ReduceOnly => "reduce_only",
    }
}

fn severity(e: &RiskEvent) -> &'static str {
    match e.severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// `ID  FILE:LINE  STREAM`, then the message on its own line when `message` is set.
fn write_cited(f: &mut Formatter<'_>, cited: &Cited, message: bool) -> fmt::Result {
    write!(f, "{}  ", cited.id)?;
    match &cited.source {
        Source::Input {
            place,
            stream,
            message: json,
            slippage_bps,
        } => {
            write!(f, "{place}  {}", stream.as_str())?;
            if let Some(bps) = slippage_bps {
                write!(f, "  slippage {bps:.1} bps")?;
            }
            writeln!(f)?;
            if message {
                writeln!(f, "      {json}")?;
            }
        }
        Source::Guard { place, decision } => {
            writeln!(
                f,
                "{place}  {} (the guard's, decided there)",
                stream_of(decision)
            )?;
            if message {
                let json = serde_json::to_value(decision).unwrap_or_default();
                writeln!(f, "      {}", json["event"])?;
            }
        }
        Source::MaintenanceWindow { resume } => {
            writeln!(f, "maintenance window of the policy (resume = {resume})")?;
        }
        Source::Missing => writeln!(f, "not in these files (or not applied)")?,
        Source::Unfound { searched } => writeln!(f, "not found in {searched}")?,
    }
    Ok(())
}

fn stream_of(decision: &Decision) -> &'static str {
    match decision {
        Decision::GuardCommand(_) => "guard_command",
        Decision::RiskEvent(_) => "risk_event",
    }
}

impl Display for ScopeState {
    /// `running`, or `paused since T: rule (pause), rule (reduce_only)`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode.as_str())?;
        if let Some(since) = self.since {
            write!(f, " since {since}")?;
        }
        let mut reasons = String::new();
        for (i, reason) in self.reasons.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            let _ = write!(
                reasons,
                "{sep}{} ({})",
                reason.rule.as_str(),
                reason.effect.as_str()
            );
        }
        f.write_str(if self.reasons.is_empty() {
            " (no reasons)"
        } else {
            &reasons
        })
    }
}

impl Display for NotFound {
    /// One line saying so, then indented hints: what the id is if it is an input,
    /// the ids that look like it.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no guard command or risk event has the id {:?} in these files ({} guard commands, {} risk events)",
            self.id, self.commands, self.events
        )?;
        if let Some((place, stream)) = &self.input {
            write!(
                f,
                "\n  {} is an input message ({} at {place}), not a decision of the guard",
                self.id,
                stream.as_str()
            )?;
            match self.cited_by.as_slice() {
                [] => write!(f, "\n  no decision rests on it")?,
                ids => write!(f, "\n  decisions that rest on it: {}", ids.join(" "))?,
            }
        }
        if !self.nearest.is_empty() {
            write!(f, "\n  did you mean: {}", self.nearest.join(" "))?;
        }
        Ok(())
    }
}
