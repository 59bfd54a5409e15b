//! The store writer: checkpoints are written (and fsynced) on a thread of their own,
//! so the decision thread never waits on the disk; the same thread then publishes
//! what it wrote to the changelog (when this guard keeps one), so the decision
//! thread never serialises a snapshot for it either.
//!
//! One checkpoint is in flight at a time; the next is prepared only once the writer
//! has answered, so checkpoints reach the store in order and a failed one can hand its
//! new dedup ids on to the next. The decision thread learns the outcome from
//! [`Writer::finished`] on a later turn and only then commits the covered offsets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::live::changelog::ChangelogWriter;
use std::collections::BTreeMap;

use crate::live::status::ExportReply;
use crate::live::store::{Checkpoint, Partition, SeenBlocks, Store, StoreError};

/// How often an idle writer looks whether a changelog snapshot is due.
const IDLE_EVERY: Duration = Duration::from_millis(200);

/// A checkpoint handed to the writer, with the dedup ids new since the last one.
struct Job {
    checkpoint: Checkpoint,
    /// The order record the checkpoint was taken at (0: none of this life).
    record: u64,
    seen: SeenBlocks,
    /// Every dedup id of the state, when the changelog asked for them.
    full: Option<SeenBlocks>,
}

/// What the writer did with a [`Job`].
pub(super) struct Written {
    /// The number of the checkpoint it wrote (or failed to write).
    pub seq: u64,
    /// The input offsets that checkpoint covers.
    pub offsets: BTreeMap<Partition, i64>,
    /// Its dedup ids: on a failure they belong in the next checkpoint.
    pub seen: SeenBlocks,
    /// The store's answer.
    pub result: Result<(), StoreError>,
    /// How long the write took, fsync included.
    pub took: Duration,
    /// Changelog records the broker did not take since the last report.
    pub changelog_failures: u64,
    /// Where the checkpoint stands for deleting order records: its forgetting floor,
    /// where its order records begin and the record it was taken at.
    pub cut: (Option<i64>, Option<i64>, u64),
}

/// The handle the decision thread holds.
pub(super) struct Writer<S> {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Written>,
    thread: Option<JoinHandle<S>>,
    /// When the checkpoint in flight was handed over.
    in_flight: Option<Instant>,
    /// A job the writer could not take (its thread is gone), reported as failed.
    refused: Option<Written>,
    /// Kept by the writer thread: whether the changelog wants a new lineage started: a
    /// lineage it gave up between two checkpoints (a delivery report that came late)
    /// would otherwise wait for the next input, which a quiet market may not send for
    /// hours, and no standby could restore a snapshot meanwhile.
    lineage_wanted: Arc<AtomicBool>,
}

/// Writes one job to the store, then to the changelog when the store has it.
fn write<S: Store>(store: &mut S, changelog: &mut Option<ChangelogWriter>, job: Job) -> Written {
    let started = Instant::now();
    // A panicking store (sled is beta) must not take the dedup ids of the job with
    // it: it is reported as a failed write.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.save(&job.checkpoint, &job.seen)
    }))
    .unwrap_or_else(|_| {
        Err(StoreError::Corrupt(
            "the store panicked while writing".into(),
        ))
    });
    let took = started.elapsed();
    let (seq, offsets) = (job.checkpoint.seq, job.checkpoint.offsets.clone());
    let cut = (
        job.checkpoint.seen_from,
        job.checkpoint.journal_from,
        job.record,
    );
    if let (Ok(()), Some(changelog)) = (&result, changelog.as_mut()) {
        changelog.written(job.checkpoint, job.record, &job.seen, job.full.as_ref());
        tracing::debug!(
            seq,
            took_us = started.elapsed().as_micros() as u64,
            "checkpoint published to the changelog"
        );
    }
    Written {
        seq,
        offsets,
        seen: job.seen,
        result,
        took,
        changelog_failures: changelog.as_mut().map_or(0, ChangelogWriter::new_failures),
        cut,
    }
}

impl<S: Store> Writer<S> {
    /// Moves `store` (and the changelog's publisher, when there is one) onto a
    /// writer thread.
    ///
    /// `exports` asks for the last committed checkpoint (a backup of a running guard):
    /// the writer answers between writes, so the answer is always a whole checkpoint.
    pub fn start(
        store: S,
        changelog: Option<ChangelogWriter>,
        exports: Option<Receiver<ExportReply>>,
    ) -> Self {
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let (report, done) = mpsc::channel::<Written>();
        let lineage_wanted = Arc::new(AtomicBool::new(false));
        let wanted = Arc::clone(&lineage_wanted);
        let thread = std::thread::Builder::new()
            .name("guard-store-writer".into())
            .spawn(move || {
                crate::live::priority::background();
                let mut store = store;
                let mut changelog = changelog;
                loop {
                    match inbox.recv_timeout(IDLE_EVERY) {
                        Ok(job) => {
                            let written = write(&mut store, &mut changelog, job);
                            // Before the report: a decision thread that sees the job
                            // answered never reads the wish from before it.
                            let wants = changelog.as_ref().is_some_and(ChangelogWriter::wants_full);
                            wanted.store(wants, Ordering::Relaxed);
                            if report.send(written).is_err() {
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if let Some(changelog) = changelog.as_mut() {
                                changelog.idle();
                                wanted.store(changelog.wants_full(), Ordering::Relaxed);
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    for reply in exports.iter().flat_map(Receiver::try_iter) {
                        let _ = reply.send(store.load());
                    }
                }
                if let Some(changelog) = changelog {
                    changelog.close();
                }
                store
            })
            .expect("the store writer thread starts");
        Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: None,
            refused: None,
            lineage_wanted,
        }
    }

    /// Whether the changelog wants a checkpoint with the whole dedup set, to start a
    /// new lineage (as of the writer's last job or idle turn).
    pub fn lineage_wanted(&self) -> bool {
        self.lineage_wanted.load(Ordering::Relaxed)
    }

    /// Whether a checkpoint is being written.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Hands a checkpoint, taken at this life's order record `record`, to the
    /// writer; the caller checks [`Writer::busy`] first.
    pub fn submit(
        &mut self,
        checkpoint: Checkpoint,
        record: u64,
        seen: SeenBlocks,
        full: Option<SeenBlocks>,
    ) {
        debug_assert!(
            self.in_flight.is_none(),
            "one checkpoint in flight at a time"
        );
        let Some(jobs) = &self.jobs else {
            return;
        };
        self.in_flight = Some(Instant::now());
        if let Err(mpsc::SendError(job)) = jobs.send(Job {
            checkpoint,
            record,
            seen,
            full,
        }) {
            self.refused = Some(Written {
                seq: job.checkpoint.seq,
                offsets: job.checkpoint.offsets,
                seen: job.seen,
                result: Err(StoreError::Corrupt(
                    "the store writer thread is gone".into(),
                )),
                took: Duration::ZERO,
                changelog_failures: 0,
                cut: (None, None, 0),
            });
        }
    }

    /// The writer's answer, when it has one (never waits).
    pub fn finished(&mut self) -> Option<Written> {
        if let Some(refused) = self.refused.take() {
            self.in_flight = None;
            return Some(refused);
        }
        match self.done.try_recv() {
            Ok(written) => {
                self.in_flight = None;
                Some(written)
            }
            // Disconnected cannot happen while this handle holds the sender: the
            // thread only ends when the sender is dropped.
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// Waits for the checkpoint in flight (a clean stop may wait; a turn never does).
    pub fn wait(&mut self) -> Option<Written> {
        if let Some(refused) = self.refused.take() {
            self.in_flight = None;
            return Some(refused);
        }
        self.in_flight?;
        let written = self.done.recv().ok();
        self.in_flight = None;
        written
    }

    /// Stops the writer after what it holds (publishing the changelog's pending
    /// snapshot) and hands the store back.
    pub fn into_store(mut self) -> S {
        self.jobs = None;
        let thread = self
            .thread
            .take()
            .expect("the writer thread is joined once");
        match thread.join() {
            Ok(store) => store,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::{Writer, Written};
    use crate::live::changelog::Changelog;
    use crate::live::config::LiveConfig;
    use crate::live::store::{Checkpoint, MemStore, SeenBlocks, SeenEntry};

    fn ids(from: u64, to: u64) -> SeenBlocks {
        (from..to)
            .map(|i| SeenEntry::new(u128::from(i) << 64, i as i64))
            .collect()
    }

    fn written(writer: &mut Writer<MemStore>) -> Written {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(written) = writer.finished() {
                return written;
            }
            assert!(Instant::now() < deadline, "the writer did not answer");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The broker's refusal is reported after the checkpoint's write was answered,
    /// and no checkpoint follows (no new input): the writer still asks for one.
    #[test]
    fn a_lineage_given_up_after_its_checkpoint_was_answered_asks_for_a_checkpoint() {
        let mock = MockCluster::new(1).expect("mock cluster");
        let mut config = LiveConfig::new(mock.bootstrap_servers(), "unused");
        config.instance = "vm-a".into();
        mock.create_topic(&config.topics.state, 1, 1)
            .expect("topic");
        let changelog = Changelog::open(&config)
            .expect("opened")
            .activate()
            .expect("writer");
        let mut writer = Writer::start(MemStore::default(), Some(changelog), None);
        let checkpoint = |seq: u64| Checkpoint {
            seq,
            engine: b"{}".to_vec(),
            ..Checkpoint::default()
        };

        let all = ids(0, 100);
        writer.submit(checkpoint(1), 0, all.clone(), Some(all));
        assert!(written(&mut writer).result.is_ok());
        // Its records on the broker before the refusal (the writer serves delivery
        // reports while idle, every 200 ms).
        std::thread::sleep(Duration::from_millis(600));
        assert!(!writer.lineage_wanted(), "the lineage stands");

        mock.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 1],
        );
        writer.submit(checkpoint(2), 0, ids(100, 110), None);
        assert!(written(&mut writer).result.is_ok());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !writer.lineage_wanted() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            writer.lineage_wanted(),
            "a lineage given up asks for a checkpoint to start the next"
        );

        // The checkpoint with the whole set starts the next lineage: no more asked.
        let all = ids(0, 120);
        writer.submit(checkpoint(3), 0, ids(110, 120), Some(all));
        assert!(written(&mut writer).result.is_ok());
        assert!(!writer.lineage_wanted(), "answered before the report");
        drop(writer.into_store());
    }
}
