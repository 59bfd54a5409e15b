//! Measures one produce → consume hop on the mock cluster with the guard's client settings.
use std::time::{Duration, Instant};

use guard::live::{kafka, LiveConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn main() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let config = LiveConfig::new(cluster.bootstrap_servers(), "/tmp/x");
    let consumer: BaseConsumer = kafka::consumer(&config).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let producer: BaseProducer = kafka::producer(&config).create().unwrap();
    let mut samples = Vec::new();
    for i in 0..50 {
        let sent = Instant::now();
        producer
            .send(BaseRecord::to("t").key("k").payload(&format!("{i}")))
            .unwrap();
        producer.poll(Duration::ZERO);
        loop {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(1)) {
                let _ = m.payload();
                break;
            }
        }
        samples.push(sent.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(20));
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("hop ms: p50 {:.2} max {:.2}", samples[25], samples[49]);
    producer.flush(Duration::from_secs(1)).unwrap();
}
