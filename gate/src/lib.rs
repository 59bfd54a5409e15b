//! The order gateway's side of a guard pause (CONTRACT §6): a library a gateway
//! embeds to obey the guard, and the reference gateway process behind `guard gate`.
//!
//! ```text
//!   guard ──► guard_pause_state (from the beginning) ─┐
//!         ──► guard_command     (from the end)       ─┼─► follower thread ──► Gate (core)
//!         ──► guard_heartbeat   (from the end)       ─┘          │                 │
//!   guard ◄── guard_ack (key = command_id) ◄─────────────────────┘     GateHandle::may_trade
//!                                                                        (order threads)
//! ```
//!
//! # What to call
//! With the default `kafka` feature, an order gateway does three things:
//! ```no_run
//! use gate::{follow::{FollowConfig, Follower}, Gate, GateHandle, Mode};
//!
//! // 1. A gate: this gateway's name and its max_silence (CONTRACT default 3 s).
//! let handle = GateHandle::new(Gate::new("gw-tokyo", 3_000));
//! let changes = handle.subscribe(); // optional: every change of a scope's mode
//! // 2. Follow the guard (a thread; it acknowledges every command it applies).
//! let follower = Follower::start(FollowConfig::new("127.0.0.1:9092"), handle.clone())?;
//! // 3. Before every order, ask (no I/O, no allocation, a read lock):
//! match handle.may_trade("alpha") {
//!     Mode::Running => { /* send it */ }
//!     Mode::ReduceOnly => { /* only if it reduces alpha's position */ }
//!     Mode::Paused => { /* refuse it */ }
//! }
//! follower.stop()?;
//! # Ok::<(), gate::follow::FollowError>(())
//! ```
//! [`GateHandle::verdict`] gives the full [`Verdict`] with the reasons;
//! [`GateHandle::state`] and [`GateHandle::counters`] what the gate knows.
//! A gateway that reads the guard's topics some other way feeds a [`Gate`] itself:
//! every `guard_pause_state` record from the beginning to [`Gate::on_pause_state`],
//! then [`Gate::caught_up`]; commands to [`Gate::on_command`], heartbeats to
//! [`Gate::on_heartbeat`], and [`Gate::tick`] every few milliseconds; it publishes
//! the [`Effects::acks`] each call returns, after the call.
//!
//! # Guarantees
//! - **Fails closed.** Every strategy is paused while the gate has no state (the
//!   pause-state topic not read to the end it had at start: `no_state`) and while the
//!   newest heartbeat of an *active* guard is older than `max_silence`
//!   (`guard_silent`; a standby's heartbeat never opens the gate). Exactly
//!   `max_silence` of silence is still open; one millisecond more is closed.
//! - **Both scopes.** A strategy is paused while `global` or its own scope is paused,
//!   reduce-only while either is reduce-only, else running.
//! - **Repeats are harmless.** A command or record the gate has applied never moves
//!   its scope back when the guard repeats it after a restart (see [`held`] for the
//!   bound of that memory). A command and a pause-state record of the same decision
//!   (same `command_id`) end with the record's full reasons, whichever comes first.
//! - **Acknowledged once in force.** Every command id owes one `guard_ack` (CONTRACT
//!   §1.7), once the gate has state: when its decision comes into force (by its
//!   command or its pause-state record, whichever comes first), when its command
//!   comes after a newer decision, and, at the end of the initial read, for the
//!   decision in force in every scope (the guard may await this gateway's ack of a
//!   command decided while it restarted). An ack is returned only after the shared
//!   state holds its decision; the follower publishes it then. A repeat owes none.
//! - **Reported.** Every change of a scope's effective mode is a [`ModeChange`],
//!   failing closed included: scope `*`, mode `paused`, reason `no_state` or
//!   `guard_silent`; when the gate opens again, `*` `running` and then every scope
//!   the guard holds in another mode.
//!
//! # Modules
//! - [`wire`]: the messages, as tolerant serde views.
//! - [`Gate`] (`gate.rs`), [`verdict`], [`held`], [`state`]: the pure core.
//! - [`handle`]: the gate shared between the follower and the order threads.
//! - [`follow`] (feature `kafka`, default): the Kafka follower thread.
//! - [`gateway`] and [`http`] (feature `gateway`): the reference gateway process.

mod gate;
pub mod handle;
pub mod held;
pub mod state;
pub mod verdict;
pub mod wire;

#[cfg(feature = "kafka")]
pub mod follow;
#[cfg(feature = "kafka")]
mod follow_kafka;

#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod http;

pub use gate::{Counters, Effects, Gate, ModeChange, Now};
pub use handle::GateHandle;
pub use held::ScopeState;
pub use state::GateState;
pub use verdict::{FailClosed, Reasons, Verdict, Why};
pub use wire::{Action, GuardAck, GuardCommand, Heartbeat, Mode, PauseState, Scope};

#[cfg(test)]
mod tests;
