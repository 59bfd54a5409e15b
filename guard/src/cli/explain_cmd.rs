//! `guard explain`: the chain behind one decision of a replay, for the operator on
//! call: the decision, its trigger and every piece of evidence with `FILE:LINE`, the
//! scope before and after, what followed, and what to do.

use std::io::{self, Write};
use std::path::PathBuf;

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
    #[arg(long, required = true)]
    input: Vec<PathBuf>,
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
