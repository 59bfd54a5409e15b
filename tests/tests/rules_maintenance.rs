//! CONTRACT §2.6: maintenance windows in their own time zone.

use guard::engine::{ClockMode, Engine, EngineOptions};
use guard::message::{Action, Scope};
use guard::policy::Policy;
use guard_tests::*;

// The default window: Tuesday 02:00–03:00 Asia/Tokyo = Monday 17:00–18:00 UTC.

#[test]
fn entering_the_window_pauses_before_the_message_is_applied() {
    let mut h = Harness::new(Policy::default());
    assert!(h
        .apply(fill("f0", "alpha", 0.0, at("2025-08-11T16:59:59.999Z")))
        .is_empty());
    let decided = h.apply(ops(
        "o1",
        Action::Pause,
        Scope::Global,
        at("2025-08-11T17:00:00Z"),
    ));
    assert_eq!(
        describe_all(&decided),
        ["pause global maintenance weekly-os-patch []"]
    );
    let c = h.commands()[0];
    assert_eq!(c.event_ts, at("2025-08-11T17:00:00Z"));
    assert!(
        h.engine
            .state()
            .scopes
            .paused()
            .next()
            .unwrap()
            .1
            .reasons
            .len()
            == 2
    );
}

#[test]
fn leaving_the_window_resumes_at_its_end_across_midnight_utc() {
    // A window 23:00–01:00 UTC on Mondays crosses midnight UTC.
    let text = "[[maintenance]]\nname = \"night\"\nweekday = \"Mon\"\nstart = \"23:00\"\nend = \"01:00\"\ntz = \"UTC\"";
    let mut h = Harness::new(policy(text));
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T23:30:00Z")));
    h.apply(fill("f2", "alpha", 0.0, at("2025-08-12T00:59:59.999Z")));
    let decided = h.apply(fill("f3", "alpha", 0.0, at("2025-08-12T01:00:00Z")));
    assert_eq!(
        describe_all(&decided),
        ["resume global maintenance night []"]
    );
    let resume = h.commands()[1];
    assert_eq!(resume.event_ts, at("2025-08-12T01:00:00Z"));
    assert_eq!(h.commands()[0].event_ts, at("2025-08-11T23:00:00Z"));
}

#[test]
fn a_clock_that_jumps_over_the_window_changes_nothing() {
    let mut h = Harness::new(Policy::default());
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T16:00:00Z")));
    h.apply(fill("f2", "alpha", 0.0, at("2025-08-11T19:00:00Z")));
    assert!(h.decisions.is_empty());
}

#[test]
fn a_late_message_does_not_move_the_clock_back() {
    let mut h = Harness::new(Policy::default());
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:30:00Z")));
    assert_eq!(h.commands().len(), 1);
    assert!(h
        .apply(fill("f2", "alpha", 0.0, at("2025-08-11T16:00:00Z")))
        .is_empty());
    assert!(h.paused(&Scope::Global));
}

#[test]
fn a_resume_at_the_end_keeps_other_reasons() {
    let mut h = Harness::new(Policy::default());
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:10:00Z")));
    h.apply(ops(
        "o1",
        Action::Pause,
        Scope::Global,
        at("2025-08-11T17:20:00Z"),
    ));
    assert!(h
        .apply(fill("f2", "alpha", 0.0, at("2025-08-11T18:10:00Z")))
        .is_empty());
    assert!(h.paused(&Scope::Global));
}

#[test]
fn the_live_clock_is_the_tick_not_the_message() {
    let mut engine = Engine::new(
        Policy::default(),
        EngineOptions {
            clock: ClockMode::External,
            ..EngineOptions::default()
        },
    );
    let outcome = engine.apply(&fill("f1", "alpha", 0.0, at("2025-08-11T17:30:00Z")).into());
    assert!(outcome.decisions.is_empty());
    assert_eq!(
        describe_all(&engine.tick(at("2025-08-11T17:00:00.001Z"))),
        ["pause global maintenance weekly-os-patch []"]
    );
    assert_eq!(
        describe_all(&engine.tick(at("2025-08-11T18:00:00Z"))),
        ["resume global maintenance weekly-os-patch []"]
    );
}

#[test]
fn a_window_in_tokyo_is_tuesday_there() {
    let mut h = Harness::new(Policy::default());
    // Tuesday 02:00 UTC is Tuesday 11:00 in Tokyo: outside the window.
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-12T02:00:00Z")));
    assert!(h.decisions.is_empty());
}

// Version 2: `resume = "operator"` keeps the pause after the window until an
// operator resumes the global scope (the runbook's health check after the work).

const OPERATOR_WINDOW: &str = "[[maintenance]]\nname = \"patch\"\nweekday = \"Mon\"\nstart = \"17:00\"\nend = \"18:00\"\ntz = \"UTC\"\nresume = \"operator\"";

#[test]
fn an_operator_window_stays_paused_after_its_end_until_an_operator_resumes() {
    let mut h = Harness::new(policy(OPERATOR_WINDOW));
    let entered = h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:00:00Z")));
    assert_eq!(
        describe_all(&entered),
        ["pause global maintenance patch []"]
    );
    // Leaving the window changes nothing: still paused, no command.
    assert!(h
        .apply(fill("f2", "alpha", 0.0, at("2025-08-11T18:00:00Z")))
        .is_empty());
    assert!(h.paused(&Scope::Global));
    assert!(h
        .apply(fill("f3", "alpha", 0.0, at("2025-08-12T09:00:00Z")))
        .is_empty());
    // The operator's resume after the health check lifts it.
    let resumed = h.apply(ops(
        "o1",
        Action::Resume,
        Scope::Global,
        at("2025-08-12T09:05:00Z"),
    ));
    assert_eq!(describe_all(&resumed), ["resume global operator o1 [o1]"]);
    // The next week's window pauses again.
    let next = h.apply(fill("f4", "alpha", 0.0, at("2025-08-18T17:00:00Z")));
    assert_eq!(describe_all(&next), ["pause global maintenance patch []"]);
}

#[test]
fn once_an_operator_window_held_the_reason_an_overlapping_auto_window_does_not_lift_it() {
    // An auto window 16:00–19:00 around an operator window 17:00–18:00.
    let text = format!("[[maintenance]]\nname = \"wide\"\nweekday = \"Mon\"\nstart = \"16:00\"\nend = \"19:00\"\ntz = \"UTC\"\n{OPERATOR_WINDOW}");
    let mut h = Harness::new(policy(&text));
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T16:30:00Z")));
    h.apply(fill("f2", "alpha", 0.0, at("2025-08-11T17:30:00Z")));
    assert!(h
        .apply(fill("f3", "alpha", 0.0, at("2025-08-11T19:30:00Z")))
        .is_empty());
    assert!(h.paused(&Scope::Global));
    assert_eq!(h.commands().len(), 1);
}

#[test]
fn an_operator_resume_inside_the_window_is_final_for_that_occurrence() {
    let mut h = Harness::new(policy(OPERATOR_WINDOW));
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:00:00Z")));
    let resumed = h.apply(ops(
        "o1",
        Action::Resume,
        Scope::Global,
        at("2025-08-11T17:10:00Z"),
    ));
    assert_eq!(describe_all(&resumed), ["resume global operator o1 [o1]"]);
    // Leaving the window later neither pauses nor resumes anything.
    assert!(h
        .apply(fill("f2", "alpha", 0.0, at("2025-08-11T18:30:00Z")))
        .is_empty());
    assert!(!h.paused(&Scope::Global));
}

#[test]
fn a_waiting_window_survives_a_snapshot_and_an_auto_window_keeps_the_version() {
    let p = policy(OPERATOR_WINDOW);
    let mut h = Harness::new(p.clone());
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:00:00Z")));
    h.apply(fill("f2", "alpha", 0.0, at("2025-08-11T18:00:00Z")));
    let (mut restored, _) =
        guard::engine::Engine::restore(p, Default::default(), &h.engine.snapshot()).unwrap();
    assert_eq!(restored.state(), h.engine.state());
    assert!(restored
        .apply(&fill("f3", "alpha", 0.0, at("2025-08-11T19:00:00Z")).into())
        .decisions
        .is_empty());
    let auto = policy(&OPERATOR_WINDOW.replace("operator", "auto"));
    let v1 = policy(&OPERATOR_WINDOW.replace("\nresume = \"operator\"", ""));
    assert_eq!(auto.version(), v1.version());
    assert_ne!(policy(OPERATOR_WINDOW).version(), v1.version());
}

#[test]
fn after_the_operator_resumed_an_auto_window_resumes_by_itself_again() {
    let text = format!("{OPERATOR_WINDOW}\n[[maintenance]]\nname = \"wed\"\nweekday = \"Wed\"\nstart = \"01:00\"\nend = \"02:00\"\ntz = \"UTC\"");
    let mut h = Harness::new(policy(&text));
    h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:30:00Z")));
    h.apply(fill("f2", "alpha", 0.0, at("2025-08-11T18:30:00Z")));
    h.apply(ops(
        "o1",
        Action::Resume,
        Scope::Global,
        at("2025-08-11T19:00:00Z"),
    ));
    let entered = h.apply(fill("f3", "alpha", 0.0, at("2025-08-13T01:00:00Z")));
    assert_eq!(describe_all(&entered), ["pause global maintenance wed []"]);
    let left = h.apply(fill("f4", "alpha", 0.0, at("2025-08-13T02:00:00Z")));
    assert_eq!(describe_all(&left), ["resume global maintenance wed []"]);
}
