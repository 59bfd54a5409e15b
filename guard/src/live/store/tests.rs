//! The sled store: round trips, the horizon, torn and older layouts.
use super::*;

/// A seen entry of key number `k` (distinct in the persisted key's 80 bits).
fn e(k: u128, second: i64) -> SeenEntry {
    SeenEntry::new(k << 48, second)
}

fn checkpoint(seq: u64) -> Checkpoint {
    Checkpoint {
        seq,
        engine: b"{}".to_vec(),
        offsets: BTreeMap::from([(("exec_result".to_owned(), 0), 42)]),
        outbox: vec![OutMsg {
            id: "cmd-1".into(),
            topic: "guard_command".into(),
            key: "global".into(),
            payload: b"{}".to_vec(),
            headers: vec![],
            timestamp_ms: None,
        }],
        seen_from: None,
        journal_from: Some(1_234),
        // Records 1 to 3 of a life, not deleted yet.
        order_runs: {
            use crate::live::order_log::{Earlier, Trim};
            let mut trim = Trim::new(crate::time::Span::from_secs(3_600), Earlier::default());
            trim.own_life("order/me-".into());
            trim.leftovers(4, Some(1_234))
        },
        order_cuts: vec![[1_000, 1_200], [2_000, 1_230]],
    }
}

#[test]
fn sled_store_round_trips_checkpoint_and_seen_ids() {
    let dir = std::env::temp_dir().join(format!("guard-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut store = SledStore::open(&dir).unwrap();
        assert!(store.load().unwrap().is_none());
        store
            .save(&checkpoint(1), &[e(1, 10), e(2, 20)].into())
            .unwrap();
        store
            .save(&checkpoint(2), &[SeenEntry::new(u128::MAX, 30)].into())
            .unwrap();
    }
    let store = SledStore::open(&dir).unwrap();
    let restored = store.load().unwrap().unwrap();
    drop(store);
    // A store whose checkpoint vanished is refused, not taken for a fresh one.
    std::fs::remove_dir_all(dir.join("db")).ok();
    std::fs::write(dir.join("db"), vec![0u8; 64]).unwrap();
    assert!(matches!(
        SledStore::open(&dir),
        Err(StoreError::Corrupt(_)) | Err(StoreError::Sled(_))
    ));
    let store = SledStore::open(&dir.join("x")).unwrap();
    assert_eq!(restored.checkpoint, checkpoint(2));
    let mut seen = restored.seen;
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![e(1, 10), e(2, 20), SeenEntry::new(u128::MAX, 30)]
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_layout_3_store_is_read_and_migrated_by_the_next_checkpoint() {
    let dir = std::env::temp_dir().join(format!("guard-store-v3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = br#"{"format":3,"state":{}}"#.to_vec();
    {
        // What layout 3 wrote: the engine inside the checkpoint's JSON.
        let db = SledStore::open_db(&dir).unwrap();
        db.insert(LAYOUT_KEY, LAYOUT_3).unwrap();
        let old = Checkpoint {
            engine: engine.clone(),
            ..checkpoint(5)
        };
        db.insert(CHECKPOINT_KEY, serde_json::to_vec(&old).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let mut store = SledStore::open(&dir).unwrap();
    let restored = store.load().unwrap().unwrap();
    assert_eq!(restored.checkpoint.engine, engine);
    assert_eq!(restored.checkpoint.seq, 5);
    let next = Checkpoint {
        engine: b"{}".to_vec(),
        ..checkpoint(6)
    };
    store.save(&next, &SeenBlocks::default()).unwrap();
    assert_eq!(store.db.get(LAYOUT_KEY).unwrap().as_deref(), Some(LAYOUT));
    let head = store.db.get(CHECKPOINT_KEY).unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&head).contains("engine"));
    assert_eq!(store.load().unwrap().unwrap().checkpoint, next);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_layout_4_store_with_payloads_as_byte_arrays_is_read_and_migrated() {
    let dir = std::env::temp_dir().join(format!("guard-store-v4-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        // What layout 4 wrote: the outbox's payloads as arrays of bytes ("{}").
        let db = SledStore::open_db(&dir).unwrap();
        db.insert(LAYOUT_KEY, LAYOUT_4).unwrap();
        let head = r#"{"seq":7,"offsets":[[["exec_result",0],42]],"outbox":[{"id":"cmd-1","topic":"guard_command","key":"global","payload":[123,125],"headers":[],"timestamp_ms":null}],"seen_from":null}"#;
        db.insert(CHECKPOINT_KEY, head.as_bytes()).unwrap();
        db.flush().unwrap();
        std::fs::create_dir_all(dir.join("engine")).unwrap();
        std::fs::write(engine_file(&dir, 7), b"{}").unwrap();
    }
    let mut store = SledStore::open(&dir).unwrap();
    let restored = store.load().unwrap().unwrap();
    // Written before checkpoints said where their order records begin (read from
    // the start of the journal) and carried the records left to delete.
    let older = Checkpoint {
        journal_from: None,
        order_runs: Vec::new(),
        order_cuts: Vec::new(),
        ..checkpoint(7)
    };
    assert_eq!(restored.checkpoint, older);
    store.save(&checkpoint(8), &SeenBlocks::default()).unwrap();
    assert_eq!(store.db.get(LAYOUT_KEY).unwrap().as_deref(), Some(LAYOUT));
    let head = store.db.get(CHECKPOINT_KEY).unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&head).contains(r#""payload":"{}""#),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(store.load().unwrap().unwrap().checkpoint, checkpoint(8));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_payload_is_kept_as_text_and_any_bytes_survive() {
    let text = OutMsg {
        payload: r#"{"a":"\u00e9 é"}"#.as_bytes().to_vec(),
        ..checkpoint(1).outbox[0].clone()
    };
    let json = serde_json::to_string(&text).unwrap();
    assert!(json.contains(r#""payload":"{\"a\""#), "{json}");
    assert_eq!(serde_json::from_str::<OutMsg>(&json).unwrap(), text);
    let bytes = OutMsg {
        payload: vec![0xff, 0x00, b'x'],
        ..text
    };
    let json = serde_json::to_string(&bytes).unwrap();
    assert!(json.contains(r#""payload":[255,0,120]"#), "{json}");
    assert_eq!(serde_json::from_str::<OutMsg>(&json).unwrap(), bytes);
}

#[test]
fn a_block_of_a_checkpoint_never_committed_is_ignored_and_replaced() {
    let dir = std::env::temp_dir().join(format!("guard-store-torn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = SledStore::open(&dir).unwrap();
    store.save(&checkpoint(1), &[e(1, 10)].into()).unwrap();
    // A crash after checkpoint 2's block reached the disk, before sled had it.
    store.seen.write(2, &[e(2, 20)].into()).unwrap();
    drop(store);
    let mut store = SledStore::open(&dir).unwrap();
    assert_eq!(store.load().unwrap().unwrap().seen, vec![e(1, 10)]);
    store.save(&checkpoint(2), &[e(3, 30)].into()).unwrap();
    let mut seen = store.load().unwrap().unwrap().seen;
    seen.sort_unstable();
    assert_eq!(seen, vec![e(1, 10), e(3, 30)]);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seen_ids_beyond_the_horizon_are_dropped_and_not_loaded() {
    let dir = std::env::temp_dir().join(format!("guard-store-horizon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut store = SledStore::open(&dir).unwrap();
        store
            .save(&checkpoint(1), &[e(1, 10), e(2, 20)].into())
            .unwrap();
        store.save(&checkpoint(2), &[e(3, 25)].into()).unwrap();
        store.save(&checkpoint(3), &[e(4, 40)].into()).unwrap();
        // The horizon moves past the first two blocks' newest entries but one.
        let mut moved = checkpoint(4);
        moved.seen_from = Some(22);
        store.save(&moved, &SeenBlocks::default()).unwrap();
        assert_eq!(
            store.seen.len(),
            2,
            "the block whose newest entry is 20 is deleted"
        );
    }
    let store = SledStore::open(&dir).unwrap();
    let mut seen = store.load().unwrap().unwrap().seen;
    seen.sort_unstable();
    assert_eq!(seen, vec![e(3, 25), e(4, 40)]);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_keeps_its_id_and_another_store_has_its_own() {
    let base = std::env::temp_dir().join(format!("guard-store-id-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let first = SledStore::open(&base.join("a")).unwrap();
    let id = first.id().expect("a sled store has an id").to_owned();
    drop(first);
    assert_eq!(
        SledStore::open(&base.join("a")).unwrap().id(),
        Some(id.as_str())
    );
    assert_ne!(
        SledStore::open(&base.join("b")).unwrap().id(),
        Some(id.as_str())
    );
    assert_eq!(MemStore::default().id(), None);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_copy_of_a_store_elsewhere_is_another_store() {
    let base = std::env::temp_dir().join(format!("guard-store-copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let id = SledStore::open(&base.join("a"))
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(base.join("a"))
        .arg(base.join("copy"))
        .status()
        .unwrap();
    assert!(copied.success());
    let copy = SledStore::open(&base.join("copy")).unwrap();
    let copy_id = copy.id().unwrap();
    assert_ne!(
        copy_id, id,
        "a copy must not pass for the store it was copied from"
    );
    // The name kept inside is the same; where it is differs.
    assert_eq!(copy_id.split('.').next(), id.split('.').next());
    drop(copy);
    let _ = std::fs::remove_dir_all(&base);
}
