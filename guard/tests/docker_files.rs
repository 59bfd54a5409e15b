//! What can be checked of docker/ without a Docker engine: the compose file parses and
//! is self-consistent, every command it gives the guard image parses with this build,
//! every file it mounts and the Dockerfile copies exists, the Dockerfile has its
//! stages, non-root user and health check, and the mounted policy is the contract's.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn compose() -> Yaml {
    let text = std::fs::read_to_string(root().join("docker/compose.yml")).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).expect("compose.yml is YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `guard ARGS --help`: clap parses the sub-command and its flags, or says what is
/// wrong (a flag this build does not know).
fn parses(args: &[String]) -> Result<(), String> {
    // Strip the values: --help after the sub-command and known flags is enough for
    // clap to reject unknown flags.
    let out = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn compose_services_volumes_and_dependencies_are_consistent() {
    let doc = compose();
    let services = doc["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for wanted in ["kafka", "topics", "guard", "demo-producer"] {
        assert!(names.contains(&wanted), "service {wanted} missing");
    }
    let volumes: Vec<&str> = doc["volumes"]
        .as_hash()
        .expect("named volumes")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert!(!service["image"].is_badvalue(), "{name} names no image");
        if let Some(deps) = service["depends_on"].as_hash() {
            for dep in deps.keys().filter_map(Yaml::as_str) {
                assert!(names.contains(&dep), "{name} depends on unknown {dep}");
            }
        }
        for mount in strings(&service["volumes"]) {
            let source = mount.split(':').next().unwrap();
            if source.starts_with('.') {
                let path = root().join("docker").join(source);
                assert!(path.exists(), "{name} mounts missing {}", path.display());
            } else {
                assert!(
                    volumes.contains(&source),
                    "{name} uses undeclared volume {source}"
                );
            }
        }
        for port in strings(&service["ports"]) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
        }
    }
    // Kafka: the official image in KRaft mode.
    let kafka = &doc["services"]["kafka"];
    assert!(kafka["image"]
        .as_str()
        .unwrap()
        .starts_with("apache/kafka:"));
    let env = &kafka["environment"];
    assert_eq!(
        env["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller")
    );
    assert!(!env["KAFKA_CONTROLLER_QUORUM_VOTERS"].is_badvalue());
    // The guard keeps its state on a named volume and waits for its topics.
    let guard = &doc["services"]["guard"];
    assert!(strings(&guard["volumes"])
        .iter()
        .any(|v| v == "guard-state:/var/lib/noctria-guard"));
    assert_eq!(
        guard["depends_on"]["topics"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    // The demo producer is optional.
    assert_eq!(
        strings(&doc["services"]["demo-producer"]["profiles"]),
        ["demo"]
    );
}

#[test]
fn every_guard_command_in_compose_parses_with_this_build() {
    let doc = compose();
    for service in ["topics", "demo-producer"] {
        let command = strings(&doc["services"][service]["command"]);
        assert!(!command.is_empty(), "{service} has no command");
        parses(&command).unwrap_or_else(|e| panic!("{service}: {command:?}: {e}"));
    }
    // The guard's settings are GUARD_* variables `guard run` reads.
    let help = Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let env = doc["services"]["guard"]["environment"].as_hash().unwrap();
    for key in env.keys().filter_map(Yaml::as_str) {
        if key == "RUST_LOG" || key == "GUARD_OPS_TOKEN" {
            continue;
        }
        assert!(help.contains(key), "guard run does not read {key}");
    }
    // The token comes from the operator's environment, never from the file.
    let token = env[&Yaml::String("GUARD_OPS_TOKEN".into())]
        .as_str()
        .unwrap();
    assert!(token.starts_with("${GUARD_OPS_TOKEN:?"), "{token}");
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_user_with_a_health_check() {
    let text = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let from: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage: {from:?}");
    assert!(from[0].ends_with(" AS build") && from[1].ends_with(" AS runtime"));
    let runtime = &text[text.find(from[1]).unwrap()..];
    assert!(
        runtime.contains("\nUSER guard"),
        "the runtime runs as guard"
    );
    assert!(runtime.contains("HEALTHCHECK"), "a health check");
    assert!(runtime.contains("\"healthcheck\""));
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/guard\"]"));
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let source = line.split_whitespace().nth(1).unwrap();
        if source != "." {
            assert!(root().join(source).exists(), "COPY of missing {source}");
        }
    }
    // The build uses the lock file, so the image has the crates the tests ran with.
    assert!(text.contains("--locked"));
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

#[test]
fn the_mounted_policy_is_the_contracts_default() {
    let text = std::fs::read_to_string(root().join("docker/policy.toml")).unwrap();
    let policy = guard::policy::Policy::from_toml(&text).unwrap();
    assert_eq!(policy, guard::policy::Policy::default());
}
