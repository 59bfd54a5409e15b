//! Sub-commands of the `guard` binary, one file each.

mod delivery;
mod demo_cmd;
mod explain_cmd;
mod gate_cmd;
mod http_client;
mod ops_cmd;
mod policy_cmd;
mod publish_cmd;
mod record_cmd;
mod replay_cmd;
mod run_cmd;
mod snapshot_cmd;
mod status_cmd;
mod topics_cmd;

use std::path::Path;

use clap::{Parser, Subcommand};

use guard::policy::Policy;

/// noctria-guard: pauses trading when fills show trouble, and says why.
///
/// The guard reads fills (exec_result), risk events, strategy releases and operator
/// orders, applies the runbook's rules (slippage window, losing streak, critical risk
/// events, operator orders, maintenance windows, enhanced monitoring after an
/// adoption) and publishes pause and resume commands with their reasons.
#[derive(Parser, Debug)]
#[command(name = "guard", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start and matched once: the size of the largest variant costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the guard's rules over recorded streams (JSON Lines) and write its decisions.
    ///
    /// Each input line is an envelope {"stream": "exec_result", "event": {...}} (also
    /// risk_event, strategy_release, ops_command), processed in file order, files in
    /// the order given. Decisions are written in the same envelope form
    /// (guard_command, risk_event) in the order the guard made them; `decided_at` is
    /// the trigger's event time, so the output is byte-for-byte reproducible.
    /// Invalid lines are reported on stderr with file, line number and reason, and
    /// skipped. The clock is the largest event time seen so far.
    ///
    /// Examples:
    ///   guard replay --input examples/day.jsonl
    ///   guard replay --policy policy.toml --input a.jsonl --input b.jsonl --output out.jsonl --report
    ///   guard replay --input examples/day.jsonl --sweep slippage.threshold_bps=3,5,8 --sweep slippage.trip_at=2,3
    ///   guard replay --input day.jsonl --output out.jsonl --summary-json -   (the figures as JSON on stdout)
    ///   guard replay --input day.jsonl --output out.jsonl --html day.html   (the day as one HTML page for people)
    #[command(verbatim_doc_comment)]
    Replay(replay_cmd::ReplayArgs),
    /// Why did trading stop? The chain behind one decision, over replay files.
    ///
    /// ID is a command_id (a guard command) or an event_id (a risk event the guard
    /// raised). The files are replayed with the policy exactly as `guard replay` does
    /// (same engine, same ids; invalid lines skipped), and explain prints: the decision
    /// (action or kind, scope, rule, reason, event time, policy version, the line being
    /// applied when it was decided); its trigger and every evidence message, decoded,
    /// with FILE:LINE; the scope's reasons (rule and effect) and mode before and after
    /// that step, and since when; the other decisions of the step with the same
    /// trigger (for a command: its risk event); the next command of the scope later in
    /// the files (what resumed it), or the scope at their end; and what to do: one
    /// line, the command to give, the runbook's section (docs/OPERATIONS.md).
    ///
    /// Over replay files (--input; `guard record` writes them from the live topics).
    /// Memory: to show evidence it keeps the line of every applied message with an id
    /// up to the decision (at most the size of the files, plus about 100 bytes of
    /// index a message) and the decisions up to it; reading stops once the next
    /// command of the scope is found.
    ///
    /// Or asking the running guard (--http URL, its GET /explain/ID): the guard keeps
    /// each decision it made since it started, back to the state's horizon (at most
    /// the last 2,000), with the step that made it; it looks the evidence up in its
    /// input topics by id, from the decision back to the horizon, and cites each
    /// message as TOPIC/PARTITION@OFFSET. A decision made on the guard's clock (a
    /// maintenance window's edge, an acknowledgement's deadline) was made "on the
    /// clock at T". Without a later command, `at_end` is the scope now.
    ///
    /// An ID that names no decision exits 1 with how many commands and risk events the
    /// files hold, the ids that look like it, where it is if it is an input message
    /// (and which decisions rest on it), and how to list the ids.
    ///
    /// --json prints one object with these keys:
    ///   id              the ID asked for
    ///   decision        {"stream","event"}: the decision as guard replay writes it
    ///   policy_version  the policy in force
    ///   step            {file,line,stream,id}: the line being applied when it was decided
    ///                   (live: {topic,partition,offset,stream,id}, or {clock} for a tick)
    ///   trigger         {id,from,...} (null if it cannot be told), as an evidence entry
    ///   evidence        [{id,from,...}]: from "input" (file, line, stream, message,
    ///                   and slippage_bps behind a slippage decision), "guard" (file,
    ///                   line, decision), "maintenance_window" (resume), "missing", or
    ///                   live "unfound" (searched: where it was looked for)
    ///   scope           "global" or "strategy:ID"
    ///   before, after   {mode, reasons: [{rule, effect}], since}: the scope around the step
    ///   same_trigger    [decision]: the step's other decisions with the same trigger
    ///   next_command    {file,line,decision}: the scope's next command, or null
    ///   at_end          the scope at the end of the files when there is no next command
    ///   act             {command (or null), advice, runbook: {title, link}}
    ///
    /// Examples:
    ///   guard replay --input day.jsonl | grep command_id
    ///   guard explain cmd-916a5ec32e69bb6e202c3281110962fa --input day.jsonl
    ///   guard explain evt-09d16fec53a0a66b8c05f9d77dc2da3c --policy policy.toml --input day.jsonl --json
    ///   guard explain cmd-916a5ec32e69bb6e202c3281110962fa --http http://127.0.0.1:8686
    #[command(verbatim_doc_comment)]
    Explain(explain_cmd::ExplainArgs),
    /// Check a policy file and print it with every default filled in, and its version.
    Policy(policy_cmd::PolicyArgs),
    /// Run the live guard: consume the input topics, publish pause and resume
    /// commands, keep state in sled, serve /healthz, /readyz, /metrics, /state, /ops/*.
    ///
    /// Example:
    ///   guard run --brokers 127.0.0.1:9092 --policy policy.toml --state-dir /var/lib/guard
    #[command(verbatim_doc_comment)]
    Run(run_cmd::RunArgs),
    /// Watch the guard work: an in-process Kafka mock cluster, a synthetic Do layer
    /// (a slippage burst, a losing streak, operator resumes), the real `guard run`
    /// path with sled in a temporary directory, and a command listener that prints
    /// each pause and resume with its end-to-end latency.
    Demo(demo_cmd::DemoArgs),
    /// Pause trading in a scope (the runbook's toggle_trading_pause --on): publishes an
    /// ops_command and waits for the guard's pause (or word that it was already paused).
    ///
    /// Example:
    ///   guard pause --brokers 127.0.0.1:9092 --scope global --operator tanaka --reason "venue outage"
    #[command(verbatim_doc_comment)]
    Pause(ops_cmd::OpsArgs),
    /// Let a scope only reduce positions (toggle_trading_pause --reduce-only): the
    /// gateways accept only orders that reduce a strategy's position while the global
    /// scope or its own is reduce-only. A pause outranks it; a resume clears it.
    ///
    /// Example:
    ///   guard reduce-only --brokers 127.0.0.1:9092 --scope strategy:alpha --operator tanaka --reason "wind down"
    #[command(verbatim_doc_comment)]
    ReduceOnly(ops_cmd::OpsArgs),
    /// Resume trading in a scope (toggle_trading_pause --off); clears every reason of the
    /// scope (pause and reduce-only) and resets its slippage windows and losing streaks.
    ///
    /// Example:
    ///   guard resume --brokers 127.0.0.1:9092 --scope strategy:alpha --operator tanaka --reason "reviewed"
    #[command(verbatim_doc_comment)]
    Resume(ops_cmd::OpsArgs),
    /// Show the running guard's state: paused scopes and why, open windows, streaks.
    Status(status_cmd::StatusArgs),
    /// Dump the input streams between two times into a replay file, to backtest a day.
    ///
    /// Example:
    ///   guard record --brokers 127.0.0.1:9092 --from 2025-08-11T00:00:00Z --to 2025-08-12T00:00:00Z --output day.jsonl
    #[command(verbatim_doc_comment)]
    Record(record_cmd::RecordArgs),
    /// Back up or restore the state of a stopped guard (a versioned, checksummed file).
    ///
    /// Examples:
    ///   guard snapshot export --state-dir /var/lib/noctria-guard backup.json
    ///   guard snapshot import --state-dir /var/lib/noctria-guard backup.json
    #[command(verbatim_doc_comment)]
    Snapshot(snapshot_cmd::SnapshotArgs),
    /// Create the guard's topics (CONTRACT §1) with their partitions, retention and
    /// compaction; topics that exist are checked, not changed. Safe to run again.
    ///
    /// Example:
    ///   guard topics --brokers 127.0.0.1:9092 --partitions 6 --retention 7d
    #[command(verbatim_doc_comment)]
    Topics(topics_cmd::TopicsArgs),
    /// Publish the messages of a replay file onto the input topics (the inverse of
    /// record), keyed by strategy or scope, at a given rate — for drills and demos.
    ///
    /// Example:
    ///   guard publish --brokers 127.0.0.1:9092 --input examples/day.jsonl --rate 20
    #[command(verbatim_doc_comment)]
    Publish(publish_cmd::PublishArgs),
    /// Run a reference order gateway (CONTRACT §6) on the gate library: follow the
    /// guard's pause state, commands and heartbeats, print one JSON line for every
    /// change of a scope's effective mode as this gateway sees it
    /// ({"gateway","scope","mode","command_id","at"}; scope "*" with a "reason" while
    /// it fails closed: no_state before the pause state is read, guard_silent when no
    /// active guard was heard for --max-silence), acknowledge every command on
    /// guard_ack, and with --http-listen serve /healthz, /metrics and
    /// GET /gate?strategy=ID. docs/GATEWAYS.md says what a gateway owes.
    ///
    /// Example:
    ///   guard gate --brokers 127.0.0.1:9092 --gateway gw-tokyo --http-listen 127.0.0.1:9310
    #[command(verbatim_doc_comment)]
    Gate(gate_cmd::GateArgs),
    /// Exit 0 when the running guard answers /healthz (or /readyz with --ready) with
    /// 200, else 1: for container health checks.
    Healthcheck(status_cmd::HealthcheckArgs),
}

/// Why a command failed: the one line to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// One line (hints may follow on lines of their own, indented), no trailing newline.
    pub message: String,
    /// Process exit code.
    pub code: u8,
}

impl Failure {
    /// Bad usage, config or input file (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// The run itself failed (exit 1).
    pub fn run(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// A [`Failure`] with the message and exit code.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Replay(args) => replay_cmd::run(args),
        Command::Explain(args) => explain_cmd::run(args),
        Command::Policy(args) => policy_cmd::run(args),
        Command::Run(args) => run_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Pause(args) => ops_cmd::run(args, guard::message::Action::Pause),
        Command::ReduceOnly(args) => ops_cmd::run(args, guard::message::Action::ReduceOnly),
        Command::Resume(args) => ops_cmd::run(args, guard::message::Action::Resume),
        Command::Status(args) => status_cmd::run(args),
        Command::Record(args) => record_cmd::run(args),
        Command::Snapshot(args) => snapshot_cmd::run(args),
        Command::Topics(args) => topics_cmd::run(args),
        Command::Publish(args) => publish_cmd::run(args),
        Command::Healthcheck(args) => status_cmd::healthcheck(args),
        Command::Gate(args) => gate_cmd::run(args),
    }
}

/// Reads a policy file (the runbook default when `path` is `None`) and returns its
/// text and the resolved policy.
///
/// # Errors
/// A usage [`Failure`] naming the file and every problem in it.
pub fn load_policy(path: Option<&Path>) -> Result<(String, Policy), Failure> {
    let Some(path) = path else {
        return Ok((String::new(), Policy::default()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read policy {}: {e}", path.display())))?;
    let policy =
        Policy::from_toml(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    Ok((text, policy))
}

/// Client settings for a tool that talks to the brokers: `--kafka KEY=VALUE` pairs,
/// then `GUARD_KAFKA_*` variables (where secrets come from).
///
/// # Errors
/// A usage [`Failure`] for a pair without `=`.
pub fn client_config(brokers: &str, kafka: &[String]) -> Result<guard::live::LiveConfig, Failure> {
    let mut config = guard::live::LiveConfig::new(brokers, ".");
    for pair in kafka {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--kafka takes KEY=VALUE, not {pair:?}")))?;
        config.kafka.push((k.to_owned(), v.to_owned()));
    }
    config
        .kafka
        .extend(guard::live::config::kafka_settings_from_env());
    Ok(config)
}

/// A Kafka error as a run [`Failure`] that names the brokers, since a wrong address is
/// what an operator checks first.
pub fn kafka_failure(brokers: &str) -> impl Fn(rdkafka::error::KafkaError) -> Failure + '_ {
    move |e| Failure::run(format!("kafka ({brokers}): {e}"))
}

/// A span setting (`15s`, `200ms`) as a duration; a span under a microsecond, zero or
/// negative, becomes one microsecond, the shortest wait or interval there is.
///
/// # Errors
/// A usage [`Failure`] that starts with the flag's name.
pub fn span_flag(text: &str, flag: &str) -> Result<std::time::Duration, Failure> {
    let span =
        guard::time::Span::parse(text).map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
    Ok(std::time::Duration::from_micros(
        span.as_micros().max(1) as u64
    ))
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if readable.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
