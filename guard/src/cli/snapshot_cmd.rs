//! `guard snapshot export|import`: backup and restore of the guard's state (runbook
//! §10) as one versioned, checksummed file: the checkpoint (engine snapshot, input
//! offsets, outbox) and every dedup id. The guard must be stopped (sled locks its
//! directory).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use guard::live::store::{Checkpoint, Restored};
use guard::live::{SledStore, Store};

use super::Failure;

const FORMAT: &str = "noctria-guard-snapshot/2";

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    action: SnapshotAction,
}

#[derive(Subcommand, Debug)]
enum SnapshotAction {
    /// Write the state of a stopped guard to FILE.
    Export {
        /// The guard's state directory.
        #[arg(long, env = "GUARD_STATE_DIR")]
        state_dir: PathBuf,
        /// The backup file to write.
        file: PathBuf,
    },
    /// Restore FILE into a state directory (refused if it already holds state,
    /// unless --force).
    Import {
        /// The guard's state directory.
        #[arg(long, env = "GUARD_STATE_DIR")]
        state_dir: PathBuf,
        /// The backup file to read.
        file: PathBuf,
        /// Replace state that is already there.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Serialize, Deserialize)]
struct Body {
    checkpoint: Checkpoint,
    seen: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    sha256: String,
    body: Box<serde_json::value::RawValue>,
}

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn run(args: SnapshotArgs) -> Result<(), Failure> {
    match args.action {
        SnapshotAction::Export { state_dir, file } => {
            let store = SledStore::open(&state_dir).map_err(|e| {
                Failure::run(format!(
                    "{e} (state dir {}; is the guard still running?)",
                    state_dir.display()
                ))
            })?;
            let restored = store
                .load()
                .map_err(|e| Failure::run(e.to_string()))?
                .ok_or_else(|| {
                    Failure::run(format!("{} holds no checkpoint", state_dir.display()))
                })?;
            let body = Body {
                checkpoint: restored.checkpoint,
                seen: restored
                    .seen
                    .iter()
                    .map(|(k, second)| format!("{k:032x}:{second}"))
                    .collect(),
            };
            let body = serde_json::to_string(&body).map_err(|e| Failure::run(e.to_string()))?;
            // A struct, not json!(): a RawValue must be written verbatim for the checksum.
            let out = File {
                format: FORMAT.to_owned(),
                sha256: digest(body.as_bytes()),
                body: serde_json::value::RawValue::from_string(body.clone())
                    .map_err(|e| Failure::run(e.to_string()))?,
            };
            std::fs::write(
                &file,
                serde_json::to_vec(&out).map_err(|e| Failure::run(e.to_string()))?,
            )
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", file.display())))?;
            let parsed: Body =
                serde_json::from_str(&body).map_err(|e| Failure::run(e.to_string()))?;
            println!(
                "exported checkpoint {} ({} input partitions, {} seen ids, {} outbox) to {}",
                parsed.checkpoint.seq,
                parsed.checkpoint.offsets.len(),
                parsed.seen.len(),
                parsed.checkpoint.outbox.len(),
                file.display()
            );
            Ok(())
        }
        SnapshotAction::Import {
            state_dir,
            file,
            force,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
            let parsed: File = serde_json::from_str(&text).map_err(|e| {
                Failure::usage(format!("{} is not a guard snapshot: {e}", file.display()))
            })?;
            if parsed.format != FORMAT {
                return Err(Failure::usage(format!(
                    "{} has format {:?}; this build reads {FORMAT:?}",
                    file.display(),
                    parsed.format
                )));
            }
            if digest(parsed.body.get().as_bytes()) != parsed.sha256 {
                return Err(Failure::usage(format!(
                    "{} fails its checksum: the file is damaged",
                    file.display()
                )));
            }
            let body: Body = serde_json::from_str(parsed.body.get())
                .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
            let seen: Vec<(u128, i64)> = body
                .seen
                .iter()
                .map(|entry| {
                    let (hex, second) = entry.split_once(':')?;
                    Some((u128::from_str_radix(hex, 16).ok()?, second.parse().ok()?))
                })
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "{}: a seen entry is not key:second",
                        file.display()
                    ))
                })?;
            let mut store = SledStore::open(&state_dir)
                .map_err(|e| Failure::run(format!("{e} (state dir {})", state_dir.display())))?;
            if store
                .load()
                .map_err(|e| Failure::run(e.to_string()))?
                .is_some()
                && !force
            {
                return Err(Failure::usage(format!(
                    "{} already holds state; pass --force to replace it",
                    state_dir.display()
                )));
            }
            let restored = Restored {
                checkpoint: body.checkpoint,
                seen,
            };
            store
                .save(&restored.checkpoint, &restored.seen)
                .map_err(|e| Failure::run(e.to_string()))?;
            println!(
                "imported checkpoint {} ({} input partitions, {} seen ids) into {}",
                restored.checkpoint.seq,
                restored.checkpoint.offsets.len(),
                restored.seen.len(),
                state_dir.display()
            );
            Ok(())
        }
    }
}
