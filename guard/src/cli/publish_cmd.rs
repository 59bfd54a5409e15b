//! `guard publish`: the inverse of `guard record` — puts the messages of a replay file
//! on the input topics, keyed as the Do layer and Noctus key them, at a chosen rate.
//! For staging drills, the compose demo, and replaying a recorded day into a test
//! cluster.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use guard::decode::decode_envelope;
use guard::live::Topics;
use guard::message::{Input, Scope, Stream};
use guard::time::{Span, Timestamp};

use super::delivery::Checked;
use super::Failure;

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "GUARD_BROKERS")]
    brokers: String,
    /// Replay file (JSON Lines envelopes, CONTRACT §4).
    #[arg(long)]
    input: std::path::PathBuf,
    /// Messages per second; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Send the file again and again (until stopped), each round with fresh ids
    /// (`~rN` appended) and event times moved past the previous round's, so the guard
    /// sees new messages rather than duplicates.
    #[arg(long)]
    repeat: bool,
    /// Prefix of the topic names (as given to `guard topics`).
    #[arg(long, default_value = "")]
    prefix: String,
    /// librdkafka setting KEY=VALUE (secrets: GUARD_KAFKA_<KEY> in the environment).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
}

/// A valid line of the file: its stream, event JSON and Kafka key.
struct Entry {
    stream: Stream,
    event: Value,
    key: String,
}

fn key_of(input: &Input) -> String {
    let scope_key = |scope: &Scope| match scope {
        Scope::Global => "global".to_owned(),
        Scope::Strategy { strategy_id } => strategy_id.clone(),
    };
    match input {
        Input::Fill(f) => f.strategy_id.clone(),
        Input::Release(r) => r.strategy_id.clone(),
        Input::RiskEvent(e) => scope_key(&e.scope),
        Input::Ops(o) => scope_key(&o.scope),
        // CONTRACT §1: acknowledgements are keyed by command id.
        Input::Ack(a) => a.command_id.clone(),
    }
}

fn read(path: &std::path::Path) -> Result<(Vec<Entry>, Span), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let mut entries = Vec::new();
    let (mut first, mut last) = (None::<Timestamp>, None::<Timestamp>);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let input = match decode_envelope(line.as_bytes()) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("{}:{}: skipped: {e}", path.display(), n + 1);
                continue;
            }
        };
        let ts = input.event_time();
        first = Some(first.map_or(ts, |f| f.min(ts)));
        last = Some(last.map_or(ts, |l| l.max(ts)));
        let envelope: Value =
            serde_json::from_str(line).map_err(|e| Failure::run(e.to_string()))?;
        entries.push(Entry {
            stream: input.stream(),
            event: envelope["event"].clone(),
            key: key_of(&input),
        });
    }
    if entries.is_empty() {
        return Err(Failure::usage(format!(
            "{} holds no valid message",
            path.display()
        )));
    }
    // Each round moves event times past the previous one, with an hour to spare.
    let span = match (first, last) {
        (Some(f), Some(l)) => Span::from_micros(l.since(f).as_micros() + 3_600_000_000),
        _ => Span::from_secs(3_600),
    };
    Ok((entries, span))
}

/// The event of round `round`: ids suffixed, times shifted.
fn for_round(event: &Value, round: u64, shift: Span) -> Value {
    if round == 0 {
        return event.clone();
    }
    let mut event = event.clone();
    if let Value::Object(fields) = &mut event {
        for id in ["fill_id", "event_id", "command_id"] {
            if let Some(Value::String(s)) = fields.get_mut(id) {
                s.push_str(&format!("~r{round}"));
            }
        }
        for time in ["ts", "adopted_at"] {
            if let Some(Value::String(s)) = fields.get_mut(time) {
                if let Ok(t) = Timestamp::parse(s) {
                    let moved = Span::from_micros(shift.as_micros() * round as i64);
                    *s = t.plus(moved).to_string();
                }
            }
        }
    }
    event
}

pub fn run(args: PublishArgs) -> Result<(), Failure> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(Failure::usage("--rate must be a number >= 0"));
    }
    let (entries, shift) = read(&args.input)?;
    let config = super::client_config(&args.brokers, &args.kafka)?;
    let mut producer = Checked::new(&config)?;
    let topics = Topics::default();
    let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut round = 0u64;
    loop {
        for entry in &entries {
            if let Some(gap) = gap {
                let due = started + gap.mul_f64(sent as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let topic = format!("{}{}", args.prefix, topics.of(entry.stream));
            let payload = serde_json::to_vec(&for_round(&entry.event, round, shift))
                .map_err(|e| Failure::run(e.to_string()))?;
            producer.send(&topic, &entry.key, &payload)?;
            sent += 1;
        }
        producer.finish(Duration::from_secs(30))?;
        eprintln!(
            "round {round}: {} messages published ({sent} in all, {:.1} s)",
            entries.len(),
            started.elapsed().as_secs_f64()
        );
        if !args.repeat {
            return Ok(());
        }
        round += 1;
    }
}
