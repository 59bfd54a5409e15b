//! A scaled-out guard (docs/SCALING.md): instances in consumer groups share the work.
//!
//! Each instance is a member of two groups. In `GROUP-workers`, subscribed to
//! `exec_result` with the range assignor, it is given whole partitions; for each it
//! runs a worker guard ([`Role::Worker`]) over that partition of `exec_result` and
//! `strategy_release` plus every operator's order, with its own sled store, and
//! forwards trips to `guard_facts`. In `GROUP-aggregator`, subscribed to the single
//! partition of `guard_facts`, Kafka elects one member: it runs the aggregator guard
//! ([`Role::Aggregator`]) over the facts, the orders and the risk events, and publishes
//! the commands. The group members only learn their assignment (their partitions are
//! paused); the guards read with their own assigned consumers, at their stored
//! offsets.
//!
//! Handover: a revoked partition is checkpointed and released; a newly assigned one
//! resumes from this instance's store for it, or — never owned here before — is
//! rebuilt by replaying the partition from the start of its retention. What a new
//! owner re-decides reaches the aggregator as duplicate trips (same event ids), and
//! what a new aggregator re-decides goes out with the same command ids.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{info, warn};

use super::config::LiveConfig;
use super::kafka;
use super::pipeline::{LiveError, LiveGuard};

/// The longest the instance's loop sleeps: the group memberships are polled that
/// often when no guard of the instance has anything to do.
const NO_GUARD_SLEEP: Duration = Duration::from_millis(50);
use super::status::StatusHandle;
use super::store::SledStore;
use crate::engine::Role;

/// Records the partitions the group gave this member, and counts the assignments
/// (partitions of a new assignment start unpaused).
#[derive(Clone, Default)]
struct Membership(Arc<Mutex<(BTreeSet<i32>, u64)>>);

impl ClientContext for Membership {}

impl ConsumerContext for Membership {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut owned = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match rebalance {
            Rebalance::Assign(tpl) => {
                owned.0 = tpl.elements().iter().map(|e| e.partition()).collect();
                owned.1 += 1;
            }
            Rebalance::Revoke(_) => owned.0.clear(),
            Rebalance::Error(e) => warn!(error = %e, "group rebalance failed"),
        }
    }
}

/// A member of `group` on `topic`, used only for its assignment.
struct Member {
    consumer: BaseConsumer<Membership>,
    owned: Membership,
    paused: BTreeSet<i32>,
    generation: u64,
    topic: String,
}

impl Member {
    fn join(config: &LiveConfig, group: &str, topic: &str) -> Result<Member, LiveError> {
        let owned = Membership::default();
        let consumer: BaseConsumer<Membership> = kafka::base(config)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .create_with_context(owned.clone())?;
        consumer.subscribe(&[topic])?;
        Ok(Member {
            consumer,
            owned,
            paused: BTreeSet::new(),
            generation: 0,
            topic: topic.to_owned(),
        })
    }

    /// Serves the group protocol and returns the partitions owned now.
    fn poll(&mut self) -> BTreeSet<i32> {
        // Messages are not read here (the guards read with their own consumers).
        while let Some(message) = self.consumer.poll(Duration::ZERO) {
            if let Err(e) = message {
                warn!(error = %e, topic = %self.topic, "group member error");
            }
        }
        let (owned, generation) = self
            .owned
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if generation != self.generation {
            self.generation = generation;
            self.paused.clear();
        }
        let unpaused: Vec<i32> = owned.difference(&self.paused).copied().collect();
        if !unpaused.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for p in &unpaused {
                tpl.add_partition(&self.topic, *p);
            }
            if self.consumer.pause(&tpl).is_ok() {
                self.paused.extend(unpaused);
            }
        }
        self.paused.retain(|p| owned.contains(p));
        owned
    }
}

/// Runs a scaled-out instance until `stop` is set.
///
/// # Errors
/// [`LiveError`] when a client cannot be created or a guard cannot start.
pub fn run(config: LiveConfig, status: StatusHandle, stop: &AtomicBool) -> Result<(), LiveError> {
    let mut workers_group = Member::join(
        &config,
        &format!("{}-workers", config.group_id),
        &config.topics.exec_result,
    )?;
    let mut aggregator_group = Member::join(
        &config,
        &format!("{}-aggregator", config.group_id),
        &config.topics.facts,
    )?;
    let mut workers: BTreeMap<i32, LiveGuard<SledStore>> = BTreeMap::new();
    let mut aggregator: Option<LiveGuard<SledStore>> = None;
    {
        let mut s = status.edit();
        s.role = "scaled";
        s.ready = true;
        s.publishing = true;
    }
    let mut beacon = super::heartbeat::Beacon::open(&config)?;
    beacon.report_to(&status);
    info!(instance = %config.instance, "scaled-out guard: joining the worker and aggregator groups");
    while !stop.load(Ordering::Relaxed) {
        follow_workers(&config, &mut workers, &workers_group.poll())?;
        let lead = !aggregator_group.poll().is_empty();
        follow_aggregation(&config, &status, &mut aggregator, lead)?;
        status.publish();
        // One sleep for every guard of the instance: until any has something from
        // librdkafka or work due (it polled 1,000 times a second before).
        let mut guards: Vec<&mut LiveGuard<SledStore>> =
            workers.values_mut().chain(aggregator.as_mut()).collect();
        if guards.is_empty() {
            std::thread::sleep(NO_GUARD_SLEEP);
        } else {
            LiveGuard::sleep_any(&mut guards, NO_GUARD_SLEEP);
        }
        for guard in guards {
            guard.turn(Duration::ZERO);
        }
        // Only the instance that decides says it is active.
        beacon.beat(aggregator.as_ref().map(|a| a.engine()));
    }
    for worker in workers.values_mut() {
        worker.shutdown();
    }
    if let Some(a) = &mut aggregator {
        a.shutdown();
    }
    beacon.stand_down();
    Ok(())
}

/// Releases the workers of revoked partitions (checkpointing them) and restores one
/// for each newly owned partition.
///
/// # Errors
/// [`LiveError`] when a worker's store cannot be opened or its guard cannot start.
fn follow_workers(
    config: &LiveConfig,
    workers: &mut BTreeMap<i32, LiveGuard<SledStore>>,
    owned: &BTreeSet<i32>,
) -> Result<(), LiveError> {
    let revoked: Vec<i32> = workers
        .keys()
        .filter(|p| !owned.contains(p))
        .copied()
        .collect();
    for p in revoked {
        if let Some(mut worker) = workers.remove(&p) {
            info!(
                partition = p,
                "partition revoked: checkpointing and releasing it"
            );
            worker.shutdown();
        }
    }
    for &p in owned {
        if workers.contains_key(&p) {
            continue;
        }
        let mut c = config.clone();
        c.role = Role::Worker;
        c.owned = vec![p];
        c.state_dir = config.state_dir.join(format!("worker-p{p}"));
        c.http_listen = None;
        c.instance = format!("{}-p{p}", config.instance);
        info!(partition = p, "partition assigned: restoring its worker");
        let store = SledStore::open(&c.state_dir)?;
        workers.insert(p, LiveGuard::start(c, store, StatusHandle::default())?);
    }
    Ok(())
}

/// Takes up aggregation when this instance leads the aggregator group, and hands it
/// back (checkpointing) when it no longer does.
///
/// # Errors
/// [`LiveError`] when the aggregator's store cannot be opened or its guard cannot start.
fn follow_aggregation(
    config: &LiveConfig,
    status: &StatusHandle,
    aggregator: &mut Option<LiveGuard<SledStore>>,
    lead: bool,
) -> Result<(), LiveError> {
    match (aggregator.as_mut(), lead) {
        (None, true) => {
            let mut c = config.clone();
            c.role = Role::Aggregator;
            c.state_dir = config.state_dir.join("aggregator");
            c.http_listen = None;
            c.instance = format!("{}-aggregator", config.instance);
            info!("this instance now aggregates: restoring the scopes");
            let store = SledStore::open(&c.state_dir)?;
            *aggregator = Some(LiveGuard::start(c, store, status.clone())?);
            status.edit().role = "aggregator";
        }
        (Some(a), false) => {
            info!("aggregation moved to another instance: checkpointing and releasing it");
            a.shutdown();
            *aggregator = None;
            let mut s = status.edit();
            s.role = "scaled";
            s.ready = true;
        }
        _ => {}
    }
    Ok(())
}
