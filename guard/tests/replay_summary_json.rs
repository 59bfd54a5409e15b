//! `guard replay --summary-json`: the figures a KPI job reads are the figures the
//! text summary and `--report` print, for every golden day, alone and in a sweep.

mod cli_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use cli_support::{guard, root, text};

use guard::time::{human_span, Span};
use serde_json::Value;

/// Figures by name, each once: a second, different value for a name is a bug in
/// whichever side printed it.
#[derive(Default, Debug)]
struct Figures(BTreeMap<String, String>);

impl Figures {
    fn put(&mut self, key: impl Into<String>, value: impl ToString) {
        let (key, value) = (key.into(), value.to_string());
        if let Some(old) = self.0.insert(key.clone(), value.clone()) {
            assert_eq!(old, value, "{key} is printed as both {old} and {value}");
        }
    }
}

/// `12 read, 1 duplicates, 1 own risk events ignored` → the four counts.
fn stream_counts(figures: &mut Figures, stream: &str, rest: &str) {
    let mut counts = BTreeMap::from([
        ("read", "0"),
        ("duplicates", "0"),
        ("own_ignored", "0"),
        ("other_env", "0"),
    ]);
    for part in rest.split(", ") {
        let (n, what) = part.split_once(' ').unwrap();
        let key = match what {
            "read" => "read",
            "duplicates" => "duplicates",
            "own risk events ignored" => "own_ignored",
            "of another environment ignored" => "other_env",
            other => panic!("unknown stream count {other:?}"),
        };
        counts.insert(key, n);
    }
    for (key, n) in counts {
        figures.put(format!("inputs.{stream}.{key}"), n);
    }
}

/// The text summary's and `--report`'s lines before the report (stderr, as printed).
fn summary_text_figures(figures: &mut Figures, lines: &[&str]) {
    let mut invalid = 0;
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("replay: ") {
            figures.put("lines", rest.split_whitespace().next().unwrap());
        } else if line.starts_with("    ") && !line.trim_start().starts_with('…') {
            invalid += 1;
            figures.put(format!("invalid_line.{invalid}"), line.trim());
        } else if let Some(rest) = line.strip_prefix("  written: ") {
            let (commands, events) = rest.split_once(", ").unwrap();
            figures.put(
                "decisions.guard_command",
                commands.split(' ').next().unwrap(),
            );
            figures.put("decisions.risk_event", events.split(' ').next().unwrap());
        } else if let Some(version) = line.strip_prefix("  policy ") {
            figures.put("policy_version", version);
        } else if line.starts_with("  duplicates") {
            figures.put("duplicates", words[1]);
        } else if line.starts_with("  invalid lines") {
            figures.put("invalid", words[2]);
        } else if words.len() >= 3 && words[2] == "read" || words.get(2) == Some(&"read,") {
            let rest = line.trim_start()[words[0].len()..].trim();
            stream_counts(figures, words[0], rest);
        }
    }
}

/// The `--report` lines, section by section.
fn report_text_figures(figures: &mut Figures, lines: &[&str]) {
    let mut section = "pauses";
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("pauses: ") {
            figures.put("pauses.total", words[1]);
            let inner = rest.split_once('(').unwrap().1;
            let counts: Vec<&str> = inner.split_whitespace().collect();
            figures.put("decisions.guard_command", counts[0]);
            figures.put("decisions.risk_event", counts[2]);
        } else if trimmed.starts_with("trips by strategy:") {
            section = "trips";
        } else if trimmed.starts_with("time paused") {
            section = "paused";
        } else if trimmed.starts_with("reduce-only (event time)") {
            section = "reduce_only";
        } else if trimmed.starts_with("unacknowledged commands") {
            figures.put("unacknowledged_commands", words[2]);
        } else if trimmed.starts_with("warnings ") {
            figures.put(format!("warnings.{}", words[1]), words[2]);
        } else if trimmed.starts_with("first trip") || trimmed.starts_with("last trip") {
            let key = format!("{}_trip", words[0]);
            figures.put(key, trimmed[10..].trim());
        } else if trimmed.starts_with("by rule") || trimmed.starts_with("by scope") {
            let by = if words[1] == "rule" {
                "by_rule"
            } else {
                "by_scope"
            };
            figures.put(format!("{section}.{by}.{}", words[2]), words[3]);
        } else if trimmed == "none" || trimmed.starts_with('…') {
            assert!(!trimmed.starts_with('…'), "a list was cut short: {trimmed}");
        } else if section == "trips" {
            for part in trimmed[words[0].len()..].trim().split(", ") {
                let (kind, n) = part.split_once(' ').unwrap();
                figures.put(format!("trips.{}.{kind}", words[0]), n);
            }
        } else if (section == "paused" || section == "reduce_only") && words[1] != "0ms" {
            figures.put(format!("{section}.time.{}", words[0]), words[1]);
        }
    }
}

/// Everything the text (stderr of `guard replay --report`) prints.
fn text_figures(stderr: &str) -> Figures {
    let mut figures = Figures::default();
    let lines: Vec<&str> = stderr.lines().collect();
    let report = lines
        .iter()
        .position(|l| *l == "report:")
        .expect("a report follows the summary");
    summary_text_figures(&mut figures, &lines[..report]);
    report_text_figures(&mut figures, &lines[report + 1..]);
    figures
}

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

fn entries(value: &Value) -> &serde_json::Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
}

fn span_text(seconds: &Value) -> String {
    let micros = (seconds.as_f64().unwrap() * 1e6).round() as i64;
    human_span(Span::from_micros(micros))
}

fn trip_text(trip: &Value) -> String {
    if trip.is_null() {
        return "none".to_owned();
    }
    format!(
        "{} {} (strategy {}, fill {})",
        trip["ts"].as_str().unwrap(),
        trip["kind"].as_str().unwrap(),
        trip["strategy_id"].as_str().unwrap(),
        trip["fill_id"].as_str().unwrap()
    )
}

/// The same figures, read from the JSON object, as the text would print them.
fn json_figures(json: &Value) -> Figures {
    let mut figures = Figures::default();
    figures.put("lines", count(&json["lines"]));
    for (stream, counts) in entries(&json["inputs"]) {
        if stream == "guard_ack" && count(&counts["read"]) == 0 {
            continue; // the text lists version 2's stream only when it has some
        }
        for key in ["read", "duplicates", "own_ignored", "other_env"] {
            figures.put(format!("inputs.{stream}.{key}"), count(&counts[key]));
        }
    }
    figures.put("duplicates", count(&json["duplicates"]));
    figures.put("invalid", count(&json["invalid"]));
    for (i, line) in json["invalid_lines"].as_array().unwrap().iter().enumerate() {
        let shown = format!("{}:{}: {}", line["file"].as_str().unwrap(), line["line"], {
            line["reason"].as_str().unwrap()
        });
        figures.put(format!("invalid_line.{}", i + 1), shown);
    }
    for key in ["guard_command", "risk_event"] {
        figures.put(format!("decisions.{key}"), count(&json["decisions"][key]));
    }
    figures.put("policy_version", json["policy_version"].as_str().unwrap());
    figures.put("pauses.total", count(&json["pauses"]["total"]));
    for section in ["pauses", "reduce_only"] {
        for by in ["by_rule", "by_scope"] {
            for (key, n) in entries(&json[section][by]) {
                // The text's reduce-only section lists its rules, not its scopes.
                if !(section == "reduce_only" && by == "by_scope") {
                    figures.put(format!("{section}.{by}.{key}"), count(n));
                }
            }
        }
    }
    let unacknowledged = count(&json["unacknowledged_commands"]);
    if unacknowledged > 0 {
        figures.put("unacknowledged_commands", unacknowledged);
    }
    for (kind, n) in entries(&json["warnings"]["by_kind"]) {
        figures.put(format!("warnings.{kind}"), count(n));
    }
    for (strategy, kinds) in entries(&json["trips"]["by_strategy"]) {
        for (kind, n) in entries(kinds) {
            figures.put(format!("trips.{strategy}.{kind}"), count(n));
        }
    }
    for (scope, modes) in entries(&json["mode_seconds"]) {
        for mode in ["paused", "reduce_only"] {
            if modes[mode].as_f64().unwrap() > 0.0 {
                figures.put(format!("{mode}.time.{scope}"), span_text(&modes[mode]));
            }
        }
    }
    figures.put("first_trip", trip_text(&json["trips"]["first"]));
    figures.put("last_trip", trip_text(&json["trips"]["last"]));
    figures
}

/// What the JSON says twice must agree with itself.
fn check_consistent(json: &Value) {
    let commands = &json["commands"];
    assert_eq!(
        count(&commands["pause"]) + count(&commands["reduce_only"]) + count(&commands["resume"]),
        count(&json["decisions"]["guard_command"]),
        "{json:#}"
    );
    for (stream, c) in entries(&json["inputs"]) {
        let parts = ["applied", "duplicates", "own_ignored", "other_env"];
        let sum: u64 = parts.iter().map(|k| count(&c[*k])).sum();
        assert_eq!(sum, count(&c["read"]), "{stream}: {c}");
    }
    let trips = &json["trips"];
    let by_rule: u64 = entries(&trips["by_rule"]).values().map(count).sum();
    assert_eq!(by_rule, count(&trips["total"]));
    let daily = ["daily_loss", "daily_drawdown"].map(|k| trips["by_rule"][k].as_u64().unwrap_or(0));
    assert_eq!(daily.iter().sum::<u64>(), count(&json["daily_limit_trips"]));
    let span = json["span_seconds"].as_f64().unwrap();
    for (scope, modes) in entries(&json["mode_seconds"]) {
        let [p, r, run] = ["paused", "reduce_only", "running"].map(|m| modes[m].as_f64().unwrap());
        assert!(
            run >= 0.0 && p + r + run >= span - 1e-6,
            "{scope}: {modes} over {span}"
        );
    }
}

/// Replays a golden case (its directory under the repository) with its policy, if
/// any, with `--report` and `--summary-json -`; returns the JSON and the stderr text.
fn replay_with_summary(case: &str) -> (Value, String) {
    let policy = format!("{case}/policy.toml");
    let policy = root().join(&policy).exists().then_some(policy);
    replay_input_with_summary(&format!("{case}/input.jsonl"), policy.as_deref())
}

fn replay_input_with_summary(input: &str, policy: Option<&str>) -> (Value, String) {
    let dir = temp(&input.replace('/', "_"));
    let decisions = dir.join("decisions.jsonl");
    let mut args = vec![
        "replay",
        "--report",
        "--summary-json",
        "-",
        "--output",
        decisions.to_str().unwrap(),
        "--input",
        input,
    ];
    if let Some(policy) = policy {
        args.extend(["--policy", policy]);
    }
    let out = guard(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{input}: {e}\n{}", text(&out.stdout)));
    (json, text(&out.stderr))
}

#[test]
fn the_runbook_days_summary_json_has_the_figures_the_text_summary_and_report_print() {
    let (json, stderr) = replay_with_summary("tests/golden/runbook_day");
    let (from_text, from_json) = (text_figures(&stderr), json_figures(&json));
    assert_eq!(from_json.0, from_text.0, "JSON {json:#}\ntext:\n{stderr}");
    check_consistent(&json);
    // The day is one that has each kind of figure the text prints.
    for key in [
        "inputs.exec_result.duplicates",
        "inputs.risk_event.own_ignored",
        "invalid_line.1",
        "pauses.by_scope.global",
        "paused.time.global",
    ] {
        assert!(from_text.0.contains_key(key), "{key}:\n{stderr}");
    }
    assert!(from_text.0["first_trip"] != "none", "{stderr}");
}

#[test]
fn every_golden_days_summary_json_has_the_figures_the_text_prints() {
    let mut seen = BTreeMap::<&str, bool>::new();
    for entry in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let (json, stderr) = replay_with_summary(&format!("tests/golden/{name}"));
        let (from_text, from_json) = (text_figures(&stderr), json_figures(&json));
        assert_eq!(from_json.0, from_text.0, "{name}:\n{stderr}");
        check_consistent(&json);
        for (figure, key) in [
            ("reduce_only", &json["commands"]["reduce_only"]),
            ("warnings", &json["warnings"]["total"]),
            ("unacknowledged", &json["unacknowledged_commands"]),
            ("other_env", &json["inputs"]["exec_result"]["other_env"]),
        ] {
            *seen.entry(figure).or_default() |= count(key) > 0;
        }
    }
    // Some golden day exercises each version-2 figure.
    assert!(seen.values().all(|s| *s), "{seen:?}");
}

#[test]
fn daily_limit_trips_are_counted_as_trips_of_their_rule() {
    let policy = temp("daily").join("policy.toml");
    std::fs::write(
        &policy,
        "[daily]\nmax_loss = 1000.0\nmax_drawdown = 500.0\n",
    )
    .unwrap();
    let input = "tests/golden/runbook_day/input.jsonl";
    let (json, stderr) = replay_input_with_summary(input, policy.to_str());
    assert_eq!(json_figures(&json).0, text_figures(&stderr).0, "{stderr}");
    check_consistent(&json);
    let trips = &json["trips"]["by_rule"];
    // beta loses 1200 with its first fill: both limits trip on it.
    assert_eq!(trips["daily_loss"], 1, "{json:#}");
    assert_eq!(trips["daily_drawdown"], 1, "{json:#}");
    assert_eq!(json["daily_limit_trips"], 2);
}

#[test]
fn summary_json_to_a_file_is_reproducible_and_the_same_as_on_stdout() {
    let dir = temp("file");
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    for path in [&a, &b] {
        let out = guard(&[
            "replay",
            "--input",
            "tests/golden/runbook_day/input.jsonl",
            "--summary-json",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // The decisions still go to stdout.
        let expected = std::fs::read(root().join("tests/golden/runbook_day/expected.jsonl"));
        assert_eq!(out.stdout, expected.unwrap());
    }
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a, b);
    let (json, _) = replay_with_summary("tests/golden/runbook_day");
    assert_eq!(serde_json::from_slice::<Value>(&a).unwrap(), json);
}

#[test]
fn summary_json_on_stdout_is_refused_while_stdout_carries_the_decisions() {
    for sweep in [&[][..], &["--sweep", "slippage.trip_at=2,3"][..]] {
        let mut args = vec![
            "replay",
            "--input",
            "examples/day.jsonl",
            "--summary-json",
            "-",
        ];
        args.extend(sweep);
        let out = guard(&args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            out.stdout.is_empty(),
            "nothing is written: {}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        assert!(err.contains("--summary-json -: standard output"), "{err}");
        assert!(err.contains("--output FILE"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let same = temp("same").join("out.json");
    let same = same.to_str().unwrap();
    let out = guard(&[
        "replay",
        "--input",
        "examples/day.jsonl",
        "--output",
        same,
        "--summary-json",
        same,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--summary-json and --output name the same file"));
}

fn sweep_summary(args: &[&str]) -> (Value, String, String) {
    let path = temp("sweep").join(format!("{}.json", args.len()));
    let mut all = vec!["replay", "--summary-json", path.to_str().unwrap()];
    all.extend(args);
    let out = guard(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (json, text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_sweep_writes_one_entry_per_policy_with_the_tables_figures() {
    let (json, table, stderr) = sweep_summary(&[
        "--input",
        "examples/day.jsonl",
        "--sweep",
        "slippage.threshold_bps=3,5,8",
        "--sweep",
        "slippage.trip_at=2,3",
        "--report",
    ]);
    let entries = json["sweep"].as_array().expect("a sweep array");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|r| r.split_whitespace().collect())
        .collect();
    assert_eq!(entries.len(), 6, "{json:#}");
    assert_eq!(rows.len(), entries.len(), "{table}");
    assert_eq!(stderr.matches("report:").count(), entries.len(), "{stderr}");
    for (entry, row) in entries.iter().zip(&rows) {
        let policy = &entry["policy"];
        // Typed as the policy reads them, in the table's order.
        assert_eq!(
            policy["slippage.threshold_bps"].to_string(),
            row[0],
            "{entry}"
        );
        assert_eq!(policy["slippage.trip_at"].to_string(), row[1], "{entry}");
        assert!(policy["slippage.trip_at"].is_u64(), "{entry}");
        assert_eq!(entry["policy_version"].as_str(), Some(row[2]));
        assert_eq!(entry["summary"]["policy_version"], entry["policy_version"]);
        assert_eq!(
            count(&entry["summary"]["pauses"]["total"]).to_string(),
            row[3]
        );
        assert_eq!(
            count(&entry["summary"]["decisions"]["risk_event"]).to_string(),
            row[4]
        );
        let global = &entry["summary"]["mode_seconds"]["global"]["paused"];
        assert_eq!(span_text(global), row[5], "{entry}");
        check_consistent(&entry["summary"]);
    }
    let distinct: std::collections::BTreeSet<_> = entries
        .iter()
        .map(|e| e["policy_version"].to_string())
        .collect();
    assert_eq!(distinct.len(), entries.len());
}

#[test]
fn a_sweep_variant_sums_up_as_a_plain_replay_under_its_policy() {
    let case = "tests/golden/v2_modes_warnings_env";
    let (json, _, _) = sweep_summary(&[
        "--input",
        &format!("{case}/input.jsonl"),
        "--policy",
        &format!("{case}/policy.toml"),
        "--sweep",
        "warnings.enabled=true",
        "--sweep",
        "env=prod,stg",
    ]);
    let entries = json["sweep"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    // Each variant counts the fills of another environment by its own env.
    let other_env = |i: usize| count(&entries[i]["summary"]["inputs"]["exec_result"]["other_env"]);
    assert_ne!(other_env(0), other_env(1), "{json:#}");
    // The case's policy has warnings on and env prod: the first variant is that
    // policy, and sums up exactly as the plain replay does.
    let (plain, _) = replay_with_summary(case);
    assert_eq!(entries[0]["summary"], plain, "{json:#}");
    assert_eq!(entries[0]["policy"]["env"], "prod");
    assert_eq!(entries[0]["policy"]["warnings.enabled"], true);
}

/// A fresh directory for one call.
fn temp(name: &str) -> PathBuf {
    cli_support::scratch_dir("sj", name)
}
