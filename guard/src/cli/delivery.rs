//! Delivery reports for the command-line tools that publish (`guard pause` and its
//! siblings, `guard publish`). librdkafka's `flush` returns once the queue is empty,
//! and a message the broker refused leaves it as surely as one it took: only the
//! delivery reports tell them apart.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord};

use guard::live::kafka::{self, DeliveryContext, Pending};
use guard::live::LiveConfig;

use super::{kafka_failure, Failure};

/// A producer with the guard's command settings whose reports are counted.
pub struct Checked {
    producer: BaseProducer<DeliveryContext>,
    reports: DeliveryContext,
    sent: u64,
    delivered: u64,
    failed: u64,
    first_failure: Option<String>,
}

impl Checked {
    /// A producer for `config`.
    ///
    /// # Errors
    /// A run [`Failure`] when librdkafka refuses the settings.
    pub fn new(config: &LiveConfig) -> Result<Self, Failure> {
        let reports = DeliveryContext::default();
        let producer = kafka::producer(config)
            .create_with_context(reports.clone())
            .map_err(kafka_failure(&config.brokers))?;
        Ok(Checked {
            producer,
            reports,
            sent: 0,
            delivered: 0,
            failed: 0,
            first_failure: None,
        })
    }

    /// Hands one message to the producer, waiting while its queue is full.
    ///
    /// # Errors
    /// A run [`Failure`] when the producer refuses it for another reason.
    pub fn send(&mut self, topic: &str, key: &str, payload: &[u8]) -> Result<(), Failure> {
        loop {
            let pending = Box::new(Pending {
                id: String::new(),
                seq: self.sent,
                sent: Instant::now(),
            });
            let record = BaseRecord::with_opaque_to(topic, pending)
                .key(key)
                .payload(payload);
            match self.producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => self.serve(Duration::from_millis(10)),
                Err((e, _)) => return Err(Failure::run(format!("cannot send to {topic}: {e}"))),
            }
        }
        self.sent += 1;
        self.serve(Duration::ZERO);
        Ok(())
    }

    /// Serves delivery reports for up to `wait` and counts them.
    fn serve(&mut self, wait: Duration) {
        self.producer.poll(wait);
        for report in self.reports.drain() {
            match report.result {
                Ok(()) => self.delivered += 1,
                Err(e) => {
                    self.failed += 1;
                    self.first_failure.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }

    /// Waits up to `limit` until every message sent is acknowledged or refused, and
    /// returns how many were delivered.
    ///
    /// # Errors
    /// A run [`Failure`] naming how many messages the broker refused (and the first
    /// reason), or how many were still unanswered at `limit`.
    pub fn finish(&mut self, limit: Duration) -> Result<u64, Failure> {
        let answered = kafka::wait_delivered(&self.producer, limit);
        self.serve(Duration::ZERO);
        if self.failed > 0 {
            return Err(Failure::run(format!(
                "{} of {} messages NOT delivered: {}",
                self.failed,
                self.sent,
                self.first_failure.as_deref().unwrap_or("no reason given")
            )));
        }
        if !answered {
            return Err(Failure::run(format!(
                "{} of {} messages not acknowledged by the broker within {limit:?}: they may or may not be delivered",
                self.sent - self.delivered,
                self.sent
            )));
        }
        Ok(self.delivered)
    }
}
