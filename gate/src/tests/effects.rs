//! What the core leaves to the shell: acknowledgements for commands newly applied,
//! changes of effective mode (failing closed included), counters and state.

use super::*;
use crate::ModeChange;

fn change(scope: &str, mode: Mode, command_id: Option<&str>, ms: i64) -> ModeChange {
    ModeChange {
        gateway: "gw-1".into(),
        scope: scope.into(),
        mode,
        command_id: command_id.map(str::to_owned),
        at: crate::wire::utc_millis(at(ms).utc_ms),
        reason: None,
    }
}

fn closed(reason: &str, ms: i64) -> ModeChange {
    ModeChange {
        reason: Some(reason.into()),
        ..change("*", Mode::Paused, None, ms)
    }
}

#[test]
fn an_ack_is_owed_only_for_a_newly_applied_command() {
    let mut gate = open_gate();
    let pause = command("c1", Action::Pause, alpha(), "operator");
    let fx = gate.on_command(&pause, at(120));
    assert_eq!(fx.acks.len(), 1);
    let ack = &fx.acks[0];
    assert_eq!(
        (
            ack.command_id.as_str(),
            ack.gateway.as_str(),
            ack.ts.as_str()
        ),
        ("c1", "gw-1", "2025-08-11T00:09:30.120Z")
    );
    assert!(gate.on_command(&pause, at(130)).acks.is_empty());
    let record = record("c2", alpha(), Mode::Running, &[]);
    assert!(gate.on_pause_state(&record, at(140)).acks.is_empty());
}

#[test]
fn every_change_of_a_scopes_effective_mode_is_reported_once() {
    let mut gate = open_gate();
    let fx = gate.on_command(&command("c1", Action::Pause, alpha(), "operator"), at(1));
    assert_eq!(
        fx.changes,
        vec![change("strategy:alpha", Mode::Paused, Some("c1"), 1)]
    );
    // The record of the same decision changes no mode.
    let fx = gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(2));
    assert!(fx.changes.is_empty());
    let fx = gate.on_command(
        &command("c2", Action::ReduceOnly, alpha(), "operator"),
        at(3),
    );
    assert_eq!(
        fx.changes,
        vec![change("strategy:alpha", Mode::ReduceOnly, Some("c2"), 3)]
    );
}

#[test]
fn failing_closed_and_opening_again_are_reported() {
    // Given a new gate with one strategy paused in the pause state
    let mut gate = Gate::new("gw-1", 3_000);
    let fx = gate.tick(at(0));
    assert_eq!(fx.changes, vec![closed("no_state", 0)]);
    gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(1));
    // When the state is read but no guard is heard yet
    let fx = gate.caught_up(at(2));
    assert_eq!(fx.changes, vec![closed("guard_silent", 2)]);
    // When an active guard is heard: every known scope, with the guard's mode
    let fx = gate.on_heartbeat(&beat(true), at(3));
    assert_eq!(
        fx.changes,
        vec![
            change("global", Mode::Running, None, 3),
            change("strategy:alpha", Mode::Paused, Some("c1"), 3),
        ]
    );
    // When the guard falls silent past max_silence: one change, at the first tick
    assert!(gate.tick(at(3_003)).changes.is_empty());
    assert_eq!(
        gate.tick(at(3_004)).changes,
        vec![closed("guard_silent", 3_004)]
    );
    assert!(gate.tick(at(3_005)).changes.is_empty());
    assert_eq!(gate.counters().fail_closed_episodes, 2);
}

#[test]
fn a_decision_taken_while_closed_is_reported_when_the_gate_opens() {
    let mut gate = open_gate();
    gate.tick(at(3_001));
    let fx = gate.on_command(
        &command("c1", Action::Pause, Scope::Global, "operator"),
        at(3_002),
    );
    assert!(fx.changes.is_empty(), "still paused: closed");
    assert_eq!(fx.acks.len(), 1, "but in force, so acknowledged");
    let fx = gate.on_heartbeat(&beat(true), at(3_003));
    assert_eq!(
        fx.changes,
        vec![change("global", Mode::Paused, Some("c1"), 3_003)]
    );
}

#[test]
fn the_counters_and_the_state_say_what_was_folded() {
    let mut gate = open_gate();
    gate.on_heartbeat(&beat(false), at(1));
    let pause = command("c1", Action::Pause, alpha(), "operator");
    gate.on_command(&pause, at(2));
    gate.on_command(&pause, at(3));
    gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(4));
    let counters = gate.counters();
    assert_eq!(
        (
            counters.records,
            counters.commands,
            counters.commands_applied
        ),
        (1, 2, 1)
    );
    assert_eq!(
        (
            counters.repeats_dropped,
            counters.heartbeats,
            counters.acks_owed
        ),
        (1, 2, 1)
    );
    let state = gate.state(1_004);
    assert!(state.caught_up && state.heard);
    assert_eq!(state.ms_since_heartbeat, Some(1_004));
    assert_eq!(state.fail_closed, None);
    let scopes: Vec<_> = state
        .scopes
        .iter()
        .map(|s| (s.scope.as_str(), s.mode))
        .collect();
    assert_eq!(
        scopes,
        vec![("global", Mode::Running), ("strategy:alpha", Mode::Paused)]
    );
    assert_eq!(gate.state(3_001).fail_closed, Some("guard_silent"));
}
