//! Starting: restoring the state, reading the order journal, assigning the inputs.

use super::*;

impl<S: Store> LiveGuard<S> {
    /// Restores the state from `store`, connects, re-publishes the outbox and assigns
    /// every input partition at its stored offset (the beginning when none is stored).
    ///
    /// # Errors
    /// [`LiveError`] when the store, the snapshot or the broker fails.
    pub fn start(config: LiveConfig, store: S, status: StatusHandle) -> Result<Self, LiveError> {
        Self::start_from(config, store, status, None, None)
    }

    /// [`LiveGuard::start`], restoring from the changelog's snapshot instead of the
    /// local store when the changelog's reaches further into the inputs (a standby
    /// taking over, or a guard on a new machine). The restored state is written to
    /// the local store at once, seen ids included. With `changelog`, the store writer
    /// publishes every checkpoint it writes to the changelog.
    ///
    /// # Errors
    /// [`LiveError`] when the store, the snapshot or the broker fails.
    pub fn start_from(
        config: LiveConfig,
        mut store: S,
        status: StatusHandle,
        snapshot: Option<&Published>,
        mut changelog: Option<ChangelogWriter>,
    ) -> Result<Self, LiveError> {
        let restored = restore(&config, &mut store, snapshot).map(Restored::journaling)?;
        let publishing = changelog.is_some();
        let (journal, script, trim) = Self::recover_order(&config, &restored, changelog.as_mut())?;
        // The guard's own risk events come back on its risk_event input.
        let deliveries = DeliveryContext::echoing(&config.topics.risk_event);
        let producer: BaseProducer<DeliveryContext> =
            kafka::producer(&config).create_with_context(deliveries.clone())?;
        let consumer: BaseConsumer = kafka::input_consumer(&config).create()?;
        let fetch_queue = FetchQueue::new(&consumer);
        let wakeup = Wakeup::new(consumer.client(), producer.client(), Some(&fetch_queue))?;
        let input_watch = InputWatch::start(&config);
        let exports = exports(&config, &status);
        let mut guard = LiveGuard {
            case_scopes: restored.engine.state().scopes.clone(), // before `engine` moves
            trim,
            config,
            engine: restored.engine,
            writer: Writer::start(store, changelog, exports),
            wakeup,
            fetch_queue,
            fetched: Vec::new(),
            consumer: std::sync::Arc::new(consumer),
            producer,
            deliveries,
            outbox: Outbox::restore(restored.outbox),
            journal,
            script,
            script_blocked_since: None,
            record_resend: Vec::new(),
            placed: order_log::Placed::new(restored.journal_from),
            prepared: None,
            offsets: restored.offsets,
            pending_seen: SeenBlocks::default(),
            spent_input: None,
            latest_stamp: None,
            engine_bytes: 0,
            publish_full: publishing,
            seq: restored.seq,
            // A new lineage on the changelog starts with a checkpoint at once.
            dirty: publishing,
            offsets_moved: false,
            turn_counts: TurnCounts::default(),
            view_stale: false,
            last_view: Instant::now(),
            latency: Latency::default(),
            last_checkpoint: Instant::now(),
            last_tick: Instant::now() - TICK_EVERY,
            last_lag: Instant::now(),
            status,
            decisions: Vec::new(),
            last_persisted: Instant::now(),
            failed_closed: false,
            inputs_lost: false,
            own_pause: None,
            input_watch,
            last_fetched: Instant::now(),
            fetched_wall: Timestamp::now(),
            merge: Merge::default(),
            spare: Vec::new(),
            progress: BTreeMap::new(),
            worker_partitions: Vec::new(),
            inputs: Vec::new(),
            blocked_since: None,
        };
        guard.republish_outbox();
        guard.assign()?;
        guard.show_active();
        Ok(guard)
    }

    /// Publishes again, in decision order, what the restored outbox holds.
    fn republish_outbox(&mut self) {
        if !self.outbox.is_empty() {
            info!(
                count = self.outbox.len(),
                "re-publishing the outbox in decision order"
            );
        }
        self.release();
    }

    /// Tells the status (and so `/readyz` and `/state`) that this guard is the active one.
    fn show_active(&self) {
        let mut status = self.status.edit();
        status.ready = true;
        status.publishing = true;
        status.role = "active";
        status.state = Arc::new(state_text(&self.engine));
        status.offsets = self
            .offsets
            .iter()
            .map(|((t, p), o)| (format!("{t}/{p}"), *o))
            .collect();
        drop(status);
        self.status.publish();
    }

    /// Reads the order journal of this guard's lineage and returns the journal to go
    /// on with and the recorded order to replay first from `offsets` (empty when
    /// nothing was decided after the restored snapshot, or on a rebuild from a time).
    /// The journal is read from where the restored checkpoint says its records after
    /// it begin on the state topic (`journal_from`), or from the topic's start. The
    /// changelog's writer learns the new life's keys (it deletes them when no cut
    /// needs them); without one, the guard deletes them itself (the trimmer returned).
    fn recover_order(
        config: &LiveConfig,
        restored: &Restored,
        changelog: Option<&mut ChangelogWriter>,
    ) -> Result<(Journal, VecDeque<Step>, Option<order_log::Trim>), LiveError> {
        let (offsets, journal_from) = (&restored.offsets, restored.journal_from);
        let lineage = order_log::lineage(config);
        let life = format!("{}-{}", config.instance, Timestamp::now().as_micros());
        let mut journal = Journal::new(&lineage, &life, offsets.clone());
        // The records before the checkpoint it carried (a guard without a changelog;
        // a changelog's reader reads them all), those after it read.
        let carried = match changelog {
            Some(_) => Vec::new(),
            None => restored.order_runs.clone(),
        };
        // A rebuild from a time has no order to follow.
        let (records, earlier) = if config.rebuild_from.is_some() && offsets.is_empty() {
            (Vec::new(), order_log::Earlier::default())
        } else {
            order_log::recover(config, &lineage, journal_from, carried)?
        };
        let trim = match changelog {
            Some(changelog) => {
                changelog.journal_life(journal.key_prefix());
                None
            }
            None => {
                // The cuts before the checkpoint, and itself.
                let mut trim = order_log::Trim::new(config.policy.state.horizon, earlier);
                trim.seed_cuts(restored.order_cuts.iter().copied().chain(restored.cut()));
                if let Some(own) = journal.key_prefix().strip_prefix(&format!("{lineage}/")) {
                    trim.own_life(own.to_owned());
                }
                Some(trim)
            }
        };
        let script: VecDeque<Step> = order_log::script(&records, offsets).into();
        if !script.is_empty() {
            info!(
                steps = script.len(),
                "replaying the recorded input order before merging anything new"
            );
            journal.pause_recording();
        }
        Ok((journal, script, trim))
    }

    /// The topics this guard reads, with the partitions it owns of each (`None`: all).
    /// Gateways' acknowledgements are read where commands are decided, and only while
    /// the policy awaits some (`[acks] gateways`).
    pub(super) fn reads(&self) -> Vec<(String, Option<Vec<i32>>)> {
        let t = &self.config.topics;
        let acks = (!self.config.policy.rules.acks.gateways.is_empty())
            .then(|| (t.guard_ack.clone(), None));
        match self.config.role {
            Role::Whole => t
                .inputs()
                .into_iter()
                .map(|topic| (topic, None))
                .chain(acks)
                .collect(),
            Role::Worker => vec![
                (t.exec_result.clone(), Some(self.config.owned.clone())),
                (t.strategy_release.clone(), Some(self.config.owned.clone())),
                (t.ops_command.clone(), None),
            ],
            Role::Aggregator => [
                (t.facts.clone(), None),
                (t.ops_command.clone(), None),
                (t.risk_event.clone(), None),
            ]
            .into_iter()
            .chain(acks)
            .collect(),
        }
    }

    /// Where a message of `topic` sorts among streams of equal timestamp (facts stand
    /// for the fills that tripped); `None` for a topic the guard does not read.
    pub(super) fn rank_of(&self, topic: &str) -> Option<usize> {
        if topic == self.config.topics.facts {
            return Some(Stream::ExecResult.rank());
        }
        self.config.topics.stream_of(topic).map(Stream::rank)
    }

    /// An input partition to track, assigned to be fetched from `offset` (a raw
    /// offset: negative for a logical one).
    pub(super) fn input_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: Option<i64>,
    ) -> InputPartition {
        InputPartition {
            topic: topic.to_owned(),
            name: CString::new(topic).unwrap_or_default(),
            partition,
            rank: self.rank_of(topic),
            stream: self.config.topics.stream_of(topic),
            facts: topic == self.config.topics.facts,
            assigned: true,
            fetched_next: offset.filter(|o| *o >= 0),
            waived: None,
            echoes: BTreeSet::new(),
        }
    }

    /// Assigns every input partition this guard reads at its stored offset (from the
    /// rebuild time, or the beginning, when none is stored) and starts tracking them.
    pub(super) fn assign(&mut self) -> Result<(), LiveError> {
        if self.config.role != Role::Worker {
            // Every command is written there too: without it, none could go out.
            self.partitions_of(&self.config.topics.pause_state, None)?;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, owned) in self.reads() {
            for partition in self.partitions_of(&topic, owned.as_deref())? {
                let offset = match self.offsets.get(&(topic.clone(), partition)) {
                    Some(next) => Offset::Offset(*next),
                    // No state for this partition: replay the topic, from the rebuild
                    // time when one was given, else from the start of its retention.
                    None => match self.config.rebuild_from {
                        Some(from) => Offset::Offset(from.as_micros().div_euclid(1_000)),
                        None => Offset::Beginning,
                    },
                };
                tpl.add_partition_offset(&topic, partition, offset)?;
            }
        }
        if self.config.rebuild_from.is_some() && self.offsets.is_empty() {
            tpl = self.resolve_rebuild_times(tpl)?;
        }
        info!(
            partitions = tpl.count(),
            "assigned input partitions at the stored offsets"
        );
        // Before the assignment: a partition that starts fetching unrouted sends its
        // first messages to the consumer's own queue.
        for element in tpl.elements() {
            let routed = CString::new(element.topic())
                .is_ok_and(|name| self.fetch_queue.route(&name, element.partition()));
            if !routed {
                warn!(topic = element.topic(), partition = element.partition(), "an input partition is read one message at a time: it could not be routed to the batch queue");
            }
        }
        self.consumer.assign(&tpl)?;
        if self.config.role == Role::Aggregator {
            let topic = self.config.topics.exec_result.clone();
            self.worker_partitions = match self.partitions_of(&topic, None) {
                Err(LiveError::MissingTopic(_)) => Vec::new(),
                other => other?,
            };
        }
        self.track_inputs(&tpl);
        Ok(())
    }

    /// The partitions of `topic` (those in `owned` only, when given).
    ///
    /// # Errors
    /// [`LiveError::MissingTopic`] when the topic has none of them.
    fn partitions_of(&self, topic: &str, owned: Option<&[i32]>) -> Result<Vec<i32>, LiveError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .filter(|p| owned.is_none_or(|o| o.contains(p)))
            .collect();
        if partitions.is_empty() {
            return Err(LiveError::MissingTopic(topic.to_owned()));
        }
        Ok(partitions)
    }

    /// A rebuild's offsets are timestamps (ms): resolves them to offsets and says how
    /// far back each partition is replayed.
    fn resolve_rebuild_times(
        &self,
        tpl: TopicPartitionList,
    ) -> Result<TopicPartitionList, LiveError> {
        let tpl = self.consumer.offsets_for_times(tpl, METADATA_TIMEOUT)?;
        for e in tpl.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), METADATA_TIMEOUT)
                .unwrap_or((0, 0));
            let start = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(high);
            info!(
                topic = e.topic(),
                partition = e.partition(),
                from_offset = start,
                messages_back = high - start,
                retained_from = low,
                "rebuilding the state by replaying the input"
            );
        }
        Ok(tpl)
    }

    /// Starts tracking the assigned partitions: how far each is fetched (for the
    /// merge's waits) and whether it stays readable (for failing closed).
    ///
    /// The merge names a partition by its index here: they are sorted by topic and
    /// partition, so that of two heads with equal merge keys the one of the first
    /// partition by name comes first, whatever order the assignment listed them in.
    fn track_inputs(&mut self, tpl: &TopicPartitionList) {
        self.merge.clear();
        self.blocked_since = None;
        self.inputs = tpl
            .elements()
            .iter()
            .map(|e| self.input_partition(e.topic(), e.partition(), e.offset().to_raw()))
            .collect();
        self.inputs
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        self.input_watch.watch(
            self.inputs
                .iter()
                .map(|i| (i.topic.clone(), i.partition))
                .collect(),
        );
    }
}

/// The state a guard starts from: the engine, the next offset of each input partition
/// it covers, the outbox and the checkpoint number.
struct Restored {
    engine: Engine,
    offsets: BTreeMap<Partition, i64>,
    outbox: Vec<OutMsg>,
    seq: u64,
    /// Where the order records after it begin on the state topic (`None`: unknown).
    journal_from: Option<i64>,
    /// The order records before it not deleted yet (a guard without a changelog).
    order_runs: Vec<order_log::Run>,
    /// The order-record trimmer's cuts before it (a guard without a changelog).
    order_cuts: Vec<[i64; 2]>,
}

impl Restored {
    /// It as a cut of the order-record trimmer: its forgetting floor and where its
    /// records begin, when both are known.
    fn cut(&self) -> Option<[i64; 2]> {
        Some([self.engine.seen_forgotten_before()?, self.journal_from?])
    }

    /// The same, its engine journaling the dedup ids it adds (for the checkpoints).
    fn journaling(mut self) -> Self {
        self.engine.enable_seen_journal();
        self
    }
}

/// The channel `GET /snapshot` asks the store writer through. Only a whole guard has
/// one store to back up (scale-out: one per partition).
fn exports(
    config: &LiveConfig,
    status: &StatusHandle,
) -> Option<std::sync::mpsc::Receiver<crate::live::status::ExportReply>> {
    (config.role == Role::Whole).then(|| {
        let (ask, answer) = std::sync::mpsc::channel();
        status.edit().exports = Some(ask);
        answer
    })
}

/// Restores from the changelog's snapshot when it reaches further into the inputs
/// than the local store (writing it to the local store at once, seen ids included),
/// else from the local store, else from nothing.
fn restore<S: Store>(
    config: &LiveConfig,
    store: &mut S,
    changelog: Option<&Published>,
) -> Result<Restored, LiveError> {
    let options = EngineOptions {
        source: config.source.clone(),
        clock: config.clock,
        role: config.role,
    };
    let local = store.load()?;
    let local_progress = local
        .as_ref()
        .map_or(-1, |r| r.checkpoint.offsets.values().sum::<i64>());
    if let Some(published) = changelog.filter(|p| p.progress() > local_progress) {
        let seq = local.as_ref().map_or(0, |r| r.checkpoint.seq) + 1;
        return restore_published(config, options, store, published, seq, local_progress);
    }
    let Some(restored) = local else {
        info!("no local state: starting from the beginning of the input topics");
        return Ok(Restored {
            engine: Engine::new(config.policy.clone(), options),
            offsets: BTreeMap::new(),
            outbox: Vec::new(),
            seq: 0,
            journal_from: None,
            order_runs: Vec::new(),
            order_cuts: Vec::new(),
        });
    };
    let (mut engine, version) =
        Engine::restore(config.policy.clone(), options, &restored.checkpoint.engine)?;
    engine.restore_seen(restored.seen);
    if version != engine.policy_version() {
        warn!(stored = %version, now = %engine.policy_version(), "policy changed since the last checkpoint");
    }
    info!(
        seq = restored.checkpoint.seq,
        partitions = restored.checkpoint.offsets.len(),
        outbox = restored.checkpoint.outbox.len(),
        "state restored from the local store"
    );
    Ok(Restored {
        engine,
        offsets: restored.checkpoint.offsets,
        outbox: restored.checkpoint.outbox,
        seq: restored.checkpoint.seq,
        journal_from: restored.checkpoint.journal_from,
        order_runs: restored.checkpoint.order_runs,
        order_cuts: restored.checkpoint.order_cuts,
    })
}

/// Restores the changelog's snapshot and writes it to the local store as checkpoint
/// `seq`, so that a crash right after still starts from it.
fn restore_published<S: Store>(
    config: &LiveConfig,
    options: EngineOptions,
    store: &mut S,
    published: &Published,
    seq: u64,
    local_progress: i64,
) -> Result<Restored, LiveError> {
    let (mut engine, _) =
        Engine::restore(config.policy.clone(), options, &published.checkpoint.engine)?;
    engine.restore_seen(published.seen.iter());
    info!(from = %published.instance, progress = published.progress(), local = local_progress, seen = published.seen.len(), "state restored from the changelog");
    let checkpoint = Checkpoint {
        seq,
        ..published.checkpoint.clone()
    };
    store.save(&checkpoint, &published.seen)?;
    Ok(Restored {
        engine,
        offsets: checkpoint.offsets,
        outbox: checkpoint.outbox,
        seq,
        journal_from: checkpoint.journal_from,
        order_runs: checkpoint.order_runs,
        order_cuts: checkpoint.order_cuts,
    })
}
