//! Test rig for the guard as a process against a real Kafka-protocol broker (tansu,
//! installed by scripts/install-tansu.sh), on free loopback ports.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guard::engine::{Engine, EngineOptions};
use guard::message::{Decision, GuardCommand};
use guard::policy::Policy;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guard-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tansu_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let default = root().join("target/tools/tansu");
    if !default.exists() {
        let status = Command::new("bash")
            .arg(root().join("scripts/install-tansu.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "scripts/install-tansu.sh failed: the tansu broker is needed for this test"
        );
    }
    default
}

/// A tansu broker with in-memory storage, killed on drop.
pub struct Tansu {
    child: Child,
    pub port: u16,
    pub brokers: String,
}

impl Tansu {
    pub fn start(log_dir: &Path) -> Tansu {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(log_dir.join("tansu.log")).unwrap();
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tansu {
            child,
            port,
            brokers: format!("127.0.0.1:{port}"),
        }
    }

    pub fn create_topics(&self, names: &[&str]) {
        for name in names {
            let out = Command::new(tansu_bin())
                .args([
                    "topic",
                    "create",
                    name,
                    "--broker",
                    &format!("tcp://127.0.0.1:{}", self.port),
                    "--partitions",
                    "1",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "topic create {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Creates the guard's topics (CONTRACT §1; not `guard_ack`) under `prefix`.
    pub fn create_guard_topics(&self, prefix: &str) {
        let names: Vec<String> = TOPICS.iter().map(|t| format!("{prefix}{t}")).collect();
        self.create_topics(&names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// The command id of the last `guard_pause_state` record of every scope key under
    /// `prefix` (a compacted read).
    pub fn last_pause_states(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut last = BTreeMap::new();
        for payload in self.read_all(
            &format!("{prefix}guard_pause_state"),
            Duration::from_secs(2),
        ) {
            let state: guard::message::PauseState =
                serde_json::from_slice(&payload).expect("pause state records parse");
            last.insert(state.scope.to_string(), state.command_id);
        }
        last
    }

    /// Every `guard_command` published under `prefix`, in topic order.
    pub fn published_commands(&self, prefix: &str) -> Vec<GuardCommand> {
        self.read_all(&format!("{prefix}guard_command"), Duration::from_secs(3))
            .iter()
            .map(|p| serde_json::from_slice(p).expect("commands are JSON"))
            .collect()
    }

    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "0")
            .set("enable.idempotence", "true")
            .create()
            .unwrap()
    }

    pub fn send(&self, producer: &BaseProducer, topic: &str, payload: &[u8]) {
        producer
            .send(BaseRecord::to(topic).key("k").payload(payload))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// Every message of a one-partition topic, read until `idle` passes with nothing new.
    /// Every guard command on one partition of `topic`.
    pub fn read_partition(&self, topic: &str, partition: i32) -> Vec<GuardCommand> {
        self.read_from(topic, partition, Duration::from_secs(1))
            .iter()
            .map(|p| serde_json::from_slice(p).expect("commands are JSON"))
            .collect()
    }

    pub fn read_all(&self, topic: &str, idle: Duration) -> Vec<Vec<u8>> {
        self.read_from(topic, 0, idle)
    }

    /// Every record of partition 0 of `topic` as (offset, Kafka timestamp in ms,
    /// payload), read until `idle` passes with nothing new.
    pub fn read_records(&self, topic: &str, idle: Duration) -> Vec<(i64, Option<i64>, Vec<u8>)> {
        read_records(&self.brokers, topic, 0, idle)
    }

    /// The keys of partition 0 of `topic` whose records are tombstones (no payload),
    /// in topic order, up to the end the broker reports now (the guard's heartbeat
    /// keeps writing to `guard_state`, so it never goes quiet).
    pub fn tombstoned_keys(&self, topic: &str) -> Vec<String> {
        let consumer = reader_from_start(&self.brokers, &[(topic, 0)]);
        let (_, end) = consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap();
        let mut keys = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut next = 0;
        while next < end {
            assert!(
                Instant::now() < deadline,
                "{topic} read up to {next} of {end}"
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                if m.payload().is_none() {
                    keys.push(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned());
                }
                next = m.offset() + 1;
            }
        }
        keys
    }

    fn read_from(&self, topic: &str, partition: i32, idle: Duration) -> Vec<Vec<u8>> {
        read_records(&self.brokers, topic, partition, idle)
            .into_iter()
            .map(|(_, _, payload)| payload)
            .collect()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `guard run` process, killed (SIGKILL) on drop.
pub struct GuardProcess {
    pub child: Child,
    pub http: String,
    /// The file the guard's stdout and stderr go to (shared across restarts).
    pub log: PathBuf,
}

impl GuardProcess {
    /// Starts a guard and waits until it is ready (active).
    pub fn start(
        brokers: &str,
        state_dir: &Path,
        topics_prefix: &str,
        extra_env: &[(&str, &str)],
        log: &Path,
    ) -> GuardProcess {
        Self::start_with(brokers, state_dir, topics_prefix, extra_env, log, &[])
    }

    /// [`GuardProcess::start`] with extra `guard run` flags.
    pub fn start_with(
        brokers: &str,
        state_dir: &Path,
        topics_prefix: &str,
        extra_env: &[(&str, &str)],
        log: &Path,
        extra_args: &[&str],
    ) -> GuardProcess {
        let guard = Self::spawn_with(
            brokers,
            state_dir,
            topics_prefix,
            extra_env,
            log,
            extra_args,
        );
        guard.wait_ready(Duration::from_secs(60));
        guard
    }

    /// Starts a guard without waiting for readiness (a standby is not ready).
    pub fn spawn(
        brokers: &str,
        state_dir: &Path,
        topics_prefix: &str,
        extra_env: &[(&str, &str)],
        log: &Path,
    ) -> GuardProcess {
        Self::spawn_with(brokers, state_dir, topics_prefix, extra_env, log, &[])
    }

    /// [`GuardProcess::spawn`] with extra `guard run` flags.
    pub fn spawn_with(
        brokers: &str,
        state_dir: &Path,
        topics_prefix: &str,
        extra_env: &[(&str, &str)],
        log: &Path,
        extra_args: &[&str],
    ) -> GuardProcess {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_guard"));
        cmd.args([
            "run",
            "--brokers",
            brokers,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--checkpoint-interval",
            "30ms",
            "--message-timeout",
            "5s",
        ]);
        for (flag, stream) in [
            ("--topic-exec-result", "exec_result"),
            ("--topic-risk-event", "risk_event"),
            ("--topic-strategy-release", "strategy_release"),
            ("--topic-ops-command", "ops_command"),
            ("--topic-guard-command", "guard_command"),
            ("--topic-dlq", "guard_dlq"),
            ("--topic-state", "guard_state"),
            ("--topic-facts", "guard_facts"),
            ("--topic-pause-state", "guard_pause_state"),
            ("--topic-heartbeat", "guard_heartbeat"),
            ("--topic-guard-ack", "guard_ack"),
        ] {
            cmd.args([flag, &format!("{topics_prefix}{stream}")]);
        }
        if !extra_args.contains(&"--clock") {
            cmd.args(["--clock", "event-time"]);
        }
        if !extra_args.contains(&"--input-fetch-wait") {
            cmd.args(["--input-fetch-wait", &tansu_input_fetch_wait()]);
        }
        cmd.args(extra_args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let log_path = log.to_path_buf();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        // GUARD_IT_LOG: the guards' tracing filter, to investigate a failing run.
        let filter = std::env::var("GUARD_IT_LOG")
            .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".to_owned());
        cmd.env("RUST_LOG", filter)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("guard starts");
        let guard = GuardProcess {
            child,
            http: format!("127.0.0.1:{port}"),
            log: log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(&guard.http, "GET", "/healthz", &[], "").is_err() {
            assert!(
                Instant::now() < deadline,
                "guard HTTP did not come up; the end of its log:\n{}",
                log_tail(&guard.log, 60)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        guard
    }

    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok((200, _)) = http(&self.http, "GET", "/readyz", &[], "") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "guard at {} not ready; the end of its log:\n{}",
                self.http,
                log_tail(&self.log, 60)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the guard's state covers `next` on `topic` partition 0.
    pub fn wait_offset(&self, topic: &str, next: i64, limit: Duration) {
        let deadline = Instant::now() + limit;
        let key = format!("{topic}/0");
        loop {
            if let Ok((200, body)) = http(&self.http, "GET", "/state", &[], "") {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if v["offsets"][&key].as_i64().unwrap_or(0) >= next {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "guard did not reach {key} = {next}; the end of its log:\n{}",
                log_tail(&self.log, 60)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next offset of `topic` partition 0 the running guard's state covers; `None`
    /// while it is starting, on standby, or not answering.
    pub fn applied(&self, topic: &str) -> Option<i64> {
        let (code, body) = http(&self.http, "GET", "/state", &[], "").ok()?;
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["offsets"][format!("{topic}/0")].as_i64()
    }

    /// Whether the guard answers `/readyz` with 200 (it is the active instance).
    pub fn is_ready(&self) -> bool {
        matches!(http(&self.http, "GET", "/readyz", &[], ""), Ok((200, _)))
    }

    /// SIGKILL: no flush, no checkpoint.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.1 request; returns status and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            r = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    Ok((code, body))
}

/// (topic, payload) of every line of a replay file whose stream is an input.
pub fn messages(file: &Path) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            let stream = value.get("stream")?.as_str()?.to_owned();
            let event = value.get("event")?;
            matches!(
                stream.as_str(),
                "exec_result" | "risk_event" | "strategy_release" | "ops_command"
            )
            .then(|| (stream, serde_json::to_vec(event).unwrap()))
        })
        .collect()
}

/// A deterministic mixed stream: bursts of slippage, losing streaks, late fills,
/// duplicates, Noctus events, operator orders, adoptions, invalid payloads. One
/// message in `per / 10` is not a fill (so `per = 1000` gives long runs of fills).
pub fn stream(n: usize, per: u64) -> Vec<String> {
    let mut seed: u64 = 7;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let base = 1_754_870_400_000i64 + 3_600_000; // Monday 01:00 UTC
    let ts = |ms: i64| guard::time::Timestamp::from_millis(ms).to_string();
    let mut lines = Vec::new();
    let mut last_fill = String::new();
    for i in 0..n {
        let t = base + (i as i64) * 20_000 - (next(4) == 0) as i64 * next(300_000) as i64;
        let strategy = ["alpha", "beta", "gamma"][next(3) as usize];
        let line = match next(per) {
            0..=2 if !last_fill.is_empty() => last_fill.clone(),
            3..=4 => format!(
                r#"{{"stream":"ops_command","event":{{"command_id":"ops-{i}","action":"resume","scope":{{"kind":"global"}},"operator":"oncall","ts":"{}"}}}}"#,
                ts(t)
            ),
            5 => format!(
                r#"{{"stream":"ops_command","event":{{"command_id":"ops-{i}","action":"pause","scope":{{"kind":"strategy","strategy_id":"{strategy}"}},"operator":"oncall","ts":"{}"}}}}"#,
                ts(t)
            ),
            6..=7 => format!(
                r#"{{"stream":"risk_event","event":{{"event_id":"n-{i}","source":"noctus","kind":"drawdown","severity":"{}","scope":{{"kind":"strategy","strategy_id":"{strategy}"}},"ts":"{}"}}}}"#,
                ["warning", "critical"][next(2) as usize],
                ts(t)
            ),
            8 => format!(
                r#"{{"stream":"strategy_release","event":{{"strategy_id":"{strategy}","version":"v{i}","adopted_at":"{}"}}}}"#,
                ts(t)
            ),
            9 => r#"{"stream":"exec_result","event":{"fill_id":"bad","qty":"1"}}"#.to_owned(),
            _ => {
                // Long streams (per >= 1000) trip less often: a partition of thousands of
                // single-message risk events slows tansu down.
                let calm = if per >= 1000 { 10 } else { 1 };
                let bps = [1.0, 3.0, 6.0, 9.0]
                    .get(next(4 * calm) as usize)
                    .copied()
                    .unwrap_or(1.0);
                let pnl = ["", r#","realized_pnl":-5.0"#, r#","realized_pnl":3.0"#]
                    .get(next(3 * calm) as usize)
                    .copied()
                    .unwrap_or("");
                let l = format!(
                    r#"{{"stream":"exec_result","event":{{"fill_id":"f-{i}","strategy_id":"{strategy}","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"slippage_bps":{bps}{pnl},"ts":"{}"}}}}"#,
                    ts(t)
                );
                last_fill = l.clone();
                l
            }
        };
        lines.push(line);
    }
    lines
}

pub fn replay(lines: &[String]) -> (Vec<GuardCommand>, Engine) {
    let (decisions, engine) = replay_with(Policy::default(), lines);
    let commands = decisions
        .into_iter()
        .filter_map(|d| match d {
            Decision::GuardCommand(c) => Some(c),
            Decision::RiskEvent(_) => None,
        })
        .collect();
    (commands, engine)
}

/// `guard replay`'s engine under `policy` over `lines` (invalid lines skipped): every
/// decision (commands and the guard's risk events) in the order it was made.
pub fn replay_with(policy: Policy, lines: &[String]) -> (Vec<Decision>, Engine) {
    let (decisions, engine, _) =
        guard::replay::run(Engine::new(policy, EngineOptions::default()), lines);
    (decisions, engine)
}

pub fn judged(c: &GuardCommand) -> String {
    format!(
        "{} {} {} {} {} [{}] {}",
        c.command_id,
        c.action.as_str(),
        c.scope,
        c.rule.as_str(),
        c.trigger,
        c.evidence.join(","),
        c.event_ts
    )
}

/// The published commands in first-seen order, each once; a repeated id must repeat
/// the same decision exactly.
pub fn distinct_decisions(published: &[GuardCommand]) -> Vec<String> {
    let mut first_seen = Vec::new();
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for c in published {
        let j = judged(c);
        match by_id.insert(c.command_id.clone(), j.clone()) {
            Some(previous) => assert_eq!(
                previous, j,
                "two different decisions share id {}",
                c.command_id
            ),
            None => first_seen.push(j),
        }
    }
    first_seen
}

/// The guards' input fetch wait on tansu: longer than its scan of the test topics'
/// batches (thousands of them), short enough that its answer to a held fetch is close
/// to one instant across partitions (at 10 and 20 ms it was not: docs/LIVE.md "Input
/// fetch wait"), far below the merge's 50 ms order wait.
/// `GUARD_IT_INPUT_FETCH_WAIT` overrides it.
pub const TANSU_INPUT_FETCH_WAIT: &str = "5ms";

/// The `--input-fetch-wait` of a guard on tansu. tansu holds every fetch for the whole
/// wait (the default 40 ms, meant for Kafka, would be added to every decision) and
/// answers one that cannot finish its scan of a partition's record batches within the
/// wait with nothing: at 1 ms a partition of a thousand or so small batches
/// (guard_state after a minute of checkpoints, an input topic written message by
/// message) is read at a crawl, or not at all (docs/LIVE.md "Input fetch wait").
pub fn tansu_input_fetch_wait() -> String {
    std::env::var("GUARD_IT_INPUT_FETCH_WAIT").unwrap_or_else(|_| TANSU_INPUT_FETCH_WAIT.to_owned())
}

pub const TOPICS: [&str; 10] = [
    "exec_result",
    "risk_event",
    "strategy_release",
    "ops_command",
    "guard_command",
    "guard_dlq",
    "guard_state",
    "guard_facts",
    "guard_pause_state",
    "guard_heartbeat",
];

/// Records the offset the broker gave each delivered message, per topic.
#[derive(Clone, Default)]
pub struct OffsetContext(pub std::sync::Arc<std::sync::Mutex<BTreeMap<String, i64>>>);

impl rdkafka::ClientContext for OffsetContext {}

impl rdkafka::producer::ProducerContext for OffsetContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let mut map = self.0.lock().unwrap();
            let e = map.entry(m.topic().to_owned()).or_insert(-1);
            *e = (*e).max(m.offset());
        }
    }
}

/// A producer whose context knows the last offset written to each topic, so a test
/// can wait for exactly its own message (the guard writes to `risk_event` too).
pub fn offset_producer(
    brokers: &str,
) -> (
    rdkafka::producer::BaseProducer<OffsetContext>,
    OffsetContext,
) {
    let context = OffsetContext::default();
    let producer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create_with_context(context.clone())
        .unwrap();
    (producer, context)
}

/// Waits until every message `producer` was given is delivered (or failed), sending
/// lingering batches at once. `Producer::flush` of rdkafka 0.39 polls in steps of
/// 100 ms (its `poll` runs to the deadline), so a flush of a fresh message costs 100 ms
/// there; this one returns about one broker round trip after the last delivery.
pub fn flush_now<C: rdkafka::producer::ProducerContext>(
    producer: &rdkafka::producer::BaseProducer<C>,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    while producer.in_flight_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} messages not delivered within {limit:?}",
            producer.in_flight_count()
        );
        // rd_kafka_flush wakes the broker threads and sends regardless of linger.ms
        // while it waits; the delivery reports are served by `poll`.
        // SAFETY: a valid producer handle; rd_kafka_flush is thread-safe.
        unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), 1) };
        producer.poll(Duration::ZERO);
    }
}

/// Sends one message, waits for its delivery, and returns the offset after it.
pub fn send_for_offset(
    producer: &rdkafka::producer::BaseProducer<OffsetContext>,
    context: &OffsetContext,
    topic: &str,
    payload: &[u8],
) -> i64 {
    use rdkafka::producer::Producer;
    producer
        .send(
            rdkafka::producer::BaseRecord::to(topic)
                .key("k")
                .payload(payload),
        )
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    context.0.lock().unwrap()[topic] + 1
}

/// The running guard's `/state` holds exactly the replay engine's windows, streaks,
/// paused scopes, clock and number of distinct messages applied.
pub fn assert_state_equals_replay(guard: &GuardProcess, replay_engine: &Engine, context: &str) {
    let (_, body) = http(&guard.http, "GET", "/state", &[], "").unwrap();
    let live: serde_json::Value = serde_json::from_str(&body).unwrap();
    let want = guard::live::status::state_view(replay_engine);
    for key in STATE_FIELDS {
        assert_eq!(
            live[key], want[key],
            "state field {key} differs from replay ({context})"
        );
    }
}

/// The `/state` fields [`assert_state_equals_replay`] compares.
pub const STATE_FIELDS: [&str; 5] = [
    "paused",
    "slippage_windows",
    "losing_streaks",
    "clock",
    "seen_ids",
];

/// [`assert_state_equals_replay`] without the panic: one line per differing field,
/// with both values (empty when the state equals the replay's).
pub fn state_differences(guard: &GuardProcess, replay_engine: &Engine) -> Vec<String> {
    let live: serde_json::Value = match http(&guard.http, "GET", "/state", &[], "") {
        Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
        other => return vec![format!("GET /state failed: {other:?}")],
    };
    let want = guard::live::status::state_view(replay_engine);
    STATE_FIELDS
        .iter()
        .filter(|key| live[**key] != want[**key])
        .map(|key| {
            format!(
                "state field {key}:\n    replay: {}\n    guard:  {}",
                want[*key], live[*key]
            )
        })
        .collect()
}

/// Runs the `guard` binary with `args` to completion.
pub fn guard_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guard"))
        .args(args)
        .output()
        .unwrap()
}

/// Every record of `topic`/`partition` on `brokers` as (offset, Kafka timestamp in ms,
/// payload), read from the beginning until `idle` passes with nothing new.
pub fn read_records(
    brokers: &str,
    topic: &str,
    partition: i32,
    idle: Duration,
) -> Vec<(i64, Option<i64>, Vec<u8>)> {
    let consumer = reader_from_start(brokers, &[(topic, partition)]);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            out.push((
                m.offset(),
                m.timestamp().to_millis(),
                m.payload().unwrap_or_default().to_vec(),
            ));
            last = Instant::now();
        }
    }
    out
}

/// A consumer on `brokers` of each (topic, partition) of `partitions`, assigned at
/// their beginnings.
pub fn reader_from_start(brokers: &str, partitions: &[(&str, i32)]) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition_offset(topic, *partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// A test knob: the environment variable `name` parsed, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64: a seeded source of randomness, so a failing run can be repeated.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..m`.
    pub fn below(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m.max(1)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.below(1 << 30) as f64 / (1u64 << 30) as f64
    }
}
