//! Memory stays bounded under hostile cardinality: 10,000 new strategy ids every second
//! of event time, each with a breach, a loss and (one in a hundred) an adoption, and
//! not one of them ever seen again. Everything the rules hold for a strategy — dedup
//! ids, losing streaks, slippage breaches, adoptions — is forgotten once it lies beyond
//! the state horizon behind the newest event time, so the state's size is bounded by
//! the message rate times the horizon, however long the stream runs.

use guard::engine::{Engine, EngineOptions};
use guard::message::Input;
use guard::time::Span;
use guard_tests::{fill, policy, release, t};

const PER_SECOND: usize = 10_000;

struct Sizes {
    seen: usize,
    streaks: usize,
    breaches: usize,
    adoptions: usize,
}

fn sizes(engine: &Engine) -> Sizes {
    let state = engine.state();
    Sizes {
        seen: state.seen.len(),
        streaks: state.rules.streaks.len(),
        breaches: state.rules.slippage.breaches(),
        adoptions: state.rules.adoptions.len(),
    }
}

/// Runs `seconds` of the hostile stream and returns the largest sizes seen after the
/// first `horizon + window` seconds, and the number of messages applied.
fn run(seconds: usize, extra_policy: &str) -> (Sizes, usize) {
    let mut engine = Engine::new(policy(extra_policy), EngineOptions::default());
    let mut largest = Sizes {
        seen: 0,
        streaks: 0,
        breaches: 0,
        adoptions: 0,
    };
    let mut applied = 0;
    for second in 0..seconds {
        for i in 0..PER_SECOND {
            let strategy = format!("s-{second}-{i}");
            let ts = t(second as f64 + i as f64 / PER_SECOND as f64);
            if i % 100 == 0 {
                engine.apply(&Input::Release(release(&strategy, ts)));
                applied += 1;
            }
            let mut f = fill(&format!("f-{second}-{i}"), &strategy, 9.0, ts);
            f.realized_pnl = Some(-1.0);
            let outcome = engine.apply(&Input::Fill(f));
            assert_eq!(outcome.disposition, guard::engine::Disposition::Applied);
            applied += 1;
        }
        let now = sizes(&engine);
        largest.seen = largest.seen.max(now.seen);
        largest.streaks = largest.streaks.max(now.streaks);
        largest.breaches = largest.breaches.max(now.breaches);
        largest.adoptions = largest.adoptions.max(now.adoptions);
    }
    (largest, applied)
}

const BOUNDED: &str = r#"
[slippage]
window = "30s"
[enhanced]
lookback = "30s"
[state]
horizon = "1m"
"#;

#[test]
fn ten_thousand_new_strategies_a_second_keep_the_state_bounded() {
    let horizon = Span::from_secs(60).as_micros() as f64 / 1e6;
    // Sweeps come every eighth of the horizon (at least a second), so the state holds
    // at most horizon + horizon/8 + 1 s of fills; breaches a window more, adoptions a
    // lookback more.
    let slack = horizon / 8.0 + 1.0;
    let fills_within = |extra: f64| ((horizon + extra + slack) * PER_SECOND as f64) as usize;

    // The state is full after horizon + window + slack (under 100 s).
    let (short, _) = run(105, BOUNDED);
    let (long, applied) = run(160, BOUNDED);
    for (name, size, bound) in [
        (
            "seen ids",
            long.seen,
            fills_within(0.0) + fills_within(30.0) / 100,
        ),
        ("losing streaks", long.streaks, fills_within(0.0)),
        ("slippage breaches", long.breaches, fills_within(30.0)),
        ("adoptions", long.adoptions, fills_within(30.0) / 100 + 1),
    ] {
        assert!(
            size <= bound,
            "{name}: {size} held after {applied} messages, bound {bound}"
        );
    }
    // A longer stream holds no more than the shorter one (give or take the phase of
    // the sweeps, a second of fills): a plateau, not a slope.
    for (name, long, short) in [
        ("seen ids", long.seen, short.seen),
        ("losing streaks", long.streaks, short.streaks),
        ("slippage breaches", long.breaches, short.breaches),
    ] {
        assert!(
            long <= short + PER_SECOND,
            "{name}: {long} after 160 s, {short} after 105 s"
        );
    }
    assert!(
        long.seen < applied / 2,
        "{} ids held of {applied}",
        long.seen
    );
}

#[test]
fn without_a_short_horizon_the_same_stream_keeps_everything() {
    // The control: the default horizon (a day) forgets nothing in 30 seconds, so
    // the bound above is the horizon's doing.
    let (sizes, applied) = run(30, "[slippage]\nwindow = \"30s\"\n");
    assert_eq!(sizes.seen, applied - 30 * PER_SECOND / 100);
    assert_eq!(sizes.streaks, 30 * PER_SECOND);
}

#[test]
fn a_duplicate_is_recognised_within_the_horizon_and_applied_again_beyond_it() {
    let mut engine = Engine::new(
        policy("[state]\nhorizon = \"1m\"\n"),
        EngineOptions::default(),
    );
    let mut loss = fill("f-1", "alpha", 0.0, t(0.0));
    loss.realized_pnl = Some(-1.0);
    let apply = |engine: &mut Engine, f: &guard::message::Fill| {
        engine.apply(&Input::Fill(f.clone())).disposition
    };
    use guard::engine::Disposition::{Applied, Duplicate};
    assert_eq!(apply(&mut engine, &loss), Applied);
    // 50 s later (event time moves with other fills): still a duplicate.
    assert_eq!(
        apply(&mut engine, &fill("f-2", "beta", 0.0, t(50.0))),
        Applied
    );
    assert_eq!(apply(&mut engine, &loss), Duplicate);
    // Two horizons later the id is forgotten, and so is alpha's one-loss streak: the
    // copy is applied as a new loss (the fail-safe direction: it can only add to a
    // streak, never hide one).
    assert_eq!(
        apply(&mut engine, &fill("f-3", "beta", 0.0, t(200.0))),
        Applied
    );
    assert!(engine
        .state()
        .rules
        .streaks
        .iter()
        .all(|(s, _)| s != "alpha"));
    assert_eq!(apply(&mut engine, &loss), Applied);
    assert_eq!(
        engine
            .state()
            .rules
            .streaks
            .iter()
            .find(|(s, _)| *s == "alpha")
            .map(|(_, f)| f.len()),
        Some(1)
    );
}
