//! A changelog record the broker did not take, on librdkafka's mock cluster. The
//! records after it are delivered, but every later manifest of its lineage names
//! the lost block, so no reader could restore any of them: the writer gives the
//! lineage up, and the next checkpoint starts a new one that restores whole.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::{Changelog, ChangelogWriter};
use crate::live::config::LiveConfig;
use crate::live::store::{Checkpoint, SeenBlocks, SeenEntry};

pub(super) fn config(brokers: &str, instance: &str) -> LiveConfig {
    let mut config = LiveConfig::new(brokers, "unused");
    config.instance = instance.to_owned();
    config
}

pub(super) fn checkpoint(seq: u64) -> Checkpoint {
    Checkpoint {
        seq,
        engine: format!(r#"{{"seq":{seq}}}"#).into_bytes(),
        offsets: BTreeMap::from([(("exec_result".to_owned(), 0), seq as i64 * 100)]),
        ..Checkpoint::default()
    }
}

/// Ids `from..to`, one per event second.
pub(super) fn ids(from: u64, to: u64) -> SeenBlocks {
    (from..to)
        .map(|i| SeenEntry::new(u128::from(i) << 64, i as i64))
        .collect()
}

/// Lets the writer serve its delivery reports until `done` says so, at most 10 s.
pub(super) fn idle_until(writer: &mut ChangelogWriter, done: impl Fn(&ChangelogWriter) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(writer) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        writer.idle();
    }
}

#[test]
fn a_record_the_broker_did_not_take_gives_the_lineage_up_and_the_next_restores_whole() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let active = config(&brokers, "vm-a");
    mock.create_topic(&active.topics.state, 1, 1)
        .expect("topic");
    let mut writer = Changelog::open(&active)
        .expect("opened")
        .activate()
        .expect("writer");

    // The lineage's first checkpoint, with the whole set.
    let first = ids(0, 100);
    writer.written(checkpoint(1), 1, &first, Some(&first));
    assert!(!writer.wants_full());
    idle_until(&mut writer, |w| w.in_flight() == 0);
    assert_eq!(
        writer.in_flight(),
        0,
        "the first checkpoint is on the broker"
    );
    assert_eq!(writer.new_failures(), 0);

    // The broker refuses the next produce request for good: the block of
    // checkpoint 2 is not delivered.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 1],
    );
    writer.written(checkpoint(2), 2, &ids(100, 150), None);
    idle_until(&mut writer, ChangelogWriter::wants_full);
    assert!(
        writer.wants_full(),
        "a lineage with a lost block is given up: its next checkpoint must carry the whole set"
    );
    assert_eq!(writer.new_failures(), 1);
    assert_eq!(writer.new_failures(), 0, "counted once");

    // A checkpoint without the whole set adds nothing to the new lineage; the next
    // one with it starts the lineage, and its snapshot restores whole.
    writer.written(checkpoint(3), 3, &ids(150, 160), None);
    let all = ids(0, 170);
    writer.written(checkpoint(4), 4, &ids(160, 170), Some(&all));
    assert!(!writer.wants_full());
    // Its state and manifest go out at most once a second.
    idle_until(&mut writer, |w| !w.holds_pending() && w.in_flight() == 0);
    assert_eq!(writer.new_failures(), 0, "the new lineage is on the broker");

    let mut standby = Changelog::open(&config(&brokers, "vm-b")).expect("opened");
    assert!(standby.catch_up(Duration::from_secs(2)));
    let published = standby.latest().expect("a complete snapshot");
    assert_eq!(published.checkpoint.seq, 4);
    assert_eq!(published.checkpoint.engine, checkpoint(4).engine);
    let seen: Vec<SeenEntry> = published.seen.iter().collect();
    assert_eq!(seen, all.iter().collect::<Vec<_>>());

    // Refused again soon after: that lineage is given up too, but the next waits
    // (each starts with the whole dedup set, which must not go out at every
    // checkpoint while the broker refuses the changelog).
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 1],
    );
    writer.written(checkpoint(5), 5, &ids(170, 180), None);
    idle_until(&mut writer, ChangelogWriter::backing_off);
    assert!(
        writer.backing_off(),
        "a second lineage lost in a row backs off"
    );
    assert!(!writer.wants_full(), "no whole set is asked for meanwhile");
    writer.close();
}
