//! CONTRACT §2.9 (version 2): with `env` in the policy, a valid fill whose `env` is
//! present and different is ignored — not applied, not seen, no clock move — and
//! counted apart.

use guard::engine::Disposition;
use guard::message::{Env, Input};
use guard::policy::Policy;
use guard::replay;
use guard_tests::*;

fn in_env(mut f: guard::message::Fill, env: Option<Env>) -> Input {
    f.env = env;
    Input::Fill(f)
}

#[test]
fn a_fill_of_another_environment_changes_nothing_and_is_not_seen() {
    // Given a prod guard with two breaches of alpha
    let mut h = Harness::new(policy("env = \"prod\""));
    h.apply(in_env(fill("f1", "alpha", 9.0, t(0.0)), Some(Env::Prod)));
    h.apply(in_env(fill("f2", "alpha", 9.0, t(1.0)), None));
    let before = h.engine.snapshot();
    // When a staging fill would be the third breach
    let outcome = h
        .engine
        .apply(&in_env(fill("f3", "alpha", 9.0, t(2.0)), Some(Env::Stg)));
    // Then it is ignored, and the state is exactly as before (not seen, no clock move)
    assert_eq!(outcome.disposition, Disposition::OtherEnv);
    assert!(outcome.decisions.is_empty());
    assert_eq!(h.engine.snapshot(), before);
    // And the same id from prod is applied: it was never recorded as seen
    let decided = h.apply(in_env(fill("f3", "alpha", 9.0, t(2.0)), Some(Env::Prod)));
    assert_eq!(
        describe_all(&decided)[0],
        "pause global slippage_window f3 [f1,f2,f3]"
    );
}

#[test]
fn a_fill_of_another_environment_does_not_move_the_clock_into_a_window() {
    // The default window: Monday 17:00–18:00 UTC.
    let mut h = Harness::new(Policy::from_toml("env = \"prod\"").unwrap());
    let stg = in_env(
        fill("f1", "alpha", 0.0, at("2025-08-11T17:30:00Z")),
        Some(Env::Stg),
    );
    assert!(h.apply(stg).is_empty());
    assert!(h.engine.state().clock.is_none());
}

#[test]
fn without_env_in_the_policy_every_fill_counts() {
    let mut h = Harness::new(policy(""));
    for (i, env) in [Some(Env::Dev), Some(Env::Stg), Some(Env::Prod)]
        .into_iter()
        .enumerate()
    {
        h.apply(in_env(
            fill(&format!("f{i}"), "alpha", 9.0, t(i as f64)),
            env,
        ));
    }
    assert_eq!(h.commands().len(), 1);
}

#[test]
fn replay_counts_fills_of_another_environment_apart() {
    let line = |id: &str, env: &str| {
        format!(
            r#"{{"stream":"exec_result","event":{{"fill_id":"{id}","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2026-01-01T00:00:00Z","env":"{env}"}}}}"#
        )
    };
    let lines = [line("f1", "prod"), line("f2", "dev"), line("f3", "dev")];
    let engine = guard::engine::Engine::new(policy("env = \"prod\""), Default::default());
    let (_, _, summary) = replay::run(engine, &lines);
    let counts = &summary.streams[&guard::message::Stream::ExecResult];
    assert_eq!((counts.read, counts.other_env), (3, 2));
    assert_eq!(
        summary.invalid, 0,
        "ignored fills are valid, not dead letters"
    );
    assert!(summary
        .to_string()
        .contains("2 of another environment ignored"));
}

#[test]
fn env_is_checked_and_only_a_present_env_changes_the_version() {
    let err = Policy::from_toml("env = \"qa\"").unwrap_err();
    assert!(err.to_string().contains("env: must be one of"), "{err}");
    let prod = Policy::from_toml("env = \"prod\"").unwrap();
    assert_ne!(prod.version(), Policy::default().version());
    assert_eq!(
        Policy::from_toml("").unwrap().version(),
        Policy::default().version()
    );
}
