//! The protocol of the backlog-drain contenders in bench/compare.sh.
//!
//! Every contender (the guard, the no-op ceiling consumer, the Python peers) is a
//! process started by `drain-timer`. It prints [`READY`] on stdout once its input
//! partitions are assigned, and `done N` once it has consumed and applied N messages;
//! then it exits through its normal shutdown. `drain-timer` stamps both lines on its
//! own clock, so every contender is timed by the same observer from the same kind of
//! start signal to the same kind of end signal.

use std::io::Write;

/// The line that starts the clock: the input is assigned, nothing has been read.
pub const READY: &str = "ready";

/// The prefix of the line that stops the clock: `done N`.
pub const DONE: &str = "done";

/// Prints [`READY`] and flushes.
pub fn announce_ready() {
    say(READY);
}

/// Prints `done N` and flushes.
pub fn announce_done(messages: u64) {
    say(&format!("{DONE} {messages}"));
}

fn say(line: &str) {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let _ = writeln!(lock, "{line}");
    let _ = lock.flush();
}
