//! What the dedup set costs, measured: a counting global allocator (this test binary's
//! own) reports the heap bytes a `Seen` holds after it remembered a million ids, and
//! every size on the way there stays within 16 bytes per remembered id (issue 10,
//! "Memory"). `cargo test -p noctria-guard --release --test seen_memory -- --nocapture`
//! prints the figures.

use std::sync::Mutex;

use guard::engine::Seen;
use guard::message::Stream;

mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The counter is process-wide: tests that measure take turns.
static MEASURING: Mutex<()> = Mutex::new(());

const LIMIT: f64 = 16.0;

/// Heap bytes per remembered id of a set that took `ids` fills, `per_second` of them
/// for each second of event time, forgetting as the engine does (behind the newest
/// second by `horizon`, every eighth of it), checked against [`LIMIT`] at every
/// `check_every` ids; returns the figure at the end and the largest one on the way.
fn bytes_per_id(
    ids: usize,
    per_second: usize,
    horizon: i64,
    check_every: usize,
) -> (f64, f64, usize) {
    let before = counting::live();
    let mut seen = Seen::default();
    let mut id = String::new();
    let mut last_cutoff: Option<i64> = None;
    let mut worst: f64 = 0.0;
    for n in 0..ids {
        let second = 1_754_870_400 + (n / per_second) as i64;
        id.clear();
        id.push_str("fill-");
        id.push_str(&n.to_string());
        assert!(seen.insert(Stream::ExecResult, &id, second));
        let cutoff = second - horizon;
        if last_cutoff.is_none_or(|c| cutoff >= c + (horizon / 8).max(1)) {
            seen.forget_before(cutoff);
            last_cutoff = Some(cutoff);
        }
        if (n + 1) % check_every == 0 {
            let held = seen.len();
            let per_id = (counting::live() - before) as f64 / held as f64;
            worst = worst.max(per_id);
            assert!(
                per_id <= LIMIT,
                "{per_id:.2} bytes per id with {held} ids remembered"
            );
        }
    }
    let held = seen.len();
    let per_id = (counting::live() - before) as f64 / held as f64;
    drop(seen);
    (per_id, worst, held)
}

#[test]
fn a_million_ids_within_one_horizon_take_at_most_16_bytes_each() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    // 1,000 fills a second for 1,000 s under the default day: nothing is forgotten.
    let (per_id, worst, held) = bytes_per_id(1_000_000, 1_000, 86_400, 10_000);
    assert_eq!(held, 1_000_000);
    println!("seen: {held} ids, {per_id:.2} bytes/id (largest at any 10,000th id: {worst:.2})");
    assert!(per_id <= LIMIT);
}

#[test]
fn a_full_horizon_with_sweeps_stays_within_16_bytes_per_remembered_id() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    // 2,000 fills a second for 1,500 s with a 10-minute horizon: about 1.2M ids
    // remembered at any time, whole buckets dropped behind the horizon, and the bucket
    // at the horizon holding ids already forgotten until it is dropped in turn.
    let (per_id, worst, held) = bytes_per_id(3_000_000, 2_000, 600, 50_000);
    println!(
        "seen after sweeps: {held} ids remembered, {per_id:.2} bytes/id (largest at any 50,000th id: {worst:.2})"
    );
    assert!(per_id <= LIMIT);
}
