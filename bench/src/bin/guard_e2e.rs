//! `guard-e2e`: end-to-end load generator for the live guard (open loop).
//!
//! A producer sends fills at a fixed rate; every `--burst-every` fills it sends a burst
//! of three breaching fills of a fresh strategy, which trips the slippage rule. A
//! listener matches each `guard_command` to its trigger fill and records
//! trigger-scheduled → command-received latency in an HDR histogram (from the
//! *scheduled* send time, so a stalled sender cannot hide latency), and answers each
//! pause with an operator resume so the guard keeps deciding. A ping stream through
//! the same broker measures one plain hop in the same run: `ratio_p99 =
//! e2e_p99 / (2 × hop_p99)`, two hops being the physical floor of the path.
//!
//! The guard runs as a child process (this binary in `--as-guard` mode, which runs
//! the library's `guard run` path), so its CPU time and peak RSS are its own.
//! `guard_cpu_s` is its whole life (start-up and every rate included); `guard cpu/fill`
//! (`guard_cpu_per_fill_us`) is its CPU time from just before a run's first fill to
//! that run's last trip command, divided by the fills sent by then.
//!
//!   cargo run --release -p bench --bin guard-e2e -- --broker mock --rate 1000 --duration 30s
//!   cargo run --release -p bench --bin guard-e2e -- --broker 127.0.0.1:9092 --rate 1000 --duration 30s
//!   cargo run --release -p bench --bin guard-e2e -- --broker mock --max-throughput

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guard::live::{kafka, LiveConfig, SledStore, StatusHandle};
use guard::message::GuardCommand;
use guard::policy::Policy;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const POLICY: &str =
    "maintenance = []\n[slippage]\npause = \"group\"\n[losing_streak]\nenabled = false\n";

struct Args {
    broker: String,
    rate: u64,
    duration: Duration,
    burst_every: u64,
    strategies: u64,
    max_throughput: bool,
    as_guard: bool,
    state_dir: String,
    prefix: String,
    /// IN_TOPIC:OUT_TOPIC of another implementation to measure instead of the guard.
    external: Option<(String, String)>,
    /// Where to write every counted e2e latency (µs, one a line), for merging runs.
    samples: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        broker: "mock".into(),
        rate: 1000,
        duration: Duration::from_secs(30),
        burst_every: 200,
        strategies: 1000,
        max_throughput: false,
        as_guard: false,
        state_dir: String::new(),
        prefix: String::new(),
        external: None,
        samples: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--broker" => a.broker = value(),
            "--rate" => {
                a.rate = value()
                    .parse()
                    .unwrap_or_else(|_| die("--rate takes fills per second"))
            }
            "--duration" => {
                let span =
                    guard::time::Span::parse(&value()).unwrap_or_else(|e| die(&e.to_string()));
                a.duration = Duration::from_micros(span.as_micros().max(1) as u64);
            }
            "--burst-every" => {
                a.burst_every = value()
                    .parse()
                    .unwrap_or_else(|_| die("--burst-every takes a count"))
            }
            "--strategies" => {
                a.strategies = value()
                    .parse()
                    .unwrap_or_else(|_| die("--strategies takes a count"))
            }
            "--max-throughput" => a.max_throughput = true,
            "--as-guard" => a.as_guard = true,
            "--state-dir" => a.state_dir = value(),
            "--prefix" => a.prefix = value(),
            "--samples" => a.samples = Some(value()),
            "--external" => {
                let v = value();
                let (i, o) = v
                    .split_once(':')
                    .unwrap_or_else(|| die("--external takes IN_TOPIC:OUT_TOPIC"));
                a.external = Some((i.to_owned(), o.to_owned()));
            }
            "-h" | "--help" => {
                println!("guard-e2e [--broker mock|HOST:PORT] [--rate N] [--duration 30s] [--burst-every 200] [--strategies 1000] [--max-throughput] [--external IN:OUT] [--samples FILE]");
                std::process::exit(0);
            }
            other => die(&format!("unknown flag {other}")),
        }
    }
    a
}

fn die(message: &str) -> ! {
    eprintln!("guard-e2e: {message}");
    std::process::exit(2)
}

fn config_for(brokers: &str, state_dir: &str, prefix: &str) -> LiveConfig {
    let mut config = LiveConfig::new(brokers, state_dir);
    config.policy = Policy::from_toml(POLICY).expect("benchmark policy is valid");
    config.http_listen = None;
    config.topics.prefix(prefix);
    // The mock (and tansu) hold every empty fetch for the whole wait: the guard and
    // this harness's readers fetch with a 1 ms wait, as in every figure of
    // bench/README.md. `E2E_INPUT_FETCH_WAIT_MS` sets the guard's (e.g. the default
    // for Kafka, 40, to see what an idle guard costs with it).
    config.input_fetch_wait = kafka::MOCK_INPUT_FETCH_WAIT;
    if let Some(ms) = std::env::var("E2E_CHECKPOINT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.checkpoint_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = std::env::var("E2E_MAX_ORDER_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.max_order_wait = Duration::from_millis(ms);
    }
    config
}

/// Guard mode: the library's `guard run` path until stdin closes.
fn run_guard(args: &Args) {
    if let Ok(level) = std::env::var("E2E_GUARD_LOG") {
        // The guard's own log on stderr (e.g. `warn`: slow turns, order waits).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_writer(std::io::stderr)
            .init();
    }
    let mut config = config_for(&args.broker, &args.state_dir, &args.prefix);
    if let Some(ms) = std::env::var("E2E_INPUT_FETCH_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.input_fetch_wait = Duration::from_millis(ms);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        flag.store(true, Ordering::Relaxed);
    });
    // Tell the harness on stdout when the guard owns its inputs.
    let status = StatusHandle::default();
    let watch = status.clone();
    std::thread::spawn(move || {
        while !watch.read().ready {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("ready");
    });
    let report = status.clone();
    let result = if std::env::var_os("E2E_MEMSTORE").is_some() {
        guard::live::standby::run(config, guard::live::MemStore::default(), status, &stop)
    } else {
        let store = SledStore::open(&config.state_dir).unwrap_or_else(|e| die(&e.to_string()));
        guard::live::standby::run(config, store, status, &stop)
    };
    if std::env::var_os("E2E_GUARD_METRICS").is_some() {
        let s = report.read();
        let h = &s.metrics.decision_latency;
        eprintln!(
            "guard metrics: messages {:?}, order waits expired {}, checkpoints {}, \
             fill received -> command acknowledged p50 {:.2} p99 {:.2} max {:.2} ms",
            s.metrics.messages,
            s.metrics.order_waits_expired,
            s.metrics.checkpoints,
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3
        );
    }
    if let Err(e) = result {
        die(&format!("guard: {e}"));
    }
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

fn proc_peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

struct Outcome {
    sent: u64,
    bursts: u64,
    commands: u64,
    matched: u64,
    e2e: Histogram<u64>,
    /// Trigger fill scheduled → the command in force in an in-process gateway (the gate
    /// library following the guard's topics), µs; empty under --external.
    gate: Histogram<u64>,
    hop: Histogram<u64>,
    /// Every recorded e2e latency, µs.
    samples: Vec<u64>,
    /// The guard's CPU time per fill sent, µs: from just before the first fill to the
    /// last trip's command (so the start-up and the wait after the run are left out).
    cpu_per_fill_us: Option<f64>,
}

fn fill(id: &str, strategy: &str, bps: f64, ts: &str) -> Vec<u8> {
    format!(r#"{{"fill_id":"{id}","strategy_id":"{strategy}","symbol":"SYM","side":"buy","qty":100,"expected_price":1000.0,"fill_price":{:.4},"ts":"{ts}"}}"#, 1000.0 * (1.0 + bps / 10_000.0)).into_bytes()
}

/// One open-loop run at `rate` for `duration` against a running guard (process
/// `guard_pid`, 0 for another implementation).
/// Bytes of padding each fill carries in a header (`e2e-pad`, which the guard never
/// reads) on the mock cluster. The mock broker finds a fetch's offset by walking its
/// partition's message sets from the oldest ("FIXME: Maintain an index" in
/// librdkafka's rdkafka_mock.c), and a fetch at the end of the log walks all of them:
/// with one fill a set and the mock's 5 MB retention, ~16,000 sets, a walk per fetch
/// at the guard's 1 ms fetch wait. Past ~10,000 fills the mock's thread could not keep
/// up (56 % of the process in `rd_kafka_mock_msgset_find`) and the guard's input fell
/// seconds behind: the e2e tail of 100-1,000 ms with a plain hop of 10 ms
/// (bench/README.md). Padded, the retention keeps ~2,000 sets. `E2E_FILL_PAD=N` sets
/// it (0: none).
static FILL_PAD: AtomicUsize = AtomicUsize::new(0);
const MOCK_FILL_PAD: usize = 2048;

fn load(
    config: &LiveConfig,
    rate: u64,
    duration: Duration,
    burst_every: u64,
    strategies: u64,
    run: &str,
    guard_pid: u32,
) -> Outcome {
    // The Do layer batches like a real one once the rate is high (linger 1 ms); at low
    // rates every fill goes out alone.
    let linger = if rate > 2_000 { "1" } else { "0" };
    let producer: Arc<BaseProducer> = Arc::new(
        kafka::producer(config)
            .set("queue.buffering.max.messages", "1000000")
            .set("linger.ms", linger)
            .create()
            .expect("producer"),
    );
    let listener: BaseConsumer = kafka::input_consumer(config)
        .set("group.id", "e2e-listener")
        .create()
        .expect("listener");
    let ping_topic = format!("{}.ping", config.topics.guard_command);
    // From the beginning, filtering by run id (tansu's end offsets are not reliable),
    // and one consumer per topic.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&config.topics.guard_command, 0, Offset::Beginning)
        .unwrap();
    listener.assign(&tpl).unwrap();
    let t0 = Instant::now() + Duration::from_millis(400);
    let hop = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap(),
    ));
    let ping_stop = Arc::new(AtomicBool::new(false));
    let ping_reader = {
        let consumer: BaseConsumer = kafka::input_consumer(config)
            .set("group.id", "e2e-ping")
            .create()
            .expect("ping listener");
        let mut ping_tpl = TopicPartitionList::new();
        ping_tpl
            .add_partition_offset(&ping_topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&ping_tpl).unwrap();
        let (hop, stop, prefix) = (hop.clone(), ping_stop.clone(), format!("{run}:"));
        let warmup = Duration::from_secs(2).min(duration / 4);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(5)) else {
                    continue;
                };
                let arrived = Instant::now();
                let nanos = message
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|s| s.strip_prefix(&prefix))
                    .and_then(|s| s.parse::<u64>().ok());
                // Pings of the warm-up (first two seconds) are not counted, like trips.
                if let Some(nanos) = nanos.filter(|n| *n >= warmup.as_nanos() as u64) {
                    let due = t0 + Duration::from_nanos(nanos);
                    let _ = hop
                        .lock()
                        .unwrap()
                        .record(arrived.saturating_duration_since(due).as_micros().max(1) as u64);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let gateway = (guard_pid != 0).then(|| start_gateway(config));

    let cpu_at_start = (guard_pid != 0).then(|| proc_cpu_seconds(guard_pid));
    // The guard's CPU time and the fills sent when the latest trip's command came.
    let mut cpu_at_last_trip: Option<(f64, u64)> = None;
    let scheduled: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let bursts = Arc::new(AtomicU64::new(0));
    let sender = {
        let (scheduled, done, sent, bursts) = (
            scheduled.clone(),
            done.clone(),
            sent.clone(),
            bursts.clone(),
        );
        let producer = producer.clone();
        let topic = config.topics.exec_result.clone();
        let ping_topic = ping_topic.clone();
        let run = run.to_owned();
        std::thread::spawn(move || {
            let total = (rate as f64 * duration.as_secs_f64()) as u64;
            let ts = guard::time::Timestamp::now().to_string();
            let pad = vec![b'.'; FILL_PAD.load(Ordering::Relaxed)];
            let padding = if pad.is_empty() {
                OwnedHeaders::new()
            } else {
                OwnedHeaders::new().insert(Header {
                    key: "e2e-pad",
                    value: Some(&pad),
                })
            };
            let mut i = 0u64;
            let mut burst = 0u64;
            while i < total {
                let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let in_burst = i % burst_every;
                let (id, strategy, bps) = if in_burst < 3 && i >= burst_every {
                    if in_burst == 0 {
                        burst += 1;
                    }
                    (
                        format!("{run}-b{burst}-{in_burst}"),
                        format!("{run}-burst-{burst}"),
                        9.0,
                    )
                } else {
                    (format!("{run}-f{i}"), format!("s{}", i % strategies), 1.0)
                };
                // Trips in the first two seconds are warm-up (connections, producer ids).
                if in_burst == 2
                    && i >= burst_every
                    && due >= t0 + Duration::from_secs(2).min(duration / 4)
                {
                    scheduled.lock().unwrap().insert(id.clone(), due);
                    bursts.fetch_add(1, Ordering::Relaxed);
                }
                let payload = fill(&id, &strategy, bps, &ts);
                while let Err((e, _)) = producer.send(
                    BaseRecord::to(&topic)
                        .key(&strategy)
                        .payload(&payload)
                        .headers(padding.clone()),
                ) {
                    let _ = e;
                    producer.poll(Duration::from_millis(1));
                }
                // A plain hop, scheduled on the same clock, every 10th fill.
                if i.is_multiple_of(10) {
                    let ping = format!("{run}:{}", due.duration_since(t0).as_nanos());
                    let _ = producer.send(BaseRecord::to(&ping_topic).key("ping").payload(&ping));
                }
                producer.poll(Duration::ZERO);
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            let _ = producer.flush(Duration::from_secs(10));
            done.store(true, Ordering::Relaxed);
        })
    };
    let mut e2e = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    let mut gate = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    // Commands seen by the listener whose time in force at the gateway is not known yet.
    let mut awaiting_gate: Vec<(String, Instant)> = Vec::new();
    let mut samples = Vec::new();
    let mut commands = 0u64;
    let mut matched = 0u64;
    let mut our_resumes: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut finished_at: Option<Instant> = None;
    loop {
        if done.load(Ordering::Relaxed) && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        if finished_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3))
            && matched >= bursts.load(Ordering::Relaxed)
        {
            break;
        }
        if finished_at.is_some_and(|t| t.elapsed() > Duration::from_secs(15)) {
            break;
        }
        if let Some((handle, _)) = &gateway {
            awaiting_gate.retain(|(id, due)| match handle.in_force_at(id) {
                Some(at) => {
                    let _ =
                        gate.record(at.saturating_duration_since(*due).as_micros().max(1) as u64);
                    false
                }
                None => true,
            });
        }
        let Some(Ok(message)) = listener.poll(Duration::from_millis(5)) else {
            continue;
        };
        let arrived = Instant::now();
        let Ok(value) =
            serde_json::from_slice::<serde_json::Value>(message.payload().unwrap_or_default())
        else {
            continue;
        };
        let Some(trigger) = value
            .get("trigger")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
        else {
            continue;
        };
        // Count only this run's commands: its pauses and the resumes it asked for (the
        // listener reads the topic from the beginning).
        if our_resumes.remove(&trigger) {
            commands += 1;
            continue;
        }
        if let Some(due) = scheduled.lock().unwrap().remove(&trigger) {
            matched += 1;
            commands += 1;
            let micros = arrived.saturating_duration_since(due).as_micros().max(1) as u64;
            let _ = e2e.record(micros);
            samples.push(micros);
            if let Some(id) = value.get("command_id").and_then(|c| c.as_str()) {
                awaiting_gate.push((id.to_owned(), due));
            }
            if guard_pid != 0 {
                cpu_at_last_trip =
                    Some((proc_cpu_seconds(guard_pid), sent.load(Ordering::Relaxed)));
            }
            // The guard keeps the strategy paused: resume at once, so the guard keeps
            // deciding. (Another implementation under --external keeps no pause state.)
            if let Ok(command) = serde_json::from_value::<GuardCommand>(value) {
                let resume = guard::live::ops::command(
                    guard::message::Action::Resume,
                    command.scope.clone(),
                    "e2e",
                    None,
                );
                our_resumes.insert(resume.command_id.clone());
                let payload = serde_json::to_vec(&resume).unwrap();
                let _ = producer.send(
                    BaseRecord::to(&config.topics.ops_command)
                        .key("k")
                        .payload(&payload),
                );
                producer.poll(Duration::ZERO);
            }
        }
    }
    let _ = sender.join();
    if !awaiting_gate.is_empty() {
        eprintln!(
            "guard-e2e: {} command(s) never came into force at the gateway",
            awaiting_gate.len()
        );
    }
    if let Some((_, follower)) = gateway {
        let _ = follower.stop();
    }
    let unmatched: Vec<String> = scheduled.lock().unwrap().keys().cloned().collect();
    if !unmatched.is_empty() {
        eprintln!("guard-e2e: no command seen for trigger(s) {unmatched:?}");
    }
    ping_stop.store(true, Ordering::Relaxed);
    let _ = ping_reader.join();
    let hop = hop.lock().unwrap().clone();
    let cpu_per_fill_us = cpu_at_start
        .zip(cpu_at_last_trip)
        .filter(|(_, (_, fills))| *fills > 0)
        .map(|(start, (end, fills))| (end - start) * 1e6 / fills as f64);
    Outcome {
        sent: sent.load(Ordering::Relaxed),
        bursts: bursts.load(Ordering::Relaxed),
        commands,
        matched,
        e2e,
        gate,
        hop,
        samples,
        cpu_per_fill_us,
    }
}

/// An order gateway in this process, on the gate library, following the guard's topics
/// like `guard gate`; returns once it has the pause state and hears the guard.
fn start_gateway(config: &LiveConfig) -> (gate::GateHandle, gate::follow::Follower) {
    let handle = gate::GateHandle::new(gate::Gate::new("e2e-gateway", 3_000));
    let mut follow = gate::follow::FollowConfig::new(config.brokers.clone());
    follow.topics.pause_state = config.topics.pause_state.clone();
    follow.topics.command = config.topics.guard_command.clone();
    follow.topics.heartbeat = config.topics.heartbeat.clone();
    follow.topics.ack = config.topics.guard_ack.clone();
    // A fetch answered within a millisecond, like the guard's own input consumer.
    follow.fetch_wait_ms = 1;
    let follower = gate::follow::Follower::start(follow, handle.clone())
        .unwrap_or_else(|e| die(&format!("gateway: {e}")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle.may_trade("warm-up") != gate::Mode::Running {
        if Instant::now() > deadline {
            die("the gateway did not open (no pause state or no heartbeat) within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (handle, follower)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1e3
}

fn main() {
    let args = parse_args();
    if args.as_guard {
        run_guard(&args);
        return;
    }
    std::env::set_var("RUST_LOG", "error");
    let _ = tracing_subscriber_init();
    let mock = (args.broker == "mock").then(|| MockCluster::new(1).expect("mock cluster"));
    let pad = std::env::var("E2E_FILL_PAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if mock.is_some() { MOCK_FILL_PAD } else { 0 });
    FILL_PAD.store(pad, Ordering::Relaxed);
    let brokers = mock
        .as_ref()
        .map_or_else(|| args.broker.clone(), |m| m.bootstrap_servers());
    let prefix = format!("e2e{}.", std::process::id());
    let state_dir = std::env::temp_dir().join(format!("guard-e2e-{}", std::process::id()));
    let mut config = config_for(&brokers, state_dir.to_str().unwrap(), &prefix);
    if let Some((input, output)) = &args.external {
        config.topics.exec_result = input.clone();
        config.topics.guard_command = output.clone();
    }
    let topics: Vec<String> = config
        .topics
        .all()
        .into_iter()
        .chain([format!("{}.ping", config.topics.guard_command)])
        .collect();
    // Measuring another implementation: its topics exist; only the ping topic is ours.
    let topics: Vec<String> = if args.external.is_some() {
        topics
            .into_iter()
            .filter(|t| t.ends_with(".ping"))
            .collect()
    } else {
        topics
    };
    match &mock {
        Some(m) => topics
            .iter()
            .for_each(|t| m.create_topic(t, 1, 1).expect("create topic")),
        None => create_topics_with_admin(&brokers, &topics),
    }
    let mut guard = args
        .external
        .is_none()
        .then(|| spawn_guard(&brokers, &state_dir, &prefix));
    if let Some(child) = guard.as_mut() {
        wait_ready(child);
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = guard.as_ref().map_or(0, Child::id);
    let runs: Vec<u64> = if args.max_throughput {
        vec![
            5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 80_000, 120_000,
        ]
    } else {
        vec![args.rate]
    };
    let mut best: Option<(u64, f64, Option<f64>)> = None;
    let mut last = None;
    for (k, rate) in runs.iter().enumerate() {
        let duration = if args.max_throughput {
            Duration::from_secs(8)
        } else {
            args.duration
        };
        let outcome = load(
            &config,
            *rate,
            duration,
            args.burst_every.max(4),
            args.strategies,
            &format!("p{}r{k}", std::process::id()),
            pid,
        );
        let p99 = ms(&outcome.e2e, 0.99);
        let lost = outcome.bursts.saturating_sub(outcome.matched);
        let per_fill = outcome.cpu_per_fill_us.unwrap_or(0.0);
        println!("rate {:>7}/s  sent {:>8}  trips {:>6}  commands {:>6}  lost {:>4}  e2e p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  hop p99 {:>6.2} ms  guard cpu/fill {per_fill:>5.2} µs", rate, outcome.sent, outcome.bursts, outcome.commands, lost, ms(&outcome.e2e, 0.5), p99, outcome.e2e.max() as f64 / 1e3, ms(&outcome.hop, 0.99));
        if args.max_throughput {
            if lost == 0
                && p99 < 50.0
                && outcome.sent as f64 >= *rate as f64 * duration.as_secs_f64() * 0.99
            {
                best = Some((*rate, p99, outcome.cpu_per_fill_us));
            } else {
                break;
            }
        }
        last = Some((outcome, *rate));
    }
    let cpu = proc_cpu_seconds(pid);
    let rss = proc_peak_rss_mb(pid);
    if let Some(mut guard) = guard.take() {
        drop(guard.stdin.take());
        let _ = guard.wait();
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    let Some((o, rate)) = last else { return };
    if let Some(path) = &args.samples {
        let text: String = o.samples.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(path, text).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    }
    let (e2e_p99, hop_p99) = (ms(&o.e2e, 0.99), ms(&o.hop, 0.99));
    let ratio = if hop_p99 > 0.0 {
        e2e_p99 / (2.0 * hop_p99)
    } else {
        0.0
    };
    println!();
    println!(
        "broker {}  rate {rate}/s  sent {}  trips {}  commands {}  lost {}",
        args.broker,
        o.sent,
        o.bursts,
        o.commands,
        o.bursts.saturating_sub(o.matched)
    );
    println!("e2e  p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms   (trigger fill scheduled → guard_command received)", ms(&o.e2e, 0.5), e2e_p99, ms(&o.e2e, 0.999), o.e2e.max() as f64 / 1e3);
    if !o.gate.is_empty() {
        println!("gate p50 {:.2}  p99 {:.2}  max {:.2} ms   (trigger fill scheduled → command in force at an in-process gateway)", ms(&o.gate, 0.5), ms(&o.gate, 0.99), o.gate.max() as f64 / 1e3);
    }
    println!(
        "hop  p50 {:.2}  p99 {:.2} ms   ratio_p99 = e2e_p99 / (2 × hop_p99) = {ratio:.2}",
        ms(&o.hop, 0.5),
        hop_p99
    );
    println!("guard process: cpu {cpu:.2} s, peak RSS {rss:.1} MB");
    if let Some((best_rate, best_p99, per_fill)) = best {
        let per_fill = per_fill.unwrap_or(0.0);
        println!("max sustained: {best_rate} fills/s with e2e p99 {best_p99:.2} ms, guard CPU {per_fill:.2} µs per fill");
    }
    let json = serde_json::json!({
        "broker": args.broker, "rate": rate, "sent": o.sent, "commands": o.commands, "lost": o.bursts.saturating_sub(o.matched),
        "e2e_p50_ms": round2(ms(&o.e2e, 0.5)), "e2e_p99_ms": round2(e2e_p99), "e2e_p999_ms": round2(ms(&o.e2e, 0.999)), "e2e_max_ms": round2(o.e2e.max() as f64 / 1e3),
        "gate_p50_ms": (!o.gate.is_empty()).then(|| round2(ms(&o.gate, 0.5))), "gate_p99_ms": (!o.gate.is_empty()).then(|| round2(ms(&o.gate, 0.99))),
        "hop_p50_ms": round2(ms(&o.hop, 0.5)), "hop_p99_ms": round2(hop_p99), "ratio_p99": round2(ratio),
        "guard_cpu_s": round2(cpu), "guard_peak_rss_mb": round2(rss),
        "guard_cpu_per_fill_us": o.cpu_per_fill_us.map(round2),
        "max_sustained_fills_per_s": best.map(|b| b.0),
        "max_sustained_cpu_per_fill_us": best.and_then(|b| b.2).map(round2),
    });
    println!("{json}");
    drop(mock);
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn tracing_subscriber_init() -> Option<()> {
    None
}

fn spawn_guard(brokers: &str, state_dir: &std::path::Path, prefix: &str) -> Child {
    Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--as-guard",
            "--broker",
            brokers,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--prefix",
            prefix,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("guard child starts")
}

/// Waits for the child's "ready" line (it owns its inputs), at most a minute.
fn wait_ready(child: &mut Child) {
    use std::io::BufRead;
    let Some(stdout) = child.stdout.take() else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        die("the guard did not become ready within a minute");
    }
}

fn create_topics_with_admin(brokers: &str, topics: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("retention.ms", "3600000"))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            eprintln!("guard-e2e: topic {topic}: {e}");
        }
    }
}
