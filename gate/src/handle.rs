//! The gate shared between the thread that follows the guard and the gateway's order
//! threads.
//!
//! # Why a `RwLock`
//! The order threads only read; the follower writes once per message (a command, a
//! record, a heartbeat a second) and once per poll to notice silence. A write holds
//! the lock for an in-memory fold of microseconds: decoding happens before it and
//! publishing after it, so no reader ever waits on Kafka. An uncontended read lock is
//! one atomic operation, well under the cost of the map lookup it guards. The
//! alternative, an atomically swapped snapshot, would copy every scope's state on
//! every heartbeat to save readers a wait they practically never have.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Instant;

use serde::Serialize;

use crate::gate::{Counters, Effects, Gate, ModeChange, Now};
use crate::state::GateState;
use crate::verdict::Verdict;
use crate::wire::{wall_ms, Mode};

/// How many commands [`GateHandle::in_force_at`] remembers.
pub const REMEMBERED_IN_FORCE: usize = 4_096;

/// A cheap, cloneable handle on a shared [`Gate`].
#[derive(Clone, Debug)]
pub struct GateHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    gate: RwLock<Gate>,
    /// The origin of the monotonic clock the gate is given.
    origin: Instant,
    subscribers: Mutex<Vec<Sender<ModeChange>>>,
    in_force: Mutex<InForce>,
    shell: ShellStats,
}

/// When each recent command came into force.
#[derive(Debug, Default)]
struct InForce {
    at: HashMap<String, Instant>,
    order: VecDeque<String>,
}

/// What the shell around the gate counts: messages it could not decode, and the
/// acknowledgements it published or failed to.
#[derive(Debug, Default)]
pub struct ShellStats {
    invalid_messages: AtomicU64,
    acks_published: AtomicU64,
    acks_failed: AtomicU64,
}

/// A reading of [`ShellStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShellCounters {
    /// Messages that were not what the contract says (skipped).
    pub invalid_messages: u64,
    /// Acknowledgements the broker confirmed.
    pub acks_published: u64,
    /// Acknowledgements that could not be delivered.
    pub acks_failed: u64,
}

impl ShellStats {
    /// One undecodable message.
    pub fn invalid_message(&self) {
        self.invalid_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// One acknowledgement confirmed (`true`) or failed (`false`).
    pub fn ack_delivered(&self, ok: bool) {
        let counter = if ok {
            &self.acks_published
        } else {
            &self.acks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn read(&self) -> ShellCounters {
        ShellCounters {
            invalid_messages: self.invalid_messages.load(Ordering::Relaxed),
            acks_published: self.acks_published.load(Ordering::Relaxed),
            acks_failed: self.acks_failed.load(Ordering::Relaxed),
        }
    }
}

impl GateHandle {
    /// Shares `gate`; its monotonic clock starts now.
    pub fn new(gate: Gate) -> Self {
        GateHandle {
            shared: Arc::new(Shared {
                gate: RwLock::new(gate),
                origin: Instant::now(),
                subscribers: Mutex::new(Vec::new()),
                in_force: Mutex::new(InForce::default()),
                shell: ShellStats::default(),
            }),
        }
    }

    /// The gate's monotonic clock, in milliseconds.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.shared.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The time to give the gate now: its monotonic clock and the wall clock.
    pub fn now(&self) -> Now {
        Now {
            mono_ms: self.now_ms(),
            utc_ms: wall_ms(),
        }
    }

    /// What `strategy_id` may do now: [`Mode::Running`], [`Mode::ReduceOnly`] (only
    /// orders that reduce its position) or [`Mode::Paused`]. Takes a read lock the
    /// follower holds only for in-memory folds; allocates nothing.
    pub fn may_trade(&self, strategy_id: &str) -> Mode {
        let now_ms = self.now_ms();
        self.read().may_trade(strategy_id, now_ms).mode()
    }

    /// Calls `f` with the full verdict for `strategy_id` now, reasons included,
    /// under the read lock: keep `f` short, and do not call the handle from it (a
    /// second read lock waits behind a waiting writer).
    pub fn verdict<R>(&self, strategy_id: &str, f: impl FnOnce(Verdict<'_>) -> R) -> R {
        let now_ms = self.now_ms();
        f(self.read().may_trade(strategy_id, now_ms))
    }

    /// Read access to the gate (hold it briefly: the follower waits for it; take no
    /// second one meanwhile).
    pub fn read(&self) -> RwLockReadGuard<'_, Gate> {
        self.shared.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The gate's state now.
    pub fn state(&self) -> GateState {
        let now_ms = self.now_ms();
        self.read().state(now_ms)
    }

    /// The core's counters.
    pub fn counters(&self) -> Counters {
        self.read().counters()
    }

    /// The shell's counters (decoding, publishing acknowledgements).
    pub fn shell(&self) -> &ShellStats {
        &self.shared.shell
    }

    /// Every change of effective mode from now on, as the gate reports it. A
    /// receiver that is dropped is forgotten; one that is never read keeps every
    /// change in memory.
    pub fn subscribe(&self) -> Receiver<ModeChange> {
        let (tx, rx) = mpsc::channel();
        self.lock_subscribers().push(tx);
        rx
    }

    /// When the command `command_id` came into force here (the shared state held
    /// it), for the last [`REMEMBERED_IN_FORCE`] commands.
    pub fn in_force_at(&self, command_id: &str) -> Option<Instant> {
        let in_force = self
            .shared
            .in_force
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        in_force.at.get(command_id).copied()
    }

    /// The write path, for a shell: runs `f` on the gate under the write lock with
    /// the time now, then (the lock released, so the result is in force) notes when
    /// each acknowledged command came into force and sends the changes to the
    /// subscribers. Returns the effects: the acknowledgements are the caller's to
    /// publish.
    pub fn fold(&self, f: impl FnOnce(&mut Gate, Now) -> Effects) -> Effects {
        let now = self.now();
        let effects = {
            let mut gate = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
            f(&mut gate, now)
        };
        if !effects.acks.is_empty() {
            let at = Instant::now();
            let mut in_force = self
                .shared
                .in_force
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for ack in &effects.acks {
                in_force.note(&ack.command_id, at);
            }
        }
        if !effects.changes.is_empty() {
            self.lock_subscribers().retain(|tx| {
                effects
                    .changes
                    .iter()
                    .all(|change| tx.send(change.clone()).is_ok())
            });
        }
        effects
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, Vec<Sender<ModeChange>>> {
        self.shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl InForce {
    fn note(&mut self, command_id: &str, at: Instant) {
        if self.at.contains_key(command_id) {
            return;
        }
        if self.order.len() == REMEMBERED_IN_FORCE {
            if let Some(oldest) = self.order.pop_front() {
                self.at.remove(&oldest);
            }
        }
        self.order.push_back(command_id.to_owned());
        self.at.insert(command_id.to_owned(), at);
    }
}
