//! The HTTP face of the live guard: health, readiness, Prometheus metrics, the state,
//! and operator orders guarded by bearer tokens: per operator ([`super::operators`]),
//! or one shared token; every order is refused when neither is configured.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rdkafka::producer::FutureProducer;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::evidence::EvidenceLookup;
use super::operators::{Operators, Role};
use super::ops;
use super::status::{prometheus, StatusHandle};
use crate::message::{Action, Scope};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The pipeline's status.
    pub status: StatusHandle,
    /// Publishes operator orders.
    pub producer: Option<FutureProducer>,
    /// The `ops_command` topic.
    pub ops_topic: String,
    /// Who may give orders on `/ops/*`; replaced on SIGHUP.
    pub auth: Arc<RwLock<Auth>>,
    /// Finds the evidence of an explained decision in the input topics (`None`: the
    /// explanation names it by id only).
    pub evidence: Option<Arc<EvidenceLookup>>,
}

/// Who may give orders on `/ops/*`.
#[derive(Debug)]
pub enum Auth {
    /// Nobody: every order is refused.
    Disabled,
    /// One token for everybody (`GUARD_OPS_TOKEN`); the order names its operator in
    /// its body.
    Shared(Arc<str>),
    /// A token per operator (`--ops-tokens`); the order's operator is the token's.
    Operators(Operators),
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/state", get(state_doc))
        .route(
            "/ops/pause",
            post(|s: State<HttpState>, h: HeaderMap, b: Json<OpsBody>| {
                ops_order(s, h, b, Action::Pause)
            }),
        )
        .route(
            "/ops/reduce-only",
            post(|s: State<HttpState>, h: HeaderMap, b: Json<OpsBody>| {
                ops_order(s, h, b, Action::ReduceOnly)
            }),
        )
        .route(
            "/ops/resume",
            post(|s: State<HttpState>, h: HeaderMap, b: Json<OpsBody>| {
                ops_order(s, h, b, Action::Resume)
            }),
        )
        .route("/ops/applied/{command_id}", get(applied))
        .route("/snapshot", get(snapshot))
        .route("/explain/{id}", get(explain))
        .with_state(state)
}

/// Serves until the process ends.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    serve_on(bind(addr)?, state).await
}

/// A listener on `addr`, bound at once (no runtime needed), for [`serve_on`].
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves on a listener from [`bind`] until the process ends (within a runtime).
///
/// # Errors
/// When the listener cannot be handed to the runtime or accepting fails.
pub async fn serve_on(listener: std::net::TcpListener, state: HttpState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    info!(addr = %listener.local_addr()?, "HTTP listening");
    axum::serve(listener, router(state)).await
}

async fn readyz(State(s): State<HttpState>) -> Response {
    let (code, body) = readiness(&s.status.read());
    (code, Json(body)).into_response()
}

/// `/readyz`: 200 only while this instance decides, publishes and is not degraded
/// (failed closed because its state cannot be written or its inputs read).
fn readiness(status: &super::status::Status) -> (StatusCode, serde_json::Value) {
    let body = json!({
        "ready": status.ready,
        "publishing": status.publishing,
        "degraded": status.degraded,
        "role": status.role,
    });
    let code = if status.ready && status.publishing && !status.degraded {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

/// How long `/state` and `/metrics` wait for the view of the state as of the request.
const VIEW_WAIT: Duration = Duration::from_millis(500);

async fn metrics(State(s): State<HttpState>) -> Response {
    s.status.fresh_view(VIEW_WAIT).await;
    let text = prometheus(&s.status.read());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

async fn state_doc(State(s): State<HttpState>) -> Response {
    s.status.fresh_view(VIEW_WAIT).await;
    let status = s.status.read();
    // The state's own object, with the instance's fields added at its end.
    let own = json!({
        "role": status.role,
        "ready": status.ready,
        "offsets": status.offsets,
    })
    .to_string();
    let state = status.state.json.trim_end();
    let doc = match state.strip_suffix('}') {
        Some(open) if open.trim_end().ends_with('{') => own,
        Some(open) => format!("{open},{}", &own[1..]),
        None => own,
    };
    drop(status);
    ([("content-type", "application/json")], doc).into_response()
}

async fn applied(State(s): State<HttpState>, Path(command_id): Path<String>) -> Response {
    let changed = s.status.applied().get(&command_id);
    match changed {
        Some(changed) => Json(json!({"applied": true, "changed": changed})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"applied": false}))).into_response(),
    }
}

/// `GET /explain/ID`: the chain behind one decision of this guard (`guard explain ID
/// --http URL`), its evidence looked up in the input topics on a blocking worker
/// thread; 404 with what the guard keeps when it has no such decision.
async fn explain(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    // `?format=json` (the default) or `?format=text`: `guard explain`'s human text.
    let text = match query.as_deref() {
        None | Some("" | "format=json") => false,
        Some("format=text") => true,
        Some(other) => {
            let why = format!("?{other}: give ?format=json or ?format=text");
            return (StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response();
        }
    };
    let found = s.status.cases().get(&id);
    let role = s.status.read().role;
    let mut case = match found {
        Ok(case) => case,
        Err(unknown) => {
            let oldest = unknown.oldest.map(|t| t.to_string());
            let why = format!(
                "this guard ({role}) keeps no decision {id:?}: it keeps the {} it made since it \
                 started, back to the state's horizon; explain older ones over the recorded \
                 streams with guard explain ID --input FILE",
                unknown.kept
            );
            let body = json!({"error": why, "kept": unknown.kept, "oldest": oldest, "nearest": unknown.nearest});
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
    };
    if let Some(lookup) = s.evidence.clone() {
        let looked = tokio::task::spawn_blocking(move || {
            lookup.complete(&mut case);
            case
        })
        .await;
        case = match looked {
            Ok(case) => case,
            Err(e) => {
                let body = Json(json!({"error": e.to_string()}));
                return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
            }
        };
    }
    if text {
        let body = case.explanation.to_string();
        ([("content-type", "text/plain; charset=utf-8")], body).into_response()
    } else {
        Json(&case.explanation).into_response()
    }
}

/// Body of `POST /ops/pause`, `/ops/reduce-only` and `/ops/resume`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsBody {
    /// `global` or `strategy:ID`.
    scope: String,
    /// Who gives the order: required with the shared token; with per-operator
    /// tokens the token says who, and this is only logged.
    #[serde(default)]
    operator: Option<String>,
    /// Why.
    reason: Option<String>,
}

/// Who reads with `presented` as bearer token (any operator, viewers included), or
/// why it is refused.
fn reader(auth: &Auth, presented: Option<&str>) -> Result<String, (StatusCode, String)> {
    match (auth, presented) {
        (Auth::Disabled, _) => Err((
            StatusCode::FORBIDDEN,
            "disabled: neither --ops-tokens nor GUARD_OPS_TOKEN is configured".into(),
        )),
        (_, None) => Err((StatusCode::UNAUTHORIZED, "missing bearer token".into())),
        (Auth::Shared(token), Some(given))
            if constant_time_eq(token.as_bytes(), given.as_bytes()) =>
        {
            Ok("shared-token".into())
        }
        (Auth::Operators(operators), Some(given)) => operators
            .identify(given)
            .map(|op| op.name.clone())
            .ok_or((StatusCode::UNAUTHORIZED, "unknown bearer token".into())),
        _ => Err((StatusCode::UNAUTHORIZED, "wrong bearer token".into())),
    }
}

/// `GET /snapshot`: the last committed checkpoint of this running guard, with every
/// dedup id, as the backup file `guard snapshot import` reads (runbook §10). The
/// store writer answers between two writes, so it is always one whole checkpoint;
/// neither the decision thread nor the disk writes wait for it.
async fn snapshot(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let who = {
        let auth = s.auth.read().unwrap_or_else(|p| p.into_inner());
        reader(&auth, presented)
    };
    let who = match who {
        Ok(who) => who,
        Err((code, why)) => {
            warn!(outcome = %code, why, "snapshot export refused");
            return (code, Json(json!({"error": why}))).into_response();
        }
    };
    let ask = s.status.read().exports.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let ask = ask.ok_or("this instance has no store to export: a standby, or a scaled-out instance (export each stopped instance's state dir)")?;
        let (reply, answer) = std::sync::mpsc::channel();
        ask.send(reply).map_err(|_| "the store writer has stopped")?;
        match answer.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Some(restored))) => Ok(restored),
            Ok(Ok(None)) => Err("no checkpoint yet"),
            Ok(Err(_)) => Err("the store cannot be read"),
            Err(_) => Err("the store writer did not answer within 30 s"),
        }
    })
    .await;
    let restored = match answer {
        Ok(Ok(restored)) => restored,
        Ok(Err(why)) => {
            warn!(operator = %who, why, "snapshot export failed");
            return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": why}))).into_response();
        }
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
    };
    match super::store::backup::encode(&restored) {
        Ok(text) => {
            info!(operator = %who, checkpoint = restored.checkpoint.seq, seen = restored.seen.len(), "snapshot exported");
            ([("content-type", "application/json")], text).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Who gives an order with `presented` as bearer token, or why it is refused.
fn identify(
    auth: &Auth,
    presented: Option<&str>,
    claimed: Option<&str>,
) -> Result<String, (StatusCode, String)> {
    let refuse = |code, why: &str| Err((code, why.to_owned()));
    match (auth, presented) {
        (Auth::Disabled, _) => refuse(
            StatusCode::FORBIDDEN,
            "ops endpoints are disabled: neither --ops-tokens nor GUARD_OPS_TOKEN is configured",
        ),
        (_, None) => refuse(StatusCode::UNAUTHORIZED, "missing bearer token"),
        (Auth::Shared(token), Some(given)) => {
            if !constant_time_eq(token.as_bytes(), given.as_bytes()) {
                return refuse(StatusCode::UNAUTHORIZED, "wrong bearer token");
            }
            match claimed.map(str::trim) {
                Some(name) if !name.is_empty() && name != "unknown" => Ok(name.to_owned()),
                _ => refuse(
                    StatusCode::BAD_REQUEST,
                    "operator must name who gives the order (not empty, not \"unknown\")",
                ),
            }
        }
        (Auth::Operators(operators), Some(given)) => match operators.identify(given) {
            None => refuse(StatusCode::UNAUTHORIZED, "unknown bearer token"),
            Some(op) if op.role == Role::Viewer => Err((
                StatusCode::FORBIDDEN,
                format!("{} is a viewer: viewers may read, not give orders", op.name),
            )),
            Some(op) => Ok(op.name.clone()),
        },
    }
}

/// Compares in time independent of where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

async fn ops_order(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Json(body): Json<OpsBody>,
    action: Action,
) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let claimed = body.operator.as_deref();
    let verdict = {
        let auth = s.auth.read().unwrap_or_else(|p| p.into_inner());
        identify(&auth, presented, claimed)
    };
    // Audit every attempt, with who it was (never the token itself).
    let operator = match verdict {
        Ok(operator) => operator,
        Err((code, why)) => {
            warn!(action = action.as_str(), scope = %body.scope, claimed = claimed.unwrap_or(""), outcome = %code, why, "ops order refused");
            return (code, Json(json!({"error": why}))).into_response();
        }
    };
    let scope = match Scope::parse_cli(&body.scope) {
        Ok(scope) => scope,
        Err(e) => {
            warn!(action = action.as_str(), scope = %body.scope, operator, outcome = %StatusCode::BAD_REQUEST, why = %e, "ops order refused");
            return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
        }
    };
    let Some(producer) = &s.producer else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "no producer"})),
        )
            .into_response();
    };
    let command = ops::command(action, scope, &operator, body.reason);
    match ops::publish(producer, &s.ops_topic, &command, Duration::from_secs(10)).await {
        Ok(()) => {
            info!(action = action.as_str(), scope = %command.scope, operator = %command.operator, claimed = claimed.unwrap_or(""), command_id = %command.command_id, "ops order accepted and published");
            (
                StatusCode::ACCEPTED,
                Json(json!({"command_id": command.command_id})),
            )
                .into_response()
        }
        Err(e) => {
            warn!(action = action.as_str(), scope = %command.scope, operator = %command.operator, command_id = %command.command_id, error = %e, "ops order could not be published");
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn readyz_is_ok_only_while_ready_publishing_and_not_degraded() {
        use super::{readiness, StatusCode};
        let mut status = super::super::status::Status {
            ready: true,
            publishing: true,
            role: "active",
            ..Default::default()
        };
        assert_eq!(readiness(&status).0, StatusCode::OK);
        status.degraded = true;
        let (code, body) = readiness(&status);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["degraded"], true);
        status.degraded = false;
        status.publishing = false;
        assert_eq!(readiness(&status).0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
