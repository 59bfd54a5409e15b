//! Repeats after a guard restart, and the two halves of one decision (a command and
//! its pause-state record), in either order.

use super::*;
use crate::held::REMEMBERED_DECISIONS;

#[test]
fn repeats_of_applied_commands_after_a_guard_restart_do_not_roll_back() {
    // Given global paused (c1), resumed (c2), paused again (c3)
    let mut gate = open_gate();
    gate.on_command(
        &command("c1", Action::Pause, Scope::Global, "operator"),
        at(1),
    );
    gate.on_command(
        &command("c2", Action::Resume, Scope::Global, "operator"),
        at(2),
    );
    gate.on_command(
        &command("c3", Action::Pause, Scope::Global, "slippage_window"),
        at(3),
    );
    // When a restarted guard repeats c2 then c3
    let fx = gate.on_command(
        &command("c2", Action::Resume, Scope::Global, "operator"),
        at(4),
    );
    // Then the repeat of c2 does not resume the scope, and owes nothing
    assert_eq!(verdict(&gate, "alpha", 4), paused(&["slippage_window"]));
    assert!(fx.is_empty());
    gate.on_command(
        &command("c3", Action::Pause, Scope::Global, "slippage_window"),
        at(5),
    );
    assert_eq!(verdict(&gate, "alpha", 5), paused(&["slippage_window"]));
    assert_eq!(gate.counters().repeats_dropped, 2);
}

#[test]
fn repeats_of_pause_state_records_do_not_roll_back() {
    let mut gate = open_gate();
    gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(1));
    gate.on_pause_state(&record("c2", alpha(), Mode::Running, &[]), at(2));
    gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(3));
    assert_eq!(verdict(&gate, "alpha", 3), running());
    gate.on_pause_state(&record("c2", alpha(), Mode::Running, &[]), at(4));
    assert_eq!(verdict(&gate, "alpha", 4), running());
}

#[test]
fn a_command_then_its_record_ends_with_the_records_reasons() {
    let mut gate = open_gate();
    let fx = gate.on_command(
        &command("c1", Action::Pause, Scope::Global, "operator"),
        at(1),
    );
    assert_eq!(fx.acks.len(), 1);
    let both = record(
        "c1",
        Scope::Global,
        Mode::Paused,
        &["maintenance", "operator"],
    );
    let fx = gate.on_pause_state(&both, at(2));
    assert!(fx.is_empty(), "the same decision: no change, no second ack");
    assert_eq!(
        verdict(&gate, "alpha", 2),
        paused(&["maintenance", "operator"])
    );
}

#[test]
fn a_record_then_its_command_ends_with_the_records_reasons_and_one_ack() {
    let mut gate = open_gate();
    let both = record(
        "c1",
        Scope::Global,
        Mode::Paused,
        &["maintenance", "operator"],
    );
    let fx = gate.on_pause_state(&both, at(1));
    assert_eq!(fx.acks.len(), 1, "the record put the decision in force");
    let fx = gate.on_command(
        &command("c1", Action::Pause, Scope::Global, "operator"),
        at(2),
    );
    assert!(fx.is_empty(), "the same decision: no change, no second ack");
    assert_eq!(
        verdict(&gate, "alpha", 2),
        paused(&["maintenance", "operator"])
    );
    assert_eq!(
        gate.counters().commands_applied,
        0,
        "its record had applied it"
    );
}

#[test]
fn a_record_that_comes_after_a_newer_command_does_not_roll_back() {
    // Given c1 (pause) and c2 (resume) commands, the records lagging behind
    let mut gate = open_gate();
    gate.on_command(&command("c1", Action::Pause, alpha(), "operator"), at(1));
    gate.on_command(&command("c2", Action::Resume, alpha(), "operator"), at(2));
    // When c1's record comes
    gate.on_pause_state(&record("c1", alpha(), Mode::Paused, &["operator"]), at(3));
    // Then alpha still runs
    assert_eq!(verdict(&gate, "alpha", 3), running());
}

#[test]
fn a_repeat_reaching_past_the_remembered_decisions_ends_on_the_newest() {
    // Given more decisions of one scope than it remembers, ending paused
    let mut gate = open_gate();
    let n = REMEMBERED_DECISIONS + 10;
    let decision = |i: usize| {
        let action = if i % 2 == 0 {
            Action::Pause
        } else {
            Action::Resume
        };
        command(&format!("c{i}"), action, Scope::Global, "operator")
    };
    for i in 0..=n {
        gate.on_command(&decision(i), at(1));
    }
    let newest = verdict(&gate, "alpha", 1);
    // When the guard repeats everything from the first decision on
    for i in 0..=n {
        gate.on_command(&decision(i), at(2));
    }
    // Then the scope ends where it was
    assert_eq!(verdict(&gate, "alpha", 2), newest);
    assert_eq!(
        gate.global().command_id.as_deref(),
        Some(format!("c{n}").as_str())
    );
}
