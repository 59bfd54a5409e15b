//! Sleeping until librdkafka has something for the decision thread.
//!
//! The loop must react at once to three queues of two clients: fetched input on the
//! [`FetchQueue`] and on the consumer's queue (errors, commit results), and delivery
//! reports on the producer's (a decision waits for the report of its order record). Polling one with a timeout misses the other, and
//! polling both in turn with short naps costs a wake-up every nap. Instead each queue
//! writes a byte to one socket when it turns non-empty (librdkafka's queue IO events,
//! `rd_kafka_queue_io_event_enable`), and the loop blocks on that socket: it wakes
//! for a message, a report, or its timeout, and for nothing else.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

use super::fetch_queue::FetchQueue;

/// librdkafka queue handles that wake one socket when they turn non-empty.
///
/// Drop it before the clients whose queues it holds (declare it before them in a
/// struct): a queue handle must not outlive its client.
pub struct Wakeup {
    queues: Vec<Queue>,
    /// Read end: the loop sleeps on it.
    rx: UnixStream,
    /// Write end, handed to librdkafka; kept open as long as the queues write to it.
    _tx: UnixStream,
}

/// One queue handle of a client (a reference librdkafka counts), released on drop
/// when it is owned (not the [`FetchQueue`]'s, which owns its own).
struct Queue {
    ptr: *mut rd::rd_kafka_queue_t,
    owned: bool,
}

// librdkafka's queue handles may be used from any thread.
unsafe impl Send for Queue {}

impl Wakeup {
    /// Wakes on the consumer queue of `consumer` (errors, commit results, messages of
    /// a partition not routed to `fetch`), on `fetch` (the inputs' messages) and the
    /// main queue of `producer` (delivery reports). `fetch` must outlive this.
    ///
    /// # Errors
    /// When the socket pair cannot be made.
    pub fn new<C: ClientContext, P: ClientContext>(
        consumer: &Client<C>,
        producer: &Client<P>,
        fetch: Option<&FetchQueue>,
    ) -> io::Result<Self> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        // SAFETY: the clients are alive (the caller owns them and drops this first);
        // each call returns a new reference to a queue, or null for a consumer without
        // a group.
        let handles = unsafe {
            [
                rd::rd_kafka_queue_get_consumer(consumer.native_ptr()),
                rd::rd_kafka_queue_get_main(producer.native_ptr()),
            ]
        };
        let queues: Vec<Queue> = handles
            .into_iter()
            .filter(|q| !q.is_null())
            .map(|ptr| Queue { ptr, owned: true })
            .chain(fetch.map(|f| Queue {
                ptr: f.native_ptr(),
                owned: false,
            }))
            .collect();
        for queue in &queues {
            // SAFETY: a live queue handle; the payload is copied.
            unsafe {
                rd::rd_kafka_queue_io_event_enable(
                    queue.ptr,
                    tx.as_raw_fd(),
                    b"!".as_ptr().cast(),
                    1,
                )
            };
        }
        Ok(Wakeup {
            queues,
            rx,
            _tx: tx,
        })
    }

    /// Whether a queue holds something not yet polled.
    pub fn pending(&self) -> bool {
        // SAFETY: live queue handles.
        self.queues
            .iter()
            .any(|q| unsafe { rd::rd_kafka_queue_length(q.ptr) } > 0)
    }

    /// Sleeps until a queue turns non-empty, at most `timeout`; returns at once when
    /// one already holds something. A queue writes its byte only when it turns
    /// non-empty after it was last polled, so the bytes of events already polled are
    /// dropped first, and the queues are looked at after that: an event that comes
    /// in between leaves its byte, which ends the sleep.
    pub fn wait(&mut self, timeout: Duration) {
        self.drop_stale();
        if timeout.is_zero() || self.pending() {
            return;
        }
        sleep_on(&mut [self.pollfd()], timeout);
    }

    /// [`Wakeup::wait`] on several at once (the guards of a scaled-out instance, one
    /// loop): sleeps until a queue of any of them turns non-empty, at most `timeout`.
    pub fn wait_any(wakeups: &mut [&mut Wakeup], timeout: Duration) {
        for wakeup in wakeups.iter_mut() {
            wakeup.drop_stale();
        }
        if timeout.is_zero() || wakeups.iter().any(|w| w.pending()) {
            return;
        }
        let mut fds: Vec<libc::pollfd> = wakeups.iter().map(|w| w.pollfd()).collect();
        sleep_on(&mut fds, timeout);
    }

    /// Reads the bytes of events already polled.
    fn drop_stale(&mut self) {
        let mut stale = [0u8; 64];
        while matches!(self.rx.read(&mut stale), Ok(n) if n > 0) {}
    }

    fn pollfd(&self) -> libc::pollfd {
        libc::pollfd {
            fd: self.rx.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }
    }
}

/// Blocks until one of `fds` is readable, at most `timeout`.
fn sleep_on(fds: &mut [libc::pollfd], timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid pollfds, as many as passed; no signal mask change. An interrupted
    // or failed wait is a short wait: the loop looks at the queues either way.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        for queue in &self.queues {
            // SAFETY: live queue handles; io events off before the socket closes,
            // then the handle's reference is released.
            unsafe {
                rd::rd_kafka_queue_io_event_enable(queue.ptr, -1, std::ptr::null(), 0);
                if queue.owned {
                    rd::rd_kafka_queue_destroy(queue.ptr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;
    use std::time::Instant;

    #[test]
    fn a_delivery_report_ends_the_sleep_and_an_empty_queue_does_not() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("t", 1, 1).expect("topic");
        let (producer, consumer) = pair(&mock);
        let mut wakeup = Wakeup::new(consumer.client(), producer.client(), None).expect("wakeup");
        assert!(!wakeup.pending());
        producer
            .send(BaseRecord::to("t").key("k").payload("v"))
            .expect("queued");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !wakeup.pending() && Instant::now() < deadline {
            wakeup.wait(Duration::from_secs(1));
        }
        assert!(wakeup.pending(), "the delivery report is queued");
        drop(wakeup);
        let _ = producer.flush(Duration::from_secs(5));
    }

    /// A producer and a consumer on `mock`.
    fn pair(
        mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    ) -> (BaseProducer, BaseConsumer) {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", mock.bootstrap_servers());
        let producer: BaseProducer = config.create().expect("producer");
        let consumer: BaseConsumer = config
            .clone()
            .set("group.id", "g")
            .create()
            .expect("consumer");
        (producer, consumer)
    }

    /// One sleep for several guards ends when the second one's queue gets something,
    /// long before its timeout: a scaled-out instance's workers are not left waiting
    /// behind another's sleep.
    #[test]
    fn a_sleep_on_several_ends_with_an_event_of_any() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("t", 1, 1).expect("topic");
        let (producer_a, consumer_a) = pair(&mock);
        let (producer_b, consumer_b) = pair(&mock);
        let mut a = Wakeup::new(consumer_a.client(), producer_a.client(), None).expect("wakeup");
        let mut b = Wakeup::new(consumer_b.client(), producer_b.client(), None).expect("wakeup");
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                producer_b
                    .send(BaseRecord::to("t").key("k").payload("v"))
                    .expect("queued");
            });
            Wakeup::wait_any(&mut [&mut a, &mut b], Duration::from_secs(120));
        });
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sleep lasted its whole timeout: the second queue's event did not end it"
        );
        assert!(b.pending() && !a.pending());
        drop((a, b));
        let _ = producer_b.flush(Duration::from_secs(5));
    }
}
