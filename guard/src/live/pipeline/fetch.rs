//! Fetching: a batch of the inputs' messages into the merge.

use std::ffi::CStr;

use rdkafka::message::BorrowedMessage;

use crate::live::fetch_queue::Fetched;

use super::*;

impl<S: Store> LiveGuard<S> {
    /// Sleeps until a message or a delivery report (the one a held decision waits
    /// for) comes, at most `wait` (a millisecond while messages wait in the merge).
    pub(super) fn sleep(&mut self, wait: Duration) {
        let timeout = if self.merge.is_empty() {
            wait
        } else {
            wait.min(Duration::from_millis(1))
        };
        self.wakeup.wait(timeout);
    }

    /// Fetches up to a batch of messages into the merge.
    pub(super) fn fetch(&mut self) {
        // One reading of each clock for the batch: the messages were all there at once.
        let received = Instant::now();
        self.fetched_wall = Timestamp::now();
        // The inputs' messages, a batch in one call.
        let mut fetched = std::mem::take(&mut self.fetched);
        self.fetch_queue.take(BATCH, &mut fetched);
        for message in fetched.drain(..) {
            match message.error() {
                Some(e) => warn!(error = %e, "consumer error"),
                None => self.hold(&Incoming::fetched(&message), received),
            }
        }
        self.fetched = fetched;
        // The consumer's own queue: errors and commit results (handled by `poll`), and
        // the messages of a partition that could not be routed to the batch queue.
        let consumer = std::sync::Arc::clone(&self.consumer);
        for _ in 0..BATCH {
            let Some(polled) = consumer.poll(Duration::ZERO) else {
                break;
            };
            match polled {
                Ok(message) => self.hold(&Incoming::polled(&message), received),
                Err(e) => warn!(error = %e, "consumer error"),
            }
        }
    }

    /// Where a fetched message goes in the merge: its partition's index and its merge
    /// key (`None`: not of an input). Notes how far its partition is fetched.
    fn place(&mut self, message: &Incoming<'_>) -> Option<(usize, MergeKey)> {
        let index = self.input_of(message);
        let input = &mut self.inputs[index];
        let rank = input.rank?;
        input.fetched_next = Some(message.offset + 1);
        while input.echoes.first().is_some_and(|o| *o <= message.offset) {
            input.echoes.pop_first();
        }
        let key = MergeKey {
            timestamp_ms: message.timestamp_ms.unwrap_or(i64::MIN),
            rank,
            partition: message.partition,
            offset: message.offset,
        };
        Some((index, key))
    }

    /// Puts a copy of a fetched message into the merge (a worker's progress is read
    /// at once). The copy lets the client reuse its buffers at once: holding its own
    /// messages instead pinned its fetch buffers (a drain's peak RSS 5-10 MB higher,
    /// bench/README.md).
    fn hold(&mut self, message: &Incoming<'_>, received: Instant) {
        self.last_fetched = received;
        let Some((index, key)) = self.place(message) else {
            return;
        };
        // Recycled buffers: no allocation per message on the hot path.
        let mut held = self.spare.pop().unwrap_or_else(|| Held {
            key: String::new(),
            payload: Vec::new(),
            received,
        });
        held.received = received;
        held.key.clear();
        held.key.push_str(&String::from_utf8_lossy(message.key));
        held.payload.clear();
        held.payload.extend_from_slice(message.payload);
        if self.inputs[index].facts && held.payload.starts_with(br#"{"progress""#) {
            // Progress is read at once, not merged: the orders and risk events held
            // in the merge wait for it.
            if let Ok(fact) = serde_json::from_slice::<ProgressFact>(&held.payload) {
                let seen = self
                    .progress
                    .entry(fact.progress.partition)
                    .or_insert(i64::MIN);
                *seen = (*seen).max(fact.progress.ts_ms);
            }
            self.recycle(held);
            return;
        }
        self.merge.push(index, key, held);
    }

    /// Which input partition `message` is of, by its index in `inputs`: by partition
    /// number and the topic's name as the client holds it (no UTF-8 check per
    /// message). A partition that is not assigned (not expected) is tracked from its
    /// first message on, after the assigned ones, and never waited for.
    fn input_of(&mut self, message: &Incoming<'_>) -> usize {
        if let Some(index) = self
            .inputs
            .iter()
            .position(|i| i.partition == message.partition && i.name.as_c_str() == message.topic)
        {
            return index;
        }
        let topic = message.topic.to_string_lossy();
        warn!(%topic, partition = message.partition, "a message of a partition that is not assigned; merged with the inputs");
        let mut input = self.input_partition(&topic, message.partition, None);
        input.assigned = false;
        self.inputs.push(input);
        self.inputs.len() - 1
    }
}

/// A fetched message as the merge needs it, from the batch queue or from `poll`.
struct Incoming<'a> {
    topic: &'a CStr,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Incoming<'a> {
    fn fetched(message: &'a Fetched) -> Self {
        Incoming {
            topic: message.topic().unwrap_or_default(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp_ms(),
            key: message.key(),
            payload: message.payload(),
        }
    }

    fn polled(message: &'a BorrowedMessage<'a>) -> Self {
        // SAFETY: a fetched message always has its topic handle, whose name is a
        // NUL-terminated string that lives as long as the message.
        let topic =
            unsafe { CStr::from_ptr(rdkafka::bindings::rd_kafka_topic_name((*message.ptr()).rkt)) };
        Incoming {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().unwrap_or_default(),
            payload: message.payload().unwrap_or_default(),
        }
    }
}
