//! Applying one input: decode, check, decide; trips, progress, decisions and dead letters out.

use crate::engine::Disposition;
use crate::live::status::changed_by;
use crate::message::{GuardCommand, PauseState};

use super::cases;
use super::*;

impl<S: Store> LiveGuard<S> {
    /// Applies one input message at its place in the order: notes its position, then
    /// decodes, checks and decides it (a fact from a worker when this is the
    /// aggregator), and routes what was decided.
    ///
    /// The message is of the input partition at `index` in `inputs`: no topic name is
    /// compared or copied on the way of a plain message.
    pub(super) fn on_message(
        &mut self,
        index: usize,
        (offset, timestamp_ms): (i64, i64),
        key: &str,
        payload: &[u8],
        received: Instant,
    ) {
        self.note_applied(index, offset);
        let input = &self.inputs[index];
        let (partition, stream) = (input.partition, input.stream);
        if input.facts {
            let topic = input.topic.clone();
            self.on_fact(&topic, (partition, offset), key, payload, received);
            return;
        }
        let Some(stream) = stream else {
            return;
        };
        if let Err(reason) = self.admit(stream, payload) {
            let topic = self.inputs[index].topic.clone();
            self.dead_letter(&topic, partition, offset, key, payload, &reason);
            return;
        }
        // Admitted: the slot holds it.
        let Some(input) = self.spent_input.take() else {
            return;
        };
        self.decisions.clear();
        let disposition = self.engine.apply_into(&input, &mut self.decisions);
        if disposition != Disposition::OwnEvent {
            self.note_stamp(index, timestamp_ms);
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        self.count(stream, &input, disposition, &decisions);
        for decision in &decisions {
            debug!(id = decision.id(), "decided");
        }
        // A duplicate or the guard's own risk event read back changed nothing: no
        // scope to compare (the whole book of them, per such message).
        let may_move_scopes =
            disposition == Disposition::Applied && !matches!(input, Input::Fill(_));
        if !decisions.is_empty() || may_move_scopes {
            let place = cases::topic_place(&self.inputs[index].topic, partition, offset);
            self.keep_cases(place, Some(&input), &mut decisions);
        }
        match (&input, self.config.role) {
            (Input::Fill(fill), Role::Worker) => {
                self.forward_trips(&fill.fill_id, timestamp_ms, decisions);
            }
            (Input::Ops(_), Role::Worker) => self.report_progress(timestamp_ms),
            _ => self.publish_all(decisions, received),
        }
        self.spent_input = Some(input);
    }

    /// Counts an input applied after a later-stamped one of another partition: the
    /// merge took that partition for caught up (its watermark from the broker did not
    /// show this message yet), so the order applied differs from the messages'
    /// timestamp order, and a replay of them by timestamp may decide differently. The
    /// order journal keeps the order applied, so a restart repeats it.
    fn note_stamp(&mut self, index: usize, timestamp_ms: i64) {
        if timestamp_ms == i64::MIN {
            return;
        }
        match self.latest_stamp {
            Some((latest, stamp)) if stamp > timestamp_ms => {
                if latest != index {
                    self.status.edit().metrics.inputs_applied_late += 1;
                    debug!(
                        topic = %self.inputs[index].topic,
                        later_stamped = %self.inputs[latest].topic,
                        by_ms = stamp - timestamp_ms,
                        "an input applied after a later-stamped input of another partition"
                    );
                }
            }
            _ => self.latest_stamp = Some((index, timestamp_ms)),
        }
    }

    /// Moves the next offset of the partition at `index` past `offset` and notes the
    /// message in the order journal.
    fn note_applied(&mut self, index: usize, offset: i64) {
        let InputPartition {
            topic, partition, ..
        } = &self.inputs[index];
        match self
            .offsets
            .iter_mut()
            .find(|((t, p), _)| p == partition && t == topic)
        {
            Some((_, next)) => *next = offset + 1,
            None => {
                self.offsets.insert((topic.clone(), *partition), offset + 1);
            }
        }
        self.journal.applied(topic, *partition, offset);
        self.mark_dirty();
        self.offsets_moved = true;
    }

    /// Admits a message of `stream` as every path does ([`Admission`]), on the wall
    /// clock when the guard runs on it (as this turn's fetch read it: a turn lasts
    /// milliseconds, `max_future` is minutes); the reason it goes to the dead-letter
    /// topic instead.
    /// The input goes into the slot of the one applied before, reusing its buffers
    /// ([`crate::decode::decode_into`]).
    fn admit(&mut self, stream: Stream, payload: &[u8]) -> Result<(), String> {
        let wall_clock = (self.config.clock == ClockMode::External).then_some(self.fetched_wall);
        self.config
            .admission()
            .payload_into(stream, payload, wall_clock, &mut self.spent_input)
            .map_err(|refusal| refusal.to_string())
    }

    /// Counts an applied input and its decisions. Plain messages are counted for the
    /// turn and shown once per turn ([`LiveGuard::show_turn`]); the status lock is
    /// taken here only for decisions and operators' orders (rare).
    fn count(
        &mut self,
        stream: Stream,
        input: &Input,
        disposition: Disposition,
        decisions: &[Decision],
    ) {
        self.turn_counts.messages[stream.rank()] += 1;
        match disposition {
            Disposition::Duplicate => self.turn_counts.duplicates += 1,
            Disposition::OtherEnv => self.turn_counts.other_env += 1,
            Disposition::Applied | Disposition::OwnEvent => {}
        }
        let ops = matches!(input, Input::Ops(_));
        if decisions.is_empty() && !ops {
            return;
        }
        self.turn_counts.state_changed = true;
        let mut status = self.status.edit();
        status.metrics.record_decisions(decisions);
        if let Input::Ops(command) = input {
            if self.own_pause.as_deref() == Some(command.command_id.as_str()) {
                self.own_pause = None;
            }
            if disposition == Disposition::Applied {
                let changed = changed_by(&command.command_id, decisions);
                self.status.applied().insert(&command.command_id, changed);
            }
        }
    }

    /// A worker's trips go to the aggregator, stamped with the tripping fill's Kafka
    /// timestamp so the aggregator orders them among orders and risk events as the
    /// fill was ordered.
    pub(super) fn forward_trips(
        &mut self,
        trigger: &str,
        timestamp_ms: i64,
        decisions: Vec<Decision>,
    ) {
        for decision in decisions {
            let Decision::RiskEvent(event) = decision else {
                continue;
            };
            let id = format!("fact:{}", event.event_id);
            let fact = TripFact {
                trigger: trigger.to_owned(),
                event,
            };
            info!(kind = %fact.event.kind, scope = %fact.event.scope, trigger, "trip forwarded to the aggregator");
            let payload = serde_json::to_vec(&fact).expect("facts serialise");
            self.enqueue(
                OutMsg {
                    id,
                    topic: self.config.topics.facts.clone(),
                    key: "facts".into(),
                    payload,
                    headers: Vec::new(),
                    timestamp_ms: (timestamp_ms > 0).then_some(timestamp_ms),
                },
                None,
            );
        }
    }

    /// The aggregator applies a worker's trip.
    pub(super) fn on_fact(
        &mut self,
        topic: &str,
        (partition, offset): (i32, i64),
        key: &str,
        payload: &[u8],
        received: Instant,
    ) {
        let fact: TripFact = match serde_json::from_slice(payload) {
            Ok(fact) => fact,
            Err(e) => {
                let reason = format!("not a trip fact: {e}");
                self.dead_letter(topic, partition, offset, key, payload, &reason);
                return;
            }
        };
        self.decisions.clear();
        let disposition = match self.engine.apply_trip(&fact, &mut self.decisions) {
            Ok(disposition) => disposition,
            Err(e) => {
                self.dead_letter(topic, partition, offset, key, payload, &e.to_string());
                return;
            }
        };
        let mut decisions = std::mem::take(&mut self.decisions);
        self.keep_cases(
            cases::topic_place(topic, partition, offset),
            None,
            &mut decisions,
        );
        {
            let mut status = self.status.edit();
            if disposition == crate::engine::Disposition::Duplicate {
                status.metrics.duplicates += 1;
            }
            status.metrics.record_decisions(&decisions);
            if !decisions.is_empty() {
                self.turn_counts.state_changed = true;
            }
        }
        self.publish_all(decisions, received);
    }

    /// Worker: tells the aggregator, through `guard_facts`, that its partitions are
    /// applied up to the order it just applied (stamped `ts_ms`): the merge applied
    /// every fill stamped earlier first, and their trips were sent before this.
    pub(super) fn report_progress(&mut self, ts_ms: i64) {
        // Through the outbox: progress must never overtake a trip decided before it.
        for partition in self.config.owned.clone() {
            let payload = serde_json::to_vec(&ProgressFact {
                progress: Progress { partition, ts_ms },
            })
            .expect("progress serialises");
            self.enqueue(
                OutMsg {
                    id: format!("progress:{partition}:{ts_ms}"),
                    topic: self.config.topics.facts.clone(),
                    key: "facts".into(),
                    payload,
                    headers: Vec::new(),
                    timestamp_ms: None,
                },
                None,
            );
        }
    }

    /// Puts the decisions in the outbox, in order. Commands carry the time they were
    /// decided ([`cases::stamp`], done with their cases).
    pub(super) fn publish_all(&mut self, decisions: Vec<Decision>, received: Instant) {
        for decision in decisions {
            let (topic, id, payload) = match decision {
                Decision::GuardCommand(command) => {
                    info!(action = command.action.as_str(), scope = %command.scope, rule = command.rule.as_str(), trigger = %command.trigger, id = %command.command_id, reason = %command.reason, "guard command");
                    let payload = serde_json::to_vec(&command).expect("commands serialise");
                    self.enqueue_pause_state(&command);
                    (
                        self.config.topics.guard_command.clone(),
                        command.command_id,
                        (payload, command.scope),
                    )
                }
                Decision::RiskEvent(event) => {
                    info!(kind = %event.kind, scope = %event.scope, id = %event.event_id, "risk event raised");
                    let payload = serde_json::to_vec(&event).expect("risk events serialise");
                    (
                        self.config.topics.risk_event.clone(),
                        event.event_id,
                        (payload, event.scope),
                    )
                }
            };
            let (payload, scope) = payload;
            self.enqueue(
                OutMsg {
                    id,
                    topic,
                    key: scope.to_string(),
                    payload,
                    headers: Vec::new(),
                    timestamp_ms: None,
                },
                Some(received),
            );
        }
    }

    /// Puts the scope's new `guard_pause_state` record (CONTRACT §1.8) in the outbox
    /// right behind its command, so it goes out, is re-published and retried exactly
    /// as the command is: in decision order. (Not measured in the decision latency,
    /// which times the command.)
    fn enqueue_pause_state(&mut self, command: &GuardCommand) {
        let held = self.engine.state().scopes.get(&command.scope);
        let state = PauseState::after(command, held);
        self.enqueue(
            OutMsg {
                id: format!("state:{}", command.command_id),
                topic: self.config.topics.pause_state.clone(),
                key: command.scope.to_string(),
                payload: serde_json::to_vec(&state).expect("pause states serialise"),
                headers: Vec::new(),
                timestamp_ms: None,
            },
            None,
        );
    }

    pub(super) fn dead_letter(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: &str,
        payload: &[u8],
        reason: &str,
    ) {
        warn!(
            topic,
            partition, offset, reason, "invalid message sent to the dead-letter topic"
        );
        self.status.edit().metrics.invalid += 1;
        let id = format!("dlq:{topic}:{partition}:{offset}");
        let headers = vec![
            ("reason".to_owned(), reason.to_owned()),
            ("source_topic".to_owned(), topic.to_owned()),
            ("source_partition".to_owned(), partition.to_string()),
            ("source_offset".to_owned(), offset.to_string()),
        ];
        self.enqueue(
            OutMsg {
                id,
                topic: self.config.topics.dlq.clone(),
                key: key.to_owned(),
                payload: payload.to_vec(),
                headers,
                timestamp_ms: None,
            },
            None,
        );
    }
}
