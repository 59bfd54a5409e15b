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

fn opened(ms: i64) -> ModeChange {
    change("*", Mode::Running, None, ms)
}

fn closed(reason: &str, ms: i64) -> ModeChange {
    ModeChange {
        reason: Some(reason.into()),
        ..change("*", Mode::Paused, None, ms)
    }
}

#[test]
fn an_ack_is_owed_once_per_command_when_its_decision_comes_into_force() {
    let mut gate = open_gate();
    // A new command owes its ack, stamped with the wall clock
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
    // Its repeat and its record owe nothing
    assert!(gate.on_command(&pause, at(130)).acks.is_empty());
    let paired = record("c1", alpha(), Mode::Paused, &["operator"]);
    assert!(gate.on_pause_state(&paired, at(135)).acks.is_empty());
    // A decision whose record comes first owes its ack then, and not again
    let resumed = record("c2", alpha(), Mode::Running, &[]);
    let fx = gate.on_pause_state(&resumed, at(140));
    assert_eq!(
        fx.acks
            .iter()
            .map(|a| a.command_id.as_str())
            .collect::<Vec<_>>(),
        ["c2"]
    );
    let resume = command("c2", Action::Resume, alpha(), "operator");
    assert!(gate.on_command(&resume, at(150)).acks.is_empty());
    assert_eq!(gate.counters().acks_owed, 2);
}

#[test]
fn the_end_of_the_initial_read_owes_the_ack_of_every_decision_in_force_once() {
    // Given a pause state where alpha was paused then resumed, and global paused
    let mut gate = Gate::new("gw-1", 3_000);
    gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(0));
    gate.on_pause_state(&record("c2", alpha(), Mode::Running, &[]), at(0));
    gate.on_pause_state(
        &record("c3", Scope::Global, Mode::Paused, &["operator"]),
        at(0),
    );
    // and a command of global's decision that came during the read
    gate.on_command(
        &command("c3", Action::Pause, Scope::Global, "operator"),
        at(0),
    );
    // When the read ends
    let fx = gate.caught_up(at(1));
    // Then the decisions in force are acknowledged once each, the overtaken one not
    let mut ids: Vec<_> = fx.acks.iter().map(|a| a.command_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["c2", "c3"]);
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
    // When an active guard is heard: the gate opens, and names the scopes held
    let fx = gate.on_heartbeat(&beat(true), at(3));
    assert_eq!(
        fx.changes,
        vec![
            opened(3),
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
        vec![
            opened(3_003),
            change("global", Mode::Paused, Some("c1"), 3_003)
        ]
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
