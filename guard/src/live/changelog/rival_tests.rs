//! Two instances that both believe they are active, on librdkafka's mock cluster.
//! The newer one's first manifest is followed by tombstones of the blocks it had
//! read: the lineage of the instance that stays must not be left with holes, and an
//! instance that steps down must not take the role again on its own lease's echo.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer as _;
use rdkafka::mocking::MockCluster;

use super::delivery_tests::{checkpoint, config, idle_until, ids};
use super::{Changelog, ChangelogWriter};
use crate::live::standby::LEASE_TIMEOUT;
use crate::live::store::{SeenBlocks, SeenEntry};

/// Polls `changelog` until `done` says so, at most 10 s.
fn poll_until(changelog: &mut Changelog, done: impl Fn(&Changelog) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(changelog) && Instant::now() < deadline {
        changelog.poll(Duration::from_millis(50));
    }
}

/// Lets `writer` publish what it holds and the broker take it.
fn settle(writer: &mut ChangelogWriter) {
    idle_until(writer, |w| !w.holds_pending() && w.in_flight() == 0);
    assert_eq!(writer.new_failures(), 0, "the broker took every record");
}

/// Where the changelog ends now.
fn end(changelog: &Changelog) -> i64 {
    changelog
        .consumer
        .fetch_watermarks(&changelog.config.topics.state, 0, Duration::from_secs(5))
        .expect("watermarks")
        .1
}

/// `changelog`'s snapshot is vm-a's checkpoint `seq`, with `ids`.
fn restores_a(changelog: &Changelog, seq: u64, ids: &SeenBlocks) {
    let published = changelog
        .latest()
        .expect("the staying instance's snapshot is complete");
    assert_eq!(published.instance, "vm-a");
    assert_eq!(published.checkpoint.seq, seq);
    let seen: Vec<SeenEntry> = published.seen.iter().collect();
    assert_eq!(seen, ids.iter().collect::<Vec<_>>());
}

#[test]
fn an_instance_reading_its_own_lease_back_still_sees_the_other_active_one() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let (a, b) = (config(&brokers, "vm-a"), config(&brokers, "vm-b"));
    mock.create_topic(&a.topics.state, 1, 1).expect("topic");
    let mut active = Changelog::open(&a).expect("opened");
    let mut other = Changelog::open(&b).expect("opened");
    active.announce();
    poll_until(&mut other, |c| c.other_active(LEASE_TIMEOUT).is_some());
    assert_eq!(
        other
            .other_active(LEASE_TIMEOUT)
            .map(|l| l.instance.clone()),
        Some("vm-a".to_owned())
    );
    // The instance that steps down wrote a lease of its own while it was active;
    // reading it back after the other's must not make the other look gone.
    other.announce();
    let read = other.next_offset;
    poll_until(&mut other, |c| c.next_offset > read);
    assert!(other.next_offset > read, "its own lease was read back");
    assert_eq!(
        other
            .other_active(LEASE_TIMEOUT)
            .map(|l| l.instance.clone()),
        Some("vm-a".to_owned()),
        "its own lease hid the active one's"
    );
}

#[test]
fn a_rival_lineage_makes_the_instance_that_stays_start_a_whole_new_one() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let a = config(&brokers, "vm-a");
    mock.create_topic(&a.topics.state, 1, 1).expect("topic");
    let mut stays = Changelog::open(&a).expect("opened");
    let mut writer_a = stays.activate().expect("writer");
    let first = ids(0, 100);
    writer_a.written(checkpoint(1), 1, &first, Some(&first));
    settle(&mut writer_a);

    // A second instance reads that lineage, believes itself active (it missed the
    // lease) and publishes a lineage of its own, then the tombstones of every block
    // it had read: the first instance's.
    let mut steps_down = Changelog::open(&config(&brokers, "vm-b")).expect("opened");
    assert!(steps_down.catch_up(Duration::from_secs(2)));
    assert!(steps_down.latest().is_some(), "it read the first lineage");
    let mut writer_b = steps_down.activate().expect("writer");
    writer_b.written(checkpoint(1), 1, &first, Some(&first));
    settle(&mut writer_b);

    // The instance that stays reads the rival's manifest; its next checkpoint
    // starts a lineage above the rival's, with the whole set.
    poll_until(&mut stays, |c| !c.rivals.is_empty());
    idle_until(&mut writer_a, ChangelogWriter::wants_full);
    assert!(
        writer_a.wants_full(),
        "a rival lineage gives the staying instance's lineage up"
    );
    writer_a.written(checkpoint(2), 2, &ids(100, 150), Some(&ids(0, 150)));
    settle(&mut writer_a);

    // The one that steps down reads the staying one's new lineage and keeps its own:
    // both restarting would chase each other.
    assert!(steps_down.catch_up(Duration::from_millis(500)));
    writer_b.idle();
    assert!(
        steps_down.rivals.is_empty(),
        "vm-a's lineage is no rival of vm-b's"
    );
    assert!(!writer_b.wants_full());
    // Its snapshot published before it sees the other's lease comes after the new
    // lineage began: a reader must not let it hide the staying instance's snapshot.
    writer_b.written(checkpoint(2), 2, &ids(100, 120), None);
    settle(&mut writer_b);
    // Stepping down, it publishes nothing more, its last checkpoint included.
    let before = end(&steps_down);
    steps_down.step_down();
    writer_b.written(checkpoint(3), 3, &ids(120, 130), None);
    writer_b.close();
    assert_eq!(
        end(&steps_down),
        before,
        "an instance stepping down published records"
    );
    let all = ids(0, 150);
    let mut standby = Changelog::open(&config(&brokers, "vm-c")).expect("opened");
    assert!(standby.catch_up(Duration::from_secs(2)));
    restores_a(&standby, 2, &all);

    // Back to standby, the one that stepped down holds the new lineage whole (while
    // active it held none of what it read), and follows it.
    steps_down.deactivate().expect("reassigned");
    restores_a(&steps_down, 2, &all);
    let more = ids(0, 160);
    writer_a.written(checkpoint(3), 3, &ids(150, 160), None);
    settle(&mut writer_a);
    writer_a.close();
    poll_until(&mut steps_down, |c| {
        c.latest().is_some_and(|p| p.checkpoint.seq == 3)
    });
    restores_a(&steps_down, 3, &more);
}
