//! Golden fixtures: `tests/golden/CASE/input.jsonl` (+ optional `policy.toml`) must
//! replay to exactly `expected.jsonl`, byte for byte, and every line written must
//! satisfy its JSON Schema. `UPDATE_GOLDEN=1` rewrites the expected files (review the
//! diff by hand against CONTRACT.md before committing it).

use std::fs;
use std::path::Path;

use guard::engine::{Engine, EngineOptions};
use guard::policy::Policy;
use guard::replay::{JsonlSink, JsonlSource, Replay};
use guard_tests::{repo_root, schema};
use serde_json::Value;

fn replay_case(dir: &Path) -> String {
    let policy_path = dir.join("policy.toml");
    let policy = match fs::read_to_string(&policy_path) {
        Ok(text) => Policy::from_toml(&text).expect("golden policy is valid"),
        Err(_) => Policy::default(),
    };
    let mut replay = Replay::new(
        Engine::new(policy, EngineOptions::default()),
        JsonlSink::new(Vec::new()),
    );
    let mut source = JsonlSource::open(&dir.join("input.jsonl")).expect("input exists");
    while let Some(line) = source.next_line().expect("readable") {
        let _ = replay.feed(&line);
    }
    let (_, sink, _, _) = replay.finish().expect("memory sink");
    String::from_utf8(sink.into_inner()).expect("JSON is UTF-8")
}

#[test]
fn every_golden_case_replays_to_its_expected_decisions() {
    let envelope = schema("replay_envelope");
    let guard_event = schema("guard_risk_event");
    let root = repo_root().join("tests/golden");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "golden cases missing");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for dir in cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let actual = replay_case(&dir);
        let expected_path = dir.join("expected.jsonl");
        if update {
            fs::write(&expected_path, &actual).expect("writable");
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(actual, expected, "golden case {name} differs");
        for (i, line) in actual.lines().enumerate() {
            let value: Value = serde_json::from_str(line).expect("output is JSON");
            let errors: Vec<String> = envelope
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{name} output line {}: {errors:?}",
                i + 1
            );
            if value["stream"] == "risk_event" {
                let errors: Vec<String> = guard_event
                    .iter_errors(&value["event"])
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{name} output line {}: {errors:?}",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn replay_is_byte_for_byte_deterministic() {
    let dir = repo_root().join("tests/golden/runbook_day");
    assert_eq!(replay_case(&dir), replay_case(&dir));
}
