//! `Gate::may_trade`, the question an order gateway asks before every order: a
//! strategy that runs, one that is reduce-only, one paused by the global scope, and
//! one the guard never named — with 1,000 strategies known. Also the same question
//! through the shared `GateHandle` (a read lock and the clock).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gate::{Action, Gate, GateHandle, GuardCommand, Heartbeat, Mode, Now, PauseState, Scope};

const NOW: Now = Now {
    mono_ms: 0,
    utc_ms: 1_754_870_970_000,
};

fn record(i: usize, mode: Mode) -> PauseState {
    PauseState {
        scope: Scope::strategy(format!("strategy-{i:04}")),
        mode,
        reasons: vec!["operator".into()],
        since: None,
        command_id: format!("c{i}"),
        policy_version: None,
    }
}

/// 1,000 strategies: every tenth reduce-only, the rest running; the gate open.
fn gate() -> Gate {
    let mut gate = Gate::new("gw-bench", 3_000);
    for i in 0..1_000 {
        let mode = if i % 10 == 0 {
            Mode::ReduceOnly
        } else {
            Mode::Running
        };
        gate.on_pause_state(&record(i, mode), NOW);
    }
    gate.caught_up(NOW);
    let beat = Heartbeat {
        instance: "g1".into(),
        ts: None,
        active: true,
        policy_version: None,
        paused_scopes: None,
    };
    gate.on_heartbeat(&beat, NOW);
    gate
}

fn pause_global(gate: &mut Gate) {
    let command = GuardCommand {
        command_id: "c-global".into(),
        action: Action::Pause,
        scope: Scope::Global,
        rule: "slippage_window".into(),
        event_ts: None,
        decided_at: None,
    };
    gate.on_command(&command, NOW);
}

fn may_trade(c: &mut Criterion) {
    let open = gate();
    assert_eq!(open.may_trade("strategy-0001", 1).mode(), Mode::Running);
    assert_eq!(open.may_trade("strategy-0010", 1).mode(), Mode::ReduceOnly);
    let mut paused = gate();
    pause_global(&mut paused);
    assert_eq!(paused.may_trade("strategy-0001", 1).mode(), Mode::Paused);

    let mut group = c.benchmark_group("may_trade");
    group.bench_function("running", |b| {
        b.iter(|| black_box(open.may_trade(black_box("strategy-0001"), 1)).mode())
    });
    group.bench_function("reduce_only", |b| {
        b.iter(|| black_box(open.may_trade(black_box("strategy-0010"), 1)).mode())
    });
    group.bench_function("paused_by_global", |b| {
        b.iter(|| black_box(paused.may_trade(black_box("strategy-0001"), 1)).mode())
    });
    group.bench_function("unknown_strategy", |b| {
        b.iter(|| black_box(open.may_trade(black_box("strategy-9999"), 1)).mode())
    });
    let handle = GateHandle::new(gate());
    group.bench_function("handle_running", |b| {
        b.iter(|| handle.may_trade(black_box("strategy-0001")))
    });
    group.finish();
}

criterion_group!(benches, may_trade);
criterion_main!(benches);
