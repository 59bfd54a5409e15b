//! Thread priorities: the decision thread first.
//!
//! On a small machine the store writer's work (sled's page writes and the fsync of a
//! checkpoint, the changelog's records) competes for a core with the decision thread.
//! Nothing waits for the writer but the next checkpoint, so it runs at a lower
//! priority: `guard-e2e --broker mock --rate 1000` showed a p99 of 46–80 ms with it at
//! the same priority and checkpoints every 200 ms, against 5.7 ms with an in-memory
//! store (bench/README.md).

/// How much lower than the rest of the guard the background threads run (nice).
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority (its nice value; Linux gives each thread its
/// own). Threads it starts later inherit it. Does nothing elsewhere, and a refusal
/// is only logged: the guard runs as well, just with a longer tail.
pub fn background() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid takes no arguments; setpriority only reads its arguments.
        let refused = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE) != 0
        };
        if refused {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower the store writer's priority"
            );
        }
    }
}
