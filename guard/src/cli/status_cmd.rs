//! `guard status`: the guard's `/state` as a readable table.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{http_client, Failure};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The guard's HTTP address.
    #[arg(long, env = "GUARD_HTTP", default_value = "http://127.0.0.1:8686")]
    http: String,
    /// Print the raw JSON instead.
    #[arg(long)]
    json: bool,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The items of a JSON array; a missing or malformed field reads as empty, so one odd
/// section does not keep the rest of the status from being shown.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Prints the guard's `/state` as tables, or as the raw JSON with `--json`.
///
/// # Errors
/// A run [`Failure`] when the guard cannot be reached or answers with an error or
/// something that is not JSON.
pub fn run(args: StatusArgs) -> Result<(), Failure> {
    let (code, body) =
        http_client::get(&args.http, "/state", Duration::from_secs(5)).map_err(Failure::run)?;
    if code != 200 {
        return Err(Failure::run(format!(
            "{}/state answered {code}: {body}",
            args.http
        )));
    }
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let state: Value = serde_json::from_str(&body)
        .map_err(|e| Failure::run(format!("{}/state is not JSON: {e}", args.http)))?;
    print_role(&args.http, &state);
    print_paused(&state);
    print_windows(&state);
    print_streaks(&state);
    print_maintenance(&state);
    Ok(())
}

/// The first line: which guard answered, whether it is active and ready, and what
/// policy and clock it decides with.
fn print_role(http: &str, state: &Value) {
    println!(
        "guard at {}: {} ({}), policy {}, clock {}",
        http,
        text(&state["role"]),
        if state["ready"] == Value::Bool(true) {
            "ready"
        } else {
            "not ready"
        },
        text(&state["policy_version"]),
        text(&state["clock"])
    );
}

/// The paused and reduce-only scopes with their reasons, or a line saying trading is
/// allowed: the answer an operator looks for first.
fn print_paused(state: &Value) {
    let paused = items(&state["paused"]);
    let reduce_only = items(&state["reduce_only"]);
    if paused.is_empty() && reduce_only.is_empty() {
        println!("\nPAUSED SCOPES: none — trading is allowed everywhere");
        return;
    }
    for (title, scopes) in [
        ("PAUSED SCOPES", paused),
        (
            "REDUCE-ONLY SCOPES (only orders that reduce a position)",
            reduce_only,
        ),
    ] {
        if scopes.is_empty() {
            continue;
        }
        println!("\n{title}");
        println!("  {:<28} {:<40} SINCE", "SCOPE", "REASONS");
        for p in scopes {
            let scope = match p["scope"]["kind"].as_str() {
                Some("strategy") => format!("strategy:{}", text(&p["scope"]["strategy_id"])),
                _ => "global".into(),
            };
            let mut reasons: Vec<String> = items(&p["reasons"]).iter().map(text).collect();
            reasons.extend(
                items(&p["reduce_only_reasons"])
                    .iter()
                    .map(|r| format!("{} (reduce-only)", text(r))),
            );
            println!(
                "  {:<28} {:<40} {}",
                scope,
                reasons.join(", "),
                text(&p["since"])
            );
        }
    }
}

/// Open slippage windows (the first 20): how close each group is to a trip.
fn print_windows(state: &Value) {
    let windows = items(&state["slippage_windows"]);
    println!("\nOPEN SLIPPAGE WINDOWS: {}", windows.len());
    for w in windows.iter().take(20) {
        let n = w["breaches"].as_array().map_or(0, Vec::len);
        println!(
            "  {:<28} {n} breach(es), last {}",
            text(&w["group"]),
            w["breaches"]
                .as_array()
                .and_then(|b| b.last())
                .map_or("-".into(), |b| text(&b["ts"]))
        );
    }
}

/// Losing streaks (the first 20): how close each strategy is to a trip.
fn print_streaks(state: &Value) {
    let streaks = items(&state["losing_streaks"]);
    println!("\nLOSING STREAKS: {}", streaks.len());
    for s in streaks.iter().take(20) {
        println!(
            "  {:<28} {} losing fill(s)",
            text(&s["strategy_id"]),
            s["losing_fills"].as_array().map_or(0, Vec::len)
        );
    }
}

/// The maintenance windows in force, only when there are any.
fn print_maintenance(state: &Value) {
    let maintenance = items(&state["maintenance_active"]);
    if !maintenance.is_empty() {
        println!(
            "\nIN MAINTENANCE WINDOW: {}",
            maintenance.iter().map(text).collect::<Vec<_>>().join(", ")
        );
    }
    if state["maintenance_awaits_operator"] == Value::Bool(true) {
        println!(
            "\nMAINTENANCE AWAITS AN OPERATOR: a window with resume = \"operator\" held the global pause; run the health check, then resume global"
        );
    }
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The guard's HTTP address.
    #[arg(long, env = "GUARD_HTTP", default_value = "http://127.0.0.1:8686")]
    http: String,
    /// Check readiness (/readyz: state restored, inputs assigned, broker reachable,
    /// publishing) instead of liveness (/healthz).
    #[arg(long)]
    ready: bool,
}

/// `guard healthcheck`: exit 0 when the guard answers 200, else 1 — for container
/// health checks and probes, with no curl in the image.
pub fn healthcheck(args: HealthcheckArgs) -> Result<(), Failure> {
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let (code, body) =
        http_client::get(&args.http, path, Duration::from_secs(3)).map_err(Failure::run)?;
    if code == 200 {
        println!("{path}: {}", body.trim());
        Ok(())
    } else {
        Err(Failure::run(format!(
            "{path} answered {code}: {}",
            body.trim()
        )))
    }
}
