//! The gateways' half of a pause (CONTRACT §1.8, §6), end to end on tansu: the guard
//! (an active instance and a standby) and `guard gate` processes, each a reference
//! gateway on the gate library.
//!
//! - A slippage burst pauses the strategy at both gateways, and both acknowledge.
//! - A gateway killed: the guard raises `command_unacknowledged` naming it, after
//!   `acks.timeout`.
//! - The active guard killed: the gateway fails closed (`guard_silent`) and reopens
//!   when the standby has taken over and beats.
//! - A gateway started after the commands (it reads `guard_command` only from its end)
//!   starts with every scope's mode from `guard_pause_state`.
//! - After the takeover, the compacted view of `guard_pause_state` is every scope's
//!   present mode.
//!
//! No timing is asserted; how long failing closed took is printed.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const POLICY: &str = r#"maintenance = []

[slippage]
pause = "group"

[acks]
gateways = ["gw-a", "gw-b"]
timeout = "2s"
"#;

/// A `guard gate` process: its JSON lines collected, its HTTP endpoint asked.
struct Gateway {
    child: Child,
    name: String,
    http: String,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Gateway {
    fn start(brokers: &str, prefix: &str, name: &str, log: &Path) -> Gateway {
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_guard"))
            .args([
                "gate",
                "--brokers",
                brokers,
                "--gateway",
                name,
                "--max-silence",
                "2s",
                "--topics-prefix",
                prefix,
                "--http-listen",
                &http,
            ])
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("guard gate starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a line that is not JSON: {line}: {e}"));
                sink.lock().unwrap().push(value);
            }
        });
        Gateway {
            child,
            name: name.to_owned(),
            http,
            lines,
        }
    }

    /// What the gateway answers for `strategy` (`running`, `reduce_only`, `paused`),
    /// with its reasons.
    fn verdict(&self, strategy: &str) -> Option<(String, Vec<String>)> {
        let (code, body) = http(
            &self.http,
            "GET",
            &format!("/gate?strategy={strategy}"),
            &[],
            "",
        )
        .ok()?;
        let value: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then(|| {
            let reasons = value["reasons"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (
                value["verdict"].as_str().unwrap_or_default().to_owned(),
                reasons,
            )
        })
    }

    fn wait_verdict(&self, strategy: &str, want: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.verdict(strategy);
            if let Some((verdict, reasons)) = &got {
                if verdict == want {
                    return reasons.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: {strategy} is not {want}: {got:?}; lines {:?}",
                self.name,
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first line (from `from` on) that `want` accepts, waiting for it.
    fn wait_line(
        &self,
        from: usize,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> (usize, Value) {
        let deadline = Instant::now() + within;
        loop {
            {
                let lines = self.lines.lock().unwrap();
                if let Some((i, line)) = lines.iter().enumerate().skip(from).find(|(_, l)| want(l))
                {
                    return (i, line.clone());
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: no such line; lines {lines:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_iso() -> String {
    guard::time::Timestamp::now().to_string()
}

fn breach(id: &str, strategy: &str) -> Vec<u8> {
    format!(
        r#"{{"fill_id":"{id}","strategy_id":"{strategy}","symbol":"7203.T","side":"buy","qty":100,"expected_price":2500.0,"fill_price":2503.0,"ts":"{}"}}"#,
        now_iso()
    )
    .into_bytes()
}

/// Three fills over the slippage threshold: a trip of `strategy`'s own scope.
fn burst(tansu: &Tansu, prefix: &str, strategy: &str, tag: &str) {
    let producer = tansu.producer();
    for i in 0..3 {
        tansu.send(
            &producer,
            &format!("{prefix}exec_result"),
            &breach(&format!("f-{tag}-{i}"), strategy),
        );
    }
}

/// Every command published so far, by scope key: (command_id, action) in order.
fn commands_of(tansu: &Tansu, prefix: &str, scope: &str) -> Vec<(String, String)> {
    tansu
        .published_commands(prefix)
        .into_iter()
        .filter(|c| c.scope.to_string() == scope)
        .map(|c| (c.command_id, c.action.as_str().to_owned()))
        .collect()
}

fn wait_command(tansu: &Tansu, prefix: &str, scope: &str, action: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((id, _)) = commands_of(tansu, prefix, scope)
            .into_iter()
            .rev()
            .find(|(_, a)| a == action)
        {
            return id;
        }
        assert!(Instant::now() < deadline, "no {action} of {scope}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn acks_of(tansu: &Tansu, prefix: &str, command_id: &str) -> Vec<String> {
    let mut gateways: Vec<String> = tansu
        .read_all(&format!("{prefix}guard_ack"), Duration::from_millis(1500))
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(p).ok())
        .filter(|v| v["command_id"] == command_id)
        .filter_map(|v| v["gateway"].as_str().map(str::to_owned))
        .collect();
    gateways.sort();
    gateways.dedup();
    gateways
}

fn unacknowledged(tansu: &Tansu, prefix: &str) -> Vec<Value> {
    tansu
        .read_all(&format!("{prefix}risk_event"), Duration::from_millis(1500))
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(p).ok())
        .filter(|v| v["kind"] == "command_unacknowledged")
        .collect()
}

/// The last `guard_pause_state` record of every scope key (a compacted read).
fn compacted_pause_state(tansu: &Tansu, prefix: &str) -> BTreeMap<String, (String, String)> {
    let mut last = BTreeMap::new();
    for payload in tansu.read_all(
        &format!("{prefix}guard_pause_state"),
        Duration::from_millis(2000),
    ) {
        let v: Value = serde_json::from_slice(&payload).expect("pause state is JSON");
        let scope: guard::message::Scope = serde_json::from_value(v["scope"].clone()).unwrap();
        last.insert(
            scope.to_string(),
            (
                v["mode"].as_str().unwrap().to_owned(),
                v["command_id"].as_str().unwrap().to_owned(),
            ),
        );
    }
    last
}

#[test]
fn gateways_obey_acknowledge_fail_closed_and_start_from_the_pause_state() {
    let dir = scratch("gateways");
    let tansu = Tansu::start(&dir);
    let prefix = "gw.";
    tansu.create_guard_topics(prefix);
    tansu.create_topics(&[&format!("{prefix}guard_ack")]);
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let policy_env = policy.to_str().unwrap().to_owned();
    let env = [("GUARD_POLICY", policy_env.as_str())];
    let log = dir.join("guard.log");
    let wall = ["--clock", "wall"];
    let active =
        GuardProcess::start_with(&tansu.brokers, &dir.join("a"), prefix, &env, &log, &wall);
    // The standby: same group, its own store.
    let standby =
        GuardProcess::spawn_with(&tansu.brokers, &dir.join("b"), prefix, &env, &log, &wall);
    let gate_log = dir.join("gates.log");
    let a = Gateway::start(&tansu.brokers, prefix, "gw-a", &gate_log);
    let b = Gateway::start(&tansu.brokers, prefix, "gw-b", &gate_log);

    // Both start closed (no state), then open once caught up and the guard is heard.
    for gate in [&a, &b] {
        gate.wait_line(0, Duration::from_secs(30), |l| {
            l["scope"] == "*" && l["mode"] == "paused" && l["reason"] == "no_state"
        });
        gate.wait_verdict("alpha", "running", Duration::from_secs(30));
    }

    // A slippage burst pauses alpha at both gateways; both acknowledge.
    let from = [a.line_count(), b.line_count()];
    burst(&tansu, prefix, "alpha", "1");
    let pause = wait_command(&tansu, prefix, "strategy:alpha", "pause");
    for (gate, from) in [(&a, from[0]), (&b, from[1])] {
        let (_, line) = gate.wait_line(from, Duration::from_secs(30), |l| {
            l["scope"] == "strategy:alpha" && l["mode"] == "paused"
        });
        assert_eq!(line["command_id"], pause.as_str(), "{line}");
        assert_eq!(line["gateway"], gate.name.as_str());
        let reasons = gate.wait_verdict("alpha", "paused", Duration::from_secs(5));
        assert_eq!(reasons, ["slippage_window"]);
        assert_eq!(gate.verdict("beta").unwrap().0, "running");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks_of(&tansu, prefix, &pause) != ["gw-a", "gw-b"] {
        assert!(
            Instant::now() < deadline,
            "acks: {:?}",
            acks_of(&tansu, prefix, &pause)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // gw-b killed: beta's pause is acknowledged by gw-a only, and the guard says so.
    b.kill9();
    burst(&tansu, prefix, "beta", "2");
    let beta_pause = wait_command(&tansu, prefix, "strategy:beta", "pause");
    a.wait_verdict("beta", "paused", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    let escalation = loop {
        if let Some(e) = unacknowledged(&tansu, prefix)
            .into_iter()
            .find(|e| e["evidence"][0] == beta_pause.as_str())
        {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no command_unacknowledged for {beta_pause}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let reason = escalation["reason"].as_str().unwrap();
    assert!(
        reason.contains("gw-b") && !reason.contains("gw-a"),
        "{reason}"
    );
    assert_eq!(escalation["severity"], "critical");
    assert!(
        unacknowledged(&tansu, prefix)
            .iter()
            .all(|e| e["evidence"][0] != pause.as_str()),
        "alpha's pause was acknowledged by both"
    );

    // The active guard killed: gw-a fails closed, then reopens when the standby is
    // active and beats; alpha and beta stay paused, gamma runs.
    let from = a.line_count();
    let killed = Instant::now();
    active.kill9();
    let (closed_at, _) = a.wait_line(from, Duration::from_secs(30), |l| {
        l["scope"] == "*" && l["mode"] == "paused" && l["reason"] == "guard_silent"
    });
    let closed_after = killed.elapsed();
    assert_eq!(a.verdict("gamma").unwrap().0, "paused");
    standby.wait_ready(Duration::from_secs(60));
    a.wait_line(closed_at + 1, Duration::from_secs(30), |l| {
        l["scope"] == "*" && l["mode"] != "paused"
    });
    let reopened_after = killed.elapsed();
    a.wait_verdict("gamma", "running", Duration::from_secs(5));
    a.wait_verdict("alpha", "paused", Duration::from_secs(5));
    a.wait_verdict("beta", "paused", Duration::from_secs(5));

    // The new active guard decides, and writes the pause state.
    burst(&tansu, prefix, "gamma", "3");
    let gamma_pause = wait_command(&tansu, prefix, "strategy:gamma", "pause");
    a.wait_verdict("gamma", "paused", Duration::from_secs(30));

    // A gateway started now never saw a command: it starts from the pause state.
    let c = Gateway::start(&tansu.brokers, prefix, "gw-c", &gate_log);
    for strategy in ["alpha", "beta", "gamma"] {
        c.wait_verdict(strategy, "paused", Duration::from_secs(30));
    }
    c.wait_verdict("delta", "running", Duration::from_secs(5));
    let (_, first) = c.wait_line(0, Duration::from_secs(5), |l| {
        l["scope"] == "strategy:alpha"
    });
    assert_eq!(first["mode"], "paused");
    assert_eq!(first["command_id"], pause.as_str());

    // Across the takeover, the compacted view is every scope's present mode.
    let view = compacted_pause_state(&tansu, prefix);
    let want: BTreeMap<String, (String, String)> = [
        ("strategy:alpha", pause.as_str()),
        ("strategy:beta", beta_pause.as_str()),
        ("strategy:gamma", gamma_pause.as_str()),
    ]
    .into_iter()
    .map(|(s, id)| (s.to_owned(), ("paused".to_owned(), id.to_owned())))
    .collect();
    assert_eq!(view, want);
    eprintln!(
        "gateways: the guard killed → gw-a failed closed after {:.2} s (max_silence 2 s, heartbeat every 0.5 s), reopened after {:.2} s (standby takeover)",
        closed_after.as_secs_f64(),
        reopened_after.as_secs_f64()
    );
}
