//! Backup while running (runbook §10): `guard snapshot export --http` takes the last
//! committed checkpoint of a guard while the input flows into it; the file imported
//! into a fresh state dir starts a second guard that continues from there, on the same
//! inputs, and ends in exactly the state of the guard that never stopped, publishing
//! only decisions that guard made too. On tansu.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::producer::BaseRecord;
use serde_json::Value;

const TOKEN: &str = "backup-drill-token";
const INPUTS: [&str; 4] = [
    "exec_result",
    "risk_event",
    "strategy_release",
    "ops_command",
];

/// A `guard run` on the inputs under `inputs` and its own outputs, group and
/// changelog under `own`, from `state_dir`.
fn guard_on(
    brokers: &str,
    inputs: &str,
    own: &str,
    state_dir: &Path,
    log: &Path,
    port: u16,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guard"));
    cmd.args(["run", "--brokers", brokers, "--state-dir"])
        .arg(state_dir)
        .args(["--http-listen", &format!("127.0.0.1:{port}")])
        .args(["--clock", "event-time", "--checkpoint-interval", "30ms"])
        .args(["--input-fetch-wait", &tansu_input_fetch_wait()])
        .args(["--group-id", &format!("{own}group")]);
    for stream in INPUTS {
        cmd.args([
            format!("--topic-{}", stream.replace('_', "-")),
            format!("{inputs}{stream}"),
        ]);
    }
    for (flag, topic) in [
        ("--topic-guard-command", "guard_command"),
        ("--topic-dlq", "guard_dlq"),
        ("--topic-state", "guard_state"),
        ("--topic-facts", "guard_facts"),
        ("--topic-pause-state", "guard_pause_state"),
        ("--topic-heartbeat", "guard_heartbeat"),
    ] {
        cmd.args([flag.to_owned(), format!("{own}{topic}")]);
    }
    cmd.env("GUARD_OPS_TOKEN", TOKEN)
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("guard starts")
}

fn state_of(http_addr: &str) -> Option<Value> {
    let (code, body) = http(http_addr, "GET", "/state", &[], "").ok()?;
    (code == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Waits until the guard at `http_addr` has applied `sent` messages of every input.
fn wait_applied(http_addr: &str, inputs: &str, sent: &[(String, i64)], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(state) = state_of(http_addr) {
            let done = sent.iter().all(|(topic, n)| {
                state["offsets"][format!("{inputs}{topic}/0")]
                    .as_i64()
                    .unwrap_or(0)
                    >= *n
            });
            if done && state["ready"] == true {
                // The state part of /state is rebuilt at most every 100 ms: take it
                // once it has caught up with the offsets.
                std::thread::sleep(Duration::from_millis(500));
                if let Some(settled) = state_of(http_addr) {
                    return settled;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{http_addr} did not apply everything"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn command_ids(tansu: &Tansu, topic_prefix: &str) -> Vec<String> {
    tansu
        .published_commands(topic_prefix)
        .into_iter()
        .map(|c| c.command_id)
        .collect()
}

#[test]
fn a_backup_taken_while_fills_flow_restores_a_guard_that_decides_as_one_that_never_stopped() {
    let dir = scratch("snaprun");
    let tansu = Tansu::start(&dir);
    tansu.create_guard_topics("a.");
    tansu.create_guard_topics("b.");
    let lines = stream(4_000, 100);
    let file = dir.join("input.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let all = messages(&file);
    let log = dir.join("guard.log");
    let port_a = free_port();
    let mut a = guard_on(
        &tansu.brokers,
        "a.",
        "a.",
        &dir.join("state-a"),
        &log,
        port_a,
    );
    let http_a = format!("127.0.0.1:{port_a}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http(&http_a, "GET", "/readyz", &[], ""), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "guard A not ready: {}",
            log_tail(&log, 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The input flows; the backup is taken half way. Each switch of topic is flushed
    // and spaced by a few ms, so the broker holds the streams in timestamp order and
    // the live guard applies them in the order a backlog is merged (the restored
    // guard has a changelog of its own, so it merges anew: docs/LIVE.md).
    let (producer, delivered) = offset_producer(&tansu.brokers);
    let backup = dir.join("backup.json");
    let mut exported = None;
    let start_ms = 1_700_000_000_000i64;
    let mut previous = "";
    for (i, (topic, payload)) in all.iter().enumerate() {
        if topic != previous {
            use rdkafka::producer::Producer;
            producer.flush(Duration::from_secs(10)).unwrap();
            std::thread::sleep(Duration::from_millis(3));
            previous = topic;
        }
        let target = format!("a.{topic}");
        let record = BaseRecord::to(&target)
            .key("k")
            .payload(payload)
            .timestamp(start_ms + i as i64);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(25));
        }
        if i == all.len() / 2 {
            use rdkafka::producer::Producer;
            producer.flush(Duration::from_secs(10)).unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_guard"))
                .args(["snapshot", "export", "--http", &format!("http://{http_a}")])
                .arg(&backup)
                .env("GUARD_OPS_TOKEN", TOKEN)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
            assert!(
                out.status.success(),
                "{said}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            exported = Some(said);
        }
    }
    {
        use rdkafka::producer::Producer;
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let said = exported.expect("exported");
    assert!(said.starts_with("exported checkpoint "), "{said}");
    // The next offset after our own last message of each input (the guards write
    // their risk events to risk_event too).
    let sent: Vec<(String, i64)> = delivered
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(t, o)| Some((t.strip_prefix("a.")?.to_owned(), o + 1)))
        .collect();
    assert_eq!(sent.len(), INPUTS.len(), "{sent:?}");
    let state_a = wait_applied(&http_a, "a.", &sent, Duration::from_secs(120));
    let ids_a = command_ids(&tansu, "a.");
    let _ = a.kill();
    let _ = a.wait();

    // The backup restores a second guard on the same inputs, with outputs of its own.
    let out = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["snapshot", "import", "--state-dir"])
        .arg(dir.join("state-b"))
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port_b = free_port();
    let mut b = guard_on(
        &tansu.brokers,
        "a.",
        "b.",
        &dir.join("state-b"),
        &log,
        port_b,
    );
    let state_b = wait_applied(
        &format!("127.0.0.1:{port_b}"),
        "a.",
        &sent,
        Duration::from_secs(120),
    );
    let ids_b = command_ids(&tansu, "b.");
    let _ = b.kill();
    let _ = b.wait();

    // The same state as the guard that never stopped (its instance fields aside, and
    // the offsets: each guard read its own risk events back from risk_event, which
    // it ignores).
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("role");
            o.remove("ready");
            o.remove("offsets");
        }
        v
    };
    // The dedup ids are compared apart: a checkpoint keeps only the ids within the
    // horizon of its clock (late fills older than that are not written, CONTRACT-NOTES
    // "State horizon"), while the guard that never stopped still holds them until its
    // next sweep. The restored guard may hold fewer, never more.
    let seen = |v: &Value| v["seen_ids"].as_u64().unwrap_or(0);
    assert!(
        seen(&state_b) <= seen(&state_a),
        "the restored guard holds more dedup ids ({}) than the one that never stopped ({})",
        seen(&state_b),
        seen(&state_a)
    );
    let strip = |v: Value| {
        let mut v = strip(v);
        if let Some(o) = v.as_object_mut() {
            o.remove("seen_ids");
        }
        v
    };
    let (state_a, state_b) = (strip(state_a), strip(state_b));
    let differ: Vec<String> = state_a
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| state_b.get(k.as_str()) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}:\n      never stopped: {v}\n      restored:      {}",
                state_b[k.as_str()]
            )
        })
        .collect();
    assert!(
        differ.is_empty() && state_a == state_b,
        "the restored guard's state differs:\n    {}",
        differ.join("\n    ")
    );
    // It decided only what the first guard decided, and it did decide after the
    // backup (the second half of the stream trips rules).
    let a_set: BTreeSet<&String> = ids_a.iter().collect();
    let extra: Vec<&String> = ids_b.iter().filter(|id| !a_set.contains(id)).collect();
    assert!(
        extra.is_empty(),
        "decided by the restored guard only: {extra:?}"
    );
    assert!(
        !ids_b.is_empty(),
        "the restored guard decided nothing after the backup"
    );
    assert!(
        ids_b.len() < ids_a.len(),
        "the backup was taken half way: {} vs {}",
        ids_b.len(),
        ids_a.len()
    );
    eprintln!(
        "backup while running: {said}; guard A published {} commands, the restored guard {} (all of them A's), final states equal",
        ids_a.len(),
        ids_b.len()
    );
}
