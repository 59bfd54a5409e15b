//! The guard as a process on a real Kafka-protocol broker (tansu): the commands it
//! publishes equal `guard replay`'s for the same messages, across `kill -9` restarts
//! at many points; the operator CLI and the HTTP endpoints work as documented.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn published_commands_equal_replay_across_kill_9_restarts() {
    let dir = scratch("kill9");
    let tansu = Tansu::start(&dir);
    let prefix = "k9.";
    tansu.create_guard_topics(prefix);
    let lines = stream(240, 100);
    let file = dir.join("input.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (expected, replay_engine) = replay(&lines);
    assert!(
        expected.len() >= 6,
        "the stream should trip rules: {}",
        expected.len()
    );

    let state_dir = dir.join("state");
    let log = dir.join("guard.log");
    let (producer, delivered) = offset_producer(&tansu.brokers);
    let mut guard = GuardProcess::start(&tansu.brokers, &state_dir, prefix, &[], &log);
    let mut sent: BTreeMap<String, i64> = BTreeMap::new();
    // Kill points: some right after the guard applied a message (state not yet
    // checkpointed), some right after a send (message possibly half-read).
    let kill_after_applied = [17, 60, 61, 130, 200];
    let kill_after_send = [33, 95, 170, 222];
    let mut kills = 0;
    for (i, (stream_name, payload)) in messages(&file).into_iter().enumerate() {
        let topic = format!("{prefix}{stream_name}");
        let next = send_for_offset(&producer, &delivered, &topic, &payload);
        sent.insert(topic.clone(), next);
        if kill_after_send.contains(&i) {
            guard.kill9();
            kills += 1;
            guard = GuardProcess::start(&tansu.brokers, &state_dir, prefix, &[], &log);
        }
        guard.wait_offset(&topic, next, Duration::from_secs(60));
        if kill_after_applied.contains(&i) {
            guard.kill9();
            kills += 1;
            guard = GuardProcess::start(&tansu.brokers, &state_dir, prefix, &[], &log);
        }
    }
    for (topic, next) in &sent {
        guard.wait_offset(topic, *next, Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(500));
    let published = tansu.published_commands(prefix);
    // Duplicates are allowed only as exact repeats of the same decision.
    let first_seen = distinct_decisions(&published);
    assert_eq!(
        first_seen,
        expected.iter().map(judged).collect::<Vec<_>>(),
        "after {kills} kill -9s (log: {})",
        log.display()
    );
    // The final state is the replay's.
    assert_state_equals_replay(&guard, &replay_engine, &format!("after {kills} kills"));
    eprintln!(
        "kill -9 test: {} messages, {kills} kills, {} commands expected, {} published",
        lines.len(),
        expected.len(),
        published.len()
    );
}

#[test]
fn operator_cli_and_http_endpoints() {
    let dir = scratch("ops");
    let tansu = Tansu::start(&dir);
    let prefix = "ops.";
    tansu.create_guard_topics(prefix);
    // Without maintenance windows: the orders are stamped with the wall clock, and the
    // default policy's weekly window (Monday 17:00-18:00 UTC) would pause global at
    // the first order's step, so its own pause would change nothing.
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "maintenance = []\n").unwrap();
    let guard = GuardProcess::start_with(
        &tansu.brokers,
        &dir.join("state"),
        prefix,
        &[("GUARD_OPS_TOKEN", "s3cret-token")],
        &dir.join("guard.log"),
        &["--policy", policy.to_str().unwrap()],
    );
    let cli = |action: &str| {
        Command::new(env!("CARGO_BIN_EXE_guard"))
            .args([
                action,
                "--brokers",
                &tansu.brokers,
                "--scope",
                "global",
                "--operator",
                "tanaka",
                "--reason",
                "test",
                "--http",
                &format!("http://{}", guard.http),
                "--timeout",
                "30s",
            ])
            .args([
                "--topic-ops-command",
                &format!("{prefix}ops_command"),
                "--topic-guard-command",
                &format!("{prefix}guard_command"),
            ])
            .output()
            .unwrap()
    };
    let out = cli("pause");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("command_id ops-") && text.contains("guard: pause global (rule operator"),
        "{text}"
    );
    let out = cli("pause");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("already paused"), "{text}");

    // `guard status` shows the pause and why.
    let status = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["status", "--http", &format!("http://{}", guard.http)])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        table.contains("PAUSED SCOPES") && table.contains("global") && table.contains("operator"),
        "{table}"
    );

    // HTTP: health, readiness, metrics, state.
    assert_eq!(
        http(&guard.http, "GET", "/healthz", &[], "").unwrap().0,
        200
    );
    assert_eq!(http(&guard.http, "GET", "/readyz", &[], "").unwrap().0, 200);
    let (_, metrics) = http(&guard.http, "GET", "/metrics", &[], "").unwrap();
    assert!(
        metrics.contains("guard_messages_total{stream=\"ops_command\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guard_commands_total{rule=\"operator\",action=\"pause\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guard_decision_latency_seconds{quantile=\"0.99\"}"),
        "{metrics}"
    );
    let (_, state) = http(&guard.http, "GET", "/state", &[], "").unwrap();
    assert!(state.contains("\"reasons\":[\"operator\"]"), "{state}");

    // Ops endpoints: missing and wrong tokens are refused, the right one is accepted.
    let body = r#"{"scope":"global","operator":"sato","reason":"resume via http"}"#;
    assert_eq!(
        http(&guard.http, "POST", "/ops/resume", &[], body)
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        http(
            &guard.http,
            "POST",
            "/ops/resume",
            &[("Authorization", "Bearer wrong")],
            body
        )
        .unwrap()
        .0,
        401
    );
    let (code, answer) = http(
        &guard.http,
        "POST",
        "/ops/resume",
        &[("Authorization", "Bearer s3cret-token")],
        body,
    )
    .unwrap();
    assert_eq!(code, 202, "{answer}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, state) = http(&guard.http, "GET", "/state", &[], "").unwrap();
        if state.contains("\"paused\":[]") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTP resume was not applied: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A reduce-only order over HTTP puts the scope in reduce-only, not paused.
    let body = r#"{"scope":"strategy:alpha","operator":"sato","reason":"wind down"}"#;
    let (code, answer) = http(
        &guard.http,
        "POST",
        "/ops/reduce-only",
        &[("Authorization", "Bearer s3cret-token")],
        body,
    )
    .unwrap();
    assert_eq!(code, 202, "{answer}");
    loop {
        let (_, state) = http(&guard.http, "GET", "/state", &[], "").unwrap();
        if state.contains("\"reduce_only\":[{") {
            assert!(state.contains("\"paused\":[]"), "{state}");
            assert!(
                state.contains("\"reduce_only_reasons\":[\"operator\"]"),
                "{state}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTP reduce-only was not applied: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metrics) = http(&guard.http, "GET", "/metrics", &[], "").unwrap();
    assert!(
        metrics.contains("guard_commands_total{rule=\"operator\",action=\"reduce_only\"} 1"),
        "{metrics}"
    );
    // Every attempt is audited, the token never logged.
    drop(guard);
    let log = std::fs::read_to_string(dir.join("guard.log")).unwrap();
    assert!(
        log.contains("ops order refused") && log.contains("ops order accepted"),
        "audit lines missing"
    );
    assert!(
        !log.contains("s3cret-token"),
        "the token must never be logged"
    );
}

#[test]
fn ops_endpoints_are_refused_without_a_configured_token() {
    let dir = scratch("notoken");
    let tansu = Tansu::start(&dir);
    let prefix = "nt.";
    tansu.create_guard_topics(prefix);
    let guard = GuardProcess::start(
        &tansu.brokers,
        &dir.join("state"),
        prefix,
        &[],
        &dir.join("guard.log"),
    );
    let body = r#"{"scope":"global","operator":"sato"}"#;
    assert_eq!(
        http(
            &guard.http,
            "POST",
            "/ops/pause",
            &[("Authorization", "Bearer anything")],
            body
        )
        .unwrap()
        .0,
        403
    );
}

#[test]
fn a_hot_standby_takes_over_when_the_active_guard_dies() {
    standby_takes_over("standby", false);
}

/// Two instances deployed at once may both take the active role before either sees
/// the other's lease. The one with the larger name steps down; the newer lineage's
/// first manifest has deleted the blocks the other's lineage had then, so the one
/// that stays must start a new lineage, or no standby could restore it.
#[test]
fn two_instances_started_together_leave_one_active_with_a_complete_snapshot() {
    standby_takes_over("together", true);
}

/// Until one of `pair` is ready and the other a standby, and both stay so for longer
/// than a lease takes to age and a step-down to follow: (active, standby).
fn settled(pair: [GuardProcess; 2]) -> (GuardProcess, GuardProcess) {
    let standby_role = |g: &GuardProcess| {
        http(&g.http, "GET", "/state", &[], "")
            .is_ok_and(|(_, body)| body.contains("\"role\":\"standby\""))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut since: Option<(usize, std::time::Instant)> = None;
    loop {
        let now = (0..2).find(|&i| pair[i].is_ready() && standby_role(&pair[1 - i]));
        since = match (since, now) {
            (Some((was, at)), Some(i)) if was == i => Some((was, at)),
            (_, Some(i)) => Some((i, std::time::Instant::now())),
            (_, None) => None,
        };
        if let Some((i, at)) = since {
            if at.elapsed() > Duration::from_secs(5) {
                let [a, b] = pair;
                return if i == 0 { (a, b) } else { (b, a) };
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the two instances never settled as one active, one standby"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Feeds half a stream to the active instance, kills it, feeds the rest to the
/// standby, and checks the decisions against replay and that the standby restored
/// the changelog's snapshot. `together`: both instances start at the same moment.
fn standby_takes_over(name: &str, together: bool) {
    let dir = scratch(name);
    let tansu = Tansu::start(&dir);
    let prefix = "sb.";
    tansu.create_guard_topics(prefix);
    let lines = stream(120, 100);
    let file = dir.join("input.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (expected, _) = replay(&lines);
    let spawn = |who: &str| {
        GuardProcess::spawn(
            &tansu.brokers,
            &dir.join(format!("state-{who}")),
            prefix,
            &[],
            &dir.join(format!("{who}.log")),
        )
    };
    let first = spawn("a");
    if !together {
        first.wait_ready(Duration::from_secs(60));
    }
    // The second instance finds a live lease and waits.
    let (active, standby) = settled([first, spawn("b")]);
    let standby_log = standby.log.clone();
    let (producer, delivered) = offset_producer(&tansu.brokers);
    let mut sent: BTreeMap<String, i64> = BTreeMap::new();
    let all = messages(&file);
    let (first, second) = all.split_at(all.len() / 2);
    for (stream_name, payload) in first {
        let topic = format!("{prefix}{stream_name}");
        let next = send_for_offset(&producer, &delivered, &topic, payload);
        sent.insert(topic.clone(), next);
        active.wait_offset(&topic, next, Duration::from_secs(60));
    }
    // Let the changelog carry a snapshot, then kill the active instance.
    std::thread::sleep(Duration::from_millis(1500));
    let active_log = active.log.clone();
    active.kill9();
    let killed = std::time::Instant::now();
    standby.wait_ready(Duration::from_secs(60));
    let takeover = killed.elapsed();
    for (stream_name, payload) in second {
        let topic = format!("{prefix}{stream_name}");
        let next = send_for_offset(&producer, &delivered, &topic, payload);
        sent.insert(topic.clone(), next);
        standby.wait_offset(&topic, next, Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(500));
    let published = tansu.published_commands(prefix);
    assert_eq!(
        distinct_decisions(&published),
        expected.iter().map(judged).collect::<Vec<_>>()
    );
    let log = std::fs::read_to_string(&standby_log).unwrap();
    assert!(
        log.contains("state restored from the changelog"),
        "the standby should restore from the changelog; the end of its log:\n{}",
        log_tail(&standby_log, 30)
    );
    let both_active = std::fs::read_to_string(&active_log)
        .unwrap()
        .contains("stepping down")
        || log.contains("stepping down");
    eprintln!(
        "standby took over {takeover:?} after kill -9 (both were active at first: {both_active})"
    );
}

#[test]
fn record_dumps_a_replayable_day() {
    let dir = scratch("record");
    let tansu = Tansu::start(&dir);
    let names = [
        "exec_result",
        "risk_event",
        "strategy_release",
        "ops_command",
    ];
    tansu.create_topics(&names);
    let file = root().join("tests/golden/runbook_day/input.jsonl");
    let producer = tansu.producer();
    let from = guard::time::Timestamp::now();
    for (topic, payload) in messages(&file) {
        tansu.send(&producer, &topic, &payload);
        std::thread::sleep(Duration::from_millis(3));
    }
    let to = guard::time::Timestamp::now();
    let recorded = dir.join("recorded.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args([
            "record",
            "--brokers",
            &tansu.brokers,
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--output",
            recorded.to_str().unwrap(),
            "--idle",
            "2s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("recorded 20 messages (13 exec_result, 3 risk_event, 1 strategy_release, 3 ops_command)"), "{}", String::from_utf8_lossy(&out.stderr));
    let replay_file = |path: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_guard"))
            .args(["replay", "--input", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    assert_eq!(
        String::from_utf8_lossy(&replay_file(&recorded)),
        String::from_utf8_lossy(&replay_file(&file))
    );
}

#[test]
fn a_damaged_store_is_refused_and_rebuild_recovers_the_same_decisions() {
    let dir = scratch("rebuild");
    let tansu = Tansu::start(&dir);
    let prefix = "rb.";
    tansu.create_guard_topics(prefix);
    let lines = stream(80, 100);
    let file = dir.join("input.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (expected, _) = replay(&lines);
    let state_dir = dir.join("state");
    let log = dir.join("guard.log");
    let (producer, delivered) = offset_producer(&tansu.brokers);
    let all = messages(&file);
    let (first, second) = all.split_at(all.len() / 2);
    let guard = GuardProcess::start(&tansu.brokers, &state_dir, prefix, &[], &log);
    for (stream_name, payload) in first {
        let topic = format!("{prefix}{stream_name}");
        let next = send_for_offset(&producer, &delivered, &topic, payload);
        guard.wait_offset(&topic, next, Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(300));
    guard.kill9();
    // The disk lies: sled's data file is overwritten.
    std::fs::write(state_dir.join("db"), vec![0u8; 4096]).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args([
            "run",
            "--brokers",
            &tansu.brokers,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--http-listen",
            "off",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("--rebuild"), "{err}");
    // With --rebuild the store is moved aside and the state comes back from the changelog.
    let mut guard = GuardProcess::spawn_with(
        &tansu.brokers,
        &state_dir,
        prefix,
        &[],
        &log,
        &["--rebuild"],
    );
    guard.wait_ready(Duration::from_secs(60));
    for (stream_name, payload) in second {
        let topic = format!("{prefix}{stream_name}");
        let next = send_for_offset(&producer, &delivered, &topic, payload);
        guard.wait_offset(&topic, next, Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(500));
    let published = tansu.published_commands(prefix);
    assert_eq!(
        distinct_decisions(&published),
        expected.iter().map(judged).collect::<Vec<_>>()
    );
    let aside = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.damaged-")
        });
    assert!(aside, "the damaged store is kept aside for inspection");
    guard.child.kill().ok();
}

#[test]
fn no_secret_reaches_the_logs() {
    // Every secret the guard is given — the ops token, SASL and TLS passwords — and a
    // wrong token an attacker tries: none may appear in the logs, at debug level,
    // with librdkafka's configuration dump and security debugging switched on.
    let dir = scratch("secrets");
    let tansu = Tansu::start(&dir);
    let prefix = "sec.";
    tansu.create_guard_topics(prefix);
    let secrets = [
        "tok-Zq81S3CRET",
        "sasl-Zq81S3CRET",
        "key-Zq81S3CRET",
        "wrong-Zq81S3CRET",
    ];
    let log = dir.join("guard.log");
    let env = [
        ("RUST_LOG", "debug"),
        ("GUARD_OPS_TOKEN", secrets[0]),
        ("GUARD_KAFKA_SASL_USERNAME", "guard"),
        ("GUARD_KAFKA_SASL_PASSWORD", secrets[1]),
        ("GUARD_KAFKA_SSL_KEY_PASSWORD", secrets[2]),
        ("GUARD_KAFKA_DEBUG", "conf,security,broker"),
    ];
    let guard = GuardProcess::start(&tansu.brokers, &dir.join("state"), prefix, &env, &log);
    let body = r#"{"scope":"global","operator":"sato","reason":"drill"}"#;
    for (token, want) in [(secrets[3], 401), (secrets[0], 202)] {
        let auth = format!("Bearer {token}");
        let (code, answer) = http(
            &guard.http,
            "POST",
            "/ops/pause",
            &[("Authorization", auth.as_str())],
            body,
        )
        .unwrap();
        assert_eq!(code, want, "{answer}");
    }
    drop(guard);
    // A second guard whose SASL handshake fails: the authentication errors are
    // logged, the password is not.
    let failing_log = dir.join("guard-sasl.log");
    let mut failing_env = env.to_vec();
    failing_env.push(("GUARD_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"));
    failing_env.push(("GUARD_KAFKA_SASL_MECHANISM", "PLAIN"));
    let failing = GuardProcess::spawn(
        &tansu.brokers,
        &dir.join("state-sasl"),
        prefix,
        &failing_env,
        &failing_log,
    );
    std::thread::sleep(std::time::Duration::from_secs(4));
    drop(failing);
    let mut checked = 0;
    for path in [&log, &failing_log] {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.lines().count() > 5,
            "{} is nearly empty",
            path.display()
        );
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{secret} appears in {}",
                path.display()
            );
        }
        checked += text.len();
    }
    // The log did record the attempts (without their tokens).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("wrong bearer token") || text.contains("401"),
        "no audit line"
    );
    eprintln!("no secret in {checked} bytes of debug logs");
}

#[test]
fn topics_publish_and_a_guard_on_partitioned_inputs_decide_as_replay() {
    let dir = scratch("topics");
    let tansu = Tansu::start(&dir);
    let prefix = "tp.";
    let brokers = tansu.brokers.as_str();
    // `guard topics` creates the nine topics, then finds them on a second run.
    let args = [
        "topics",
        "--brokers",
        brokers,
        "--prefix",
        prefix,
        "--partitions",
        "3",
        "--retention",
        "1d",
    ];
    let first = guard_cli(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let listing = String::from_utf8_lossy(&first.stdout);
    assert_eq!(listing.matches("created").count(), 11, "{listing}");
    let again = guard_cli(&args);
    assert!(again.status.success());
    let listing = String::from_utf8_lossy(&again.stdout);
    assert_eq!(
        listing.matches("exists (3 partitions)").count(),
        6,
        "{listing}"
    );
    assert_eq!(
        listing.matches("exists (1 partitions)").count(),
        5,
        "{listing}"
    );

    // `guard publish` puts a day on the partitioned inputs, keyed by strategy/scope.
    let file = root().join("tests/golden/runbook_day/input.jsonl");
    let published = guard_cli(&[
        "publish",
        "--brokers",
        brokers,
        "--prefix",
        prefix,
        "--input",
        file.to_str().unwrap(),
        "--rate",
        "200",
    ]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let valid = lines
        .iter()
        .filter(|l| guard::decode::decode_envelope(l.as_bytes()).is_ok())
        .count();
    assert!(String::from_utf8_lossy(&published.stderr)
        .contains(&format!("round 0: {valid} messages published")));

    // A guard on those topics merges the partitions by timestamp and decides what the
    // replay of the file decides.
    let guard = GuardProcess::start(
        brokers,
        &dir.join("state"),
        prefix,
        &[],
        &dir.join("guard.log"),
    );
    let (expected, _) = replay(&lines);
    let wanted: Vec<String> = expected.iter().map(judged).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let mut published = Vec::new();
        for p in 0..3 {
            published.extend(tansu.read_partition(&format!("{prefix}guard_command"), p));
        }
        let got: Vec<String> = {
            let mut d = distinct_decisions(&published);
            d.sort();
            d
        };
        if got.len() >= wanted.len() || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut wanted_sorted = wanted.clone();
    wanted_sorted.sort();
    assert_eq!(got, wanted_sorted);

    // The container health check.
    let url = format!("http://{}", guard.http);
    for extra in [None, Some("--ready")] {
        let mut args = vec!["healthcheck", "--http", url.as_str()];
        args.extend(extra);
        let out = guard_cli(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(guard);
    let out = guard_cli(&["healthcheck", "--http", &url]);
    assert_eq!(out.status.code(), Some(1), "a stopped guard is unhealthy");
}
