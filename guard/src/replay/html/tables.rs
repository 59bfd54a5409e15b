//! The page's counts and tables, from the run's [`ReplayFigures`] — the figures
//! `--summary-json` writes, so the page and the KPI job never disagree.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::replay::figures::ModeSeconds;
use crate::replay::ReplayFigures;
use crate::time::{human_span, Span};

use super::escape::escape;
use super::Run;

/// How many rows a long table shows; the rest are counted under it.
pub(super) const TABLE_TOP: usize = 30;

/// A time for people; `-` for none.
fn span_of(seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".into();
    }
    human_span(Span::from_micros((seconds * 1e6).round() as i64))
}

/// The header: the run's key counts as tiles (`data-figure` names each), then the
/// input files, the span and the policy version.
pub(super) fn header(out: &mut String, run: &Run<'_>, f: &ReplayFigures) {
    let fills = &f.inputs.exec_result;
    let tiles: [(&str, &str, u64); 9] = [
        ("fills", "fills applied", fills.applied),
        ("invalid", "invalid lines", f.invalid),
        ("duplicates", "duplicates", f.duplicates),
        ("other_env", "other-env fills", fills.other_env),
        ("trips", "trips", f.trips.total),
        ("pauses", "pauses", f.pauses.total),
        ("reduce_only", "reduce-only", f.reduce_only.total),
        ("resumes", "resumes", f.commands.resume),
        ("warnings", "warnings", f.warnings.total),
    ];
    out.push_str("<div class=\"tiles\" id=\"counts\">\n");
    for (key, label, n) in tiles {
        let _ = writeln!(
            out,
            "<div class=\"tile\" data-figure=\"{key}\"><div class=\"value\">{n}</div><div class=\"label\">{label}</div></div>"
        );
    }
    out.push_str("</div>\n<table class=\"facts\" id=\"run\">\n");
    let files: Vec<String> = run
        .inputs
        .iter()
        .map(|name| format!("<code>{}</code>", escape(name)))
        .collect();
    let time = |t: Option<crate::time::Timestamp>| t.map_or("-".into(), |t| t.to_string());
    let rows = [
        ("input", files.join(", ")),
        ("from", time(f.first_event_ts)),
        ("to", time(f.last_event_ts)),
        ("span", span_of(f.span_seconds)),
        (
            "policy_version",
            format!("<code>{}</code>", escape(&f.policy_version)),
        ),
        ("lines", f.lines.to_string()),
        (
            "fills",
            format!(
                "{} read: {} applied, {} duplicates, {} of another environment",
                fills.read, fills.applied, fills.duplicates, fills.other_env
            ),
        ),
        (
            "other inputs",
            format!(
                "{} risk events ({} the guard's own, ignored), {} releases, {} operator orders, {} acks",
                f.inputs.risk_event.read,
                f.inputs.risk_event.own_ignored,
                f.inputs.strategy_release.read,
                f.inputs.ops_command.read,
                f.inputs.guard_ack.read
            ),
        ),
        (
            "decisions",
            format!(
                "{} commands ({} pause, {} reduce-only, {} resume), {} risk events, {} unacknowledged",
                f.decisions.guard_command,
                f.commands.pause,
                f.commands.reduce_only,
                f.commands.resume,
                f.decisions.risk_event,
                f.unacknowledged_commands
            ),
        ),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    out.push_str("</table>\n");
}

/// Horizontal bars (`<svg id="{id}">`), one per item, with its count at its end.
pub(super) fn bars(out: &mut String, id: &str, items: &[(String, u64)]) {
    const WIDTH: f64 = 720.0;
    const LABEL_W: f64 = 190.0;
    const ROW: f64 = 26.0;
    let height = ROW * items.len() as f64 + 8.0;
    let most = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let plot = WIDTH - LABEL_W - 60.0;
    let _ = writeln!(
        out,
        "<svg id=\"{id}\" class=\"chart\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">"
    );
    for (i, (name, n)) in items.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = (*n as f64 / most as f64 * plot).max(if *n > 0 { 2.0 } else { 0.0 });
        let _ = writeln!(
            out,
            "<text class=\"bar-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{name}</text>\
             <rect class=\"bar\" data-name=\"{name}\" x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{}\">\
             <title>{name}: {n}</title></rect><text class=\"bar-value\" x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
            LABEL_W - 8.0,
            y + ROW * 0.62,
            ROW - 8.0,
            LABEL_W + w + 6.0,
            y + ROW * 0.62,
            name = escape(name),
        );
    }
    out.push_str("</svg>\n");
}

/// Trips per rule (bars), commands per rule (table) and trips per strategy (table,
/// one column per rule that tripped).
pub(super) fn trips(out: &mut String, f: &ReplayFigures) {
    if f.trips.total == 0 {
        out.push_str("<p class=\"none\" id=\"no-trips\">No rule tripped.</p>\n");
    } else {
        let by_rule: Vec<(String, u64)> = f
            .trips
            .by_rule
            .iter()
            .map(|(rule, n)| (rule.clone(), *n))
            .collect();
        out.push_str("<h3>Trips per rule</h3>\n");
        bars(out, "trips-by-rule", &by_rule);
        by_strategy(out, f);
    }
    let rules: BTreeSet<&String> = f
        .pauses
        .by_rule
        .keys()
        .chain(f.reduce_only.by_rule.keys())
        .collect();
    if rules.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Commands per rule</h3>\n<table class=\"grid\" id=\"commands-by-rule\">\n\
         <tr><th>rule</th><th class=\"n\">pauses</th><th class=\"n\">reduce-only</th></tr>\n",
    );
    for rule in rules {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(rule),
            f.pauses.by_rule.get(rule).unwrap_or(&0),
            f.reduce_only.by_rule.get(rule).unwrap_or(&0)
        );
    }
    out.push_str("</table>\n");
}

fn by_strategy(out: &mut String, f: &ReplayFigures) {
    let rules: BTreeSet<&String> = f.trips.by_rule.keys().collect();
    let mut rows: Vec<(&String, u64)> = f
        .trips
        .by_strategy
        .iter()
        .map(|(strategy, kinds)| (strategy, kinds.values().sum()))
        .collect();
    rows.sort_by_key(|(_, total)| std::cmp::Reverse(*total));
    out.push_str(
        "<h3>Trips per strategy</h3>\n<table class=\"grid\" id=\"trips-by-strategy\">\n<tr><th>strategy</th>",
    );
    for rule in &rules {
        let _ = write!(out, "<th class=\"n\"><code>{}</code></th>", escape(rule));
    }
    out.push_str("<th class=\"n\">total</th></tr>\n");
    for (strategy, total) in rows.iter().take(TABLE_TOP) {
        let _ = write!(out, "<tr><td>{}</td>", escape(strategy));
        for rule in &rules {
            let n = f.trips.by_strategy[*strategy].get(*rule).unwrap_or(&0);
            let _ = write!(out, "<td class=\"n\">{n}</td>");
        }
        let _ = writeln!(out, "<td class=\"n\">{total}</td></tr>");
    }
    out.push_str("</table>\n");
    more(out, rows.len());
}

/// `… and N more` under a table cut at [`TABLE_TOP`] rows.
pub(super) fn more(out: &mut String, rows: usize) {
    if rows > TABLE_TOP {
        let _ = writeln!(out, "<p class=\"more\">… and {} more</p>", rows - TABLE_TOP);
    }
}

/// Time per mode for `global` and every scope ever out of running, the longest held
/// first.
pub(super) fn mode_times(out: &mut String, f: &ReplayFigures) {
    let mut rows: Vec<(&String, &ModeSeconds)> = f.mode_seconds.iter().collect();
    rows.sort_by(|a, b| {
        let held = |m: &ModeSeconds| m.paused + m.reduce_only;
        (b.0 == "global")
            .cmp(&(a.0 == "global"))
            .then(held(b.1).total_cmp(&held(a.1)))
    });
    out.push_str(
        "<table class=\"grid\" id=\"mode-times\">\n<tr><th>scope</th><th class=\"n\">paused</th>\
         <th class=\"n\">reduce-only</th><th class=\"n\">running</th><th class=\"n\">pauses</th>\
         <th class=\"n\">reduce-only commands</th></tr>\n",
    );
    for (scope, m) in rows.iter().take(TABLE_TOP) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(scope),
            span_of(m.paused),
            span_of(m.reduce_only),
            span_of(m.running),
            f.pauses.by_scope.get(*scope).unwrap_or(&0),
            f.reduce_only.by_scope.get(*scope).unwrap_or(&0)
        );
    }
    out.push_str("</table>\n");
    more(out, rows.len());
}
