//! `guard replay`: the engine over recorded streams (CONTRACT §4), with a summary,
//! an optional report and parameter sweeps.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use guard::decode::{Admission, MAX_MESSAGE_BYTES};
use guard::engine::{Engine, EngineOptions};
use guard::replay::{
    parse_sweep, JsonlSink, JsonlSource, Replay, ReplayError, ReplayFigures, Summary, Sweep,
    SweepAxis, SweepFigures,
};

use super::{load_policy, Failure};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Policy file (TOML, CONTRACT §3); without it, the runbook's default policy.
    #[arg(long, env = "GUARD_POLICY")]
    policy: Option<PathBuf>,
    /// Replay file (JSON Lines); repeat for several, read one after another; `-` is stdin.
    #[arg(long, required = true)]
    input: Vec<PathBuf>,
    /// Where to write decisions (JSON Lines); standard output when left out.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Stop at the first invalid line (exit 1) instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Also print a human report on stderr: pauses per rule and scope, trips per
    /// strategy, time paused, first and last trip.
    #[arg(long)]
    report: bool,
    /// Backtest: KEY=V1,V2,… over a policy key; repeat to combine. Every combination
    /// runs over the same input in one pass; one table row per variant is printed
    /// (to --output or stdout) instead of the decisions.
    #[arg(long, value_name = "KEY=V1,V2,…", value_parser = parse_sweep)]
    sweep: Vec<SweepAxis>,
    /// Also write the run's figures as one JSON object (schemas/replay_summary.schema.json)
    /// for a KPI job, once the run completes; `-` is standard output, allowed only when
    /// --output takes the decisions (or the sweep table) elsewhere. With --sweep:
    /// {"sweep": [...]}, one entry per variant.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Write the engine's final state (snapshot JSON) to this file.
    #[arg(long, value_name = "FILE")]
    state_out: Option<PathBuf>,
    /// The guard's own `source` name: risk events carrying it are ignored.
    #[arg(long, default_value = "guard")]
    source: String,
    /// A line whose event (its JSON text) is larger than this many bytes is invalid,
    /// as `guard run --max-message-bytes` sends such a message to the dead-letter topic.
    #[arg(long, default_value_t = MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
}

/// Prints progress on stderr, at most five times a second, only on a terminal.
struct Progress {
    enabled: bool,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            enabled: io::stderr().is_terminal(),
            last: Instant::now(),
            shown: false,
        }
    }

    fn tick(&mut self, lines: u64, source: &JsonlSource, started: Instant) {
        if !self.enabled || lines % 4096 != 0 || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let (read, size) = source.progress();
        let pct = size
            .filter(|s| *s > 0)
            .map(|s| format!(" {:>3.0}%", read as f64 * 100.0 / s as f64))
            .unwrap_or_default();
        let rate = lines as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprint!("\r  replaying{pct} {lines} lines ({rate:.0} lines/s)   ");
    }

    fn clear(&self) {
        if self.shown {
            eprint!("\r{:60}\r", "");
        }
    }
}

fn open_output(path: Option<&PathBuf>) -> Result<Box<dyn Write>, Failure> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(p)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", p.display())))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    })
}

/// Opens the `--summary-json` target, refusing one that would mix with or overwrite
/// another output of the run.
fn open_summary_json(args: &ReplayArgs) -> Result<Option<Box<dyn Write>>, Failure> {
    let Some(path) = &args.summary_json else {
        return Ok(None);
    };
    if path.as_os_str() == "-" {
        if args.output.is_none() {
            let what = if args.sweep.is_empty() {
                "the decisions"
            } else {
                "the sweep table"
            };
            return Err(Failure::usage(format!(
                "--summary-json -: standard output already carries {what}; \
                 give --output FILE for them, or --summary-json FILE"
            )));
        }
        return Ok(Some(Box::new(io::stdout())));
    }
    for (flag, other) in [("--output", &args.output), ("--state-out", &args.state_out)] {
        if other.as_ref() == Some(path) {
            return Err(Failure::usage(format!(
                "--summary-json and {flag} name the same file {}",
                path.display()
            )));
        }
    }
    let file = File::create(path)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(Box::new(file)))
}

/// Writes `figures` as pretty JSON and a newline.
fn write_summary_json(
    out: Option<Box<dyn Write>>,
    figures: &impl serde::Serialize,
) -> Result<(), Failure> {
    let Some(mut out) = out else {
        return Ok(());
    };
    serde_json::to_writer_pretty(&mut out, figures)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::run(format!("cannot write the summary JSON: {e}")))
}

pub fn run(args: ReplayArgs) -> Result<(), Failure> {
    let (policy_text, policy) = load_policy(args.policy.as_deref())?;
    let options = EngineOptions {
        source: args.source.clone(),
        ..EngineOptions::default()
    };
    // Open every input first: an unreadable file fails before anything is written.
    let mut sources = Vec::with_capacity(args.input.len());
    for path in &args.input {
        sources.push(JsonlSource::open(path).map_err(|e| Failure::usage(e.to_string()))?);
    }
    let summary_json = open_summary_json(&args)?;
    if !args.sweep.is_empty() {
        return run_sweep(&args, &policy_text, &options, sources, summary_json);
    }
    let started = Instant::now();
    let mut replay = Replay::new(
        Engine::new(policy, options),
        JsonlSink::new(open_output(args.output.as_ref())?),
    )
    .with_max_message_bytes(args.max_message_bytes);
    for_each_line(sources, started, |line| match replay.feed(line) {
        Ok(()) => Ok(()),
        Err(ReplayError::Invalid(invalid)) if args.strict => {
            Err(Failure::run(format!("{invalid} (--strict)")))
        }
        Err(ReplayError::Invalid(_)) => Ok(()),
        Err(e @ ReplayError::Sink(_)) => Err(Failure::run(e.to_string())),
    })?;
    let (engine, _, mut summary, tally) =
        replay.finish().map_err(|e| Failure::run(e.to_string()))?;
    summary.elapsed = started.elapsed();
    summary.peak_rss = super::peak_rss();
    eprintln!("{summary}");
    eprintln!("  policy {}", engine.policy_version());
    if args.report {
        eprint!("{tally}");
    }
    let figures = ReplayFigures::new(&summary, &tally, engine.policy_version());
    write_summary_json(summary_json, &figures)?;
    if let Some(path) = &args.state_out {
        std::fs::write(path, engine.snapshot())
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Feeds every line of every source, in order, to `step`, with the progress line;
/// stops at the first error `step` returns.
fn for_each_line(
    sources: Vec<JsonlSource>,
    started: Instant,
    mut step: impl FnMut(&guard::replay::Line<'_>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut progress = Progress::new();
    let mut lines = 0u64;
    for mut source in sources {
        while let Some(line) = source
            .next_line()
            .map_err(|e| Failure::usage(e.to_string()))?
        {
            lines += 1;
            step(&line)?;
            progress.tick(lines, &source, started);
        }
    }
    progress.clear();
    Ok(())
}

fn run_sweep(
    args: &ReplayArgs,
    policy_text: &str,
    options: &EngineOptions,
    sources: Vec<JsonlSource>,
    summary_json: Option<Box<dyn Write>>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut sweep = Sweep::new(policy_text, &args.sweep, options)
        .map_err(|e| Failure::usage(format!("--sweep: {e}")))?;
    // The summary counts as the first variant saw things; every variant sees the same input.
    let mut summary = Summary::default();
    let admission = Admission {
        max_message_bytes: args.max_message_bytes,
        ..Admission::default()
    };
    for_each_line(sources, started, |line| {
        match admission.line(line.bytes) {
            Ok(input) => {
                let disposition = sweep.apply(&input);
                summary.record(input.stream(), disposition);
            }
            Err(reason) => {
                let invalid = guard::replay::InvalidLine {
                    file: line.file.to_owned(),
                    line: line.number,
                    reason: reason.to_string(),
                };
                if args.strict {
                    return Err(Failure::run(format!("{invalid} (--strict)")));
                }
                sweep.record_invalid(&invalid);
                summary.record_invalid(invalid);
            }
        }
        Ok(())
    })?;
    sweep.finish();
    summary.elapsed = started.elapsed();
    summary.peak_rss = super::peak_rss();
    let mut out = open_output(args.output.as_ref())?;
    out.write_all(sweep.table().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::run(format!("cannot write the sweep table: {e}")))?;
    eprintln!("{summary}");
    eprintln!("  sweep: {} variants", sweep.variants.len());
    if args.report {
        eprint!("{}", sweep.reports());
    }
    write_summary_json(summary_json, &SweepFigures::new(&sweep))
}
