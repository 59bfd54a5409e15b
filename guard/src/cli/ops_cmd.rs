//! `guard pause` / `guard resume`: the runbook's toggle. Publishes an `ops_command`,
//! prints its id, and waits for the guard's answer: the resulting `guard_command`, or
//! word from the guard's HTTP endpoint that the scope was already in that state.

use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use guard::live::kafka;
use guard::message::{Action, GuardCommand, Scope};
use guard::time::Span;

use super::{http_client, Failure};

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

pub fn run(args: OpsArgs, action: Action) -> Result<(), Failure> {
    let timeout =
        Span::parse(&args.timeout).map_err(|e| Failure::usage(format!("--timeout: {e}")))?;
    let timeout = Duration::from_micros(timeout.as_micros().max(1) as u64);
    if args.operator.trim().is_empty() {
        return Err(Failure::usage("--operator must not be empty"));
    }
    let config = super::client_config(&args.brokers, &args.kafka)?;
    let kafka_err =
        |e: rdkafka::error::KafkaError| Failure::run(format!("kafka ({}): {e}", args.brokers));
    // Listen from the current end of guard_command before publishing, so the answer
    // cannot slip past.
    let listener: BaseConsumer = kafka::consumer(&config)
        .set("group.id", "guard-ops-cli")
        .create()
        .map_err(kafka_err)?;
    let metadata = listener
        .fetch_metadata(Some(&args.topic_guard_command), kafka::METADATA_TIMEOUT)
        .map_err(kafka_err)?;
    let mut tpl = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == args.topic_guard_command)
    {
        for p in topic.partitions() {
            let (_, high) = listener
                .fetch_watermarks(&args.topic_guard_command, p.id(), kafka::METADATA_TIMEOUT)
                .map_err(kafka_err)?;
            tpl.add_partition_offset(&args.topic_guard_command, p.id(), Offset::Offset(high))
                .map_err(kafka_err)?;
        }
    }
    listener.assign(&tpl).map_err(kafka_err)?;

    let command = guard::live::ops::command(
        action,
        args.scope.clone(),
        &args.operator,
        args.reason.clone(),
    );
    let producer: BaseProducer = kafka::producer(&config).create().map_err(kafka_err)?;
    let payload = serde_json::to_vec(&command).map_err(|e| Failure::run(e.to_string()))?;
    let key = command.scope.to_string();
    producer
        .send(
            BaseRecord::to(&args.topic_ops_command)
                .key(&key)
                .payload(&payload),
        )
        .map_err(|(e, _)| kafka_err(e))?;
    producer.flush(Duration::from_secs(10)).map_err(kafka_err)?;
    println!(
        "{} {} published: command_id {}",
        action.as_str(),
        command.scope,
        command.command_id
    );

    let deadline = Instant::now() + timeout;
    let mut next_http = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        if let Some(Ok(message)) = listener.poll(Duration::from_millis(50)) {
            if let Ok(answer) =
                serde_json::from_slice::<GuardCommand>(message.payload().unwrap_or_default())
            {
                if answer.trigger == command.command_id {
                    println!(
                        "guard: {} {} (rule {}, command_id {}): {}",
                        answer.action.as_str(),
                        answer.scope,
                        answer.rule.as_str(),
                        answer.command_id,
                        answer.reason
                    );
                    return Ok(());
                }
            }
        }
        if Instant::now() >= next_http {
            next_http = Instant::now() + Duration::from_millis(250);
            if let Ok((200, body)) = http_client::get(
                &args.http,
                &format!("/ops/applied/{}", command.command_id),
                Duration::from_secs(2),
            ) {
                if body.contains("\"changed\":false") {
                    let state = if action == Action::Pause {
                        "paused"
                    } else {
                        "running"
                    };
                    println!(
                        "guard: applied; {} was already {state}, so no command was issued",
                        command.scope
                    );
                    return Ok(());
                }
            }
        }
    }
    Err(Failure::run(format!(
        "no answer from the guard within {} (is it running and reading {}? check {}/readyz); the order stays on the topic and will be applied when the guard reads it",
        args.timeout, args.topic_ops_command, args.http
    )))
}
