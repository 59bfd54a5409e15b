//! The bucketed set answers exactly like the map it replaced: a `HashMap` from the
//! full 128-bit key to the second, filled, swept and restored the same way.

use std::collections::HashMap;

use proptest::prelude::*;

use super::{reduce, Seen, SeenEntry, MAX_BUCKETS};
use crate::message::Stream;

/// Few ids, so that repeats are common.
const IDS: u8 = 48;
const STREAMS: [Stream; 3] = [Stream::ExecResult, Stream::RiskEvent, Stream::OpsCommand];

/// The former `Seen`: full keys, one entry each, forgotten by `retain`.
#[derive(Default)]
struct Model(HashMap<u128, i64>);

impl Model {
    fn key(stream: Stream, id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), stream as u64 + 1)
    }

    fn insert(&mut self, stream: Stream, id: &str, second: i64) -> bool {
        match self.0.entry(Self::key(stream, id)) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(second);
                true
            }
        }
    }

    fn entries(&self) -> Vec<(u128, i64)> {
        let mut entries: Vec<(u128, i64)> = self.0.iter().map(|(k, s)| (reduce(*k), *s)).collect();
        entries.sort_unstable();
        entries
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// An id of a second up to `lag` behind the clock (late ones included).
    Insert { stream: usize, id: u8, lag: i64 },
    /// An id of any second at all.
    Anywhere { stream: usize, id: u8, second: i64 },
    /// The clock moves; the engine's sweep runs when the cutoff moved an eighth of
    /// the horizon.
    Advance(i64),
    /// A sweep at any cutoff, behind the last one or not.
    Sweep { back: i64 },
    /// Entries put back with `extend_entries` (a key held is replaced).
    Extend(Vec<(usize, u8, i64)>),
    /// The set is serialised and read back (a snapshot), or rebuilt from its entries
    /// (a store), and goes on from there.
    Restore { from_snapshot: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 0..IDS, 0..400i64).prop_map(|(stream, id, lag)| Op::Insert { stream, id, lag }),
        1 => (0..3usize, 0..IDS, prop_oneof![
            any::<i64>(),
            -2_000_000_000..2_000_000_000i64,
            Just(i64::MIN),
            Just(i64::MAX),
        ])
            .prop_map(|(stream, id, second)| Op::Anywhere { stream, id, second }),
        6 => (0..40i64).prop_map(Op::Advance),
        1 => (-100..500i64).prop_map(|back| Op::Sweep { back }),
        1 => prop::collection::vec((0..3usize, 0..IDS, -300..300i64), 0..6).prop_map(Op::Extend),
        1 => any::<bool>().prop_map(|from_snapshot| Op::Restore { from_snapshot }),
    ]
}

fn id(n: u8) -> String {
    format!("f-{n}")
}

fn check(seen: &Seen, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(seen.len(), model.0.len());
    for stream in STREAMS {
        for n in 0..IDS {
            prop_assert_eq!(
                seen.contains(stream, &id(n)),
                model.0.contains_key(&Model::key(stream, &id(n))),
                "{:?} {}",
                stream,
                n
            );
        }
    }
    prop_assert_eq!(seen.sorted_entries(), model.entries());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn answers_like_a_map_under_inserts_sweeps_and_restores(
        horizon in 1..300i64,
        ops in prop::collection::vec(op(), 1..250),
    ) {
        let mut seen = Seen::default();
        let mut model = Model::default();
        let mut clock = 1_754_870_400i64;
        let mut last_cutoff: Option<i64> = None;
        for op in ops {
            match op {
                Op::Insert { stream, id: n, lag } => {
                    let second = clock - lag;
                    prop_assert_eq!(
                        seen.insert(STREAMS[stream], &id(n), second),
                        model.insert(STREAMS[stream], &id(n), second)
                    );
                }
                Op::Anywhere { stream, id: n, second } => {
                    prop_assert_eq!(
                        seen.insert(STREAMS[stream], &id(n), second),
                        model.insert(STREAMS[stream], &id(n), second)
                    );
                }
                Op::Advance(by) => {
                    clock += by;
                    let cutoff = clock - horizon;
                    if last_cutoff.is_none_or(|c| cutoff >= c + (horizon / 8).max(1)) {
                        seen.forget_before(cutoff);
                        model.0.retain(|_, s| *s >= cutoff);
                        last_cutoff = Some(cutoff);
                    }
                }
                Op::Sweep { back } => {
                    let cutoff = clock - back;
                    seen.forget_before(cutoff);
                    model.0.retain(|_, s| *s >= cutoff);
                }
                Op::Extend(entries) => {
                    let entries: Vec<(u128, i64)> = entries
                        .into_iter()
                        .map(|(stream, n, lag)| (Model::key(STREAMS[stream], &id(n)), clock - lag))
                        .collect();
                    seen.extend_entries(entries.iter().copied());
                    model.0.extend(entries);
                }
                Op::Restore { from_snapshot } => {
                    let restored = if from_snapshot {
                        let json = serde_json::to_string(&seen).expect("serialises");
                        serde_json::from_str(&json).expect("reads back")
                    } else {
                        let mut restored = Seen::default();
                        restored.extend_entries(seen.entries());
                        restored
                    };
                    prop_assert_eq!(&restored, &seen);
                    seen = restored;
                }
            }
            check(&seen, &model)?;
        }
    }
}

#[test]
fn the_journal_holds_each_new_id_once_with_its_persisted_key() {
    let mut seen = Seen::default();
    seen.enable_journal();
    assert!(seen.insert(Stream::ExecResult, "f-1", 100));
    assert!(!seen.insert(Stream::ExecResult, "f-1", 101));
    assert!(seen.insert(Stream::RiskEvent, "f-1", 102));
    let journal: Vec<SeenEntry> = seen.drain_journal().iter().collect();
    assert_eq!(
        journal,
        vec![
            SeenEntry::new(Model::key(Stream::ExecResult, "f-1"), 100),
            SeenEntry::new(Model::key(Stream::RiskEvent, "f-1"), 102),
        ]
    );
    assert!(seen.drain_journal().is_empty());
    // Put back into an empty set, the journal answers as the set did.
    let mut restored = Seen::default();
    restored.extend_entries(journal.into_iter().map(SeenEntry::pair));
    assert_eq!(restored, seen);
}

#[test]
fn a_snapshot_of_an_older_build_with_full_keys_reads_back_to_the_same_ids() {
    let full = Model::key(Stream::ExecResult, "f-7");
    let json = format!(r#"["{full:032x}:1754870400"]"#);
    let seen: Seen = serde_json::from_str(&json).expect("reads");
    assert!(seen.contains(Stream::ExecResult, "f-7"));
    assert!(!seen.contains(Stream::ExecResult, "f-8"));
    assert_eq!(
        seen.entries().collect::<Vec<_>>(),
        vec![(reduce(full), 1_754_870_400)]
    );
}

#[test]
fn sweeps_drop_whole_buckets_and_trim_only_the_one_at_the_cutoff() {
    let mut seen = Seen::default();
    let horizon = 800;
    let mut last_cutoff: Option<i64> = None;
    for second in 0..4_000i64 {
        for n in 0..10 {
            assert!(seen.insert(Stream::ExecResult, &format!("f-{second}-{n}"), second));
        }
        let cutoff = second - horizon;
        if last_cutoff.is_none_or(|c| cutoff >= c + horizon / 8) {
            seen.forget_before(cutoff);
            last_cutoff = Some(cutoff);
        }
    }
    // Buckets an eighth of the horizon wide, their edges on the cutoffs: the oldest
    // starts exactly at the last cutoff, nothing older is held.
    let cutoff = last_cutoff.expect("swept");
    assert!(seen.buckets.len() <= 10, "{} buckets", seen.buckets.len());
    assert_eq!(seen.buckets[0].from, cutoff);
    assert_eq!(seen.buckets[0].oldest, cutoff);
    assert!(seen.buckets.iter().all(|b| b.until - b.from == horizon / 8));
    assert_eq!(seen.len(), (4_000 - cutoff) as usize * 10);
    assert!(seen.others.is_empty());
}

#[test]
fn seconds_no_bucket_takes_are_kept_whole_and_still_answered() {
    let mut seen = Seen::default();
    for n in 0..(MAX_BUCKETS as i64 + 10) {
        assert!(seen.insert(Stream::ExecResult, &format!("f-{n}"), n * 1_000_000));
    }
    assert!(seen.insert(Stream::ExecResult, "min", i64::MIN));
    assert!(seen.insert(Stream::ExecResult, "max", i64::MAX));
    assert_eq!(seen.buckets.len(), MAX_BUCKETS);
    assert!(!seen.others.is_empty());
    for n in 0..(MAX_BUCKETS as i64 + 10) {
        assert!(seen.contains(Stream::ExecResult, &format!("f-{n}")));
    }
    assert!(seen.contains(Stream::ExecResult, "min") && seen.contains(Stream::ExecResult, "max"));
    seen.forget_before(i64::MAX);
    assert_eq!(seen.len(), 1);
    assert!(seen.contains(Stream::ExecResult, "max"));
}

#[test]
fn an_engine_restored_from_an_older_build_still_knows_its_ids() {
    use crate::engine::{Disposition, Engine, EngineOptions, SNAPSHOT_FORMAT};
    use crate::policy::Policy;
    let fill = |id: &str| {
        let line = format!(
            r#"{{"fill_id":"{id}","strategy_id":"s1","symbol":"7203.T","side":"buy","qty":100,"expected_price":1000.0,"fill_price":1000.1,"ts":"2025-08-11T00:00:00Z"}}"#
        );
        crate::decode::decode(Stream::ExecResult, line.as_bytes()).expect("valid fill")
    };
    let mut engine = Engine::new(Policy::default(), EngineOptions::default());
    assert_eq!(engine.apply(&fill("f-1")).disposition, Disposition::Applied);
    // Format 2 held the full digests.
    let mut old: serde_json::Value = serde_json::from_slice(&engine.snapshot()).expect("JSON");
    assert_eq!(old["format"], SNAPSHOT_FORMAT);
    old["format"] = 2.into();
    let full = Model::key(Stream::ExecResult, "f-1");
    old["state"]["seen"] = serde_json::json!([format!("{full:032x}:1754870400")]);
    let bytes = serde_json::to_vec(&old).expect("JSON");
    let (mut restored, _) = Engine::restore(Policy::default(), EngineOptions::default(), &bytes)
        .expect("format 2 reads");
    assert_eq!(
        restored.apply(&fill("f-1")).disposition,
        Disposition::Duplicate
    );
    assert_eq!(
        restored.apply(&fill("f-2")).disposition,
        Disposition::Applied
    );
    // So do the full digests of an older store, put back with `restore_seen`.
    let (mut from_store, _) = Engine::restore(
        Policy::default(),
        EngineOptions::default(),
        &engine.snapshot_without_seen(),
    )
    .expect("reads");
    from_store.restore_seen([SeenEntry::new(full, 1_754_870_400)]);
    assert_eq!(
        from_store.apply(&fill("f-1")).disposition,
        Disposition::Duplicate
    );
    // A format this build does not know is refused, saying which it reads.
    old["format"] = (SNAPSHOT_FORMAT + 1).into();
    let bytes = serde_json::to_vec(&old).expect("JSON");
    let refused = Engine::restore(Policy::default(), EngineOptions::default(), &bytes)
        .expect_err("a newer format");
    assert!(
        refused
            .to_string()
            .contains(&format!("reads formats 2 to {SNAPSHOT_FORMAT}")),
        "{refused}"
    );
}
