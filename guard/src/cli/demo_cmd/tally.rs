//! What the demo sent and what came back: commands, the gateways' acknowledgements,
//! the guard's escalations, and their latencies.

use std::collections::HashMap;
use std::time::Instant;

use hdrhistogram::Histogram;

use guard::message::{GuardCommand, Input};

use super::gateways::GATEWAYS;

/// What the Do layer sent and what came back: for the live lines, the summary and
/// the replay check.
pub struct Tally {
    /// When each input was sent, by id, to time the command it triggers.
    pub sent_at: HashMap<String, Instant>,
    /// Every input, in the order sent, to replay them.
    pub sent: Vec<Input>,
    /// Every command the listener heard, in order.
    pub received: Vec<GuardCommand>,
    /// Trigger sent → command received, in microseconds.
    pub latency: Histogram<u64>,
    /// When each command's trigger was sent, by command id.
    pub trigger_sent: HashMap<String, Instant>,
    /// The gateways that acknowledged each command so far.
    pub acked_by: HashMap<String, Vec<String>>,
    /// Trigger sent → the last gateway's acknowledgement arrived, in microseconds.
    pub ack_latency: Histogram<u64>,
    /// The guard's `command_unacknowledged` risk events: their reasons.
    pub escalations: Vec<String>,
}

impl Tally {
    /// An empty tally; latencies up to a minute, to three significant digits.
    pub fn new() -> Self {
        Tally {
            sent_at: HashMap::new(),
            sent: Vec::new(),
            received: Vec::new(),
            latency: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            trigger_sent: HashMap::new(),
            acked_by: HashMap::new(),
            ack_latency: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("histogram bounds"),
            escalations: Vec::new(),
        }
    }

    /// Takes one `guard_ack`; once every gateway has acknowledged a command, prints
    /// how long after its trigger.
    pub fn ack(&mut self, payload: &[u8], arrived: Instant) {
        let Ok(ack) = serde_json::from_slice::<guard::message::GuardAck>(payload) else {
            return;
        };
        let by = self.acked_by.entry(ack.command_id.clone()).or_default();
        if by.contains(&ack.gateway) {
            return;
        }
        by.push(ack.gateway);
        if by.len() < GATEWAYS.len() {
            return;
        }
        if let Some(sent) = self.trigger_sent.get(&ack.command_id) {
            let micros = arrived.duration_since(*sent).as_micros() as u64;
            let _ = self.ack_latency.record(micros.max(1));
            println!(
                "  ✓ acknowledged by {} {:.2} ms after the trigger was sent",
                GATEWAYS.join(" and "),
                micros as f64 / 1e3
            );
        }
    }

    /// Takes one risk event: the guard's `command_unacknowledged` is shown and kept.
    pub fn event(&mut self, payload: &[u8]) {
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        if event["source"] == "guard" && event["kind"] == "command_unacknowledged" {
            let reason = event["reason"].as_str().unwrap_or_default().to_owned();
            println!("  ⚠ risk event command_unacknowledged: {reason}");
            self.escalations.push(reason);
        }
    }

    /// Takes one message from `guard_command`: prints the command with its latency
    /// and keeps it. Anything that is not a command is skipped.
    pub fn receive(&mut self, payload: &[u8], arrived: Instant) {
        let Ok(command) = serde_json::from_slice::<GuardCommand>(payload) else {
            return;
        };
        let ms = self
            .sent_at
            .get(&command.trigger)
            .map(|t| arrived.duration_since(*t).as_secs_f64() * 1e3);
        if let Some(ms) = ms {
            let _ = self.latency.record((ms * 1e3).max(1.0) as u64);
        }
        if let Some(sent) = self.sent_at.get(&command.trigger) {
            self.trigger_sent.insert(command.command_id.clone(), *sent);
        }
        println!(
            "  ⇒ {} {:<8} rule={:<16} trigger={:<22} {}  ({})",
            command.action.as_str().to_uppercase(),
            command.scope.to_string(),
            command.rule.as_str(),
            command.trigger,
            ms.map_or_else(
                || "latency n/a".to_owned(),
                |ms| format!("{ms:.2} ms after the trigger was sent")
            ),
            command.reason
        );
        self.received.push(command);
    }
}
