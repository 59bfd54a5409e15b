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

pub fn run(args: PolicyArgs) -> Result<(), Failure> {
    let (_, policy) = load_policy(args.policy.as_deref())?;
    let json = serde_json::to_string_pretty(&policy).map_err(|e| Failure::run(e.to_string()))?;
    println!("# policy_version = {}", policy.version());
    println!("{json}");
    Ok(())
}
