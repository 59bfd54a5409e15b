//! The handle the decision thread and the HTTP readers share the status through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Status;

/// A handle to the shared status.
///
/// The `/state` view (and the gauges `/metrics` takes from it) is built from the
/// whole state, so the decision thread builds it only when a reader wants it: a
/// reader says so ([`StatusHandle::want_view`]) and waits, if the view is behind the
/// state, for the next one ([`StatusHandle::fresh_view`]); the decision thread never
/// waits for a reader.
#[derive(Clone, Default)]
pub struct StatusHandle(Arc<Mutex<Status>>, Arc<ViewDemand>);

/// Whether a reader wants a fresh view, and whether the view is behind the state.
#[derive(Default)]
pub struct ViewDemand {
    wanted: AtomicBool,
    stale: AtomicBool,
}

impl StatusHandle {
    /// Locks the status (a poisoned lock still yields the data: status is advisory).
    pub fn lock(&self) -> MutexGuard<'_, Status> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader wants the view as of now.
    pub fn want_view(&self) {
        self.1.wanted.store(true, Ordering::Relaxed);
    }

    /// The decision thread: whether a reader wants a fresh view (and no longer, once
    /// asked).
    pub fn take_view_wanted(&self) -> bool {
        self.1.wanted.swap(false, Ordering::Relaxed)
    }

    /// The decision thread: whether the view is behind the state.
    pub fn set_view_stale(&self, stale: bool) {
        self.1.stale.store(stale, Ordering::Relaxed);
    }

    /// Whether the view is behind the state.
    pub fn view_stale(&self) -> bool {
        self.1.stale.load(Ordering::Relaxed)
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
