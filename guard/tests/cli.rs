//! The `guard` binary as an operator or a risk analyst uses it.

mod cli_support;

use std::path::PathBuf;
use std::process::Command;

use cli_support::{guard, root, text};

#[test]
fn replay_writes_the_golden_decisions_and_a_summary() {
    let out = guard(&["replay", "--input", "tests/golden/runbook_day/input.jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = std::fs::read(root().join("tests/golden/runbook_day/expected.jsonl")).unwrap();
    assert_eq!(text(&out.stdout), text(&expected));
    let summary = text(&out.stderr);
    for needle in [
        "exec_result",
        "12 read, 1 duplicates",
        "invalid lines",
        "input.jsonl:12: exec_result: invalid type: string",
        "written: 8 guard_command, 2 risk_event",
        "lines/s",
    ] {
        assert!(
            summary.contains(needle),
            "{needle:?} missing from summary:\n{summary}"
        );
    }
}

#[test]
fn replay_to_a_file_is_byte_for_byte_reproducible() {
    let dir = temp("repro");
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    for path in [&a, &b] {
        let out = guard(&[
            "replay",
            "--input",
            "examples/day.jsonl",
            "--output",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success());
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!std::fs::read(&a).unwrap().is_empty());
}

#[test]
fn strict_mode_stops_at_the_first_invalid_line() {
    let out = guard(&[
        "replay",
        "--strict",
        "--input",
        "tests/golden/hostile_lines/input.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("guard: tests/golden/hostile_lines/input.jsonl:2: envelope:"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn invalid_lines_are_listed_with_line_numbers_and_the_run_completes() {
    let out = guard(&[
        "replay",
        "--input",
        "tests/golden/hostile_lines/input.jsonl",
        "--policy",
        "tests/golden/hostile_lines/policy.toml",
    ]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    for line in [":2:", ":3:", ":4:", ":5:", ":6:", ":7:", ":8:", ":15:"] {
        assert!(err.contains(line), "line {line} not reported:\n{err}");
    }
    let count = err
        .lines()
        .find(|l| l.trim_start().starts_with("invalid lines"))
        .unwrap();
    assert_eq!(count.split_whitespace().last(), Some("8"), "{err}");
}

#[test]
fn an_unreadable_input_exits_2_with_one_line() {
    let out = guard(&["replay", "--input", "no/such/file.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("guard: cannot read no/such/file.jsonl"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_bad_policy_exits_2_naming_every_bad_key() {
    let dir = temp("policy");
    let policy = dir.join("bad.toml");
    std::fs::write(&policy, "[slippage]\nthreshold = 1\ntrip_at = -1\n").unwrap();
    let out = guard(&[
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        "--input",
        "examples/day.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("slippage.threshold: unknown key") && err.contains("slippage.trip_at"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn report_shows_pauses_per_rule_and_time_paused() {
    let out = guard(&["replay", "--report", "--input", "examples/day.jsonl"]);
    let err = text(&out.stderr);
    for needle in [
        "by rule   slippage_window",
        "by scope  strategy:gamma",
        "time paused",
        "global                  2h20m",
        "first trip 2025-08-11T00:09:30.000Z slippage_window (strategy alpha, fill f-004)",
    ] {
        assert!(err.contains(needle), "{needle:?} missing:\n{err}");
    }
}

#[test]
fn sweep_prints_one_row_per_combination() {
    let out = guard(&[
        "replay",
        "--input",
        "examples/day.jsonl",
        "--sweep",
        "slippage.threshold_bps=3,5,8",
        "--sweep",
        "slippage.trip_at=2,3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 7, "{table}");
    assert!(
        rows[0].starts_with("slippage.threshold_bps  slippage.trip_at  policy"),
        "{table}"
    );
    // The runbook variant (5, 3) trips like the plain replay: 4 pauses.
    let runbook = rows
        .iter()
        .find(|r| r.split_whitespace().take(2).collect::<Vec<_>>() == ["5", "3"])
        .unwrap();
    assert_eq!(runbook.split_whitespace().nth(3), Some("4"), "{runbook}");
    // A higher threshold cannot trip more often on the same input.
    let pauses = |bps: &str| {
        rows.iter()
            .find(|r| r.split_whitespace().take(2).collect::<Vec<_>>() == [bps, "2"])
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert!(pauses("8") <= pauses("3"));
}

#[test]
fn a_bad_sweep_key_is_a_usage_error() {
    let out = guard(&[
        "replay",
        "--input",
        "examples/day.jsonl",
        "--sweep",
        "slippage.treshold=1,2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("slippage.treshold: unknown key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_teaches_replay_with_examples() {
    let out = guard(&["replay", "--help"]);
    let help = text(&out.stdout);
    for needle in ["--sweep", "--strict", "--report", "Examples:", "decided_at"] {
        assert!(help.contains(needle), "{needle:?} missing from help");
    }
}

#[test]
fn run_refuses_secrets_in_flags_and_names_the_variable() {
    let out = guard(&[
        "run",
        "--brokers",
        "127.0.0.1:1",
        "--kafka",
        "sasl.password=hunter2",
        "--http-listen",
        "off",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("GUARD_KAFKA_SASL_PASSWORD") && !err.contains("hunter2"),
        "{err}"
    );
}

/// A taken HTTP address is a usage error, found before the guard touches its store or
/// the broker (the listener is bound first, without waiting to see).
#[test]
fn run_on_a_taken_http_address_says_so_and_starts_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp("taken-http");
    let state = dir.join("state");
    let out = guard(&[
        "run",
        "--brokers",
        "127.0.0.1:1",
        "--state-dir",
        state.to_str().unwrap(),
        "--http-listen",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        !state.exists(),
        "a store was made for a guard that did not start"
    );
}

#[test]
fn run_without_brokers_says_how_to_give_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["run"])
        .env_remove("GUARD_BROKERS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--brokers"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_config_file_unknown_keys_are_errors() {
    let dir = temp("config");
    let file = dir.join("guard.toml");
    std::fs::write(&file, "brokers = \"127.0.0.1:1\"\nstate_dri = \"/tmp/x\"\n").unwrap();
    let out = guard(&["run", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("state_dri"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_help_lists_every_setting_with_its_variable() {
    let help = text(&guard(&["run", "--help"]).stdout);
    for needle in [
        "--brokers",
        "GUARD_BROKERS",
        "--state-dir",
        "--group-id",
        "--http-listen",
        "--topic-exec-result",
        "--topic-dlq",
        "--kafka",
        "--log-format",
        "--config",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from guard run --help"
        );
    }
}

#[test]
fn snapshot_export_and_import_round_trip_and_refuse_damage() {
    use guard::live::store::{Checkpoint, OutMsg, SeenEntry};
    use guard::live::{SledStore, Store};
    let dir = temp("snapshot");
    let (src, dst, file) = (dir.join("src"), dir.join("dst"), dir.join("backup.json"));
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&dst);
    let checkpoint = Checkpoint {
        seq: 7,
        engine: guard::engine::Engine::new(guard::policy::Policy::default(), Default::default())
            .snapshot(),
        offsets: [(("exec_result".to_owned(), 0), 1234)]
            .into_iter()
            .collect(),
        outbox: vec![OutMsg {
            id: "cmd-1".into(),
            topic: "guard_command".into(),
            key: "global".into(),
            payload: b"{}".to_vec(),
            headers: vec![],
            timestamp_ms: None,
        }],
        seen_from: None,
        // Where its order records begin on the source's state topic: not carried
        // over, the restored guard may use another.
        journal_from: Some(99),
        order_runs: Vec::new(),
        order_cuts: Vec::new(),
    };
    // Seen entries of three distinct keys (the persisted key is a digest's top 80 bits).
    let entries = [(1u128, 10), (2, 20), (3, 30)].map(|(k, s)| SeenEntry::new(k << 48, s));
    {
        let mut store = SledStore::open(&src).unwrap();
        store.save(&checkpoint, &entries.into()).unwrap();
    }
    let out = guard(&[
        "snapshot",
        "export",
        "--state-dir",
        src.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("exported checkpoint 7 (1 input partitions, 3 seen ids, 1 outbox)"),
        "{}",
        text(&out.stdout)
    );
    let out = guard(&[
        "snapshot",
        "import",
        "--state-dir",
        dst.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restored = SledStore::open(&dst).unwrap().load().unwrap().unwrap();
    assert_eq!(
        restored.checkpoint,
        Checkpoint {
            journal_from: None,
            ..checkpoint
        }
    );
    let mut seen = restored.seen;
    seen.sort_unstable();
    assert_eq!(seen, entries.to_vec());
    // Importing over existing state needs --force; a damaged file is refused.
    let again = guard(&[
        "snapshot",
        "import",
        "--state-dir",
        dst.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("--force"));
    let damaged = std::fs::read_to_string(&file)
        .unwrap()
        .replace("1234", "1235");
    std::fs::write(&file, damaged).unwrap();
    let bad = guard(&[
        "snapshot",
        "import",
        "--force",
        "--state-dir",
        dst.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("checksum"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn guard_policy_prints_a_file_that_reads_back_to_the_same_version() {
    let dir = temp("policy-print");
    let source = dir.join("in.toml");
    std::fs::write(
        &source,
        "env = \"prod\"\n[daily]\nmax_loss = 500\ntz = \"UTC\"\n[state]\nhorizon = \"6h\"\n",
    )
    .unwrap();
    let first = guard(&["policy", "--policy", source.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let printed = text(&first.stdout);
    assert!(
        printed.contains("[state]") && printed.contains("horizon = \"6h\""),
        "{printed}"
    );
    let again = dir.join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    let second = guard(&["policy", "--policy", again.to_str().unwrap()]);
    assert_eq!(text(&second.stdout), printed);
}

#[test]
fn sweep_with_report_prints_each_variants_report_and_sweeps_version_2_keys() {
    let out = guard(&[
        "replay",
        "--input",
        "tests/golden/v2_modes_warnings_env/input.jsonl",
        "--policy",
        "tests/golden/v2_modes_warnings_env/policy.toml",
        "--sweep",
        "warnings.enabled=true,false",
        "--sweep",
        "env=prod,stg",
        "--report",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with("reduce_only  warnings"),
        "{table}"
    );
    let err = text(&out.stderr);
    assert_eq!(err.matches("report:").count(), 4, "{err}");
    assert!(err.contains("== warnings.enabled=true env=prod"), "{err}");
    assert!(err.contains("1 of another environment ignored"), "{err}");
}

#[test]
fn the_demo_closes_the_loop_from_fill_to_every_gateways_acknowledgement() {
    // The quick start's main job: the live guard on the mock cluster, two in-process
    // gateways that obey and acknowledge, one silenced, and the guard's escalation.
    let out = guard(&["demo", "--step-pause", "0ms"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for needle in [
        "gw-tokyo  * is paused (no_state: fail closed)",
        "gw-osaka  global is paused (cmd-",
        "✓ acknowledged by gw-tokyo and gw-osaka",
        "commands received    5 (3 pause, 2 resume)",
        "trigger → all gateways acknowledged  p50",
        "(4 commands)",
        "unacknowledged       1 command(s) escalated by the guard",
        "not acknowledged within 1s by gw-osaka",
        "live == replay       yes",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    // The silenced gateway never heard of the last pause.
    let last_pause = stdout
        .lines()
        .rfind(|l| l.contains("⇒ PAUSE"))
        .expect("a last pause");
    assert!(last_pause.contains("strategy gamma"), "{last_pause}");
    assert!(
        !stdout
            .lines()
            .skip_while(|l| !l.contains("gw-osaka stopped"))
            .skip(1)
            .any(|l| l.trim_start().starts_with("gw-osaka")),
        "gw-osaka said something after it stopped:\n{stdout}"
    );
}

/// A fresh directory for one call.
fn temp(name: &str) -> PathBuf {
    cli_support::scratch_dir("cli", name)
}

/// `guard pause` reports an order the broker refused as not published (a flushed
/// producer queue is not a delivered order), and one it took as published. The
/// broker is librdkafka's mock cluster in this process; no guard runs, so even a
/// published order ends in "no answer".
#[test]
fn an_order_the_broker_refuses_is_not_reported_as_published() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    for topic in ["ops_command", "guard_command"] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let pause = || {
        guard(&[
            "pause",
            "--brokers",
            &brokers,
            "--scope",
            "global",
            "--operator",
            "tanaka",
            "--reason",
            "drill",
            "--timeout",
            "1s",
            "--http",
            "http://127.0.0.1:9",
        ])
    };
    let taken = pause();
    let (out, err) = (text(&taken.stdout), text(&taken.stderr));
    assert!(
        out.contains("pause global published: command_id"),
        "{out}\n{err}"
    );
    assert!(err.contains("no answer from the guard"), "{err}");

    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 8],
    );
    let refused = pause();
    let (out, err) = (text(&refused.stdout), text(&refused.stderr));
    assert!(!refused.status.success());
    assert!(!out.contains("published"), "{out}");
    assert!(
        err.contains("was not published, nothing will act on it") && err.contains("NOT delivered"),
        "{err}"
    );
}
