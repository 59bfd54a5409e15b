//! `guard explain` against a running guard: on librdkafka's mock cluster (the real
//! Kafka protocol, in process), the guard decides a golden day; its `GET /explain/ID`
//! must say for every decision what `guard explain ID --input` says over the same
//! messages as a file, with each message's place in its topic instead of its line.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guard::engine::{ClockMode, Engine, EngineOptions};
use guard::live::evidence::EvidenceLookup;
use guard::live::http::{Auth, HttpState};
use guard::live::{LiveConfig, LiveGuard, MemStore, StatusHandle};
use guard::message::Decision;
use guard::policy::Policy;
use guard::replay::explain::explain_text;
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde_json::Value;

const INPUTS: [&str; 4] = [
    "exec_result",
    "risk_event",
    "strategy_release",
    "ops_command",
];

/// Where each produced message landed.
#[derive(Default)]
struct Landed(Mutex<Vec<i64>>);

impl ClientContext for Landed {}

impl ProducerContext for Landed {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let offset = result.as_ref().map_or(-1, |m| m.offset());
        self.0.lock().unwrap().push(offset);
    }
}

/// The lines of a golden day with the topic of each input line.
fn day(name: &str) -> (Vec<String>, BTreeMap<u64, String>) {
    let path = common::root()
        .join("tests/golden")
        .join(name)
        .join("input.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut topics = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(stream) = value["stream"].as_str().filter(|s| INPUTS.contains(s)) else {
            continue;
        };
        topics.insert(i as u64 + 1, stream.to_owned());
    }
    (lines, topics)
}

/// `guard explain ID --input day.jsonl` as JSON.
fn over_the_file(lines: &[String], id: &str) -> Value {
    let engine = Engine::new(Policy::default(), EngineOptions::default());
    let text = lines.join("\n");
    let explanation = explain_text(engine, id, "day.jsonl", &text).0.unwrap();
    serde_json::to_value(explanation).unwrap()
}

/// The file's explanation with every `{file, line}` as the `{topic, partition,
/// offset}` its message got, and without `decided_at` (the live guard stamps its
/// commands with the wall clock).
fn as_live(value: &mut Value, places: &BTreeMap<u64, (String, i64)>) {
    match value {
        Value::Object(map) => {
            map.remove("decided_at");
            if let (Some(_), Some(line)) = (map.remove("file"), map.remove("line")) {
                let (topic, offset) = &places[&line.as_u64().unwrap()];
                map.insert("topic".into(), topic.clone().into());
                map.insert("partition".into(), 0.into());
                map.insert("offset".into(), (*offset).into());
            }
            map.values_mut().for_each(|v| as_live(v, places));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| as_live(v, places)),
        _ => {}
    }
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::http(&addr.to_string(), "GET", path, &[], "").unwrap()
}

#[test]
fn a_running_guard_explains_each_decision_as_explain_does_over_the_file() {
    let (lines, topics) = day("runbook_day");
    let cluster: MockCluster<'static, _> = MockCluster::new(1).unwrap();
    let dir = common::scratch("explain-live");
    let mut config = LiveConfig::new(cluster.bootstrap_servers(), dir.join("state"));
    config.http_listen = None;
    config.clock = ClockMode::EventTime;
    config.input_fetch_wait = guard::live::kafka::MOCK_INPUT_FETCH_WAIT;
    for topic in config.topics.all() {
        cluster.create_topic(&topic, 1, 1).unwrap();
    }
    let status = StatusHandle::default();
    let mut guard = LiveGuard::start(config.clone(), MemStore::default(), status.clone()).unwrap();
    let producer: BaseProducer<Landed> = guard::live::kafka::producer(&config)
        .create_with_context(Landed::default())
        .unwrap();
    // The guard publishes its own risk events on `risk_event` too: where each input
    // landed is what the producer is told.
    let mut places: BTreeMap<u64, (String, i64)> = BTreeMap::new();
    let mut decisions: Vec<String> = Vec::new();
    for (number, topic) in &topics {
        let line: Value = serde_json::from_str(&lines[*number as usize - 1]).unwrap();
        let payload = serde_json::to_vec(&line["event"]).unwrap();
        // Apart by a millisecond at least: Kafka timestamps order the topics.
        std::thread::sleep(Duration::from_millis(2));
        producer
            .send(BaseRecord::to(topic).key("k").payload(&payload))
            .unwrap();
        producer.flush(Duration::from_secs(5)).unwrap();
        let offset = producer.context().0.lock().unwrap().pop().unwrap();
        assert!(offset >= 0, "{topic}: not delivered");
        places.insert(*number, (topic.clone(), offset));
        let offset = &offset;
        let deadline = Instant::now() + Duration::from_secs(20);
        while guard.next_offset(topic, 0).unwrap_or(0) <= *offset {
            assert!(Instant::now() < deadline, "{topic}@{offset} not read");
            guard.turn(Duration::from_millis(1));
        }
    }
    for (decision, _) in guard::replay::run(
        Engine::new(Policy::default(), EngineOptions::default()),
        lines.iter(),
    )
    .0
    .iter()
    .map(|d: &Decision| (d.id().to_owned(), ()))
    {
        decisions.push(decision);
    }
    assert!(decisions.len() >= 6, "the day decides: {decisions:?}");

    // The HTTP face, as `guard run` serves it.
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let state = HttpState {
        status: status.clone(),
        producer: None,
        ops_topic: config.topics.ops_command.clone(),
        auth: Arc::new(std::sync::RwLock::new(Auth::Disabled)),
        evidence: Some(Arc::new(EvidenceLookup::new(
            &config,
            config.policy.state.horizon,
        ))),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.spawn(guard::live::http::serve(addr, state));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the HTTP server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut looked_up = 0;
    for id in &decisions {
        let (code, body) = http_get(addr, &format!("/explain/{id}"));
        assert_eq!(code, 200, "{id}: {body}");
        let live: Value = serde_json::from_str(&body).unwrap();
        let mut live_plain = live.clone();
        as_live(&mut live_plain, &BTreeMap::new());
        let mut expected = over_the_file(&lines, id);
        as_live(&mut expected, &places);
        assert_eq!(live_plain, expected, "{id}");
        looked_up += live["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["offset"].as_i64() < live["step"]["offset"].as_i64())
            .count();
    }
    assert!(
        looked_up >= 2,
        "earlier evidence was looked up in the topics"
    );

    // The human text, from the endpoint and through `guard explain --http`.
    let pause = &decisions[0];
    let (code, text) = http_get(addr, &format!("/explain/{pause}?format=text"));
    assert_eq!(code, 200);
    assert!(text.contains("exec_result/0@"), "{text}");
    // The runbook shows this very output.
    let runbook = std::fs::read_to_string(common::root().join("docs/OPERATIONS.md")).unwrap();
    let shown = runbook
        .split(&format!(
            "$ guard explain {pause} --http http://127.0.0.1:8686\n"
        ))
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/OPERATIONS.md shows guard explain --http");
    assert_eq!(shown, text, "docs/OPERATIONS.md shows another output");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(["explain", pause, "--http", &format!("http://{addr}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);

    // An id it does not keep: 404 naming what it keeps, and exit 1 from the CLI.
    let (code, body) = http_get(addr, &format!("/explain/{}x", &pause[..10]));
    assert_eq!(code, 404, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["kept"].as_u64(), Some(decisions.len() as u64));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guard"))
        .args([
            "explain",
            "cmd-nothing",
            "--http",
            &format!("http://{addr}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no decision"));

    // Evidence the topics do not hold is said to be so, with where it was looked for.
    let mut case = status.cases().get(pause).unwrap();
    case.unresolved = vec!["f-not-there".into()];
    case.explanation.evidence[0].id = "f-not-there".into();
    let lookup = EvidenceLookup::new(&config, config.policy.state.horizon);
    lookup.complete(&mut case);
    assert!(case.unresolved.is_empty());
    let unfound = serde_json::to_value(&case.explanation.evidence[0]).unwrap();
    assert_eq!(unfound["from"], "unfound", "{unfound}");
    let searched = unfound["searched"].as_str().unwrap();
    for topic in ["exec_result", "risk_event", "ops_command"] {
        assert!(searched.contains(topic), "{searched}");
    }
    drop(guard);
}
