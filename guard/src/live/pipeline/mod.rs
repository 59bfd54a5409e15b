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
//! next one (bounded by [`super::merge::patience`]); the journal makes whatever order that gave
//! final once a decision rests on it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tracing::{debug, error, info, warn};

use super::changelog::{ChangelogWriter, Published};
use super::config::LiveConfig;
use super::fetch_queue::FetchQueue;
use super::input_watch::InputWatch;
use super::kafka::{self, DeliveryContext, Pending, METADATA_TIMEOUT};
use super::merge::{Merge, MergeKey};
use super::order_log::{self, Journal, Step};
use super::outbox::{Outbox, RESEND_AFTER};
use super::status::{state_text, StatusHandle};
use super::store::{Checkpoint, OutMsg, Partition, SeenBlocks, SeenEntry, Store, StoreError};
use super::wakeup::Wakeup;
use crate::engine::{ClockMode, Engine, EngineOptions, Role, ScopeBook, TripFact};
use crate::message::{Decision, Input, RiskAction, RiskEvent, Scope, Severity, Stream};
use crate::time::Timestamp;

mod cases;
mod fetch;
mod input;
mod outbound;
mod persist;
mod start;
mod turn;
mod writer;

use writer::{Writer, Written};

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
    /// A topic the guard reads or writes does not exist.
    #[error("topic {0:?} does not exist (create the guard's topics with `guard topics`, or set --topic-*)")]
    MissingTopic(String),
    /// The order journal on the state topic cannot be read.
    #[error(transparent)]
    OrderLog(#[from] order_log::OrderLogError),
    /// The socket that wakes the loop cannot be made (out of file descriptors).
    #[error("cannot make the loop's wake-up socket: {0}")]
    Wakeup(#[from] std::io::Error),
}

/// How many messages one loop turn fetches at most before it looks at deliveries and
/// the clock (enough to take a whole fetch response, so the merge sees every stream).
const BATCH: usize = 4_096;
/// How often the wall clock is ticked into the engine (maintenance windows).
const TICK_EVERY: Duration = Duration::from_millis(100);
/// How long a turn sleeps at most for its first message while work is under way
/// that no message or delivery report announces (a checkpoint being written,
/// decisions in the outbox, a recorded order replayed).
const BUSY_SLEEP: Duration = Duration::from_millis(5);
/// ... and otherwise: until the next checkpoint or clock tick is due, at most this
/// long. An idle guard then wakes ~20 times a second, not 200 (on this project's
/// 2-core machine a wake-up of the thread costs 25-75 µs of CPU); a `/state` reader
/// waits up to this long more for its view.
const IDLE_SLEEP: Duration = Duration::from_millis(50);
/// How often consumer lag is read from the client's cached watermarks.
const LAG_EVERY: Duration = Duration::from_secs(2);
/// How long a restored order may wait for one of its messages before the guard
/// gives up replaying it (the message left the topic's retention) and says so.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(30);
/// How often the `/state` view (built from the whole state) is rebuilt at most.
const VIEW_EVERY: Duration = Duration::from_millis(100);
/// A turn that takes this long is logged with where the time went.
const SLOW_TURN: Duration = Duration::from_millis(50);
/// A checkpoint is due once this many new dedup ids wait for one (1 MiB of them),
/// even while decisions wait for their order records.
const JOURNAL_DUE: usize = 65_536;
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
    /// The store, on its writer thread.
    writer: Writer<S>,
    /// Wakes the loop for input and delivery reports; declared before the clients
    /// whose queues it holds, so that it is dropped first.
    wakeup: Wakeup,
    /// The input partitions' messages, taken a batch at a time; before the consumer,
    /// so that it is dropped first.
    fetch_queue: FetchQueue,
    /// The last batch taken from it (kept for its room).
    fetched: Vec<super::fetch_queue::Fetched>,
    /// Shared so that a fetched message (which borrows the consumer) can be held
    /// while the guard itself is borrowed mutably.
    consumer: std::sync::Arc<BaseConsumer>,
    producer: BaseProducer<DeliveryContext>,
    deliveries: DeliveryContext,
    outbox: Outbox,
    journal: Journal,
    /// The restored order still to replay before anything new is merged.
    script: VecDeque<Step>,
    script_blocked_since: Option<Instant>,
    /// Order records to send again after a failed delivery.
    record_resend: Vec<(Instant, u64)>,
    /// Where this life's order records landed: where a checkpoint's begin.
    placed: order_log::Placed,
    /// A checkpoint waiting for the order record that ends at it, with its seen ids.
    prepared: Option<Prepared>,
    offsets: BTreeMap<Partition, i64>,
    pending_seen: SeenBlocks,
    /// The slot each input is decoded into: the last applied input, whose buffers the
    /// next fill reuses.
    spent_input: Option<Input>,
    /// The input partition and Kafka timestamp of the latest-stamped input applied in
    /// this life (the guard's own risk events aside).
    latest_stamp: Option<(usize, i64)>,
    /// The size of the last checkpoint's engine snapshot.
    engine_bytes: usize,
    /// The changelog's publisher (on the writer thread) needs every dedup id with
    /// the next checkpoint: it starts a lineage.
    publish_full: bool,
    seq: u64,
    dirty: bool,
    /// Inputs were applied since the status last showed the offsets.
    offsets_moved: bool,
    /// What this turn applied, shown in the status once at the end of the turn.
    turn_counts: TurnCounts,
    /// The `/state` view is behind the engine.
    view_stale: bool,
    /// When the `/state` view was last built.
    last_view: Instant,
    latency: Latency,
    last_checkpoint: Instant,
    last_tick: Instant,
    last_lag: Instant,
    status: StatusHandle,
    decisions: Vec<Decision>,
    /// When the state was last wholly in the store (a write succeeded, or the first
    /// change after one was made).
    last_persisted: Instant,
    failed_closed: bool,
    inputs_lost: bool,
    /// The guard's own pause order, until the engine has applied it.
    own_pause: Option<String>,
    input_watch: InputWatch,
    last_fetched: Instant,
    /// The wall clock as the turn's fetch returned: what a message's stamp is checked
    /// against (`max_future`), read once a turn rather than once a message.
    fetched_wall: Timestamp,
    /// Held messages, each partition named by its index in `inputs`.
    merge: Merge<usize, Held>,
    spare: Vec<Held>,
    /// Aggregator: each worker partition's reported progress.
    progress: BTreeMap<i32, i64>,
    /// Aggregator: the partitions of `exec_result` (one worker each).
    worker_partitions: Vec<i32>,
    inputs: Vec<InputPartition>,
    blocked_since: Option<Instant>,
    /// The scopes as the last step that changed them left them: the "before" of the
    /// next decision's case ([`super::casebook`]).
    case_scopes: ScopeBook,
    /// Deletes this life's order records when no changelog writer does
    /// ([`order_log::Trim`]).
    trim: Option<order_log::Trim>,
}

/// A checkpoint waiting for the order record that ends at it.
struct Prepared {
    checkpoint: Checkpoint,
    /// The dedup ids new since the last checkpoint.
    seen: SeenBlocks,
    /// Every dedup id of the checkpoint, when the changelog starts a lineage with it.
    full: Option<SeenBlocks>,
    /// The journal record that must be on the broker first.
    record: u64,
}

/// Counts of one turn, added to the status at its end.
#[derive(Default)]
struct TurnCounts {
    /// Valid messages by stream (indexed by [`Stream::rank`]).
    messages: [u64; Stream::ALL.len()],
    duplicates: u64,
    /// Fills of another environment, ignored.
    other_env: u64,
    /// A decision or an operator's order changed the state: `/state` is rebuilt.
    state_changed: bool,
}

/// A fetched message waiting for its turn in the merge.
struct Held {
    key: String,
    payload: Vec<u8>,
    received: Instant,
}

/// Fill received → command acknowledged, µs, recorded by the decision thread and
/// shown in the status at checkpoints ([`LiveGuard::show_latency`]).
struct Latency {
    histogram: hdrhistogram::Histogram<u64>,
    /// How many of its values the status shows.
    shown: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            histogram: crate::live::status::Metrics::latency_histogram(),
            shown: 0,
        }
    }
}

/// An assigned input partition and how far the guard has fetched it.
struct InputPartition {
    topic: String,
    name: CString,
    partition: i32,
    /// The stream's rank in the merge ([`LiveGuard::rank_of`]); `None`: not an input.
    rank: Option<usize>,
    /// The stream the topic carries (`None` for the facts topic).
    stream: Option<Stream>,
    /// Assigned to this guard (else met in a fetch unexpectedly: never waited for).
    assigned: bool,
    /// The scale-out facts topic (the aggregator's input).
    facts: bool,
    /// Next offset to fetch; `None` until the first message when the partition was
    /// assigned at the beginning of the topic.
    fetched_next: Option<i64>,
    /// `fetched_next` when a wait for this partition last expired.
    waived: Option<Option<i64>>,
    /// Offsets not yet fetched that hold the guard's own risk events (acknowledged
    /// by the broker): applying one changes nothing, so the merge need not wait for
    /// them ([`LiveGuard::fetch_behind`]).
    echoes: BTreeSet<i64>,
}

impl<S: Store> LiveGuard<S> {
    /// Runs until `stop` is set, then checkpoints and flushes.
    ///
    /// # Errors
    /// [`LiveError`] only for failures the guard cannot ride out.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), LiveError> {
        while !stop.load(Ordering::Relaxed) {
            self.turn(self.sleep_limit());
        }
        self.shutdown();
        Ok(())
    }

    /// Sleeps until librdkafka has something for any of `guards` (the guards of a
    /// scaled-out instance, turned one after the other with no wait of their own), at
    /// most until the soonest due work of any of them: a millisecond while a merge
    /// holds messages, else their [`LiveGuard::sleep_limit`]s, at most `cap`.
    pub fn sleep_any(guards: &mut [&mut LiveGuard<S>], cap: Duration) {
        let limit = guards
            .iter()
            .map(|g| {
                if g.merge.is_empty() {
                    g.sleep_limit()
                } else {
                    Duration::from_millis(1)
                }
            })
            .fold(cap, Duration::min);
        let mut wakeups: Vec<&mut Wakeup> = guards.iter_mut().map(|g| &mut g.wakeup).collect();
        Wakeup::wait_any(&mut wakeups, limit);
    }

    /// How long the next turn may sleep for its first message ([`BUSY_SLEEP`], or
    /// until a checkpoint or tick is due, at most [`IDLE_SLEEP`]). Messages and
    /// delivery reports wake it at once either way.
    pub fn sleep_limit(&self) -> Duration {
        let busy = self.prepared.is_some()
            || self.writer.busy()
            || !self.outbox.is_empty()
            || !self.script.is_empty();
        if busy {
            return BUSY_SLEEP;
        }
        let until = |since: Instant, every: Duration| every.saturating_sub(since.elapsed());
        let mut limit = IDLE_SLEEP;
        if self.dirty {
            limit = limit.min(until(self.last_checkpoint, self.config.checkpoint_interval));
        }
        if self.config.clock == ClockMode::External {
            limit = limit.min(until(self.last_tick, TICK_EVERY));
        }
        // Never 0: a turn that finds nothing to do must not spin.
        limit.max(Duration::from_millis(1))
    }

    /// Final checkpoint and flush on a clean stop.
    pub fn shutdown(&mut self) {
        info!("stopping: flushing the producer and writing a last checkpoint");
        let started = Instant::now();
        // Twice: order records acknowledged in the first round release decisions.
        for _ in 0..2 {
            self.release();
            kafka::wait_delivered(&self.producer, Duration::from_secs(5));
            self.handle_deliveries();
        }
        self.finish_writing();
        self.try_save();
        self.finish_writing();
        // A lineage given up (a record not delivered, a rival's read) starts with the
        // whole set: without it the last checkpoint would add nothing to the changelog.
        if self.writer.lineage_wanted() {
            self.publish_full = true;
        }
        if self.prepared.is_none() {
            self.checkpoint();
            kafka::wait_delivered(&self.producer, Duration::from_secs(5));
            self.handle_deliveries();
            self.finish_writing();
            self.try_save();
            self.finish_writing();
        }
        if self.prepared.is_some() {
            warn!("the last checkpoint is not written: its order record is not on the broker; a restart resumes from the one before");
        }
        // The last checkpoint's deletions of order records, sent after the last wait.
        kafka::wait_delivered(&self.producer, Duration::from_secs(5));
        self.show_latency();
        self.status.edit().ready = false;
        self.status.publish();
        info!(
            checkpoint = self.seq,
            outbox = self.outbox.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "stopped: what the producer held is delivered, the last checkpoint written"
        );
    }

    /// The engine, read-only (tests compare it with a replay's).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The last checkpoint's number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Stops reading the inputs and hands the store back (stepping down to standby).
    pub fn into_store(self) -> S {
        let _ = self.consumer.unassign();
        self.writer.into_store()
    }

    /// The next offset the guard will read from `topic`/`partition`.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(&(topic.to_owned(), partition)).copied()
    }

    /// Whether the guard is at rest: every decision acknowledged by the broker and the
    /// state as it stands written to the store (nothing prepared, none in flight).
    pub fn at_rest(&self) -> bool {
        self.outbox.is_empty() && !self.dirty && self.prepared.is_none() && !self.writer.busy()
    }

    /// Messages still waiting for an acknowledgement.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }
}
