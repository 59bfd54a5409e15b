//! The demo's script: what the synthetic Do layer publishes, step by step, and how
//! each message goes onto its topic.

use guard::message::{Action, Fill, Input, OpsCommand, Scope, Side};
use guard::time::Timestamp;

/// One step of the demo: messages to publish and how many commands they should draw.
pub struct Step {
    /// What the step shows, printed as it starts.
    pub label: &'static str,
    /// The messages the Do layer publishes.
    pub inputs: Vec<Input>,
    /// Commands the guard should answer with; zero for a step that must trip nothing.
    pub expect_commands: usize,
    /// A gateway that stops before the step's messages go out.
    pub silence: Option<&'static str>,
    /// Whether the guard should escalate a command nobody acknowledged in time.
    pub expect_escalation: bool,
}

/// A fill of 100 shares `bps` worse than expected, stamped now: the demo's guard runs
/// on the wall clock.
fn fill(id: &str, strategy: &str, bps: f64, pnl: Option<f64>) -> Input {
    Input::Fill(Fill {
        fill_id: id.into(),
        order_id: Some(format!("o-{id}")),
        strategy_id: strategy.into(),
        strategy_version: None,
        symbol: "7203.T".into(),
        side: Side::Buy,
        qty: 100.0,
        expected_price: 2500.0,
        fill_price: 2500.0 * (1.0 + bps / 10_000.0),
        slippage_bps: None,
        realized_pnl: pnl,
        ts: Timestamp::now(),
        env: None,
    })
}

/// An operator's global resume, as `guard resume` publishes it.
fn resume(id: &str) -> Input {
    Input::Ops(OpsCommand {
        command_id: id.into(),
        action: Action::Resume,
        scope: Scope::Global,
        operator: "demo-operator".into(),
        reason: Some("reviewed with the desk".into()),
        ts: Timestamp::now(),
    })
}

/// The demo's steps. `run` goes into every message id, so two runs never share an id
/// (the guard would drop the second as a duplicate).
pub fn script(run: &str) -> Vec<Step> {
    let id = |s: &str| format!("{run}-{s}");
    vec![
        Step {
            label: "normal trading: 4 fills within 5 bps",
            inputs: (0..4)
                .map(|i| {
                    fill(
                        &id(&format!("n{i}")),
                        if i % 2 == 0 { "alpha" } else { "beta" },
                        1.5,
                        None,
                    )
                })
                .collect(),
            expect_commands: 0,
            silence: None,
            expect_escalation: false,
        },
        Step {
            label: "slippage burst on alpha: 3 fills at 7-9 bps",
            inputs: vec![
                fill(&id("s1"), "alpha", 7.0, None),
                fill(&id("s2"), "alpha", 8.0, None),
                fill(&id("s3"), "alpha", 9.0, None),
            ],
            expect_commands: 1,
            silence: None,
            expect_escalation: false,
        },
        Step {
            label: "operator resumes after review",
            inputs: vec![resume(&id("ops-1"))],
            expect_commands: 1,
            silence: None,
            expect_escalation: false,
        },
        Step {
            label: "losing streak on beta: 5 losing fills",
            inputs: (1..=5)
                .map(|i| {
                    fill(
                        &id(&format!("l{i}")),
                        "beta",
                        0.5,
                        Some(-250.0 * f64::from(i)),
                    )
                })
                .collect(),
            expect_commands: 1,
            silence: None,
            expect_escalation: false,
        },
        Step {
            label: "operator resumes",
            inputs: vec![resume(&id("ops-2"))],
            expect_commands: 1,
            silence: None,
            expect_escalation: false,
        },
        Step {
            label: "gateway gw-osaka goes silent; a slippage burst on gamma",
            inputs: vec![
                fill(&id("g1"), "gamma", 7.0, None),
                fill(&id("g2"), "gamma", 8.0, None),
                fill(&id("g3"), "gamma", 9.0, None),
            ],
            expect_commands: 1,
            silence: Some("gw-osaka"),
            expect_escalation: true,
        },
    ]
}

/// The topic, JSON payload and key of an input, keyed as CONTRACT §1 keys its stream
/// (by strategy or by scope).
pub fn payload(input: &Input) -> (String, Vec<u8>, String) {
    match input {
        Input::Fill(f) => (
            "exec_result".into(),
            serde_json::to_vec(f).unwrap_or_default(),
            f.strategy_id.clone(),
        ),
        Input::Ops(o) => (
            "ops_command".into(),
            serde_json::to_vec(o).unwrap_or_default(),
            o.scope.to_string(),
        ),
        Input::RiskEvent(e) => (
            "risk_event".into(),
            serde_json::to_vec(e).unwrap_or_default(),
            e.scope.to_string(),
        ),
        Input::Release(r) => (
            "strategy_release".into(),
            serde_json::to_vec(r).unwrap_or_default(),
            r.strategy_id.clone(),
        ),
        Input::Ack(a) => (
            "guard_ack".into(),
            serde_json::to_vec(a).unwrap_or_default(),
            a.command_id.clone(),
        ),
    }
}

/// The id a command names as its `trigger`, to time each command from the moment its
/// trigger was sent.
pub fn input_id(input: &Input) -> String {
    match input {
        Input::Fill(f) => f.fill_id.clone(),
        Input::Ops(o) => o.command_id.clone(),
        Input::RiskEvent(e) => e.event_id.clone(),
        Input::Release(r) => format!("{}@{}", r.strategy_id, r.adopted_at),
        Input::Ack(a) => format!("{}@{}", a.command_id, a.gateway),
    }
}
