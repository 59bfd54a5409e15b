//! What the live guard's casebook costs, measured: a counting global allocator (this
//! test binary's own) reports the heap bytes a full casebook holds after a run of
//! slippage trips, each step recorded as the live guard records it.
//! `cargo test -p noctria-guard --release --test casebook_memory -- --nocapture`
//! prints the figure.

use guard::decode::decode;
use guard::engine::{Engine, EngineOptions};
use guard::live::casebook::{Casebook, DEFAULT_CAPACITY};
use guard::message::Stream;
use guard::policy::Policy;
use guard::replay::explain::{Place, StepView};

mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

fn fill(n: u64, strategy: u64) -> String {
    format!(
        r#"{{"fill_id":"f-{n}","order_id":"o-{n}","strategy_id":"strategy-{strategy}","symbol":"7203.T","side":"buy","qty":100,"expected_price":1000.0,"fill_price":1000.9,"realized_pnl":-12.5,"ts":"2025-08-11T00:{:02}:{:02}.{:03}Z","env":"prod"}}"#,
        (n / 60_000) % 60,
        (n / 1_000) % 60,
        n % 1_000
    )
}

/// Bytes a casebook of `capacity` cases holds after 10,000 slippage trips of 1,000
/// strategies (every fill breaches; three in a row of a strategy trip it), recorded
/// step by step as the live guard records them; and how many cases it kept.
fn casebook_bytes(capacity: usize) -> (usize, usize) {
    let policy =
        Policy::from_toml("[slippage]\npause = \"group\"\n[losing_streak]\nenabled = false")
            .unwrap();
    let mut engine = Engine::new(policy, EngineOptions::default());
    let mut out = Vec::new();
    let before = counting::live();
    let mut book = Casebook::new(capacity);
    let mut scopes = engine.state().scopes.clone();
    for n in 0..30_000u64 {
        let input = decode(Stream::ExecResult, fill(n, (n / 3) % 1_000).as_bytes()).unwrap();
        out.clear();
        engine.apply_into(&input, &mut out);
        if out.is_empty() {
            continue;
        }
        let step = StepView {
            place: Place::Topic {
                topic: "exec_result".into(),
                partition: 0,
                offset: n as i64,
            },
            input: Some(&input),
            decisions: &out,
        };
        book.record(&step, &scopes, &engine);
        // The scopes before the next step, as the live guard keeps them.
        for decision in &out {
            scopes.copy_scope(&engine.state().scopes, decision.scope());
        }
    }
    let kept = book.len();
    // The engine's and the scopes' own bytes are not the casebook's.
    drop((engine, scopes, out));
    let held = counting::live() - before;
    drop(book);
    (held, kept)
}

/// What a kept case may cost: a trip's two cases share the trip's decisions and its
/// fill (`StepShared`), and the table holds boxed cases. A copy per case took ~4,400
/// bytes a case; shared but inline in the table, ~3,100.
const LIMIT: f64 = 2_800.0;

#[test]
fn a_full_casebook_of_slippage_trips_takes_at_most_2800_bytes_a_case() {
    let (held, kept) = casebook_bytes(DEFAULT_CAPACITY);
    assert_eq!(kept, DEFAULT_CAPACITY);
    let per_case = held as f64 / kept as f64;
    println!("casebook: {kept} cases, {held} bytes, {per_case:.0} bytes a case");
    assert!(per_case <= LIMIT, "{per_case:.0} bytes a case");
}
