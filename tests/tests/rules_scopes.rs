//! CONTRACT §2.3, §2.4 and the reason sets: risk events, operators, transitions,
//! duplicates.

use guard::engine::Disposition;
use guard::message::{Action, Input, RiskAction, Scope, Severity};
use guard_tests::*;

#[test]
fn a_critical_risk_event_pauses_its_scope_by_default() {
    let mut h = Harness::new(policy(""));
    let decided = h.apply(risk_event(
        "n1",
        "noctus",
        Severity::Critical,
        Scope::strategy("gamma"),
        t(0.0),
    ));
    assert_eq!(
        describe_all(&decided),
        ["pause strategy:gamma risk_event n1 [n1]"]
    );
}

#[test]
fn warnings_pause_only_when_their_action_says_so() {
    let mut h = Harness::new(policy(""));
    assert!(h
        .apply(risk_event(
            "n1",
            "noctus",
            Severity::Warning,
            Scope::Global,
            t(0.0)
        ))
        .is_empty());
    let mut explicit = risk_event("n2", "noctus", Severity::Info, Scope::Global, t(1.0));
    explicit.action = Some(RiskAction::Pause);
    assert_eq!(
        describe_all(&h.apply(explicit)),
        ["pause global risk_event n2 [n2]"]
    );
    let mut none = risk_event(
        "n3",
        "noctus",
        Severity::Critical,
        Scope::strategy("x"),
        t(2.0),
    );
    none.action = Some(RiskAction::None);
    assert!(h.apply(none).is_empty());
}

#[test]
fn a_risk_event_from_the_guards_own_source_is_ignored() {
    let mut h = Harness::new(policy(""));
    let outcome = h.engine.apply(&Input::RiskEvent(risk_event(
        "e1",
        "guard",
        Severity::Critical,
        Scope::Global,
        t(0.0),
    )));
    assert_eq!(outcome.disposition, Disposition::OwnEvent);
    assert!(outcome.decisions.is_empty());
    assert!(!h.paused(&Scope::Global));
}

#[test]
fn operator_pause_and_resume_are_transitions() {
    let mut h = Harness::new(policy(""));
    assert_eq!(
        describe_all(&h.apply(ops("o1", Action::Pause, Scope::Global, t(0.0)))),
        ["pause global operator o1 [o1]"]
    );
    // Already paused: a second reason, no second command.
    assert!(h
        .apply(risk_event(
            "n1",
            "noctus",
            Severity::Critical,
            Scope::Global,
            t(1.0)
        ))
        .is_empty());
    // Resume clears every reason at once.
    assert_eq!(
        describe_all(&h.apply(ops("o2", Action::Resume, Scope::Global, t(2.0)))),
        ["resume global operator o2 [o2]"]
    );
    // Resuming a running scope changes nothing.
    assert!(h
        .apply(ops("o3", Action::Resume, Scope::Global, t(3.0)))
        .is_empty());
}

#[test]
fn operator_resume_resets_the_windows_and_streaks_that_feed_the_scope() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 6.0, t(1.0)));
    for i in 1..=4 {
        h.apply(pnl_fill(
            &format!("l{i}"),
            "beta",
            Some(-1.0),
            t(2.0 + f64::from(i)),
        ));
    }
    h.apply(ops("o1", Action::Resume, Scope::Global, t(10.0)));
    // Without the reset, one more breach and one more loss would trip both rules.
    assert!(h.apply(fill("f3", "alpha", 6.0, t(11.0))).is_empty());
    assert!(h
        .apply(pnl_fill("l5", "beta", Some(-1.0), t(12.0)))
        .is_empty());
}

#[test]
fn a_strategy_resume_resets_only_that_strategy() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("a1", "alpha", 6.0, t(0.0)));
    h.apply(fill("a2", "alpha", 6.0, t(1.0)));
    h.apply(fill("b1", "beta", 6.0, t(0.0)));
    h.apply(fill("b2", "beta", 6.0, t(1.0)));
    h.apply(ops("o1", Action::Resume, Scope::strategy("alpha"), t(2.0)));
    assert!(h.apply(fill("a3", "alpha", 6.0, t(3.0))).is_empty());
    assert_eq!(
        describe_all(&h.apply(fill("b3", "beta", 6.0, t(3.0))))[0],
        "pause global slippage_window b3 [b1,b2,b3]"
    );
}

#[test]
fn duplicates_change_nothing() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 6.0, t(1.0)));
    let before = h.engine.snapshot();
    let outcome = h
        .engine
        .apply(&Input::Fill(fill("f2", "alpha", 6.0, t(1.0))));
    assert_eq!(outcome.disposition, Disposition::Duplicate);
    assert!(outcome.decisions.is_empty());
    assert_eq!(before, h.engine.snapshot());
    // An operator command repeated after a resume does not pause again.
    h.apply(ops("o1", Action::Pause, Scope::Global, t(2.0)));
    h.apply(ops("o2", Action::Resume, Scope::Global, t(3.0)));
    assert!(h
        .apply(ops("o1", Action::Pause, Scope::Global, t(2.0)))
        .is_empty());
}

#[test]
fn the_same_id_on_different_streams_is_not_a_duplicate() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("x1", "alpha", 0.0, t(0.0)));
    assert_eq!(
        h.apply(ops("x1", Action::Pause, Scope::Global, t(1.0)))
            .len(),
        1
    );
}
