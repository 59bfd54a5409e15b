//! What the live guard shows the outside: counters and latencies for `/metrics`, the
//! readable state for `/state`, and readiness for `/readyz`. The pipeline writes it;
//! the HTTP server reads it.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::engine::Engine;
use crate::message::Decision;
use crate::time::Timestamp;

mod applied;
mod handle;
pub use applied::{changed_by, AppliedOrders};
pub use handle::{StatusHandle, ViewDemand};

/// Counters and gauges of the live guard.
#[derive(Clone)]
pub struct Metrics {
    /// Valid messages per stream.
    pub messages: BTreeMap<&'static str, u64>,
    /// Invalid messages (sent to the dead-letter topic).
    pub invalid: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Fills of another environment than the policy's `env`, ignored (CONTRACT §2.9).
    pub other_env: u64,
    /// Commands per rule and action.
    pub commands: BTreeMap<(String, String), u64>,
    /// Risk events raised per kind.
    pub risk_events: BTreeMap<String, u64>,
    /// Failed deliveries.
    pub delivery_failures: u64,
    /// Heartbeats not sent or not delivered.
    pub heartbeat_failures: u64,
    /// Changelog records the broker did not take (each gives the lineage up).
    pub changelog_failures: u64,
    /// Checkpoints written, and failed.
    pub checkpoints: u64,
    /// Failed checkpoint writes.
    pub checkpoint_failures: u64,
    /// Times the merge stopped waiting for a partition's next message.
    pub order_waits_expired: u64,
    /// Inputs applied after a later-stamped input of another partition.
    pub inputs_applied_late: u64,
    /// Order-journal records written.
    pub order_records: u64,
    /// Restored input orders given up because a message never arrived.
    pub order_script_abandoned: u64,
    /// Consumer lag per partition (high watermark − next offset).
    pub lag: BTreeMap<String, i64>,
    /// Fill received → command acknowledged by the broker, in microseconds: a copy
    /// of the decision thread's own, taken at each checkpoint (at most five times a
    /// second by default; copied at every acknowledgement, its 139 KB were a tenth of
    /// the decision thread's time at 1,000 fills/s).
    pub decision_latency: Arc<Histogram<u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages: BTreeMap::new(),
            invalid: 0,
            duplicates: 0,
            other_env: 0,
            commands: BTreeMap::new(),
            risk_events: BTreeMap::new(),
            delivery_failures: 0,
            heartbeat_failures: 0,
            changelog_failures: 0,
            checkpoints: 0,
            checkpoint_failures: 0,
            order_waits_expired: 0,
            inputs_applied_late: 0,
            order_records: 0,
            order_script_abandoned: 0,
            lag: BTreeMap::new(),
            decision_latency: Arc::new(Metrics::latency_histogram()),
        }
    }
}

/// Shared between the pipeline and the HTTP server: copied once per turn of the
/// decision loop, so what is large is behind an `Arc`.
#[derive(Clone, Default)]
pub struct Status {
    /// The state has been restored and the inputs are assigned.
    pub ready: bool,
    /// The guard can currently publish (no delivery failures outstanding).
    pub publishing: bool,
    /// The guard could not persist its state for longer than its bound and asked for a
    /// global pause; cleared when a checkpoint succeeds again.
    pub degraded: bool,
    /// Active (owns the inputs) or standby.
    pub role: &'static str,
    /// Counters.
    pub metrics: Metrics,
    /// The `/state` document, as JSON text: kept as a `Value` it took several times
    /// the memory, and two of it were alive while it was rebuilt.
    pub state: Arc<StateText>,
    /// Next input offset per `topic/partition` (what the state has applied).
    pub offsets: BTreeMap<String, i64>,
    /// Asks the store writer for the last committed checkpoint (`GET /snapshot`);
    /// `None` where there is no single store to export (a standby, scale-out).
    pub exports: Option<std::sync::mpsc::Sender<ExportReply>>,
}

/// Where the store writer answers an export: the last committed checkpoint with every
/// dedup id, `None` before the first.
pub type ExportReply =
    std::sync::mpsc::Sender<Result<Option<super::store::Restored>, super::store::StoreError>>;

/// The `/state` document (a JSON object's text) and the gauges `/metrics` reads from
/// it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateText {
    /// The JSON text.
    pub json: String,
    /// How many entries some of its lists hold.
    pub gauges: StateGauges,
}

/// Counts of the `/state` document's lists that `/metrics` shows as gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateGauges {
    /// Paused scopes.
    pub paused: usize,
    /// Reduce-only scopes.
    pub reduce_only: usize,
    /// Commands awaiting acknowledgements.
    pub acks_pending: usize,
    /// Group-days of the daily loss book.
    pub daily_loss: usize,
    /// Group-days of the daily drawdown book.
    pub daily_drawdown: usize,
}

impl StateGauges {
    /// The counts of a `/state` document (without its slippage windows, which no
    /// gauge reads).
    pub fn of(view: &Value) -> Self {
        let count = |key: &str| view[key].as_array().map_or(0, Vec::len);
        StateGauges {
            paused: count("paused"),
            reduce_only: count("reduce_only"),
            acks_pending: count("acks_pending"),
            daily_loss: count("daily_loss"),
            daily_drawdown: count("daily_drawdown"),
        }
    }
}

/// A breach as `/state` shows it.
#[derive(Serialize)]
struct BreachView<'a> {
    fill_id: &'a str,
    strategy_id: &'a str,
    ts: Timestamp,
}

/// A slippage window as `/state` shows it.
#[derive(Serialize)]
struct WindowView<'a> {
    group: &'a str,
    breaches: Vec<BreachView<'a>>,
}

/// [`state_view`], rendered: the same document, but the slippage windows (tens of
/// thousands of breaches on a busy day) are written out directly rather than built
/// as values first.
pub fn state_text(engine: &Engine) -> StateText {
    let mut view = view_head(engine);
    engine.state().rules.view_without_windows(&mut view);
    let view = Value::Object(view);
    let gauges = StateGauges::of(&view);
    let windows: Vec<WindowView<'_>> = engine
        .state()
        .rules
        .slippage
        .groups()
        .map(|(group, breaches)| WindowView {
            group: group.unwrap_or("(all strategies)"),
            breaches: breaches
                .iter()
                .map(|b| BreachView {
                    fill_id: &b.fill_id,
                    strategy_id: b.strategy(group),
                    ts: b.ts,
                })
                .collect(),
        })
        .collect();
    let mut json = view.to_string();
    json.pop();
    json.push_str(",\"slippage_windows\":");
    json.push_str(&serde_json::to_string(&windows).expect("views serialise"));
    json.push('}');
    StateText { json, gauges }
}

/// Builds the `/state` document from the engine: its paused scopes (`paused`) and
/// those that may only reduce positions (`reduce_only`), each with its reasons by
/// effect, then what every rule shows of itself.
pub fn state_view(engine: &Engine) -> Value {
    let mut view = view_head(engine);
    engine.state().rules.view(&mut view);
    Value::Object(view)
}

/// The engine's own part of the `/state` document.
fn view_head(engine: &Engine) -> Map<String, Value> {
    let state = engine.state();
    let mut by_mode: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    for (scope, held) in state.scopes.held() {
        let mut entry = json!({"scope": scope, "reasons": held.reasons, "since": held.since});
        if !held.reduce_only.is_empty() {
            entry["reduce_only_reasons"] = json!(held.reduce_only);
        }
        by_mode[usize::from(held.mode() != crate::message::Mode::Paused)].push(entry);
    }
    let [paused, reduce_only] = by_mode;
    let mut view = Map::new();
    view.insert("policy_version".into(), json!(engine.policy_version()));
    view.insert("clock".into(), json!(state.clock));
    view.insert("paused".into(), Value::Array(paused));
    view.insert("reduce_only".into(), Value::Array(reduce_only));
    view.insert("seen_ids".into(), json!(state.seen.len()));
    view
}

impl Metrics {
    /// An empty decision-latency histogram: 1 µs to 60 s, three significant digits.
    pub fn latency_histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
    }

    /// Counts the decisions of one message.
    pub fn record_decisions(&mut self, decisions: &[Decision]) {
        for d in decisions {
            match d {
                Decision::GuardCommand(c) => {
                    *self
                        .commands
                        .entry((c.rule.as_str().to_owned(), c.action.as_str().to_owned()))
                        .or_default() += 1;
                }
                Decision::RiskEvent(e) => *self.risk_events.entry(e.kind.clone()).or_default() += 1,
            }
        }
    }
}

/// Renders `/metrics` in the Prometheus text format.
pub fn prometheus(status: &Status) -> String {
    let mut out = String::new();
    counters(&status.metrics, &mut out);
    gauges(status, &mut out);
    latency(&status.metrics.decision_latency, &mut out);
    state_gauges(&status.state.gauges, &mut out);
    out.push_str("# TYPE guard_ready gauge\n");
    out.push_str(&format!("guard_ready {}\n", u8::from(status.ready)));
    out.push_str(&format!(
        "guard_publishing {}\n",
        u8::from(status.publishing)
    ));
    out.push_str("# HELP guard_degraded Whether the guard failed closed (its state cannot be written, or its inputs read) and has not recovered.\n");
    out.push_str("# TYPE guard_degraded gauge\n");
    out.push_str(&format!("guard_degraded {}\n", u8::from(status.degraded)));
    out.push_str("# HELP guard_role This instance's role: active (the guard that decides), standby, aggregator (the scale-out instance that decides), scaled (a scale-out instance with workers only).\n");
    out.push_str("# TYPE guard_role gauge\n");
    for role in ["active", "standby", "aggregator", "scaled"] {
        let on = u8::from(status.role == role);
        out.push_str(&format!("guard_role{{role=\"{role}\"}} {on}\n"));
    }
    out
}

/// Gauges read from the `/state` view (as of its last rebuild): scopes by mode,
/// commands awaiting acknowledgements, daily books that tripped today.
fn state_gauges(g: &StateGauges, out: &mut String) {
    out.push_str("# HELP guard_scopes Scopes not running, by mode (paused, reduce_only).\n");
    out.push_str("# TYPE guard_scopes gauge\n");
    for (mode, n) in [("paused", g.paused), ("reduce_only", g.reduce_only)] {
        out.push_str(&format!("guard_scopes{{mode=\"{mode}\"}} {n}\n"));
    }
    out.push_str("# HELP guard_acks_pending Commands awaiting gateways' acknowledgements.\n");
    out.push_str("# TYPE guard_acks_pending gauge\n");
    out.push_str(&format!("guard_acks_pending {}\n", g.acks_pending));
    out.push_str("# HELP guard_daily_books Groups' trading days kept by a daily limit.\n");
    out.push_str("# TYPE guard_daily_books gauge\n");
    for (rule, n) in [
        ("daily_loss", g.daily_loss),
        ("daily_drawdown", g.daily_drawdown),
    ] {
        out.push_str(&format!("guard_daily_books{{rule=\"{rule}\"}} {n}\n"));
    }
}

/// The counters: messages, decisions, failures, checkpoints, order journal.
fn counters(m: &Metrics, out: &mut String) {
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("# HELP guard_messages_total Valid input messages by stream.".into());
    line("# TYPE guard_messages_total counter".into());
    for (stream, n) in &m.messages {
        line(format!("guard_messages_total{{stream=\"{stream}\"}} {n}"));
    }
    line("# TYPE guard_commands_total counter".into());
    for ((rule, action), n) in &m.commands {
        line(format!(
            "guard_commands_total{{rule=\"{rule}\",action=\"{action}\"}} {n}"
        ));
    }
    line("# TYPE guard_risk_events_total counter".into());
    for (kind, n) in &m.risk_events {
        line(format!("guard_risk_events_total{{kind=\"{kind}\"}} {n}"));
    }
    for (name, help, value) in [
        ("guard_invalid_messages_total", "", m.invalid),
        ("guard_duplicate_messages_total", "", m.duplicates),
        ("guard_other_env_fills_total", "Valid fills of another environment than the policy's env, ignored.", m.other_env),
        ("guard_delivery_failures_total", "", m.delivery_failures),
        ("guard_heartbeat_failures_total", "Heartbeats the broker did not take: gateways that hear none for their max_silence halt trading.", m.heartbeat_failures),
        ("guard_changelog_failures_total", "Changelog records the broker did not take: each gives its lineage up, and until the new lineage's first snapshot a takeover restores from its own store or the inputs.", m.changelog_failures),
        ("guard_checkpoints_total", "", m.checkpoints),
        ("guard_checkpoint_failures_total", "", m.checkpoint_failures),
        ("guard_order_waits_expired_total", "", m.order_waits_expired),
        ("guard_inputs_applied_late_total", "Input messages applied after a later-stamped message of another input partition (the broker's watermark did not show them yet): a replay of the same messages by timestamp may decide differently.", m.inputs_applied_late),
        ("guard_order_records_total", "", m.order_records),
        ("guard_order_replay_abandoned_total", "Restored input orders given up (a message never came back): decisions may then differ from those published.", m.order_script_abandoned),
    ] {
        if !help.is_empty() {
            line(format!("# HELP {name} {help}"));
        }
        line(format!("# TYPE {name} counter"));
        line(format!("{name} {value}"));
    }
}

/// The gauges: paused scopes and consumer lag.
fn gauges(status: &Status, out: &mut String) {
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let paused = status.state.gauges.paused;
    line("# TYPE guard_paused_scopes gauge".into());
    line(format!("guard_paused_scopes {paused}"));
    line("# TYPE guard_consumer_lag gauge".into());
    for (partition, lag) in &status.metrics.lag {
        line(format!(
            "guard_consumer_lag{{partition=\"{partition}\"}} {lag}"
        ));
    }
}

/// Fill received to command acknowledged, as a summary of quantiles.
fn latency(h: &Histogram<u64>, out: &mut String) {
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("# HELP guard_decision_latency_seconds Fill received to command acknowledged by the broker.".into());
    line("# TYPE guard_decision_latency_seconds summary".into());
    for q in [0.5, 0.9, 0.99, 0.999] {
        let v = if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1e6
        };
        line(format!(
            "guard_decision_latency_seconds{{quantile=\"{q}\"}} {v}"
        ));
    }
    line(format!("guard_decision_latency_seconds_count {}", h.len()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{fill, t};
    use crate::engine::EngineOptions;
    use crate::message::Input;
    use crate::policy::Policy;

    #[test]
    fn metrics_show_the_role_and_whether_the_guard_is_degraded() {
        let mut status = Status {
            role: "standby",
            ..Status::default()
        };
        let text = prometheus(&status);
        for line in [
            "guard_degraded 0",
            "guard_role{role=\"standby\"} 1",
            "guard_role{role=\"active\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        status.role = "aggregator";
        status.degraded = true;
        let text = prometheus(&status);
        for line in [
            "guard_degraded 1",
            "guard_role{role=\"aggregator\"} 1",
            "guard_role{role=\"standby\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn metrics_show_modes_pending_acks_and_daily_books() {
        let view = json!({
            "paused": [{"scope": {"kind": "global"}}],
            "reduce_only": [{"scope": {"kind": "global"}}, {"scope": {"kind": "strategy", "strategy_id": "a"}}],
            "acks_pending": [{"command_id": "c"}],
            "daily_loss": [{"group": "a"}],
        });
        let status = Status {
            state: Arc::new(StateText {
                json: view.to_string(),
                gauges: StateGauges::of(&view),
            }),
            ..Status::default()
        };
        let text = prometheus(&status);
        for line in [
            "guard_scopes{mode=\"paused\"} 1",
            "guard_scopes{mode=\"reduce_only\"} 2",
            "guard_acks_pending 1",
            "guard_daily_books{rule=\"daily_loss\"} 1",
            "guard_daily_books{rule=\"daily_drawdown\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn the_state_text_is_the_state_view_rendered() {
        let mut engine = Engine::new(Policy::default(), EngineOptions::default());
        for (i, (strategy, bps)) in [
            ("alpha", 7.0),
            ("beta", 9.0),
            ("alpha", 8.0),
            ("alpha", 1.0),
        ]
        .into_iter()
        .enumerate()
        {
            let at = t(60.0 * i as f64);
            engine.apply(&Input::Fill(fill(&format!("f{i}"), strategy, bps, at)));
        }
        let view = state_view(&engine);
        assert_eq!(
            view["slippage_windows"].as_array().map(Vec::len),
            Some(2),
            "two windows hold breaches: {view}"
        );
        let text = state_text(&engine);
        let parsed: Value = serde_json::from_str(&text.json).unwrap();
        assert_eq!(parsed, view);
        assert_eq!(text.gauges, StateGauges::of(&view));
        assert_eq!(text.gauges.paused, view["paused"].as_array().unwrap().len());
    }
}
