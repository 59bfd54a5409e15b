//! `guard explain` as the operator on call uses it: ids taken from `guard replay`,
//! evidence checked against the lines of the file it names.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use cli_support::{guard, root, text};

use serde_json::Value;

const DAY: &str = "tests/golden/runbook_day/input.jsonl";

/// The decisions `guard replay` writes for `inputs`, as JSON envelopes.
fn replay(inputs: &[&str]) -> Vec<Value> {
    let mut args = vec!["replay"];
    for input in inputs {
        args.extend(["--input", input]);
    }
    let out = guard(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The event of the first decision of `stream` that `pick` accepts.
fn first<'a>(decisions: &'a [Value], stream: &str, pick: impl Fn(&Value) -> bool) -> &'a Value {
    decisions
        .iter()
        .find(|d| d["stream"] == stream && pick(&d["event"]))
        .map(|d| &d["event"])
        .unwrap_or_else(|| panic!("no such {stream} in {decisions:?}"))
}

fn explain(id: &str, inputs: &[&str], json: bool) -> Output {
    let mut args = vec!["explain", id];
    for input in inputs {
        args.extend(["--input", input]);
    }
    if json {
        args.push("--json");
    }
    guard(&args)
}

/// The line numbered `number` of the file `file` (relative to the repository).
fn file_line(file: &str, number: usize) -> String {
    let path = if Path::new(file).is_absolute() {
        PathBuf::from(file)
    } else {
        root().join(file)
    };
    let body = std::fs::read_to_string(path).unwrap();
    body.lines().nth(number - 1).unwrap_or_default().to_owned()
}

/// The `FILE:LINE` the text gives for evidence `id` (a line `  ID  FILE:LINE  STREAM`).
fn place_in_text<'t>(text: &'t str, id: &str) -> (&'t str, usize) {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id) && l.starts_with("  "))
        .unwrap_or_else(|| panic!("no evidence line for {id} in:\n{text}"));
    let place = line.split_whitespace().nth(1).unwrap();
    let (file, number) = place.rsplit_once(':').unwrap();
    (file, number.parse().unwrap())
}

/// Whether the replay line holds the message with id `id`.
fn holds_id(line: &str, id: &str) -> bool {
    ["fill_id", "event_id", "command_id"]
        .iter()
        .any(|key| line.contains(&format!("\"{key}\":\"{id}\"")))
}

#[test]
fn a_commands_evidence_is_named_with_the_file_line_that_holds_it() {
    let decisions = replay(&[DAY]);
    let pause = first(&decisions, "guard_command", |c| c["action"] == "pause");
    let id = pause["command_id"].as_str().unwrap();
    let out = explain(id, &[DAY], false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with(&format!("guard_command {id}: pause global")),
        "{shown}"
    );
    let evidence = pause["evidence"].as_array().unwrap();
    assert!(!evidence.is_empty());
    for evidence_id in evidence {
        let evidence_id = evidence_id.as_str().unwrap();
        let (file, number) = place_in_text(&shown, evidence_id);
        assert_eq!(file, DAY);
        let line = file_line(file, number);
        assert!(holds_id(&line, evidence_id), "{file}:{number} is {line}");
    }
    // The scope's first command: before it the scope ran with no reasons.
    let rule = pause["rule"].as_str().unwrap();
    let since = pause["event_ts"].as_str().unwrap();
    for needle in [
        "  before  running (no reasons)".to_owned(),
        format!("  after   paused since {since}: {rule} (pause)"),
        format!(
            "  policy      {}",
            pause["policy_version"].as_str().unwrap()
        ),
        "guard resume --scope global --operator NAME".to_owned(),
        "runbook: \"Slippage pause\" docs/OPERATIONS.md#slippage-pause".to_owned(),
    ] {
        assert!(shown.contains(&needle), "{needle:?} missing from:\n{shown}");
    }
    // The trip's risk event came from the same step, and the next command resumed.
    let event = first(&decisions, "risk_event", |e| e["kind"] == rule);
    assert!(shown.contains(&format!(
        "risk_event {}",
        event["event_id"].as_str().unwrap()
    )));
    let resume = first(&decisions, "guard_command", |c| c["action"] == "resume");
    assert!(shown.contains(&format!(
        "guard_command {} resume global",
        resume["command_id"].as_str().unwrap()
    )));
}

#[test]
fn the_json_is_one_object_that_agrees_with_the_text() {
    let decisions = replay(&[DAY]);
    let pause = first(&decisions, "guard_command", |c| c["action"] == "pause");
    let id = pause["command_id"].as_str().unwrap();
    let shown = text(&explain(id, &[DAY], false).stdout);
    let out = explain(id, &[DAY], true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["id"], id);
    assert_eq!(json["decision"]["event"], *pause);
    assert_eq!(json["scope"], "global");
    let evidence = json["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), pause["evidence"].as_array().unwrap().len());
    for entry in evidence {
        let id = entry["id"].as_str().unwrap();
        assert_eq!(entry["from"], "input");
        let (file, line) = place_in_text(&shown, id);
        assert_eq!(
            (
                entry["file"].as_str().unwrap(),
                entry["line"].as_u64().unwrap() as usize
            ),
            (file, line)
        );
        assert_eq!(entry["message"]["fill_id"], id);
    }
    let reasons = |state: &Value| -> Vec<String> {
        state["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    r["rule"].as_str().unwrap(),
                    r["effect"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(reasons(&json["before"]), Vec::<String>::new());
    assert_eq!(
        reasons(&json["after"]),
        [format!("{} (pause)", pause["rule"].as_str().unwrap())]
    );
    assert_eq!(json["after"]["mode"], "paused");
    assert!(shown.contains(&format!(
        "after   paused since {}: {}",
        json["after"]["since"].as_str().unwrap(),
        reasons(&json["after"]).join(", ")
    )));
    for decision in json["same_trigger"].as_array().unwrap() {
        let event = &decision["event"];
        let id = event["event_id"]
            .as_str()
            .or(event["command_id"].as_str())
            .unwrap();
        assert!(shown.contains(id), "{id} missing from:\n{shown}");
    }
    let next = &json["next_command"];
    assert!(shown.contains(&format!(
        "(applying {}:{})",
        next["file"].as_str().unwrap(),
        next["line"]
    )));
    assert!(shown.contains(next["decision"]["event"]["command_id"].as_str().unwrap()));
    assert!(json["at_end"].is_null());
    assert!(shown.contains(json["act"]["command"].as_str().unwrap()));
    assert!(shown.contains(json["act"]["runbook"]["link"].as_str().unwrap()));
}

#[test]
fn a_risk_event_of_the_guard_is_explained_with_the_command_of_its_trip() {
    let decisions = replay(&[DAY]);
    let event = first(&decisions, "risk_event", |_| true);
    let id = event["event_id"].as_str().unwrap();
    let out = explain(id, &[DAY], false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.starts_with(&format!(
        "risk_event {id}: {}",
        event["kind"].as_str().unwrap()
    )));
    let command = first(&decisions, "guard_command", |c| {
        c["evidence"] == event["evidence"]
    });
    assert!(
        shown.contains(&format!(
            "guard_command {}",
            command["command_id"].as_str().unwrap()
        )),
        "{shown}"
    );
    for evidence_id in event["evidence"].as_array().unwrap() {
        let (file, number) = place_in_text(&shown, evidence_id.as_str().unwrap());
        assert!(holds_id(
            &file_line(file, number),
            evidence_id.as_str().unwrap()
        ));
    }
}

#[test]
fn evidence_in_several_files_names_each_file() {
    let dir = std::env::temp_dir().join(format!("guard-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = std::fs::read_to_string(root().join(DAY)).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    std::fs::write(&a, lines[..4].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[4..].join("\n") + "\n").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let decisions = replay(&[a, b]);
    let pause = first(&decisions, "guard_command", |c| c["action"] == "pause");
    let out = explain(pause["command_id"].as_str().unwrap(), &[a, b], false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let mut files = Vec::new();
    for evidence_id in pause["evidence"].as_array().unwrap() {
        let evidence_id = evidence_id.as_str().unwrap();
        let (file, number) = place_in_text(&shown, evidence_id);
        assert!(
            holds_id(&file_line(file, number), evidence_id),
            "{file}:{number}"
        );
        files.push(file.to_owned());
    }
    assert!(
        files.contains(&a.to_owned()) && files.contains(&b.to_owned()),
        "{files:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_id_exits_1_saying_what_the_files_hold_and_how_to_list_it() {
    let decisions = replay(&[DAY]);
    let commands = decisions
        .iter()
        .filter(|d| d["stream"] == "guard_command")
        .count();
    let events = decisions.len() - commands;
    let out = explain("cmd-nothing-like-it", &[DAY], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    for needle in [
        "guard: no guard command or risk event has the id \"cmd-nothing-like-it\"".to_owned(),
        format!("({commands} guard commands, {events} risk events)"),
        format!("list them: guard replay --input {DAY} 2>/dev/null | grep -E"),
    ] {
        assert!(err.contains(&needle), "{needle:?} missing from:\n{err}");
    }
    // A shortened id is not taken for the whole one, but offered.
    let pause = first(&decisions, "guard_command", |_| true);
    let full = pause["command_id"].as_str().unwrap();
    let out = explain(&full[..12], &[DAY], true);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("did you mean: {full}")));
}

#[test]
fn help_says_it_reads_replay_files_or_asks_the_guard_and_what_the_json_holds() {
    let out = guard(&["explain", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "Over replay files (--input; `guard record` writes them",
        "Or asking the running guard (--http URL, its GET /explain/ID)",
        "TOPIC/PARTITION@OFFSET",
        "Memory:",
        "guard replay --input day.jsonl | grep command_id",
        "guard explain cmd-",
        "next_command",
        "before, after",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

/// The blocks of the runbook that start with `$ guard explain …`, with the output
/// they show.
fn runbook_examples() -> Vec<(String, String)> {
    let runbook = std::fs::read_to_string(root().join("docs/OPERATIONS.md")).unwrap();
    let lines: Vec<&str> = runbook.lines().collect();
    let mut examples = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(command) = lines
            .get(i + 1)
            .and_then(|l| l.trim_start().strip_prefix("$ "))
        else {
            continue;
        };
        // `--http` asks a running guard: tests/explain_live.rs checks that one.
        if line.trim_start() != "```text"
            || !command.starts_with("guard explain ")
            || command.contains(" --http ")
        {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| l.trim_start() != "```")
            .map(|l| l.strip_prefix(indent).unwrap_or(l))
            .collect();
        examples.push((command.to_owned(), body.join("\n") + "\n"));
    }
    examples
}

#[test]
fn the_runbooks_walk_through_shows_what_explain_prints_today() {
    let examples = runbook_examples();
    assert!(examples.len() >= 2, "{examples:?}");
    for (command, shown) in examples {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = guard(&args);
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), shown, "{command}");
    }
}

#[test]
fn every_playbook_explain_points_to_is_a_section_of_the_runbook() {
    let runbook = std::fs::read_to_string(root().join("docs/OPERATIONS.md")).unwrap();
    let headings: Vec<&str> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("## ")))
        .collect();
    for (_, title) in guard::replay::explain::PLAYBOOKS {
        assert!(
            headings.contains(&title),
            "no section {title:?} in docs/OPERATIONS.md"
        );
    }
}
