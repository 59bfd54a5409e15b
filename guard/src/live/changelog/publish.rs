//! The changelog as the store writer publishes it: after every checkpoint the store
//! has written, its new dedup blocks at once, and its state record and manifest at
//! most about once a second (the newest written checkpoint, when it moved), then the
//! tombstones of the order records no published cut within the horizon needs
//! ([`crate::live::order_log::Trim`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message as _};
use tracing::{debug, warn};

use super::records::{Publisher, Record};
use super::Signals;
use crate::live::config::LiveConfig;
use crate::live::kafka;
use crate::live::order_log::{Trim, DELETE_PER_CUT};
use crate::live::store::{Checkpoint, SeenBlocks};

/// How often the state record and the manifest are published at most.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// What the changelog's producer may hold unacknowledged, in KiB: about ten dedup
/// blocks. Without a bound librdkafka kept a copy of every block of a backlog drain
/// until the broker had it (21 MB of a drain's peak); with it, the store writer
/// waits for the broker instead (never the decision thread). An explicit
/// `queue.buffering.max.kbytes` in `[kafka]` wins.
const QUEUE_KBYTES: &str = "4096";

/// How long a record waits for room in that queue before the lineage is given up (a
/// new one starts with the next checkpoint). Short: the store writer publishes after
/// each write, and the next checkpoint's write waits behind it.
const PATIENCE: Duration = Duration::from_secs(1);

/// How long a lineage must have lasted for its loss to count as a first one again.
const STEADY: Duration = Duration::from_secs(60);
/// The wait before the second of lineages given up in a row; doubled with each more.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two lineages.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When a new lineage may start after one was given up. Every lineage starts with
/// the whole dedup set (copied on the decision thread, then sent), so while the
/// broker keeps refusing the changelog, lineages must not follow one another at
/// every checkpoint: the first starts at once, the next after 5 s, then 10, 20 …
/// up to 60 s, and a lineage that lasted [`STEADY`] makes its loss a first again.
#[derive(Debug, Default)]
struct Backoff {
    /// Lineages given up in a row.
    in_a_row: u32,
    /// When the last one was given up, and when the next may start (a lineage that
    /// lasts from there for [`STEADY`] is a steady one).
    last: Option<(Instant, Instant)>,
}

impl Backoff {
    fn gave_up(&mut self, now: Instant) {
        if self
            .last
            .is_none_or(|(_, next)| now.saturating_duration_since(next) >= STEADY)
        {
            self.in_a_row = 0;
        }
        self.in_a_row += 1;
        let wait = match self.in_a_row {
            1 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_BACKOFF),
        };
        self.last = Some((now, now + wait));
    }

    fn ready(&self, now: Instant) -> bool {
        self.last.is_none_or(|(_, next)| now >= next)
    }
}

/// The delivery reports of the changelog's records. Each record carries the epoch of
/// the lineage it belongs to (0 for a tombstone, which no cut needs): a record of
/// the current lineage that the broker did not take leaves a hole that no later
/// manifest of the lineage can be restored over, so the writer gives the lineage up
/// ([`ChangelogWriter::idle`]).
#[derive(Clone, Default)]
struct Reports {
    /// Records not delivered, tombstones included.
    failed: Arc<AtomicU64>,
    /// The newest lineage epoch with a record not delivered (0: none).
    failed_epoch: Arc<AtomicU64>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        let Err((e, message)) = result else { return };
        let failed = self.failed.fetch_add(1, Ordering::Relaxed);
        let epoch = epoch as u64;
        let first_of_lineage =
            epoch != 0 && self.failed_epoch.fetch_max(epoch, Ordering::Relaxed) < epoch;
        // Once per lineage, and once per 100 tombstones: an outage fails them all.
        if first_of_lineage || (epoch == 0 && failed % 100 == 0) {
            let key = message.key().map(String::from_utf8_lossy);
            warn!(error = %e, key = ?key, "a changelog record was not delivered");
        }
    }
}

/// Publishes what the store writer wrote.
pub struct ChangelogWriter {
    topic: String,
    group: String,
    producer: BaseProducer<Reports>,
    reports: Reports,
    /// Records not delivered, as last told the decision thread.
    failures_told: u64,
    backoff: Backoff,
    publisher: Publisher,
    /// The newest written checkpoint not yet in a manifest, with the number of the
    /// order record it was taken at.
    pending: Option<(Checkpoint, u64)>,
    last_snapshot: Option<Instant>,
    trim: Trim,
    /// What the decision thread tells it: a rival lineage read, a step-down.
    signals: Arc<Signals>,
}

impl ChangelogWriter {
    /// A writer for `config`'s changelog, publishing `publisher`'s lineage and
    /// deleting the order records `trim` lets go.
    ///
    /// # Errors
    /// The Kafka error when the producer cannot be created.
    pub fn open(config: &LiveConfig, publisher: Publisher, trim: Trim) -> Result<Self, KafkaError> {
        let mut client = kafka::producer(config);
        if !config
            .kafka
            .iter()
            .any(|(key, _)| key == "queue.buffering.max.kbytes")
        {
            client.set("queue.buffering.max.kbytes", QUEUE_KBYTES);
        }
        let reports = Reports::default();
        Ok(ChangelogWriter {
            topic: config.topics.state.clone(),
            group: config.group_id.clone(),
            producer: client.create_with_context(reports.clone())?,
            reports,
            failures_told: 0,
            backoff: Backoff::default(),
            publisher,
            pending: None,
            last_snapshot: None,
            trim,
            signals: Arc::default(),
        })
    }

    /// Follows what the decision thread reads: each rival lineage gives this lineage
    /// up for a new one above it; a step-down silences the writer.
    pub fn follow(&mut self, signals: Arc<Signals>) {
        self.signals = signals;
    }

    /// The instance steps down: nothing more is published.
    fn silent(&self) -> bool {
        self.signals.stepping_down.load(Ordering::Relaxed)
    }

    /// This life's order records are keyed `PREFIX` + number (the whole key, group
    /// included). Only a lineage under the group's keys is deleted from here.
    pub fn journal_life(&mut self, prefix: &str) {
        if let Some(rest) = prefix
            .strip_prefix(self.group.as_str())
            .and_then(|p| p.strip_prefix('/'))
            .filter(|rest| rest.starts_with("order/"))
        {
            self.trim.own_life(rest.to_owned());
        }
    }

    /// Whether the next checkpoint must carry the whole dedup set (a new lineage's
    /// first, once its [`Backoff`] lets it start).
    pub fn wants_full(&self) -> bool {
        self.publisher.wants_full() && self.backoff.ready(Instant::now())
    }

    /// A checkpoint is in the store, taken at this life's order record `record`: its
    /// new dedup ids go out now (`full`: the whole set, which a new lineage needs
    /// once), its state when due.
    pub fn written(
        &mut self,
        checkpoint: Checkpoint,
        record: u64,
        seen: &SeenBlocks,
        full: Option<&SeenBlocks>,
    ) {
        if self.silent() {
            return;
        }
        // A hole reported since: these blocks would extend a lineage no cut can use.
        self.serve_reports();
        let (entries, full) = match (full, self.publisher.wants_full()) {
            (Some(all), true) => (all, true),
            // Without its whole set first, a lineage's blocks would be a cut of
            // nothing: a later checkpoint brings it.
            (None, true) => return,
            // A whole set for a lineage already started (asked for twice) would
            // count every id twice: only the new ones.
            (_, false) => (seen, false),
        };
        // One block at a time: encoded, handed over, dropped.
        let send = sender(
            &self.producer,
            &self.topic,
            &self.group,
            self.publisher.epoch(),
        );
        if !self.publisher.blocks_each(entries, full, send) {
            self.lost();
            return;
        }
        self.pending = Some((checkpoint, record));
        self.idle();
    }

    /// Publishes the pending state when it is due; serves delivery reports first: a
    /// record of this lineage the broker did not take gives the lineage up (the next
    /// checkpoint starts a new one with the whole dedup set), so a hole never lasts
    /// past the next checkpoint.
    pub fn idle(&mut self) {
        self.serve_reports();
        if self.pending.is_some()
            && !self.silent()
            && self
                .last_snapshot
                .is_none_or(|t| t.elapsed() >= SNAPSHOT_EVERY)
        {
            self.publish_pending();
        }
        self.producer.poll(Duration::ZERO);
    }

    /// Serves the delivery reports that came, and gives the lineage up when one of its
    /// records was not delivered, or when the decision thread read a rival lineage
    /// (whose tombstones may have taken this one's blocks): then the new lineage
    /// starts above the rival's epoch, at once (no backoff: the broker refuses
    /// nothing).
    fn serve_reports(&mut self) {
        self.producer.poll(Duration::ZERO);
        if self.reports.failed_epoch.load(Ordering::Relaxed) >= self.publisher.epoch() {
            self.give_up("a changelog record of this lineage was not delivered");
        }
        let rival = self.signals.rival_epoch.swap(0, Ordering::Relaxed);
        if rival != 0 {
            warn!(
                epoch = self.publisher.epoch(),
                rival_epoch = rival,
                "another instance's lineage may have deleted this one's blocks: the changelog's snapshot lineage is given up, a new one starts with the next checkpoint"
            );
            self.publisher.restart_above(rival);
            self.pending = None;
        }
    }

    /// Gives the lineage up: its records can no longer make a complete cut. The next
    /// starts with a checkpoint when the backoff allows.
    fn give_up(&mut self, why: &str) {
        self.backoff.gave_up(Instant::now());
        let wait = self.backoff.last.map(|(at, next)| next - at);
        warn!(
            epoch = self.publisher.epoch(),
            lineages_lost_in_a_row = self.backoff.in_a_row,
            new_lineage_in = ?wait,
            "{why}: the changelog's snapshot lineage is given up, a new one starts with a later checkpoint"
        );
        self.publisher.restart();
        self.pending = None;
    }

    /// Whether a written checkpoint waits for its state and manifest to go out.
    #[cfg(test)]
    pub(super) fn holds_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether a lineage was given up and the next waits for its backoff.
    #[cfg(test)]
    pub(super) fn backing_off(&self) -> bool {
        self.publisher.wants_full() && !self.backoff.ready(Instant::now())
    }

    /// Records handed to the producer and not yet answered by the broker.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> i32 {
        use rdkafka::producer::Producer as _;
        self.producer.in_flight_count()
    }

    /// How many of its records the broker did not take since the last call.
    pub fn new_failures(&mut self) -> u64 {
        let failed = self.reports.failed.load(Ordering::Relaxed);
        let new = failed - self.failures_told;
        self.failures_told = failed;
        new
    }

    fn publish_pending(&mut self) {
        let Some((mut checkpoint, record)) = self.pending.take() else {
            return;
        };
        if self.publisher.wants_full() {
            return;
        }
        self.last_snapshot = Some(Instant::now());
        // The next writer goes on from this one's cuts and the records it has not
        // deleted yet (`Trim::seed_cuts`, `Trim::leftovers`).
        checkpoint.order_cuts = self.trim.cuts();
        checkpoint.order_runs = self.trim.leftovers(record, checkpoint.journal_from);
        // Each record goes to the producer as it is made.
        let mut records = 0usize;
        let mut send = sender(
            &self.producer,
            &self.topic,
            &self.group,
            self.publisher.epoch(),
        );
        let sent = self.publisher.snapshot_each(&checkpoint, |record| {
            records += 1;
            send(record)
        });
        // The cut is out: the order records no cut within the horizon needs go. One
        // the producer refuses is offered again with the next cut: the lineage holds.
        let mut deleted = 0u64;
        if sent {
            self.trim.published(
                checkpoint.seen_from,
                checkpoint.journal_from,
                record,
                DELETE_PER_CUT,
                |key| {
                    let taken = send(Record { key, payload: None });
                    deleted += u64::from(taken);
                    taken
                },
            );
        }
        drop(send);
        if sent {
            debug!(
                seq = checkpoint.seq,
                records,
                deleted_order_records = deleted,
                "changelog snapshot published"
            );
        } else {
            self.lost();
        }
    }

    /// A record was not published: this lineage is given up.
    fn lost(&mut self) {
        self.give_up("a changelog record was not published");
    }

    /// Publishes what is pending and waits for the broker to have it (a clean stop).
    pub fn close(mut self) {
        if !self.silent() {
            self.publish_pending();
        }
        if !kafka::wait_delivered(&self.producer, Duration::from_secs(5)) {
            warn!("the changelog's last records may not be on the broker");
        }
        if self.reports.failed_epoch.load(Ordering::Relaxed) >= self.publisher.epoch() {
            warn!("the changelog's last lineage has a record the broker did not take: its snapshot is incomplete");
        }
    }
}

/// Hands a record to the changelog's producer under the instance group's key prefix
/// ([`send_waiting`]), marked with lineage `epoch` (a tombstone with 0: see
/// [`Reports`]).
fn sender<'a>(
    producer: &'a BaseProducer<Reports>,
    topic: &'a str,
    group: &'a str,
    epoch: u64,
) -> impl FnMut(Record) -> bool + 'a {
    move |record| {
        let key = format!("{group}/{}", record.key);
        let mark = if record.payload.is_some() { epoch } else { 0 };
        send_waiting(producer, topic, &key, record.payload.as_deref(), mark)
    }
}

/// Whether the producer took the record (waiting for room while the broker
/// acknowledges earlier ones, up to [`PATIENCE`]).
fn send_waiting(
    producer: &BaseProducer<Reports>,
    topic: &str,
    key: &str,
    payload: Option<&[u8]>,
    epoch: u64,
) -> bool {
    let since = Instant::now();
    let epoch = usize::try_from(epoch).unwrap_or(usize::MAX);
    while since.elapsed() < PATIENCE {
        let mut message = BaseRecord::<str, [u8], usize>::with_opaque_to(topic, epoch).key(key);
        if let Some(payload) = payload {
            message = message.payload(payload);
        }
        match producer.send(message) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => {
                warn!(error = %e, key, "cannot publish to the changelog");
                return false;
            }
        }
    }
    warn!(key, "the changelog producer stayed full");
    false
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn lineages_lost_in_a_row_wait_longer_each_time_and_a_steady_one_resets_the_wait() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut backoff = Backoff::default();
        assert!(backoff.ready(t0), "no lineage lost yet");
        backoff.gave_up(t0);
        assert!(backoff.ready(t0), "the first loss: a new lineage at once");
        // Lost again soon after: 5 s, then 10, 20, 40, and never more than 60.
        let mut at = t0;
        for wait in [5, 10, 20, 40, 60, 60] {
            at += s(1);
            backoff.gave_up(at);
            assert!(!backoff.ready(at + s(wait) - Duration::from_millis(1)));
            assert!(backoff.ready(at + s(wait)), "after {wait} s");
            at += s(wait);
        }
        // A lineage that lasted a minute: its loss is a first one again.
        at += STEADY;
        backoff.gave_up(at);
        assert!(backoff.ready(at));
        assert_eq!(backoff.in_a_row, 1);
    }
}
