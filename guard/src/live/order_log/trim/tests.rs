//! The trimmer: runs read, cuts, carrying from one life to the next.
use super::*;

const HOUR: i64 = 3_600;

fn earlier(records: &[(&str, i64)]) -> Earlier {
    let mut e = Earlier::default();
    for (key, offset) in records {
        e.take(key, *offset, false);
    }
    e
}

fn publish(trim: &mut Trim, seen_from: i64, journal_from: Option<i64>, record: u64) -> Vec<String> {
    let mut deleted = Vec::new();
    assert!(
        trim.published(Some(seen_from), journal_from, record, 100, |k| {
            deleted.push(k);
            true
        })
    );
    deleted
}

#[test]
fn a_lifes_records_arrive_as_one_run_and_its_deletions_shorten_it() {
    let mut e = earlier(&[
        ("order/a-1", 10),
        ("order/a-2", 12),
        ("manifest", 13),
        ("order/b-1", 14),
        ("order/a-3", 15),
    ]);
    assert_eq!(e.runs.len(), 2);
    assert_eq!(e.records(), 4);
    e.take("order/a-1", 20, true);
    e.take("order/a-3", 21, true); // not the lowest: the run keeps it
    assert_eq!(e.records(), 3);
    e.take("order/b-1", 22, true);
    assert_eq!(e.runs.len(), 1, "a run deleted whole is gone");
    e.take("order/a-9", 23, false);
    assert_eq!(e.runs.len(), 2, "a gap in the numbers starts a run");
}

#[test]
fn nothing_is_deleted_until_a_cut_is_a_horizon_behind_the_newest() {
    let mut trim = Trim::new(Span::from_secs(HOUR), Earlier::default());
    trim.own_life("order/me-".into());
    assert!(publish(&mut trim, 1_000, Some(50), 5).is_empty());
    assert!(publish(&mut trim, 1_000 + HOUR / 2, Some(80), 9).is_empty());
    assert!(publish(&mut trim, 1_000 + HOUR - 1, Some(90), 12).is_empty());
    let deleted = publish(&mut trim, 1_000 + HOUR, Some(99), 15);
    assert_eq!(
        deleted,
        ["order/me-1", "order/me-2", "order/me-3", "order/me-4"],
        "below the record of the cut a horizon behind, never that record itself"
    );
    assert!(
        publish(&mut trim, 1_000 + HOUR, Some(120), 20).is_empty(),
        "each record is deleted once"
    );
    let deleted = publish(&mut trim, 1_000 + HOUR * 3 / 2, Some(130), 22);
    assert_eq!(
        deleted,
        ["order/me-5", "order/me-6", "order/me-7", "order/me-8"]
    );
}

#[test]
fn earlier_lives_go_once_a_cut_a_horizon_behind_stands_after_them() {
    let old = earlier(&[
        ("order/a-1", 10),
        ("order/a-2", 11),
        ("order/b-1", 40),
        ("order/b-2", 70),
    ]);
    let mut trim = Trim::new(Span::from_secs(HOUR), old);
    trim.own_life("order/me-".into());
    publish(&mut trim, 0, Some(60), 0);
    let deleted = publish(&mut trim, HOUR, Some(100), 3);
    assert_eq!(
        deleted,
        ["order/a-1", "order/a-2"],
        "b's run ends after the cut's records begin: kept"
    );
    publish(&mut trim, HOUR + 10, None, 4);
    let deleted = publish(&mut trim, 2 * HOUR + 10, Some(200), 8);
    assert_eq!(
        deleted,
        ["order/me-1", "order/me-2", "order/me-3"],
        "a cut that does not know where its records begin deletes only this life's"
    );
    let deleted = publish(&mut trim, 3 * HOUR + 10, Some(300), 9);
    assert_eq!(
        deleted,
        [
            "order/me-4",
            "order/me-5",
            "order/me-6",
            "order/me-7",
            "order/b-1",
            "order/b-2"
        ]
    );
}

#[test]
fn what_a_life_leaves_a_checkpoint_carries_and_the_next_life_deletes() {
    let mut first = Trim::new(Span::from_secs(HOUR), earlier(&[("order/old-4", 3)]));
    first.own_life("order/me-".into());
    publish(&mut first, 1_000, Some(40), 5);
    assert_eq!(
        publish(&mut first, 1_000 + HOUR, Some(60), 8),
        [
            "order/me-1",
            "order/me-2",
            "order/me-3",
            "order/me-4",
            "order/old-4"
        ]
    );
    // A checkpoint at record 10, whose records after it begin at offset 70: this
    // life's records split at the cut taken at record 8 (offset 60).
    let carried = first.leftovers(10, Some(70));
    let run = |lo, hi, last_offset| Run {
        prefix: "order/me-".into(),
        lo,
        hi,
        last_offset,
    };
    assert_eq!(carried, [run(5, 7, 59), run(8, 9, 69)]);
    assert!(
        first.leftovers(10, None).is_empty(),
        "unknown offsets: none"
    );
    assert_eq!(
        first.leftovers(5, Some(70)),
        [],
        "nothing below the cut left"
    );

    // The next life: the records from offset 70 on it reads, the rest carried.
    let mut read = earlier(&[("order/me-10", 70), ("order/me-11", 72)]);
    read.carry(carried);
    let mut next = Trim::new(Span::from_secs(HOUR), read);
    next.own_life("order/next-".into());
    assert!(publish(&mut next, 5_000, Some(72), 1).is_empty());
    assert_eq!(
        publish(&mut next, 5_000 + HOUR, Some(90), 3),
        [
            "order/me-5",
            "order/me-6",
            "order/me-7",
            "order/me-8",
            "order/me-9"
        ],
        "a cut a horizon behind and after the carried run deletes it"
    );
    assert_eq!(
        publish(&mut next, 5_000 + 2 * HOUR, Some(99), 5),
        ["order/next-1", "order/next-2", "order/me-10", "order/me-11"],
        "the run read goes once a cut a horizon behind stands after it"
    );
    assert!(next.leftovers(3, Some(90)).is_empty());
}

#[test]
fn a_life_shorter_than_the_horizon_deletes_by_the_cuts_it_was_handed() {
    // A first life's cuts over most of a horizon, its checkpoint at record 6.
    let mut first = Trim::new(Span::from_secs(HOUR), Earlier::default());
    first.own_life("order/me-".into());
    for (floor, from, record) in [(0, 10, 2), (HOUR / 2, 20, 4), (HOUR - 60, 30, 6)] {
        assert!(publish(&mut first, floor, Some(from), record).is_empty());
    }
    let cuts = first.cuts();
    assert_eq!(cuts, [[0, 10], [HOUR / 2, 20], [HOUR - 60, 30]]);
    let carried = first.leftovers(6, Some(30));
    assert_eq!(carried.len(), 3, "split at the cuts of records 2 and 4");

    // The next life lives a minute of event time: handed those cuts, its first cut
    // is a horizon past the first one and deletes what stands before it.
    let handed = || {
        let mut read = earlier(&[("order/me-6", 30)]);
        read.carry(carried.clone());
        let mut next = Trim::new(Span::from_secs(HOUR), read);
        next.own_life("order/next-".into());
        next
    };
    let mut next = handed();
    next.seed_cuts(cuts.iter().copied());
    assert_eq!(
        publish(&mut next, HOUR + 60, Some(40), 1),
        ["order/me-1"],
        "the records before the cut a horizon behind (record 2, offset 10) go"
    );
    assert_eq!(
        publish(&mut next, HOUR + HOUR / 2, Some(45), 2),
        ["order/me-2", "order/me-3"],
        "then those before the next one (record 4, offset 20)"
    );
    assert_eq!(next.cuts()[0], [HOUR / 2, 20], "which stays the oldest");
    // Without them it deletes nothing yet.
    let mut unseeded = handed();
    assert!(publish(&mut unseeded, HOUR + 60, Some(40), 1).is_empty());
    assert!(publish(&mut unseeded, HOUR + HOUR / 2, Some(45), 2).is_empty());
    // Seeding keeps the cuts in order: an older one after a newer is left out.
    let mut t = Trim::new(Span::from_secs(HOUR), Earlier::default());
    t.seed_cuts([[100, 5], [50, 4], [100, 6], [200, 7]]);
    assert_eq!(t.cuts(), [[100, 6], [200, 7]]);
}

#[test]
fn carried_runs_shorten_a_run_read_that_they_cover_from_its_start() {
    let mut e = earlier(&[("order/a-1", 1), ("order/a-2", 2), ("order/a-3", 3)]);
    let mut t = Trim::new(Span::from_secs(HOUR), Earlier::default());
    t.own_life("order/a-".into());
    e.carry(t.leftovers(3, Some(3)));
    assert_eq!(e.records(), 3, "a-1 and a-2 once, as carried; a-3 as read");
    let mut next = Trim::new(Span::from_secs(HOUR), e);
    publish(&mut next, 0, Some(10), 0);
    assert_eq!(
        publish(&mut next, HOUR, Some(20), 0),
        ["order/a-3", "order/a-1", "order/a-2"],
        "each once"
    );
}

#[test]
fn a_checkpoint_carries_the_newest_runs_only() {
    let lives: Vec<(String, i64)> = (0..CARRIED_RUNS as i64 + 10)
        .map(|i| (format!("order/life{i}-1"), i))
        .collect();
    let read: Vec<(&str, i64)> = lives.iter().map(|(k, o)| (k.as_str(), *o)).collect();
    let mut trim = Trim::new(Span::from_secs(HOUR), earlier(&read));
    trim.own_life("order/me-".into());
    let carried = trim.leftovers(3, Some(5_000));
    assert_eq!(carried.len(), CARRIED_RUNS);
    assert_eq!(
        carried.last().unwrap().prefix,
        "order/me-",
        "its own life's run"
    );
    assert!(
        carried.iter().all(|r| r.prefix != "order/life10-"),
        "the oldest runs are left"
    );
    assert!(carried.iter().any(|r| r.prefix == "order/life11-"));
}

#[test]
fn a_cut_deletes_at_most_its_budget_and_the_next_goes_on() {
    let old = earlier(&[("order/a-1", 10), ("order/a-2", 11)]);
    let mut trim = Trim::new(Span::from_secs(HOUR), old);
    trim.own_life("order/me-".into());
    publish(&mut trim, 0, Some(50), 4);
    let mut deleted = Vec::new();
    let mut take = |trim: &mut Trim, seen_from| {
        assert!(trim.published(Some(seen_from), Some(60), 5, 2, |k| {
            deleted.push(k);
            true
        }));
    };
    take(&mut trim, HOUR);
    take(&mut trim, HOUR + 1);
    take(&mut trim, HOUR + 2);
    assert_eq!(
        deleted,
        [
            "order/me-1",
            "order/me-2",
            "order/me-3",
            "order/a-1",
            "order/a-2"
        ]
    );
}

#[test]
fn a_refused_deletion_is_offered_again() {
    let mut trim = Trim::new(Span::from_secs(HOUR), Earlier::default());
    trim.own_life("order/me-".into());
    publish(&mut trim, 0, Some(1), 4);
    let mut offered = 0;
    assert!(!trim.published(Some(HOUR), Some(2), 6, 100, |_| {
        offered += 1;
        offered < 2
    }));
    assert_eq!(
        publish(&mut trim, HOUR, Some(2), 6),
        ["order/me-2", "order/me-3"],
        "the first went out; the refused one comes again"
    );
}
