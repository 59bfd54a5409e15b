//! Finds the evidence of a kept decision ([`super::casebook`]) in the input topics:
//! the guard keeps the ids a decision rests on, the broker keeps the messages.
//!
//! Runs on an HTTP worker thread with its own consumer (assigned, never in a group,
//! nothing committed), so neither the decision thread nor the guard's own clients
//! wait for it. Each input partition is read backwards in chunks from where the
//! decision was made (the step's own partition first), until a chunk reaches Kafka
//! timestamps older than the decision's time less the state's horizon (and five
//! minutes for the producers' clocks): evidence is recent, so it is usually found in
//! the first chunk. A message is decoded only when its bytes hold an id still looked for, and
//! taken only when the decoded message's own id is that id.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::decode::Admission;
use crate::message::Stream;
use crate::replay::explain::{input_id, input_source, Case, Place, Source};
use crate::time::Span;

use super::config::LiveConfig;

/// Messages read per chunk.
const CHUNK: i64 = 5_000;
/// Kafka timestamps are the producers' clocks: look a little further back than the
/// horizon from the decision's event time.
const CLOCK_SLACK: Span = Span::from_secs(300);

/// Where and how evidence is looked up.
#[derive(Clone)]
pub struct EvidenceLookup {
    client: ClientConfig,
    /// The input topics with their streams, in the order they are searched.
    topics: Vec<(String, Stream)>,
    admission: Admission,
    horizon: Span,
    /// How long one explanation may search.
    pub budget: Duration,
}

impl EvidenceLookup {
    /// A lookup on the guard's brokers and input topics, down to `horizon` before a
    /// decision.
    pub fn new(config: &LiveConfig, horizon: Span) -> EvidenceLookup {
        let mut client = super::kafka::consumer(config);
        client
            .set("group.id", format!("{}-explain", config.group_id))
            .set("enable.partition.eof", "false");
        let topics = [Stream::ExecResult, Stream::RiskEvent, Stream::OpsCommand]
            .into_iter()
            .map(|s| (config.topics.of(s).to_owned(), s))
            .collect();
        EvidenceLookup {
            client,
            topics,
            admission: config.admission(),
            horizon,
            budget: Duration::from_secs(20),
        }
    }

    /// Looks up every id of `case` still unresolved; what is not found is
    /// [`Source::Unfound`], saying where it was looked for.
    pub fn complete(&self, case: &mut Case) {
        if case.unresolved.is_empty() {
            return;
        }
        let since = case.event_time.minus(self.horizon).minus(CLOCK_SLACK);
        let outcome = self.search(case, since.as_micros() / 1000);
        let names: Vec<&str> = self.topics.iter().map(|(t, _)| t.as_str()).collect();
        let searched = match outcome {
            Ok(()) => format!(
                "{} from {since} (the decision's time less the state's horizon) up to the decision",
                names.join(", ")
            ),
            Err(why) => format!("{} ({why})", names.join(", ")),
        };
        for id in case.unresolved.clone() {
            case.resolve(
                &id,
                &Source::Unfound {
                    searched: searched.clone(),
                },
            );
        }
    }

    /// Searches the partitions until every id is found; why it stopped early.
    fn search(&self, case: &mut Case, since_ms: i64) -> Result<(), String> {
        let started = Instant::now();
        let consumer: BaseConsumer = self
            .client
            .create()
            .map_err(|e| format!("cannot create a consumer: {e}"))?;
        for (topic, partition, end) in self.partitions(&consumer, case)? {
            if case.unresolved.is_empty() {
                break;
            }
            let (start, _) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                .map_err(|e| format!("cannot read the start of {topic}/{partition}: {e}"))?;
            let mut high = end;
            while high > start && !case.unresolved.is_empty() {
                let low = (high - CHUNK).max(start);
                let stream = self.stream_of(&topic);
                let oldest =
                    self.read(&consumer, (&topic, partition, stream), (low, high), case)?;
                high = low;
                if oldest < since_ms {
                    break;
                }
                if started.elapsed() > self.budget {
                    return Err(format!("gave up after {} s", self.budget.as_secs()));
                }
            }
        }
        Ok(())
    }

    fn stream_of(&self, topic: &str) -> Stream {
        self.topics
            .iter()
            .find(|(t, _)| t == topic)
            .map_or(Stream::ExecResult, |(_, s)| *s)
    }

    /// Every input partition with the offset to read back from: the step's own first,
    /// from its message; the others from their end.
    fn partitions(
        &self,
        consumer: &BaseConsumer,
        case: &Case,
    ) -> Result<Vec<(String, i32, i64)>, String> {
        let step = match &case.explanation.step.place {
            Place::Topic {
                topic,
                partition,
                offset,
            } => Some((topic.clone(), *partition, *offset)),
            _ => None,
        };
        let mut found = Vec::new();
        found.extend(step.clone());
        let timeout = Duration::from_secs(5);
        for (topic, _) in &self.topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| format!("cannot read the metadata of {topic}: {e}"))?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    if step
                        .as_ref()
                        .is_some_and(|(st, sp, _)| st == topic && *sp == p.id())
                    {
                        continue;
                    }
                    let (_, high) = consumer
                        .fetch_watermarks(topic, p.id(), timeout)
                        .map_err(|e| format!("cannot read the end of {topic}/{}: {e}", p.id()))?;
                    found.push((topic.clone(), p.id(), high));
                }
            }
        }
        Ok(found)
    }

    /// Reads `[low, high)` of one partition, resolving the ids its messages carry;
    /// the oldest Kafka timestamp it read (milliseconds).
    fn read(
        &self,
        consumer: &BaseConsumer,
        (topic, partition, stream): (&str, i32, Stream),
        (low, high): (i64, i64),
        case: &mut Case,
    ) -> Result<i64, String> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(low))
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next = low;
        let mut oldest = i64::MAX;
        while next < high {
            if Instant::now() > deadline {
                return Err(format!(
                    "{topic}/{partition} stopped answering at offset {next}"
                ));
            }
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let message = message.map_err(|e| format!("reading {topic}/{partition}: {e}"))?;
            next = message.offset() + 1;
            if message.offset() >= high {
                break;
            }
            if let Some(ms) = message.timestamp().to_millis() {
                oldest = oldest.min(ms);
            }
            let Some(payload) = message.payload() else {
                continue;
            };
            let Some(id) = case
                .unresolved
                .iter()
                .find(|id| memchr::memmem::find(payload, id.as_bytes()).is_some())
                .cloned()
            else {
                continue;
            };
            let Ok(input) = self.admission.payload(stream, payload, None) else {
                continue;
            };
            if input_id(&input) == Some(id.as_str()) {
                let place = Place::Topic {
                    topic: topic.to_owned(),
                    partition,
                    offset: message.offset(),
                };
                let source = input_source(&case.explanation.decision, place, &input);
                case.resolve(&id, &source);
            }
        }
        Ok(oldest)
    }
}
