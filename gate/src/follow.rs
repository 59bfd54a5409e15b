//! The Kafka follower: a thread that keeps a [`GateHandle`] up to date with what the
//! guard publishes, and acknowledges the guard's commands.
//!
//! It `assign`s partitions (never joins a consumer group, so it starts without a
//! join delay): every partition of `guard_pause_state` from the beginning, and of
//! `guard_command` and `guard_heartbeat` from the end (for commands, the end before
//! the pause state's was read: see `Run::assign`). The gate is caught up once
//! every pause-state partition's position reached the end offset it had at start
//! *and* the client's queue is empty: tansu under-reports a partition's end after a
//! multi-message batch, so a position past a reported end proves nothing while
//! messages are still queued. Each acknowledgement is published (key = command id)
//! after the fold that put its command in force has released the shared state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::follow_kafka::{consumer_config, partitions, producer_config, AckContext};
use crate::handle::GateHandle;
use crate::wire::{GuardAck, GuardCommand, Heartbeat, PauseState};

/// The topics the follower reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    /// `guard_pause_state` (compacted; read from the beginning).
    pub pause_state: String,
    /// `guard_command` (read from the end).
    pub command: String,
    /// `guard_heartbeat` (read from the end).
    pub heartbeat: String,
    /// `guard_ack` (written).
    pub ack: String,
}

impl Topics {
    /// The default names behind `prefix` (as the guard's `--prefix`, e.g. `stg.`).
    pub fn with_prefix(prefix: &str) -> Topics {
        Topics {
            pause_state: format!("{prefix}guard_pause_state"),
            command: format!("{prefix}guard_command"),
            heartbeat: format!("{prefix}guard_heartbeat"),
            ack: format!("{prefix}guard_ack"),
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        Topics::with_prefix("")
    }
}

/// How the follower talks to Kafka.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic names.
    pub topics: Topics,
    /// How long a broker may hold an empty fetch, in ms. Apache Kafka answers as soon
    /// as data comes; the mock cluster and tansu hold the fetch, so this bounds the
    /// delay a command can add there, at the cost of a fetch round trip per wait.
    pub fetch_wait_ms: u32,
    /// The longest wait in one poll: how late the follower notices silence.
    pub poll: Duration,
    /// How long an acknowledgement may take to be delivered before it counts as failed.
    pub ack_timeout: Duration,
    /// Extra librdkafka settings, applied last (SASL, SSL).
    pub kafka: Vec<(String, String)>,
}

impl FollowConfig {
    /// The defaults for `brokers`: default topic names, 5 ms fetch wait, 20 ms poll,
    /// 5 s acknowledgement timeout.
    pub fn new(brokers: impl Into<String>) -> Self {
        FollowConfig {
            brokers: brokers.into(),
            topics: Topics::default(),
            fetch_wait_ms: 5,
            poll: Duration::from_millis(20),
            ack_timeout: Duration::from_secs(5),
            kafka: Vec::new(),
        }
    }
}

/// A failure of the follower.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Kafka refused or failed an operation.
    #[error("{what}: {source}")]
    Kafka {
        /// What the follower was doing.
        what: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The follower's thread could not start.
    #[error("cannot start the follower thread: {0}")]
    Thread(std::io::Error),
    /// The follower's thread panicked.
    #[error("the follower thread panicked")]
    Panicked,
}

fn kafka(what: &'static str) -> impl FnOnce(KafkaError) -> FollowError {
    move |source| FollowError::Kafka { what, source }
}

/// A running follower. Dropping it stops the thread.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), FollowError>>>,
}

impl Follower {
    /// Creates the Kafka clients and starts following into `handle` (a fresh gate:
    /// it fails closed until the pause-state topic is read). Subscribe to `handle`
    /// first to see every change from the start.
    ///
    /// # Errors
    /// [`FollowError::Kafka`] when a client cannot be created (a bad setting),
    /// [`FollowError::Thread`] when the thread cannot start. Brokers that cannot be
    /// reached are not an error: the gate stays closed and the follower keeps trying.
    pub fn start(config: FollowConfig, handle: GateHandle) -> Result<Follower, FollowError> {
        let gateway = handle.read().gateway().to_owned();
        let consumer: BaseConsumer = consumer_config(&config, &gateway)
            .create()
            .map_err(kafka("creating the consumer"))?;
        let producer: ThreadedProducer<AckContext> = producer_config(&config, &gateway)
            .create_with_context(AckContext::new(handle.clone()))
            .map_err(kafka("creating the acknowledgement producer"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let run = Run {
            consumer,
            producer,
            config,
            handle,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("gate-follow".into())
            .spawn(move || run.follow())
            .map_err(FollowError::Thread)?;
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the thread still runs (it ends only when stopped or on a Kafka
    /// failure it cannot recover from).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread, flushes the acknowledgements in flight, and reports how it
    /// ended.
    ///
    /// # Errors
    /// The error that ended the thread, or [`FollowError::Panicked`].
    pub fn stop(mut self) -> Result<(), FollowError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), FollowError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| FollowError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The follower thread's own state.
struct Run {
    consumer: BaseConsumer,
    producer: ThreadedProducer<AckContext>,
    config: FollowConfig,
    handle: GateHandle,
    stop: Arc<AtomicBool>,
}

/// Where the pause-state topic ended at start: (partition, low, high) each.
type Ends = Vec<(i32, i64, i64)>;

impl Run {
    fn follow(self) -> Result<(), FollowError> {
        self.handle.fold(|gate, now| gate.tick(now));
        let Some(ends) = self.assign_until_ready() else {
            return Ok(());
        };
        let mut caught_up = false;
        let mut ticked = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            match self.consumer.poll(self.config.poll) {
                Some(Ok(message)) => self.take(&message),
                Some(Err(e)) => tracing::warn!(error = %e, "guard topics: consumer error"),
                None if !caught_up => {
                    caught_up = self.reached(&ends)?;
                    if caught_up {
                        let effects = self.handle.fold(|gate, now| gate.caught_up(now));
                        self.publish(&effects.acks);
                        tracing::info!("guard_pause_state read to its end: the gate has state");
                    }
                }
                None => {}
            }
            if ticked.elapsed() >= self.config.poll {
                ticked = Instant::now();
                self.handle.fold(|gate, now| gate.tick(now));
            }
        }
        self.producer
            .flush(self.config.ack_timeout)
            .map_err(kafka("flushing acknowledgements"))
    }

    /// Assigns every partition, retrying while the topics are not there yet (the
    /// gate stays closed meanwhile). `None` when stopped first.
    fn assign_until_ready(&self) -> Option<Ends> {
        let mut logged = false;
        while !self.stop.load(Ordering::Relaxed) {
            match self.assign() {
                Ok(ends) => return Some(ends),
                Err(e) if !logged => {
                    tracing::warn!(error = %e, "cannot read the guard's topics yet; retrying");
                    logged = true;
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        None
    }

    /// Assigns `guard_command` from its end offsets, then `guard_pause_state` from
    /// the beginning (noting its end offsets), then `guard_heartbeat` from the end.
    /// Commands are read from end offsets taken *before* the pause state's, so no
    /// command falls between the two reads: one published once the gate started is
    /// read (and acknowledged) as a command, and its decision is also in the state.
    fn assign(&self) -> Result<Ends, FollowError> {
        let topics = &self.config.topics;
        let timeout = Duration::from_secs(2);
        let mut list = TopicPartitionList::new();
        for partition in partitions(&self.consumer, &topics.command, timeout)? {
            let (_, high) = self.watermarks(&topics.command, partition, timeout)?;
            add(&mut list, &topics.command, partition, Offset::Offset(high))?;
        }
        let mut ends = Ends::new();
        for partition in partitions(&self.consumer, &topics.pause_state, timeout)? {
            let (low, high) = self.watermarks(&topics.pause_state, partition, timeout)?;
            ends.push((partition, low, high));
            add(&mut list, &topics.pause_state, partition, Offset::Beginning)?;
        }
        for partition in partitions(&self.consumer, &topics.heartbeat, timeout)? {
            add(&mut list, &topics.heartbeat, partition, Offset::End)?;
        }
        self.consumer
            .assign(&list)
            .map_err(kafka("assigning the guard's partitions"))?;
        Ok(ends)
    }

    fn watermarks(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
    ) -> Result<(i64, i64), FollowError> {
        self.consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(kafka("reading end offsets"))
    }

    /// Whether every pause-state partition's position reached its end at start.
    /// Called only when a poll found the queue empty.
    fn reached(&self, ends: &Ends) -> Result<bool, FollowError> {
        let positions = self
            .consumer
            .position()
            .map_err(kafka("reading positions"))?;
        let topic = &self.config.topics.pause_state;
        Ok(ends.iter().all(|&(partition, low, high)| {
            let position = positions
                .find_partition(topic, partition)
                .map(|p| p.offset());
            high <= low || matches!(position, Some(Offset::Offset(at)) if at >= high)
        }))
    }

    /// Folds one message and publishes the acknowledgements it owes.
    fn take(&self, message: &BorrowedMessage<'_>) {
        let topics = &self.config.topics;
        let payload = message.payload().unwrap_or_default();
        let topic = message.topic();
        let effects = if topic == topics.pause_state {
            PauseState::decode(payload)
                .map(|r| self.handle.fold(|g, now| g.on_pause_state(&r, now)))
        } else if topic == topics.command {
            GuardCommand::decode(payload).map(|c| self.handle.fold(|g, now| g.on_command(&c, now)))
        } else {
            Heartbeat::decode(payload).map(|h| self.handle.fold(|g, now| g.on_heartbeat(&h, now)))
        };
        match effects {
            Ok(effects) => self.publish(&effects.acks),
            Err(e) => {
                self.handle.shell().invalid_message();
                tracing::warn!(
                    topic,
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %e,
                    "skipped a message that is not what the contract says"
                );
            }
        }
    }

    /// Hands acknowledgements to the producer (its delivery reports count them).
    fn publish(&self, acks: &[GuardAck]) {
        for ack in acks {
            let payload = ack.to_json();
            let mut record = BaseRecord::to(&self.config.topics.ack)
                .key(&ack.command_id)
                .payload(&payload);
            let deadline = Instant::now() + self.config.ack_timeout;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(code), again))
                        if code == rdkafka::types::RDKafkaErrorCode::QueueFull
                            && Instant::now() < deadline =>
                    {
                        record = again;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        self.handle.shell().ack_delivered(false);
                        tracing::warn!(command_id = %ack.command_id, error = %e, "cannot publish an acknowledgement");
                        break;
                    }
                }
            }
        }
    }
}

fn add(
    list: &mut TopicPartitionList,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> Result<(), FollowError> {
    list.add_partition_offset(topic, partition, offset)
        .map_err(kafka("listing partitions"))
}

/// Settings the follower applies before the caller's (`FollowConfig::kafka`).
pub(crate) fn with_extra(mut config: ClientConfig, extra: &[(String, String)]) -> ClientConfig {
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}
