//! What the on-call operator does about a decision: one line, the command to give
//! when one fits, and the runbook's section (docs/OPERATIONS.md).

use serde::Serialize;

use crate::message::{Action, Decision, Mode, RiskAction, Rule, Scope};

use super::ScopeState;

/// The runbook.
const RUNBOOK: &str = "docs/OPERATIONS.md";

/// Every playbook `guard explain` points to: the rule names and risk-event kinds it
/// covers, and its section's title in the runbook.
pub const PLAYBOOKS: [(&[&str], &str); 9] = [
    (&["slippage_window"], "Slippage pause"),
    (&["losing_streak"], "Losing streak"),
    (&["daily_loss", "daily_drawdown"], "Daily limit"),
    (&["risk_event"], "Risk-event pause"),
    (&["maintenance"], "Maintenance health-check gate"),
    (&["command_unacknowledged"], "Unacknowledged pause"),
    (&["guard_degraded"], "Guard degraded"),
    (&["operator", "resume"], "Pause and resume (runbook toggle)"),
    (&[], "Explain a decision"),
];

/// A section of the runbook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Playbook {
    /// Its title.
    pub title: &'static str,
    /// `docs/OPERATIONS.md#anchor`.
    pub link: String,
}

/// The playbook for a rule name or a risk event's kind (a warning's is its rule's);
/// "Explain a decision" for anything else.
pub fn playbook(name: &str) -> Playbook {
    let name = name.strip_suffix("_warning").unwrap_or(name);
    let title = PLAYBOOKS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map_or(PLAYBOOKS[PLAYBOOKS.len() - 1].1, |(_, title)| title);
    Playbook {
        title,
        link: format!("{RUNBOOK}#{}", anchor(title)),
    }
}

/// The anchor a Markdown renderer gives a heading: lower case, spaces as dashes, no
/// other punctuation.
fn anchor(title: &str) -> String {
    title
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// What to do about a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Act {
    /// The command to give once the advice is followed, when one fits (`NAME` and
    /// `REASON` to fill in; `GUARD_BROKERS` set).
    pub command: Option<String>,
    /// One line: what to check or do.
    pub advice: String,
    /// The runbook's section.
    pub runbook: Playbook,
}

impl Act {
    /// The act for `decision`, given its scope after the step and, for a maintenance
    /// command, how its window ends (`auto` or `operator`).
    pub fn new(decision: &Decision, after: &ScopeState, window: Option<&str>) -> Act {
        match decision {
            Decision::GuardCommand(c) if c.action == Action::Resume => resumed(&c.scope, after),
            Decision::GuardCommand(c) if c.rule == Rule::Maintenance => {
                maintenance(&c.scope, &c.trigger, window)
            }
            Decision::GuardCommand(c) => held(c.rule.as_str(), &c.scope, after),
            Decision::RiskEvent(e) => match e.action.unwrap_or(RiskAction::None) {
                RiskAction::Pause | RiskAction::ReduceOnly => held(&e.kind, &e.scope, after),
                RiskAction::None => Act {
                    command: None,
                    advice: note(&e.kind, &e.scope),
                    runbook: playbook(&e.kind),
                },
            },
        }
    }
}

/// `guard ACTION --scope SCOPE --operator NAME --reason "REASON"`.
fn order(action: &str, scope: &Scope) -> String {
    format!("guard {action} --scope {scope} --operator NAME --reason \"REASON\"")
}

/// A resumed scope: nothing to do, unless the same step held it again.
fn resumed(scope: &Scope, after: &ScopeState) -> Act {
    let advice = if after.mode == Mode::Running {
        format!(
            "{scope} trades again: nothing to do; to stop it again: {}",
            order("pause", scope)
        )
    } else {
        format!(
            "the same step left {scope} {} again ({}): explain its next command",
            after.mode.as_str(),
            rules(after)
        )
    };
    Act {
        command: None,
        advice,
        runbook: playbook("resume"),
    }
}

/// `rule (effect), …` of every reason `state` holds.
fn rules(state: &ScopeState) -> String {
    let all: Vec<String> = state
        .reasons
        .iter()
        .map(|r| format!("{} ({})", r.rule.as_str(), r.effect.as_str()))
        .collect();
    all.join(", ")
}

/// A scope that a rule holds: check what its playbook says, then resume.
fn held(rule: &str, scope: &Scope, after: &ScopeState) -> Act {
    let check = match rule {
        "slippage_window" => "check the venue and the strategy with the desk",
        "losing_streak" => "Noctus reviews the strategy; wait until risk agrees",
        "daily_loss" | "daily_drawdown" => {
            "wait until the desk decides the strategy may trade on (a resume starts the day's book again)"
        }
        "risk_event" => "ask the risk event's source (its reason and evidence above) whether it is over",
        "operator" => "an operator's order: lift it only with that operator or the desk",
        _ => "find out why it tripped (evidence above)",
    };
    let clears = match after.reasons.len() {
        0 | 1 => String::new(),
        _ => format!(
            "; a resume clears every reason of {scope}: {}",
            rules(after)
        ),
    };
    Act {
        command: Some(order("resume", scope)),
        advice: format!("{check}, then resume{clears}"),
        runbook: playbook(rule),
    }
}

/// A maintenance window's pause: it ends by itself, or waits for the health check.
fn maintenance(scope: &Scope, window: &str, resume: Option<&str>) -> Act {
    if resume == Some("operator") {
        return Act {
            command: Some(order("resume", scope)),
            advice: format!(
                "window {window} resumes only by an operator: after it, run the health check (venues, positions, market data), then resume"
            ),
            runbook: playbook("maintenance"),
        };
    }
    Act {
        command: None,
        advice: format!("window {window} resumes {scope} by itself at its end: nothing to do"),
        runbook: playbook("maintenance"),
    }
}

/// A risk event that asks for nothing.
fn note(kind: &str, scope: &Scope) -> String {
    if let Some(rule) = kind.strip_suffix("_warning") {
        return format!(
            "a warning, nothing is held: one more such fill trips {rule}; watch {scope}"
        );
    }
    match kind {
        "command_unacknowledged" => "check the gateways its reason names (up? following guard_command?); if in doubt, stop them at the venue".to_owned(),
        _ => format!("for the record: it holds nothing in {scope}"),
    }
}
