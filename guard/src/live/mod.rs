//! The live guard (`guard run`): the I/O shell around the engine.
//!
//! - [`settings`]: every setting of `guard run` with its default, as files and flags give them.
//! - [`config`]: the resolved configuration and topic names.
//! - [`kafka`]: rdkafka clients tuned for latency.
//! - [`store`]: the durable checkpoint (sled) behind a small trait.
//! - [`merge`]: the order of messages across input partitions.
//! - [`order_log`]: that order made durable before a decision goes out.
//! - [`outbox`]: outgoing messages in decision order until the broker has them.
//! - [`pipeline`]: the loop — decide, publish, persist, commit.
//! - [`wakeup`]: the loop sleeps until a message or a delivery report comes.
//! - [`status`]: metrics and the readable state for the HTTP server.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/state`, `/ops/*`.
//! - [`memory`]: the allocator setting that keeps large buffers off the heap.

pub mod casebook;
pub mod changelog;
pub mod config;
pub mod evidence;
pub mod fetch_queue;
pub mod heartbeat;
pub mod http;
pub mod input_watch;
pub mod kafka;
pub mod memory;
pub mod merge;
pub mod operators;
pub mod ops;
pub mod order_log;
pub mod outbox;
pub mod pipeline;
pub mod priority;
pub mod scaled;
pub mod settings;
pub mod standby;
pub mod status;
pub mod store;
pub mod wakeup;

pub use config::{LiveConfig, Topics};
pub use pipeline::{LiveError, LiveGuard};
pub use status::StatusHandle;
pub use store::{MemStore, SledStore, Store};
