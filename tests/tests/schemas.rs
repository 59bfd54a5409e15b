//! The JSON Schemas say what CONTRACT.md and the decoder say: every valid example
//! validates and decodes, every invalid one fails both.

use std::fs;

use guard::decode::{decode, decode_envelope};
use guard::engine::{Engine, EngineOptions};
use guard::message::Stream;
use guard::message::{Decision, Heartbeat, PauseState};
use guard::policy::Policy;
use guard::replay::{
    InvalidLine, Line, MemorySink, Replay, ReplayFigures, Sweep, SweepAxis, SweepFigures,
};
use guard_tests::{repo_root, schema};
use serde_json::Value;

fn examples(name: &str, kind: &str) -> Vec<(String, Value)> {
    let path = repo_root().join(format!("schemas/examples/{name}.{kind}.jsonl"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}.{kind}:{}: {e}", i + 1));
            match kind {
                "invalid" => (
                    value["why"]
                        .as_str()
                        .expect("invalid examples say why")
                        .to_owned(),
                    value["message"].clone(),
                ),
                _ => (format!("line {}", i + 1), value),
            }
        })
        .collect()
}

/// What the guard's own code says of an example: Ok when it accepts it.
fn guard_accepts(name: &str, value: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).expect("serialises");
    let input_stream = Stream::from_name(name);
    match (name, input_stream) {
        (_, Some(stream)) => decode(stream, &bytes).map(drop).map_err(|e| e.to_string()),
        ("replay_envelope", _) => decode_envelope(&bytes).map(drop).map_err(|e| e.to_string()),
        ("policy", _) => {
            let table: toml::Table =
                serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
            Policy::from_table(&table)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        // Output-only schemas: the golden test checks what the guard writes.
        _ => Ok(()),
    }
}

/// Objects only the guard writes.
const OUTPUTS: [&str; 4] = [
    "guard_command",
    "guard_pause_state",
    "guard_heartbeat",
    "replay_summary",
];

fn check(name: &str) {
    let validator = schema(name);
    for (label, value) in examples(name, "valid") {
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{name} valid {label} fails the schema: {errors:?}"
        );
        assert_eq!(
            guard_accepts(name, &value),
            Ok(()),
            "{name} valid {label}: the guard refuses it"
        );
    }
    for (why, value) in examples(name, "invalid") {
        assert!(
            !validator.is_valid(&value),
            "{name} invalid example '{why}' passes the schema"
        );
        // The guard's own outputs are not read back, so only their schemas judge them.
        if !OUTPUTS.contains(&name) {
            assert!(
                guard_accepts(name, &value).is_err(),
                "{name} invalid example '{why}': the guard accepts it"
            );
        }
    }
}

#[test]
fn exec_result_schema_and_decoder_agree() {
    check("exec_result");
}

#[test]
fn risk_event_schema_and_decoder_agree() {
    check("risk_event");
}

#[test]
fn strategy_release_schema_and_decoder_agree() {
    check("strategy_release");
}

#[test]
fn ops_command_schema_and_decoder_agree() {
    check("ops_command");
}

#[test]
fn guard_command_schema_examples() {
    check("guard_command");
}

#[test]
fn replay_envelope_schema_and_decoder_agree() {
    check("replay_envelope");
}

#[test]
fn policy_schema_and_policy_reader_agree() {
    check("policy");
}

#[test]
fn guard_ack_schema_and_decoder_agree() {
    check("guard_ack");
}

#[test]
fn guard_pause_state_schema_examples() {
    check("guard_pause_state");
    // Every valid example is what the guard's own type reads.
    for (label, value) in examples("guard_pause_state", "valid") {
        serde_json::from_value::<PauseState>(value)
            .unwrap_or_else(|e| panic!("guard_pause_state {label}: {e}"));
    }
}

#[test]
fn guard_heartbeat_schema_examples() {
    check("guard_heartbeat");
    for (label, value) in examples("guard_heartbeat", "valid") {
        serde_json::from_value::<Heartbeat>(value)
            .unwrap_or_else(|e| panic!("guard_heartbeat {label}: {e}"));
    }
}

#[test]
fn the_pause_state_the_guard_writes_for_every_golden_command_fits_its_schema() {
    // The record goes out with each command, built from the scopes right after the
    // step that decided it (as the live guard does).
    let validator = schema("guard_pause_state");
    let mut modes = std::collections::BTreeSet::new();
    for entry in fs::read_dir(repo_root().join("tests/golden")).expect("golden dir") {
        let dir = entry.expect("entry").path();
        let policy = fs::read_to_string(dir.join("policy.toml"))
            .map(|text| Policy::from_toml(&text).expect("golden policy is valid"))
            .unwrap_or_default();
        let mut engine = Engine::new(policy, EngineOptions::default());
        // Bytes, not text: a golden case holds lines that are not UTF-8.
        let input = fs::read(dir.join("input.jsonl")).expect("input exists");
        for line in input.split(|b| *b == b'\n') {
            let Ok(message) = decode_envelope(line) else {
                continue;
            };
            for decision in engine.apply(&message).decisions {
                let Decision::GuardCommand(command) = decision else {
                    continue;
                };
                let state = PauseState::after(&command, engine.state().scopes.get(&command.scope));
                let value = serde_json::to_value(&state).expect("serialises");
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "{}: {value}: {errors:?}", dir.display());
                modes.insert(value["mode"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    assert_eq!(modes.len(), 3, "every mode is written somewhere: {modes:?}");
}

/// Every golden case's directory, its policy text (empty: the default) and input.
fn golden_cases() -> Vec<(std::path::PathBuf, String, Vec<u8>)> {
    let mut cases = Vec::new();
    for entry in fs::read_dir(repo_root().join("tests/golden")).expect("golden dir") {
        let dir = entry.expect("entry").path();
        let policy = fs::read_to_string(dir.join("policy.toml")).unwrap_or_default();
        // Bytes, not text: a golden case holds lines that are not UTF-8.
        let input = fs::read(dir.join("input.jsonl")).expect("input exists");
        cases.push((dir, policy, input));
    }
    cases.sort();
    cases
}

fn lines(input: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    input
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| (i as u64 + 1, line))
}

fn assert_fits(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{value:#}");
}

#[test]
fn replay_summary_schema_examples() {
    check("replay_summary");
}

#[test]
fn the_summary_json_of_every_golden_day_fits_its_schema() {
    let validator = schema("replay_summary");
    for (dir, policy, input) in golden_cases() {
        let policy = Policy::from_toml(&policy).expect("golden policy is valid");
        let mut replay = Replay::new(
            Engine::new(policy, EngineOptions::default()),
            MemorySink::default(),
        );
        for (number, bytes) in lines(&input) {
            let line = Line {
                file: "input.jsonl",
                number,
                bytes,
            };
            // An invalid line is counted in the summary, as `guard replay` does.
            let _ = replay.feed(&line);
        }
        let (engine, _, summary, tally) = replay.finish().expect("a memory sink cannot fail");
        let figures = ReplayFigures::new(&summary, &tally, engine.policy_version());
        // The span ends at the guard's clock.
        assert_eq!(figures.last_event_ts, engine.state().clock);
        assert!(figures.first_event_ts <= figures.last_event_ts);
        let value = serde_json::to_value(&figures).expect("serialises");
        assert_fits(&validator, &value, &dir.display().to_string());
    }
}

#[test]
fn the_summary_json_of_a_sweep_fits_its_schema_with_one_entry_per_policy() {
    let validator = schema("replay_summary");
    let axes = [
        ("slippage.threshold_bps", &["3", "5.5"][..]),
        ("warnings.enabled", &["true", "false"][..]),
        ("env", &["prod", "stg"][..]),
    ]
    .map(|(key, values)| SweepAxis {
        key: key.to_owned(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    });
    for (dir, policy, input) in golden_cases() {
        let mut sweep =
            Sweep::new(&policy, &axes, &EngineOptions::default()).expect("a valid sweep");
        for (number, bytes) in lines(&input) {
            match decode_envelope(bytes) {
                Ok(message) => {
                    sweep.apply(&message);
                }
                Err(reason) => sweep.record_invalid(&InvalidLine {
                    file: "input.jsonl".into(),
                    line: number,
                    reason: reason.to_string(),
                }),
            }
        }
        sweep.finish();
        let value = serde_json::to_value(SweepFigures::new(&sweep)).expect("serialises");
        assert_fits(&validator, &value, &dir.display().to_string());
        let entries = value["sweep"].as_array().expect("an array");
        assert_eq!(entries.len(), 8, "{}", dir.display());
        assert_eq!(entries[1]["policy"]["slippage.threshold_bps"], 3);
        assert_eq!(entries[7]["policy"]["slippage.threshold_bps"], 5.5);
        assert_eq!(entries[7]["policy"]["warnings.enabled"], false);
        assert_eq!(entries[7]["policy"]["env"], "stg");
    }
}
