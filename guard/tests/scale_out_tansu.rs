//! Scale-out on a real broker: three `guard run --scale-out` instances share
//! three-partition inputs through their consumer groups; one is killed with
//! `kill -9`; the others take its partitions (and the aggregation, if it had it), and
//! the commands published equal `guard replay` of the same input.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use guard::decode::decode_envelope;
use guard::engine::{Engine, EngineOptions};
use guard::message::{Decision, GuardCommand, Input, Scope};
use guard::policy::Policy;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const STRATEGIES: [&str; 9] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
];

/// A mixed day over nine strategies: fills (breaches, losses), operators' pauses and
/// resumes, Noctus risk events, adoptions, an invalid line now and then.
fn day(n: usize) -> Vec<String> {
    let mut seed: u64 = 0x5ca1e;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let base = 1_754_870_400_000i64 + 3_600_000; // Monday 01:00 UTC, far from maintenance
    let ts = |ms: i64| guard::time::Timestamp::from_millis(ms).to_string();
    (0..n)
        .map(|i| {
            let t = ts(base + i as i64 * 15_000);
            let s = STRATEGIES[next(STRATEGIES.len() as u64) as usize];
            match next(40) {
                0 => format!(r#"{{"stream":"ops_command","event":{{"command_id":"ops-{i}","action":"resume","scope":{{"kind":"global"}},"operator":"oncall","ts":"{t}"}}}}"#),
                1 => format!(r#"{{"stream":"ops_command","event":{{"command_id":"ops-{i}","action":"resume","scope":{{"kind":"strategy","strategy_id":"{s}"}},"operator":"oncall","ts":"{t}"}}}}"#),
                2 => format!(r#"{{"stream":"ops_command","event":{{"command_id":"ops-{i}","action":"pause","scope":{{"kind":"strategy","strategy_id":"{s}"}},"operator":"oncall","ts":"{t}"}}}}"#),
                3 => format!(r#"{{"stream":"risk_event","event":{{"event_id":"n-{i}","source":"noctus","kind":"drawdown","severity":"critical","scope":{{"kind":"strategy","strategy_id":"{s}"}},"ts":"{t}"}}}}"#),
                4 => format!(r#"{{"stream":"strategy_release","event":{{"strategy_id":"{s}","version":"v{i}","adopted_at":"{t}"}}}}"#),
                5 => r#"{"stream":"exec_result","event":{"fill_id":"bad","qty":"1"}}"#.to_owned(),
                _ => {
                    let bps = [1.0, 3.0, 7.0, 12.0][next(4) as usize];
                    let pnl = [-5.0, -1.0, 0.0, 4.0][next(4) as usize];
                    let fill_price = 100.0 * (1.0 + bps / 10_000.0);
                    format!(r#"{{"stream":"exec_result","event":{{"fill_id":"f-{i}","strategy_id":"{s}","symbol":"7203.T","side":"buy","qty":100,"expected_price":100.0,"fill_price":{fill_price},"realized_pnl":{pnl},"ts":"{t}"}}}}"#)
                }
            }
        })
        .collect()
}

/// For each line, the ids of the decisions the single guard makes when applying it.
fn replay_by_line(lines: &[String]) -> (Vec<Vec<String>>, Vec<GuardCommand>) {
    let mut engine = Engine::new(Policy::default(), EngineOptions::default());
    let mut commands = Vec::new();
    let ids = lines
        .iter()
        .map(|line| match decode_envelope(line.as_bytes()) {
            Ok(input) => engine
                .apply(&input)
                .decisions
                .into_iter()
                .map(|d| {
                    if let Decision::GuardCommand(c) = &d {
                        commands.push(c.clone());
                    }
                    d.id().to_owned()
                })
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    (ids, commands)
}

/// Collects every decision id published on the output topics (all partitions).
struct Watcher {
    consumer: BaseConsumer,
    seen: BTreeSet<String>,
    commands: Vec<GuardCommand>,
    command_topic: String,
}

impl Watcher {
    fn new(brokers: &str, topics: &[String], partitions: i32) -> Watcher {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "scale-out-watcher")
            .set("fetch.wait.max.ms", "5")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&tpl).unwrap();
        Watcher {
            consumer,
            seen: BTreeSet::new(),
            commands: Vec::new(),
            command_topic: topics[0].clone(),
        }
    }

    fn poll(&mut self) {
        while let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(20)) {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if let Some(id) = v["command_id"].as_str().or(v["event_id"].as_str()) {
                self.seen.insert(id.to_owned());
            }
            if m.topic() == self.command_topic {
                self.commands.push(serde_json::from_value(v).unwrap());
            }
        }
    }

    fn wait_for(&mut self, ids: &[String], limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        while !ids.iter().all(|id| self.seen.contains(id)) {
            assert!(Instant::now() < deadline, "{what}: {ids:?} not published");
            self.poll();
        }
    }
}

fn key_of(line: &str) -> Option<(String, String)> {
    let input = decode_envelope(line.as_bytes()).ok();
    let envelope: serde_json::Value = serde_json::from_str(line).unwrap();
    let stream = envelope["stream"].as_str().unwrap().to_owned();
    let key = match input {
        Some(Input::Fill(f)) => f.strategy_id,
        Some(Input::Release(r)) => r.strategy_id,
        Some(Input::Ops(o)) => scope_key(&o.scope),
        Some(Input::RiskEvent(e)) => scope_key(&e.scope),
        None => "invalid".to_owned(),
    };
    Some((stream, key))
}

fn lines_of(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn scope_key(scope: &Scope) -> String {
    match scope {
        Scope::Global => "global".into(),
        Scope::Strategy { strategy_id } => strategy_id.clone(),
    }
}

/// Partitions named in `log`'s "partition assigned" lines after its first `skip`
/// lines.
fn assigned(log: &std::path::Path, skip: usize) -> BTreeSet<i64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .skip(skip)
        .filter(|l| l.contains("partition assigned"))
        .filter_map(|l| {
            let at = l.find("partition")? + "partition".len();
            let rest = &l[at..];
            let eq = rest.find("partition")?;
            rest[eq..]
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn three_instances_share_the_partitions_and_survive_a_kill() {
    let dir = scratch("scaleout");
    let tansu = Tansu::start(&dir);
    let prefix = "so.";
    let out = guard_cli(&[
        "topics",
        "--brokers",
        &tansu.brokers,
        "--prefix",
        prefix,
        "--partitions",
        "3",
        "--retention",
        "1d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let logs: Vec<_> = (0..3).map(|i| dir.join(format!("guard-{i}.log"))).collect();
    let mut instances: Vec<Option<GuardProcess>> = (0..3)
        .map(|i| {
            Some(GuardProcess::spawn_with(
                &tansu.brokers,
                &dir.join(format!("state-{i}")),
                prefix,
                &[("RUST_LOG", "info")],
                &logs[i],
                &["--scale-out", "--log-format", "json"],
            ))
        })
        .collect();
    // The groups settle: every instance owns a partition.
    let deadline = Instant::now() + Duration::from_secs(90);
    while logs.iter().any(|l| assigned(l, 0).is_empty()) {
        assert!(Instant::now() < deadline, "the worker group did not settle");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));

    let mut lines = day(360);
    // Last, unpaced: a trip and an operator's resume sent 3 ms after it. The aggregator
    // holds the resume until every worker has reported applying it (so the trip, sent
    // before, is in) and places it after the trip, as the single guard does. Whether
    // the race would go wrong without that depends on timing, so this exercises the
    // path rather than proving it.
    let race_from = lines.len() + 1;
    let t0 = 1_754_870_400_000i64 + 3_600_000 + lines.len() as i64 * 15_000;
    let ts = |ms: i64| guard::time::Timestamp::from_millis(ms).to_string();
    lines.push(format!(r#"{{"stream":"ops_command","event":{{"command_id":"race-resume-0","action":"resume","scope":{{"kind":"global"}},"operator":"oncall","ts":"{}"}}}}"#, ts(t0)));
    for k in 1..=3 {
        lines.push(format!(r#"{{"stream":"exec_result","event":{{"fill_id":"race-{k}","strategy_id":"kappa","symbol":"7203.T","side":"buy","qty":100,"expected_price":100.0,"fill_price":100.12,"ts":"{}"}}}}"#, ts(t0 + k * 1_000)));
    }
    lines.push(format!(r#"{{"stream":"ops_command","event":{{"command_id":"race-resume-1","action":"resume","scope":{{"kind":"global"}},"operator":"oncall","ts":"{}"}}}}"#, ts(t0 + 5_000)));
    let (by_line, expected) = replay_by_line(&lines);
    let mut watcher = Watcher::new(
        &tansu.brokers,
        &[
            format!("{prefix}guard_command"),
            format!("{prefix}risk_event"),
        ],
        3,
    );
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &tansu.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let kill_at = lines.len() / 3;
    let mut killed: Option<(usize, BTreeSet<i64>, bool, Vec<usize>)> = None;
    let started = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        if i == kill_at {
            let victim = 0;
            let before = lines_of(&logs[victim]);
            // What it owns now: the partitions of its last assignments, the aggregation
            // if it took it and never gave it up.
            let last_revoke = before
                .iter()
                .rposition(|l| l.contains("partition revoked"))
                .map_or(0, |at| at + 1);
            let owned = assigned(&logs[victim], last_revoke);
            let aggregating = before
                .iter()
                .rposition(|l| l.contains("now aggregates"))
                .is_some_and(|at| !before[at..].iter().any(|l| l.contains("aggregation moved")));
            let marks = logs.iter().map(|l| lines_of(l).len()).collect();
            instances[victim].take().unwrap().kill9();
            killed = Some((victim, owned, aggregating, marks));
        }
        let (stream, key) = key_of(line).unwrap();
        let envelope: serde_json::Value = serde_json::from_str(line).unwrap();
        let payload = envelope["event"].to_string();
        producer
            .send(
                BaseRecord::to(&format!("{prefix}{stream}"))
                    .key(&key)
                    .payload(&payload),
            )
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        // Wait for what the single guard decides on this line before the next, so the
        // aggregator sees trips and orders in the order they were produced.
        if !by_line[i].is_empty() && i < race_from {
            watcher.wait_for(&by_line[i], Duration::from_secs(120), &format!("line {i}"));
        }
    }
    let race: Vec<String> = by_line[race_from..].concat();
    assert!(
        race.len() >= 3,
        "the race should pause and resume: {race:?}"
    );
    watcher.wait_for(&race, Duration::from_secs(60), "the race");
    std::thread::sleep(Duration::from_millis(500));
    watcher.poll();
    let (victim, owned, aggregating, marks) = killed.unwrap();
    // The partitions the killed instance owned were taken over by the others, after
    // the kill — and the aggregation, if it had it.
    assert!(!owned.is_empty());
    let survivors: BTreeSet<i64> = (0..3)
        .filter(|i| *i != victim)
        .flat_map(|i| assigned(&logs[i], marks[i]))
        .collect();
    assert!(
        owned.is_subset(&survivors),
        "partitions {owned:?} of the killed instance not taken over ({survivors:?})"
    );
    if aggregating {
        assert!(
            (0..3)
                .filter(|i| *i != victim)
                .any(|i| lines_of(&logs[i])[marks[i]..]
                    .iter()
                    .any(|l| l.contains("now aggregates"))),
            "the aggregation did not move"
        );
    }
    let mut got = distinct_decisions(&watcher.commands);
    got.sort();
    let mut wanted: Vec<String> = expected.iter().map(judged).collect();
    wanted.sort();
    assert_eq!(got, wanted);
    let per_stream: BTreeMap<String, usize> = lines.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(key_of(l).unwrap().0).or_default() += 1;
        m
    });
    eprintln!(
        "scale-out: {} messages {per_stream:?} over 3 partitions, 3 instances, instance {victim} killed (it owned {owned:?}, aggregating: {aggregating}); {} commands expected, {} published, equal; {:.0} s",
        lines.len(),
        wanted.len(),
        watcher.commands.len(),
        started.elapsed().as_secs_f64()
    );
}
