//! Who did it (runbook §6, §11): per-operator tokens for POST /ops/*. The order's
//! operator is the token's name, not the request body's; a viewer may not give
//! orders; a wrong or missing token is refused; SIGHUP rereads the tokens file and a
//! file that does not read keeps the operators in force. On tansu, with `guard run`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

fn entry(name: &str, token: &str, role: &str) -> String {
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[operator]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nrole = \"{role}\"\n\n")
}

fn order(http_addr: &str, token: Option<&str>, scope: &str, claimed: &str) -> (u16, String) {
    let header = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = header
        .as_deref()
        .map(|h| vec![("Authorization", h)])
        .unwrap_or_default();
    let body = format!(r#"{{"scope":"{scope}","operator":"{claimed}","reason":"drill"}}"#);
    http(http_addr, "POST", "/ops/pause", &headers, &body).unwrap()
}

fn hang_up(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits until `token` gets `want` for an order, or fails after 15 s.
fn wait_for(http_addr: &str, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = order(http_addr, Some(token), "strategy:beta", "x");
        if code == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {code} {body}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ops_operators(tansu: &Tansu, prefix: &str) -> Vec<(String, String)> {
    tansu
        .read_all(&format!("{prefix}ops_command"), Duration::from_secs(2))
        .iter()
        .filter_map(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        .map(|v| {
            (
                v["scope"]["strategy_id"]
                    .as_str()
                    .unwrap_or("global")
                    .to_owned(),
                v["operator"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn orders_carry_the_tokens_operator_and_sighup_rereads_the_tokens_file() {
    let dir = scratch("opstokens");
    let tansu = Tansu::start(&dir);
    let prefix = "tok.";
    tansu.create_guard_topics(prefix);
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        entry("tanaka", "t-0123456789", "operator") + &entry("audit", "a-0123456789", "viewer"),
    )
    .unwrap();
    let tokens_arg = tokens.to_str().unwrap().to_owned();
    let guard = GuardProcess::start_with(
        &tansu.brokers,
        &dir.join("state"),
        prefix,
        &[],
        &dir.join("guard.log"),
        &["--ops-tokens", &tokens_arg],
    );

    // The body claims someone else: the token says who it was.
    let (code, body) = order(
        &guard.http,
        Some("t-0123456789"),
        "strategy:alpha",
        "someone-else",
    );
    assert_eq!(code, 202, "{body}");
    let (code, body) = order(&guard.http, Some("a-0123456789"), "strategy:alpha", "audit");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("viewer"), "{body}");
    assert_eq!(
        order(&guard.http, Some("t-wrong"), "global", "tanaka").0,
        401
    );
    assert_eq!(order(&guard.http, None, "global", "tanaka").0, 401);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ops_operators(&tansu, prefix).contains(&("alpha".into(), "tanaka".into())) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            ops_operators(&tansu, prefix)
        );
    }
    assert!(
        ops_operators(&tansu, prefix)
            .iter()
            .all(|(_, op)| op == "tanaka"),
        "only tanaka's order went out: {:?}",
        ops_operators(&tansu, prefix)
    );

    // A new operator, without a restart.
    assert_eq!(
        order(&guard.http, Some("s-0123456789"), "strategy:beta", "sato").0,
        401
    );
    std::fs::write(
        &tokens,
        entry("tanaka", "t-0123456789", "operator") + &entry("sato", "s-0123456789", "operator"),
    )
    .unwrap();
    hang_up(guard.child.id());
    wait_for(&guard.http, "s-0123456789", 202);
    // The viewer is gone with the old file.
    assert_eq!(
        order(&guard.http, Some("a-0123456789"), "global", "audit").0,
        401
    );

    // A broken file keeps the operators in force.
    std::fs::write(&tokens, "[[operator]]\nname = \"\"\n").unwrap();
    hang_up(guard.child.id());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        order(&guard.http, Some("s-0123456789"), "strategy:beta", "sato").0,
        202
    );
    assert!(
        log_tail(&guard.log, 200).contains("the operators in force stay"),
        "{}",
        log_tail(&guard.log, 40)
    );
}

#[test]
fn a_shared_token_and_a_tokens_file_together_are_refused_at_start() {
    let dir = scratch("opstokens-both");
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, entry("tanaka", "t-0123456789", "operator")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["run", "--brokers", "127.0.0.1:1", "--ops-tokens"])
        .arg(&tokens)
        .args(["--state-dir"])
        .arg(dir.join("state"))
        .env("GUARD_OPS_TOKEN", "shared")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("both --ops-tokens and GUARD_OPS_TOKEN"));
    // A tokens file that does not read stops the start too, naming the file.
    std::fs::write(&tokens, "[[operator]]\nname = \"tanaka\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["run", "--brokers", "127.0.0.1:1", "--ops-tokens"])
        .arg(&tokens)
        .args(["--state-dir"])
        .arg(dir.join("state"))
        .env_remove("GUARD_OPS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ops tokens file") && err.contains("tokens.toml"),
        "{err}"
    );
}
