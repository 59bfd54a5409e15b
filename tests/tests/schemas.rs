//! The JSON Schemas say what CONTRACT.md and the decoder say: every valid example
//! validates and decodes, every invalid one fails both.

use std::fs;

use guard::decode::{decode, decode_envelope};
use guard::message::Stream;
use guard::policy::Policy;
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
        if name != "guard_command" {
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
