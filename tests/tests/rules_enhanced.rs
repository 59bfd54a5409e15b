//! CONTRACT §2.5: enhanced monitoring after an adoption.

use guard::message::Scope;
use guard_tests::*;

fn three_breaches_of(h: &mut Harness, bps: f64, start: f64) -> usize {
    let mut decided = 0;
    for i in 0..3 {
        decided += h
            .apply(fill(
                &format!("f{start}-{i}"),
                "alpha",
                bps,
                t(start + f64::from(i)),
            ))
            .len();
    }
    decided
}

#[test]
fn at_adopted_at_thresholds_halve_and_trip_at_rounds_up() {
    // Given alpha adopted at t=0: threshold 2.5 bps, trip_at ceil(3 * 0.5) = 2
    let mut h = Harness::new(policy(""));
    h.apply(release("alpha", t(0.0)));
    h.apply(fill("f1", "alpha", 3.0, t(0.0)));
    let decided = h.apply(fill("f2", "alpha", 3.0, t(1.0)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause global slippage_window f2 [f1,f2]"
    );
    assert_eq!(
        h.commands()[0].reason,
        "2 fills with slippage > 2.5 bps within 600 s (strategy alpha), enhanced monitoring"
    );
}

#[test]
fn at_adopted_at_plus_lookback_the_normal_policy_is_back() {
    let mut h = Harness::new(policy(""));
    h.apply(release("alpha", t(0.0)));
    // 3 bps breaches at exactly adopted_at + 24 h are not breaches of the normal 5 bps.
    assert_eq!(three_breaches_of(&mut h, 3.0, 86_400.0), 0);
    // 6 bps: normal trip_at of 3 applies.
    h.apply(fill("g1", "alpha", 6.0, t(86_500.0)));
    assert!(h.apply(fill("g2", "alpha", 6.0, t(86_501.0))).is_empty());
    assert_eq!(h.apply(fill("g3", "alpha", 6.0, t(86_502.0))).len(), 2);
}

#[test]
fn fills_before_adopted_at_are_judged_normally() {
    let mut h = Harness::new(policy(""));
    h.apply(release("alpha", t(1_000.0)));
    assert_eq!(three_breaches_of(&mut h, 3.0, 900.0), 0);
}

#[test]
fn only_adoptions_received_so_far_count() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 3.0, t(10.0)));
    h.apply(release("alpha", t(0.0)));
    // f1 was judged before the adoption arrived: not a breach then, so one more is not two.
    assert!(h.apply(fill("f2", "alpha", 3.0, t(11.0))).is_empty());
    assert_eq!(h.apply(fill("f3", "alpha", 3.0, t(12.0))).len(), 2);
}

#[test]
fn enhanced_losing_streak_trips_at_ceil_of_half() {
    let mut h = Harness::new(policy(""));
    h.apply(release("beta", t(0.0)));
    h.apply(pnl_fill("l1", "beta", Some(-1.0), t(1.0)));
    h.apply(pnl_fill("l2", "beta", Some(-1.0), t(2.0)));
    let decided = h.apply(pnl_fill("l3", "beta", Some(-1.0), t(3.0)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause global losing_streak l3 [l1,l2,l3]"
    );
}

#[test]
fn in_a_global_window_each_breach_uses_its_own_strategys_threshold() {
    let mut h = Harness::new(policy("[slippage]\ngroup_by = \"global\""));
    h.apply(release("alpha", t(0.0)));
    // 3 bps is a breach for alpha (2.5) but not for beta (5.0).
    assert!(h.apply(fill("b1", "beta", 3.0, t(1.0))).is_empty());
    h.apply(fill("b2", "beta", 6.0, t(2.0)));
    // alpha's new breach: the run length is alpha's trip_at (2): [b2, a1].
    let decided = h.apply(fill("a1", "alpha", 3.0, t(3.0)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause global slippage_window a1 [b2,a1]"
    );
    assert!(h.paused(&Scope::Global));
}

#[test]
fn disabled_enhanced_monitoring_changes_nothing() {
    let mut h = Harness::new(policy("[enhanced]\nenabled = false"));
    h.apply(release("alpha", t(0.0)));
    assert_eq!(three_breaches_of(&mut h, 3.0, 1.0), 0);
}
