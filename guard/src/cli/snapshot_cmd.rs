//! `guard snapshot export|import`: backup and restore of the guard's state (runbook
//! §10) as one versioned, checksummed file: the checkpoint (engine snapshot, input
//! offsets, outbox) and every dedup id. The guard must be stopped (sled locks its
//! directory).

use std::path::{Path, PathBuf};

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

/// Runs `guard snapshot export` or `guard snapshot import`.
///
/// # Errors
/// A usage [`Failure`] for a file that is not a sound snapshot or a directory that
/// already holds state; a run [`Failure`] when the store cannot be read or written.
pub fn run(args: SnapshotArgs) -> Result<(), Failure> {
    match args.action {
        SnapshotAction::Export { state_dir, file } => export(&state_dir, &file),
        SnapshotAction::Import {
            state_dir,
            file,
            force,
        } => import(&state_dir, &file, force),
    }
}

/// Writes the checkpoint and dedup ids of a stopped guard to `file`.
///
/// # Errors
/// A run [`Failure`] when the store is locked or empty, or the file cannot be written.
fn export(state_dir: &Path, file: &Path) -> Result<(), Failure> {
    let restored = load_checkpoint(state_dir)?;
    let body = Body {
        checkpoint: restored.checkpoint,
        seen: restored
            .seen
            .iter()
            .map(|(k, second)| format!("{k:032x}:{second}"))
            .collect(),
    };
    let body = serde_json::to_string(&body).map_err(|e| Failure::run(e.to_string()))?;
    write_snapshot(file, body.clone())?;
    let parsed: Body = serde_json::from_str(&body).map_err(|e| Failure::run(e.to_string()))?;
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

/// The stored checkpoint of a stopped guard; sled's lock tells a running one apart.
///
/// # Errors
/// A run [`Failure`] when the store cannot be opened (a running guard holds it) or
/// holds no checkpoint.
fn load_checkpoint(state_dir: &Path) -> Result<Restored, Failure> {
    let store = SledStore::open(state_dir).map_err(|e| {
        Failure::run(format!(
            "{e} (state dir {}; is the guard still running?)",
            state_dir.display()
        ))
    })?;
    store
        .load()
        .map_err(|e| Failure::run(e.to_string()))?
        .ok_or_else(|| Failure::run(format!("{} holds no checkpoint", state_dir.display())))
}

/// Wraps the serialized body in the versioned envelope with its checksum and writes it.
///
/// # Errors
/// A run [`Failure`] when the file cannot be written.
fn write_snapshot(file: &Path, body: String) -> Result<(), Failure> {
    // A struct, not json!(): a RawValue must be written verbatim for the checksum.
    let out = File {
        format: FORMAT.to_owned(),
        sha256: digest(body.as_bytes()),
        body: serde_json::value::RawValue::from_string(body)
            .map_err(|e| Failure::run(e.to_string()))?,
    };
    std::fs::write(
        file,
        serde_json::to_vec(&out).map_err(|e| Failure::run(e.to_string()))?,
    )
    .map_err(|e| Failure::run(format!("cannot write {}: {e}", file.display())))
}

/// Restores `file` into `state_dir`, refusing to overwrite state unless `force`.
///
/// # Errors
/// A usage [`Failure`] for an unsound file or a directory that already holds state; a
/// run [`Failure`] when the store cannot be opened or written.
fn import(state_dir: &Path, file: &Path, force: bool) -> Result<(), Failure> {
    let body = read_snapshot(file)?;
    let seen = parse_seen(&body.seen, file)?;
    let mut store = SledStore::open(state_dir)
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

/// Reads a snapshot file and checks its format and checksum before trusting its body,
/// so a damaged or foreign file never reaches the store.
///
/// # Errors
/// A usage [`Failure`] for an unreadable file, another format, a checksum mismatch or
/// a body that does not parse.
fn read_snapshot(file: &Path) -> Result<Body, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let parsed: File = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{} is not a guard snapshot: {e}", file.display())))?;
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
    serde_json::from_str(parsed.body.get())
        .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))
}

/// Turns the file's `key:second` dedup entries back into the store's form.
///
/// # Errors
/// A usage [`Failure`] naming `file` when any entry is malformed.
fn parse_seen(entries: &[String], file: &Path) -> Result<Vec<(u128, i64)>, Failure> {
    entries
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
        })
}
