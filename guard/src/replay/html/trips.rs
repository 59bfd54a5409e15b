//! A trip as the page shows it: the guard's risk event, the command it led to, its
//! trigger fill and every evidence fill with the `FILE:LINE` it came from.

use std::fmt::Write;

use crate::message::{Fill, GuardCommand, RiskAction, RiskEvent, Side};
use crate::time::Timestamp;

use super::escape::escape;

/// A fill of the input files, as a trip cites it.
#[derive(Clone, Debug, PartialEq)]
pub struct CitedFill {
    /// The file's name as given.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// The fill, as the guard decoded it.
    pub fill: Fill,
}

impl CitedFill {
    /// `FILE:LINE`.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// One trip (a critical risk event the guard raised for a fill) with what it rests on.
#[derive(Clone, Debug, PartialEq)]
pub struct TripCard {
    /// The guard's risk event.
    pub event: RiskEvent,
    /// The command the trip led to, if it changed its scope's mode (a scope already in
    /// that mode gets none).
    pub command: Option<GuardCommand>,
    /// The fill that tripped it.
    pub trigger: CitedFill,
    /// Every evidence id in the event's order, with the fill it names (`None`: not
    /// found among the fills kept for citing).
    pub evidence: Vec<(String, Option<CitedFill>)>,
}

impl TripCard {
    /// Event time of the trip.
    pub fn at(&self) -> Timestamp {
        self.event.ts
    }
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// A number for a table cell: `-` for none.
fn num(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The card's HTML: a `<section id="{id}">` with the trip's facts and its evidence
/// table (`class="evidence"`).
pub(super) fn card(out: &mut String, id: &str, title: &str, card: &TripCard) {
    let e = &card.event;
    let _ = writeln!(
        out,
        "<section class=\"trip\" id=\"{id}\">\n<h3>{title}: <code>{}</code> by strategy {} at {}</h3>\n\
         <table class=\"facts\">",
        escape(&e.kind),
        escape(&card.trigger.fill.strategy_id),
        e.ts
    );
    let action = match e.effective_action() {
        RiskAction::None => "none",
        RiskAction::Pause => "pause",
        RiskAction::ReduceOnly => "reduce_only",
    };
    let command = match &card.command {
        Some(c) => format!(
            "<code>{}</code> ({} {})",
            escape(&c.command_id),
            c.action.as_str(),
            escape(&c.scope.to_string())
        ),
        None => "none: the scope was already in that mode".into(),
    };
    let trigger = &card.trigger;
    for (key, value) in [
        ("event time", e.ts.to_string()),
        ("rule", format!("<code>{}</code>", escape(&e.kind))),
        ("scope", escape(&e.scope.to_string()).into_owned()),
        ("effect", action.to_owned()),
        (
            "risk event",
            format!("<code>{}</code>", escape(&e.event_id)),
        ),
        ("command", command),
        (
            "trigger",
            format!(
                "fill <code>{}</code> at <code>{}</code> (strategy {})",
                escape(&trigger.fill.fill_id),
                escape(&trigger.place()),
                escape(&trigger.fill.strategy_id)
            ),
        ),
        (
            "reason",
            escape(e.reason.as_deref().unwrap_or("-")).into_owned(),
        ),
    ] {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    out.push_str("</table>\n");
    evidence(out, &card.evidence, &trigger.fill.fill_id);
    out.push_str("</section>\n");
}

/// The evidence table; the trigger's row (`class="trigger"`) stands out.
fn evidence(out: &mut String, evidence: &[(String, Option<CitedFill>)], trigger: &str) {
    let _ = writeln!(
        out,
        "<h4>Evidence ({} fills)</h4>\n<table class=\"evidence\">\n<tr><th>fill</th><th>FILE:LINE</th>\
         <th>event time</th><th>strategy</th><th>symbol</th><th>side</th><th class=\"n\">qty</th>\
         <th class=\"n\">expected</th><th class=\"n\">fill price</th><th class=\"n\">slippage bps</th>\
         <th class=\"n\">realized pnl</th></tr>",
        evidence.len()
    );
    for (id, cited) in evidence {
        let Some(c) = cited else {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td colspan=\"10\">not among the fills kept for citing</td></tr>",
                escape(id)
            );
            continue;
        };
        let f = &c.fill;
        let _ = writeln!(
            out,
            "<tr{}><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{:.2}</td><td class=\"n\">{}</td></tr>",
            if id == trigger { " class=\"trigger\"" } else { "" },
            escape(id),
            escape(&c.place()),
            f.ts,
            escape(&f.strategy_id),
            escape(&f.symbol),
            side(f.side),
            f.qty,
            f.expected_price,
            f.fill_price,
            f.slippage_bps(),
            num(f.realized_pnl)
        );
    }
    out.push_str("</table>\n");
}
