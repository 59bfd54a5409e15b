//! Hot-path benchmarks on memory adapters (STYLE §10): the engine alone, decode +
//! apply of one exec_result line (with a fresh engine, and with a million ids
//! remembered), and replay throughput over a mixed stream.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench::{mixed_stream, rfc3339_ms, StreamShape};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use guard::decode::{decode, decode_envelope, decode_into};
use guard::engine::{Engine, EngineOptions};
use guard::message::{Input, Stream};
use guard::policy::Policy;

const START_MS: i64 = 1_754_870_400_000;

fn fill_line(n: u64, strategy: u64, bps: f64) -> String {
    fill_line_every(n, strategy, bps, 10)
}

/// Fill `n`, `step_ms` of event time after fill `n - 1`.
fn fill_line_every(n: u64, strategy: u64, bps: f64, step_ms: i64) -> String {
    let fill_price = 1000.0 * (1.0 + bps / 10_000.0);
    format!(
        r#"{{"fill_id":"f-{n}","order_id":"o-{n}","strategy_id":"s{strategy}","symbol":"7203.T","side":"buy","qty":100,"expected_price":1000.0,"fill_price":{fill_price:.4},"realized_pnl":12.5,"ts":"{}","env":"prod"}}"#,
        rfc3339_ms(START_MS + n as i64 * step_ms)
    )
}

fn fills(count: u64, bps: f64, strategies: u64) -> Vec<Input> {
    (0..count)
        .map(|n| {
            decode(
                Stream::ExecResult,
                fill_line(n, n % strategies, bps).as_bytes(),
            )
            .unwrap()
        })
        .collect()
}

/// Times `per_call` over fresh inputs (ids must not repeat, or the engine would
/// short-cut them as duplicates); engine setup is not timed.
fn time_applies(iters: u64, inputs: &[Input], make: impl Fn() -> Engine) -> Duration {
    let mut total = Duration::ZERO;
    let mut engine = make();
    let mut out = Vec::new();
    let mut i = 0usize;
    for _ in 0..iters {
        if i == inputs.len() {
            engine = make();
            i = 0;
        }
        out.clear();
        let started = Instant::now();
        black_box(engine.apply_into(black_box(&inputs[i]), &mut out));
        total += started.elapsed();
        i += 1;
    }
    total
}

fn engine_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_apply");
    let quiet = fills(200_000, 1.0, 1_000);
    group.bench_function("fill_no_trip", |b| {
        b.iter_custom(|iters| {
            time_applies(iters, &quiet, || {
                Engine::new(Policy::default(), EngineOptions::default())
            })
        })
    });
    // trip_at = 1 with pause = group: every fill breaches, trips and pauses its own
    // (new) strategy scope: one command and one risk event per call.
    let tripping = fills(200_000, 9.0, 200_000);
    let trip_policy = Policy::from_toml("[slippage]\ntrip_at = 1\npause = \"group\"").unwrap();
    group.bench_function("fill_trips", |b| {
        b.iter_custom(|iters| {
            time_applies(iters, &tripping, || {
                Engine::new(trip_policy.clone(), EngineOptions::default())
            })
        })
    });
    group.finish();
}

fn decode_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_apply");
    let lines: Vec<String> = (0..200_000).map(|n| fill_line(n, n % 1_000, 1.0)).collect();
    // As the live pipeline does it: each fill decoded into the buffers of the one
    // applied before (`decode_into`); `_fresh` allocates every fill's strings anew.
    for (name, reuse) in [
        ("exec_result_line", true),
        ("exec_result_line_fresh", false),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut engine = Engine::new(Policy::default(), EngineOptions::default());
                let mut out = Vec::new();
                let mut slot = None;
                let mut left = iters;
                // Timed a run of lines at a time, not line by line, so the clock's own
                // cost (two reads, ~40 ns) stays out of the figure, as in `decode_only`.
                while left > 0 {
                    let run = left.min(lines.len() as u64) as usize;
                    let started = Instant::now();
                    for line in &lines[..run] {
                        out.clear();
                        let bytes = black_box(line.as_bytes());
                        if !reuse {
                            slot = None;
                        }
                        decode_into(Stream::ExecResult, bytes, &mut slot).unwrap();
                        let input = slot.as_ref().unwrap();
                        black_box(engine.apply_into(input, &mut out));
                    }
                    total += started.elapsed();
                    left -= run as u64;
                    engine = Engine::new(Policy::default(), EngineOptions::default());
                }
                total
            })
        });
    }
    // The same once the dedup set is far bigger than the caches: 1,000 fills/s under
    // a 20-minute horizon keeps about 1.2M ids, and every line moves the clock on, so
    // the sweeps run as they would live.
    let policy = Policy::from_toml("[state]\nhorizon = \"20m\"").unwrap();
    let mut engine = Engine::new(policy, EngineOptions::default());
    let mut out = Vec::new();
    let mut next = 0u64;
    while next < 1_500_000 {
        let line = fill_line_every(next, next % 1_000, 1.0, 1);
        engine.apply_into(
            &decode(Stream::ExecResult, line.as_bytes()).unwrap(),
            &mut out,
        );
        out.clear();
        next += 1;
    }
    group.bench_function("exec_result_line_1m_remembered", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let run = left.min(10_000);
                let lines: Vec<String> = (next..next + run)
                    .map(|n| fill_line_every(n, n % 1_000, 1.0, 1))
                    .collect();
                next += run;
                let started = Instant::now();
                for line in &lines {
                    out.clear();
                    let input = decode(Stream::ExecResult, black_box(line.as_bytes())).unwrap();
                    black_box(engine.apply_into(&input, &mut out));
                }
                total += started.elapsed();
                left -= run;
            }
            total
        })
    });
    group.bench_function("exec_result_decode_only", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % lines.len();
            black_box(decode(Stream::ExecResult, lines[i].as_bytes()).unwrap())
        })
    });
    group.finish();
}

/// The live pipeline's per-message work without the broker: decode the Kafka payload,
/// decide, encode each decision as it goes to the producer.
fn live_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("live_decode_decide_encode");
    for (name, bps, strategies, policy) in [
        ("fill_no_trip", 1.0, 1_000u64, Policy::default()),
        (
            "fill_trips",
            9.0,
            200_000,
            Policy::from_toml("[slippage]\ntrip_at = 1\npause = \"group\"").unwrap(),
        ),
    ] {
        let lines: Vec<String> = (0..200_000)
            .map(|n| fill_line(n, n % strategies, bps))
            .collect();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut engine = Engine::new(policy.clone(), EngineOptions::default());
                let mut out = Vec::new();
                let mut i = 0usize;
                for _ in 0..iters {
                    if i == lines.len() {
                        engine = Engine::new(policy.clone(), EngineOptions::default());
                        i = 0;
                    }
                    out.clear();
                    let started = Instant::now();
                    let input = decode(Stream::ExecResult, black_box(lines[i].as_bytes())).unwrap();
                    engine.apply_into(&input, &mut out);
                    for decision in &out {
                        black_box(serde_json::to_vec(decision).unwrap());
                    }
                    total += started.elapsed();
                    i += 1;
                }
                total
            })
        });
    }
    group.finish();
}

fn replay_throughput(c: &mut Criterion) {
    let shape = StreamShape {
        messages: 1_000_000,
        ..StreamShape::default()
    };
    let mut lines = Vec::with_capacity(shape.messages as usize);
    mixed_stream(&shape, |l| lines.push(l.to_owned()));
    let mut group = c.benchmark_group("replay");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(shape.messages));
    group.bench_function("mixed_1m_decode_apply_encode", |b| {
        b.iter_batched(
            || Engine::new(Policy::default(), EngineOptions::default()),
            |mut engine| {
                let mut out = Vec::new();
                let mut sink = Vec::with_capacity(1 << 20);
                for line in &lines {
                    out.clear();
                    if let Ok(input) = decode_envelope(line.as_bytes()) {
                        engine.apply_into(&input, &mut out);
                        for d in &out {
                            serde_json::to_writer(&mut sink, d).unwrap();
                            sink.push(b'\n');
                        }
                    }
                }
                black_box(sink.len())
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    engine_apply,
    decode_apply,
    live_path,
    replay_throughput
);
criterion_main!(benches);
