//! `drain-ceiling`: the ceiling row of bench/compare.sh. A consumer that reads the
//! input and does nothing with it, built from the guard's own consumer settings
//! (`guard::live::kafka::input_consumer`: fetch waits, queue limits, no Nagle) and reading
//! the way the guard reads: every partition of the topic assigned from the beginning,
//! `BaseConsumer::poll` one message at a time. What the guard does on top of this is
//! its own cost; this is what the client library and the broker allow.
//!
//!   drain-ceiling BROKERS TOPIC MESSAGES
//!
//! Speaks the drain protocol (`bench::drain`): `ready` once assigned, `done N` after N
//! messages; then exits.

use std::time::Duration;

use bench::drain;
use guard::live::{kafka, LiveConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn die(m: &str) -> ! {
    eprintln!("drain-ceiling: {m}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic, messages] = args.as_slice() else {
        die("usage: drain-ceiling BROKERS TOPIC MESSAGES");
    };
    let expected: u64 = messages
        .parse()
        .unwrap_or_else(|_| die("MESSAGES is a count"));
    let mut config = LiveConfig::new(brokers.as_str(), std::env::temp_dir());
    config.kafka = guard::live::config::kafka_settings_from_env();
    // As drain-guard's input consumer.
    config.input_fetch_wait = kafka::MOCK_INPUT_FETCH_WAIT;
    let consumer: BaseConsumer = kafka::input_consumer(&config)
        .create()
        .unwrap_or_else(|e| die(&e.to_string()));
    let metadata = consumer
        .fetch_metadata(Some(topic), kafka::METADATA_TIMEOUT)
        .unwrap_or_else(|e| die(&e.to_string()));
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap_or_else(|e| die(&e.to_string()));
        }
    }
    if tpl.count() == 0 {
        die(&format!("topic {topic} has no partitions"));
    }
    consumer
        .assign(&tpl)
        .unwrap_or_else(|e| die(&e.to_string()));
    drain::announce_ready();
    let (mut seen, mut bytes) = (0u64, 0usize);
    while seen < expected {
        // The guard's turn: wait a little for the first message, then take what is there.
        match consumer.poll(Duration::from_millis(5)) {
            Some(Ok(message)) => {
                seen += 1;
                bytes +=
                    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => eprintln!("drain-ceiling: consumer error: {e}"),
            None => {}
        }
    }
    drain::announce_done(seen);
    eprintln!("drain-ceiling: {seen} messages, {bytes} bytes of keys and payloads");
}
