//! `guard explain`: the chain behind one decision of a replay, for the operator on
//! call: the decision, its trigger and every piece of evidence with `FILE:LINE`, the
//! scope before and after, what followed, and what to do.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use guard::decode::MAX_MESSAGE_BYTES;
use guard::engine::{Engine, EngineOptions};
use guard::replay::explain::{Explainer, NotFound};
use guard::replay::JsonlSource;

use super::{load_policy, Failure};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A `command_id` (a guard command) or an `event_id` (a risk event the guard
    /// raised), as `guard replay` writes them.
    id: String,
    /// Replay file (JSON Lines); repeat for several, read one after another; `-` is
    /// stdin. Give the files and policy the decision was replayed from.
    #[arg(long, required_unless_present = "http")]
    input: Vec<PathBuf>,
    /// Ask the running guard at this address instead (its `GET /explain/ID`): a
    /// decision it made since it started, with evidence from its input topics.
    #[arg(long, conflicts_with_all = ["input", "policy"], value_name = "URL")]
    http: Option<String>,
    /// Policy file (TOML, CONTRACT §3); without it, the runbook's default policy.
    #[arg(long, env = "GUARD_POLICY")]
    policy: Option<PathBuf>,
    /// Print one JSON object instead of the text (keys in `guard explain --help`).
    #[arg(long)]
    json: bool,
    /// The guard's own `source` name, as for `guard replay`.
    #[arg(long, default_value = "guard")]
    source: String,
    /// A line whose event is larger than this many bytes is invalid, as for
    /// `guard replay`.
    #[arg(long, default_value_t = MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
}

/// Replays the files and prints the explanation of the decision.
///
/// # Errors
/// A usage [`Failure`] for a bad policy or an unreadable file; a run [`Failure`] when
/// no decision has the id (with what the files hold and how to list it).
pub fn run(args: ExplainArgs) -> Result<(), Failure> {
    if let Some(base) = &args.http {
        return ask_the_guard(base, &args.id, args.json);
    }
    let (_, policy) = load_policy(args.policy.as_deref())?;
    let options = EngineOptions {
        source: args.source.clone(),
        ..EngineOptions::default()
    };
    // Open every input first: an unreadable file fails before anything is read.
    let mut sources = Vec::with_capacity(args.input.len());
    for path in &args.input {
        sources.push(JsonlSource::open(path).map_err(|e| Failure::usage(e.to_string()))?);
    }
    let mut explainer = Explainer::new(Engine::new(policy, options), args.id.clone())
        .with_max_message_bytes(args.max_message_bytes);
    'files: for mut source in sources {
        while let Some(line) = source
            .next_line()
            .map_err(|e| Failure::usage(e.to_string()))?
        {
            if !explainer.feed(&line) {
                break 'files;
            }
        }
    }
    let invalid = explainer.summary().invalid;
    if invalid > 0 {
        let lines = if invalid == 1 { "line" } else { "lines" };
        eprintln!(
            "guard: skipped {invalid} invalid {lines} as guard replay does (it lists them): no evidence there"
        );
    }
    let explanation = explainer
        .finish()
        .map_err(|missing| not_found(&missing, &args))?;
    let text = if args.json {
        let mut json = serde_json::to_string(&explanation)
            .map_err(|e| Failure::run(format!("cannot write JSON: {e}")))?;
        json.push('\n');
        json
    } else {
        explanation.to_string()
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::run(format!("cannot write the explanation: {e}")))
}

/// The unknown id, with how to list the ids the files do hold.
fn not_found(missing: &NotFound, args: &ExplainArgs) -> Failure {
    let mut replay = String::from("guard replay");
    if let Some(policy) = &args.policy {
        replay.push_str(&format!(" --policy {}", policy.display()));
    }
    for input in &args.input {
        replay.push_str(&format!(" --input {}", input.display()));
    }
    Failure::run(format!(
        "{missing}\n  list them: {replay} 2>/dev/null | grep -E '\"(command|event)_id\"'"
    ))
}

/// `guard explain ID --http URL`: prints what the running guard answers (its text,
/// or its JSON with `--json`).
fn ask_the_guard(base: &str, id: &str, json: bool) -> Result<(), Failure> {
    let format = if json { "json" } else { "text" };
    let id: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!("/explain/{id}?format={format}");
    // Looking evidence up in the input topics may take the guard a while.
    let (code, body) =
        super::http_client::get(base, &path, Duration::from_secs(60)).map_err(Failure::run)?;
    match code {
        200 => {
            let mut out = io::stdout().lock();
            let mut text = body;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Failure::run(format!("cannot write the explanation: {e}")))
        }
        _ => {
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let mut message = answer["error"].as_str().map_or_else(
                || format!("the guard answered {code}: {body}"),
                str::to_owned,
            );
            if let Some(nearest) = answer["nearest"].as_array().filter(|n| !n.is_empty()) {
                let ids: Vec<&str> = nearest.iter().filter_map(|n| n.as_str()).collect();
                message.push_str(&format!("\n  did you mean: {}", ids.join(" ")));
            }
            Err(Failure::run(message))
        }
    }
}
