//! CONTRACT §2.1: the slippage window.

use guard::message::{Action, Rule, Scope};
use guard_tests::*;

#[test]
fn slippage_third_breach_within_window_pauses_globally() {
    // Given the runbook policy (3 breaches > 5 bps within 10 minutes, pause global)
    let mut h = Harness::new(policy(""));
    // When three breaching fills of alpha arrive within 9 minutes
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 7.0, t(240.0)));
    let decided = h.apply(fill("f3", "alpha", 8.0, t(540.0)));
    // Then the global scope pauses, the command before its risk event, with the run as evidence
    assert_eq!(
        describe_all(&decided),
        [
            "pause global slippage_window f3 [f1,f2,f3]",
            "event slippage_window global [f1,f2,f3]"
        ]
    );
    assert_eq!(
        h.commands()[0].reason,
        "3 fills with slippage > 5.0 bps within 600 s (strategy alpha)"
    );
    assert!(h.paused(&Scope::Global));
}

#[test]
fn slippage_equal_to_threshold_is_not_a_breach() {
    let mut h = Harness::new(policy(""));
    for (i, secs) in [0.0, 10.0, 20.0].into_iter().enumerate() {
        h.apply(fill(&format!("f{i}"), "alpha", 5.0, t(secs)));
    }
    assert!(h.decisions.is_empty());
}

#[test]
fn breaches_exactly_window_apart_do_not_trip() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 6.0, t(300.0)));
    h.apply(fill("f3", "alpha", 6.0, t(600.0)));
    assert!(h.decisions.is_empty(), "{:?}", describe_all(&h.decisions));
}

#[test]
fn breaches_one_millisecond_less_than_window_apart_trip() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 6.0, t(300.0)));
    let decided = h.apply(fill("f3", "alpha", 6.0, t(599.999)));
    assert_eq!(decided.len(), 2);
    assert!(h.paused(&Scope::Global));
}

#[test]
fn a_late_breach_completes_a_run_by_its_event_time() {
    // Given breaches at 0 s and 500 s, then one at 1100 s (no run spans < 600 s)
    let mut h = Harness::new(policy(""));
    h.apply(fill("f1", "alpha", 6.0, t(0.0)));
    h.apply(fill("f2", "alpha", 6.0, t(500.0)));
    h.apply(fill("f3", "alpha", 6.0, t(1100.0)));
    assert!(h.decisions.is_empty());
    // When a late breach at 300 s arrives
    let decided = h.apply(fill("late", "alpha", 6.0, t(300.0)));
    // Then the earliest qualifying run [f1, late, f2] trips, in event-time order
    assert_eq!(
        describe_all(&decided)[0],
        "pause global slippage_window late [f1,late,f2]"
    );
}

#[test]
fn a_fourth_breach_after_a_trip_starts_a_new_count() {
    let mut h = Harness::new(policy(""));
    for (i, secs) in [0.0, 10.0, 20.0].into_iter().enumerate() {
        h.apply(fill(&format!("f{i}"), "alpha", 6.0, t(secs)));
    }
    assert_eq!(h.commands().len(), 1);
    // The run left the window, so the fourth breach alone trips nothing.
    let decided = h.apply(fill("f4", "alpha", 6.0, t(30.0)));
    assert!(decided.is_empty());
    // Two more trip again: a risk event, but no second pause while already paused.
    h.apply(fill("f5", "alpha", 6.0, t(40.0)));
    let decided = h.apply(fill("f6", "alpha", 6.0, t(50.0)));
    assert_eq!(
        describe_all(&decided),
        ["event slippage_window global [f4,f5,f6]"]
    );
    assert_eq!(h.commands().len(), 1);
}

#[test]
fn windows_are_per_strategy_by_default() {
    let mut h = Harness::new(policy(""));
    h.apply(fill("a1", "alpha", 6.0, t(0.0)));
    h.apply(fill("b1", "beta", 6.0, t(1.0)));
    h.apply(fill("a2", "alpha", 6.0, t(2.0)));
    h.apply(fill("b2", "beta", 6.0, t(3.0)));
    assert!(h.decisions.is_empty());
}

#[test]
fn a_global_window_mixes_strategies_and_pause_group_pauses_global() {
    let mut h = Harness::new(policy(
        "[slippage]\ngroup_by = \"global\"\npause = \"group\"",
    ));
    h.apply(fill("a1", "alpha", 6.0, t(0.0)));
    h.apply(fill("b1", "beta", 6.0, t(1.0)));
    let decided = h.apply(fill("a2", "alpha", 6.0, t(2.0)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause global slippage_window a2 [a1,b1,a2]"
    );
    assert!(h.commands()[0].reason.ends_with("(all strategies)"));
}

#[test]
fn pause_group_pauses_only_the_strategy() {
    let mut h = Harness::new(policy("[slippage]\npause = \"group\""));
    for (i, secs) in [0.0, 10.0, 20.0].into_iter().enumerate() {
        h.apply(fill(&format!("f{i}"), "alpha", 6.0, t(secs)));
    }
    let c = h.commands()[0];
    assert_eq!(
        (c.action, &c.scope, rule_of(c)),
        (
            Action::Pause,
            &Scope::strategy("alpha"),
            Rule::SlippageWindow
        )
    );
    assert!(!h.paused(&Scope::Global));
    assert!(!h.engine.state().scopes.may_trade("alpha"));
    assert!(h.engine.state().scopes.may_trade("beta"));
}

#[test]
fn slippage_is_computed_from_prices_when_absent() {
    let mut h = Harness::new(policy("[slippage]\ntrip_at = 1"));
    let mut sell = fill("s1", "alpha", 0.0, t(0.0));
    sell.slippage_bps = None;
    sell.side = guard::message::Side::Sell;
    sell.expected_price = 100.0;
    sell.fill_price = 99.94; // 6 bps worse for a sell
    assert_eq!(h.apply(sell).len(), 2);
    let mut buy = fill("b1", "alpha", 0.0, t(1.0));
    buy.slippage_bps = None;
    buy.fill_price = 99.0; // better than expected for a buy: not adverse
    assert!(h.apply(buy).is_empty());
}

#[test]
fn a_disabled_slippage_rule_never_trips() {
    let mut h = Harness::new(policy("[slippage]\nenabled = false"));
    for (i, secs) in [0.0, 1.0, 2.0, 3.0].into_iter().enumerate() {
        h.apply(fill(&format!("f{i}"), "alpha", 60.0, t(secs)));
    }
    assert!(h.decisions.is_empty());
}
