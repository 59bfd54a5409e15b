use guard::message::{Action, GuardCommand, Heartbeat, Mode, PauseState, Rule, Scope};
use guard::time::Timestamp;

use super::*;

fn ts() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").unwrap()
}

fn command(id: &str, action: Action, scope: Scope, rule: Rule) -> GuardCommand {
    GuardCommand {
        command_id: id.into(),
        action,
        scope,
        rule,
        trigger: "t".into(),
        evidence: vec![],
        reason: "r".into(),
        event_ts: ts(),
        decided_at: ts(),
        policy_version: "p".into(),
    }
}

fn beat(active: bool) -> Heartbeat {
    Heartbeat {
        instance: "g1".into(),
        ts: ts(),
        active,
        policy_version: "p".into(),
        paused_scopes: 0,
    }
}

fn open_gate() -> Gate {
    let mut gate = Gate::new("gw-1", 3_000);
    gate.caught_up();
    gate.on_heartbeat(&beat(true), 0);
    gate
}

#[test]
fn without_state_or_a_heartbeat_every_strategy_is_paused() {
    let mut gate = Gate::new("gw-1", 3_000);
    assert_eq!(
        gate.may_trade("a", 0),
        Verdict::Paused(vec!["no_state".into()])
    );
    gate.caught_up();
    assert_eq!(
        gate.may_trade("a", 0),
        Verdict::Paused(vec!["guard_silent".into()])
    );
    // A standby's heartbeat does not open the gate.
    gate.on_heartbeat(&beat(false), 0);
    assert_eq!(
        gate.may_trade("a", 0),
        Verdict::Paused(vec!["guard_silent".into()])
    );
    gate.on_heartbeat(&beat(true), 0);
    assert_eq!(gate.may_trade("a", 3_000), Verdict::Running);
    // Silence longer than max_silence closes it again.
    assert_eq!(
        gate.may_trade("a", 3_001),
        Verdict::Paused(vec!["guard_silent".into()])
    );
}

#[test]
fn the_global_scope_or_the_strategys_own_decide_and_pause_outranks_reduce_only() {
    let mut gate = open_gate();
    let ack = gate.on_command(
        &command("c1", Action::ReduceOnly, Scope::Global, Rule::RiskEvent),
        ts(),
    );
    assert_eq!(
        (ack.command_id.as_str(), ack.gateway.as_str()),
        ("c1", "gw-1")
    );
    assert_eq!(gate.may_trade("a", 1), Verdict::ReduceOnly);
    gate.on_command(
        &command(
            "c2",
            Action::Pause,
            Scope::strategy("a"),
            Rule::SlippageWindow,
        ),
        ts(),
    );
    assert_eq!(
        gate.may_trade("a", 1),
        Verdict::Paused(vec!["slippage_window".into()])
    );
    assert_eq!(gate.may_trade("b", 1), Verdict::ReduceOnly);
    gate.on_command(
        &command("c3", Action::Resume, Scope::Global, Rule::Operator),
        ts(),
    );
    assert_eq!(gate.may_trade("b", 1), Verdict::Running);
    assert_eq!(gate.command_of(&Scope::strategy("a")), Some("c2"));
}

#[test]
fn a_gate_started_late_learns_every_scope_from_the_pause_state() {
    let mut gate = Gate::new("gw-2", 3_000);
    gate.on_pause_state(&PauseState {
        scope: Scope::Global,
        mode: Mode::Paused,
        reasons: vec!["losing_streak".into(), "maintenance".into()],
        since: ts(),
        command_id: "c9".into(),
        policy_version: "p".into(),
    });
    gate.caught_up();
    gate.on_heartbeat(&beat(true), 10);
    assert_eq!(
        gate.may_trade("z", 11),
        Verdict::Paused(vec!["losing_streak".into(), "maintenance".into()])
    );
}
