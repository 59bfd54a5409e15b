//! CONTRACT §2.10 (version 2): every command must be acknowledged by every listed
//! gateway before its deadline, or the guard escalates with `command_unacknowledged`.

use guard::engine::{Disposition, Engine};
use guard::message::{Action, Decision, GuardAck, Input, RiskAction, Scope};
use guard_tests::*;

const ACKS: &str = "[acks]\ngateways = [\"gw-b\", \"gw-a\"]\ntimeout = \"2s\"\n";

fn ack(h: &Harness, n: usize, gateway: &str, secs: f64) -> Input {
    Input::Ack(GuardAck {
        command_id: h.commands()[n].command_id.clone(),
        gateway: gateway.into(),
        ts: t(secs),
    })
}

fn escalations(decided: &[Decision]) -> Vec<String> {
    decided
        .iter()
        .filter_map(|d| match d {
            Decision::RiskEvent(e) if e.kind == "command_unacknowledged" => Some(format!(
                "{:?} {} {} {:?} at {}",
                e.severity,
                e.scope,
                e.reason.as_deref().unwrap_or_default(),
                e.evidence.clone().unwrap_or_default(),
                e.ts
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn acknowledged_in_time_by_every_gateway_nothing_is_raised() {
    let mut h = Harness::new(policy(ACKS));
    h.apply(ops("o1", Action::Pause, Scope::Global, t(0.0)));
    h.apply(ack(&h, 0, "gw-a", 1.0));
    h.apply(ack(&h, 0, "gw-b", 1.999));
    assert!(h.apply(fill("f1", "alpha", 0.0, t(60.0))).is_empty());
    assert!(escalations(&h.decisions).is_empty());
}

#[test]
fn a_missing_gateway_is_escalated_when_the_clock_reaches_the_deadline() {
    let mut h = Harness::new(policy(ACKS));
    h.apply(ops("o1", Action::Pause, Scope::Global, t(0.0)));
    let id = h.commands()[0].command_id.clone();
    h.apply(ack(&h, 0, "gw-a", 1.0));
    // An unlisted gateway changes nothing.
    h.apply(ack(&h, 0, "gw-x", 1.5));
    assert!(h.apply(fill("f1", "alpha", 0.0, t(1.999))).is_empty());
    let decided = h.apply(fill("f2", "alpha", 0.0, t(2.0)));
    assert_eq!(
        escalations(&decided),
        [format!("Critical global command {id} (pause global) not acknowledged within 2s by gw-b [\"{id}\"] at 2025-08-11T00:00:02.000Z")]
    );
    let Decision::RiskEvent(e) = &decided[0] else {
        unreachable!()
    };
    assert_eq!(e.action, Some(RiskAction::None));
    // A late ack changes nothing: the command is forgotten.
    assert!(h.apply(ack(&h, 0, "gw-b", 3.0)).is_empty());
    assert!(h.apply(fill("f3", "alpha", 0.0, t(100.0))).is_empty());
}

#[test]
fn a_repeated_ack_is_a_duplicate_and_does_not_move_the_clock() {
    let mut h = Harness::new(policy(ACKS));
    h.apply(ops("o1", Action::Pause, Scope::Global, t(0.0)));
    assert_eq!(
        h.engine.apply(&ack(&h, 0, "gw-a", 1.0)).disposition,
        Disposition::Applied
    );
    // The same (command, gateway) again, stamped later: a duplicate, no escalation.
    let again = h.engine.apply(&ack(&h, 0, "gw-a", 5.0));
    assert_eq!(again.disposition, Disposition::Duplicate);
    assert!(again.decisions.is_empty());
    // An ack is a message like any other: a new one moves the clock.
    let moved = h.apply(ack(&h, 0, "gw-x", 2.5));
    assert_eq!(escalations(&moved).len(), 1);
    assert!(escalations(&moved)[0].contains("by gw-b"), "{moved:?}");
}

#[test]
fn deadlines_escalate_in_order_and_a_resume_is_a_warning() {
    let mut h = Harness::new(policy(ACKS));
    h.apply(ops("o1", Action::Pause, Scope::strategy("b"), t(0.5)));
    h.apply(ops("o2", Action::Pause, Scope::strategy("a"), t(0.6)));
    h.apply(ops("o3", Action::Resume, Scope::strategy("b"), t(0.7)));
    let decided = h.apply(fill("f1", "alpha", 0.0, t(10.0)));
    let found = escalations(&decided);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("Critical strategy:b") && found[0].contains("by gw-a, gw-b"));
    assert!(found[1].starts_with("Critical strategy:a"));
    assert!(found[2].starts_with("Warning strategy:b") && found[2].contains("(resume strategy:b)"));
}

#[test]
fn deadlines_are_checked_after_the_maintenance_windows_before_the_message() {
    let text = format!("{ACKS}[[maintenance]]\nname = \"mon\"\nweekday = \"Mon\"\nstart = \"17:00\"\nend = \"18:00\"\ntz = \"UTC\"");
    let mut h = Harness::new(policy(&text));
    h.apply(ops(
        "o1",
        Action::Pause,
        Scope::strategy("a"),
        at("2025-08-11T16:59:59Z"),
    ));
    let decided = h.apply(ops(
        "o2",
        Action::Pause,
        Scope::strategy("c"),
        at("2025-08-11T17:00:05Z"),
    ));
    let order: Vec<String> = decided.iter().map(describe).collect();
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[0], "pause global maintenance mon []");
    assert!(
        order[1].starts_with("event command_unacknowledged strategy:a"),
        "{order:?}"
    );
    assert_eq!(order[2], "pause strategy:c operator o2 [o2]");
}

#[test]
fn without_gateways_nothing_is_awaited_but_an_ack_still_moves_the_clock() {
    let text = "[[maintenance]]\nname = \"mon\"\nweekday = \"Mon\"\nstart = \"17:00\"\nend = \"18:00\"\ntz = \"UTC\"";
    let mut h = Harness::new(policy(text));
    h.apply(ops(
        "o1",
        Action::Pause,
        Scope::Global,
        at("2025-08-11T16:00:00Z"),
    ));
    let moved = h.apply(Input::Ack(GuardAck {
        command_id: "whatever".into(),
        gateway: "gw".into(),
        ts: at("2025-08-11T17:00:00Z"),
    }));
    assert!(moved.is_empty(), "the global scope was already paused");
    assert_eq!(h.engine.state().clock, Some(at("2025-08-11T17:00:00Z")));
    assert!(escalations(&h.apply(fill("f", "a", 0.0, at("2025-08-12T00:00:00Z")))).is_empty());
}

#[test]
fn pending_commands_survive_a_snapshot() {
    let p = policy(ACKS);
    let mut h = Harness::new(p.clone());
    h.apply(ops("o1", Action::Pause, Scope::Global, t(0.0)));
    h.apply(ack(&h, 0, "gw-b", 1.0));
    let (mut restored, _) = Engine::restore(p, Default::default(), &h.engine.snapshot()).unwrap();
    assert_eq!(restored.state(), h.engine.state());
    let decided = restored
        .apply(&fill("f", "a", 0.0, t(3.0)).into())
        .decisions;
    assert!(escalations(&decided)[0].contains("by gw-a"));
}

#[test]
fn ack_keys_are_checked_and_the_default_keeps_the_version() {
    let err = guard::policy::Policy::from_toml("[acks]\ngateways = [\"\"]\ntimeout = \"soon\"")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("acks.gateways") && text.contains("acks.timeout"),
        "{text}"
    );
    let explicit =
        guard::policy::Policy::from_toml("[acks]\ngateways = []\ntimeout = \"2s\"").unwrap();
    assert_eq!(
        explicit.version(),
        guard::policy::Policy::default().version()
    );
}
