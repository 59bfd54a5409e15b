//! `guard gate`: the reference order gateway (the gate library's `gateway::run`), so a
//! host that runs the guard can run a gateway's half of a pause with the same binary.

use std::sync::atomic::AtomicBool;

use clap::Args;

use super::run_cmd::{init_logs, LogFormat};
use super::Failure;

/// `guard gate` flags: the gate library's own.
#[derive(Args, Debug)]
pub struct GateArgs {
    #[command(flatten)]
    args: gate::gateway::Args,
}

/// Raised by SIGINT or SIGTERM: the gateway stops from inside, flushing its
/// acknowledgements.
static STOP: AtomicBool = AtomicBool::new(false);

/// Runs the gateway until a signal stops it.
///
/// # Errors
/// A [`Failure`] with the gateway's message and exit code.
pub fn run(args: GateArgs) -> Result<(), Failure> {
    init_logs(LogFormat::Human);
    gate::gateway::stop_on_signal(&STOP)
        .map_err(|e| Failure::run(format!("cannot handle signals: {e}")))?;
    gate::gateway::run(args.args, &STOP).map_err(|e| Failure {
        code: e.exit_code(),
        message: e.to_string(),
    })
}
