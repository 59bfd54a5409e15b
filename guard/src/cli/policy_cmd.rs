//! `guard policy`: validate a policy file and show what it resolves to.
use std::path::PathBuf;

use clap::Args;

use super::{load_policy, Failure};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Policy file (TOML, CONTRACT §3); without it, the runbook's default policy.
    #[arg(long, env = "GUARD_POLICY")]
    policy: Option<PathBuf>,
}

/// Prints the resolved policy as a policy file (every key with the value in force) that
/// `guard policy --policy` reads back to the same `policy_version`, which heads it.
pub fn run(args: PolicyArgs) -> Result<(), Failure> {
    let (_, policy) = load_policy(args.policy.as_deref())?;
    println!("# policy_version = {}", policy.version());
    print!("{}", policy.to_toml());
    Ok(())
}
