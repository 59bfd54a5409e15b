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

/// For each line, the ids of the decisions the single guard makes when applying it
/// (per line, which `guard::replay::run` does not tell).
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
        Some(Input::Ack(a)) => a.command_id,
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

/// The guard's topics under `prefix`, three partitions each (`guard topics`).
fn create_scaled_topics(tansu: &Tansu, prefix: &str) {
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
}

#[test]
fn three_instances_share_the_partitions_and_survive_a_kill() {
    let dir = scratch("scaleout");
    let tansu = Tansu::start(&dir);
    let prefix = "so.";
    create_scaled_topics(&tansu, prefix);

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

/// The generator for `seed`, each seed its own sequence (splitmix64 of the seed).
fn rng(seed: u64) -> Rng {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Rng((z ^ (z >> 31)) | 1)
}

/// Fills only, over `strategies` strategies (`s00`, `s01`, …): losing streaks and
/// slippage breaches now and then (rare, so a strategy's first trip may come anywhere
/// in the run), one fill in twenty up to two minutes late, one message in
/// twenty-five a repeat of a recent fill (a duplicate delivery: same id and body).
/// One second of event time per message.
fn flowing_fills(n: usize, strategies: usize, seed: u64) -> Vec<String> {
    let mut rng = rng(seed);
    let base = 1_754_870_400_000i64 + 3_600_000; // Monday 01:00 UTC, far from maintenance
    let ts = |ms: i64| guard::time::Timestamp::from_millis(ms).to_string();
    let mut lines: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        if i > 10 && rng.below(25) == 0 {
            let back = 1 + rng.below(200.min(i as u64)) as usize;
            let repeat = lines[i - back].clone();
            lines.push(repeat);
            continue;
        }
        let s = rng.below(strategies as u64);
        let bps = match rng.below(100) {
            0..=1 => 9.0,
            2..=30 => 4.0,
            _ => 1.0,
        };
        let pnl = match rng.below(10) {
            0..=2 => r#","realized_pnl":-3.0"#,
            3..=5 => r#","realized_pnl":2.0"#,
            _ => "",
        };
        let late = if rng.below(20) == 0 {
            rng.below(120_000) as i64
        } else {
            0
        };
        lines.push(format!(
            r#"{{"stream":"exec_result","event":{{"fill_id":"f{i:06}","strategy_id":"s{s:02}","symbol":"7203.T","side":"buy","qty":100,"expected_price":100.0,"fill_price":100.0,"slippage_bps":{bps}{pnl},"ts":"{}"}}}}"#,
            ts(base + i as i64 * 1_000 - late)
        ));
    }
    lines
}

/// A guard risk event as the failure messages show it.
fn event_line(e: &serde_json::Value) -> String {
    let evidence: Vec<&str> = e["evidence"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    format!(
        "{} {} {} [{}]",
        e["event_id"].as_str().unwrap_or("?"),
        e["kind"].as_str().unwrap_or("?"),
        e["ts"].as_str().unwrap_or("?"),
        evidence.join(",")
    )
}

/// Everything the guards published on `guard_command` and `risk_event` (every
/// partition, from the beginning), per scope in the order of its partition.
struct Outputs {
    consumer: BaseConsumer,
    command_topic: String,
    commands: BTreeMap<String, Vec<GuardCommand>>,
    /// The guard's own risk events (source "guard"), as [`event_line`]s.
    events: BTreeMap<String, Vec<String>>,
    event_ids: BTreeSet<String>,
}

impl Outputs {
    fn new(brokers: &str, prefix: &str, partitions: i32) -> Outputs {
        let topics = ["guard_command", "risk_event"].map(|t| format!("{prefix}{t}"));
        let assigned: Vec<(&str, i32)> = topics
            .iter()
            .flat_map(|t| (0..partitions).map(move |p| (t.as_str(), p)))
            .collect();
        let consumer = reader_from_start(brokers, &assigned);
        Outputs {
            consumer,
            command_topic: format!("{prefix}guard_command"),
            commands: BTreeMap::new(),
            events: BTreeMap::new(),
            event_ids: BTreeSet::new(),
        }
    }

    fn poll(&mut self) {
        while let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(10)) {
            let payload = m.payload().unwrap_or_default();
            if m.topic() == self.command_topic {
                let c: GuardCommand = serde_json::from_slice(payload).unwrap();
                self.commands
                    .entry(c.scope.to_string())
                    .or_default()
                    .push(c);
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
            if v["source"] == "guard" {
                let scope: Scope = serde_json::from_value(v["scope"].clone()).unwrap();
                self.events
                    .entry(scope.to_string())
                    .or_default()
                    .push(event_line(&v));
                self.event_ids
                    .insert(v["event_id"].as_str().unwrap_or_default().to_owned());
            }
        }
    }

    fn has_all(&self, commands: &BTreeSet<String>, events: &BTreeSet<String>) -> bool {
        let published: BTreeSet<&String> = self
            .commands
            .values()
            .flatten()
            .map(|c| &c.command_id)
            .collect();
        commands.iter().all(|id| published.contains(id)) && events.is_subset(&self.event_ids)
    }
}

/// Every record of the one partition of `topic`: offset, Kafka timestamp, payload.
fn dump_topic(brokers: &str, topic: &str) -> String {
    read_records(brokers, topic, 0, Duration::from_secs(2))
        .into_iter()
        .map(|(offset, ts, payload)| {
            format!(
                "{offset} {} {}\n",
                ts.unwrap_or(0),
                String::from_utf8_lossy(&payload)
            )
        })
        .collect()
}

/// Issue 9, item 3: fills flow while instances die. Three `--scale-out` instances on
/// three-partition inputs; fills only (late ones, repeats) produced at a steady rate
/// while they run; `kill -9`s of random instances at seeded random instants, each
/// restarted at once (its old group member lingers until the session timeout, so a
/// partition may wait for it). Once the outputs are complete (or a bound passes) they
/// must be replay's, on the same input and policy (CONTRACT §1.6): the same distinct
/// commands, per scope first occurrences in replay's order and the last record of each
/// scope replay's last command for it; every risk event replay raises, none other, per
/// scope first occurrences in replay's order.
///
/// The fills start as the instances start, as a Do layer does not wait for the guard:
/// workers that join, take over or come back later catch up in bursts, several trips
/// at once, and a `kill -9` then often finds trips still unacknowledged in a worker's
/// outbox. On the code of issue 9 the default seed failed in two runs of three (a later
/// trip re-published first by a restarted worker pauses the scope instead of the
/// first one); seeds 7 and 10 failed too (risk events out of order).
///
/// Knobs (environment): GUARD_FLOW_FILLS (8000), GUARD_FLOW_RATE (fills a second, 250),
/// GUARD_FLOW_KILLS (6), GUARD_FLOW_SEED (fills and kills, 6), GUARD_FLOW_STRATEGIES (9),
/// GUARD_FLOW_SETTLE (seconds the outputs may take to complete after the last fill,
/// 60), GUARD_FLOW_WAIT_GROUPS (0; 1: produce only once every instance owns a
/// partition and one aggregates). About 45 s when it passes, 95 s when it fails.
#[test]
fn scale_out_keeps_every_trip_when_instances_die_while_fills_flow() {
    scale_out_flow("flowing-scale-out", "");
}

/// The same with a ten-minute state horizon over the fills' two hours of event time:
/// workers and the aggregator forget as replay does while they die, and delete their
/// order records themselves, those an earlier life left included (its checkpoint
/// carries them). Repeats reach back at most 200 fills and late ones two minutes, so
/// every repeat stays within the horizon (beyond it replay would decide again).
#[test]
fn scale_out_with_a_short_horizon_deletes_order_records_while_instances_die() {
    scale_out_flow(
        "flowing-scale-out-horizon",
        "\n[state]\nhorizon = \"10m\"\n",
    );
}

/// The flowing cases run one at a time: each has a broker and three guards.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One run of the flowing scale-out test: its scratch directory's name, and what is
/// appended to the policy.
fn scale_out_flow(name: &str, policy_tail: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let n = env_or::<u64>("GUARD_FLOW_FILLS", 8_000).max(100) as usize;
    let rate = env_or::<u64>("GUARD_FLOW_RATE", 250).max(1) as f64;
    let kills = env_or::<u64>("GUARD_FLOW_KILLS", 6) as usize;
    let seed = env_or::<u64>("GUARD_FLOW_SEED", 6);
    let strategies = env_or::<u64>("GUARD_FLOW_STRATEGIES", 9).clamp(1, 100) as usize;
    let settle = Duration::from_secs(env_or::<u64>("GUARD_FLOW_SETTLE", 60));
    let wait_groups = env_or::<u64>("GUARD_FLOW_WAIT_GROUPS", 0) == 1;
    let started = Instant::now();

    let dir = scratch(name);
    let tansu = Tansu::start(&dir);
    let prefix = "fso.";
    create_scaled_topics(&tansu, prefix);
    // Trips pause their strategy, so every strategy is a scope of its own.
    let policy_text = format!(
        "[slippage]\npause = \"group\"\n\n[losing_streak]\npause = \"group\"\n{policy_tail}"
    );
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, &policy_text).unwrap();
    let policy = Policy::from_toml(&policy_text).unwrap();
    let horizon = policy.state.horizon;

    let lines = flowing_fills(n, strategies, seed);
    std::fs::write(dir.join("input.jsonl"), lines.join("\n")).unwrap();
    let engine = Engine::new(policy, EngineOptions::default());
    let (decisions, _, summary) = guard::replay::run(engine, &lines);
    assert_eq!(summary.invalid, 0, "the generated fills are valid");
    let mut want: BTreeMap<String, Vec<GuardCommand>> = BTreeMap::new();
    let mut want_events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in decisions {
        match d {
            Decision::GuardCommand(c) => want.entry(c.scope.to_string()).or_default().push(c),
            Decision::RiskEvent(e) => want_events
                .entry(e.scope.to_string())
                .or_default()
                .push(event_line(&serde_json::to_value(&e).unwrap())),
        }
    }
    let want_ids: BTreeSet<String> = want
        .values()
        .flatten()
        .map(|c| c.command_id.clone())
        .collect();
    let id_of = |line: &String| line.split(' ').next().unwrap_or_default().to_owned();
    let want_event_ids: BTreeSet<String> = want_events.values().flatten().map(id_of).collect();

    let spawn = |i: usize| {
        GuardProcess::spawn_with(
            &tansu.brokers,
            &dir.join(format!("state-{i}")),
            prefix,
            &[],
            &dir.join(format!("guard-{i}.log")),
            &[
                "--scale-out",
                "--log-format",
                "json",
                "--policy",
                policy_file.to_str().unwrap(),
            ],
        )
    };
    let logs: Vec<_> = (0..3).map(|i| dir.join(format!("guard-{i}.log"))).collect();
    let mut instances: Vec<GuardProcess> = (0..3).map(spawn).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let settled = || {
        logs.iter().all(|l| !assigned(l, 0).is_empty())
            && logs
                .iter()
                .any(|l| lines_of(l).iter().any(|l| l.contains("now aggregates")))
    };
    while wait_groups && !settled() {
        assert!(Instant::now() < deadline, "the groups did not settle");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut outputs = Outputs::new(&tansu.brokers, prefix, 3);

    // Kill instants (as fill indexes) at random over the run, victims at random.
    let mut rng = rng(!seed);
    let mut plan: Vec<(usize, usize)> = (0..kills)
        .map(|_| {
            (
                n / 50 + rng.below((n - n / 50) as u64) as usize,
                rng.below(3) as usize,
            )
        })
        .collect();
    plan.sort_unstable();
    // Batched, as a Do layer sends at this rate: tansu stops serving a tailing
    // consumer once a partition holds thousands of one-message batches.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &tansu.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "40")
        .create()
        .unwrap();
    let mut done_kills = Vec::new();
    let flow_started = Instant::now();
    let mut next_kill = plan.iter().peekable();
    for (i, line) in lines.iter().enumerate() {
        let due = flow_started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            producer.poll(Duration::ZERO);
            std::thread::sleep(wait);
        }
        while let Some((_, victim)) = next_kill.next_if(|(at, _)| *at <= i) {
            let at = flow_started.elapsed();
            instances.remove(*victim).kill9();
            instances.insert(*victim, spawn(*victim));
            done_kills.push(format!(
                "instance {victim} at fill {i} ({:.1} s)",
                at.as_secs_f64()
            ));
        }
        let envelope: serde_json::Value = serde_json::from_str(line).unwrap();
        let payload = envelope["event"].to_string();
        let key = envelope["event"]["strategy_id"]
            .as_str()
            .unwrap()
            .to_owned();
        producer
            .send(
                BaseRecord::to(&format!("{prefix}exec_result"))
                    .key(&key)
                    .payload(&payload),
            )
            .unwrap();
        if i % 64 == 0 {
            outputs.poll();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let flow_time = flow_started.elapsed();
    let deadline = Instant::now() + settle;
    while !outputs.has_all(&want_ids, &want_event_ids) && Instant::now() < deadline {
        outputs.poll();
    }
    // Repeats from a takeover may still come: look a little longer.
    let grace = Instant::now() + Duration::from_secs(2);
    while Instant::now() < grace {
        outputs.poll();
    }

    let mut failures: Vec<String> = instances
        .iter_mut()
        .enumerate()
        .filter_map(|(i, g)| {
            g.child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| format!("instance {i} exited: {s}"))
        })
        .collect();
    let show = |lines: &[String]| -> String {
        lines
            .iter()
            .map(|l| format!("\n      {l}"))
            .collect::<String>()
    };
    let first_occurrences = |lines: &[String], id: &dyn Fn(&String) -> String| {
        let mut seen = BTreeSet::new();
        lines
            .iter()
            .filter(|l| seen.insert(id(l)))
            .cloned()
            .collect::<Vec<String>>()
    };
    // Commands: per scope, first occurrences in replay's order, a repeated id the same
    // decision, the last record replay's last command.
    let scopes: BTreeSet<&String> = want.keys().chain(outputs.commands.keys()).collect();
    for scope in scopes {
        let wanted: Vec<String> = want.get(scope).into_iter().flatten().map(judged).collect();
        let published: Vec<String> = outputs
            .commands
            .get(scope)
            .into_iter()
            .flatten()
            .map(judged)
            .collect();
        let first = first_occurrences(&published, &id_of);
        let distinct: BTreeSet<&String> = published.iter().collect();
        if distinct.len() != first.len() {
            failures.push(format!(
                "scope {scope}: two different commands share an id:{}",
                show(&published)
            ));
        }
        if first != wanted {
            failures.push(format!(
                "scope {scope}: commands differ from replay's\n    replay:{}\n    published (first occurrences):{}",
                show(&wanted),
                show(&first)
            ));
        } else if published.last() != wanted.last() {
            failures.push(format!(
                "scope {scope}: the last record is not replay's last command\n    replay's last:{}\n    published (every record):{}",
                show(&wanted[wanted.len().saturating_sub(1)..]),
                show(&published)
            ));
        }
    }
    // The aggregator writes every scope's present mode: the last pause-state record of
    // each scope announces replay's last command for it (CONTRACT §1.8).
    let last_state = tansu.last_pause_states(prefix);
    let want_last: BTreeMap<String, String> = want
        .iter()
        .filter_map(|(scope, commands)| Some((scope.clone(), commands.last()?.command_id.clone())))
        .collect();
    if last_state != want_last {
        failures.push(format!(
            "guard_pause_state: the last record per scope is not replay's last command\n    replay: {want_last:?}\n    pause state: {last_state:?}"
        ));
    }
    // Risk events: every one of replay's, no other, per scope in replay's order.
    let missing: Vec<&String> = want_event_ids.difference(&outputs.event_ids).collect();
    let extra: Vec<&String> = outputs.event_ids.difference(&want_event_ids).collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{} of replay's {} risk events not published: {missing:?}",
            missing.len(),
            want_event_ids.len()
        ));
    }
    if !extra.is_empty() {
        failures.push(format!(
            "{} risk events published that replay does not raise: {extra:?}",
            extra.len()
        ));
    }
    let scopes: BTreeSet<&String> = want_events.keys().chain(outputs.events.keys()).collect();
    for scope in scopes {
        let wanted = want_events.get(scope).cloned().unwrap_or_default();
        let published = outputs.events.get(scope).cloned().unwrap_or_default();
        let first = first_occurrences(&published, &id_of);
        if first != wanted {
            failures.push(format!(
                "scope {scope}: risk events out of replay's order\n    replay:{}\n    published (first occurrences):{}",
                show(&wanted),
                show(&first)
            ));
        }
    }
    // With a horizon shorter than the fills' event time, order records were deleted.
    let deleted = tansu
        .tombstoned_keys(&format!("{prefix}guard_state"))
        .iter()
        .filter(|k| k.contains("/order/"))
        .count();
    if horizon < guard::time::Span::from_secs(n as i64) && deleted == 0 {
        failures.push(format!(
            "no order record was deleted, though the fills span {n} s of event time and the horizon is {horizon}"
        ));
    }
    let summary = format!(
        "{n} fills over {strategies} strategies at {rate} /s (seed {seed}), {} kill -9s: {:?}; {} commands and {} risk events expected; {deleted} order records deleted; fills sent in {:.0} s, run {:.0} s; logs in {}",
        done_kills.len(),
        done_kills,
        want_ids.len(),
        want_event_ids.len(),
        flow_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    if !failures.is_empty() {
        // The trips as the aggregator read them, for the post-mortem.
        let facts = dump_topic(&tansu.brokers, &format!("{prefix}guard_facts"));
        std::fs::write(dir.join("guard_facts.txt"), facts).unwrap();
    }
    assert!(
        failures.is_empty(),
        "the scaled-out guards differ from replay\n{}\n{summary} (guard_facts.txt there)",
        failures.join("\n")
    );
    eprintln!("flowing scale-out: equal to replay; {summary}");
}
