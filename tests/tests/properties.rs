//! Invariants over arbitrary message histories (proptest).

use guard::engine::{Engine, EngineOptions};
use guard::message::{Action, Decision, Env, GuardAck, Input, RiskAction, Scope, Severity};
use guard::policy::Policy;
use guard_tests::*;
use proptest::prelude::*;

const STRATEGIES: [&str; 3] = ["alpha", "beta", "gamma"];

fn scope_strategy() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Global),
        (0..3usize).prop_map(|i| Scope::strategy(STRATEGIES[i]))
    ]
}

/// One message with an id unique to its position `n`, about `15 n` minutes after
/// Monday 12:00 UTC, give or take (some late, some ahead), so slippage windows,
/// streaks, adoptions and the maintenance windows (Monday 17:00 UTC by default) all
/// come into play.
fn message(n: usize) -> impl Strategy<Value = Input> {
    let ts = (-30i64..60)
        .prop_map(move |jitter| t(12.0 * 3600.0 + (n as f64) * 900.0 + (jitter as f64) * 60.0));
    prop_oneof![
        8 => (0..3usize, prop_oneof![Just(0.0), Just(3.0), Just(6.0), Just(12.0)], prop_oneof![Just(None), Just(Some(-1.0)), Just(Some(0.0)), Just(Some(2.0))], ts.clone(), prop_oneof![6 => Just(None), 1 => Just(Some(Env::Prod)), 1 => Just(Some(Env::Stg))])
            .prop_map(move |(s, bps, pnl, ts, env)| {
                let mut f = fill(&format!("f{n}"), STRATEGIES[s], bps, ts);
                f.realized_pnl = pnl;
                f.env = env;
                Input::Fill(f)
            }),
        1 => (scope_strategy(), prop_oneof![Just(Severity::Warning), Just(Severity::Critical)], prop_oneof![Just(None), Just(Some(RiskAction::None)), Just(Some(RiskAction::Pause)), Just(Some(RiskAction::ReduceOnly))], any::<bool>(), ts.clone())
            .prop_map(move |(scope, severity, action, own, ts)| {
                let mut e = risk_event(&format!("e{n}"), if own { "guard" } else { "noctus" }, severity, scope, ts);
                e.action = action;
                Input::RiskEvent(e)
            }),
        1 => (scope_strategy(), prop_oneof![Just(Action::Pause), Just(Action::ReduceOnly), Just(Action::Resume)], ts.clone())
            .prop_map(move |(scope, action, ts)| Input::Ops(ops(&format!("o{n}"), action, scope, ts))),
        1 => (0..3usize, ts.clone()).prop_map(|(s, ts)| Input::Release(release(STRATEGIES[s], ts))),
        // Acks, unique per position like every other id here: one (command, gateway)
        // seen again more than a horizon after its first sighting is the known
        // departure of docs/CONTRACT-NOTES.md (whether it counts as new then depends
        // on when the memory was last swept), which this property does not cover.
        1 => (prop_oneof![Just("gw-a"), Just("gw-b"), Just("gw-x")], ts).prop_map(move |(gateway, ts)| Input::Ack(GuardAck {
            command_id: format!("cmd-{n}"),
            gateway: gateway.into(),
            ts,
        })),
    ]
}

fn history() -> impl Strategy<Value = Vec<Input>> {
    (1..120usize).prop_flat_map(|len| (0..len).map(message).collect::<Vec<_>>())
}

fn policies() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::default()),
        Just(Policy::from_toml("[slippage]\ngroup_by = \"global\"\npause = \"group\"\ntrip_at = 2\n[losing_streak]\ntrip_at = 3\npause = \"group\"").unwrap()),
        Just(Policy::from_toml("[acks]\ngateways = [\"gw-a\", \"gw-b\"]\ntimeout = \"20m\"\n[slippage]\ntrip_at = 2").unwrap()),
        Just(Policy::from_toml("[daily]\nmax_loss = 1.5\nmax_drawdown = 3.0\ntz = \"America/New_York\"\nday_start = \"09:30\"\n[warnings]\nenabled = true").unwrap()),
        Just(Policy::from_toml("env = \"prod\"\n[slippage]\naction = \"reduce_only\"\npause = \"group\"\n[losing_streak]\ntrip_at = 2\naction = \"reduce_only\"").unwrap()),
        Just(Policy::from_toml("[[maintenance]]\nname = \"daily\"\nweekday = \"Mon\"\nstart = \"22:00\"\nend = \"02:00\"\ntz = \"UTC\"\n[[maintenance]]\nname = \"other\"\nweekday = \"Tue\"\nstart = \"01:00\"\nend = \"09:00\"\ntz = \"Europe/London\"").unwrap()),
        Just(Policy::from_toml("[[maintenance]]\nname = \"patch\"\nweekday = \"Mon\"\nstart = \"16:00\"\nend = \"18:00\"\ntz = \"UTC\"\nresume = \"operator\"\n[[maintenance]]\nname = \"wide\"\nweekday = \"Mon\"\nstart = \"15:00\"\nend = \"20:00\"\ntz = \"UTC\"").unwrap()),
    ]
}

fn run(policy: &Policy, inputs: &[Input]) -> (Vec<Decision>, Vec<u8>) {
    let mut engine = Engine::new(policy.clone(), EngineOptions::default());
    let mut out = Vec::new();
    for input in inputs {
        engine.apply_into(input, &mut out);
    }
    (out, engine.snapshot())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn feeding_any_message_twice_changes_nothing(policy in policies(), inputs in history(), repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
        let (expected, expected_state) = run(&policy, &inputs);
        // Insert repeats of earlier messages at random later points.
        let mut doubled = inputs.clone();
        for r in repeats {
            let at = r.index(doubled.len() + 1);
            if at > 0 {
                let earlier = doubled[r.index(at)].clone();
                doubled.insert(at, earlier);
            }
        }
        let (actual, actual_state) = run(&policy, &doubled);
        prop_assert_eq!(actual, expected);
        prop_assert_eq!(actual_state, expected_state);
    }

    #[test]
    fn a_snapshot_restored_at_any_point_continues_exactly(policy in policies(), inputs in history(), split in any::<prop::sample::Index>()) {
        let (expected, expected_state) = run(&policy, &inputs);
        let at = split.index(inputs.len() + 1);
        let mut first = Engine::new(policy.clone(), EngineOptions::default());
        let mut out = Vec::new();
        for input in &inputs[..at] {
            first.apply_into(input, &mut out);
        }
        let (mut second, version) = Engine::restore(policy.clone(), EngineOptions::default(), &first.snapshot()).unwrap();
        prop_assert_eq!(version, policy.version());
        for input in &inputs[at..] {
            second.apply_into(input, &mut out);
        }
        prop_assert_eq!(out, expected);
        prop_assert_eq!(second.snapshot(), expected_state);
    }

    #[test]
    fn replay_is_deterministic(policy in policies(), inputs in history()) {
        let a = run(&policy, &inputs);
        let b = run(&policy, &inputs);
        let text = |d: &[Decision]| d.iter().map(|x| serde_json::to_string(x).unwrap()).collect::<Vec<_>>();
        prop_assert_eq!(text(&a.0), text(&b.0));
        prop_assert_eq!(a.1, b.1);
    }

    #[test]
    fn commands_alternate_per_scope_and_ids_are_unique(policy in policies(), inputs in history()) {
        let (decisions, _) = run(&policy, &inputs);
        // Every command changes its scope's mode: no pause of a paused scope, no
        // resume of a running one, no reduce-only of a reduce-only one.
        let mut modes = std::collections::BTreeMap::new();
        let mut ids = std::collections::BTreeSet::new();
        for d in &decisions {
            prop_assert!(ids.insert(d.id().to_owned()), "repeated id {}", d.id());
            if let Decision::GuardCommand(c) = d {
                let before = modes.insert(c.scope.clone(), c.action).unwrap_or(Action::Resume);
                prop_assert!(before != c.action, "{} of {} while it already was", c.action.as_str(), c.scope);
            }
        }
    }
}
