//! What can be checked of deploy/ without Prometheus, Grafana or systemd: every metric
//! an alert or a dashboard panel queries is one the guard or a gateway exports, with
//! labels it has; every alert has a severity, a runbook link to a heading of
//! docs/OPERATIONS.md and unit tests where it fires and where it stays quiet; the
//! compose file's monitoring services are optional and scrape what the guard and the
//! gateway serve. `scripts/test-ops.sh` runs the tools themselves (promtool, amtool).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
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

fn yaml(path: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path} holds one document");
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

/// Metric name → the label names it is exported with.
type Exported = BTreeMap<String, BTreeSet<String>>;

/// What `/metrics` of the guard and of a gateway show, rendered by their own code,
/// with one entry in each labelled family so that its labels show.
fn exported() -> Exported {
    let mut status = guard::live::status::Status::default();
    let m = &mut status.metrics;
    m.messages.insert("exec_result", 1);
    m.commands
        .insert(("slippage_window".into(), "pause".into()), 1);
    m.risk_events.insert("command_unacknowledged".into(), 1);
    m.lag.insert("exec_result/0".into(), 0);
    let mut text = guard::live::status::prometheus(&status);
    let gateway = gate::Gate::new("gw", 3_000);
    text.push_str(&gate::http::prometheus(
        &gateway.state(0),
        gate::handle::ShellCounters::default(),
    ));
    let mut out = Exported::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap();
        let labels = out.entry(line[..end].to_owned()).or_default();
        if let Some(inner) = line[end..].strip_prefix('{') {
            let inner = &inner[..inner.find('}').unwrap()];
            for pair in inner.split(',') {
                labels.insert(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    out
}

/// The metrics a PromQL expression selects (`guard_*`, `gate_*`), each with the label
/// names its braces match on. Quoted strings are skipped, so label values and
/// template text never count as names.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_string = |i: usize| {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if ident(c) && !c.is_ascii_digit() && (i == 0 || !ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if !(name.starts_with("guard_") || name.starts_with("gate_")) {
                continue;
            }
            let mut labels = Vec::new();
            if chars.get(i) == Some(&'{') {
                let mut key = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '}' {
                    match chars[i] {
                        '"' | '\'' | '`' => {
                            i = skip_string(i);
                            continue;
                        }
                        '=' | '!' | '~' if !key.is_empty() => labels.push(std::mem::take(&mut key)),
                        c if ident(c) => key.push(c),
                        _ => key.clear(),
                    }
                    i += 1;
                }
            }
            out.push((name, labels));
        } else {
            i += 1;
        }
    }
    out
}

/// Every alerting rule of alerts.yml.
fn alert_rules() -> Vec<Yaml> {
    let doc = yaml("deploy/prometheus/alerts.yml");
    let groups = doc["groups"].as_vec().expect("groups");
    let rules: Vec<Yaml> = groups
        .iter()
        .flat_map(|g| g["rules"].as_vec().expect("rules").clone())
        .collect();
    assert!(
        rules.iter().all(|r| r["alert"].as_str().is_some()),
        "alerting rules only"
    );
    rules
}

/// Every `expr` of the dashboard, wherever it sits in the JSON.
fn dashboard_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/guard.json")).expect("dashboard JSON")
}

#[test]
fn every_metric_alerted_on_or_drawn_is_exported_with_the_labels_queried() {
    let exported = exported();
    let mut exprs: Vec<String> = alert_rules()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let from_alerts = exprs.len();
    dashboard_exprs(&dashboard(), &mut exprs);
    assert!(
        exprs.len() > from_alerts + 10,
        "the dashboard queries: {exprs:?}"
    );
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for (name, labels) in selectors(expr) {
            let Some(known) = exported.get(&name) else {
                panic!("{name} is not exported by the guard or a gateway: {expr}");
            };
            for label in labels {
                assert!(
                    known.contains(&label) || label == "job" || label == "instance",
                    "{name} has no label {label} (it has {known:?}): {expr}"
                );
            }
            used.insert(name);
        }
    }
    // The dashboard draws every family but the guard's own bookkeeping.
    let undrawn: Vec<&String> = exported
        .keys()
        .filter(|n| !used.contains(*n) && !n.ends_with("_count"))
        .filter(|n| !["guard_paused_scopes"].contains(&n.as_str()))
        .collect();
    assert!(
        undrawn.is_empty(),
        "metrics no panel or alert shows: {undrawn:?}"
    );
}

#[test]
fn the_selector_scan_sees_names_and_labels_but_not_strings() {
    let found = selectors(
        r#"sum by (job) (rate(guard_x_total{job="guard",kind=~"gate_y|z"}[5m])) or gate_z"#,
    );
    assert_eq!(
        found,
        [
            (
                "guard_x_total".to_owned(),
                vec!["job".to_owned(), "kind".to_owned()]
            ),
            ("gate_z".to_owned(), vec![]),
        ]
    );
}

/// GitHub's anchors of the headings of a Markdown file.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_has_a_severity_a_playbook_and_tests_that_fire_and_stay_quiet() {
    let playbooks = anchors(&read("docs/OPERATIONS.md"));
    assert!(playbooks.contains("guard-down") && playbooks.contains("alerts"));
    let tests = yaml("deploy/prometheus/alerts.test.yml");
    assert_eq!(strings(&tests["rule_files"]), ["alerts.yml"]);
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for test in tests["tests"].as_vec().expect("tests") {
        for case in test["alert_rule_test"].as_vec().expect("alert_rule_test") {
            let name = case["alertname"].as_str().unwrap().to_owned();
            let fires = !case["exp_alerts"].as_vec().expect("exp_alerts").is_empty();
            let entry = cases.entry(name).or_default();
            if fires {
                entry.0 += 1
            } else {
                entry.1 += 1
            }
        }
    }
    let rules = alert_rules();
    let operations = read("docs/OPERATIONS.md");
    for rule in &rules {
        let name = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?}"
        );
        let runbook = rule["annotations"]["runbook"].as_str().unwrap_or_default();
        let anchor = runbook
            .strip_prefix("docs/OPERATIONS.md#")
            .unwrap_or_else(|| {
                panic!("{name}: runbook {runbook:?} is not a link into docs/OPERATIONS.md")
            });
        assert!(
            playbooks.contains(anchor),
            "{name}: no heading #{anchor} in docs/OPERATIONS.md"
        );
        assert!(
            !rule["annotations"]["summary"].is_badvalue(),
            "{name}: no summary"
        );
        assert!(
            operations.contains(&format!("| `{name}` |")),
            "{name} is not in the Alerts table"
        );
        let (fire, quiet) = cases.get(name).copied().unwrap_or_default();
        assert!(
            fire > 0 && quiet > 0,
            "{name}: {fire} firing and {quiet} quiet test cases"
        );
    }
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for tested in cases.keys() {
        assert!(
            names.contains(tested.as_str()),
            "tests of an unknown alert {tested}"
        );
    }
}

#[test]
fn the_dashboard_is_provisioned_and_picks_its_prometheus_from_a_variable() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "noctria-guard");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {panel}"
        );
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{grid}"
        );
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(vars
        .iter()
        .any(|v| v["name"] == "datasource" && v["query"] == "prometheus"));
    // Grafana reads the dashboards where compose mounts them, and Prometheus by the
    // compose service's name.
    let providers = yaml("deploy/grafana/provisioning/dashboards/noctria-guard.yml");
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let compose = yaml("docker/compose.yml");
    let grafana = strings(&compose["services"]["grafana"]["volumes"]);
    assert!(
        grafana.contains(&format!("../deploy/grafana/dashboards:{path}:ro")),
        "{grafana:?}"
    );
    assert!(
        grafana.contains(&"../deploy/grafana/provisioning:/etc/grafana/provisioning:ro".to_owned())
    );
    let sources = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        sources["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
}

#[test]
fn the_monitoring_services_are_optional_and_scrape_the_guard_and_the_gateway() {
    let compose = yaml("docker/compose.yml");
    let services = &compose["services"];
    for name in ["prometheus", "grafana"] {
        assert_eq!(
            strings(&services[name]["profiles"]),
            ["monitoring"],
            "{name}"
        );
    }
    let prometheus = &services["prometheus"];
    assert!(strings(&prometheus["volumes"])
        .contains(&"../deploy/prometheus:/etc/prometheus:ro".to_owned()));
    assert!(strings(&prometheus["command"])
        .contains(&"--config.file=/etc/prometheus/prometheus.yml".to_owned()));
    let config = yaml("deploy/prometheus/prometheus.yml");
    for file in strings(&config["rule_files"]) {
        assert!(
            root().join("deploy/prometheus").join(&file).exists(),
            "rule file {file}"
        );
    }
    let mut targets = BTreeMap::new();
    for job in config["scrape_configs"].as_vec().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_owned();
        targets.insert(name, strings(&job["static_configs"][0]["targets"]));
    }
    // The guard's and the gateway's HTTP ports, as compose gives them.
    let listen = services["guard"]["environment"]["GUARD_HTTP_LISTEN"]
        .as_str()
        .unwrap();
    let port = listen.rsplit(':').next().unwrap();
    assert_eq!(targets["guard"], [format!("guard:{port}")]);
    let gateway = strings(&services["gateway"]["command"]);
    let at = gateway.iter().position(|a| a == "--http-listen").unwrap();
    let port = gateway[at + 1].rsplit(':').next().unwrap();
    assert_eq!(targets["gateway"], [format!("gateway:{port}")]);
    // The alerts select the same job names.
    for rule in alert_rules() {
        let expr = rule["expr"].as_str().unwrap();
        assert!(
            expr.contains("job=\"guard\"") || expr.contains("job=\"gateway\""),
            "{expr}"
        );
    }
}
