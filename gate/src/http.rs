//! The gateway's HTTP face: `GET /healthz` (whether the gate has state and hears
//! the guard), `GET /metrics` (Prometheus text) and `GET /gate?strategy=ID` (what
//! the strategy may do now, and why). Served on a small runtime of its own so the
//! gateway's threads stay plain threads.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::oneshot;

use crate::handle::{GateHandle, ShellCounters};
use crate::state::GateState;
use crate::verdict::Verdict;
use crate::wire::Mode;

/// A running HTTP server.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks one) and serves `handle`'s gate.
    ///
    /// # Errors
    /// When the address cannot be bound or the runtime cannot start.
    pub fn start(addr: SocketAddr, handle: GateHandle) -> std::io::Result<HttpServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gate-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let served = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            axum::serve(listener, router(handle))
                                .with_graceful_shutdown(async {
                                    let _ = stopped.await;
                                })
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    if let Err(e) = served {
                        tracing::error!(error = %e, "HTTP server failed");
                    }
                });
            })?;
        Ok(HttpServer {
            addr,
            shutdown,
            thread,
        })
    }

    /// The address served (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server's thread.
    pub fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.thread.join();
    }
}

/// The routes, over `handle`.
pub fn router(handle: GateHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/gate", get(gate))
        .with_state(handle)
}

async fn healthz(State(handle): State<GateHandle>) -> Response {
    let state = handle.state();
    Json(json!({
        "gateway": state.gateway,
        "caught_up": state.caught_up,
        "heard": state.heard,
        "fail_closed": state.fail_closed,
    }))
    .into_response()
}

async fn metrics(State(handle): State<GateHandle>) -> Response {
    let text = prometheus(&handle.state(), handle.shell().read());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

async fn gate(State(handle): State<GateHandle>, RawQuery(query): RawQuery) -> Response {
    let Some(strategy) = query.as_deref().and_then(|q| query_param(q, "strategy")) else {
        let error = "the query parameter `strategy` is required: /gate?strategy=ID";
        return (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    };
    let now_ms = handle.now_ms();
    let gate = handle.read();
    let verdict = gate.may_trade(&strategy, now_ms);
    let reasons: Vec<&str> = match &verdict {
        Verdict::Paused(why) => why.reasons().collect(),
        Verdict::Running => Vec::new(),
        // Reduce-only carries no borrowed reasons: name the reduce-only scopes'.
        Verdict::ReduceOnly => {
            let own = gate.scope(&crate::Scope::strategy(strategy.as_str()));
            [Some(gate.global()), own]
                .into_iter()
                .flatten()
                .filter(|s| s.mode == Mode::ReduceOnly)
                .flat_map(|s| s.reasons.iter().map(String::as_str))
                .collect()
        }
    };
    let body = json!({"strategy": strategy, "verdict": verdict.as_str(), "reasons": reasons});
    drop(gate);
    Json(body).into_response()
}

/// The value of `name` in a URL query, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
        .filter(|value| !value.is_empty())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Prometheus text of `/metrics`: the core's and the shell's counters, scopes by
/// mode, seconds since the last heartbeat of an active guard, whether the gate fails
/// closed (and why).
pub fn prometheus(state: &GateState, shell: ShellCounters) -> String {
    let mut out = String::new();
    counters(state, shell, &mut out);
    gauges(state, &mut out);
    out
}

fn counters(state: &GateState, shell: ShellCounters, out: &mut String) {
    let c = &state.counters;
    let counters = [
        ("records", c.records, "guard_pause_state records folded."),
        (
            "commands",
            c.commands,
            "guard_command messages received, repeats included.",
        ),
        (
            "commands_applied",
            c.commands_applied,
            "Commands that set their scope's mode.",
        ),
        (
            "repeats_dropped",
            c.repeats_dropped,
            "Commands and records of a decision already folded.",
        ),
        (
            "heartbeats",
            c.heartbeats,
            "guard_heartbeat messages, a standby's included.",
        ),
        (
            "acks_owed",
            c.acks_owed,
            "Acknowledgements owed (one per command id).",
        ),
        (
            "acks_published",
            shell.acks_published,
            "Acknowledgements the broker confirmed.",
        ),
        (
            "acks_failed",
            shell.acks_failed,
            "Acknowledgements that could not be delivered.",
        ),
        (
            "invalid_messages",
            shell.invalid_messages,
            "Messages skipped as not what the contract says.",
        ),
        (
            "fail_closed_episodes",
            c.fail_closed_episodes,
            "Times the gate started failing closed.",
        ),
    ];
    for (name, value, help) in counters {
        let _ = writeln!(out, "# HELP gate_{name}_total {help}");
        let _ = writeln!(out, "# TYPE gate_{name}_total counter");
        let _ = writeln!(out, "gate_{name}_total {value}");
    }
}

fn gauges(state: &GateState, out: &mut String) {
    out.push_str("# HELP gate_scopes Scopes the guard has spoken of (and global), by the mode it gave them.\n");
    out.push_str("# TYPE gate_scopes gauge\n");
    for mode in [Mode::Running, Mode::ReduceOnly, Mode::Paused] {
        let n = state.scopes_in(mode);
        let _ = writeln!(out, "gate_scopes{{mode=\"{}\"}} {n}", mode.as_str());
    }
    out.push_str("# HELP gate_seconds_since_active_heartbeat Since the newest heartbeat of an active guard (NaN: never).\n");
    out.push_str("# TYPE gate_seconds_since_active_heartbeat gauge\n");
    let since = state
        .ms_since_heartbeat
        .map_or("NaN".to_owned(), |ms| format!("{:.3}", ms as f64 / 1e3));
    let _ = writeln!(out, "gate_seconds_since_active_heartbeat {since}");
    out.push_str("# HELP gate_caught_up Whether guard_pause_state was read to its end.\n");
    out.push_str("# TYPE gate_caught_up gauge\n");
    let _ = writeln!(out, "gate_caught_up {}", u8::from(state.caught_up));
    out.push_str("# HELP gate_fail_closed Whether every strategy is paused because the gate fails closed, by reason.\n");
    out.push_str("# TYPE gate_fail_closed gauge\n");
    for reason in ["no_state", "guard_silent"] {
        let on = u8::from(state.fail_closed == Some(reason));
        let _ = writeln!(out, "gate_fail_closed{{reason=\"{reason}\"}} {on}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Gate, Now};

    #[test]
    fn the_strategy_is_read_from_the_query_percent_decoded() {
        assert_eq!(
            query_param("strategy=alpha", "strategy").as_deref(),
            Some("alpha")
        );
        assert_eq!(
            query_param("x=1&strategy=a%3Ab+c", "strategy").as_deref(),
            Some("a:b c")
        );
        assert_eq!(query_param("strategy=", "strategy"), None);
        assert_eq!(query_param("strategies=alpha", "strategy"), None);
        assert_eq!(
            query_param("strategy=100%", "strategy").as_deref(),
            Some("100%")
        );
    }

    #[test]
    fn metrics_say_whether_the_gate_fails_closed_and_count_what_it_folded() {
        let mut gate = Gate::new("gw-1", 3_000);
        let now = Now {
            mono_ms: 0,
            utc_ms: 0,
        };
        gate.tick(now);
        let shell = ShellCounters {
            acks_published: 2,
            ..ShellCounters::default()
        };
        let text = prometheus(&gate.state(0), shell);
        for line in [
            "gate_fail_closed{reason=\"no_state\"} 1",
            "gate_fail_closed{reason=\"guard_silent\"} 0",
            "gate_fail_closed_episodes_total 1",
            "gate_acks_published_total 2",
            "gate_seconds_since_active_heartbeat NaN",
            "gate_scopes{mode=\"running\"} 1",
            "gate_caught_up 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
