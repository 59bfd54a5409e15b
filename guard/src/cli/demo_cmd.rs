//! `guard demo`: the live guard on librdkafka's in-process mock cluster, fed by a
//! synthetic Do layer, watched by a command listener. No external broker needed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use guard::engine::{Engine, EngineOptions};
use guard::live::{kafka, LiveConfig, SledStore, StatusHandle};
use guard::message::{Action, Decision, Fill, GuardCommand, Input, OpsCommand, Scope, Side};
use guard::time::Timestamp;

use super::run_cmd::{init_logs, start_shell, LogFormat};
use super::Failure;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Serve the guard's HTTP endpoints here while the demo runs (e.g. 127.0.0.1:8686).
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// Pause between the demo's steps, to watch it unfold.
    #[arg(long, default_value = "300ms")]
    step_pause: String,
}

struct Step {
    label: &'static str,
    inputs: Vec<Input>,
    expect_commands: usize,
}

fn fill(id: &str, strategy: &str, bps: f64, pnl: Option<f64>) -> Input {
    Input::Fill(Fill {
        fill_id: id.into(),
        order_id: Some(format!("o-{id}")),
        strategy_id: strategy.into(),
        strategy_version: None,
        symbol: "7203.T".into(),
        side: Side::Buy,
        qty: 100.0,
        expected_price: 2500.0,
        fill_price: 2500.0 * (1.0 + bps / 10_000.0),
        slippage_bps: None,
        realized_pnl: pnl,
        ts: Timestamp::now(),
        env: None,
    })
}

fn resume(id: &str) -> Input {
    Input::Ops(OpsCommand {
        command_id: id.into(),
        action: Action::Resume,
        scope: Scope::Global,
        operator: "demo-operator".into(),
        reason: Some("reviewed with the desk".into()),
        ts: Timestamp::now(),
    })
}

fn script(run: &str) -> Vec<Step> {
    let id = |s: &str| format!("{run}-{s}");
    vec![
        Step {
            label: "normal trading: 4 fills within 5 bps",
            inputs: (0..4)
                .map(|i| {
                    fill(
                        &id(&format!("n{i}")),
                        if i % 2 == 0 { "alpha" } else { "beta" },
                        1.5,
                        None,
                    )
                })
                .collect(),
            expect_commands: 0,
        },
        Step {
            label: "slippage burst on alpha: 3 fills at 7-9 bps",
            inputs: vec![
                fill(&id("s1"), "alpha", 7.0, None),
                fill(&id("s2"), "alpha", 8.0, None),
                fill(&id("s3"), "alpha", 9.0, None),
            ],
            expect_commands: 1,
        },
        Step {
            label: "operator resumes after review",
            inputs: vec![resume(&id("ops-1"))],
            expect_commands: 1,
        },
        Step {
            label: "losing streak on beta: 5 losing fills",
            inputs: (1..=5)
                .map(|i| {
                    fill(
                        &id(&format!("l{i}")),
                        "beta",
                        0.5,
                        Some(-250.0 * f64::from(i)),
                    )
                })
                .collect(),
            expect_commands: 1,
        },
        Step {
            label: "operator resumes",
            inputs: vec![resume(&id("ops-2"))],
            expect_commands: 1,
        },
    ]
}

fn payload(input: &Input) -> (String, Vec<u8>, String) {
    match input {
        Input::Fill(f) => (
            "exec_result".into(),
            serde_json::to_vec(f).unwrap_or_default(),
            f.strategy_id.clone(),
        ),
        Input::Ops(o) => (
            "ops_command".into(),
            serde_json::to_vec(o).unwrap_or_default(),
            o.scope.to_string(),
        ),
        Input::RiskEvent(e) => (
            "risk_event".into(),
            serde_json::to_vec(e).unwrap_or_default(),
            e.scope.to_string(),
        ),
        Input::Release(r) => (
            "strategy_release".into(),
            serde_json::to_vec(r).unwrap_or_default(),
            r.strategy_id.clone(),
        ),
    }
}

fn input_id(input: &Input) -> String {
    match input {
        Input::Fill(f) => f.fill_id.clone(),
        Input::Ops(o) => o.command_id.clone(),
        Input::RiskEvent(e) => e.event_id.clone(),
        Input::Release(r) => format!("{}@{}", r.strategy_id, r.adopted_at),
    }
}

pub fn run(args: DemoArgs) -> Result<(), Failure> {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn,librdkafka=error,rdkafka=error");
    }
    init_logs(LogFormat::Human);
    let step_pause = guard::time::Span::parse(&args.step_pause)
        .map_err(|e| Failure::usage(format!("--step-pause: {e}")))?;
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));

    let cluster = MockCluster::new(1).map_err(|e| fail("cannot start the mock cluster", &e))?;
    let brokers = cluster.bootstrap_servers();
    let state_dir = std::env::temp_dir().join(format!("guard-demo-{}", std::process::id()));
    let mut config = LiveConfig::new(brokers.clone(), &state_dir);
    config.http_listen = args.http_listen;
    config.checkpoint_interval = Duration::from_millis(100);
    for topic in config.topics.all() {
        cluster
            .create_topic(&topic, 1, 1)
            .map_err(|e| fail("cannot create a topic", &e))?;
    }
    println!(
        "guard demo: mock Kafka cluster at {brokers}, state in {}",
        state_dir.display()
    );
    println!("policy {} (the runbook default: 3 fills > 5.0 bps within 10 min, 5 losses in a row, pause global)\n", config.policy.version());

    let status = StatusHandle::default();
    let stop = Arc::new(AtomicBool::new(false));
    if config.http_listen.is_some() {
        start_shell(&config, status.clone(), stop.clone())?;
    }
    let guard_config = config.clone();
    let guard_stop = stop.clone();
    let guard_status = status.clone();
    // The same path as `guard run`: lease, changelog, restore, the pipeline.
    let guard_thread = std::thread::spawn(move || -> Result<(), String> {
        let store = SledStore::open(&guard_config.state_dir).map_err(|e| e.to_string())?;
        guard::live::standby::run(guard_config, store, guard_status, &guard_stop)
            .map_err(|e| e.to_string())
    });
    // Wait until the guard has taken the active role and assigned its inputs.
    let ready_by = Instant::now() + Duration::from_secs(30);
    while !status.lock().ready && Instant::now() < ready_by && !guard_thread.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }

    // The listener and the Do layer use the guard's own latency settings.
    let listener: BaseConsumer = kafka::consumer(&config)
        .set("group.id", "guard-demo-listener")
        .create()
        .map_err(|e| fail("cannot create the listener", &e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&config.topics.guard_command, 0, Offset::Beginning)
        .map_err(|e| fail("listener", &e))?;
    listener.assign(&tpl).map_err(|e| fail("listener", &e))?;
    let do_layer: BaseProducer = kafka::producer(&config)
        .create()
        .map_err(|e| fail("cannot create the Do layer producer", &e))?;
    // Warm the connections (the first idempotent send fetches a producer id).
    let _ = do_layer.send(
        BaseRecord::to(&config.topics.dlq)
            .key("warm-up")
            .payload("{}"),
    );
    let _ = do_layer.flush(Duration::from_secs(5));

    let run_id = format!("{:x}", Timestamp::now().as_micros());
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut sent_inputs: Vec<Input> = Vec::new();
    let mut received: Vec<GuardCommand> = Vec::new();
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for step in script(&run_id) {
        if guard_thread.is_finished() {
            break;
        }
        println!("▶ {}", step.label);
        for input in step.inputs {
            let (topic, bytes, key) = payload(&input);
            sent_at.insert(input_id(&input), Instant::now());
            do_layer
                .send(BaseRecord::to(&topic).key(&key).payload(&bytes))
                .map_err(|(e, _)| fail("Do layer send", &e))?;
            do_layer.poll(Duration::ZERO);
            sent_inputs.push(input);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let wanted = received.len() + step.expect_commands;
        while Instant::now() < deadline
            && (received.len() < wanted || step.expect_commands == 0)
            && !guard_thread.is_finished()
        {
            do_layer.poll(Duration::ZERO);
            match listener.poll(Duration::from_millis(if step.expect_commands == 0 {
                200
            } else {
                1
            })) {
                Some(Ok(message)) => {
                    let arrived = Instant::now();
                    let Ok(command) = serde_json::from_slice::<GuardCommand>(
                        message.payload().unwrap_or_default(),
                    ) else {
                        continue;
                    };
                    let ms = sent_at
                        .get(&command.trigger)
                        .map(|t| arrived.duration_since(*t).as_secs_f64() * 1e3);
                    if let Some(ms) = ms {
                        let _ = latency.record((ms * 1e3).max(1.0) as u64);
                    }
                    println!(
                        "  ⇒ {} {:<8} rule={:<16} trigger={:<22} {}  ({})",
                        command.action.as_str().to_uppercase(),
                        command.scope.to_string(),
                        command.rule.as_str(),
                        command.trigger,
                        ms.map_or_else(
                            || "latency n/a".to_owned(),
                            |ms| format!("{ms:.2} ms after the trigger was sent")
                        ),
                        command.reason
                    );
                    received.push(command);
                }
                Some(Err(e)) => println!("  listener error: {e}"),
                None if step.expect_commands == 0 => break,
                None => {}
            }
        }
        if received.len() < wanted {
            println!("  (no command within 15 s — see the guard's log)");
        }
        std::thread::sleep(Duration::from_micros(step_pause.as_micros().max(0) as u64));
    }
    let metrics = guard::live::status::prometheus(&status.lock());
    stop.store(true, Ordering::Relaxed);
    guard_thread
        .join()
        .map_err(|_| Failure::run("the guard thread panicked"))?
        .map_err(|e| Failure::run(format!("guard: {e}")))?;

    // The same messages through the replay engine must give the same commands.
    let mut replay = Engine::new(
        config.policy.clone(),
        EngineOptions {
            clock: live_engine_clock(),
            ..EngineOptions::default()
        },
    );
    let expected: Vec<String> = sent_inputs
        .iter()
        .flat_map(|i| replay.apply(i).decisions)
        .filter_map(|d| match d {
            Decision::GuardCommand(c) => Some(c.command_id),
            Decision::RiskEvent(_) => None,
        })
        .collect();
    let got: Vec<String> = received.iter().map(|c| c.command_id.clone()).collect();
    println!("\nsummary");
    println!("  messages sent        {}", sent_inputs.len());
    println!(
        "  commands received    {} ({} pause, {} resume)",
        received.len(),
        received
            .iter()
            .filter(|c| c.action == Action::Pause)
            .count(),
        received
            .iter()
            .filter(|c| c.action == Action::Resume)
            .count()
    );
    if !latency.is_empty() {
        println!(
            "  trigger → command    p50 {:.2} ms, max {:.2} ms (two broker hops and the guard)",
            latency.value_at_quantile(0.5) as f64 / 1e3,
            latency.max() as f64 / 1e3
        );
    }
    let checkpoints = metrics
        .lines()
        .find(|l| l.starts_with("guard_checkpoints_total"))
        .unwrap_or("");
    println!(
        "  state checkpoints    {}",
        checkpoints.split_whitespace().last().unwrap_or("0")
    );
    println!(
        "  live == replay       {}",
        if got == expected {
            "yes: the same command ids in the same order"
        } else {
            "NO"
        }
    );
    let _ = std::fs::remove_dir_all(&state_dir);
    // Clients go before the cluster they talk to.
    drop(listener);
    drop(do_layer);
    drop(cluster);
    if got != expected {
        return Err(Failure::run(format!(
            "live commands differ from replay: live {got:?}, replay {expected:?}"
        )));
    }
    Ok(())
}

/// The demo's guard runs on the wall clock; so does its replay check, which only
/// ticks when the live guard would (no maintenance window unless one is on now).
fn live_engine_clock() -> guard::engine::ClockMode {
    guard::engine::ClockMode::External
}
