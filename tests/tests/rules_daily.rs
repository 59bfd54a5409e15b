//! CONTRACT §2.8 (version 2): daily loss and daily drawdown, per group and trading
//! day, at most once per group and day.

use guard::message::{Action, Decision, Scope};
use guard::policy::Policy;
use guard_tests::*;

fn loss_fill(id: &str, strategy: &str, pnl: Option<f64>, ts: &str) -> guard::message::Fill {
    pnl_fill(id, strategy, pnl, at(ts))
}

fn trips(decided: &[Decision]) -> Vec<String> {
    describe_all(decided)
}

const LOSS: &str = "[daily]\nmax_loss = 1000.0\ntz = \"UTC\"\n";

#[test]
fn a_day_trips_exactly_at_the_loss_limit_and_only_once() {
    let mut h = Harness::new(policy(LOSS));
    assert!(h
        .apply(loss_fill(
            "f1",
            "alpha",
            Some(-600.0),
            "2025-08-11T01:00:00Z"
        ))
        .is_empty());
    let tripped = h.apply(loss_fill(
        "f2",
        "alpha",
        Some(-400.0),
        "2025-08-11T02:00:00Z",
    ));
    assert_eq!(
        trips(&tripped),
        [
            "pause global daily_loss f2 [f2]",
            "event daily_loss global [f2]"
        ]
    );
    let reason = &h.commands()[0].reason;
    assert!(
        reason.contains("2025-08-11") && reason.contains("-1000.0") && reason.contains("1000.0"),
        "{reason}"
    );
    // Once per group and day, whatever comes after.
    h.apply(ops(
        "o1",
        Action::Resume,
        Scope::Global,
        at("2025-08-11T02:30:00Z"),
    ));
    // (the resume forgot the day: a new loss of 1000 trips again)
    assert!(h
        .apply(loss_fill(
            "f3",
            "alpha",
            Some(-999.0),
            "2025-08-11T03:00:00Z"
        ))
        .is_empty());
    assert_eq!(
        h.apply(loss_fill("f4", "alpha", Some(-1.0), "2025-08-11T03:10:00Z"))
            .len(),
        2
    );
    assert!(h
        .apply(loss_fill(
            "f5",
            "alpha",
            Some(-5000.0),
            "2025-08-11T04:00:00Z"
        ))
        .is_empty());
    // Another strategy has its own day.
    assert!(h
        .apply(loss_fill(
            "g1",
            "beta",
            Some(-999.99),
            "2025-08-11T04:00:00Z"
        ))
        .is_empty());
}

#[test]
fn the_trading_day_starts_at_day_start_in_its_own_time_zone() {
    // New York, days from 17:00 local (21:00 UTC in August).
    let p = policy("[daily]\nmax_loss = 100.0\nday_start = \"17:00\"\ntz = \"America/New_York\"");
    let mut h = Harness::new(p);
    // 16:59:59 local belongs to the day before; 17:00 starts a new one.
    h.apply(loss_fill(
        "f1",
        "alpha",
        Some(-60.0),
        "2025-08-11T20:59:59Z",
    ));
    assert!(h
        .apply(loss_fill(
            "f2",
            "alpha",
            Some(-60.0),
            "2025-08-11T21:00:00Z"
        ))
        .is_empty());
    // A late fill of the earlier day counts toward that day, and trips it.
    let late = h.apply(loss_fill(
        "f0",
        "alpha",
        Some(-40.0),
        "2025-08-11T12:00:00Z",
    ));
    assert_eq!(trips(&late)[0], "pause global daily_loss f0 [f0]");
    assert!(
        h.commands()[0].reason.contains("2025-08-10"),
        "{}",
        h.commands()[0].reason
    );
}

#[test]
fn drawdown_trips_from_the_days_peak_which_is_at_least_zero() {
    let mut h = Harness::new(policy(
        "[daily]\nmax_drawdown = 800.0\ntz = \"UTC\"\npause = \"group\"\naction = \"reduce_only\"",
    ));
    h.apply(loss_fill(
        "f1",
        "alpha",
        Some(500.0),
        "2025-08-11T01:00:00Z",
    ));
    assert!(h
        .apply(loss_fill(
            "f2",
            "alpha",
            Some(-799.0),
            "2025-08-11T02:00:00Z"
        ))
        .is_empty());
    let tripped = h.apply(loss_fill("f3", "alpha", Some(-1.0), "2025-08-11T03:00:00Z"));
    assert_eq!(
        trips(&tripped),
        [
            "reduce_only strategy:alpha daily_drawdown f3 [f3]",
            "event daily_drawdown strategy:alpha [f3]"
        ]
    );
    // Losses only: the peak is 0, so 800 of losses is a drawdown of 800.
    h.apply(loss_fill(
        "g1",
        "beta",
        Some(-300.0),
        "2025-08-11T01:00:00Z",
    ));
    let beta = h.apply(loss_fill(
        "g2",
        "beta",
        Some(-500.0),
        "2025-08-11T02:00:00Z",
    ));
    assert_eq!(
        trips(&beta)[0],
        "reduce_only strategy:beta daily_drawdown g2 [g2]"
    );
}

#[test]
fn a_fill_without_pnl_judges_nothing_and_a_zero_is_judged_under_the_enhanced_limit() {
    let mut h = Harness::new(policy(LOSS));
    h.apply(loss_fill(
        "f1",
        "alpha",
        Some(-600.0),
        "2025-08-11T01:00:00Z",
    ));
    h.apply(release("alpha", at("2025-08-11T01:30:00Z")));
    // Inside the enhanced range the limit is 500: no pnl judges nothing…
    assert!(h
        .apply(loss_fill("f2", "alpha", None, "2025-08-11T02:00:00Z"))
        .is_empty());
    // …but a zero does, and -600 <= -500.
    let tripped = h.apply(loss_fill("f3", "alpha", Some(0.0), "2025-08-11T02:10:00Z"));
    assert_eq!(trips(&tripped)[0], "pause global daily_loss f3 [f3]");
    assert!(
        h.commands()[0].reason.contains("enhanced"),
        "{}",
        h.commands()[0].reason
    );
}

#[test]
fn a_strategy_resume_forgets_its_days_but_not_a_shared_book() {
    let mut h = Harness::new(policy(LOSS));
    h.apply(loss_fill(
        "f1",
        "alpha",
        Some(-900.0),
        "2025-08-11T01:00:00Z",
    ));
    h.apply(ops(
        "o1",
        Action::Resume,
        Scope::strategy("alpha"),
        at("2025-08-11T01:10:00Z"),
    ));
    assert!(h
        .apply(loss_fill(
            "f2",
            "alpha",
            Some(-900.0),
            "2025-08-11T01:20:00Z"
        ))
        .is_empty());
    // One book for all strategies: a strategy resume leaves it as it is.
    let mut h = Harness::new(policy(&format!(
        "{LOSS}group_by = \"global\"\npause = \"group\""
    )));
    h.apply(loss_fill(
        "f1",
        "alpha",
        Some(-900.0),
        "2025-08-11T01:00:00Z",
    ));
    h.apply(ops(
        "o1",
        Action::Resume,
        Scope::strategy("alpha"),
        at("2025-08-11T01:10:00Z"),
    ));
    let tripped = h.apply(loss_fill(
        "g1",
        "beta",
        Some(-100.0),
        "2025-08-11T01:20:00Z",
    ));
    // With group_by = "global", pause = "group" is the global scope.
    assert_eq!(trips(&tripped)[0], "pause global daily_loss g1 [g1]");
}

#[test]
fn daily_keys_are_checked_and_the_default_section_keeps_the_version() {
    let err =
        Policy::from_toml("[daily]\nmax_loss = -1\nday_start = \"25:00\"\ntz = \"Mars/Base\"")
            .unwrap_err();
    let text = err.to_string();
    for key in ["daily.max_loss", "daily.day_start", "daily.tz"] {
        assert!(text.contains(key), "{key} missing from: {text}");
    }
    let explicit = Policy::from_toml("[daily]\nday_start = \"00:00\"\ntz = \"Asia/Tokyo\"\nmax_loss = 0.0\nmax_drawdown = 0.0\ngroup_by = \"strategy\"\npause = \"global\"\naction = \"pause\"").unwrap();
    assert_eq!(explicit.version(), Policy::default().version());
    assert_ne!(policy(LOSS).version(), policy("").version());
}
