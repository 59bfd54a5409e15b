//! The way out: the outbox in decision order behind the order journal, delivery reports, resends.

use super::*;

impl<S: Store> LiveGuard<S> {
    /// Adds a decided message to the outbox; it goes out, in decision order, once the
    /// order record of the inputs applied before it is on the broker.
    pub(super) fn enqueue(&mut self, msg: OutMsg, received: Option<Instant>) {
        let gate = self.journal.gate();
        self.outbox.push(msg, gate, received);
    }

    /// Writes the steps applied since the last order record as a new record.
    pub(super) fn cut_journal(&mut self) {
        if let Some((n, key, payload)) = self.journal.cut() {
            self.status.edit().metrics.order_records += 1;
            tracing::trace!(record = n, bytes = payload.len(), "order record cut");
            if !send_record(&self.producer, &self.config.topics.state, n, &key, &payload) {
                self.resend_record(Instant::now() + RESEND_AFTER, n);
            }
        }
    }

    /// Cuts the order journal when a decided message waits for it, then hands every
    /// message that may go out to the producer, in decision order.
    pub(super) fn release(&mut self) {
        if self
            .outbox
            .last_gate()
            .is_some_and(|gate| gate > self.journal.written())
        {
            self.cut_journal();
        }
        let (journal, producer) = (&self.journal, &self.producer);
        self.outbox.release(
            |gate| journal.is_acked(gate),
            |seq, msg| send_out(producer, seq, msg),
        );
    }

    /// Sends order record `n` again at `at`.
    fn resend_record(&mut self, at: Instant, n: u64) {
        self.placed.resent(n);
        self.record_resend.push((at, n));
    }

    /// Sends again the order records whose back-off after a failure is over.
    fn resend_due_records(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.record_resend)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.record_resend = later;
        for (_, n) in due {
            if let Some((key, payload)) = self.journal.unacked(n) {
                if !send_record(&self.producer, &self.config.topics.state, n, key, payload) {
                    // Noted in `placed` already: this record was sent again.
                    self.record_resend.push((now + RESEND_AFTER, n));
                }
            }
        }
    }

    /// Deletes the order records no local checkpoint within the state horizon needs,
    /// once checkpoint `cut` is written, where no changelog writer does it (scale-out
    /// workers and the aggregator; [`order_log::Trim`]).
    pub(super) fn delete_order_records(&mut self, cut: (Option<i64>, Option<i64>, u64)) {
        let Some(trim) = self.trim.as_mut() else {
            return;
        };
        let (producer, topic) = (&self.producer, &self.config.topics.state);
        // The trimmer's keys follow the lineage.
        let lineage = order_log::lineage(&self.config);
        let mut deleted = 0u64;
        let (seen_from, journal_from, record) = cut;
        trim.published(
            seen_from,
            journal_from,
            record,
            DELETE_PER_CHECKPOINT,
            |key| {
                // One try: with the producer's queue full the rest waits for the next
                // checkpoint, rather than the decision thread for room.
                let key = format!("{lineage}/{key}");
                let taken = producer
                    .send(state_record(topic, ORDER_DELETE, 0, &key))
                    .is_ok();
                deleted += u64::from(taken);
                taken
            },
        );
        if deleted > 0 {
            debug!(deleted, "order records deleted");
        }
    }

    pub(super) fn handle_deliveries(&mut self) {
        let reports = without_deletions(self.deliveries.drain());
        let now = Instant::now();
        let mut failures = 0u64;
        let mut failed_ids = Vec::new();
        for report in reports {
            if let Some((partition, offset)) = report.echo {
                self.echoed(partition, offset);
            }
            match (report.result, report.id == ORDER_RECORD) {
                (Ok(()), true) => {
                    tracing::trace!(record = report.seq, offset = ?report.offset, "order record acknowledged");
                    if let Some(offset) = report.offset {
                        self.placed.acked(report.seq, offset);
                    }
                    self.journal.acked(report.seq)
                }
                (Ok(()), false) => {
                    self.mark_dirty();
                    if let Some(received) = self.outbox.acked(report.seq) {
                        let micros = received.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        let _ = self.latency.histogram.record(micros);
                    }
                }
                (Err(e), true) => {
                    error!(record = report.seq, error = %e, "delivery of an order record failed; decisions wait for it, sending it again");
                    failures += 1;
                    self.resend_record(now + RESEND_AFTER, report.seq);
                    if let Some((key, _)) = self.journal.unacked(report.seq) {
                        failed_ids.push(key.to_owned());
                    }
                }
                (Err(e), false) => {
                    error!(id = %report.id, error = %e, "delivery failed; it and everything decided after it are sent again");
                    failures += 1;
                    self.outbox.failed(report.seq, now);
                    failed_ids.push(report.id);
                }
            }
        }
        let publishing = if failures > 0 {
            Some(false)
        } else {
            // Every earlier failure has since been sent again and nothing failed now.
            (!self.outbox.resending() && self.record_resend.is_empty()).then_some(true)
        };
        {
            // Written only when it changes: a write marks the status to be published.
            let mut status = self.status.edit();
            if failures > 0 {
                status.metrics.delivery_failures += failures;
            }
            if let Some(publishing) = publishing.filter(|p| *p != status.publishing) {
                status.publishing = publishing;
            }
        }
        for id in &failed_ids {
            self.raise_degraded(id, &format!("delivery of {id} failed; retrying"));
        }
        self.resend_due_records(now);
        let producer = &self.producer;
        self.outbox
            .resend_due(now, |seq, msg| send_out(producer, seq, msg));
        // Decisions first: the checkpoint's fsync must not stand between a released
        // decision and the producer.
        self.release();
        self.collect_written();
        if !self.outbox.holds_unreleased() || self.checkpoint_overdue() {
            self.try_save();
        }
    }
}

/// The delivery id of an order-journal record (its number is the report's `seq`).
const ORDER_RECORD: &str = "order";

/// The delivery id of an order record's tombstone.
const ORDER_DELETE: &str = "order-delete";

/// `reports` without those of order records' tombstones; the failed ones among them
/// are logged once, counted.
fn without_deletions(reports: Vec<kafka::Delivery>) -> Vec<kafka::Delivery> {
    let (deletions, rest): (Vec<_>, Vec<_>) =
        reports.into_iter().partition(|r| r.id == ORDER_DELETE);
    let failed: Vec<_> = deletions
        .iter()
        .filter_map(|r| r.result.as_ref().err())
        .collect();
    if let Some(e) = failed.first() {
        warn!(count = failed.len(), error = %e, "deletions of order records were not delivered: those records stay on the state topic");
    }
    rest
}

/// Most order records the decision thread deletes after one checkpoint: a few hundred
/// sends, not thousands at once between two turns, and still far more than the records
/// written between two checkpoints (the store writer, which deletes for a guard with a changelog, takes
/// [`order_log::DELETE_PER_CUT`]).
const DELETE_PER_CHECKPOINT: usize = 256;

/// Hands outbox message `seq` to the producer; `false` when the producer refuses it
/// (it is offered again later).
fn send_out(producer: &BaseProducer<DeliveryContext>, seq: u64, message: &OutMsg) -> bool {
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
    for (k, v) in &message.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    hand_over(producer, &message.id, || {
        let pending = Box::new(Pending {
            id: message.id.clone(),
            seq,
            sent: Instant::now(),
        });
        let record = BaseRecord::with_opaque_to(&message.topic, pending)
            .key(message.key.as_str())
            .payload(message.payload.as_slice())
            .headers(headers.clone());
        match message.timestamp_ms {
            Some(ts) => record.timestamp(ts),
            None => record,
        }
    })
}

/// Sends order record `n` to partition 0 of the state topic; `false` when the producer
/// refuses it.
fn send_record(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    n: u64,
    key: &str,
    payload: &[u8],
) -> bool {
    hand_over(producer, key, || {
        state_record(topic, ORDER_RECORD, n, key).payload(payload)
    })
}

/// A record to partition 0 of the state topic, its delivery reported as `id`.
fn state_record<'a>(
    topic: &'a str,
    id: &'static str,
    seq: u64,
    key: &'a str,
) -> BaseRecord<'a, str, [u8], Box<Pending>> {
    let pending = Box::new(Pending {
        id: id.into(),
        seq,
        sent: Instant::now(),
    });
    BaseRecord::with_opaque_to(topic, pending)
        .partition(0)
        .key(key)
}

/// Hands the record `make` builds to the producer, waiting out a full queue; `false`
/// (logged, naming `what`) when the producer refuses it.
fn hand_over<'a>(
    producer: &BaseProducer<DeliveryContext>,
    what: &str,
    mut make: impl FnMut() -> BaseRecord<'a, str, [u8], Box<Pending>>,
) -> bool {
    for _ in 0..1_000 {
        match producer.send(make()) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => {
                error!(what, error = %e, "cannot hand a message to the producer; will retry");
                return false;
            }
        }
    }
    false
}
