//! Crash loop: the live guard on tansu over a long mixed stream while it is
//! `kill -9`ed at random instants and restarted each time. At the end the published
//! commands equal `guard replay`'s for the same input (repeats only as exact
//! duplicates), and the final state — windows, streaks, paused scopes, the number of
//! distinct messages applied — equals the replay's: nothing lost, nothing applied
//! twice, nothing skipped.
//!
//! Size: GUARD_CRASH_MESSAGES (default 50000) and GUARD_CRASH_KILLS (default 20).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::producer::Producer;

/// Next offset of `topic` the running guard's state covers; `None` while it is
/// starting or on standby.
fn applied(guard: &GuardProcess, topic: &str) -> Option<i64> {
    let (code, body) = http(&guard.http, "GET", "/state", &[], "").ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["offsets"][format!("{topic}/0")].as_i64()
}

#[test]
fn crash_loop_loses_nothing_and_applies_nothing_twice() {
    let n = env_or::<usize>("GUARD_CRASH_MESSAGES", 50_000);
    let kills_wanted = env_or::<usize>("GUARD_CRASH_KILLS", 20);
    let dir = scratch("crashloop");
    let tansu = Tansu::start(&dir);
    let prefix = "cl.";
    tansu.create_guard_topics(prefix);
    let lines = stream(n, 1000);
    let file = dir.join("input.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (expected, replay_engine) = replay(&lines);
    let all = messages(&file);

    // Runs of consecutive messages of one topic: a run is produced at once and the
    // next run waits until the guard has applied it, so the guard sees the streams in
    // exactly the file's order (four topics have no order between them otherwise).
    let mut runs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (stream_name, payload) in all {
        let topic = format!("{prefix}{stream_name}");
        match runs.last_mut() {
            Some((t, batch)) if *t == topic => batch.push(payload),
            _ => runs.push((topic, vec![payload])),
        }
    }
    // Kill points spread over the runs, at a random delay after the run was sent.
    let mut seed: u64 = 0x5eed;
    let mut rand = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m.max(1)
    };
    let mut kill_at: Vec<usize> = (0..kills_wanted)
        .map(|k| {
            (k * runs.len() / kills_wanted.max(1))
                + rand((runs.len() / kills_wanted.max(1)).max(1) as u64) as usize
        })
        .collect();
    kill_at.sort_unstable();

    let state_dir = dir.join("state");
    let log = dir.join("guard.log");
    let (producer, delivered) = offset_producer(&tansu.brokers);
    let mut guard = GuardProcess::start(&tansu.brokers, &state_dir, prefix, &[], &log);
    let mut sent: BTreeMap<String, i64> = BTreeMap::new();
    let mut kills = 0;
    let started = Instant::now();
    for (i, (topic, batch)) in runs.iter().enumerate() {
        for payload in batch {
            producer
                .send(
                    rdkafka::producer::BaseRecord::to(topic)
                        .key("k")
                        .payload(payload),
                )
                .unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        // The next offset after our own last message (the guard's risk events share
        // the risk_event topic, so counting our messages would not do).
        let next = delivered.0.lock().unwrap()[topic] + 1;
        sent.insert(topic.clone(), next);
        if kill_at.contains(&i) {
            std::thread::sleep(Duration::from_millis(rand(40)));
            guard.kill9();
            kills += 1;
            guard = GuardProcess::spawn(&tansu.brokers, &state_dir, prefix, &[], &log);
        }
        let want = sent[topic];
        let deadline = Instant::now() + Duration::from_secs(120);
        while applied(&guard, topic).unwrap_or(-1) < want {
            assert!(
                Instant::now() < deadline,
                "the guard did not apply {topic} up to {want} (log {})",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    let published = tansu.published_commands(prefix);
    // The set of decisions (the measure): a restart re-publishes what its
    // checkpoint had not acknowledged, so commands of different scopes may reach the
    // topic in another order than replay's.
    let mut distinct = distinct_decisions(&published);
    distinct.sort();
    let mut wanted: Vec<String> = expected.iter().map(judged).collect();
    wanted.sort();
    assert_eq!(distinct.len(), wanted.len(), "{kills} kills");
    assert_eq!(distinct, wanted, "after {kills} kill -9s");
    assert_state_equals_replay(&guard, &replay_engine, &format!("after {kills} kills"));
    assert_eq!(kills, kills_wanted);
    eprintln!(
        "crash loop: {} messages ({} runs), {kills} kill -9s, {} commands expected, {} published (duplicates {}), {:.0} s",
        lines.len(),
        runs.len(),
        expected.len(),
        published.len(),
        published.len() - expected.len(),
        started.elapsed().as_secs_f64()
    );
}
