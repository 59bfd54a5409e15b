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
    println!(
        "guard at {}: {} ({}), policy {}, clock {}",
        args.http,
        text(&state["role"]),
        if state["ready"] == Value::Bool(true) {
            "ready"
        } else {
            "not ready"
        },
        text(&state["policy_version"]),
        text(&state["clock"])
    );
    let paused = state["paused"].as_array().cloned().unwrap_or_default();
    if paused.is_empty() {
        println!("\nPAUSED SCOPES: none — trading is allowed everywhere");
    } else {
        println!("\nPAUSED SCOPES");
        println!("  {:<28} {:<40} SINCE", "SCOPE", "REASONS");
        for p in paused {
            let scope = match p["scope"]["kind"].as_str() {
                Some("strategy") => format!("strategy:{}", text(&p["scope"]["strategy_id"])),
                _ => "global".into(),
            };
            let reasons: Vec<String> = p["reasons"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect();
            println!(
                "  {:<28} {:<40} {}",
                scope,
                reasons.join(", "),
                text(&p["since"])
            );
        }
    }
    let windows = state["slippage_windows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
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
    let streaks = state["losing_streaks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!("\nLOSING STREAKS: {}", streaks.len());
    for s in streaks.iter().take(20) {
        println!(
            "  {:<28} {} losing fill(s)",
            text(&s["strategy_id"]),
            s["losing_fills"].as_array().map_or(0, Vec::len)
        );
    }
    let maintenance = state["maintenance_active"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !maintenance.is_empty() {
        println!(
            "\nIN MAINTENANCE WINDOW: {}",
            maintenance.iter().map(text).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
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
