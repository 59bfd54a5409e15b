//! The input partitions' messages, taken from the client a batch at a time.
//!
//! rdkafka's `BaseConsumer::poll` returns one message per call, and each call reads
//! the clock four times and takes the queue's lock: at a backlog's pace that is a
//! tenth of the decision thread's time. librdkafka can hand over up to a batch in one
//! call (`rd_kafka_consume_batch_queue`), but not on the consumer's own queue: that
//! queue also carries the results of asynchronous offset commits, which the batch
//! call cannot return (librdkafka aborts on them). So each input partition's fetch
//! queue is forwarded to a queue of its own, [`FetchQueue`], which holds fetched
//! messages and the partitions' consumer errors only; commit results, client errors
//! and statistics stay on the consumer's queue, still served by `poll`.
//!
//! A partition must be routed ([`FetchQueue::route`]) before it is assigned: a
//! partition forwarded by the application keeps that forwarding when its fetching
//! starts (librdkafka's `RD_KAFKA_Q_F_FWD_APP`), while one assigned first would send
//! its first messages to the consumer's queue. A partition's fetching stopped (an
//! unassign) loses its forwarding: route it again before assigning it again.

use std::ffi::CStr;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// A queue that the routed input partitions' fetch queues forward to.
pub struct FetchQueue {
    queue: *mut rd::rd_kafka_queue_t,
    client: *mut rd::rd_kafka_t,
    /// Where librdkafka writes a batch's message pointers.
    batch: Vec<*mut rd::rd_kafka_message_t>,
}

// SAFETY: librdkafka queues may be used from any thread; the guard uses this one from
// the decision thread only.
unsafe impl Send for FetchQueue {}

impl FetchQueue {
    /// A new queue of `consumer`'s client. It must be dropped before the consumer.
    pub fn new(consumer: &BaseConsumer) -> FetchQueue {
        let client = consumer.client().native_ptr();
        // SAFETY: a live client; the handle is destroyed in Drop.
        let queue = unsafe { rd::rd_kafka_queue_new(client) };
        FetchQueue {
            queue,
            client,
            batch: Vec::new(),
        }
    }

    /// The librdkafka queue, for a wakeup to watch (it stays owned by this).
    pub fn native_ptr(&self) -> *mut rd::rd_kafka_queue_t {
        self.queue
    }

    /// Forwards the fetched messages of `topic`/`partition` here; false when the
    /// client does not know the partition.
    pub fn route(&self, topic: &CStr, partition: i32) -> bool {
        // SAFETY: a live client and queue; the partition's handle is released at once
        // (its forwarding stays with the partition's fetch queue).
        unsafe {
            let fetchq = rd::rd_kafka_queue_get_partition(self.client, topic.as_ptr(), partition);
            if fetchq.is_null() {
                return false;
            }
            rd::rd_kafka_queue_forward(fetchq, self.queue);
            rd::rd_kafka_queue_destroy(fetchq);
        }
        true
    }

    /// Takes up to `max` messages (or consumer errors) without waiting, appending
    /// them to `into`.
    pub fn take(&mut self, max: usize, into: &mut Vec<Fetched>) {
        self.batch.clear();
        self.batch.reserve(max);
        // SAFETY: `batch` has room for `max` pointers; librdkafka writes `n` of them,
        // each a message handed over to a `Fetched`.
        unsafe {
            let n = rd::rd_kafka_consume_batch_queue(self.queue, 0, self.batch.as_mut_ptr(), max);
            self.batch.set_len(usize::try_from(n).unwrap_or(0).min(max));
        }
        into.extend(self.batch.drain(..).map(Fetched));
    }

    /// How many operations wait in the queue.
    pub fn len(&self) -> usize {
        // SAFETY: a live queue.
        unsafe { rd::rd_kafka_queue_length(self.queue) }
    }

    /// Whether none does.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the handle made in `new`, released once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
    }
}

/// A message (or a partition's consumer error) taken from a [`FetchQueue`]; given back
/// to the client when dropped, which must be before the consumer is.
pub struct Fetched(*mut rd::rd_kafka_message_t);

impl Fetched {
    fn message(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: librdkafka handed over a valid message, alive until Drop.
        unsafe { &*self.0 }
    }

    /// The consumer error this stands for, if it is one and not a message.
    pub fn error(&self) -> Option<String> {
        let err = self.message().err;
        (err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| {
            // SAFETY: `rd_kafka_err2str` returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(err)) };
            let topic = self.topic().map(|t| t.to_string_lossy().into_owned());
            format!(
                "{} (topic {}, partition {}){}",
                text.to_string_lossy(),
                topic.as_deref().unwrap_or("?"),
                self.partition(),
                self.detail().map(|d| format!(": {d}")).unwrap_or_default()
            )
        })
    }

    /// An error's text, when librdkafka put one in the payload.
    fn detail(&self) -> Option<String> {
        let payload = self.payload();
        (!payload.is_empty()).then(|| String::from_utf8_lossy(payload).into_owned())
    }

    /// The topic's name, as the client holds it.
    pub fn topic(&self) -> Option<&CStr> {
        let rkt = self.message().rkt;
        // SAFETY: a message's topic handle lives as long as the message; its name is
        // NUL-terminated.
        (!rkt.is_null()).then(|| unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(rkt)) })
    }

    pub fn partition(&self) -> i32 {
        self.message().partition
    }

    pub fn offset(&self) -> i64 {
        self.message().offset
    }

    /// The Kafka timestamp in milliseconds, when the message has one.
    pub fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a valid message.
        let ts = unsafe { rd::rd_kafka_message_timestamp(self.0, &mut kind) };
        (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE).then_some(ts)
    }

    pub fn key(&self) -> &[u8] {
        let m = self.message();
        bytes(m.key.cast(), m.key_len)
    }

    pub fn payload(&self) -> &[u8] {
        let m = self.message();
        bytes(m.payload.cast(), m.len)
    }
}

fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: librdkafka's buffer of `len` bytes, alive as long as its message.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: handed over by librdkafka, given back once.
        unsafe { rd::rd_kafka_message_destroy(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::Consumer;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    use std::ffi::CString;
    use std::time::{Duration, Instant};

    fn produce(brokers: &str, topic: &str, partition: i32, n: usize) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("producer");
        for i in 0..n {
            let payload = format!("{topic}/{partition}/{i}");
            producer
                .send(
                    BaseRecord::to(topic)
                        .partition(partition)
                        .key("k")
                        .payload(&payload)
                        .timestamp(1_000 + i as i64),
                )
                .expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }

    /// A consumer of `topic` with partition `routed` routed to its batch queue, then
    /// `assigned` (partition, start) assigned; `setting` is one more client setting.
    /// The queue comes second, so that it is dropped first.
    fn routed_consumer(
        brokers: &str,
        setting: (&str, &str),
        topic: &str,
        routed: i32,
        assigned: &[(i32, Offset)],
    ) -> (BaseConsumer, FetchQueue) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "g")
            .set(setting.0, setting.1)
            .create()
            .expect("consumer");
        let queue = FetchQueue::new(&consumer);
        assert!(queue.route(&CString::new(topic).expect("name"), routed));
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in assigned {
            tpl.add_partition_offset(topic, *partition, *offset)
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assigned");
        (consumer, queue)
    }

    #[test]
    fn routed_partitions_come_in_batches_and_others_through_poll() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("a", 2, 1).expect("topic");
        let brokers = mock.bootstrap_servers();
        produce(&brokers, "a", 0, 50);
        produce(&brokers, "a", 1, 5);
        let (consumer, mut queue) = routed_consumer(
            &brokers,
            ("enable.auto.commit", "false"),
            "a",
            0,
            &[(0, Offset::Beginning), (1, Offset::Beginning)],
        );
        let topic = CString::new("a").expect("name");
        let (mut batched, mut polled) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        while (batched.len() < 50 || polled.len() < 5) && Instant::now() < deadline {
            let mut taken = Vec::new();
            queue.take(16, &mut taken);
            assert!(taken.len() <= 16);
            for m in &taken {
                assert_eq!(m.error(), None);
                assert_eq!(m.topic(), Some(topic.as_c_str()));
                assert_eq!(m.key(), b"k");
                let offset = m.offset();
                assert_eq!(m.timestamp_ms(), Some(1_000 + offset));
                batched.push((m.partition(), offset, m.payload().to_vec()));
            }
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(10)) {
                polled.push((m.partition(), m.offset()));
            }
        }
        let expected: Vec<(i32, i64, Vec<u8>)> = (0..50)
            .map(|i| (0, i, format!("a/0/{i}").into_bytes()))
            .collect();
        assert_eq!(
            batched, expected,
            "partition 0, in order, all through the queue"
        );
        assert_eq!(polled, (0..5).map(|i| (1, i)).collect::<Vec<_>>());
        assert!(queue.is_empty());
    }

    #[test]
    fn a_fetch_error_comes_as_an_error_not_a_message() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("b", 1, 1).expect("topic");
        let brokers = mock.bootstrap_servers();
        produce(&brokers, "b", 0, 3);
        let (consumer, mut queue) = routed_consumer(
            &brokers,
            ("auto.offset.reset", "error"),
            "b",
            0,
            &[(0, Offset::Offset(100))],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut error = None;
        while error.is_none() && Instant::now() < deadline {
            let mut taken = Vec::new();
            queue.take(16, &mut taken);
            error = taken.iter().find_map(Fetched::error);
            let _ = consumer.poll(Duration::from_millis(10));
        }
        let error = error.expect("an out-of-range offset is reported on the queue");
        assert!(error.contains("partition 0"), "{error}");
    }
}
