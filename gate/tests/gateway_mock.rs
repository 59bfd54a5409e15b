//! The reference gateway as a process (`guard-gate`) against the mock cluster: its
//! JSON lines on stdout, its HTTP answers, its acknowledgements, and a clean stop on
//! SIGTERM.

#![cfg(feature = "gateway")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use common::{wait_for, Rig, DEADLINE};
use serde_json::Value;

/// The gateway process; killed if the test ends early.
struct Gateway {
    child: Child,
    lines: Receiver<Value>,
}

impl Gateway {
    fn start(rig: &Rig, http: &str) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_guard-gate"))
            .args(["--brokers", &rig.cluster.bootstrap_servers()])
            .args(["--gateway", "gw-proc", "--topics-prefix", "t."])
            .args(["--max-silence", "2s", "--http-listen", http])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("guard-gate starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line).expect("each stdout line is JSON");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Gateway { child, lines }
    }

    /// The next line that matches `pick`, skipping others.
    fn line(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pick(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stdout line {what}"),
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` on `addr`: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the gateway serves HTTP");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn the_gateway_prints_changes_serves_its_verdicts_acknowledges_and_stops_on_sigterm() {
    // Given a gateway started before any heartbeat
    let rig = Rig::new();
    let addr = free_port();
    let mut gateway = Gateway::start(&rig, &addr);
    // Then its first line says it fails closed with no state
    let first = gateway.line("failing closed", |_| true);
    assert_eq!(first["scope"], "*");
    assert_eq!(first["mode"], "paused");
    assert_eq!(first["reason"], "no_state");
    assert_eq!(first["gateway"], "gw-proc");

    // When an active guard beats, the gate is reported open
    let _beats = rig.beats();
    gateway.line("opening", |l| l["scope"] == "*" && l["mode"] == "running");
    // When the guard pauses alpha
    rig.command("c1", "pause", "alpha", "slippage_window");
    let line = gateway.line("alpha paused", |l| l["scope"] == "strategy:alpha");
    assert_eq!(
        (&line["mode"], &line["command_id"]),
        (&"paused".into(), &"c1".into())
    );
    assert_eq!(rig.acks(1)[0].1["gateway"], "gw-proc");

    // Then HTTP answers for alpha, beta, a missing strategy, health and metrics
    let (status, body) = get(&addr, "/gate?strategy=alpha");
    let verdict: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        verdict,
        serde_json::json!({"strategy": "alpha", "verdict": "paused", "reasons": ["slippage_window"]})
    );
    let (_, body) = get(&addr, "/gate?strategy=beta");
    assert!(body.contains(r#""verdict":"running""#), "{body}");
    let (status, body) = get(&addr, "/gate");
    assert_eq!(status, 400);
    assert!(body.contains("strategy"), "{body}");
    let health: Value = serde_json::from_str(&get(&addr, "/healthz").1).unwrap();
    assert_eq!(health["caught_up"], true);
    assert_eq!(health["fail_closed"], Value::Null);
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "gate_commands_applied_total 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"gate_scopes{mode="paused"} 1"#),
        "{metrics}"
    );

    // When it is sent SIGTERM, it stops cleanly
    let pid = gateway.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut status = None;
    wait_for("the gateway to exit", || {
        status = gateway.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{status:?}");
}
