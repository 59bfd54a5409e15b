//! noctria-guard: keeps an algorithmic-trading platform from hurting itself.
//!
//! ```text
//!  source (Kafka | replay file)                       sink (Kafka | file)
//!        │ bytes                                            ▲ decisions
//!        ▼                                                  │
//!   decode::Admission ──Input──▶ engine::Engine::apply ──▶ Decision (GuardCommand, RiskEvent)
//!        │ invalid                    ▲ tick (wall clock, live only)
//!        ▼
//!   dead letters / replay summary
//! ```
//!
//! - [`message`]: the wire types of CONTRACT §1.
//! - [`decode`]: bytes → validated [`message::Input`], or the reason it is invalid;
//!   [`decode::Admission`] adds the limits, the same on every path.
//! - [`policy`]: the TOML policy of CONTRACT §3, defaults and validation.
//! - [`engine`]: the pure rules of CONTRACT §2; no I/O, no clock.
//! - [`replay`]: the replay tool of CONTRACT §4, reports (text, JSON, one HTML page),
//!   parameter sweeps, and the chain behind one decision (`guard explain`).
//! - [`time`]: event times and durations.

pub mod decode;
pub mod engine;
#[cfg(feature = "live")]
pub mod live;
pub mod message;
pub mod policy;
pub mod replay;
pub mod time;
