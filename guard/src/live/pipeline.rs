//! The live guard: Kafka in, the one engine, commands out, state in the store.
//!
//! # Ordering, and why a crash at any instant is safe
//! For each input message the loop **decides** (engine) and notes the message's
//! position in the order journal ([`super::order_log`]). Decisions wait in the outbox
//! ([`super::outbox`], keyed by decision sequence) until the journal record of the
//! inputs applied before them is on the broker — one record per loop turn, released
//! by its delivery report, so the loop never waits — and are then **published** in
//! decision order. Every `checkpoint_interval` it **persists** one atomic batch at a
//! journal boundary, once that boundary's record is acknowledged: the engine snapshot,
//! the next offset of every input partition *that the snapshot covers*, the outbox and
//! the new dedup ids. Only then does it **commit** the offsets to Kafka (for lag
//! monitoring; the store, not the group, is the source of truth).
//!
//! - Crash after publish, before persist: the restart restores the previous
//!   checkpoint, reads the journal and re-applies the inputs after it in the recorded
//!   order; the pure engine makes the same decisions with the same deterministic ids,
//!   so re-published commands are harmless duplicates, and no input is applied twice
//!   to the state.
//! - Crash after persist, before the acknowledgement: the outbox is re-published at
//!   start, in decision order, with its ids.
//! - Crash before the Kafka commit: the committed group offset lags; it is not read
//!   back (the store's offsets win).
//! - A persist that fails leaves the previous checkpoint in force and nothing is
//!   committed past it.
//!
//! New input is merged across topics by Kafka timestamp ([`super::merge`]), holding
//! fetched messages until every input partition with more on the broker has shown its
//! next one (bounded by `max_order_wait`); the journal makes whatever order that gave
//! final once a decision rests on it.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tracing::{debug, error, info, warn};

use super::changelog::Published;
use super::config::LiveConfig;
use super::input_watch::InputWatch;
use super::kafka::{self, DeliveryContext, Pending, METADATA_TIMEOUT};
use super::merge::{Merge, MergeKey};
use super::order_log::{self, Journal, Step};
use super::outbox::{Outbox, RESEND_AFTER};
use super::status::{state_view, StatusHandle};
use super::store::{Checkpoint, OutMsg, Partition, SeenEntry, Store, StoreError};
use crate::decode::{decode, DecodeError};
use crate::engine::{ClockMode, Engine, EngineOptions, Role, TripFact};
use crate::message::{Decision, Input, RiskAction, RiskEvent, Scope, Severity, Stream};
use crate::time::Timestamp;

/// Why the live guard could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The broker or a client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored snapshot cannot be restored.
    #[error("cannot restore the engine snapshot: {0}")]
    Snapshot(#[from] crate::engine::SnapshotError),
    /// An input topic does not exist.
    #[error("input topic {0:?} does not exist (create it, or set --topic-*)")]
    MissingTopic(String),
    /// The order journal on the state topic cannot be read.
    #[error(transparent)]
    OrderLog(#[from] order_log::OrderLogError),
}

/// How many messages one loop turn fetches at most before it looks at deliveries and
/// the clock (enough to take a whole fetch response, so the merge sees every stream).
const BATCH: usize = 4_096;
/// How often the wall clock is ticked into the engine (maintenance windows).
const TICK_EVERY: Duration = Duration::from_millis(100);
/// How often consumer lag is read from the client's cached watermarks.
const LAG_EVERY: Duration = Duration::from_secs(2);
/// How long a turn that waits for an order record's acknowledgement sleeps.
const RECORD_NAP: Duration = Duration::from_micros(100);
/// How long a restored order may wait for one of its messages before the guard
/// gives up replaying it (the message left the topic's retention) and says so.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(30);
/// How long the aggregator holds an operator's order for the workers' progress.
const PROGRESS_WAIT: Duration = Duration::from_millis(500);

/// A scale-out worker's progress on `guard_facts`, sent when it applies an operator's
/// order: every trip of the fills of `exec_result` partition `partition` stamped
/// before `ts_ms` (the order's Kafka timestamp) has been sent before it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Progress {
    partition: i32,
    ts_ms: i64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ProgressFact {
    progress: Progress,
}

/// The live guard.
pub struct LiveGuard<S: Store> {
    config: LiveConfig,
    engine: Engine,
    store: S,
    consumer: BaseConsumer,
    producer: BaseProducer<DeliveryContext>,
    deliveries: DeliveryContext,
    outbox: Outbox,
    journal: Journal,
    /// The restored order still to replay before anything new is merged.
    script: VecDeque<Step>,
    script_blocked_since: Option<Instant>,
    /// Order records to send again after a failed delivery.
    record_resend: Vec<(Instant, u64)>,
    /// A checkpoint waiting for the order record that ends at it, with its seen ids.
    prepared: Option<(Checkpoint, Vec<SeenEntry>, u64)>,
    offsets: BTreeMap<Partition, i64>,
    pending_seen: Vec<SeenEntry>,
    seq: u64,
    dirty: bool,
    last_checkpoint: Instant,
    last_tick: Instant,
    last_lag: Instant,
    status: StatusHandle,
    decisions: Vec<Decision>,
    last_persisted: Instant,
    failed_closed: bool,
    inputs_lost: bool,
    /// The guard's own pause order, until the engine has applied it.
    own_pause: Option<String>,
    input_watch: InputWatch,
    last_fetched: Instant,
    merge: Merge<Held>,
    spare: Vec<Held>,
    /// Aggregator: each worker partition's reported progress.
    progress: BTreeMap<i32, i64>,
    /// Aggregator: the partitions of `exec_result` (one worker each).
    worker_partitions: Vec<i32>,
    inputs: Vec<InputPartition>,
    blocked_since: Option<Instant>,
}

/// A fetched message waiting for its turn in the merge.
struct Held {
    key: String,
    payload: Vec<u8>,
    received: Instant,
}

/// An assigned input partition and how far the guard has fetched it.
struct InputPartition {
    topic: String,
    name: CString,
    partition: i32,
    /// Next offset to fetch; `None` until the first message when the partition was
    /// assigned at the beginning of the topic.
    fetched_next: Option<i64>,
    /// `fetched_next` when a wait for this partition last expired.
    waived: Option<Option<i64>>,
}

impl<S: Store> LiveGuard<S> {
    /// Restores the state from `store`, connects, re-publishes the outbox and assigns
    /// every input partition at its stored offset (the beginning when none is stored).
    ///
    /// # Errors
    /// [`LiveError`] when the store, the snapshot or the broker fails.
    pub fn start(config: LiveConfig, store: S, status: StatusHandle) -> Result<Self, LiveError> {
        Self::start_from(config, store, status, None)
    }

    /// [`LiveGuard::start`], restoring from the changelog's snapshot instead of the
    /// local store when the changelog's reaches further into the inputs (a standby
    /// taking over, or a guard on a new machine). The restored state is written to
    /// the local store at once, seen ids included.
    ///
    /// # Errors
    /// [`LiveError`] when the store, the snapshot or the broker fails.
    pub fn start_from(
        config: LiveConfig,
        mut store: S,
        status: StatusHandle,
        changelog: Option<&Published>,
    ) -> Result<Self, LiveError> {
        let options = EngineOptions {
            source: config.source.clone(),
            clock: config.clock,
            role: config.role,
        };
        let local = store.load()?;
        let local_progress = local
            .as_ref()
            .map_or(-1, |r| r.checkpoint.offsets.values().sum::<i64>());
        let from_changelog = changelog.filter(|p| p.progress() > local_progress);
        let (mut engine, offsets, outbox, seq) = if let Some(published) = from_changelog {
            let (engine, _) =
                Engine::restore(config.policy.clone(), options, published.engine.as_bytes())?;
            info!(from = %published.instance, progress = published.progress(), local = local_progress, "state restored from the changelog");
            let seq = local.as_ref().map_or(0, |r| r.checkpoint.seq) + 1;
            let mut engine = engine;
            let checkpoint = Checkpoint {
                seq,
                engine: engine.snapshot_without_seen(),
                offsets: published.offsets.clone(),
                outbox: published.outbox.clone(),
                seen_from: engine.seen_forgotten_before(),
            };
            let seen: Vec<SeenEntry> = engine.state().seen.entries().collect();
            store.save(&checkpoint, &seen)?;
            (
                engine,
                published.offsets.clone(),
                published.outbox.clone(),
                seq,
            )
        } else {
            match local {
                Some(restored) => {
                    let (mut engine, version) = Engine::restore(
                        config.policy.clone(),
                        options,
                        &restored.checkpoint.engine,
                    )?;
                    engine.restore_seen(restored.seen);
                    if version != engine.policy_version() {
                        warn!(stored = %version, now = %engine.policy_version(), "policy changed since the last checkpoint");
                    }
                    info!(
                        seq = restored.checkpoint.seq,
                        partitions = restored.checkpoint.offsets.len(),
                        outbox = restored.checkpoint.outbox.len(),
                        "state restored from the local store"
                    );
                    (
                        engine,
                        restored.checkpoint.offsets,
                        restored.checkpoint.outbox,
                        restored.checkpoint.seq,
                    )
                }
                None => {
                    info!("no local state: starting from the beginning of the input topics");
                    (
                        Engine::new(config.policy.clone(), options),
                        BTreeMap::new(),
                        Vec::new(),
                        0,
                    )
                }
            }
        };
        engine.enable_seen_journal();
        let (journal, script) = Self::recover_order(&config, &offsets)?;
        let deliveries = DeliveryContext::default();
        let producer: BaseProducer<DeliveryContext> =
            kafka::producer(&config).create_with_context(deliveries.clone())?;
        let consumer: BaseConsumer = kafka::consumer(&config).create()?;
        let input_watch = InputWatch::start(&config);
        let mut guard = LiveGuard {
            config,
            engine,
            store,
            consumer,
            producer,
            deliveries,
            outbox: Outbox::restore(outbox),
            journal,
            script,
            script_blocked_since: None,
            record_resend: Vec::new(),
            prepared: None,
            offsets,
            pending_seen: Vec::new(),
            seq,
            dirty: false,
            last_checkpoint: Instant::now(),
            last_tick: Instant::now() - TICK_EVERY,
            last_lag: Instant::now(),
            status,
            decisions: Vec::new(),
            last_persisted: Instant::now(),
            failed_closed: false,
            inputs_lost: false,
            own_pause: None,
            input_watch,
            last_fetched: Instant::now(),
            merge: Merge::default(),
            spare: Vec::new(),
            progress: BTreeMap::new(),
            worker_partitions: Vec::new(),
            inputs: Vec::new(),
            blocked_since: None,
        };
        if !guard.outbox.is_empty() {
            info!(
                count = guard.outbox.len(),
                "re-publishing the outbox in decision order"
            );
        }
        guard.release();
        guard.assign()?;
        {
            let mut status = guard.status.lock();
            status.ready = true;
            status.publishing = true;
            status.role = "active";
            status.state = state_view(&guard.engine);
            status.offsets = guard
                .offsets
                .iter()
                .map(|((t, p), o)| (format!("{t}/{p}"), *o))
                .collect();
        }
        Ok(guard)
    }

    /// Reads the order journal of this guard's lineage and returns the journal to go
    /// on with and the recorded order to replay first from `offsets` (empty when
    /// nothing was decided after the restored snapshot, or on a rebuild from a time).
    fn recover_order(
        config: &LiveConfig,
        offsets: &BTreeMap<Partition, i64>,
    ) -> Result<(Journal, VecDeque<Step>), LiveError> {
        let lineage = order_log::lineage(config);
        let life = format!("{}-{}", config.instance, Timestamp::now().as_micros());
        let mut journal = Journal::new(&lineage, &life, offsets.clone());
        let script: VecDeque<Step> = if config.rebuild_from.is_some() && offsets.is_empty() {
            VecDeque::new()
        } else {
            order_log::script(&order_log::recover(config, &lineage)?, offsets).into()
        };
        if !script.is_empty() {
            info!(
                steps = script.len(),
                "replaying the recorded input order before merging anything new"
            );
            journal.pause_recording();
        }
        Ok((journal, script))
    }

    /// The topics this guard reads, with the partitions it owns of each (`None`: all).
    fn reads(&self) -> Vec<(String, Option<Vec<i32>>)> {
        let t = &self.config.topics;
        match self.config.role {
            Role::Whole => t.inputs().into_iter().map(|topic| (topic, None)).collect(),
            Role::Worker => vec![
                (t.exec_result.clone(), Some(self.config.owned.clone())),
                (t.strategy_release.clone(), Some(self.config.owned.clone())),
                (t.ops_command.clone(), None),
            ],
            Role::Aggregator => vec![
                (t.facts.clone(), None),
                (t.ops_command.clone(), None),
                (t.risk_event.clone(), None),
            ],
        }
    }

    /// Where a message of `topic` sorts among streams of equal timestamp (facts stand
    /// for the fills that tripped); `None` for a topic the guard does not read.
    fn rank_of(&self, topic: &str) -> Option<usize> {
        if topic == self.config.topics.facts {
            return Some(Stream::ExecResult.rank());
        }
        self.config.topics.stream_of(topic).map(Stream::rank)
    }

    fn assign(&mut self) -> Result<(), LiveError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, owned) in self.reads() {
            let metadata = self
                .consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .filter(|p| owned.as_ref().is_none_or(|o| o.contains(p)))
                .collect();
            if partitions.is_empty() {
                return Err(LiveError::MissingTopic(topic));
            }
            for partition in partitions {
                let offset = match self.offsets.get(&(topic.clone(), partition)) {
                    Some(next) => Offset::Offset(*next),
                    // No state for this partition: replay the topic, from the rebuild
                    // time when one was given, else from the start of its retention.
                    None => match self.config.rebuild_from {
                        Some(from) => Offset::Offset(from.as_micros().div_euclid(1_000)),
                        None => Offset::Beginning,
                    },
                };
                tpl.add_partition_offset(&topic, partition, offset)?;
            }
        }
        if self.config.rebuild_from.is_some() && self.offsets.is_empty() {
            // Offsets above are timestamps (ms): resolve them to offsets.
            tpl = self.consumer.offsets_for_times(tpl, METADATA_TIMEOUT)?;
            for e in tpl.elements() {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(e.topic(), e.partition(), METADATA_TIMEOUT)
                    .unwrap_or((0, 0));
                let start = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(high);
                info!(
                    topic = e.topic(),
                    partition = e.partition(),
                    from_offset = start,
                    messages_back = high - start,
                    retained_from = low,
                    "rebuilding the state by replaying the input"
                );
            }
        }
        info!(
            partitions = tpl.count(),
            "assigned input partitions at the stored offsets"
        );
        self.consumer.assign(&tpl)?;
        if self.config.role == Role::Aggregator {
            let topic = self.config.topics.exec_result.clone();
            let metadata = self
                .consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
            self.worker_partitions = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
        }
        self.merge.clear();
        self.blocked_since = None;
        self.inputs = tpl
            .elements()
            .iter()
            .map(|e| InputPartition {
                topic: e.topic().to_owned(),
                name: CString::new(e.topic()).unwrap_or_default(),
                partition: e.partition(),
                fetched_next: e.offset().to_raw().filter(|o| *o >= 0),
                waived: None,
            })
            .collect();
        self.input_watch.watch(
            self.inputs
                .iter()
                .map(|i| (i.topic.clone(), i.partition))
                .collect(),
        );
        Ok(())
    }

    /// Runs until `stop` is set, then checkpoints and flushes.
    ///
    /// # Errors
    /// [`LiveError`] only for failures the guard cannot ride out.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), LiveError> {
        while !stop.load(Ordering::Relaxed) {
            self.turn(Duration::from_millis(5));
        }
        self.shutdown();
        Ok(())
    }

    /// One turn of the loop: take up to a batch of input, tick the clock, handle
    /// deliveries, checkpoint when due. Waits at most `wait` for the first message.
    pub fn turn(&mut self, wait: Duration) {
        let mut taken = 0;
        // While messages wait in the merge, look again soon.
        let mut timeout = if self.outbox.holds_unreleased() {
            // Decisions wait for their order record: look at deliveries again soon.
            Duration::ZERO
        } else if self.merge.is_empty() {
            wait
        } else {
            wait.min(Duration::from_millis(1))
        };
        while taken < BATCH {
            let Some(polled) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            taken += 1;
            match polled {
                Ok(message) => {
                    let received = Instant::now();
                    self.last_fetched = received;
                    let topic = message.topic();
                    let Some(rank) = self.rank_of(topic) else {
                        continue;
                    };
                    // Recycled buffers: no allocation per message on the hot path.
                    let mut held = self.spare.pop().unwrap_or_else(|| Held {
                        key: String::new(),
                        payload: Vec::new(),
                        received,
                    });
                    held.received = received;
                    held.key.clear();
                    held.key
                        .push_str(&String::from_utf8_lossy(message.key().unwrap_or_default()));
                    held.payload.clear();
                    held.payload
                        .extend_from_slice(message.payload().unwrap_or_default());
                    let key = MergeKey {
                        timestamp_ms: message.timestamp().to_millis().unwrap_or(i64::MIN),
                        rank,
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    if let Some(input) = self
                        .inputs
                        .iter_mut()
                        .find(|i| i.partition == key.partition && i.topic == topic)
                    {
                        input.fetched_next = Some(key.offset + 1);
                    }
                    if topic == self.config.topics.facts
                        && held.payload.starts_with(br#"{"progress""#)
                    {
                        // Progress is read at once, not merged: the orders and risk
                        // events held in the merge wait for it.
                        if let Ok(fact) = serde_json::from_slice::<ProgressFact>(&held.payload) {
                            let seen = self
                                .progress
                                .entry(fact.progress.partition)
                                .or_insert(i64::MIN);
                            *seen = (*seen).max(fact.progress.ts_ms);
                        }
                        self.spare.push(held);
                        continue;
                    }
                    self.merge.push(topic, key, held);
                }
                Err(e) => warn!(error = %e, "consumer error"),
            }
        }
        self.apply_held();
        self.watch_inputs();
        // While a recorded order is replayed, its own ticks move the clock.
        if self.config.clock == ClockMode::External
            && self.script.is_empty()
            && self.last_tick.elapsed() >= TICK_EVERY
        {
            self.last_tick = Instant::now();
            self.tick(Timestamp::now());
        }
        self.release();
        // rdkafka 0.39's timed `poll` spins until its deadline (sub-millisecond
        // timeouts round to zero), so the producer is polled without waiting, and a
        // turn that waits for an order record naps briefly instead.
        self.producer.poll(Duration::ZERO);
        self.handle_deliveries();
        if taken == 0 && self.outbox.holds_unreleased() {
            std::thread::sleep(RECORD_NAP);
        }
        if taken > 0 {
            let offsets = self
                .offsets
                .iter()
                .map(|((t, p), o)| (format!("{t}/{p}"), *o))
                .collect();
            self.status.lock().offsets = offsets;
        }
        // Not while a decision waits for its order record: it goes out first.
        if self.dirty
            && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval
            && (!self.outbox.holds_unreleased() || self.checkpoint_overdue())
        {
            self.checkpoint();
        }
        if self.last_lag.elapsed() >= LAG_EVERY {
            self.last_lag = Instant::now();
            self.update_lag();
        }
    }

    /// Applies the held messages in merge order. A message waits while another input
    /// partition has nothing held but more on the broker (by the high watermark of
    /// its last fetch), at most `max_order_wait`, so that a restart that re-reads the
    /// same messages applies them in the same order.
    fn apply_held(&mut self) {
        if !self.script.is_empty() && !self.apply_script() {
            return;
        }
        if self.merge.is_empty() {
            return;
        }
        // Partitions with more on the broker than fetched; fetching is done for
        // this turn, so this cannot change while the held messages are applied.
        let mut behind: Vec<usize> = if self.config.max_order_wait.is_zero() {
            Vec::new()
        } else {
            (0..self.inputs.len())
                .filter(|i| self.fetch_behind(&self.inputs[*i]))
                .collect()
        };
        while !self.merge.is_empty() {
            // The first partition holds a message, so it is never waited for.
            let waiting_for: Vec<usize> = behind
                .iter()
                .copied()
                .filter(|i| {
                    let input = &self.inputs[*i];
                    !self.merge.holds(&input.topic, input.partition)
                })
                .collect();
            if !waiting_for.is_empty() {
                let since = *self.blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < self.config.max_order_wait {
                    return;
                }
                for i in &waiting_for {
                    let input = &mut self.inputs[*i];
                    debug!(topic = %input.topic, partition = input.partition, "stopped waiting for a partition's next message");
                    input.waived = Some(input.fetched_next);
                }
                behind.retain(|i| !waiting_for.contains(i));
                self.status.lock().metrics.order_waits_expired += 1;
            }
            if self.awaits_progress() {
                let since = *self.blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < PROGRESS_WAIT {
                    return;
                }
                warn!("applying an order or a risk event without every worker's progress (a worker is down or slow)");
                self.status.lock().metrics.order_waits_expired += 1;
            }
            self.blocked_since = None;
            let Some(((topic, partition), key, held)) = self.merge.pop_first() else {
                break;
            };
            self.apply_one(&topic, partition, key, held);
        }
    }

    /// Applies one message taken from the merge and recycles its buffers.
    fn apply_one(&mut self, topic: &str, partition: i32, key: MergeKey, held: Held) {
        self.on_message(
            topic,
            (partition, key.offset, key.timestamp_ms),
            &held.key,
            &held.payload,
            held.received,
        );
        self.spare.push(held);
    }

    /// Applies the recorded order restored at start, as its messages arrive; `true`
    /// once it is done (then new input is merged and recorded again).
    fn apply_script(&mut self) -> bool {
        while let Some(step) = self.script.front().cloned() {
            let Step::Run {
                topic,
                partition,
                end,
            } = step
            else {
                if let Step::Tick { at_micros } = step {
                    self.script.pop_front();
                    self.tick(Timestamp::from_micros(at_micros));
                }
                continue;
            };
            let done = self
                .offsets
                .get(&(topic.clone(), partition))
                .is_some_and(|next| *next >= end)
                || self
                    .merge
                    .head(&topic, partition)
                    .is_some_and(|k| k.offset >= end);
            if done {
                self.script.pop_front();
                continue;
            }
            let Some((key, held)) = self.merge.pop_from(&topic, partition) else {
                let since = *self.script_blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < SCRIPT_PATIENCE {
                    return false;
                }
                error!(
                    topic,
                    partition,
                    end,
                    steps_left = self.script.len(),
                    "a message of the recorded input order did not arrive (gone from the topic?); merging the rest anew, so decisions may differ from those already published"
                );
                self.status.lock().metrics.order_script_abandoned += 1;
                self.script.clear();
                break;
            };
            self.script_blocked_since = None;
            self.apply_one(&topic, partition, key, held);
        }
        info!("the recorded input order is replayed; merging new input");
        self.journal.resume_recording(self.offsets.clone());
        true
    }

    /// Ticks the wall clock into the engine; a tick that changed the state is recorded
    /// in the order journal.
    fn tick(&mut self, now: Timestamp) {
        let before = self.engine.state().rules.maintenance.clone();
        let decisions = self.engine.tick(now);
        if !decisions.is_empty() || self.engine.state().rules.maintenance != before {
            self.journal.ticked(now.as_micros());
            self.dirty = true;
        }
        self.publish_all(decisions, Instant::now());
    }

    /// Aggregator: whether the next message is an operator's order stamped later than
    /// some worker's progress — a trip of that worker stamped earlier may still be on
    /// its way. (Risk events are not held: whichever of a risk event and a racing trip
    /// comes first pauses the scope, and the scope is paused either way.)
    fn awaits_progress(&self) -> bool {
        if self.config.role != Role::Aggregator {
            return false;
        }
        let Some((topic, _)) = self.merge.first() else {
            return false;
        };
        if *topic != self.config.topics.ops_command {
            return false;
        }
        let Some(ts) = self.merge.first_key().map(|k| k.timestamp_ms) else {
            return false;
        };
        self.worker_partitions
            .iter()
            .any(|p| self.progress.get(p).is_none_or(|done| *done < ts))
    }

    /// Worker: tells the aggregator, through `guard_facts`, that its partitions are
    /// applied up to the order it just applied (stamped `ts_ms`): the merge applied
    /// every fill stamped earlier first, and their trips were sent before this.
    fn report_progress(&mut self, ts_ms: i64) {
        // Through the outbox: progress must never overtake a trip decided before it.
        for partition in self.config.owned.clone() {
            let payload = serde_json::to_vec(&ProgressFact {
                progress: Progress { partition, ts_ms },
            })
            .expect("progress serialises");
            self.enqueue(
                OutMsg {
                    id: format!("progress:{partition}:{ts_ms}"),
                    topic: self.config.topics.facts.clone(),
                    key: "facts".into(),
                    payload,
                    headers: Vec::new(),
                    timestamp_ms: None,
                },
                None,
            );
        }
    }

    /// Fails closed when the inputs have not been readable for `fail_closed_after`
    /// (no message fetched and no answer from their leaders), and says when they are
    /// back.
    fn watch_inputs(&mut self) {
        let unreadable = self
            .input_watch
            .unreadable_for()
            .min(self.last_fetched.elapsed());
        if !self.inputs_lost && unreadable >= self.config.fail_closed_after {
            self.inputs_lost = true;
            self.fail_closed(&format!(
                "cannot read the input topics for {:.0} s",
                unreadable.as_secs_f64()
            ));
        } else if self.inputs_lost && unreadable < self.config.fail_closed_after {
            self.inputs_lost = false;
            self.status.lock().degraded = self.failed_closed;
            warn!("the input topics are readable again; the global pause stays until an operator resumes");
        }
    }

    /// Whether the broker holds messages of `input` that the guard has not fetched
    /// (the high watermark cached from the last fetch; no request is made). A
    /// partition already waited for in vain is not waited for again until it brings
    /// a message: a watermark that lies costs one wait, not one per message.
    fn fetch_behind(&self, input: &InputPartition) -> bool {
        match self.cached_watermarks(&input.name, input.partition) {
            _ if input.waived == Some(input.fetched_next) => false,
            Some((low, high)) => high > input.fetched_next.unwrap_or(low),
            // No fetch answered yet: assume there is more.
            None => true,
        }
    }

    fn cached_watermarks(&self, topic: &CString, partition: i32) -> Option<(i64, i64)> {
        let (mut low, mut high) = (0i64, 0i64);
        // The cached watermark from the last fetch: no request, no blocking.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some((low, high))
    }

    fn on_message(
        &mut self,
        topic: &str,
        (partition, offset, timestamp_ms): (i32, i64, i64),
        key: &str,
        payload: &[u8],
        received: Instant,
    ) {
        match self
            .offsets
            .iter_mut()
            .find(|((t, p), _)| t == topic && *p == partition)
        {
            Some((_, next)) => *next = offset + 1,
            None => {
                self.offsets
                    .insert((topic.to_owned(), partition), offset + 1);
            }
        }
        self.journal.applied(topic, partition, offset);
        self.dirty = true;
        if topic == self.config.topics.facts {
            self.on_fact(topic, (partition, offset), key, payload, received);
            return;
        }
        let Some(stream) = self.config.topics.stream_of(topic) else {
            return;
        };
        let decoded = if payload.len() > self.config.max_message_bytes {
            Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: self.config.max_message_bytes,
            })
        } else {
            decode(stream, payload)
        };
        let input = match decoded {
            Ok(input) => input,
            Err(reason) => {
                self.dead_letter(topic, partition, offset, key, payload, &reason.to_string());
                return;
            }
        };
        let ahead = || input.event_time().since(Timestamp::now());
        if self.config.clock == ClockMode::External
            && ahead().as_micros() > self.config.max_future.as_micros() as i64
        {
            // A time far in the future would move the guard's event-time horizon and
            // make it forget every streak and id at once. (On event time, as replay,
            // the wall clock is no reference: the guard decides as replay does.)
            let reason = format!(
                "event time {} is {} ahead of the guard's clock (limit {})",
                input.event_time(),
                crate::time::human_span(ahead()),
                crate::time::human_span(crate::time::Span::from_micros(
                    self.config.max_future.as_micros() as i64
                ))
            );
            self.dead_letter(topic, partition, offset, key, payload, &reason);
            return;
        }
        self.decisions.clear();
        let disposition = self.engine.apply_into(&input, &mut self.decisions);
        let decisions = std::mem::take(&mut self.decisions);
        {
            let mut status = self.status.lock();
            *status.metrics.messages.entry(stream.as_str()).or_default() += 1;
            if disposition == crate::engine::Disposition::Duplicate {
                status.metrics.duplicates += 1;
            }
            status.metrics.record_decisions(&decisions);
            if let Input::Ops(command) = &input {
                if self.own_pause.as_deref() == Some(command.command_id.as_str()) {
                    self.own_pause = None;
                }
                if disposition == crate::engine::Disposition::Applied {
                    status
                        .ops_applied
                        .insert(command.command_id.clone(), !decisions.is_empty());
                    if status.ops_applied.len() > 10_000 {
                        status.ops_applied.pop_first();
                    }
                }
            }
            if !decisions.is_empty() || matches!(input, Input::Ops(_)) {
                status.state = state_view(&self.engine);
            }
        }
        for decision in &decisions {
            debug!(id = decision.id(), "decided");
        }
        match (&input, self.config.role) {
            (Input::Fill(fill), Role::Worker) => {
                self.forward_trips(&fill.fill_id, timestamp_ms, decisions);
            }
            (Input::Ops(_), Role::Worker) => self.report_progress(timestamp_ms),
            _ => self.publish_all(decisions, received),
        }
    }

    /// A worker's trips go to the aggregator, stamped with the tripping fill's Kafka
    /// timestamp so the aggregator orders them among orders and risk events as the
    /// fill was ordered.
    fn forward_trips(&mut self, trigger: &str, timestamp_ms: i64, decisions: Vec<Decision>) {
        for decision in decisions {
            let Decision::RiskEvent(event) = decision else {
                continue;
            };
            let id = format!("fact:{}", event.event_id);
            let fact = TripFact {
                trigger: trigger.to_owned(),
                event,
            };
            info!(kind = %fact.event.kind, scope = %fact.event.scope, trigger, "trip forwarded to the aggregator");
            let payload = serde_json::to_vec(&fact).expect("facts serialise");
            self.enqueue(
                OutMsg {
                    id,
                    topic: self.config.topics.facts.clone(),
                    key: "facts".into(),
                    payload,
                    headers: Vec::new(),
                    timestamp_ms: (timestamp_ms > 0).then_some(timestamp_ms),
                },
                None,
            );
        }
    }

    /// The aggregator applies a worker's trip.
    fn on_fact(
        &mut self,
        topic: &str,
        (partition, offset): (i32, i64),
        key: &str,
        payload: &[u8],
        received: Instant,
    ) {
        let fact: TripFact = match serde_json::from_slice(payload) {
            Ok(fact) => fact,
            Err(e) => {
                let reason = format!("not a trip fact: {e}");
                self.dead_letter(topic, partition, offset, key, payload, &reason);
                return;
            }
        };
        self.decisions.clear();
        let disposition = match self.engine.apply_trip(&fact, &mut self.decisions) {
            Ok(disposition) => disposition,
            Err(e) => {
                self.dead_letter(topic, partition, offset, key, payload, &e.to_string());
                return;
            }
        };
        let decisions = std::mem::take(&mut self.decisions);
        {
            let mut status = self.status.lock();
            if disposition == crate::engine::Disposition::Duplicate {
                status.metrics.duplicates += 1;
            }
            status.metrics.record_decisions(&decisions);
            if !decisions.is_empty() {
                status.state = state_view(&self.engine);
            }
        }
        self.publish_all(decisions, received);
    }

    fn publish_all(&mut self, decisions: Vec<Decision>, received: Instant) {
        let now = Timestamp::now();
        for decision in decisions {
            let (topic, id, payload) = match decision {
                Decision::GuardCommand(mut command) => {
                    command.decided_at = now;
                    info!(action = command.action.as_str(), scope = %command.scope, rule = command.rule.as_str(), trigger = %command.trigger, id = %command.command_id, reason = %command.reason, "guard command");
                    let payload = serde_json::to_vec(&command).expect("commands serialise");
                    (
                        self.config.topics.guard_command.clone(),
                        command.command_id,
                        (payload, command.scope),
                    )
                }
                Decision::RiskEvent(event) => {
                    info!(kind = %event.kind, scope = %event.scope, id = %event.event_id, "risk event raised");
                    let payload = serde_json::to_vec(&event).expect("risk events serialise");
                    (
                        self.config.topics.risk_event.clone(),
                        event.event_id,
                        (payload, event.scope),
                    )
                }
            };
            let (payload, scope) = payload;
            self.enqueue(
                OutMsg {
                    id,
                    topic,
                    key: scope.to_string(),
                    payload,
                    headers: Vec::new(),
                    timestamp_ms: None,
                },
                Some(received),
            );
        }
    }

    fn dead_letter(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: &str,
        payload: &[u8],
        reason: &str,
    ) {
        warn!(
            topic,
            partition, offset, reason, "invalid message sent to the dead-letter topic"
        );
        self.status.lock().metrics.invalid += 1;
        let id = format!("dlq:{topic}:{partition}:{offset}");
        let headers = vec![
            ("reason".to_owned(), reason.to_owned()),
            ("source_topic".to_owned(), topic.to_owned()),
            ("source_partition".to_owned(), partition.to_string()),
            ("source_offset".to_owned(), offset.to_string()),
        ];
        self.enqueue(
            OutMsg {
                id,
                topic: self.config.topics.dlq.clone(),
                key: key.to_owned(),
                payload: payload.to_vec(),
                headers,
                timestamp_ms: None,
            },
            None,
        );
    }

    /// Adds a decided message to the outbox; it goes out, in decision order, once the
    /// order record of the inputs applied before it is on the broker.
    fn enqueue(&mut self, msg: OutMsg, received: Option<Instant>) {
        let gate = self.journal.gate();
        self.outbox.push(msg, gate, received);
    }

    /// Writes the steps applied since the last order record as a new record.
    fn cut_journal(&mut self) {
        if let Some((n, key, payload)) = self.journal.cut() {
            self.status.lock().metrics.order_records += 1;
            if !send_record(&self.producer, &self.config.topics.state, n, &key, &payload) {
                self.record_resend.push((Instant::now() + RESEND_AFTER, n));
            }
        }
    }

    /// Cuts the order journal when a decided message waits for it, then hands every
    /// message that may go out to the producer, in decision order.
    fn release(&mut self) {
        if self
            .outbox
            .last_gate()
            .is_some_and(|gate| gate > self.journal.written())
        {
            self.cut_journal();
        }
        let (journal, producer) = (&self.journal, &self.producer);
        self.outbox.release(
            |gate| journal.is_acked(gate),
            |seq, msg| send_out(producer, seq, msg),
        );
    }

    fn handle_deliveries(&mut self) {
        let reports = self.deliveries.drain();
        let now = Instant::now();
        let mut failures = 0u64;
        let mut failed_ids = Vec::new();
        for report in reports {
            match (report.result, report.id == ORDER_RECORD) {
                (Ok(()), true) => self.journal.acked(report.seq),
                (Ok(()), false) => {
                    self.dirty = true;
                    if let Some(received) = self.outbox.acked(report.seq) {
                        let micros = received.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        let _ = self.status.lock().metrics.decision_latency.record(micros);
                    }
                }
                (Err(e), true) => {
                    error!(record = report.seq, error = %e, "delivery of an order record failed; decisions wait for it, sending it again");
                    failures += 1;
                    self.record_resend.push((now + RESEND_AFTER, report.seq));
                    if let Some((key, _)) = self.journal.unacked(report.seq) {
                        failed_ids.push(key.to_owned());
                    }
                }
                (Err(e), false) => {
                    error!(id = %report.id, error = %e, "delivery failed; it and everything decided after it are sent again");
                    failures += 1;
                    self.outbox.failed(report.seq, now);
                    failed_ids.push(report.id);
                }
            }
        }
        {
            let mut status = self.status.lock();
            status.metrics.delivery_failures += failures;
            if failures > 0 {
                status.publishing = false;
            } else if !self.outbox.resending() && self.record_resend.is_empty() {
                // Every earlier failure has since been sent again and nothing failed now.
                status.publishing = true;
            }
        }
        for id in &failed_ids {
            self.raise_degraded(id, &format!("delivery of {id} failed; retrying"));
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.record_resend)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.record_resend = later;
        for (_, n) in due {
            if let Some((key, payload)) = self.journal.unacked(n) {
                if !send_record(&self.producer, &self.config.topics.state, n, key, payload) {
                    self.record_resend.push((now + RESEND_AFTER, n));
                }
            }
        }
        let producer = &self.producer;
        self.outbox
            .resend_due(now, |seq, msg| send_out(producer, seq, msg));
        // Decisions first: the checkpoint's fsync must not stand between a released
        // decision and the producer.
        self.release();
        if !self.outbox.holds_unreleased() || self.checkpoint_overdue() {
            self.try_save();
        }
    }

    /// Checkpoints give way to decisions waiting for their order record, but not for
    /// long: a stream of trips must not starve them.
    fn checkpoint_overdue(&self) -> bool {
        self.last_checkpoint.elapsed() >= self.config.checkpoint_interval * 4
    }

    /// A failed delivery is itself an incident: say so on the risk stream (it goes out
    /// once the broker is back). The id is derived from the failed message, so repeated
    /// failures of one command raise one event.
    fn raise_degraded(&mut self, failed_id: &str, reason: &str) {
        if failed_id.starts_with("evt-degraded-")
            || failed_id.starts_with("dlq:")
            || failed_id.starts_with("progress:")
        {
            return;
        }
        let digest = Sha256::digest(format!("guard_degraded\x1f{failed_id}").as_bytes());
        let id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let event = RiskEvent {
            event_id: format!("evt-degraded-{id}"),
            source: self.config.source.clone(),
            kind: "guard_degraded".into(),
            severity: Severity::Warning,
            scope: Scope::Global,
            action: Some(RiskAction::None),
            reason: Some(reason.to_owned()),
            evidence: Some(vec![failed_id.to_owned()]),
            ts: Timestamp::now(),
        };
        if self.outbox.contains(&event.event_id) {
            return;
        }
        self.publish_all(vec![Decision::RiskEvent(event)], Instant::now());
    }

    /// Takes a checkpoint at a boundary of the order journal and writes it once the
    /// record that ends there is on the broker (at once when nothing new was applied);
    /// on success commits the covered offsets to Kafka. A local checkpoint so never
    /// holds an input order that a guard elsewhere could not find in the journal.
    pub fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if self.prepared.is_some() {
            self.try_save();
            if self.prepared.is_some() {
                self.fail_closed_if_unpersisted("its order record is not on the broker");
            }
            return;
        }
        self.pending_seen.extend(self.engine.drain_seen_journal());
        let checkpoint = Checkpoint {
            seq: self.seq + 1,
            engine: self.engine.snapshot_without_seen(),
            offsets: self.offsets.clone(),
            outbox: self.outbox.messages(),
            seen_from: self.engine.seen_forgotten_before(),
        };
        if let Some(from) = checkpoint.seen_from {
            // Entries journaled but already beyond the horizon need not be written.
            self.pending_seen.retain(|(_, second)| *second >= from);
        }
        let seen = std::mem::take(&mut self.pending_seen);
        self.cut_journal();
        self.prepared = Some((checkpoint, seen, self.journal.written()));
        self.dirty = false;
        self.try_save();
    }

    /// Writes the prepared checkpoint when its order record is on the broker.
    fn try_save(&mut self) {
        let Some((_, _, record)) = &self.prepared else {
            return;
        };
        if !self.journal.is_acked(*record) {
            return;
        }
        let Some((checkpoint, seen, _)) = self.prepared.take() else {
            return;
        };
        match self.store.save(&checkpoint, &seen) {
            Ok(()) => {
                self.last_persisted = Instant::now();
                if self.failed_closed {
                    self.failed_closed = false;
                    self.status.lock().degraded = self.inputs_lost;
                    warn!("the state is persisted again; the global pause stays until an operator resumes");
                }
                self.seq = checkpoint.seq;
                let view = state_view(&self.engine);
                let mut status = self.status.lock();
                status.metrics.checkpoints += 1;
                // /state follows every checkpoint (and every decision, at once).
                status.state = view;
                drop(status);
                self.commit_offsets(&checkpoint.offsets);
            }
            Err(e) => {
                error!(error = %e, "checkpoint failed; offsets stay at the previous checkpoint");
                self.status.lock().metrics.checkpoint_failures += 1;
                // Its seen ids go into the next checkpoint.
                self.pending_seen.splice(0..0, seen);
                self.dirty = true;
                self.fail_closed_if_unpersisted(&e.to_string());
            }
        }
    }

    fn fail_closed_if_unpersisted(&mut self, why: &str) {
        if !self.failed_closed && self.last_persisted.elapsed() >= self.config.fail_closed_after {
            self.failed_closed = true;
            self.fail_closed(&format!(
                "cannot persist the guard's state for {:.0} s: {why}",
                self.last_persisted.elapsed().as_secs_f64()
            ));
        }
    }

    /// Fails closed: a guard that cannot keep its state must not let trading go on
    /// unguarded. It asks for a global pause the way an operator would — an
    /// `ops_command` on the input topic — so the pause goes through the engine, is
    /// recorded in the input history, is replayable, and is lifted only by an
    /// operator's resume.
    fn fail_closed(&mut self, why: &str) {
        self.status.lock().degraded = true;
        let held = self.engine.state().scopes.paused().any(|(scope, paused)| {
            *scope == Scope::Global && paused.reasons.contains(&crate::message::Rule::Operator)
        });
        if held || self.own_pause.is_some() {
            // An operator's (or the guard's own earlier) global pause is in force or on
            // its way, and only an operator lifts it: no second order.
            error!(
                reason = why,
                "failing closed: the global pause is already held"
            );
            let held_by = self
                .own_pause
                .clone()
                .unwrap_or_else(|| format!("fail-closed-{}", Timestamp::now().as_micros()));
            self.raise_degraded(
                &held_by,
                &format!("failing closed: {why}; the global pause is already held"),
            );
            return;
        }
        error!(reason = why, "failing closed: requesting a global pause");
        let wall = Timestamp::now();
        // The order's event time is the guard's own clock: the wall clock live, the
        // newest event time when the guard runs on event time (as replay does).
        let now = match self.config.clock {
            ClockMode::EventTime => self.engine.state().newest.unwrap_or(wall),
            _ => wall,
        };
        let command = crate::message::OpsCommand {
            command_id: format!(
                "guard-degraded-{}-{}",
                self.config.instance,
                wall.as_micros()
            ),
            action: crate::message::Action::Pause,
            scope: Scope::Global,
            operator: self.config.source.clone(),
            reason: Some(format!("guard_degraded: {why}")),
            ts: now,
        };
        let payload = serde_json::to_vec(&command).expect("ops commands serialise");
        let id = command.command_id.clone();
        self.own_pause = Some(id.clone());
        self.enqueue(
            OutMsg {
                id: id.clone(),
                topic: self.config.topics.ops_command.clone(),
                key: "global".into(),
                payload,
                headers: Vec::new(),
                timestamp_ms: None,
            },
            None,
        );
        // The guard may not read that order back soon (or at all, when its inputs are
        // what failed), so it also publishes the guard command the order will decide
        // when applied: a copy of the engine decides it now, with the same
        // deterministic id, so the later decision is a harmless duplicate.
        let mut ahead = self.engine.clone();
        let commands: Vec<Decision> = ahead
            .apply(&Input::Ops(command))
            .decisions
            .into_iter()
            .filter(|d| matches!(d, Decision::GuardCommand(_)))
            .collect();
        drop(ahead);
        self.publish_all(commands, Instant::now());
        self.raise_degraded(&id, &format!("failing closed: {why}"));
    }

    fn commit_offsets(&self, offsets: &BTreeMap<Partition, i64>) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                debug!(error = %e, "offset commit (for lag monitoring) failed");
            }
        }
    }

    fn update_lag(&self) {
        let mut lag = BTreeMap::new();
        for ((topic, partition), next) in &self.offsets {
            let Ok(name) = CString::new(topic.as_str()) else {
                continue;
            };
            if let Some((_, high)) = self.cached_watermarks(&name, *partition) {
                lag.insert(format!("{topic}/{partition}"), (high - next).max(0));
            }
        }
        self.status.lock().metrics.lag = lag;
    }

    /// Final checkpoint and flush on a clean stop.
    pub fn shutdown(&mut self) {
        info!("stopping: flushing the producer and writing a last checkpoint");
        // Twice: order records acknowledged in the first round release decisions.
        for _ in 0..2 {
            self.release();
            let _ = self.producer.flush(Duration::from_secs(5));
            self.handle_deliveries();
        }
        self.try_save();
        if self.prepared.is_none() {
            self.checkpoint();
            let _ = self.producer.flush(Duration::from_secs(5));
            self.handle_deliveries();
            self.try_save();
        }
        if self.prepared.is_some() {
            warn!("the last checkpoint is not written: its order record is not on the broker; a restart resumes from the one before");
        }
        self.status.lock().ready = false;
    }

    /// The engine, read-only (tests compare it with a replay's).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The last checkpoint's number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The state now in the changelog's form (full snapshot, offsets, outbox), taken at
    /// a boundary of the order journal: the next record starts at its offsets.
    pub fn published(&mut self) -> Published {
        self.cut_journal();
        Published {
            instance: self.config.instance.clone(),
            engine: String::from_utf8(self.engine.snapshot()).expect("snapshots are JSON text"),
            offsets: self.offsets.clone(),
            outbox: self.outbox.messages(),
        }
    }

    /// Stops reading the inputs and hands the store back (stepping down to standby).
    pub fn into_store(self) -> S {
        let _ = self.consumer.unassign();
        self.store
    }

    /// The next offset the guard will read from `topic`/`partition`.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(&(topic.to_owned(), partition)).copied()
    }

    /// Messages still waiting for an acknowledgement.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }
}

/// The delivery id of an order-journal record (its number is the report's `seq`).
const ORDER_RECORD: &str = "order";

/// Hands outbox message `seq` to the producer; `false` when the producer refuses it
/// (it is offered again later).
fn send_out(producer: &BaseProducer<DeliveryContext>, seq: u64, message: &OutMsg) -> bool {
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
    for (k, v) in &message.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    hand_over(producer, &message.id, || {
        let pending = Box::new(Pending {
            id: message.id.clone(),
            seq,
            sent: Instant::now(),
        });
        let record = BaseRecord::with_opaque_to(&message.topic, pending)
            .key(message.key.as_str())
            .payload(message.payload.as_slice())
            .headers(headers.clone());
        match message.timestamp_ms {
            Some(ts) => record.timestamp(ts),
            None => record,
        }
    })
}

/// Sends order record `n` to partition 0 of the state topic; `false` when the producer
/// refuses it.
fn send_record(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    n: u64,
    key: &str,
    payload: &[u8],
) -> bool {
    hand_over(producer, key, || {
        let pending = Box::new(Pending {
            id: ORDER_RECORD.into(),
            seq: n,
            sent: Instant::now(),
        });
        BaseRecord::with_opaque_to(topic, pending)
            .partition(0)
            .key(key)
            .payload(payload)
    })
}

/// Hands the record `make` builds to the producer, waiting out a full queue; `false`
/// (logged, naming `what`) when the producer refuses it.
fn hand_over<'a>(
    producer: &BaseProducer<DeliveryContext>,
    what: &str,
    mut make: impl FnMut() -> BaseRecord<'a, str, [u8], Box<Pending>>,
) -> bool {
    for _ in 0..1_000 {
        match producer.send(make()) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => {
                error!(what, error = %e, "cannot hand a message to the producer; will retry");
                return false;
            }
        }
    }
    false
}
