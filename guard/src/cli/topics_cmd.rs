//! `guard topics`: creates the topics of CONTRACT §1 with the settings the guard
//! expects, and checks the ones that already exist (safe to run again).

use std::time::Duration;

use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaErrorCode;

use guard::live::{kafka, Topics};
use guard::time::Span;

use super::{kafka_failure, Failure};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "GUARD_BROKERS")]
    brokers: String,
    /// Partitions of each input topic and of guard_command. Producers key fills,
    /// releases and strategy-scoped events by strategy id; more partitions do not
    /// change the guard's decisions (it merges them by timestamp).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor of every topic (3 on a production cluster).
    #[arg(long, default_value_t = 1)]
    replication: i32,
    /// Retention of the input topics: must cover the longest rule window plus the
    /// longest outage the guard may have to catch up on (CONTRACT §5).
    #[arg(long, default_value = "7d")]
    retention: String,
    /// Prefix of every topic name (e.g. `stg.` for a shared staging cluster).
    #[arg(long, default_value = "")]
    prefix: String,
    /// librdkafka setting KEY=VALUE (secrets: GUARD_KAFKA_<KEY> in the environment).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
}

/// One topic to create: name, partitions, configs, what it is for.
struct Plan {
    name: String,
    partitions: i32,
    configs: Vec<(&'static str, String)>,
    purpose: &'static str,
}

fn plans(args: &TopicsArgs, retention_ms: i64) -> Vec<Plan> {
    let t = Topics::default();
    let delete = |ms: i64| {
        vec![
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", ms.to_string()),
        ]
    };
    let day_ms = 86_400_000i64;
    let named = |n: &str| format!("{}{n}", args.prefix);
    let input = |name: &str, purpose| Plan {
        name: named(name),
        partitions: args.partitions,
        configs: delete(retention_ms),
        purpose,
    };
    vec![
        input(&t.exec_result, "fills (input)"),
        input(&t.risk_event, "risk events (input, and the guard's own)"),
        input(&t.strategy_release, "adoptions (input)"),
        input(&t.ops_command, "operators' orders (input)"),
        input(
            &t.guard_ack,
            "gateways' acknowledgements (input while [acks] gateways is set)",
        ),
        Plan {
            name: named(&t.guard_command),
            partitions: args.partitions,
            configs: delete(retention_ms.max(30 * day_ms)),
            purpose: "pause/resume commands (output, keyed by scope)",
        },
        Plan {
            name: named(&t.dlq),
            partitions: 1,
            configs: delete(30 * day_ms),
            purpose: "invalid messages with their reason (output)",
        },
        Plan {
            name: named(&t.state),
            partitions: 1,
            configs: vec![
                ("cleanup.policy", "compact".to_owned()),
                ("min.compaction.lag.ms", "60000".to_owned()),
                ("max.message.bytes", "1048576".to_owned()),
                // Compaction never touches the segment being written: with Kafka's
                // default of 7 days, the leases (one a second), the order records and
                // their tombstones would all stay a week, and a start reads them all.
                ("segment.ms", "3600000".to_owned()),
            ],
            purpose: "state changelog (compacted)",
        },
        Plan {
            name: named(&t.facts),
            partitions: 1,
            configs: delete(retention_ms),
            purpose: "trips, workers to aggregator (--scale-out)",
        },
        Plan {
            name: named(&t.pause_state),
            partitions: 1,
            configs: vec![
                ("cleanup.policy", "compact".to_owned()),
                ("min.compaction.lag.ms", "60000".to_owned()),
            ],
            purpose: "every scope's present mode, for gateways (compacted, keyed by scope)",
        },
        Plan {
            name: named(&t.heartbeat),
            partitions: 1,
            configs: delete(day_ms),
            purpose: "the guard's heartbeat, for gateways and monitoring",
        },
    ]
}

/// Creates the guard's topics and prints one line per topic: created, already there,
/// or failed.
///
/// # Errors
/// A usage [`Failure`] for bad flags; a run [`Failure`] when Kafka fails or any topic
/// could not be created.
pub fn run(args: TopicsArgs) -> Result<(), Failure> {
    if args.partitions < 1 || args.replication < 1 {
        return Err(Failure::usage(
            "--partitions and --replication must be at least 1",
        ));
    }
    let retention =
        Span::parse(&args.retention).map_err(|e| Failure::usage(format!("--retention: {e}")))?;
    let retention_ms = retention.as_micros() / 1_000;
    let config = super::client_config(&args.brokers, &args.kafka)?;
    let kafka_err = kafka_failure(&args.brokers);
    let admin: AdminClient<DefaultClientContext> =
        kafka::base(&config).create().map_err(&kafka_err)?;
    let plans = plans(&args, retention_ms);
    let results = create_all(&admin, &plans, args.replication, &args.brokers)?;
    let reader: BaseConsumer = kafka::base(&config).create().map_err(&kafka_err)?;
    let mut failed = Vec::new();
    for (plan, result) in plans.iter().zip(results) {
        let verdict = match result {
            Ok(_) => format!("created ({} partitions)", plan.partitions),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let partitions = partition_count(&reader, &plan.name).map_err(&kafka_err)?;
                format!("exists ({partitions} partitions)")
            }
            Err((_, code)) => {
                failed.push(format!("{}: {code}", plan.name));
                format!("FAILED: {code}")
            }
        };
        println!("{:<28} {:<26} {}", plan.name, verdict, plan.purpose);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(format!(
            "could not create {}",
            failed.join(", ")
        )))
    }
}

/// Asks the brokers to create every planned topic in one request; each topic's own
/// result tells created from already there.
///
/// # Errors
/// A run [`Failure`] when the admin runtime cannot start or the request as a whole
/// fails.
fn create_all(
    admin: &AdminClient<DefaultClientContext>,
    plans: &[Plan],
    replication: i32,
    brokers: &str,
) -> Result<Vec<TopicResult>, Failure> {
    let new: Vec<NewTopic> = plans
        .iter()
        .map(|p| {
            p.configs.iter().fold(
                NewTopic::new(&p.name, p.partitions, TopicReplication::Fixed(replication)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::run(e.to_string()))?;
    runtime
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .map_err(kafka_failure(brokers))
}

/// The partition count of a topic that already exists: it is checked, not changed, so
/// the operator sees whether it matches `--partitions`.
///
/// # Errors
/// The Kafka error when the metadata cannot be fetched.
fn partition_count(reader: &BaseConsumer, topic: &str) -> KafkaResult<usize> {
    let metadata = reader.fetch_metadata(Some(topic), kafka::METADATA_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        topics: TopicsArgs,
    }

    #[test]
    fn the_state_topic_is_compacted_and_rolls_its_segments_hourly() {
        let args = Cli::parse_from(["guard", "--brokers", "b:9092"]).topics;
        let plans = plans(&args, 86_400_000);
        let state = plans
            .iter()
            .find(|p| p.name == Topics::default().state)
            .expect("a plan for the state topic");
        let config = |key: &str| {
            state
                .configs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(config("cleanup.policy"), Some("compact"));
        let segment_ms: i64 = config("segment.ms")
            .expect("segment.ms set: compaction skips the open segment")
            .parse()
            .unwrap();
        assert!(segment_ms <= 3_600_000, "segments of {segment_ms} ms");
    }
}
