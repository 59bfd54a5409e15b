//! The engine's own duties: duplicates, its own events, the clock before the message,
//! resets on a resume, the horizon, and routing the workers' trips.

use super::*;
use crate::engine::rules::testing::{at, describe, fill, ops, pnl_fill, risk_event, t};
use crate::message::{Action, RiskEvent, Rule, Scope, Severity};

fn engine(policy_text: &str) -> Engine {
    let policy = Policy::from_toml(policy_text).expect("a valid policy in a test");
    Engine::new(policy, EngineOptions::default())
}

fn described(decisions: &[Decision]) -> Vec<String> {
    decisions.iter().map(describe).collect()
}

fn with_role(role: Role) -> EngineOptions {
    EngineOptions {
        role,
        ..EngineOptions::default()
    }
}

#[test]
fn a_repeated_fill_id_is_a_duplicate_and_changes_nothing() {
    let mut e = engine("maintenance = []");
    let f = fill("f1", "alpha", 9.0, t(0.0));
    assert_eq!(e.apply(&f.clone().into()).disposition, Disposition::Applied);
    let before = e.state().clone();
    assert_eq!(e.apply(&f.into()).disposition, Disposition::Duplicate);
    assert_eq!(e.state(), &before);
}

#[test]
fn a_risk_event_of_the_guards_own_source_is_ignored() {
    let mut e = engine("maintenance = []");
    let mut own = risk_event("e1", Severity::Critical, Scope::Global, t(0.0));
    own.source = "guard".into();
    let outcome = e.apply(&own.into());
    assert_eq!(outcome.disposition, Disposition::OwnEvent);
    assert!(outcome.decisions.is_empty());
    assert_eq!(e.state().clock, None);
}

#[test]
fn the_clock_enters_a_maintenance_window_before_the_message_that_moved_it() {
    // Given the runbook's window (Monday 17:00–18:00 UTC)
    let mut e = engine("");
    // When an operator's pause stamped inside it arrives
    let order = ops(
        "o1",
        Action::Pause,
        Scope::Global,
        at("2025-08-11T17:10:00Z"),
    );
    let decided = e.apply(&order.into()).decisions;
    // Then the window pauses first; the order only adds its reason
    assert_eq!(
        described(&decided),
        ["pause global maintenance weekly-os-patch []"]
    );
    let reasons = &e.state().scopes.paused().next().unwrap().1.reasons;
    assert!(reasons.contains(&Rule::Operator) && reasons.contains(&Rule::Maintenance));
}

#[test]
fn an_operators_resume_resets_every_rule_that_feeds_the_scope() {
    // Given two breaches and four losses of alpha on record
    let mut e = engine("maintenance = []");
    e.apply(&fill("f1", "alpha", 9.0, t(0.0)).into());
    e.apply(&fill("f2", "alpha", 9.0, t(1.0)).into());
    for i in 0..4 {
        e.apply(&pnl_fill(&format!("l{i}"), "alpha", Some(-1.0), t(2.0 + f64::from(i))).into());
    }
    // When an operator resumes alpha
    e.apply(&ops("o1", Action::Resume, Scope::strategy("alpha"), t(10.0)).into());
    // Then neither a breach nor a loss trips at once
    assert!(e.state().rules.slippage.breaches() == 0 && e.state().rules.streaks.is_empty());
    assert!(e
        .apply(&fill("f3", "alpha", 9.0, t(11.0)).into())
        .decisions
        .is_empty());
}

#[test]
fn what_lies_beyond_the_state_horizon_is_forgotten() {
    let mut e = engine("maintenance = []\n[state]\nhorizon = \"1h\"");
    e.apply(&pnl_fill("l1", "alpha", Some(-1.0), t(0.0)).into());
    e.apply(&fill("f1", "beta", 9.0, t(0.0)).into());
    // When a fill two hours later arrives
    e.apply(&fill("f2", "gamma", 0.0, t(7_200.0)).into());
    // Then the old streak, breach and id are gone
    let state = e.state();
    assert!(state.rules.streaks.is_empty());
    assert_eq!(state.rules.slippage.breaches(), 0);
    assert_eq!(state.seen.len(), 1);
}

fn trip_of(kind: &str) -> TripFact {
    TripFact {
        trigger: "f3".into(),
        event: RiskEvent {
            event_id: format!("evt-{kind}"),
            source: "guard".into(),
            kind: kind.into(),
            severity: Severity::Critical,
            scope: Scope::Global,
            action: None,
            reason: Some("why".into()),
            evidence: Some(vec!["f1".into(), "f2".into(), "f3".into()]),
            ts: t(0.0),
        },
    }
}

#[test]
fn the_aggregator_pauses_the_scope_a_workers_trip_names() {
    let mut aggregator = Engine::new(Policy::default(), with_role(Role::Aggregator));
    let mut out = Vec::new();
    let applied = aggregator.apply_trip(&trip_of("losing_streak"), &mut out);
    assert_eq!(applied, Ok(Disposition::Applied));
    assert_eq!(
        described(&out),
        [
            "pause global losing_streak f3 [f1,f2,f3]",
            "event losing_streak global [f1,f2,f3]"
        ]
    );
}

#[test]
fn a_trip_naming_no_rule_of_the_guard_is_refused_and_changes_nothing() {
    let mut aggregator = Engine::new(Policy::default(), with_role(Role::Aggregator));
    let before = aggregator.state().clone();
    let mut out = Vec::new();
    let refused = aggregator.apply_trip(&trip_of("intraday_var"), &mut out);
    assert_eq!(refused, Err(TripError::UnknownRule("intraday_var".into())));
    assert!(out.is_empty());
    assert_eq!(aggregator.state(), &before);
}

#[test]
fn a_trip_of_a_rule_the_workers_do_not_judge_is_refused() {
    let mut aggregator = Engine::new(Policy::default(), with_role(Role::Aggregator));
    let mut out = Vec::new();
    let refused = aggregator.apply_trip(&trip_of("maintenance"), &mut out);
    assert_eq!(refused, Err(TripError::NotForwarded(Rule::Maintenance)));
    assert!(out.is_empty());
}

#[test]
fn a_worker_trips_without_deciding_a_command() {
    let mut worker = Engine::new(Policy::default(), with_role(Role::Worker));
    let mut decided = Vec::new();
    for (i, secs) in [0.0, 10.0, 20.0].into_iter().enumerate() {
        let f = fill(&format!("f{i}"), "alpha", 9.0, t(secs));
        decided.extend(worker.apply(&f.into()).decisions);
    }
    assert_eq!(
        described(&decided),
        ["event slippage_window global [f0,f1,f2]"]
    );
    assert_eq!(worker.state().clock, None, "a worker keeps no clock");
}
