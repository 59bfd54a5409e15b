//! The outbox: every message the guard sends, kept in the order it was decided until
//! the broker has it (CONTRACT §1.6 "Order").
//!
//! Each message gets a sequence number when it is decided; that number, not its id, is
//! its key. A message is handed to the producer only after every earlier one, and only
//! once the order-journal record it depends on is acknowledged (its *gate*, see
//! [`super::order_log`]). Acknowledged messages leave from the front only, so what a
//! checkpoint keeps is everything from the oldest unacknowledged message on, in order:
//! re-publishing it after a restart repeats a stretch of the topic in its own order.
//! A failed delivery is sent again together with everything released after it, so the
//! last record of every scope is always its newest decision.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::store::OutMsg;

/// Back-off before a failed delivery is sent again.
pub const RESEND_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Entry {
    seq: u64,
    msg: OutMsg,
    gate: u64,
    acked: bool,
    received: Option<Instant>,
}

/// Messages decided and not yet known to be on the broker, in decision order.
#[derive(Debug, Default)]
pub struct Outbox {
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// Every message up to this sequence number has been handed to the producer.
    released_through: u64,
    /// After a failed delivery: send again from this sequence number, at this time.
    resend: Option<(u64, Instant)>,
}

impl Outbox {
    /// An outbox holding `restored` (a checkpoint's, in decision order), to be sent
    /// again first, with no gate.
    pub fn restore(restored: Vec<OutMsg>) -> Outbox {
        let mut outbox = Outbox::default();
        for msg in restored {
            outbox.push(msg, 0, None);
        }
        outbox
    }

    /// Adds a decided message; it may go out once order record `gate` is acknowledged.
    /// `received` is when its trigger arrived (for the latency histogram). Returns its
    /// sequence number.
    pub fn push(&mut self, msg: OutMsg, gate: u64, received: Option<Instant>) -> u64 {
        self.next_seq += 1;
        self.entries.push_back(Entry {
            seq: self.next_seq,
            msg,
            gate,
            acked: false,
            received,
        });
        self.next_seq
    }

    /// Hands every message that may go out now to `send`, in order: those not yet
    /// released whose gate `is_acked`, up to the first that must still wait. A message
    /// `send` refuses stays unreleased and is offered again later.
    pub fn release(
        &mut self,
        is_acked: impl Fn(u64) -> bool,
        mut send: impl FnMut(u64, &OutMsg) -> bool,
    ) {
        let first = self
            .index(self.released_through + 1)
            .unwrap_or(self.entries.len());
        for entry in self.entries.range(first..) {
            if !is_acked(entry.gate) || !send(entry.seq, &entry.msg) {
                return;
            }
            self.released_through = entry.seq;
        }
    }

    /// The broker has message `seq`: it leaves once everything before it has too.
    /// Returns when its trigger arrived, the first time.
    pub fn acked(&mut self, seq: u64) -> Option<Instant> {
        let at = self.index(seq)?;
        let entry = &mut self.entries[at];
        entry.acked = true;
        let received = entry.received.take();
        while self.entries.front().is_some_and(|e| e.acked) {
            self.entries.pop_front();
        }
        received
    }

    /// Message `seq` failed: it and everything released after it are sent again
    /// after [`RESEND_AFTER`].
    pub fn failed(&mut self, seq: u64, now: Instant) {
        let from = self.resend.map_or(seq, |(from, _)| from.min(seq));
        self.resend = Some((from, now + RESEND_AFTER));
    }

    /// Whether a failed delivery waits to be sent again.
    pub fn resending(&self) -> bool {
        self.resend.is_some()
    }

    /// When a resend is due, hands the failed message and every message released
    /// after it to `send` again, in order. A refusal stops it; the rest is retried
    /// after [`RESEND_AFTER`].
    pub fn resend_due(&mut self, now: Instant, mut send: impl FnMut(u64, &OutMsg) -> bool) {
        let Some((from, at)) = self.resend else {
            return;
        };
        if now < at {
            return;
        }
        self.resend = None;
        let first = self.index(from).unwrap_or(0);
        let end = self.index(self.released_through).map_or(0, |last| last + 1);
        for entry in self.entries.range(first..end.max(first)) {
            if !send(entry.seq, &entry.msg) {
                self.resend = Some((entry.seq, now + RESEND_AFTER));
                return;
            }
        }
    }

    /// Where message `seq` stands: sequence numbers are consecutive from the front.
    fn index(&self, seq: u64) -> Option<usize> {
        let front = self.entries.front()?.seq;
        let at = usize::try_from(seq.checked_sub(front)?).ok()?;
        (at < self.entries.len()).then_some(at)
    }

    /// Every message kept, in decision order (what a checkpoint stores).
    pub fn messages(&self) -> Vec<OutMsg> {
        self.entries.iter().map(|e| e.msg.clone()).collect()
    }

    /// Whether a message with this id is kept.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.msg.id == id)
    }

    /// Messages kept (unacknowledged, or behind an unacknowledged one).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The gate of the newest message not yet released.
    pub fn last_gate(&self) -> Option<u64> {
        self.entries
            .back()
            .filter(|e| e.seq > self.released_through)
            .map(|e| e.gate)
    }

    /// Whether a decided message waits for its order record.
    pub fn holds_unreleased(&self) -> bool {
        self.entries
            .back()
            .is_some_and(|e| e.seq > self.released_through)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> OutMsg {
        OutMsg {
            id: id.into(),
            topic: "guard_command".into(),
            key: "global".into(),
            payload: Vec::new(),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    fn ids(outbox: &mut Outbox, acked_through: u64) -> Vec<String> {
        let mut sent = Vec::new();
        outbox.release(
            |gate| gate <= acked_through,
            |_, m| {
                sent.push(m.id.clone());
                true
            },
        );
        sent
    }

    #[test]
    fn messages_go_out_in_decision_order_not_id_order() {
        let mut outbox = Outbox::restore(vec![msg("z-pause"), msg("a-resume")]);
        outbox.push(msg("m-pause"), 0, None);
        assert_eq!(ids(&mut outbox, 0), ["z-pause", "a-resume", "m-pause"]);
        assert!(ids(&mut outbox, 0).is_empty(), "each is released once");
        let kept: Vec<String> = outbox.messages().into_iter().map(|m| m.id).collect();
        assert_eq!(kept, ["z-pause", "a-resume", "m-pause"]);
    }

    #[test]
    fn a_message_waits_for_its_order_record_and_so_does_everything_after_it() {
        let mut outbox = Outbox::default();
        outbox.push(msg("first"), 1, None);
        outbox.push(msg("second"), 0, None);
        assert!(ids(&mut outbox, 0).is_empty());
        assert!(outbox.holds_unreleased());
        assert_eq!(ids(&mut outbox, 1), ["first", "second"]);
        assert!(!outbox.holds_unreleased());
    }

    #[test]
    fn only_the_acknowledged_front_leaves() {
        let mut outbox = Outbox::default();
        let a = outbox.push(msg("a"), 0, None);
        let b = outbox.push(msg("b"), 0, None);
        ids(&mut outbox, 0);
        outbox.acked(b);
        assert_eq!(outbox.len(), 2, "b stays behind the unacknowledged a");
        outbox.acked(a);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_failed_message_is_sent_again_with_everything_released_after_it() {
        let mut outbox = Outbox::default();
        let a = outbox.push(msg("a"), 0, None);
        let b = outbox.push(msg("b"), 0, None);
        outbox.push(msg("c"), 0, None);
        outbox.push(msg("held"), 9, None);
        ids(&mut outbox, 0);
        outbox.acked(a);
        outbox.failed(b, Instant::now());
        let mut again = Vec::new();
        outbox.resend_due(Instant::now(), |_, m| {
            again.push(m.id.clone());
            true
        });
        assert!(again.is_empty(), "not before the back-off");
        outbox.resend_due(Instant::now() + RESEND_AFTER, |_, m| {
            again.push(m.id.clone());
            true
        });
        assert_eq!(again, ["b", "c"], "the held message was never released");
        assert!(!outbox.resending());
    }
}
