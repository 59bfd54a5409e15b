//! The changelog's records without a broker: whatever prefix of them a reader has
//! read, and however the topic was compacted, it restores exactly a published cut or
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::records::Record;
use super::{Published, Publisher, ReadError, Reader};
use crate::live::store::{Checkpoint, OutMsg, SeenEntry};

/// What the writer thread does for one written checkpoint, by hand: its blocks,
/// then (when `snapshot`) its state and manifest.
struct Run {
    publisher: Publisher,
    records: Vec<Record>,
    /// After each manifest: how many records it ends at, and the snapshot it names.
    cuts: Vec<(usize, Checkpoint, BTreeSet<SeenEntry>)>,
    all: BTreeSet<SeenEntry>,
}

fn checkpoint(seq: u64, seen_from: Option<i64>) -> Checkpoint {
    Checkpoint {
        seq,
        engine: format!(r#"{{"format":3,"seq":{seq}}}"#).into_bytes(),
        offsets: BTreeMap::from([(("exec_result".to_owned(), 0), seq as i64 * 10)]),
        outbox: vec![OutMsg {
            id: format!("cmd-{seq}"),
            topic: "guard_command".into(),
            key: "global".into(),
            payload: b"{}".to_vec(),
            headers: vec![],
            timestamp_ms: None,
        }],
        seen_from,
        journal_from: Some(seq as i64 * 3),
        // What the writer's trimmer hands on: records 1 to 2 of a life, one cut.
        order_runs: {
            use crate::live::order_log::{Earlier, Trim};
            let mut trim = Trim::new(crate::time::Span::from_secs(3_600), Earlier::default());
            trim.own_life("order/me-".into());
            trim.leftovers(3, Some(seq as i64 * 3))
        },
        order_cuts: vec![[seq as i64, seq as i64 * 3 - 1]],
    }
}

impl Run {
    fn new(publisher: Publisher) -> Self {
        Run {
            publisher,
            records: Vec::new(),
            cuts: Vec::new(),
            all: BTreeSet::new(),
        }
    }

    /// Checkpoint `seq` adds `new` ids; its horizon is `seen_from`.
    fn written(&mut self, seq: u64, new: &[SeenEntry], seen_from: Option<i64>, snapshot: bool) {
        let full = self.publisher.wants_full();
        self.all.extend(new.iter().copied());
        let from = seen_from.unwrap_or(i64::MIN);
        self.all.retain(|e| e.second() >= from);
        let entries: Vec<SeenEntry> = if full {
            self.all.iter().copied().collect()
        } else {
            new.to_vec()
        };
        self.records.extend(self.publisher.blocks(&entries, full));
        if snapshot {
            let checkpoint = checkpoint(seq, seen_from);
            let records = self.publisher.snapshot(&checkpoint);
            let manifest = records.iter().position(|r| r.key == "manifest").unwrap();
            let end = self.records.len() + manifest + 1;
            self.records.extend(records);
            self.cuts.push((end, checkpoint, self.all.clone()));
        }
    }

    /// Many checkpoints: ids every second of event time, the horizon 30 s behind.
    fn history(&mut self, seqs: std::ops::Range<u64>) {
        for seq in seqs {
            let second = seq as i64 * 7;
            let new: Vec<SeenEntry> = (0..(seq % 5) * 3)
                .map(|i| {
                    SeenEntry::new(
                        (u128::from(seq) << 96) | (u128::from(i) << 48),
                        second - (i as i64 % 4),
                    )
                })
                .collect();
            let seen_from = (second > 30).then_some(second - 30);
            self.written(seq, &new, seen_from, seq % 3 != 1);
        }
    }
}

fn read(records: &[Record]) -> Reader {
    let mut reader = Reader::default();
    for record in records {
        reader.take(&record.key, record.payload.as_deref());
    }
    reader
}

fn same(published: &Published, checkpoint: &Checkpoint, seen: &BTreeSet<SeenEntry>) -> bool {
    let held: BTreeSet<SeenEntry> = published.seen.iter().collect();
    published.checkpoint == *checkpoint && held == *seen && held.len() == published.seen.len()
}

/// What a compacted topic keeps: the last record of every key, none of a key whose
/// last record is a tombstone.
fn compacted(records: &[Record]) -> Vec<Record> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        last.insert(&record.key, i);
    }
    let keep: BTreeSet<usize> = last.values().copied().collect();
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| keep.contains(i) && r.payload.is_some())
        .map(|(_, r)| r.clone())
        .collect()
}

#[test]
fn every_prefix_of_the_changelog_restores_its_newest_cut_exactly() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..60);
    assert!(run.cuts.len() > 30);
    for n in 0..=run.records.len() {
        let reader = read(&run.records[..n]);
        let newest = run.cuts.iter().rev().find(|(end, _, _)| *end <= n);
        match (reader.snapshot(), newest) {
            (Ok(None), None) => {}
            (Ok(Some(published)), Some((_, checkpoint, seen))) => assert!(
                same(&published, checkpoint, seen),
                "after {n} records the reader restored something else than cut {}",
                checkpoint.seq
            ),
            (other, newest) => panic!(
                "after {n} records: {:?}, the newest cut is {:?}",
                other.map(|p| p.map(|p| p.checkpoint.seq)),
                newest.map(|c| c.1.seq)
            ),
        }
    }
}

#[test]
fn a_compacted_changelog_restores_the_last_cut_and_keeps_no_block_past_the_horizon() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..60);
    let (_, checkpoint, seen) = run.cuts.last().unwrap().clone();
    let kept = compacted(&run.records);
    let published = read(&kept).snapshot().unwrap().unwrap();
    assert!(same(&published, &checkpoint, &seen));
    let from = checkpoint.seen_from.unwrap();
    // Compaction left only blocks some entry of which is within the horizon.
    for record in kept.iter().filter(|r| r.key.starts_with("seen/")) {
        let bytes = record.payload.as_ref().unwrap();
        let newest = bytes
            .chunks_exact(24)
            .map(|raw| i64::from_be_bytes(raw[16..].try_into().unwrap()))
            .max()
            .unwrap();
        assert!(
            newest >= from,
            "{} is past the horizon but kept",
            record.key
        );
    }
}

#[test]
fn a_new_lineage_writes_the_whole_set_once_and_deletes_the_old_one() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..20);
    let reader = read(&run.records);
    assert_eq!(reader.max_epoch(), 1);
    let old_keys = reader.block_keys();
    assert!(!old_keys.is_empty());
    // Another instance takes over with the state the old lineage had.
    let mut next = Run::new(Publisher::new(
        "guard-b",
        reader.max_epoch() + 1,
        old_keys.clone(),
    ));
    next.all = run.all.clone();
    next.records = run.records.clone();
    next.history(20..40);
    let kept = compacted(&next.records);
    let (_, checkpoint, seen) = next.cuts.last().unwrap();
    let published = read(&kept).snapshot().unwrap().unwrap();
    assert!(same(&published, checkpoint, seen));
    assert_eq!(published.instance, "guard-b");
    for key in &old_keys {
        assert!(
            kept.iter().all(|r| &r.key != key),
            "{key} outlived its lineage"
        );
    }
}

#[test]
fn a_lost_block_makes_the_snapshot_incomplete_not_smaller() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..20);
    // The newest block the last cut names: its entries are within its horizon.
    let (end, _, _) = run.cuts.last().unwrap();
    let lost = run.records[..*end]
        .iter()
        .rposition(|r| r.key.starts_with("seen/") && r.payload.is_some())
        .unwrap();
    let mut records = run.records.clone();
    records.remove(lost);
    let err = read(&records).snapshot().unwrap_err();
    assert!(
        matches!(err, ReadError::Incomplete { .. }),
        "unexpected: {err}"
    );
}

#[test]
fn a_whole_snapshot_of_the_older_format_is_refused_with_both_formats_named() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..5);
    let mut records = run.records.clone();
    // What builds before format 2 wrote: chunks and a manifest without a format.
    records.push(Record {
        key: "chunk/0".into(),
        payload: Some(b"{\"seq\":9,\"index\":0}\n{}".to_vec()),
    });
    records.push(Record {
        key: "manifest".into(),
        payload: Some(br#"{"seq":9,"chunks":1,"sha256":"44136fa3"}"#.to_vec()),
    });
    let err = read(&records).snapshot().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the changelog holds a snapshot of format 1 (this build reads formats 2 and 3); it is ignored: the guard restores from its local store or the input topics"
    );
}

#[test]
fn a_snapshot_of_format_2_is_still_read() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..5);
    let (end, checkpoint, seen) = run.cuts.last().cloned().unwrap();
    let mut records = run.records[..end].to_vec();
    // Format 2 differs in how payloads are written (arrays of bytes), which the
    // outbox's own reader takes (store tests); its manifest says so.
    let manifest = records.last_mut().unwrap();
    assert_eq!(manifest.key, "manifest");
    let text = String::from_utf8(manifest.payload.clone().unwrap()).unwrap();
    assert!(text.contains(r#""format":3"#), "{text}");
    manifest.payload = Some(text.replace(r#""format":3"#, r#""format":2"#).into_bytes());
    let published = read(&records).snapshot().unwrap();
    assert!(same(&published.expect("a snapshot"), &checkpoint, &seen));
}

#[test]
fn a_state_record_of_several_chunks_reads_back_whole() {
    let mut run = Run::new(Publisher::new("guard-a", 1, Vec::new()));
    run.history(1..4);
    // An engine snapshot of a little over three chunks: chunk edges fall inside it,
    // and the first one a little after the head's end.
    let mut checkpoint = checkpoint(4, None);
    let filler: String = (0..800_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    checkpoint.engine = format!(r#"{{"format":3,"filler":"{filler}"}}"#).into_bytes();
    let records = run.publisher.snapshot(&checkpoint);
    assert!(
        records
            .iter()
            .filter(|r| r.key.starts_with("state/"))
            .count()
            >= 4
    );
    run.records.extend(records);
    let published = read(&run.records).snapshot().unwrap().unwrap();
    assert_eq!(published.checkpoint, checkpoint);
}
