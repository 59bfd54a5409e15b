//! CONTRACT §2 (version 2): reasons carry an effect, a scope's mode is `paused`,
//! `reduce_only` or `running`, and commands announce changes of mode.

use guard::message::{Action, Mode, RiskAction, Scope, Severity};
use guard::policy::Policy;
use guard_tests::*;

fn noctus_reduce_only(id: &str, scope: Scope, secs: f64) -> guard::message::RiskEvent {
    let mut e = risk_event(id, "noctus", Severity::Warning, scope, t(secs));
    e.action = Some(RiskAction::ReduceOnly);
    e
}

#[test]
fn a_reduce_only_risk_event_sets_its_scope_reduce_only() {
    let mut h = Harness::new(policy(""));
    let decided = h.apply(noctus_reduce_only("e1", Scope::strategy("alpha"), 1.0));
    assert_eq!(
        describe_all(&decided),
        ["reduce_only strategy:alpha risk_event e1 [e1]"]
    );
    assert_eq!(
        h.engine.state().scopes.mode(&Scope::strategy("alpha")),
        Mode::ReduceOnly
    );
    // It may still trade (reduce only): the gateways' rule, not a pause.
    assert!(h.engine.state().scopes.may_trade("alpha"));
    // The same reason again changes nothing.
    assert!(h
        .apply(noctus_reduce_only("e2", Scope::strategy("alpha"), 2.0))
        .is_empty());
}

#[test]
fn a_pause_over_reduce_only_and_back_announces_each_change_of_mode() {
    // Given a global scope in reduce-only by a risk event
    let mut h = Harness::new(Policy::default());
    h.apply(noctus_reduce_only("e1", Scope::Global, 1.0));
    // When the maintenance window (Monday 17:00–18:00 UTC) comes and goes
    let entered = h.apply(fill("f1", "alpha", 0.0, at("2025-08-11T17:00:00Z")));
    let left = h.apply(fill("f2", "alpha", 0.0, at("2025-08-11T18:00:00Z")));
    // Then it pauses, and back to reduce-only (not running) when the window ends
    assert_eq!(
        describe_all(&entered),
        ["pause global maintenance weekly-os-patch []"]
    );
    assert_eq!(
        describe_all(&left),
        ["reduce_only global maintenance weekly-os-patch []"]
    );
    assert_eq!(h.commands()[2].event_ts, at("2025-08-11T18:00:00Z"));
    // And an operator's resume clears every reason
    let resumed = h.apply(ops(
        "o1",
        Action::Resume,
        Scope::Global,
        at("2025-08-11T18:01:00Z"),
    ));
    assert_eq!(describe_all(&resumed), ["resume global operator o1 [o1]"]);
    assert_eq!(h.engine.state().scopes.mode(&Scope::Global), Mode::Running);
}

#[test]
fn operators_order_reduce_only_and_a_pause_outranks_it() {
    let mut h = Harness::new(policy(""));
    let s = Scope::strategy("beta");
    let r = h.apply(ops("o1", Action::ReduceOnly, s.clone(), t(1.0)));
    assert_eq!(
        describe_all(&r),
        ["reduce_only strategy:beta operator o1 [o1]"]
    );
    assert!(h.commands()[0]
        .reason
        .contains("set reduce-only on strategy:beta"));
    let p = h.apply(ops("o2", Action::Pause, s.clone(), t(2.0)));
    assert_eq!(describe_all(&p), ["pause strategy:beta operator o2 [o2]"]);
    // reduce-only while paused: held, but the mode stays paused, so no command
    assert!(h
        .apply(ops("o3", Action::ReduceOnly, s.clone(), t(3.0)))
        .is_empty());
    assert!(h.paused(&s));
}

#[test]
fn a_rule_with_action_reduce_only_trips_into_reduce_only() {
    // Given slippage trips that only reduce positions, per strategy
    let mut h = Harness::new(policy(
        "[slippage]\naction = \"reduce_only\"\npause = \"group\"",
    ));
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 6.0, t(1.0)));
    let decided = h.apply(fill("f3", "alpha", 6.0, t(2.0)));
    // Then the command is reduce_only, and the risk event says so as its action
    assert_eq!(
        describe_all(&decided),
        [
            "reduce_only strategy:alpha slippage_window f3 [f1,f2,f3]",
            "event slippage_window strategy:alpha [f1,f2,f3]"
        ]
    );
    assert_eq!(h.risk_events()[0].action, Some(RiskAction::ReduceOnly));
    // A losing streak with the default action then pauses the whole desk
    for i in 0..5 {
        h.apply(pnl_fill(
            &format!("l{i}"),
            "alpha",
            Some(-1.0),
            t(10.0 + i as f64),
        ));
    }
    assert_eq!(h.commands().last().unwrap().action, Action::Pause);
    assert_eq!(
        h.engine.state().scopes.mode(&Scope::strategy("alpha")),
        Mode::ReduceOnly
    );
}

#[test]
fn an_action_other_than_pause_or_reduce_only_is_refused_with_its_key() {
    let err = Policy::from_toml("[losing_streak]\naction = \"halt\"").unwrap_err();
    assert!(err.to_string().contains("losing_streak.action"), "{err}");
    assert!(err.to_string().contains("reduce_only"), "{err}");
}

#[test]
fn a_version_1_policy_keeps_its_version_and_the_default_action_is_not_written() {
    let explicit =
        Policy::from_toml("[slippage]\naction = \"pause\"\n[losing_streak]\naction = \"pause\"")
            .unwrap();
    assert_eq!(explicit.version(), Policy::default().version());
    let reduce = Policy::from_toml("[slippage]\naction = \"reduce_only\"").unwrap();
    assert_ne!(reduce.version(), Policy::default().version());
}
