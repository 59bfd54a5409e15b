//! The timeline: every scope's mode over the run's span of event time, as bands
//! computed from the scope's commands, drawn one SVG row per scope.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::message::{Mode, Scope};
use crate::time::{human_span, Timestamp};

use super::axis::time_ticks;
use super::escape::escape;

/// A stretch of event time one scope spent in one mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    /// The mode.
    pub mode: Mode,
    /// Where it starts.
    pub from: Timestamp,
    /// Where it ends (after `from`).
    pub to: Timestamp,
}

/// The bands of a scope whose commands changed its mode to `changes` (event time of
/// the command and the new mode, in the order the guard decided them) over the span
/// `start`–`end`: running until the first command, then each mode from its command
/// to the next one or to the end. As `--report`'s time paused counts it, a command
/// earlier in event time than the one before it ends that one's band where it began
/// (never a negative band); empty bands are left out, times are kept in the span.
pub fn bands(changes: &[(Timestamp, Mode)], start: Timestamp, end: Timestamp) -> Vec<Band> {
    let end = end.max(start);
    let mut out = Vec::with_capacity(changes.len() + 1);
    let mut push = |mode, from: Timestamp, to: Timestamp| {
        if to > from {
            out.push(Band { mode, from, to });
        }
    };
    let (mut mode, mut since) = (Mode::Running, start);
    for &(at, next) in changes {
        let at = at.clamp(start, end);
        push(mode, since, since.max(at));
        (mode, since) = (next, at);
    }
    push(mode, since, end);
    out
}

/// One row of the timeline.
pub(super) struct Row {
    pub scope: Scope,
    pub bands: Vec<Band>,
}

/// The rows to draw: `global` first, then the `max_rows - 1` scopes that spent the
/// most time out of running, in scope order; and how many scopes were left out.
pub(super) fn rows(
    changes: &BTreeMap<Scope, Vec<(Timestamp, Mode)>>,
    start: Timestamp,
    end: Timestamp,
    max_rows: usize,
) -> (Vec<Row>, usize) {
    let none = Vec::new();
    let global = Row {
        scope: Scope::Global,
        bands: bands(changes.get(&Scope::Global).unwrap_or(&none), start, end),
    };
    let mut others: Vec<(i64, Row)> = changes
        .iter()
        .filter(|(scope, _)| **scope != Scope::Global)
        .map(|(scope, changes)| {
            let bands = bands(changes, start, end);
            let held: i64 = bands
                .iter()
                .filter(|b| b.mode != Mode::Running)
                .map(|b| b.to.since(b.from).as_micros())
                .sum();
            let row = Row {
                scope: scope.clone(),
                bands,
            };
            (held, row)
        })
        .collect();
    // A stable sort keeps scope order among equal times.
    others.sort_by_key(|(held, _)| std::cmp::Reverse(*held));
    let left_out = others.len().saturating_sub(max_rows.saturating_sub(1));
    others.truncate(max_rows.saturating_sub(1));
    others.sort_by(|a, b| a.1.scope.cmp(&b.1.scope));
    let rows = std::iter::once(global)
        .chain(others.into_iter().map(|(_, row)| row))
        .collect();
    (rows, left_out)
}

/// The drawing's geometry, in CSS pixels.
const WIDTH: f64 = 1120.0;
const LABEL_W: f64 = 180.0;
const RIGHT: f64 = 24.0;
const LEGEND_H: f64 = 30.0;
const ROW_H: f64 = 20.0;
const ROW_STEP: f64 = 28.0;
const AXIS_H: f64 = 28.0;
/// A pause of a few seconds in a day still shows.
const MIN_BAND_W: f64 = 2.0;
/// Scope names longer than this are cut in the label (the full name is its title).
const LABEL_CHARS: usize = 26;

/// Maps event time to x.
struct Scale {
    start: i64,
    span: f64,
}

impl Scale {
    fn x(&self, t: Timestamp) -> f64 {
        let plot = WIDTH - LABEL_W - RIGHT;
        LABEL_W + (t.as_micros() - self.start) as f64 / self.span * plot
    }
}

/// The timeline's SVG (`id="timeline"`): a legend, one row per scope with a band per
/// mode (`class="band paused"`, `band reduce_only`, `band running`), each titled with
/// its times, and an axis of UTC times under a light grid.
pub(super) fn svg(rows: &[Row], start: Timestamp, end: Timestamp) -> String {
    let height = LEGEND_H + ROW_STEP * rows.len() as f64 + AXIS_H;
    let scale = Scale {
        start: start.as_micros(),
        span: (end.as_micros() - start.as_micros()).max(1) as f64,
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg id=\"timeline\" class=\"chart\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"mode of every scope over event time\">"
    );
    legend(&mut s);
    grid(&mut s, &scale, start, end, height);
    for (i, row) in rows.iter().enumerate() {
        draw_row(&mut s, &scale, row, LEGEND_H + ROW_STEP * i as f64);
    }
    s.push_str("</svg>\n");
    s
}

fn legend(s: &mut String) {
    s.push_str("<g class=\"legend\">\n");
    let mut x = LABEL_W;
    for (mode, text) in [
        (Mode::Running, "running"),
        (Mode::ReduceOnly, "reduce-only"),
        (Mode::Paused, "paused"),
    ] {
        let _ = writeln!(
            s,
            "<rect class=\"swatch {}\" x=\"{x}\" y=\"6\" width=\"14\" height=\"14\"/>\
             <text x=\"{}\" y=\"18\">{text}</text>",
            mode.as_str(),
            x + 20.0
        );
        x += 130.0;
    }
    s.push_str("</g>\n");
}

fn grid(s: &mut String, scale: &Scale, start: Timestamp, end: Timestamp, height: f64) {
    let axis_y = height - AXIS_H;
    let _ = writeln!(
        s,
        "<g class=\"axis\"><line class=\"axis-line\" x1=\"{LABEL_W}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\"/>",
        WIDTH - RIGHT
    );
    for tick in time_ticks(start, end, 12) {
        let x = scale.x(tick.at);
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{LEGEND_H}\" x2=\"{x:.1}\" y2=\"{}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            axis_y + 4.0,
            axis_y + 18.0,
            escape(&tick.label)
        );
    }
    s.push_str("</g>\n");
}

fn draw_row(s: &mut String, scale: &Scale, row: &Row, y: f64) {
    let name = row.scope.to_string();
    let shown: String = if name.chars().count() > LABEL_CHARS {
        name.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
    } else {
        name.clone()
    };
    let _ = writeln!(
        s,
        "<g class=\"row\" data-scope=\"{scope}\"><text class=\"scope-label\" x=\"{}\" y=\"{}\" \
         text-anchor=\"end\"><title>{scope}</title>{}</text>",
        LABEL_W - 8.0,
        y + ROW_H * 0.72,
        escape(&shown),
        scope = escape(&name),
    );
    for band in &row.bands {
        let x0 = scale.x(band.from);
        let mut width = scale.x(band.to) - x0;
        if band.mode != Mode::Running {
            width = width.max(MIN_BAND_W);
        }
        let x = x0.min(WIDTH - RIGHT - width);
        let _ = writeln!(
            s,
            "<rect class=\"band {mode}\" x=\"{x:.2}\" y=\"{y}\" width=\"{width:.2}\" height=\"{ROW_H}\" \
             data-from=\"{from}\" data-to=\"{to}\"><title>{scope}: {mode} from {from} to {to} ({span})</title></rect>",
            mode = band.mode.as_str(),
            from = band.from,
            to = band.to,
            scope = escape(&name),
            span = human_span(band.to.since(band.from)),
        );
    }
    s.push_str("</g>\n");
}
