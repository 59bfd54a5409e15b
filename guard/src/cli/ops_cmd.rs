//! `guard pause` / `guard reduce-only` / `guard resume`: the runbook's toggle. Publishes an `ops_command`,
//! prints its id, and waits for the guard's answer: the resulting `guard_command`, or
//! word from the guard's HTTP endpoint that the scope was already in that state.

use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use guard::live::{kafka, LiveConfig};
use guard::message::{Action, GuardCommand, OpsCommand, Scope};

use super::delivery::Checked;
use super::{http_client, kafka_failure, span_flag, Failure};

#[derive(Args, Debug)]
pub struct OpsArgs {
    /// `global` or `strategy:ID`.
    #[arg(long, value_parser = Scope::parse_cli)]
    scope: Scope,
    /// Who gives the order (recorded in the command and the guard's logs).
    #[arg(long, env = "GUARD_OPERATOR")]
    operator: String,
    /// Why.
    #[arg(long)]
    reason: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "GUARD_BROKERS")]
    brokers: String,
    /// The guard's HTTP address, asked whether it applied the order.
    #[arg(long, env = "GUARD_HTTP", default_value = "http://127.0.0.1:8686")]
    http: String,
    /// How long to wait for the guard's answer.
    #[arg(long, default_value = "15s")]
    timeout: String,
    /// Topic of operators' orders.
    #[arg(long, env = "GUARD_TOPIC_OPS_COMMAND", default_value = "ops_command")]
    topic_ops_command: String,
    /// Topic of the guard's commands.
    #[arg(
        long,
        env = "GUARD_TOPIC_GUARD_COMMAND",
        default_value = "guard_command"
    )]
    topic_guard_command: String,
    /// librdkafka setting KEY=VALUE (secrets: GUARD_KAFKA_<KEY> in the environment).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
}

/// Publishes the operator's order and waits for the guard to act on it.
///
/// # Errors
/// A usage [`Failure`] for bad flags; a run [`Failure`] when Kafka fails or the guard
/// does not answer within `--timeout`.
pub fn run(args: OpsArgs, action: Action) -> Result<(), Failure> {
    let timeout = span_flag(&args.timeout, "--timeout")?;
    let operator = args.operator.trim();
    if operator.is_empty() || operator == "unknown" {
        return Err(Failure::usage(
            "--operator must name who gives the order (not empty, not \"unknown\"); set it or GUARD_OPERATOR",
        ));
    }
    let config = super::client_config(&args.brokers, &args.kafka)?;
    let listener = listen_from_end(&config, &args.topic_guard_command)?;
    let command = guard::live::ops::command(
        action,
        args.scope.clone(),
        &args.operator,
        args.reason.clone(),
    );
    publish(&config, &args.topic_ops_command, &command)?;
    println!(
        "{} {} published: command_id {}",
        action.as_str(),
        command.scope,
        command.command_id
    );
    if await_answer(&listener, &args.http, &command, timeout) {
        return Ok(());
    }
    Err(Failure::run(format!(
        "no answer from the guard within {} (is it running and reading {}? check {}/readyz); the order stays on the topic and will be applied when the guard reads it",
        args.timeout, args.topic_ops_command, args.http
    )))
}

/// A listener on every partition of `topic` from its current end, created before the
/// order is published so the guard's answer cannot slip past.
///
/// # Errors
/// A run [`Failure`] when the brokers cannot be reached.
fn listen_from_end(config: &LiveConfig, topic: &str) -> Result<BaseConsumer, Failure> {
    let kafka_err = kafka_failure(&config.brokers);
    let listener: BaseConsumer = kafka::consumer(config)
        .set("group.id", "guard-ops-cli")
        .create()
        .map_err(&kafka_err)?;
    let metadata = listener
        .fetch_metadata(Some(topic), kafka::METADATA_TIMEOUT)
        .map_err(&kafka_err)?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (_, high) = listener
                .fetch_watermarks(topic, p.id(), kafka::METADATA_TIMEOUT)
                .map_err(&kafka_err)?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))
                .map_err(&kafka_err)?;
        }
    }
    listener.assign(&tpl).map_err(&kafka_err)?;
    Ok(listener)
}

/// Publishes the order keyed by its scope, and waits until the broker has it: the
/// command line must not report an order that was never delivered (a flushed queue
/// is not a delivered order: the broker may have refused it).
///
/// # Errors
/// A run [`Failure`] when the send fails, or the broker refuses the order or does
/// not acknowledge it within 10 s.
fn publish(config: &LiveConfig, topic: &str, command: &OpsCommand) -> Result<(), Failure> {
    let mut producer = Checked::new(config)?;
    let payload = serde_json::to_vec(command).map_err(|e| Failure::run(e.to_string()))?;
    producer.send(topic, &command.scope.to_string(), &payload)?;
    producer.finish(Duration::from_secs(10)).map_err(|e| {
        Failure::run(format!(
            "the order {} was not published, nothing will act on it: {}",
            command.command_id, e.message
        ))
    })?;
    Ok(())
}

/// Waits up to `timeout` for either answer the guard can give: its command on the
/// topic, or (when nothing changed, so no command is published) word from its HTTP
/// endpoint. Prints the answer and returns whether one came.
fn await_answer(
    listener: &BaseConsumer,
    http: &str,
    command: &OpsCommand,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut next_http = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        if let Some(answer) = poll_answer(listener, &command.command_id) {
            println!(
                "guard: {} {} (rule {}, command_id {}): {}",
                answer.action.as_str(),
                answer.scope,
                answer.rule.as_str(),
                answer.command_id,
                answer.reason
            );
            return true;
        }
        if Instant::now() >= next_http {
            next_http = Instant::now() + Duration::from_millis(250);
            if applied_without_change(http, &command.command_id) {
                let state = match command.action {
                    Action::Pause => "paused",
                    Action::ReduceOnly => "reduce-only or paused",
                    Action::Resume => "running",
                };
                println!(
                    "guard: applied; {} was already {state}, so no command was issued",
                    command.scope
                );
                return true;
            }
        }
    }
    false
}

/// The guard's command triggered by `command_id`, if the next message (within 50 ms)
/// is one; other commands on the topic are someone else's.
fn poll_answer(listener: &BaseConsumer, command_id: &str) -> Option<GuardCommand> {
    let message = listener.poll(Duration::from_millis(50))?.ok()?;
    serde_json::from_slice::<GuardCommand>(message.payload().unwrap_or_default())
        .ok()
        .filter(|answer| answer.trigger == command_id)
}

/// Whether the guard's HTTP endpoint says it applied the order and nothing changed;
/// an unreachable endpoint is not an answer, the topic may still bring one.
fn applied_without_change(http: &str, command_id: &str) -> bool {
    matches!(
        http_client::get(
            http,
            &format!("/ops/applied/{command_id}"),
            Duration::from_secs(2),
        ),
        Ok((200, body)) if body.contains("\"changed\":false")
    )
}
