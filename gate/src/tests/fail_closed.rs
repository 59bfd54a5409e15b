//! The gate fails closed while it has no state or hears no active guard.

use super::*;
use crate::FailClosed;

#[test]
fn a_new_gate_pauses_every_strategy_for_no_state() {
    let mut gate = Gate::new("gw-1", 3_000);
    gate.on_heartbeat(&beat(true), at(0));
    assert_eq!(verdict(&gate, "alpha", 0), paused(&["no_state"]));
    assert_eq!(gate.fail_closed(0), Some(FailClosed::NoState));
}

#[test]
fn a_caught_up_gate_that_never_heard_the_guard_pauses_for_guard_silent() {
    let mut gate = Gate::new("gw-1", 3_000);
    gate.caught_up(at(0));
    assert_eq!(verdict(&gate, "alpha", 0), paused(&["guard_silent"]));
}

#[test]
fn a_standby_heartbeat_never_opens_the_gate() {
    let mut gate = Gate::new("gw-1", 3_000);
    gate.caught_up(at(0));
    gate.on_heartbeat(&beat(false), at(10));
    assert_eq!(verdict(&gate, "alpha", 10), paused(&["guard_silent"]));
    assert_eq!(gate.heard_ms(), None);
}

#[test]
fn exactly_max_silence_after_the_last_active_heartbeat_is_open_and_a_ms_more_is_closed() {
    // Given a gate that heard an active guard at 1,000 ms with max_silence 3,000 ms
    let mut gate = Gate::new("gw-1", 3_000);
    gate.caught_up(at(0));
    gate.on_heartbeat(&beat(true), at(1_000));
    // Then it is open up to and including 4,000 ms, and closed from 4,001 ms.
    assert_eq!(verdict(&gate, "alpha", 4_000), running());
    assert_eq!(verdict(&gate, "alpha", 4_001), paused(&["guard_silent"]));
}

#[test]
fn a_standby_heartbeat_does_not_keep_a_silent_gate_open() {
    let mut gate = open_gate();
    gate.on_heartbeat(&beat(false), at(2_500));
    assert_eq!(verdict(&gate, "alpha", 3_001), paused(&["guard_silent"]));
}

#[test]
fn a_heartbeat_after_silence_opens_the_gate_again() {
    let mut gate = open_gate();
    assert_eq!(verdict(&gate, "alpha", 5_000), paused(&["guard_silent"]));
    gate.on_heartbeat(&beat(true), at(5_000));
    assert_eq!(verdict(&gate, "alpha", 5_000), running());
}

#[test]
fn failing_closed_outranks_the_scopes_reasons() {
    let mut gate = Gate::new("gw-1", 3_000);
    gate.on_pause_state(
        &record("c1", Scope::Global, Mode::Paused, &["operator"]),
        at(0),
    );
    assert_eq!(verdict(&gate, "alpha", 0), paused(&["no_state"]));
    let closed = gate.may_trade("alpha", 0);
    match closed {
        Verdict::Paused(why) => assert_eq!(why.fail_closed(), Some(FailClosed::NoState)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn commands_before_the_state_wait_for_it_and_owe_their_acks_then() {
    // Given a gate still reading the pause state
    let mut gate = Gate::new("gw-1", 3_000);
    gate.on_heartbeat(&beat(true), at(0));
    // When a command comes
    let fx = gate.on_command(&command("c1", Action::Pause, alpha(), "operator"), at(1));
    // Then nothing is owed yet, and the command is not in the state
    assert!(fx.acks.is_empty());
    assert!(gate.scope(&alpha()).is_none());
    // When the pause state is read to its end
    let fx = gate.caught_up(at(2));
    // Then the command is in force and its ack owed
    assert_eq!(fx.acks.len(), 1);
    assert_eq!(fx.acks[0].command_id, "c1");
    assert_eq!(verdict(&gate, "alpha", 2), paused(&["operator"]));
}

#[test]
fn a_record_older_than_a_command_that_came_during_the_initial_read_does_not_win() {
    // Given a command c2 that comes live while the initial read is still at c1's record
    let mut gate = Gate::new("gw-1", 3_000);
    gate.on_heartbeat(&beat(true), at(0));
    gate.on_command(&command("c2", Action::Pause, alpha(), "operator"), at(1));
    gate.on_pause_state(&record("c1", alpha(), Mode::Running, &[]), at(2));
    // When the read ends
    gate.caught_up(at(3));
    // Then c2 holds
    assert_eq!(verdict(&gate, "alpha", 3), paused(&["operator"]));
    // and its record, coming after, completes it without moving it
    gate.on_pause_state(&record("c2", alpha(), Mode::Paused, &["operator"]), at(4));
    assert_eq!(
        gate.scope(&alpha()).unwrap().command_id.as_deref(),
        Some("c2")
    );
}
