//! The scale-out split of the rules (docs/SCALING.md) decides exactly what the single
//! guard decides: per-strategy workers, each holding the strategies of one input
//! partition, forward their trips to one aggregator that holds the scopes; over any
//! history, the aggregator's commands and risk events equal the whole engine's, in
//! the same order, with the same ids.

use guard::engine::{ClockMode, Disposition, Engine, EngineOptions, Role, TripFact};
use guard::message::{Action, Decision, Input, RiskAction, Scope, Severity};
use guard::policy::Policy;
use guard_tests::*;
use proptest::prelude::*;

const STRATEGIES: [&str; 6] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
const PARTITIONS: usize = 3;

/// The partition of a strategy, as a producer keying by strategy id would choose.
fn partition(strategy: &str) -> usize {
    STRATEGIES.iter().position(|s| *s == strategy).unwrap() % PARTITIONS
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        2 => Just(Scope::Global),
        1 => (0..STRATEGIES.len()).prop_map(|i| Scope::strategy(STRATEGIES[i]))
    ]
}

/// Message `n`, about 10 minutes after the previous one, give or take (some late),
/// from Monday noon UTC, so windows, streaks, adoptions and the Monday 17:00 UTC
/// maintenance window all come into play.
fn message(n: usize) -> impl Strategy<Value = Input> {
    let ts = (-20i64..40)
        .prop_map(move |jitter| t(12.0 * 3600.0 + (n as f64) * 600.0 + (jitter as f64) * 60.0));
    prop_oneof![
        10 => (0..STRATEGIES.len(), prop_oneof![Just(0.0), Just(3.0), Just(6.0), Just(12.0)], prop_oneof![Just(None), Just(Some(-1.0)), Just(Some(0.0)), Just(Some(2.0))], ts.clone())
            .prop_map(move |(s, bps, pnl, ts)| {
                let mut f = fill(&format!("f{n}"), STRATEGIES[s], bps, ts);
                f.realized_pnl = pnl;
                Input::Fill(f)
            }),
        1 => (scope(), prop_oneof![Just(Severity::Warning), Just(Severity::Critical)], prop_oneof![Just(None), Just(Some(RiskAction::Pause)), Just(Some(RiskAction::ReduceOnly))], ts.clone())
            .prop_map(move |(scope, severity, action, ts)| {
                let mut e = risk_event(&format!("e{n}"), "noctus", severity, scope, ts);
                e.action = action;
                Input::RiskEvent(e)
            }),
        2 => (scope(), prop_oneof![1 => Just(Action::Pause), 1 => Just(Action::ReduceOnly), 3 => Just(Action::Resume)], ts.clone())
            .prop_map(move |(scope, action, ts)| Input::Ops(ops(&format!("o{n}"), action, scope, ts))),
        1 => (0..STRATEGIES.len(), ts).prop_map(|(s, ts)| Input::Release(release(STRATEGIES[s], ts))),
    ]
}

/// A history, with some messages repeated later (a producer's retry).
fn history() -> impl Strategy<Value = Vec<Input>> {
    (1..150usize)
        .prop_flat_map(|len| (0..len).map(message).collect::<Vec<_>>())
        .prop_flat_map(|inputs| {
            let len = inputs.len();
            (Just(inputs), prop::collection::vec((0..len, 0..len), 0..10))
        })
        .prop_map(|(mut inputs, repeats)| {
            for (from, to) in repeats {
                if from < to {
                    let copy = inputs[from].clone();
                    inputs.insert(to, copy);
                }
            }
            inputs
        })
}

fn policies() -> impl Strategy<Value = Policy> {
    // A horizon longer than any history: forgetting runs by each partition's own
    // event time in a scaled guard (docs/SCALING.md), so it is kept out of the way.
    let base = "[state]\nhorizon = \"30d\"\n";
    prop_oneof![
        Just(Policy::from_toml(base).unwrap()),
        Just(Policy::from_toml(&format!("{base}[slippage]\npause = \"group\"\ntrip_at = 2\n[losing_streak]\ntrip_at = 3\npause = \"group\"")).unwrap()),
        Just(Policy::from_toml(&format!("{base}[daily]\nmax_loss = 1.5\nmax_drawdown = 2.0\npause = \"group\"\ntz = \"UTC\"\nday_start = \"13:00\"")).unwrap()),
        Just(Policy::from_toml(&format!("{base}[warnings]\nenabled = true\n[slippage]\npause = \"group\"\naction = \"reduce_only\"\n[losing_streak]\ntrip_at = 3")).unwrap()),
        Just(Policy::from_toml(&format!("{base}[enhanced]\nfactor = 0.3\n[[maintenance]]\nname = \"daily\"\nweekday = \"Mon\"\nstart = \"18:00\"\nend = \"23:00\"\ntz = \"UTC\"")).unwrap()),
    ]
}

fn whole(policy: &Policy, inputs: &[Input]) -> Vec<Decision> {
    let mut engine = Engine::new(policy.clone(), EngineOptions::default());
    let mut out = Vec::new();
    for input in inputs {
        engine.apply_into(input, &mut out);
    }
    out
}

/// The scaled guard in one process: fills and adoptions go to their partition's
/// worker, every worker sees every operator's order, the aggregator sees orders, risk
/// events, each applied fill's event time (the workers' progress) and every trip.
fn scaled(policy: &Policy, inputs: &[Input]) -> Vec<Decision> {
    let with_role = |role| EngineOptions {
        role,
        clock: ClockMode::EventTime,
        ..EngineOptions::default()
    };
    let mut workers: Vec<Engine> = (0..PARTITIONS)
        .map(|_| Engine::new(policy.clone(), with_role(Role::Worker)))
        .collect();
    let mut aggregator = Engine::new(policy.clone(), with_role(Role::Aggregator));
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Input::Fill(_) | Input::Release(_) => {
                let strategy = match input {
                    Input::Fill(f) => &f.strategy_id,
                    Input::Release(r) => &r.strategy_id,
                    _ => unreachable!(),
                };
                let outcome = workers[partition(strategy)].apply(input);
                if outcome.disposition == Disposition::Applied {
                    out.extend(aggregator.tick(input.event_time()));
                }
                let trigger = match input {
                    Input::Fill(f) => f.fill_id.clone(),
                    _ => String::new(),
                };
                for decision in outcome.decisions {
                    let Decision::RiskEvent(event) = decision else {
                        panic!("a worker decided a command: {decision:?}");
                    };
                    let fact = TripFact {
                        trigger: trigger.clone(),
                        event,
                    };
                    aggregator
                        .apply_trip(&fact, &mut out)
                        .expect("workers trip only rules the aggregator routes");
                }
            }
            Input::Ops(_) => {
                for worker in &mut workers {
                    let outcome = worker.apply(input);
                    assert!(outcome.decisions.is_empty());
                }
                aggregator.apply_into(input, &mut out);
            }
            // Acknowledgements concern commands: the aggregator decides those.
            Input::RiskEvent(_) | Input::Ack(_) => {
                aggregator.apply_into(input, &mut out);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn workers_and_an_aggregator_decide_what_the_whole_guard_decides(policy in policies(), inputs in history()) {
        let expected = whole(&policy, &inputs);
        let actual = scaled(&policy, &inputs);
        prop_assert_eq!(actual, expected);
    }
}

#[test]
fn a_trip_forwarded_twice_is_applied_once() {
    let policy = Policy::default();
    let mut worker = Engine::new(
        policy.clone(),
        EngineOptions {
            role: Role::Worker,
            ..EngineOptions::default()
        },
    );
    let mut aggregator = Engine::new(
        policy,
        EngineOptions {
            role: Role::Aggregator,
            ..EngineOptions::default()
        },
    );
    let mut trips = Vec::new();
    for (i, secs) in [0.0, 10.0, 20.0].into_iter().enumerate() {
        let f = fill(&format!("f{i}"), "alpha", 9.0, t(secs));
        for d in worker.apply(&Input::Fill(f.clone())).decisions {
            let Decision::RiskEvent(event) = d else {
                panic!("{d:?}")
            };
            trips.push(TripFact {
                trigger: f.fill_id.clone(),
                event,
            });
        }
    }
    assert_eq!(trips.len(), 1, "three breaches trip once");
    let mut out = Vec::new();
    assert_eq!(
        aggregator.apply_trip(&trips[0], &mut out),
        Ok(Disposition::Applied)
    );
    assert_eq!(
        aggregator.apply_trip(&trips[0], &mut out),
        Ok(Disposition::Duplicate)
    );
    assert_eq!(
        describe_all(&out),
        describe_all(&whole(
            &Policy::default(),
            &[0.0, 10.0, 20.0]
                .into_iter()
                .enumerate()
                .map(|(i, s)| Input::Fill(fill(&format!("f{i}"), "alpha", 9.0, t(s))))
                .collect::<Vec<_>>()
        ))
    );
}
