//! Catching up at start, on librdkafka's mock cluster: a standby must have read every
//! record written before it started (an active peer's lease among them) when it judges
//! whether another instance is active.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use super::{now_ms, Changelog, Lease};
use crate::live::config::LiveConfig;

fn config(brokers: &str, instance: &str) -> LiveConfig {
    let mut config = LiveConfig::new(brokers, "unused");
    config.instance = instance.to_owned();
    config
}

/// `other`'s lease, written after `before` records of other keys, in batches.
fn write(brokers: &str, topic: &str, before: usize, lease_of: Option<&str>) {
    write_lease(brokers, topic, before, lease_of, None);
}

/// As [`write`], the lease naming store `store`.
fn write_lease(
    brokers: &str,
    topic: &str,
    before: usize,
    lease_of: Option<&str>,
    store: Option<&str>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in 0..before {
        let key = format!("noctria-guard/noise/{i}");
        producer
            .send(BaseRecord::to(topic).partition(0).key(&key).payload("{}"))
            .expect("queued");
        producer.poll(Duration::ZERO);
    }
    if let Some(instance) = lease_of {
        let lease = serde_json::to_vec(&Lease {
            instance: instance.to_owned(),
            at_ms: now_ms(),
            store: store.map(str::to_owned),
        })
        .expect("lease");
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(0)
                    .key("noctria-guard/lease")
                    .payload(&lease),
            )
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

#[test]
fn a_standby_has_read_the_lease_written_last_before_it_started() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let config = config(&mock.bootstrap_servers(), "vm-b");
    mock.create_topic(&config.topics.state, 1, 1)
        .expect("topic");
    write(
        &mock.bootstrap_servers(),
        &config.topics.state,
        5_000,
        Some("vm-a"),
    );
    let mut changelog = Changelog::open(&config).expect("opened");
    assert!(
        changelog.catch_up(Duration::from_secs(8)),
        "stopped by the quiet spell, not at the end"
    );
    assert_eq!(
        changelog
            .other_active(Duration::from_secs(60))
            .map(|l| l.instance.as_str()),
        Some("vm-a")
    );
    assert!(
        changelog.next_offset >= 5_001,
        "read to {}",
        changelog.next_offset
    );
}

#[test]
fn an_empty_changelog_is_read_at_once_and_holds_no_lease() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let config = config(&mock.bootstrap_servers(), "vm-b");
    mock.create_topic(&config.topics.state, 1, 1)
        .expect("topic");
    let mut changelog = Changelog::open(&config).expect("opened");
    assert!(
        changelog.catch_up(Duration::from_secs(8)),
        "an empty topic has nothing to wait for"
    );
    assert!(changelog.other_active(Duration::from_secs(60)).is_none());
}

/// A fresh lease written by an earlier process on this instance's state directory
/// (it names this instance's store, whose lock this process holds) is not another
/// instance's: a restart takes over at once. One naming another store still is.
#[test]
fn a_lease_naming_this_instances_store_is_its_predecessors() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let config = config(&mock.bootstrap_servers(), "vm-a-restarted");
    mock.create_topic(&config.topics.state, 1, 1)
        .expect("topic");
    write_lease(
        &mock.bootstrap_servers(),
        &config.topics.state,
        0,
        Some("vm-a"),
        Some("store-1"),
    );
    let mut changelog = Changelog::open(&config).expect("opened");
    changelog.own_store(Some("store-1"));
    changelog.catch_up(Duration::from_secs(8));
    assert!(changelog.other_active(Duration::from_secs(60)).is_none());
    changelog.own_store(Some("store-2"));
    assert_eq!(
        changelog
            .other_active(Duration::from_secs(60))
            .map(|l| l.instance.as_str()),
        Some("vm-a")
    );
    changelog.own_store(None);
    assert!(changelog.other_active(Duration::from_secs(60)).is_some());
}
