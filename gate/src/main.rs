//! `guard-gate`: the reference gateway on its own, for gateways that do not ship the
//! guard binary. Exit codes: 0 stopped by a signal, 1 the run failed, 2 bad usage.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::Parser;

/// Follows the guard's pause state, commands and heartbeats like an order gateway,
/// prints every change of a scope's effective mode as a JSON line, acknowledges every
/// command (guard_ack), and fails closed while it has no state or hears no active
/// guard. With --http-listen it serves /healthz, /metrics and /gate?strategy=ID.
///
/// Example:
///   guard-gate --brokers 127.0.0.1:9092 --gateway gw-tokyo --http-listen 127.0.0.1:9310
#[derive(Parser, Debug)]
#[command(name = "guard-gate", version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    args: gate::gateway::Args,
}

static STOP: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Err(e) = gate::gateway::stop_on_signal(&STOP) {
        eprintln!("guard-gate: cannot handle signals: {e}");
        return ExitCode::from(1);
    }
    match gate::gateway::run(cli.args, &STOP) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guard-gate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
