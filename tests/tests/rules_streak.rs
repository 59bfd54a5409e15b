//! CONTRACT §2.2: the losing streak.

use guard::message::Scope;
use guard_tests::*;

#[test]
fn fifth_loss_in_a_row_pauses_globally_with_the_losing_fills() {
    let mut h = Harness::new(policy(""));
    for i in 1..=4 {
        assert!(h
            .apply(pnl_fill(
                &format!("l{i}"),
                "beta",
                Some(-10.0),
                t(f64::from(i))
            ))
            .is_empty());
    }
    let decided = h.apply(pnl_fill("l5", "beta", Some(-1.0), t(5.0)));
    assert_eq!(
        describe_all(&decided),
        [
            "pause global losing_streak l5 [l1,l2,l3,l4,l5]",
            "event losing_streak global [l1,l2,l3,l4,l5]"
        ]
    );
    assert_eq!(
        h.commands()[0].reason,
        "5 losing fills in a row (strategy beta)"
    );
}

#[test]
fn absent_or_zero_pnl_keeps_the_streak_and_a_win_resets_it() {
    let mut h = Harness::new(policy(""));
    h.apply(pnl_fill("l1", "beta", Some(-1.0), t(1.0)));
    h.apply(pnl_fill("l2", "beta", Some(-1.0), t(2.0)));
    h.apply(pnl_fill("n1", "beta", None, t(3.0)));
    h.apply(pnl_fill("z1", "beta", Some(0.0), t(4.0)));
    h.apply(pnl_fill("l3", "beta", Some(-1.0), t(5.0)));
    h.apply(pnl_fill("w1", "beta", Some(5.0), t(6.0)));
    for i in 4..=7 {
        h.apply(pnl_fill(
            &format!("l{i}"),
            "beta",
            Some(-1.0),
            t(f64::from(i) + 3.0),
        ));
    }
    assert!(
        h.decisions.is_empty(),
        "the win reset the streak: {:?}",
        describe_all(&h.decisions)
    );
    let decided = h.apply(pnl_fill("l8", "beta", Some(-1.0), t(20.0)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause global losing_streak l8 [l4,l5,l6,l7,l8]"
    );
}

#[test]
fn streaks_are_per_strategy_in_arrival_order() {
    let mut h = Harness::new(policy("[losing_streak]\ntrip_at = 2\npause = \"group\""));
    h.apply(pnl_fill("a1", "alpha", Some(-1.0), t(10.0)));
    h.apply(pnl_fill("b1", "beta", Some(-1.0), t(11.0)));
    // Arrival order, not event time: an earlier ts still extends the streak.
    let decided = h.apply(pnl_fill("a2", "alpha", Some(-1.0), t(1.0)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause strategy:alpha losing_streak a2 [a1,a2]"
    );
    assert!(!h.paused(&Scope::strategy("beta")));
}

#[test]
fn the_streak_restarts_after_a_trip() {
    let mut h = Harness::new(policy("[losing_streak]\ntrip_at = 2"));
    h.apply(pnl_fill("l1", "beta", Some(-1.0), t(1.0)));
    h.apply(pnl_fill("l2", "beta", Some(-1.0), t(2.0)));
    assert_eq!(h.risk_events().len(), 1);
    assert!(h
        .apply(pnl_fill("l3", "beta", Some(-1.0), t(3.0)))
        .is_empty());
    let decided = h.apply(pnl_fill("l4", "beta", Some(-1.0), t(4.0)));
    assert_eq!(
        describe_all(&decided),
        ["event losing_streak global [l3,l4]"]
    );
}

#[test]
fn a_fill_is_judged_by_slippage_before_the_streak() {
    let mut h = Harness::new(policy(
        "[slippage]\ntrip_at = 1\npause = \"group\"\n[losing_streak]\ntrip_at = 1",
    ));
    let mut f = fill("f1", "alpha", 9.0, t(0.0));
    f.realized_pnl = Some(-3.0);
    let decided = h.apply(f);
    assert_eq!(
        describe_all(&decided),
        [
            "pause strategy:alpha slippage_window f1 [f1]",
            "event slippage_window strategy:alpha [f1]",
            "pause global losing_streak f1 [f1]",
            "event losing_streak global [f1]"
        ]
    );
}
