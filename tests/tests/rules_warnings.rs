//! CONTRACT §2.7 (version 2): warnings — a risk event of severity `warning`, action
//! `none`, one step before a trip; off unless `[warnings] enabled = true`.

use guard::message::{Action, Decision, RiskAction, Scope, Severity};
use guard::policy::Policy;
use guard_tests::*;

const ON: &str = "[warnings]\nenabled = true\n";

fn warnings(decided: &[Decision]) -> Vec<String> {
    decided
        .iter()
        .filter(|d| matches!(d, Decision::RiskEvent(e) if e.severity == Severity::Warning))
        .map(describe)
        .collect()
}

fn mins(m: f64) -> guard::time::Timestamp {
    t(m * 60.0)
}

#[test]
fn off_by_default_no_warning_is_raised() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 9.0, mins(0.0)));
    assert!(h.apply(fill("f2", "alpha", 9.0, mins(1.0))).is_empty());
    for i in 0..4 {
        h.apply(pnl_fill(
            &format!("l{i}"),
            "beta",
            Some(-1.0),
            mins(2.0 + i as f64),
        ));
    }
    assert!(warnings(&h.decisions).is_empty());
}

#[test]
fn a_slippage_run_one_short_of_trip_at_warns_then_the_trip_comes() {
    let mut h = Harness::new(policy(ON));
    assert!(h.apply(fill("f1", "alpha", 9.0, mins(0.0))).is_empty());
    let warned = h.apply(fill("f2", "alpha", 9.0, mins(1.0)));
    assert_eq!(
        describe_all(&warned),
        ["event slippage_window_warning global [f1,f2]"]
    );
    let Decision::RiskEvent(e) = &warned[0] else {
        unreachable!()
    };
    assert_eq!(
        (e.severity, e.action),
        (Severity::Warning, Some(RiskAction::None))
    );
    assert!(
        e.reason.as_deref().unwrap().contains("one more trips"),
        "{e:?}"
    );
    assert!(!h.paused(&Scope::Global), "a warning changes no scope");
    let tripped = h.apply(fill("f3", "alpha", 9.0, mins(2.0)));
    assert_eq!(
        describe_all(&tripped),
        [
            "pause global slippage_window f3 [f1,f2,f3]",
            "event slippage_window global [f1,f2,f3]"
        ]
    );
}

#[test]
fn a_group_warns_again_only_a_window_away_from_its_last_warning() {
    // trip_at 3, window 10 minutes.
    let mut h = Harness::new(policy(ON));
    h.apply(fill("f1", "alpha", 9.0, mins(0.0)));
    assert_eq!(
        warnings(&h.apply(fill("f2", "alpha", 9.0, mins(5.0)))).len(),
        1
    );
    // f2–f3 is a run of 2 within the window (no trip: f1–f3 spans 14 m), but f3 is
    // 9 m from the last warning's trigger f2.
    assert!(h.apply(fill("f3", "alpha", 9.0, mins(14.0))).is_empty());
    // f3–f4 again, and f4 is 11 m from f2: a warning.
    let again = h.apply(fill("f4", "alpha", 9.0, mins(16.0)));
    assert_eq!(
        describe_all(&again),
        ["event slippage_window_warning global [f3,f4]"]
    );
}

#[test]
fn a_late_breach_less_than_a_window_before_the_last_warning_does_not_warn() {
    // One window for all strategies: a strategy resume takes alpha's breach out of
    // it, but the shared group keeps its last warning (it was not reset as a whole).
    let mut h = Harness::new(policy(&format!("{ON}[slippage]\ngroup_by = \"global\"")));
    h.apply(fill("a1", "alpha", 9.0, mins(0.0)));
    let warned = h.apply(fill("b1", "beta", 9.0, mins(5.0)));
    assert_eq!(
        describe_all(&warned),
        ["event slippage_window_warning global [a1,b1]"]
    );
    h.apply(ops(
        "o1",
        Action::Resume,
        Scope::strategy("alpha"),
        mins(5.5),
    ));
    // gamma's late breach makes a run of 2 with b1, 8 minutes before b1: no warning.
    assert!(h.apply(fill("g1", "gamma", 9.0, mins(-3.0))).is_empty());
    // A run 10 minutes or more from b1 warns again.
    h.apply(fill("d1", "delta", 9.0, mins(30.0)));
    assert_eq!(
        warnings(&h.apply(fill("d2", "delta", 9.0, mins(31.0)))).len(),
        1
    );
}

#[test]
fn a_trip_or_a_resume_makes_the_group_forget_its_last_warning() {
    let mut h = Harness::new(policy(ON));
    h.apply(fill("f1", "alpha", 9.0, mins(0.0)));
    h.apply(fill("f2", "alpha", 9.0, mins(1.0)));
    h.apply(fill("f3", "alpha", 9.0, mins(2.0)));
    // The trip forgot the warning at f2: a new run of 2 warns at once.
    h.apply(fill("f4", "alpha", 9.0, mins(3.0)));
    assert_eq!(
        warnings(&h.apply(fill("f5", "alpha", 9.0, mins(4.0)))).len(),
        1
    );
    // A strategy resume resets the group (its breaches and its last warning).
    h.apply(ops(
        "o1",
        Action::Resume,
        Scope::strategy("alpha"),
        mins(4.5),
    ));
    h.apply(fill("f6", "alpha", 9.0, mins(5.0)));
    assert_eq!(
        warnings(&h.apply(fill("f7", "alpha", 9.0, mins(6.0)))).len(),
        1
    );
}

#[test]
fn a_losing_streak_one_short_of_trip_at_warns_with_its_fills() {
    let mut h = Harness::new(policy(&format!("{ON}[losing_streak]\npause = \"group\"")));
    for i in 0..3 {
        assert!(h
            .apply(pnl_fill(
                &format!("l{i}"),
                "beta",
                Some(-1.0),
                mins(i as f64)
            ))
            .is_empty());
    }
    let warned = h.apply(pnl_fill("l3", "beta", Some(-2.0), mins(3.0)));
    assert_eq!(
        describe_all(&warned),
        ["event losing_streak_warning strategy:beta [l0,l1,l2,l3]"]
    );
    // A zero leaves the streak as it is (no second warning); the fifth loss trips.
    assert!(h
        .apply(pnl_fill("z", "beta", Some(0.0), mins(4.0)))
        .is_empty());
    let tripped = h.apply(pnl_fill("l4", "beta", Some(-1.0), mins(5.0)));
    assert_eq!(tripped.len(), 2);
    assert!(warnings(&tripped).is_empty());
}

#[test]
fn enhanced_monitoring_moves_the_warning_with_trip_at_and_trip_at_1_never_warns() {
    // Enhanced: trip_at 5 → 3, so the warning comes at the second loss.
    let mut h = Harness::new(policy(ON));
    h.apply(release("beta", mins(0.0)));
    h.apply(pnl_fill("l0", "beta", Some(-1.0), mins(1.0)));
    let warned = h.apply(pnl_fill("l1", "beta", Some(-1.0), mins(2.0)));
    assert_eq!(
        describe_all(&warned),
        ["event losing_streak_warning global [l0,l1]"]
    );
    assert!(warned.iter().any(
        |d| matches!(d, Decision::RiskEvent(e) if e.reason.as_deref().unwrap().contains("enhanced"))
    ));
    let mut h = Harness::new(policy(&format!(
        "{ON}[losing_streak]\ntrip_at = 1\n[slippage]\ntrip_at = 1"
    )));
    let decided = h.apply(pnl_fill("l0", "beta", Some(-1.0), mins(0.0)));
    assert!(warnings(&decided).is_empty());
    assert!(warnings(&h.apply(fill("f1", "beta", 9.0, mins(1.0)))).is_empty());
}

#[test]
fn the_warnings_switch_is_checked_and_only_enabled_changes_the_version() {
    let err = Policy::from_toml("[warnings]\nenable = true").unwrap_err();
    assert!(err.to_string().contains("warnings.enable"), "{err}");
    let off = Policy::from_toml("[warnings]\nenabled = false").unwrap();
    assert_eq!(off.version(), Policy::default().version());
    assert_ne!(
        Policy::from_toml(ON).unwrap().version(),
        Policy::default().version()
    );
}
