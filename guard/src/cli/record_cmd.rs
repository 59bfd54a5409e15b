//! `guard record`: dumps the input streams between two times into a replay file
//! (CONTRACT §4), so any live day can be replayed and backtested.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::value::RawValue;

use guard::live::merge::{Merge, MergeKey, Partition};
use guard::live::{kafka, LiveConfig};
use guard::message::Stream;
use guard::time::Timestamp;

use super::{kafka_failure, span_flag, Failure};

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "GUARD_BROKERS")]
    brokers: String,
    /// First message time to record (RFC 3339; Kafka message timestamps).
    #[arg(long)]
    from: String,
    /// Last message time to record (inclusive).
    #[arg(long)]
    to: String,
    /// The replay file to write.
    #[arg(long)]
    output: PathBuf,
    /// Topic of fills.
    #[arg(long, env = "GUARD_TOPIC_EXEC_RESULT", default_value = "exec_result")]
    topic_exec_result: String,
    /// Topic of risk events.
    #[arg(long, env = "GUARD_TOPIC_RISK_EVENT", default_value = "risk_event")]
    topic_risk_event: String,
    /// Topic of adoptions.
    #[arg(
        long,
        env = "GUARD_TOPIC_STRATEGY_RELEASE",
        default_value = "strategy_release"
    )]
    topic_strategy_release: String,
    /// Topic of operators' orders.
    #[arg(long, env = "GUARD_TOPIC_OPS_COMMAND", default_value = "ops_command")]
    topic_ops_command: String,
    /// Stop when no message arrived for this long (the end of the topics).
    #[arg(long, default_value = "3s")]
    idle: String,
}

/// Records the input topics between `--from` and `--to` into a replay file.
///
/// # Errors
/// A usage [`Failure`] for bad flags or an unwritable output; a run [`Failure`] when
/// Kafka fails.
pub fn run(args: RecordArgs) -> Result<(), Failure> {
    let from = Timestamp::parse(&args.from).map_err(|e| Failure::usage(format!("--from: {e}")))?;
    let to = Timestamp::parse(&args.to).map_err(|e| Failure::usage(format!("--to: {e}")))?;
    if to < from {
        return Err(Failure::usage("--to is before --from"));
    }
    let idle = span_flag(&args.idle, "--idle")?;
    let mut config = super::client_config(&args.brokers, &[])?;
    config.topics.exec_result = args.topic_exec_result.clone();
    config.topics.risk_event = args.topic_risk_event.clone();
    config.topics.strategy_release = args.topic_strategy_release.clone();
    config.topics.ops_command = args.topic_ops_command.clone();
    let (consumer, partitions) = consume_from(&config, from)?;
    let to_ms = to.as_micros().div_euclid(1_000);
    let entries = read_until(&consumer, &config, to_ms, idle, partitions)?;
    let recorded = entries.len();
    let per_stream = write_in_merge_order(&args.output, entries)?;
    let counts: Vec<String> = Stream::ALL
        .iter()
        .zip(per_stream)
        // Acknowledgements (version 2) are named only when there were some.
        .filter(|(stream, n)| **stream != Stream::GuardAck || *n > 0)
        .map(|(stream, n)| format!("{n} {}", stream.as_str()))
        .collect();
    eprintln!(
        "recorded {recorded} messages ({}) from {from} to {to} into {}",
        counts.join(", "),
        args.output.display()
    );
    Ok(())
}

/// A consumer on every partition of the input topics, each starting at its first
/// message stamped at or after `from` (the broker's time index), and how many
/// partitions that is.
///
/// # Errors
/// A run [`Failure`] when the brokers cannot be reached.
fn consume_from(config: &LiveConfig, from: Timestamp) -> Result<(BaseConsumer, usize), Failure> {
    let kafka_err = kafka_failure(&config.brokers);
    let consumer: BaseConsumer = kafka::consumer(config)
        .set("group.id", "guard-record")
        .create()
        .map_err(&kafka_err)?;
    let from_ms = from.as_micros().div_euclid(1_000);
    let mut wanted = TopicPartitionList::new();
    for stream in Stream::ALL {
        let topic = config.topics.of(stream);
        let metadata = consumer
            .fetch_metadata(Some(topic), kafka::METADATA_TIMEOUT)
            .map_err(&kafka_err)?;
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                wanted
                    .add_partition_offset(topic, p.id(), Offset::Offset(from_ms))
                    .map_err(&kafka_err)?;
            }
        }
    }
    let start = consumer
        .offsets_for_times(wanted, kafka::METADATA_TIMEOUT)
        .map_err(&kafka_err)?;
    consumer.assign(&start).map_err(&kafka_err)?;
    Ok((consumer, start.count()))
}

/// Reads replay lines until every partition has passed `to_ms`, or nothing arrived for
/// `idle`: a partition with no message after the window never says it is done, so
/// silence must end the recording too.
///
/// # Errors
/// A run [`Failure`] when the consumer reports an error.
fn read_until(
    consumer: &BaseConsumer,
    config: &LiveConfig,
    to_ms: i64,
    idle: Duration,
    partitions: usize,
) -> Result<Merge<Partition, String>, Failure> {
    let kafka_err = kafka_failure(&config.brokers);
    let mut entries: Merge<Partition, String> = Merge::default();
    let mut done: BTreeMap<(String, i32), bool> = BTreeMap::new();
    let mut last_message = Instant::now();
    while last_message.elapsed() < idle && done.len() < partitions {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = polled.map_err(&kafka_err)?;
        last_message = Instant::now();
        let ts = message.timestamp().to_millis().unwrap_or(i64::MIN);
        let topic = message.topic().to_owned();
        if ts > to_ms {
            done.insert((topic, message.partition()), true);
            continue;
        }
        let Some(stream) = config.topics.stream_of(&topic) else {
            continue;
        };
        let key = MergeKey {
            timestamp_ms: ts,
            rank: stream.rank(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let line = replay_line(stream, message.payload().unwrap_or_default());
        entries.push((topic, message.partition()), key, line);
    }
    Ok(entries)
}

/// One replay-file envelope for a message. A payload that is not JSON is kept as a
/// string: the replay reports it as invalid, just as the live guard sent it to the
/// dead-letter topic.
fn replay_line(stream: Stream, payload: &[u8]) -> String {
    let event = match std::str::from_utf8(payload)
        .ok()
        .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
    {
        Some(raw) => raw.get().to_owned(),
        None => serde_json::to_string(&String::from_utf8_lossy(payload)).unwrap_or_default(),
    };
    format!(r#"{{"stream":"{}","event":{event}}}"#, stream.as_str())
}

/// Writes the lines in the live guard's merge order: Kafka timestamps order the
/// partitions against each other, and each partition keeps its own order, so the file
/// replays in the order a guard applies the same messages. Returns the count per
/// stream, in [`Stream::ALL`] order.
///
/// # Errors
/// A usage [`Failure`] when the file cannot be created; a run [`Failure`] when a write
/// fails.
fn write_in_merge_order(
    path: &Path,
    mut entries: Merge<Partition, String>,
) -> Result<[usize; Stream::ALL.len()], Failure> {
    let file = File::create(path)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    let mut out = BufWriter::new(file);
    let mut per_stream = [0usize; Stream::ALL.len()];
    while let Some((_, key, line)) = entries.pop_first() {
        per_stream[key.rank] += 1;
        writeln!(out, "{line}").map_err(|e| Failure::run(e.to_string()))?;
    }
    out.flush().map_err(|e| Failure::run(e.to_string()))?;
    Ok(per_stream)
}
