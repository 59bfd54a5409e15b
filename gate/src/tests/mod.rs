//! Given/when/then tests of the core, one file per behaviour: failing closed, the two
//! scopes, repeats, and the effects (acknowledgements, changes, counters).

mod effects;
mod fail_closed;
mod repeats;
mod scopes;

use crate::{Action, Gate, GuardCommand, Heartbeat, Mode, Now, PauseState, Scope, Verdict};

/// The gateway's time `ms` milliseconds after the start (both clocks move together;
/// the wall clock starts at 2025-08-11T00:09:30.000Z).
fn at(ms: i64) -> Now {
    Now {
        mono_ms: ms,
        utc_ms: 1_754_870_970_000 + ms,
    }
}

fn command(id: &str, action: Action, scope: Scope, rule: &str) -> GuardCommand {
    GuardCommand {
        command_id: id.into(),
        action,
        scope,
        rule: rule.into(),
        event_ts: None,
        decided_at: None,
    }
}

fn record(id: &str, scope: Scope, mode: Mode, reasons: &[&str]) -> PauseState {
    PauseState {
        scope,
        mode,
        reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        since: None,
        command_id: id.into(),
        policy_version: None,
    }
}

fn beat(active: bool) -> Heartbeat {
    Heartbeat {
        instance: if active { "g1" } else { "g2" }.into(),
        ts: None,
        active,
        policy_version: None,
        paused_scopes: None,
    }
}

fn alpha() -> Scope {
    Scope::strategy("alpha")
}

/// A gate that has read the (empty) pause state and heard an active guard at 0.
fn open_gate() -> Gate {
    let mut gate = Gate::new("gw-1", 3_000);
    gate.caught_up(at(0));
    gate.on_heartbeat(&beat(true), at(0));
    gate
}

/// The verdict as (mode, reasons), for comparing.
fn verdict(gate: &Gate, strategy: &str, now_ms: i64) -> (Mode, Vec<String>) {
    let verdict = gate.may_trade(strategy, now_ms);
    let reasons = match &verdict {
        Verdict::Paused(why) => why.reasons().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    (verdict.mode(), reasons)
}

fn paused(reasons: &[&str]) -> (Mode, Vec<String>) {
    (
        Mode::Paused,
        reasons.iter().map(|r| (*r).to_owned()).collect(),
    )
}

fn running() -> (Mode, Vec<String>) {
    (Mode::Running, Vec::new())
}

fn reduce_only() -> (Mode, Vec<String>) {
    (Mode::ReduceOnly, Vec::new())
}
