//! `guard replay`: the engine over recorded streams (CONTRACT §4), with a summary,
//! an optional report and parameter sweeps.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use guard::decode::{Admission, MAX_MESSAGE_BYTES};
use guard::engine::{Engine, EngineOptions};
use guard::replay::html::{PageFacts, Run};
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
    /// Also write the day as one HTML page for people (the end-of-day report), once
    /// the run completes: the input and its counts; a timeline of every scope's mode
    /// (running, reduce-only, paused) over event time; trips per rule and strategy;
    /// the fills' slippage as a histogram with the threshold marked; the first and
    /// last trips with every evidence fill and its FILE:LINE; the resolved policy.
    /// Self-contained: no script, font or link to fetch, so it can be mailed or
    /// archived as is. `-` is standard output, allowed only when --output takes the
    /// decisions elsewhere and --summary-json is not `-`. Not with --sweep (one page
    /// shows one policy: replay the variant to look at with its policy). Memory: the
    /// fills the rules still hold, for citing them, besides what replay keeps.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
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
    let others = [("--output", &args.output), ("--state-out", &args.state_out)];
    let path = side_output("--summary-json", args.summary_json.as_ref(), args, &others)?;
    path.map(open_side_output).transpose()
}

/// The `--html` target, refused with `--sweep` and where it would mix with or
/// overwrite another output of the run — checked before any output is opened.
fn html_target(args: &ReplayArgs) -> Result<Option<&PathBuf>, Failure> {
    if args.html.is_some() && !args.sweep.is_empty() {
        return Err(Failure::usage(
            "--html draws one policy's day and --sweep runs several: replay the variant to \
             look at with its keys set in a policy file (--policy FILE --html PAGE)",
        ));
    }
    if let (Some(html), Some(json)) = (&args.html, &args.summary_json) {
        if html.as_os_str() == "-" && json.as_os_str() == "-" {
            return Err(Failure::usage(
                "--html - and --summary-json -: standard output can carry only one of them",
            ));
        }
    }
    let others = [
        ("--output", &args.output),
        ("--state-out", &args.state_out),
        ("--summary-json", &args.summary_json),
    ];
    side_output("--html", args.html.as_ref(), args, &others)
}

/// `path`, the target of `flag` (written once the run completes), if it may be
/// written: `-` is standard output, refused while it carries the decisions or the
/// sweep table; a file another output (`others`) also names is refused.
fn side_output<'a>(
    flag: &str,
    path: Option<&'a PathBuf>,
    args: &ReplayArgs,
    others: &[(&str, &Option<PathBuf>)],
) -> Result<Option<&'a PathBuf>, Failure> {
    let Some(path) = path else {
        return Ok(None);
    };
    if path.as_os_str() == "-" && args.output.is_none() {
        let what = if args.sweep.is_empty() {
            "the decisions"
        } else {
            "the sweep table"
        };
        return Err(Failure::usage(format!(
            "{flag} -: standard output already carries {what}; \
             give --output FILE for them, or {flag} FILE"
        )));
    }
    for (other, other_path) in others {
        if path.as_os_str() != "-" && other_path.as_ref() == Some(path) {
            return Err(Failure::usage(format!(
                "{flag} and {other} name the same file {}",
                path.display()
            )));
        }
    }
    Ok(Some(path))
}

/// Opens a target [`side_output`] allowed: `-` is standard output, a file is created.
fn open_side_output(path: &PathBuf) -> Result<Box<dyn Write>, Failure> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdout()));
    }
    let file = File::create(path)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(Box::new(file))
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

/// Writes the page.
fn write_html(mut out: Box<dyn Write>, page: &str) -> Result<(), Failure> {
    out.write_all(page.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::run(format!("cannot write the HTML page: {e}")))
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
    let html = html_target(&args)?;
    let summary_json = open_summary_json(&args)?;
    let html = html.map(open_side_output).transpose()?;
    if !args.sweep.is_empty() {
        return run_sweep(&args, &policy_text, &options, sources, summary_json);
    }
    let started = Instant::now();
    let mut facts = html.as_ref().map(|_| PageFacts::new(&policy));
    let mut replay = Replay::new(
        Engine::new(policy, options),
        JsonlSink::new(open_output(args.output.as_ref())?),
    )
    .with_max_message_bytes(args.max_message_bytes);
    for_each_line(sources, started, |line| {
        let fed = replay.feed_with(line, |step| {
            if let Some(facts) = facts.as_mut() {
                facts.observe(line, &step);
            }
        });
        match fed {
            Ok(()) => Ok(()),
            Err(ReplayError::Invalid(invalid)) if args.strict => {
                Err(Failure::run(format!("{invalid} (--strict)")))
            }
            Err(ReplayError::Invalid(_)) => Ok(()),
            Err(e @ ReplayError::Sink(_)) => Err(Failure::run(e.to_string())),
        }
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
    if let (Some(out), Some(facts)) = (html, facts) {
        let inputs: Vec<String> = args.input.iter().map(|p| p.display().to_string()).collect();
        let run = Run {
            inputs: &inputs,
            summary: &summary,
            tally: &tally,
            policy: engine.policy(),
            policy_version: engine.policy_version(),
        };
        write_html(out, &facts.render(&run))?;
    }
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
