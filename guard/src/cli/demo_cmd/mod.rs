//! `guard demo`: the live guard on librdkafka's in-process mock cluster, fed by a
//! synthetic Do layer, watched by a command listener. No external broker needed.

mod gateways;
mod script;
mod tally;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{Offset, TopicPartitionList};

use guard::engine::{Engine, EngineOptions};
use guard::live::{kafka, LiveConfig, SledStore, StatusHandle};
use guard::message::{Action, Decision, Input};
use guard::policy::Policy;
use guard::time::Timestamp;

use super::run_cmd::{init_logs, start_shell, LogFormat};
use super::Failure;
use gateways::{Gateways, GATEWAYS};
use script::{input_id, payload, script, Step};
use tally::Tally;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Serve the guard's HTTP endpoints here while the demo runs (e.g. 127.0.0.1:8686).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Pause between the demo's steps, to watch it unfold.
    #[arg(long, default_value = "300ms")]
    step_pause: String,
}

/// Runs the demo from start to end and checks live against replay.
///
/// # Errors
/// A usage [`Failure`] for a bad `--step-pause` or HTTP address; a run [`Failure`] when
/// the mock cluster or a client cannot start, the guard fails, or the live commands
/// differ from replay's.
pub fn run(args: DemoArgs) -> Result<(), Failure> {
    quiet_logs();
    let step_pause = guard::time::Span::parse(&args.step_pause)
        .map_err(|e| Failure::usage(format!("--step-pause: {e}")))?;
    let (cluster, config) = mock_cluster(args.http_listen)?;
    print_banner(&config);
    let status = StatusHandle::default();
    let stop = Arc::new(AtomicBool::new(false));
    if config.http_listen.is_some() {
        start_shell(&config, status.clone(), stop.clone())?;
    }
    let guard_thread = spawn_guard(&config, status.clone(), stop.clone());
    wait_until_ready(&status, &guard_thread);
    println!(
        "▶ two order gateways start: closed until they have the pause state and hear the guard"
    );
    let mut gateways = Gateways::start(&config)?;
    let clients = Clients::connect(&config)?;
    let mut tally = Tally::new();
    let run_id = format!("{:x}", Timestamp::now().as_micros());
    for step in script(&run_id) {
        if guard_thread.is_finished() {
            break;
        }
        if let Some(name) = step.silence {
            gateways.silence(name);
        }
        clients.play(step, &guard_thread, &mut tally, &gateways)?;
        std::thread::sleep(Duration::from_micros(step_pause.as_micros().max(0) as u64));
    }
    let checkpoints = checkpoints_written(&status);
    stop.store(true, Ordering::Relaxed);
    guard_thread
        .join()
        .map_err(|_| Failure::run("the guard thread panicked"))?
        .map_err(|e| Failure::run(format!("guard: {e}")))?;
    let expected = replay_command_ids(&config.policy, &tally.sent);
    let got: Vec<String> = tally
        .received
        .iter()
        .map(|c| c.command_id.clone())
        .collect();
    print_summary(&tally, &checkpoints, got == expected);
    let _ = std::fs::remove_dir_all(&config.state_dir);
    // Clients go before the cluster they talk to.
    gateways.stop();
    drop(clients);
    drop(cluster);
    if got != expected {
        return Err(Failure::run(format!(
            "live commands differ from replay: live {got:?}, replay {expected:?}"
        )));
    }
    Ok(())
}

/// A run [`Failure`] for a step of the demo's setup that failed.
fn fail(what: &str, e: &dyn std::fmt::Display) -> Failure {
    Failure::run(format!("{what}: {e}"))
}

/// Keeps librdkafka's and the guard's routine logs off the screen, so the demo's own
/// lines tell the story; a `RUST_LOG` the user set still wins.
fn quiet_logs() {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn,librdkafka=error,rdkafka=error");
    }
    init_logs(LogFormat::Human);
}

/// A one-broker mock cluster with every topic the guard touches, and a guard config
/// for it: state in a temporary directory of this process, a checkpoint every 100 ms.
///
/// # Errors
/// A run [`Failure`] when the cluster or a topic cannot be created.
fn mock_cluster(
    http_listen: Option<SocketAddr>,
) -> Result<(MockCluster<'static, DefaultProducerContext>, LiveConfig), Failure> {
    let cluster = MockCluster::new(1).map_err(|e| fail("cannot start the mock cluster", &e))?;
    let state_dir = std::env::temp_dir().join(format!("guard-demo-{}", std::process::id()));
    let mut config = LiveConfig::new(cluster.bootstrap_servers(), state_dir);
    config.http_listen = http_listen;
    // The runbook default, plus acknowledgements from the demo's two gateways, without
    // the weekly maintenance window: the demo runs on the wall clock, and a window that
    // happens to be open (Monday 17:00-18:00 UTC) would pause everything before the
    // script's first trip.
    config.policy = Policy::from_toml(&format!(
        "maintenance = []\n[acks]\ngateways = {GATEWAYS:?}\ntimeout = \"1s\"\n"
    ))
    .map_err(|e| fail("the demo's policy", &e))?;
    config.checkpoint_interval = Duration::from_millis(100);
    // The mock holds every empty fetch for the whole wait: fetch the inputs within a
    // millisecond, not the 40 ms meant for Kafka.
    config.input_fetch_wait = kafka::MOCK_INPUT_FETCH_WAIT;
    for topic in config.topics.all() {
        cluster
            .create_topic(&topic, 1, 1)
            .map_err(|e| fail("cannot create a topic", &e))?;
    }
    Ok((cluster, config))
}

/// Where the demo runs and which policy decides, before anything happens.
fn print_banner(config: &LiveConfig) {
    println!(
        "guard demo: mock Kafka cluster at {}, state in {}",
        config.brokers,
        config.state_dir.display()
    );
    println!("policy {} (the runbook default: 3 fills > 5.0 bps within 10 min, 5 losses in a row, pause global;\n  every command acknowledged by {} within 1 s)\n", config.policy.version(), GATEWAYS.join(" and "));
}

/// The guard's thread; it ends with the guard's error, if any, as text.
type GuardThread = JoinHandle<Result<(), String>>;

/// Starts the guard on its own thread, on the same path as `guard run`: lease,
/// changelog, restore, the pipeline.
fn spawn_guard(config: &LiveConfig, status: StatusHandle, stop: Arc<AtomicBool>) -> GuardThread {
    let config = config.clone();
    std::thread::spawn(move || -> Result<(), String> {
        let store = SledStore::open(&config.state_dir).map_err(|e| e.to_string())?;
        guard::live::standby::run(config, store, status, &stop).map_err(|e| e.to_string())
    })
}

/// Waits (up to 30 s) until the guard has taken the active role and assigned its
/// inputs, so the first step's latency measures the guard and not its start-up.
fn wait_until_ready(status: &StatusHandle, guard_thread: &GuardThread) {
    let ready_by = Instant::now() + Duration::from_secs(30);
    while !status.read().ready && Instant::now() < ready_by && !guard_thread.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The demo's two Kafka clients: the synthetic Do layer and the listener (commands,
/// the gateways' acknowledgements, the guard's risk events).
struct Clients {
    listener: BaseConsumer,
    do_layer: BaseProducer,
    topics: guard::live::config::Topics,
}

impl Clients {
    /// Creates both with the guard's own latency settings, the listener reading
    /// `guard_command` from the start, and warms the producer's connection so the
    /// first step's latency is not the connection's.
    ///
    /// # Errors
    /// A run [`Failure`] when either client cannot be created or assigned.
    fn connect(config: &LiveConfig) -> Result<Clients, Failure> {
        let listener: BaseConsumer = kafka::input_consumer(config)
            .set("group.id", "guard-demo-listener")
            .create()
            .map_err(|e| fail("cannot create the listener", &e))?;
        let mut tpl = TopicPartitionList::new();
        let t = &config.topics;
        for topic in [&t.guard_command, &t.guard_ack, &t.risk_event] {
            tpl.add_partition_offset(topic, 0, Offset::Beginning)
                .map_err(|e| fail("listener", &e))?;
        }
        listener.assign(&tpl).map_err(|e| fail("listener", &e))?;
        let do_layer: BaseProducer = kafka::producer(config)
            .create()
            .map_err(|e| fail("cannot create the Do layer producer", &e))?;
        // The first idempotent send fetches a producer id.
        let _ = do_layer.send(
            BaseRecord::to(&config.topics.dlq)
                .key("warm-up")
                .payload("{}"),
        );
        let _ = do_layer.flush(Duration::from_secs(5));
        Ok(Clients {
            listener,
            do_layer,
            topics: config.topics.clone(),
        })
    }

    /// Plays one step: announces it, sends its messages and listens for its commands.
    ///
    /// # Errors
    /// A run [`Failure`] when a message cannot be sent.
    fn play(
        &self,
        step: Step,
        guard_thread: &GuardThread,
        tally: &mut Tally,
        gateways: &Gateways,
    ) -> Result<(), Failure> {
        println!("▶ {}", step.label);
        for input in step.inputs {
            self.send(input, tally)?;
        }
        let before = tally.received.len();
        let wanted = before + step.expect_commands;
        let quiet = step.expect_commands == 0;
        self.listen(
            |t| t.received.len() >= wanted,
            quiet,
            guard_thread,
            tally,
            gateways,
        );
        if tally.received.len() < wanted {
            println!("  (no command within 15 s — see the guard's log)");
        }
        if step.silence.is_none() {
            // Every gateway acknowledges the step's commands.
            let ids: Vec<String> = tally.received[before..]
                .iter()
                .map(|c| c.command_id.clone())
                .collect();
            let all_acked = |t: &Tally| {
                ids.iter().all(|id| {
                    t.acked_by
                        .get(id)
                        .is_some_and(|by| by.len() >= GATEWAYS.len())
                })
            };
            self.listen(all_acked, false, guard_thread, tally, gateways);
        }
        if step.expect_escalation {
            let escalations = tally.escalations.len() + 1;
            self.listen(
                |t| t.escalations.len() >= escalations,
                false,
                guard_thread,
                tally,
                gateways,
            );
        }
        Ok(())
    }

    /// Sends one input as the Do layer, noting when, to time its command.
    ///
    /// # Errors
    /// A run [`Failure`] when the producer refuses the message.
    fn send(&self, input: Input, tally: &mut Tally) -> Result<(), Failure> {
        let (topic, bytes, key) = payload(&input);
        tally.sent_at.insert(input_id(&input), Instant::now());
        self.do_layer
            .send(BaseRecord::to(&topic).key(&key).payload(&bytes))
            .map_err(|(e, _)| fail("Do layer send", &e))?;
        self.do_layer.poll(Duration::ZERO);
        tally.sent.push(input);
        Ok(())
    }

    /// Listens until `done` holds, 15 s have passed or the guard has stopped; with
    /// `quiet`, until the topics are quiet for 200 ms instead, so a wrong command
    /// would still show. Prints what the gateways saw meanwhile.
    fn listen(
        &self,
        done: impl Fn(&Tally) -> bool,
        quiet: bool,
        guard_thread: &GuardThread,
        tally: &mut Tally,
        gateways: &Gateways,
    ) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let wait = Duration::from_millis(if quiet { 200 } else { 1 });
        while Instant::now() < deadline && (quiet || !done(tally)) && !guard_thread.is_finished() {
            self.do_layer.poll(Duration::ZERO);
            let polled = self.listener.poll(wait);
            gateways.print_changes();
            match polled {
                Some(Ok(message)) => {
                    let arrived = Instant::now();
                    let payload = message.payload().unwrap_or_default();
                    match message.topic() {
                        t if t == self.topics.guard_ack => tally.ack(payload, arrived),
                        t if t == self.topics.risk_event => tally.event(payload),
                        _ => tally.receive(payload, arrived),
                    }
                }
                Some(Err(e)) => println!("  listener error: {e}"),
                None if quiet => break,
                None => {}
            }
        }
    }
}

/// The live guard's checkpoint count, read from its metrics before it stops.
fn checkpoints_written(status: &StatusHandle) -> String {
    let metrics = guard::live::status::prometheus(&status.read());
    let checkpoints = metrics
        .lines()
        .find(|l| l.starts_with("guard_checkpoints_total"))
        .unwrap_or("");
    checkpoints
        .split_whitespace()
        .last()
        .unwrap_or("0")
        .to_owned()
}

/// The command ids the replay engine decides for the same messages in the same order:
/// what the live guard must have published.
fn replay_command_ids(policy: &Policy, inputs: &[Input]) -> Vec<String> {
    let mut replay = Engine::new(
        policy.clone(),
        EngineOptions {
            clock: live_engine_clock(),
            ..EngineOptions::default()
        },
    );
    inputs
        .iter()
        .flat_map(|i| replay.apply(i).decisions)
        .filter_map(|d| match d {
            Decision::GuardCommand(c) => Some(c.command_id),
            Decision::RiskEvent(_) => None,
        })
        .collect()
}

/// The closing summary: counts, latency, checkpoints and the live == replay verdict.
fn print_summary(tally: &Tally, checkpoints: &str, same_as_replay: bool) {
    let count = |action: Action| tally.received.iter().filter(|c| c.action == action).count();
    println!("\nsummary");
    println!("  messages sent        {}", tally.sent.len());
    println!(
        "  commands received    {} ({} pause, {} resume)",
        tally.received.len(),
        count(Action::Pause),
        count(Action::Resume)
    );
    if !tally.latency.is_empty() {
        println!(
            "  trigger → command    p50 {:.2} ms, max {:.2} ms (two broker hops and the guard)",
            tally.latency.value_at_quantile(0.5) as f64 / 1e3,
            tally.latency.max() as f64 / 1e3
        );
    }
    if !tally.ack_latency.is_empty() {
        println!(
            "  trigger → all gateways acknowledged  p50 {:.2} ms, max {:.2} ms ({} commands)",
            tally.ack_latency.value_at_quantile(0.5) as f64 / 1e3,
            tally.ack_latency.max() as f64 / 1e3,
            tally.ack_latency.len()
        );
    }
    println!(
        "  unacknowledged       {} command(s) escalated by the guard{}",
        tally.escalations.len(),
        tally
            .escalations
            .first()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    println!("  state checkpoints    {checkpoints}");
    println!(
        "  live == replay       {}",
        if same_as_replay {
            "yes: the same command ids in the same order"
        } else {
            "NO"
        }
    );
}

/// The demo's guard runs on the wall clock; so does its replay check, which only
/// ticks when the live guard would (no maintenance window unless one is on now).
fn live_engine_clock() -> guard::engine::ClockMode {
    guard::engine::ClockMode::External
}
