//! The handle the decision thread and the HTTP readers share the status through.
//!
//! The thread that runs the guard edits its own copy of the status ([`StatusHandle::edit`];
//! no reader ever takes that lock) and publishes it once per turn of its loop
//! ([`StatusHandle::publish`]): readers load the latest published status without a lock
//! ([`StatusHandle::read`], an `ArcSwap`), so neither side ever waits for the other.
//! The exceptions are too large to copy once per turn: the casebook behind
//! `GET /explain/ID` and the operators' orders applied lately behind
//! `GET /ops/applied/ID` each have a lock of their own ([`StatusHandle::cases`],
//! [`StatusHandle::applied`]), which the decision thread takes to add one entry and a
//! reader for one lookup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use super::{AppliedOrders, Status};
use crate::live::casebook::Casebook;

/// A handle to the shared status.
///
/// The `/state` view (and the gauges `/metrics` takes from it) is built from the
/// whole state, so the decision thread builds it only when a reader wants it: a
/// reader says so ([`StatusHandle::want_view`]) and waits, if the view is behind the
/// state, for the next one ([`StatusHandle::fresh_view`]); the decision thread never
/// waits for a reader.
#[derive(Clone, Default)]
pub struct StatusHandle(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// The writer's copy, and whether it changed since it was last published.
    draft: Mutex<(Status, bool)>,
    /// What readers see.
    published: ArcSwap<Status>,
    demand: ViewDemand,
    cases: Mutex<Casebook>,
    applied: Mutex<AppliedOrders>,
}

/// Whether a reader wants a fresh view, and whether the view is behind the state.
#[derive(Default)]
pub struct ViewDemand {
    wanted: AtomicBool,
    stale: AtomicBool,
}

/// The writer's copy of the status, marked changed when it is taken.
pub struct Edit<'a>(MutexGuard<'a, (Status, bool)>);

impl std::ops::Deref for Edit<'_> {
    type Target = Status;
    fn deref(&self) -> &Status {
        &self.0 .0
    }
}

impl std::ops::DerefMut for Edit<'_> {
    fn deref_mut(&mut self) -> &mut Status {
        self.0 .1 = true;
        &mut self.0 .0
    }
}

impl StatusHandle {
    /// The writer's copy, for the thread that runs the guard (a poisoned lock still
    /// yields the data: status is advisory). Readers see a change once it is
    /// [published](StatusHandle::publish).
    pub fn edit(&self) -> Edit<'_> {
        Edit(self.0.draft.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Shows readers the writer's copy, if it changed since it was last shown: once
    /// per turn of the decision loop, and after a change of role.
    pub fn publish(&self) {
        let mut draft = self.0.draft.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut draft.1) {
            self.0.published.store(Arc::new(draft.0.clone()));
        }
    }

    /// The status as last published, without a lock.
    pub fn read(&self) -> Arc<Status> {
        self.0.published.load_full()
    }

    /// The casebook (`GET /explain/ID`): the decision thread records a step that
    /// decided, a reader looks one decision up.
    pub fn cases(&self) -> MutexGuard<'_, Casebook> {
        self.0.cases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The operators' orders applied lately (`GET /ops/applied/ID`): the decision
    /// thread notes one, a reader looks one up. Behind a lock of its own: copied
    /// with the status at every turn after an order, its 10,000 ids cost more than
    /// the turn.
    pub fn applied(&self) -> MutexGuard<'_, AppliedOrders> {
        self.0.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader wants the view as of now.
    pub fn want_view(&self) {
        self.0.demand.wanted.store(true, Ordering::Relaxed);
    }

    /// The decision thread: whether a reader wants a fresh view (and no longer, once
    /// asked).
    pub fn take_view_wanted(&self) -> bool {
        self.0.demand.wanted.swap(false, Ordering::Relaxed)
    }

    /// The decision thread: whether the view is behind the state (a fresh view is
    /// published first: a reader that sees `false` then reads it).
    pub fn set_view_stale(&self, stale: bool) {
        self.0.demand.stale.store(stale, Ordering::Release);
    }

    /// Whether the view is behind the state.
    pub fn view_stale(&self) -> bool {
        self.0.demand.stale.load(Ordering::Acquire)
    }

    /// Asks for the view as of now and waits for it, up to `limit` (a reader's task;
    /// the decision thread builds one at most every 100 ms, between two batches).
    pub async fn fresh_view(&self, limit: std::time::Duration) {
        self.want_view();
        let step = std::time::Duration::from_millis(5);
        let mut waited = std::time::Duration::ZERO;
        while self.view_stale() && waited < limit {
            tokio::time::sleep(step).await;
            self.want_view();
            waited += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn readers_see_what_was_published_and_never_take_the_writers_lock() {
        let status = StatusHandle::default();
        let mut draft = status.edit();
        draft.metrics.invalid = 3;
        // While the writer holds its copy, a reader on another thread still reads.
        let reader = status.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(reader.read().metrics.invalid).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(0));
        drop(draft);
        assert_eq!(status.read().metrics.invalid, 0, "not published yet");
        status.publish();
        assert_eq!(status.read().metrics.invalid, 3);

        // Nothing changed: the published status stays as it is.
        let shown = status.read();
        status.publish();
        assert!(Arc::ptr_eq(&shown, &status.read()));

        // A record after publishing copies the histogram; the readers' copy stays.
        let _ = Arc::make_mut(&mut status.edit().metrics.decision_latency).record(1_000);
        assert_eq!(status.read().metrics.decision_latency.len(), 0);
        status.publish();
        assert_eq!(status.read().metrics.decision_latency.len(), 1);
        assert_eq!(shown.metrics.decision_latency.len(), 0);
    }
}
