//! `peer-tool`: helpers of bench/compare.sh.
//!
//!   peer-tool create BROKERS TOPIC...      topics with one partition and explicit configs
//!   peer-tool load BROKERS TOPIC FILE      the exec_result events of a replay file, keyed by strategy
//!   peer-tool trips BROKERS TOPIC          every slippage trip on TOPIC (a guard risk event, or a
//!                                          peer's pause), as its sorted evidence, one per line

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn die(m: &str) -> ! {
    eprintln!("peer-tool: {m}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("create") if args.len() >= 3 => create(&args[1], &args[2..]),
        Some("load") if args.len() == 4 => load(&args[1], &args[2], &args[3]),
        Some("trips") if args.len() == 3 => trips(&args[1], &args[2]),
        _ => die("usage: peer-tool create BROKERS TOPIC... | load BROKERS TOPIC FILE | trips BROKERS TOPIC"),
    }
}

fn create(brokers: &str, topics: &[String]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap_or_else(|e| die(&e.to_string()));
    // quixstreams needs retention.ms present on its input topic.
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(t, 1, TopicReplication::Fixed(1))
                .set("retention.ms", "86400000")
                .set("cleanup.policy", "delete")
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap_or_else(|e| die(&e.to_string()));
    for r in results {
        if let Err((t, e)) = r {
            die(&format!("{t}: {e}"));
        }
    }
}

fn load(brokers: &str, topic: &str, file: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let reader =
        BufReader::new(std::fs::File::open(file).unwrap_or_else(|e| die(&format!("{file}: {e}"))));
    let mut n = 0u64;
    for line in reader.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["stream"] != "exec_result" {
            continue;
        }
        let key = v["event"]["strategy_id"].as_str().unwrap_or("").to_owned();
        let payload = serde_json::to_vec(&v["event"]).unwrap();
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(&payload)) {
                Ok(()) => break,
                Err(_) => producer.poll(Duration::from_millis(5)),
            }
        }
        n += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .unwrap_or_else(|e| die(&e.to_string()));
    println!("{n}");
}

fn trips(brokers: &str, topic: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "peer-tool")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            if let Ok(v) =
                serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
            {
                let guard_trip = v["kind"] == "slippage_window";
                let peer_trip = v["action"] == "pause"
                    && v["rule"] == "slippage_window"
                    && v.get("command_id").is_none();
                if guard_trip || peer_trip {
                    let mut evidence: Vec<String> = v["evidence"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    evidence.sort();
                    out.push(evidence.join(","));
                }
            }
        }
    }
    out.sort();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    for t in out {
        let _ = writeln!(lock, "{t}");
    }
}
