//! A strategy is held by the global scope and its own: pause outranks reduce-only.

use super::*;

#[test]
fn a_global_pause_pauses_every_strategy_even_one_its_own_scope_runs() {
    let mut gate = open_gate();
    gate.on_command(&command("c1", Action::Resume, alpha(), "operator"), at(1));
    gate.on_command(
        &command("c2", Action::Pause, Scope::Global, "slippage_window"),
        at(2),
    );
    assert_eq!(verdict(&gate, "alpha", 2), paused(&["slippage_window"]));
    assert_eq!(verdict(&gate, "beta", 2), paused(&["slippage_window"]));
}

#[test]
fn a_strategy_pause_pauses_only_that_strategy() {
    let mut gate = open_gate();
    gate.on_command(
        &command("c1", Action::Pause, alpha(), "losing_streak"),
        at(1),
    );
    assert_eq!(verdict(&gate, "alpha", 1), paused(&["losing_streak"]));
    assert_eq!(verdict(&gate, "beta", 1), running());
}

#[test]
fn reduce_only_in_either_scope_makes_a_strategy_reduce_only_and_a_pause_outranks_it() {
    let mut gate = open_gate();
    gate.on_command(
        &command("c1", Action::ReduceOnly, Scope::Global, "risk_event"),
        at(1),
    );
    assert_eq!(verdict(&gate, "alpha", 1), reduce_only());
    gate.on_command(&command("c2", Action::Pause, alpha(), "operator"), at(2));
    assert_eq!(verdict(&gate, "alpha", 2), paused(&["operator"]));
    assert_eq!(verdict(&gate, "beta", 2), reduce_only());
    gate.on_command(
        &command("c3", Action::Resume, Scope::Global, "operator"),
        at(3),
    );
    gate.on_command(
        &command("c4", Action::ReduceOnly, alpha(), "operator"),
        at(4),
    );
    assert_eq!(verdict(&gate, "alpha", 4), reduce_only());
    assert_eq!(verdict(&gate, "beta", 4), running());
}

#[test]
fn a_strategy_paused_in_both_scopes_names_each_reason_once_global_first() {
    let mut gate = open_gate();
    let global = record(
        "c1",
        Scope::Global,
        Mode::Paused,
        &["maintenance", "operator"],
    );
    gate.on_pause_state(&global, at(1));
    let own = record("c2", alpha(), Mode::Paused, &["losing_streak", "operator"]);
    gate.on_pause_state(&own, at(2));
    assert_eq!(
        verdict(&gate, "alpha", 2),
        paused(&["maintenance", "operator", "losing_streak"])
    );
}

#[test]
fn a_resume_lets_the_scope_trade_again() {
    let mut gate = open_gate();
    gate.on_command(
        &command("c1", Action::Pause, Scope::Global, "operator"),
        at(1),
    );
    gate.on_command(
        &command("c2", Action::Resume, Scope::Global, "operator"),
        at(2),
    );
    assert_eq!(verdict(&gate, "alpha", 2), running());
}

#[test]
fn a_gate_started_late_learns_every_scope_from_the_pause_state() {
    let mut gate = Gate::new("gw-2", 3_000);
    let global = record(
        "c8",
        Scope::Global,
        Mode::Paused,
        &["losing_streak", "maintenance"],
    );
    gate.on_pause_state(&global, at(0));
    gate.on_pause_state(
        &record("c7", alpha(), Mode::ReduceOnly, &["operator"]),
        at(0),
    );
    gate.on_pause_state(&record("c9", Scope::Global, Mode::Running, &[]), at(0));
    gate.caught_up(at(5));
    gate.on_heartbeat(&beat(true), at(10));
    // The later record of the global scope is its present mode.
    assert_eq!(verdict(&gate, "alpha", 11), reduce_only());
    assert_eq!(verdict(&gate, "zeta", 11), running());
}
