//! Durability: checkpoints at journal boundaries, offset commits, failing closed.

use super::*;

impl<S: Store> LiveGuard<S> {
    /// Shows the decision latencies recorded since the last time in the status (a
    /// copy of the histogram, for `/metrics`).
    pub(super) fn show_latency(&mut self) {
        let latency = &mut self.latency;
        if latency.histogram.len() != latency.shown {
            latency.shown = latency.histogram.len();
            self.status.edit().metrics.decision_latency = Arc::new(latency.histogram.clone());
        }
    }

    /// Takes a checkpoint at a boundary of the order journal and writes it once the
    /// record that ends there is on the broker (at once when nothing new was applied);
    /// on success commits the covered offsets to Kafka. A local checkpoint so never
    /// holds an input order that a guard elsewhere could not find in the journal.
    pub fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        self.show_latency();
        self.collect_written();
        if self.prepared.is_some() || self.writer.busy() {
            self.try_save();
            let record_acked = match &self.prepared {
                Some(prepared) => self.journal.is_acked(prepared.record),
                None => true,
            };
            if !record_acked {
                self.fail_closed_if_unpersisted("its order record is not on the broker");
            } else if self.writer.busy() {
                self.fail_closed_if_unpersisted("the store has not finished writing");
            }
            return;
        }
        self.pending_seen.append(self.engine.drain_seen_journal());
        // Sized like the last one with an eighth to spare: not grown by doubling.
        let expected = self.engine_bytes + self.engine_bytes / 8;
        let mut engine = self.engine.snapshot_without_seen_sized(expected);
        // The snapshot lives on in the store writer and the changelog's pending
        // state (up to a second): not with much slack.
        if engine.capacity() > engine.len() + engine.len() / 4 {
            engine.shrink_to_fit();
        }
        self.engine_bytes = engine.len();
        let checkpoint = Checkpoint {
            seq: self.seq + 1,
            engine,
            offsets: self.offsets.clone(),
            outbox: self.outbox.messages(),
            seen_from: self.engine.seen_forgotten_before(),
            // Known once its order record is on the broker (`try_save`).
            journal_from: None,
            order_runs: Vec::new(),
            order_cuts: Vec::new(),
        };
        if let Some(from) = checkpoint.seen_from {
            // Entries journaled but already beyond the horizon need not be written.
            self.pending_seen.retain(|entry| entry.second() >= from);
        }
        let seen = std::mem::take(&mut self.pending_seen);
        debug!(
            seq = checkpoint.seq,
            new_ids = seen.len(),
            engine_bytes = self.engine_bytes,
            outbox = checkpoint.outbox.len(),
            "checkpoint prepared"
        );
        // A new changelog lineage needs the whole dedup set once, exactly as the
        // checkpoint has it.
        let full = std::mem::take(&mut self.publish_full).then(|| {
            self.engine
                .state()
                .seen
                .entries()
                .map(SeenEntry::from)
                .collect::<SeenBlocks>()
        });
        self.cut_journal();
        self.prepared = Some(Prepared {
            checkpoint,
            seen,
            full,
            record: self.journal.written(),
        });
        self.dirty = false;
        self.try_save();
    }

    /// Hands the prepared checkpoint to the store writer when its order record is on
    /// the broker and the writer is free.
    pub(super) fn try_save(&mut self) {
        if self.writer.busy() {
            return;
        }
        let Some(prepared) = &self.prepared else {
            return;
        };
        if !self.journal.is_acked(prepared.record) {
            return;
        }
        let Some(mut prepared) = self.prepared.take() else {
            return;
        };
        let journal_from = self.placed.checkpoint_at(prepared.record);
        prepared.checkpoint.journal_from = journal_from;
        if let Some(trim) = &self.trim {
            prepared.checkpoint.order_runs = trim.leftovers(prepared.record, journal_from);
            prepared.checkpoint.order_cuts = trim.cuts();
        }
        debug!(
            seq = prepared.checkpoint.seq,
            journal_from = ?prepared.checkpoint.journal_from,
            "checkpoint handed to the store writer"
        );
        self.writer.submit(
            prepared.checkpoint,
            prepared.record,
            prepared.seen,
            prepared.full,
        );
    }

    /// Takes the store writer's answer, when it has one (never waits).
    pub(super) fn collect_written(&mut self) {
        if let Some(written) = self.writer.finished() {
            self.on_written(written);
        }
    }

    /// Waits for the checkpoint the writer holds (a clean stop only).
    pub(super) fn finish_writing(&mut self) {
        if let Some(written) = self.writer.wait() {
            self.on_written(written);
        }
    }

    /// A checkpoint is in the store: its offsets are committed to Kafka. Or it is
    /// not: the previous checkpoint stays in force, its dedup ids go into the next.
    fn on_written(&mut self, written: Written) {
        let Written {
            seq,
            offsets,
            seen,
            result,
            took,
            changelog_failures,
            cut,
        } = written;
        if changelog_failures > 0 {
            self.status.edit().metrics.changelog_failures += changelog_failures;
        }
        match result {
            Ok(()) => {
                self.last_persisted = Instant::now();
                if self.failed_closed {
                    self.failed_closed = false;
                    self.status.edit().degraded = self.inputs_lost;
                    warn!("the state is persisted again; the global pause stays until an operator resumes");
                }
                self.seq = seq;
                self.status.edit().metrics.checkpoints += 1;
                // /state follows the checkpoints too (the forgetting of old windows).
                self.view_stale = true;
                self.status.set_view_stale(true);
                debug!(seq, took_us = took.as_micros() as u64, "checkpoint written");
                self.commit_offsets(&offsets);
                self.delete_order_records(cut);
            }
            Err(e) => {
                error!(error = %e, "checkpoint failed; offsets stay at the previous checkpoint");
                self.status.edit().metrics.checkpoint_failures += 1;
                self.pending_seen.prepend(seen);
                self.dirty = true;
                self.fail_closed_if_unpersisted(&e.to_string());
            }
        }
    }

    /// Checkpoints give way to decisions waiting for their order record, but not for
    /// long: a stream of trips must not starve them, nor may the dedup ids waiting
    /// for a checkpoint pile up (a backlog drain trips all the time).
    pub(super) fn checkpoint_overdue(&self) -> bool {
        self.last_checkpoint.elapsed() >= self.config.checkpoint_interval * 4
            || self.engine.seen_journal_len() >= JOURNAL_DUE
    }

    /// Notes a change of the state. The first change after the state was wholly in
    /// the store starts the clock that [`LiveGuard::fail_closed_if_unpersisted`]
    /// reads: a guard idle for an hour has not been failing to persist for an hour.
    pub(super) fn mark_dirty(&mut self) {
        if !self.dirty && self.prepared.is_none() && !self.writer.busy() {
            self.last_persisted = Instant::now();
        }
        self.dirty = true;
    }

    /// Fails closed when changes have waited for the store longer than
    /// `fail_closed_after`.
    pub(super) fn fail_closed_if_unpersisted(&mut self, why: &str) {
        if !self.failed_closed && self.last_persisted.elapsed() >= self.config.fail_closed_after {
            self.failed_closed = true;
            self.fail_closed(&format!(
                "cannot persist the guard's state for {:.0} s: {why}",
                self.last_persisted.elapsed().as_secs_f64()
            ));
        }
    }

    /// Fails closed: a guard that cannot keep its state must not let trading go on
    /// unguarded. It asks for a global pause the way an operator would — an
    /// `ops_command` on the input topic — so the pause goes through the engine, is
    /// recorded in the input history, is replayable, and is lifted only by an
    /// operator's resume.
    pub(super) fn fail_closed(&mut self, why: &str) {
        self.status.edit().degraded = true;
        let held = self.engine.state().scopes.held().any(|(scope, held)| {
            *scope == Scope::Global && held.reasons.contains(&crate::message::Rule::Operator)
        });
        if held || self.own_pause.is_some() {
            // An operator's (or the guard's own earlier) global pause is in force or on
            // its way, and only an operator lifts it: no second order.
            error!(
                reason = why,
                "failing closed: the global pause is already held"
            );
            let held_by = self
                .own_pause
                .clone()
                .unwrap_or_else(|| format!("fail-closed-{}", Timestamp::now().as_micros()));
            self.raise_degraded(
                &held_by,
                &format!("failing closed: {why}; the global pause is already held"),
            );
            return;
        }
        error!(reason = why, "failing closed: requesting a global pause");
        let wall = Timestamp::now();
        // The order's event time is the guard's own clock: the wall clock live, the
        // newest event time when the guard runs on event time (as replay does).
        let now = match self.config.clock {
            ClockMode::EventTime => self.engine.state().newest.unwrap_or(wall),
            _ => wall,
        };
        let command = crate::message::OpsCommand {
            command_id: format!(
                "guard-degraded-{}-{}",
                self.config.instance,
                wall.as_micros()
            ),
            action: crate::message::Action::Pause,
            scope: Scope::Global,
            operator: self.config.source.clone(),
            reason: Some(format!("guard_degraded: {why}")),
            ts: now,
        };
        let payload = serde_json::to_vec(&command).expect("ops commands serialise");
        let id = command.command_id.clone();
        self.own_pause = Some(id.clone());
        self.enqueue(
            OutMsg {
                id: id.clone(),
                topic: self.config.topics.ops_command.clone(),
                key: "global".into(),
                payload,
                headers: Vec::new(),
                timestamp_ms: None,
            },
            None,
        );
        // The guard may not read that order back soon (or at all, when its inputs are
        // what failed), so it also publishes the guard command the order will decide
        // when applied: a copy of the engine decides it now, with the same
        // deterministic id, so the later decision is a harmless duplicate.
        let mut ahead = self.engine.clone();
        let mut commands: Vec<Decision> = ahead
            .apply(&Input::Ops(command))
            .decisions
            .into_iter()
            .filter(|d| matches!(d, Decision::GuardCommand(_)))
            .collect();
        drop(ahead);
        super::cases::stamp(&mut commands);
        self.publish_all(commands, Instant::now());
        self.raise_degraded(&id, &format!("failing closed: {why}"));
        // Out at once when the inputs before it are already recorded; else its order
        // record is on its way now.
        self.release();
    }

    /// A failed delivery is itself an incident: say so on the risk stream (it goes out
    /// once the broker is back). The id is derived from the failed message, so repeated
    /// failures of one command raise one event.
    pub(super) fn raise_degraded(&mut self, failed_id: &str, reason: &str) {
        if failed_id.starts_with("evt-degraded-")
            || failed_id.starts_with("dlq:")
            || failed_id.starts_with("progress:")
        {
            return;
        }
        let digest = Sha256::digest(format!("guard_degraded\x1f{failed_id}").as_bytes());
        let id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let event = RiskEvent {
            event_id: format!("evt-degraded-{id}"),
            source: self.config.source.clone(),
            kind: "guard_degraded".into(),
            severity: Severity::Warning,
            scope: Scope::Global,
            action: Some(RiskAction::None),
            reason: Some(reason.to_owned()),
            evidence: Some(vec![failed_id.to_owned()]),
            ts: Timestamp::now(),
        };
        if self.outbox.contains(&event.event_id) {
            return;
        }
        let mut decisions = vec![Decision::RiskEvent(event)];
        let place = crate::replay::explain::Place::Clock {
            clock: Timestamp::now(),
        };
        self.keep_cases(place, None, &mut decisions);
        self.status.edit().metrics.record_decisions(&decisions);
        self.publish_all(decisions, Instant::now());
    }

    pub(super) fn commit_offsets(&self, offsets: &BTreeMap<Partition, i64>) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                debug!(error = %e, "offset commit (for lag monitoring) failed");
            }
        }
    }
}
