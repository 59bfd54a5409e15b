//! The follower against librdkafka's mock cluster: a real producer writes what the
//! guard would, the gate follows it over the Kafka protocol, and its acknowledgements
//! are read back from `guard_ack`.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{key, record, wait_for, Beats, Rig};
use gate::follow::Follower;
use gate::{FailClosed, Gate, GateHandle, Mode, ModeChange, Verdict};

const GATEWAY: &str = "gw-mock";

fn start(rig: &Rig, max_silence_ms: i64) -> (GateHandle, Receiver<ModeChange>, Follower) {
    let handle = GateHandle::new(Gate::new(GATEWAY, max_silence_ms));
    let changes = handle.subscribe();
    let follower = Follower::start(rig.follow_config(), handle.clone()).expect("a follower");
    (handle, changes, follower)
}

/// What `strategy` may do, with the reasons.
fn verdict(handle: &GateHandle, strategy: &str) -> (Mode, Vec<String>) {
    handle.verdict(strategy, |v| {
        let reasons = match &v {
            Verdict::Paused(why) => why.reasons().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        (v.mode(), reasons)
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The changes received until one for `scope` in `mode` (included).
fn changes_until(changes: &Receiver<ModeChange>, scope: &str, mode: Mode) -> Vec<ModeChange> {
    let mut seen = Vec::new();
    wait_for(&format!("a change of {scope} to {mode:?}"), || {
        while let Ok(change) = changes.recv_timeout(Duration::from_millis(5)) {
            let done = change.scope == scope && change.mode == mode;
            seen.push(change);
            if done {
                return true;
            }
        }
        false
    });
    seen
}

#[test]
fn the_gate_learns_every_scope_from_the_pause_state_and_opens_when_an_active_guard_beats() {
    // Given a pause state written before the gate starts, in multi-message batches:
    // the global scope paused then resumed, alpha paused, beta reduce-only, and 300
    // records of 30 other strategies whose last one pauses s-0 .. s-9 only.
    let rig = Rig::new();
    let ps = &rig.topics.pause_state;
    rig.queue(
        ps,
        "global",
        &record("c1", "global", "paused", &["operator"]),
    );
    rig.queue(ps, "global", &record("c2", "global", "running", &[]));
    let alpha = record(
        "c3",
        "alpha",
        "paused",
        &["losing_streak", "slippage_window"],
    );
    rig.queue(ps, &key("alpha"), &alpha);
    rig.queue(
        ps,
        &key("beta"),
        &record("c4", "beta", "reduce_only", &["operator"]),
    );
    for round in 0..10 {
        for s in 0..30 {
            let mode = if round == 9 && s < 10 {
                "paused"
            } else {
                "running"
            };
            let id = format!("s{s}-{round}");
            let scope = format!("s-{s}");
            rig.queue(
                ps,
                &key(&scope),
                &record(&id, &scope, mode, &["risk_event"]),
            );
        }
    }
    rig.flush();
    let (handle, changes, _follower) = start(&rig, 3_000);

    // When it has read the state, before any heartbeat: every record is folded, and
    // it fails closed because no guard was heard
    wait_for("the gate to catch up", || handle.state().caught_up);
    assert_eq!(handle.counters().records, 304);
    assert_eq!(
        verdict(&handle, "beta"),
        (Mode::Paused, strings(&["guard_silent"]))
    );

    // When an active guard beats, the guard's modes hold
    let _beats = rig.beats();
    wait_for("the gate to open", || {
        handle.may_trade("zeta") == Mode::Running
    });
    let paused = strings(&["losing_streak", "slippage_window"]);
    assert_eq!(verdict(&handle, "alpha"), (Mode::Paused, paused));
    assert_eq!(verdict(&handle, "beta"), (Mode::ReduceOnly, vec![]));
    assert_eq!(handle.may_trade("s-9"), Mode::Paused);
    assert_eq!(handle.may_trade("s-10"), Mode::Running);

    // And the changes said so: closed for no_state, then for guard_silent, then open
    // with the scopes held named, by key
    let seen = changes_until(&changes, "strategy:s-9", Mode::Paused);
    let seen: Vec<_> = seen
        .iter()
        .map(|c| (c.scope.as_str(), c.mode, c.reason.as_deref()))
        .collect();
    let mut expected = vec![
        ("*", Mode::Paused, Some("no_state")),
        ("*", Mode::Paused, Some("guard_silent")),
        ("*", Mode::Running, None),
        ("strategy:alpha", Mode::Paused, None),
        ("strategy:beta", Mode::ReduceOnly, None),
    ];
    let held: Vec<_> = (0..10).map(|s| format!("strategy:s-{s}")).collect();
    expected.extend(held.iter().map(|s| (s.as_str(), Mode::Paused, None)));
    assert_eq!(seen, expected);

    // And the decision in force in every scope was acknowledged, once each
    let mut acked: Vec<_> = rig.acks(33).into_iter().map(|(k, _)| k).collect();
    acked.sort_unstable();
    let mut in_force = vec!["c2".to_owned(), "c3".to_owned(), "c4".to_owned()];
    in_force.extend((0..30).map(|s| format!("s{s}-9")));
    in_force.sort_unstable();
    assert_eq!(acked, in_force);
}

#[test]
fn commands_come_into_force_and_are_acknowledged_once_on_guard_ack() {
    // Given an open gate, started after a command it owes no ack for
    let rig = Rig::new();
    rig.command("c0", "resume", "old", "operator");
    let _beats = rig.beats();
    let (handle, _changes, _follower) = start(&rig, 3_000);
    wait_for("the gate to open", || {
        handle.may_trade("alpha") == Mode::Running
    });

    // When the guard pauses the global scope
    rig.command("c1", "pause", "global", "slippage_window");
    // Then every strategy is paused, and the command is acknowledged with its key
    wait_for("the pause", || handle.may_trade("alpha") == Mode::Paused);
    assert!(handle.in_force_at("c1").is_some());
    let acks = rig.acks(1);
    assert_eq!(acks[0].0, "c1");
    assert_eq!(acks[0].1["command_id"], "c1");
    assert_eq!(acks[0].1["gateway"], GATEWAY);
    let ts = acks[0].1["ts"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
        "{ts}"
    );

    // When the guard repeats c1 and then resumes (c2)
    rig.command("c1", "pause", "global", "slippage_window");
    wait_for("the repeat to be dropped", || {
        handle.counters().repeats_dropped == 1
    });
    rig.command("c2", "resume", "global", "operator");
    wait_for("the resume", || handle.may_trade("alpha") == Mode::Running);
    // Then only c2 was acknowledged after c1 (one partition keeps the order)
    let ids: Vec<_> = rig.acks(2).into_iter().map(|(k, _)| k).collect();
    assert_eq!(ids, ["c1", "c2"]);
    wait_for("both acks confirmed", || {
        handle.shell().read().acks_published == 2
    });
}

#[test]
fn the_gate_fails_closed_when_the_active_guard_falls_silent_and_a_standby_keeps_it_closed() {
    // Given an open gate with max_silence 500 ms and alpha reduce-only
    let rig = Rig::new();
    rig.record("c1", "alpha", "reduce_only", &["operator"]);
    let beats = rig.beats();
    let (handle, changes, _follower) = start(&rig, 500);
    wait_for("the gate to open", || {
        handle.may_trade("alpha") == Mode::ReduceOnly
    });
    changes_until(&changes, "strategy:alpha", Mode::ReduceOnly);

    // When only a standby beats
    beats.set(Beats::STANDBY);
    // Then the gate fails closed for guard_silent, and says so
    wait_for("failing closed", || {
        handle.may_trade("alpha") == Mode::Paused
    });
    let why = handle.verdict("alpha", |v| match v {
        Verdict::Paused(why) => why.fail_closed(),
        _ => None,
    });
    assert_eq!(why, Some(FailClosed::GuardSilent));
    let seen = changes_until(&changes, "*", Mode::Paused);
    assert_eq!(seen.last().unwrap().reason.as_deref(), Some("guard_silent"));
    let heartbeats = handle.counters().heartbeats;
    wait_for("standby heartbeats", || {
        handle.counters().heartbeats > heartbeats + 3
    });
    assert_eq!(handle.may_trade("alpha"), Mode::Paused);

    // When the active guard beats again, alpha is back to reduce-only
    beats.set(Beats::ACTIVE);
    wait_for("the gate to open again", || {
        handle.may_trade("alpha") == Mode::ReduceOnly
    });
    changes_until(&changes, "strategy:alpha", Mode::ReduceOnly);
    assert!(handle.counters().fail_closed_episodes >= 2);
}

#[test]
fn a_command_and_its_record_end_with_the_records_reasons() {
    // Given an open gate
    let rig = Rig::new();
    let _beats = rig.beats();
    let (handle, _changes, _follower) = start(&rig, 3_000);
    wait_for("the gate to open", || {
        handle.may_trade("alpha") == Mode::Running
    });
    // When the guard publishes a pause command and its record (two reasons)
    rig.command("c1", "pause", "alpha", "operator");
    rig.record("c1", "alpha", "paused", &["operator", "slippage_window"]);
    // Then the record's reasons hold, and one ack is owed
    let both = strings(&["operator", "slippage_window"]);
    wait_for("the record's reasons", || {
        verdict(&handle, "alpha") == (Mode::Paused, both.clone())
    });
    assert_eq!(handle.counters().acks_owed, 1);
}
