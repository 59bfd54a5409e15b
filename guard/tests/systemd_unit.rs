//! The systemd unit of deploy/systemd, checked without systemd: it runs the guard with
//! the compose file's settings (environment, state directory, stop timeout, restart),
//! every variable it or its example environment file names is one `guard run` reads,
//! and it runs hardened as a user of its own. `scripts/test-ops.sh` runs
//! `systemd-analyze verify` on it where systemd is installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Yaml {
    YamlLoader::load_from_str(&read("docker/compose.yml"))
        .expect("compose.yml is YAML")
        .remove(0)
}

/// The `Key=Value` lines of a systemd unit (every value of a repeated key).
fn unit(path: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in read(path).lines() {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            out.entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    out
}

#[test]
fn the_systemd_unit_runs_the_guard_with_the_compose_files_settings() {
    let unit = unit("deploy/systemd/noctria-guard.service");
    let one = |key: &str| -> &str {
        let values = unit.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(values.len(), 1, "{key} once");
        &values[0]
    };
    let env: BTreeMap<&str, &str> = unit["Environment"]
        .iter()
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    // The example environment file: set and commented-out settings alike.
    let example = read("deploy/systemd/guard.env.example");
    let example: BTreeSet<&str> = example
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter(|l| l.starts_with("GUARD_"))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    let compose = compose();
    let guard = &compose["services"]["guard"];
    for (key, value) in guard["environment"].as_hash().unwrap() {
        let key = key.as_str().unwrap();
        let value = value.as_str().unwrap();
        match key {
            "GUARD_BROKERS" | "GUARD_OPS_TOKEN" => assert!(example.contains(key), "{key}"),
            "GUARD_HTTP_LISTEN" => {
                let port = value.rsplit(':').next().unwrap();
                assert_eq!(
                    env[key],
                    format!("127.0.0.1:{port}"),
                    "loopback, compose's port"
                );
            }
            "RUST_LOG" => assert_eq!(env[key], "info"),
            _ => assert_eq!(env.get(key), Some(&value), "{key} as in compose"),
        }
    }
    // Every setting named is one `guard run` reads.
    let help = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for key in env.keys().copied().chain(example.iter().copied()) {
        if key.starts_with("GUARD_KAFKA_") || ["RUST_LOG", "GUARD_OPS_TOKEN"].contains(&key) {
            continue;
        }
        assert!(help.contains(key), "guard run does not read {key}");
    }
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/guard run",
        "the image's binary and command"
    );
    let state_dir = env["GUARD_STATE_DIR"];
    assert_eq!(format!("/var/lib/{}", one("StateDirectory")), state_dir);
    assert_eq!(one("WorkingDirectory"), state_dir);
    let grace = guard["stop_grace_period"].as_str().unwrap();
    assert_eq!(one("TimeoutStopSec"), grace, "compose's stop_grace_period");
    assert_eq!(
        one("KillSignal"),
        "SIGTERM",
        "a clean stop writes a last checkpoint"
    );
    assert_eq!(guard["restart"].as_str(), Some("unless-stopped"));
    assert_eq!(one("Restart"), "always");
    assert!(!["root", "0"].contains(&one("User")), "a user of its own");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert!(one("EnvironmentFile").ends_with("/guard.env"));
}
