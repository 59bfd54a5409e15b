//! The page itself: head and style, then one section per question the desk asks —
//! what was read, when was trading held, which rules tripped for whom, how the fills'
//! slippage was spread, what the first and last trips rest on, under which policy.

use std::fmt::Write;

use crate::message::Stream;
use crate::replay::ReplayFigures;
use crate::time::exact_span;

use super::escape::escape;
use super::tables;
use super::{histogram, timeline, trips, PageFacts, Run};

/// At most this many rows in the timeline (`global` and the scopes held longest).
const TIMELINE_ROWS: usize = 40;

const STYLE: &str = r#"
:root { color-scheme: light; }
body { margin: 0; background: #f5f6f8; color: #1d2430; font: 14px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 12px 20px 32px; }
h1 { font-size: 22px; margin: 10px 0 2px; }
h2 { font-size: 17px; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
h4 { font-size: 14px; margin: 10px 0 4px; }
.sub { color: #5a6270; margin: 0 0 8px; }
section { background: #fff; border: 1px solid #dfe2e7; border-radius: 6px; padding: 12px 16px; margin: 14px 0; }
section.trip { border-color: #e8c4c1; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; }
.tile { flex: 1 1 0; background: #fff; border: 1px solid #dfe2e7; border-radius: 6px; padding: 6px 10px; min-width: 84px; }
.tile .value { font-size: 22px; font-weight: bold; }
.tile .label { color: #5a6270; font-size: 12px; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { text-align: left; padding: 2px 12px 2px 0; vertical-align: top; }
table.facts th { color: #5a6270; font-weight: normal; white-space: nowrap; }
table.grid th, table.grid td, table.evidence th, table.evidence td { border-bottom: 1px solid #eceef2; padding: 3px 10px; }
table.evidence { font-size: 12.5px; }
table.evidence td { white-space: nowrap; }
table.evidence tr.trigger td { font-weight: bold; }
.n { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12.5px; }
pre#policy { background: #f3f4f6; padding: 10px 12px; margin: 0; overflow: auto; }
.none, .more, footer { color: #5a6270; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg text { font-size: 12px; fill: #1d2430; }
svg text.tick { fill: #5a6270; font-size: 11px; }
.band.running, .swatch.running { fill: #cde6cd; }
.band.reduce_only, .swatch.reduce_only { fill: #f0a742; }
.band.paused, .swatch.paused { fill: #d0342c; }
line.grid { stroke: #e3e6eb; }
.axis-line { stroke: #8a93a0; }
.bar { fill: #5b7fb8; }
.bar.breach { fill: #d0342c; }
.threshold { stroke: #1d2430; stroke-width: 2; stroke-dasharray: 5 3; }
"#;

/// The whole page of a finished run.
pub(super) fn render(facts: &PageFacts, run: &Run<'_>) -> String {
    let f = run.figures();
    let mut out = String::with_capacity(64 * 1024);
    let day = f
        .first_event_ts
        .map(|t| t.to_utc().format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "no events".into());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>Replay report {day} ({version})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>Replay report {day}</h1>\n<p class=\"sub\">What the guard decided over the input below, \
         under policy <code>{version}</code>. Event times in UTC.</p>\n",
        version = escape(&f.policy_version),
    );
    out.push_str("<section id=\"summary\">\n<h2>Input and counts</h2>\n");
    tables::header(&mut out, run, &f);
    out.push_str("</section>\n");
    modes(&mut out, facts, &f);
    out.push_str("<section id=\"trips\">\n<h2>Trips</h2>\n");
    tables::trips(&mut out, &f);
    out.push_str("</section>\n");
    slippage(&mut out, facts, run);
    first_and_last(&mut out, facts);
    invalid_lines(&mut out, run);
    let _ = write!(
        out,
        "<section id=\"policy-section\">\n<h2>Policy</h2>\n<p class=\"sub\">The resolved policy, \
         every key with the value in force, as <code>guard policy</code> prints it.</p>\n\
         <pre id=\"policy\"># policy_version = {}\n{}</pre>\n</section>\n\
         <footer>Written by <code>guard replay --html</code>: the same input and policy always \
         give the same page.</footer>\n</main>\n</body>\n</html>\n",
        escape(run.policy_version),
        escape(&run.policy.to_toml())
    );
    out
}

/// The timeline and the time each scope spent in each mode.
fn modes(out: &mut String, facts: &PageFacts, f: &ReplayFigures) {
    out.push_str("<section id=\"modes\">\n<h2>Modes over time</h2>\n");
    let (Some(start), Some(end)) = (f.first_event_ts, f.last_event_ts) else {
        out.push_str("<p class=\"none\">Nothing was applied: no timeline.</p>\n</section>\n");
        return;
    };
    let (rows, left_out) = timeline::rows(facts.changes(), start, end, TIMELINE_ROWS);
    let _ = writeln!(
        out,
        "<p class=\"sub\">Every scope that left running, and <code>global</code>, from {start} to \
         {end}. A strategy may trade only while neither <code>global</code> nor its own scope is \
         paused, and only reduce its positions while either is reduce-only.</p>"
    );
    out.push_str(&timeline::svg(&rows, start, end));
    if left_out > 0 {
        let _ = writeln!(
            out,
            "<p class=\"more\">… and {left_out} more scopes, each held for less time than those shown.</p>"
        );
    }
    out.push_str("<h3>Time in each mode</h3>\n");
    tables::mode_times(out, f);
    out.push_str("</section>\n");
}

fn slippage(out: &mut String, facts: &PageFacts, run: &Run<'_>) {
    out.push_str("<section id=\"slippage-section\">\n<h2>Slippage</h2>\n");
    let hist = facts.slippage();
    let Some((mean, low, high)) = hist.stats() else {
        out.push_str("<p class=\"none\">No fill was applied.</p>\n</section>\n");
        return;
    };
    let _ = writeln!(
        out,
        "<p id=\"slippage-stats\">Adverse slippage of the <b>{}</b> fills applied (positive: worse \
         than expected): mean {mean:.2} bps, lowest {low:.2}, highest {high:.2}. \
         <b>{}</b> above the threshold of {} bps (a breach is strictly above it; red bars lie \
         wholly above).</p>",
        hist.count(),
        hist.above(),
        hist.threshold_bps()
    );
    out.push_str(&histogram::svg(&hist.bins(), hist.threshold_bps()));
    let enhanced = &run.policy.rules.enhanced;
    if enhanced.enabled && run.summary.streams.contains_key(&Stream::StrategyRelease) {
        let _ = writeln!(
            out,
            "<p class=\"sub\">For {} after a strategy's adoption its threshold is {} times this \
             (enhanced monitoring).</p>",
            exact_span(enhanced.lookback),
            enhanced.factor
        );
    }
    out.push_str("</section>\n");
}

fn first_and_last(out: &mut String, facts: &PageFacts) {
    out.push_str("<section id=\"first-last\">\n<h2>First and last trips</h2>\n");
    match (facts.first_trip(), facts.last_trip()) {
        (Some(first), Some(last)) => {
            trips::card(out, "first-trip", "First trip", first);
            trips::card(out, "last-trip", "Last trip", last);
        }
        _ => out.push_str("<p class=\"none\">No rule tripped.</p>\n"),
    }
    out.push_str("</section>\n");
}

fn invalid_lines(out: &mut String, run: &Run<'_>) {
    let summary = run.summary;
    if summary.invalid == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "<section id=\"invalid\">\n<h2>Invalid lines ({})</h2>\n<p class=\"sub\">Reported and \
         skipped, as the guard sends such a message to the dead-letter topic.</p>\n\
         <table class=\"grid\">\n<tr><th>FILE:LINE</th><th>reason</th></tr>",
        summary.invalid
    );
    for line in &summary.invalid_shown {
        let _ = writeln!(
            out,
            "<tr><td><code>{}:{}</code></td><td>{}</td></tr>",
            escape(&line.file),
            line.line,
            escape(&line.reason)
        );
    }
    out.push_str("</table>\n");
    let rest = summary.invalid - summary.invalid_shown.len() as u64;
    if rest > 0 {
        let _ = writeln!(out, "<p class=\"more\">… and {rest} more</p>");
    }
    out.push_str("</section>\n");
}
