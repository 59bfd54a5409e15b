//! The store writer: checkpoints are written (and fsynced) on a thread of their own,
//! so the decision thread never waits on the disk.
//!
//! One checkpoint is in flight at a time; the next is prepared only once the writer
//! has answered, so checkpoints reach the store in order and a failed one can hand its
//! new dedup ids on to the next. The decision thread learns the outcome from
//! [`Writer::finished`] on a later turn and only then commits the covered offsets.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::live::store::{Checkpoint, SeenEntry, Store, StoreError};

/// A checkpoint handed to the writer, with the dedup ids new since the last one.
struct Job {
    checkpoint: Checkpoint,
    seen: Vec<SeenEntry>,
}

/// What the writer did with a [`Job`].
pub(super) struct Written {
    /// The checkpoint it wrote (or failed to write).
    pub checkpoint: Checkpoint,
    /// Its dedup ids: on a failure they belong in the next checkpoint.
    pub seen: Vec<SeenEntry>,
    /// The store's answer.
    pub result: Result<(), StoreError>,
    /// How long the write took, fsync included.
    pub took: Duration,
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
}

impl<S: Store> Writer<S> {
    /// Moves `store` onto a writer thread.
    pub fn start(store: S) -> Self {
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let (report, done) = mpsc::channel::<Written>();
        let thread = std::thread::Builder::new()
            .name("guard-store-writer".into())
            .spawn(move || {
                let mut store = store;
                for job in inbox {
                    let started = Instant::now();
                    // A panicking store (sled is beta) must not take the dedup ids of
                    // the job with it: it is reported as a failed write.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        store.save(&job.checkpoint, &job.seen)
                    }))
                    .unwrap_or_else(|_| {
                        Err(StoreError::Corrupt(
                            "the store panicked while writing".into(),
                        ))
                    });
                    let written = Written {
                        checkpoint: job.checkpoint,
                        seen: job.seen,
                        result,
                        took: started.elapsed(),
                    };
                    if report.send(written).is_err() {
                        break;
                    }
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
        }
    }

    /// Whether a checkpoint is being written.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Hands a checkpoint to the writer; the caller checks [`Writer::busy`] first.
    pub fn submit(&mut self, checkpoint: Checkpoint, seen: Vec<SeenEntry>) {
        debug_assert!(
            self.in_flight.is_none(),
            "one checkpoint in flight at a time"
        );
        let Some(jobs) = &self.jobs else {
            return;
        };
        self.in_flight = Some(Instant::now());
        if let Err(mpsc::SendError(job)) = jobs.send(Job { checkpoint, seen }) {
            self.refused = Some(Written {
                checkpoint: job.checkpoint,
                seen: job.seen,
                result: Err(StoreError::Corrupt(
                    "the store writer thread is gone".into(),
                )),
                took: Duration::ZERO,
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

    /// Stops the writer after what it holds and hands the store back.
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
