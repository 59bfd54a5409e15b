//! `guard run`: the live guard. Settings come from flags, `GUARD_*` variables and an
//! optional `--config` TOML file, in that order of precedence.

mod settings;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use guard::live::evidence::EvidenceLookup;
use guard::live::http::{self, Auth, HttpState};
use guard::live::operators::Operators;
use guard::live::{kafka, LiveConfig, SledStore, StatusHandle};

use super::Failure;

pub use guard::live::settings::LogFormat;
use settings::resolve;
pub use settings::RunArgs;

/// Installs the tracing subscriber (stderr; `RUST_LOG` filters, default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rdkafka=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Starts the HTTP server and the signal handler on a small runtime of their own; the
/// pipeline keeps the main thread for itself.
///
/// # Errors
/// A run [`Failure`] when the runtime or its thread cannot start; a usage [`Failure`]
/// when the HTTP address cannot be bound (bound here, before anything else starts).
pub fn start_shell(
    config: &LiveConfig,
    status: StatusHandle,
    stop: Arc<AtomicBool>,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("guard-http")
        .build()
        .map_err(|e| Failure::run(format!("cannot start the HTTP runtime: {e}")))?;
    let state = http_state(config, status)?;
    if let Some(path) = config.ops_tokens.clone() {
        runtime.spawn(reload_tokens_on_hangup(path, state.auth.clone()));
    }
    let listener = match config.http_listen {
        Some(addr) => Some(
            http::bind(addr)
                .map_err(|e| Failure::usage(format!("cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    std::thread::Builder::new()
        .name("guard-shell".into())
        .spawn(move || {
            runtime.block_on(serve_until_signal(listener, state, stop));
        })
        .map_err(|e| Failure::run(format!("cannot start the shell thread: {e}")))?;
    Ok(())
}

/// What the HTTP handlers share: the status, and a producer and the operators for
/// `/ops/*` orders. Without tokens every order is refused, so an open port cannot
/// pause trading.
///
/// # Errors
/// A usage [`Failure`] when the tokens file does not read, or when both it and
/// `GUARD_OPS_TOKEN` are set (which would say who gave an order?).
fn http_state(config: &LiveConfig, status: StatusHandle) -> Result<HttpState, Failure> {
    let producer = kafka::producer(config).create().ok();
    let shared = std::env::var("GUARD_OPS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let auth = match (&config.ops_tokens, shared) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "both --ops-tokens and GUARD_OPS_TOKEN are set: use the tokens file (one token per operator) and unset GUARD_OPS_TOKEN",
            ))
        }
        (Some(path), None) => {
            let operators = Operators::load(path).map_err(|e| Failure::usage(e.to_string()))?;
            tracing::info!(file = %path.display(), operators = operators.len(), "ops tokens read: POST /ops/* orders are given in the name of the token's operator");
            Auth::Operators(operators)
        }
        (None, Some(token)) => Auth::Shared(Arc::from(token)),
        (None, None) => {
            tracing::info!("neither --ops-tokens nor GUARD_OPS_TOKEN is set: POST /ops/* will refuse every order");
            Auth::Disabled
        }
    };
    Ok(HttpState {
        status,
        producer,
        ops_topic: config.topics.ops_command.clone(),
        auth: Arc::new(std::sync::RwLock::new(auth)),
        evidence: Some(Arc::new(EvidenceLookup::new(
            config,
            config.policy.state.horizon,
        ))),
    })
}

/// Rereads the tokens file on every SIGHUP; a file that does not read keeps the
/// operators in force (and says why).
async fn reload_tokens_on_hangup(path: std::path::PathBuf, auth: Arc<std::sync::RwLock<Auth>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot handle SIGHUP: the ops tokens file is read only at start");
        return;
    };
    while hangup.recv().await.is_some() {
        match Operators::load(&path) {
            Ok(operators) => {
                tracing::info!(file = %path.display(), operators = operators.len(), "SIGHUP: ops tokens reread");
                *auth.write().unwrap_or_else(|p| p.into_inner()) = Auth::Operators(operators);
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the ops tokens file does not read; the operators in force stay")
            }
        }
    }
}

/// Serves HTTP on `listener` (when there is one) until a signal arrives. The signal
/// handler stays when serving fails (logged): a signal must still stop the guard.
async fn serve_until_signal(
    listener: Option<std::net::TcpListener>,
    state: HttpState,
    stop: Arc<AtomicBool>,
) {
    let signals = stop_on_signal(&stop);
    match listener {
        Some(listener) => {
            tokio::select! {
                result = http::serve_on(listener, state) => {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "the HTTP server stopped");
                    }
                    std::future::pending::<()>().await;
                }
                () = signals => {}
            }
        }
        None => signals.await,
    }
}

/// Waits for Ctrl-C or SIGTERM and raises `stop`, the flag the pipeline's loop checks:
/// a signal ends the run from inside rather than killing the process.
async fn stop_on_signal(stop: &AtomicBool) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: stopping");
    stop.store(true, Ordering::Relaxed);
}

/// Runs the live guard until a signal stops it.
///
/// # Errors
/// A usage [`Failure`] for bad settings; a run [`Failure`] when the store or the
/// pipeline fails.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    if args.print_config {
        return settings::print(&args);
    }
    let rebuild = args.rebuild;
    let scale_out = args.scale_out;
    let (config, log_format) = resolve(&args)?;
    let rules = &config.policy.rules;
    let global = guard::policy::GroupBy::Global;
    if scale_out && rules.slippage.group_by == global {
        return Err(Failure::usage(
            "--scale-out shards the rules by strategy: a slippage window with group_by = \"global\" needs one guard (docs/SCALING.md)",
        ));
    }
    if scale_out
        && rules.daily.group_by == global
        && (rules.daily.max_loss > 0.0 || rules.daily.max_drawdown > 0.0)
    {
        return Err(Failure::usage(
            "--scale-out shards the rules by strategy: daily limits with group_by = \"global\" (one book for all strategies) need one guard (docs/SCALING.md)",
        ));
    }
    init_logs(log_format);
    tracing::info!(brokers = %config.brokers, state_dir = %config.state_dir.display(), policy = %config.policy.version(), instance = %config.instance, scale_out, "guard starting");
    let status = StatusHandle::default();
    let stop = Arc::new(AtomicBool::new(false));
    start_shell(&config, status.clone(), stop.clone())?;
    if scale_out {
        return guard::live::scaled::run(config, status, &stop)
            .map_err(|e| Failure::run(e.to_string()));
    }
    let store = open_store(&config.state_dir, rebuild)?;
    guard::live::standby::run(config, store, status, &stop).map_err(|e| Failure::run(e.to_string()))
}

/// Opens the state store, or with `--rebuild` moves the old one aside first (damaged or
/// not) so the state is rebuilt from the changelog or the inputs.
///
/// # Errors
/// A run [`Failure`] when the store cannot be opened without `--rebuild`: the guard
/// must not start on state it cannot trust. Also when it cannot be moved aside.
fn open_store(state_dir: &Path, rebuild: bool) -> Result<SledStore, Failure> {
    match SledStore::open(state_dir) {
        Ok(store) if !rebuild => Ok(store),
        Ok(store) => {
            drop(store);
            move_aside(state_dir)
        }
        Err(e) if rebuild => {
            tracing::warn!(error = %e, "state store unusable; rebuilding");
            move_aside(state_dir)
        }
        Err(e) => Err(Failure::run(format!(
            "{e} (state dir {}). The guard will not start on a store it cannot trust: run with --rebuild to move it aside and rebuild the state from the changelog or the input topics",
            state_dir.display()
        ))),
    }
}

/// Moves a damaged state directory aside and opens a fresh store in its place.
///
/// # Errors
/// A run [`Failure`] when the directory cannot be renamed or the new store opened.
fn move_aside(dir: &Path) -> Result<SledStore, Failure> {
    if dir.exists() {
        let aside = PathBuf::from(format!(
            "{}.damaged-{}",
            dir.display(),
            guard::time::Timestamp::now().as_micros() / 1_000_000
        ));
        std::fs::rename(dir, &aside)
            .map_err(|e| Failure::run(format!("cannot move {} aside: {e}", dir.display())))?;
        tracing::warn!(moved_to = %aside.display(), "damaged state store moved aside");
    }
    SledStore::open(dir).map_err(|e| Failure::run(format!("{e} (new state dir {})", dir.display())))
}
