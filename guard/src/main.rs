//! The `guard` command line. Library errors are typed; here they become one-line
//! messages and exit codes: 0 done, 1 the run failed, 2 bad usage, config or input file.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    guard::live::memory::hold_mmap_threshold();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("guard: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
