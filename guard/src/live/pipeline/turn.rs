//! One loop turn: fetch, merge, apply in order, tick the clock, watch the inputs.

use std::fmt::Write as _;

use crate::live::merge;
use crate::replay::explain::Place;

use super::*;

impl<S: Store> LiveGuard<S> {
    /// One turn of the loop: take up to a batch of input, tick the clock, handle
    /// deliveries, checkpoint when due. Waits at most `wait` for the first message
    /// (not counted in the turn's time).
    pub fn turn(&mut self, wait: Duration) {
        self.sleep(wait);
        let started = Instant::now();
        self.fetch();
        let fetched = Instant::now();
        self.apply_held();
        let applied = Instant::now();
        self.watch_inputs();
        // While a recorded order is replayed, its own ticks move the clock.
        if self.config.clock == ClockMode::External
            && self.script.is_empty()
            && self.last_tick.elapsed() >= TICK_EVERY
        {
            self.last_tick = Instant::now();
            self.tick(Timestamp::now());
        }
        self.release();
        // Never with a timeout: rdkafka 0.39's timed `poll` spins until its deadline.
        // The turn slept in `fetch` until a report or a message came.
        self.producer.poll(Duration::ZERO);
        self.handle_deliveries();
        self.show_turn();
        if self.prepared.is_none() && !self.writer.busy() && self.writer.lineage_wanted() {
            // The changelog wants a new lineage (it gave one up, or its backoff is
            // over): the next checkpoint carries the whole dedup set, and comes whether
            // or not more input does.
            self.dirty = true;
            self.publish_full = true;
        }
        // Not while a decision waits for its order record: it goes out first.
        if self.dirty
            && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval
            && (!self.outbox.holds_unreleased() || self.checkpoint_overdue())
        {
            self.checkpoint();
        }
        if self.writer.busy() {
            // A store that hangs must not leave trading unguarded either.
            self.fail_closed_if_unpersisted("the store has not finished writing");
        }
        if self.last_lag.elapsed() >= LAG_EVERY {
            self.last_lag = Instant::now();
            self.update_lag();
        }
        // What the turn changed, shown to readers at once: they never take a lock the
        // turn takes.
        self.status.publish();
        let took = started.elapsed();
        if took >= SLOW_TURN {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            warn!(
                took_ms = ms(took),
                fetch_ms = ms(fetched - started),
                apply_ms = ms(applied - fetched),
                rest_ms = ms(applied.elapsed()),
                "a turn of the decision loop took long: decisions waited"
            );
        }
    }

    /// Shows what this turn applied in the status, under one lock: message counts and
    /// offsets (whenever inputs were applied, not only when this turn fetched: a
    /// message held in the merge or for a recorded order is applied in a later turn),
    /// and the `/state` view when a decision, an order or a checkpoint changed it — at
    /// most every [`VIEW_EVERY`], as it is built from the whole state.
    fn show_turn(&mut self) {
        let counts = std::mem::take(&mut self.turn_counts);
        if counts.state_changed && !self.view_stale {
            self.view_stale = true;
            self.status.set_view_stale(true);
        }
        // Built from the whole state: only when a reader asked for it (`/state`,
        // `/metrics`), at most every VIEW_EVERY.
        let view = (self.view_stale
            && self.last_view.elapsed() >= VIEW_EVERY
            && self.status.take_view_wanted())
        .then(|| {
            self.view_stale = false;
            self.last_view = Instant::now();
            state_text(&self.engine)
        });
        let moved = std::mem::take(&mut self.offsets_moved);
        if !moved && view.is_none() {
            return;
        }
        let mut status = self.status.edit();
        if moved {
            show_offsets(&self.offsets, &mut status.offsets);
        }
        for stream in Stream::ALL {
            let n = counts.messages[stream.rank()];
            if n > 0 {
                *status.metrics.messages.entry(stream.as_str()).or_default() += n;
            }
        }
        status.metrics.duplicates += counts.duplicates;
        status.metrics.other_env += counts.other_env;
        if let Some(view) = view {
            status.state = Arc::new(view);
            drop(status);
            // Shown before a waiting reader is told the view is fresh.
            self.status.publish();
            self.status.set_view_stale(false);
        }
    }

    /// Applies the held messages in merge order. A message waits while another input
    /// partition has nothing held but more on the broker (by the high watermark of
    /// its last fetch) for as long as [`merge::patience`] says, so that a restart that
    /// re-reads the same messages applies them in the same order.
    pub(super) fn apply_held(&mut self) {
        if !self.script.is_empty() && !self.apply_script() {
            return;
        }
        if self.merge.is_empty() {
            return;
        }
        // Partitions with more on the broker than fetched, and how long to wait for
        // each; fetching is done for this turn, so this cannot change while the held
        // messages are applied.
        let mut behind: Vec<(usize, Duration)> = (0..self.inputs.len())
            .filter_map(|i| self.fetch_behind(&self.inputs[i]).map(|p| (i, p)))
            .collect();
        while !self.merge.is_empty() {
            // The first partition holds a message, so it is never waited for.
            let waiting_for: Vec<(usize, Duration)> = behind
                .iter()
                .copied()
                .filter(|(i, _)| !self.merge.holds(i))
                .collect();
            if !waiting_for.is_empty() {
                let waited = self
                    .blocked_since
                    .get_or_insert_with(Instant::now)
                    .elapsed();
                if waiting_for.iter().any(|(_, patience)| waited < *patience) {
                    return;
                }
                for (i, patience) in &waiting_for {
                    let input = &mut self.inputs[*i];
                    if *patience >= merge::BACKLOG_PATIENCE {
                        warn!(topic = %input.topic, partition = input.partition, waited_ms = waited.as_millis() as u64, "the broker holds more of a partition than the guard could fetch in time; applying later-stamped messages of other partitions first");
                    } else {
                        debug!(topic = %input.topic, partition = input.partition, "stopped waiting for a partition's next message");
                    }
                    input.waived = Some(input.fetched_next);
                }
                behind.retain(|(i, _)| !waiting_for.iter().any(|(w, _)| w == i));
                self.status.edit().metrics.order_waits_expired += 1;
            }
            if self.awaits_progress() {
                let since = *self.blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < PROGRESS_WAIT {
                    return;
                }
                warn!("applying an order or a risk event without every worker's progress (a worker is down or slow)");
                self.status.edit().metrics.order_waits_expired += 1;
            }
            if self.in_grace() {
                return;
            }
            self.blocked_since = None;
            let Some((index, key, held)) = self.merge.pop_first() else {
                break;
            };
            self.apply_one(index, key, held);
        }
    }

    /// Whether the message the merge would apply next waits out `--order-grace`: it
    /// is stamped less than the grace before the wall clock, was fetched less than the
    /// grace ago (a producer's clock ahead of ours costs no more), and an input
    /// partition holds nothing, so an earlier-stamped message of it may be on the
    /// broker behind a watermark that does not show it yet (docs/LIVE.md "Order
    /// grace"). The turn sleeps a millisecond at most while messages are held.
    fn in_grace(&self) -> bool {
        let grace = self.config.order_grace;
        if grace.is_zero() {
            return false;
        }
        let Some((_, key, held)) = self.merge.first_entry() else {
            return false;
        };
        if key.timestamp_ms == i64::MIN || held.received.elapsed() >= grace {
            return false;
        }
        let idle = (0..self.inputs.len()).any(|i| self.inputs[i].assigned && !self.merge.holds(&i));
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        idle && merge::now_ms() < key.timestamp_ms.saturating_add(grace_ms)
    }

    /// Applies one message taken from the merge and recycles its buffers.
    pub(super) fn apply_one(&mut self, index: usize, key: MergeKey, held: Held) {
        tracing::trace!(topic = %self.inputs[index].topic, offset = key.offset, ts = key.timestamp_ms, "applying");
        self.on_message(
            index,
            (key.offset, key.timestamp_ms),
            &held.key,
            &held.payload,
            held.received,
        );
        self.recycle(held);
    }

    /// Keeps a held message's buffers for the next fetched one, up to a fetch batch of
    /// them: after a burst held in the merge, the rest are freed.
    pub(super) fn recycle(&mut self, held: Held) {
        if self.spare.len() < BATCH {
            self.spare.push(held);
        }
    }

    /// Applies the recorded order restored at start, as its messages arrive; `true`
    /// once it is done (then new input is merged and recorded again).
    pub(super) fn apply_script(&mut self) -> bool {
        while let Some(step) = self.script.front().cloned() {
            let Step::Run {
                topic,
                partition,
                end,
            } = step
            else {
                if let Step::Tick { at_micros } = step {
                    self.script.pop_front();
                    self.tick(Timestamp::from_micros(at_micros));
                }
                continue;
            };
            let index = self
                .inputs
                .iter()
                .position(|i| i.partition == partition && i.topic == topic);
            let done = self
                .offsets
                .get(&(topic.clone(), partition))
                .is_some_and(|next| *next >= end)
                || index
                    .and_then(|i| self.merge.head(&i))
                    .is_some_and(|k| k.offset >= end);
            if done {
                self.script.pop_front();
                continue;
            }
            let held = index.and_then(|i| self.merge.pop_from(&i).map(|head| (i, head)));
            let Some((index, (key, held))) = held else {
                let since = *self.script_blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < SCRIPT_PATIENCE {
                    return false;
                }
                error!(
                    topic,
                    partition,
                    end,
                    steps_left = self.script.len(),
                    "a message of the recorded input order did not arrive (gone from the topic?); merging the rest anew, so decisions may differ from those already published"
                );
                self.status.edit().metrics.order_script_abandoned += 1;
                self.script.clear();
                break;
            };
            self.script_blocked_since = None;
            self.apply_one(index, key, held);
        }
        info!("the recorded input order is replayed; merging new input");
        self.journal.resume_recording(self.offsets.clone());
        true
    }

    /// Ticks the wall clock into the engine; a tick that changed the state is recorded
    /// in the order journal.
    pub(super) fn tick(&mut self, now: Timestamp) {
        let before = self.engine.state().rules.maintenance.clone();
        let mut decisions = self.engine.tick(now);
        if !decisions.is_empty() || self.engine.state().rules.maintenance != before {
            self.journal.ticked(now.as_micros());
            self.mark_dirty();
        }
        self.keep_cases(Place::Clock { clock: now }, None, &mut decisions);
        self.forget_cases(now);
        if !decisions.is_empty() {
            // Counted as a message's are: an acknowledgement's timeout is decided here
            // on the wall clock, and GuardCommandUnacknowledged alerts on its count.
            self.status.edit().metrics.record_decisions(&decisions);
        }
        self.publish_all(decisions, Instant::now());
    }

    /// Aggregator: whether the next message is an operator's order stamped later than
    /// some worker's progress — a trip of that worker stamped earlier may still be on
    /// its way. (Risk events are not held: whichever of a risk event and a racing trip
    /// comes first pauses the scope, and the scope is paused either way.)
    pub(super) fn awaits_progress(&self) -> bool {
        if self.config.role != Role::Aggregator {
            return false;
        }
        let Some(index) = self.merge.first() else {
            return false;
        };
        if self.inputs[*index].topic != self.config.topics.ops_command {
            return false;
        }
        let Some(ts) = self.merge.first_key().map(|k| k.timestamp_ms) else {
            return false;
        };
        self.worker_partitions
            .iter()
            .any(|p| self.progress.get(p).is_none_or(|done| *done < ts))
    }

    /// Fails closed when the inputs have not been readable for `fail_closed_after`
    /// (no message fetched and no answer from their leaders), and says when they are
    /// back.
    pub(super) fn watch_inputs(&mut self) {
        let unreadable = self
            .input_watch
            .unreadable_for()
            .min(self.last_fetched.elapsed());
        if !self.inputs_lost && unreadable >= self.config.fail_closed_after {
            self.inputs_lost = true;
            self.fail_closed(&format!(
                "cannot read the input topics for {:.0} s",
                unreadable.as_secs_f64()
            ));
        } else if self.inputs_lost && unreadable < self.config.fail_closed_after {
            self.inputs_lost = false;
            self.status.edit().degraded = self.failed_closed;
            warn!("the input topics are readable again; the global pause stays until an operator resumes");
        }
    }

    /// How long to wait for `input` when it has nothing held, if the broker holds
    /// messages of it that the guard has not fetched (the high watermark cached from
    /// the last fetch; no request is made). A partition already waited for in vain is
    /// not waited for again until it brings a message: a watermark that lies costs one
    /// wait, not one per message.
    pub(super) fn fetch_behind(&self, input: &InputPartition) -> Option<Duration> {
        let max_wait = self.config.max_order_wait;
        if !input.assigned || input.waived == Some(input.fetched_next) {
            return None;
        }
        match self.cached_watermarks(&input.name, input.partition) {
            Some((low, high)) => {
                // The guard's own risk events next in line are not waited for.
                let next = merge::past_echoes(input.fetched_next.unwrap_or(low), &input.echoes);
                merge::patience(next, high, max_wait)
            }
            // No fetch answered yet: the broker may hold a backlog of it.
            None => (!max_wait.is_zero()).then_some(merge::BACKLOG_PATIENCE.max(max_wait)),
        }
    }

    /// The broker acknowledged one of the guard's own risk events at `offset` of
    /// `partition` of the risk_event input: noted, unless already fetched.
    pub(super) fn echoed(&mut self, partition: i32, offset: i64) {
        let topic = &self.config.topics.risk_event;
        if let Some(input) = self
            .inputs
            .iter_mut()
            .find(|i| i.partition == partition && i.topic == *topic)
        {
            if input.fetched_next.is_none_or(|next| offset >= next) {
                input.echoes.insert(offset);
            }
        }
    }

    pub(super) fn cached_watermarks(&self, topic: &CString, partition: i32) -> Option<(i64, i64)> {
        let (mut low, mut high) = (0i64, 0i64);
        // The cached watermark from the last fetch: no request, no blocking.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some((low, high))
    }

    pub(super) fn update_lag(&self) {
        let mut lag = BTreeMap::new();
        for ((topic, partition), next) in &self.offsets {
            let Ok(name) = CString::new(topic.as_str()) else {
                continue;
            };
            if let Some((_, high)) = self.cached_watermarks(&name, *partition) {
                lag.insert(format!("{topic}/{partition}"), (high - next).max(0));
            }
        }
        self.status.edit().metrics.lag = lag;
    }
}

/// Shows the next offset of each partition as `topic/partition` in `shown`: in place
/// while the partitions are the ones shown (a turn formats no name), anew when one
/// was added.
fn show_offsets(offsets: &BTreeMap<Partition, i64>, shown: &mut BTreeMap<String, i64>) {
    let mut label = String::new();
    let mut same = shown.len() == offsets.len();
    for ((topic, partition), next) in offsets {
        if !same {
            break;
        }
        label.clear();
        let _ = write!(label, "{topic}/{partition}");
        match shown.get_mut(&label) {
            Some(at) => *at = *next,
            None => same = false,
        }
    }
    if !same {
        *shown = offsets
            .iter()
            .map(|((t, p), o)| (format!("{t}/{p}"), *o))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_shown_in_place_and_anew_when_a_partition_is_added() {
        let mut offsets: BTreeMap<Partition, i64> = [
            (("exec_result".into(), 0), 5),
            (("exec_result".into(), 10), 7),
        ]
        .into();
        let mut shown = BTreeMap::new();
        show_offsets(&offsets, &mut shown);
        let expected: BTreeMap<String, i64> =
            [("exec_result/0".into(), 5), ("exec_result/10".into(), 7)].into();
        assert_eq!(shown, expected);
        offsets.insert(("exec_result".into(), 10), 9);
        show_offsets(&offsets, &mut shown);
        assert_eq!(shown["exec_result/10"], 9);
        offsets.insert(("ops_command".into(), 0), 1);
        show_offsets(&offsets, &mut shown);
        assert_eq!(shown.len(), 3);
        assert_eq!(shown["ops_command/0"], 1);
        // A partition shown that the state no longer has: shown anew.
        shown.insert("gone/0".into(), 3);
        shown.remove("ops_command/0");
        show_offsets(&offsets, &mut shown);
        assert!(!shown.contains_key("gone/0") && shown["ops_command/0"] == 1);
    }
}
