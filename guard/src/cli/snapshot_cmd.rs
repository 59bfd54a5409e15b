//! `guard snapshot export|import`: backup and restore of the guard's state (runbook
//! §10) as one versioned, checksummed file ([`guard::live::store::backup`]): the
//! checkpoint (engine snapshot, input offsets, outbox) and every dedup id. Export
//! reads a stopped guard's state dir, or asks a running guard (`--http`, its last
//! committed checkpoint); import needs a stopped guard (sled locks its directory).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use guard::live::store::{backup, Restored};
use guard::live::{SledStore, Store};

use super::{http_client, Failure};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    action: SnapshotAction,
}

#[derive(Subcommand, Debug)]
enum SnapshotAction {
    /// Write the state of a guard to FILE: of a stopped guard from its state dir, or
    /// of a running one over HTTP (its last committed checkpoint; the bearer token —
    /// an operator's or a viewer's — from GUARD_OPS_TOKEN).
    ///
    /// Examples:
    ///   guard snapshot export --state-dir /var/lib/noctria-guard backup.json
    ///   GUARD_OPS_TOKEN=… guard snapshot export --http http://127.0.0.1:8686 backup.json
    #[command(verbatim_doc_comment)]
    Export {
        /// The state directory of a stopped guard (ignored with --http).
        #[arg(long, env = "GUARD_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// A running guard's HTTP address (GET /snapshot).
        #[arg(long)]
        http: Option<String>,
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

/// Runs `guard snapshot export` or `guard snapshot import`.
///
/// # Errors
/// A usage [`Failure`] for a file that is not a sound snapshot or a directory that
/// already holds state; a run [`Failure`] when the store cannot be read or written.
pub fn run(args: SnapshotArgs) -> Result<(), Failure> {
    match args.action {
        SnapshotAction::Export {
            state_dir,
            http,
            file,
        } => match (state_dir, http) {
            (_, Some(base)) => export_running(base.as_str(), &file),
            (Some(dir), None) => export(&dir, &file),
            (None, None) => Err(Failure::usage("say --state-dir DIR or --http URL")),
        },
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
    let text = backup::encode(&restored).map_err(|e| Failure::run(e.to_string()))?;
    write_snapshot(file, &text, &restored)
}

/// Asks a running guard for its last committed checkpoint and writes it to `file`,
/// after checking it reads back.
///
/// # Errors
/// A run [`Failure`] when the guard cannot be reached or refuses (the message says
/// why: token, standby, no checkpoint yet), or the file cannot be written.
fn export_running(base: &str, file: &Path) -> Result<(), Failure> {
    let token = std::env::var("GUARD_OPS_TOKEN").unwrap_or_default();
    let auth = format!("Bearer {token}");
    let (code, body) = http_client::get_with(
        base,
        "/snapshot",
        &[("Authorization", auth.as_str())],
        std::time::Duration::from_secs(60),
    )
    .map_err(Failure::run)?;
    if code != 200 {
        return Err(Failure::run(format!(
            "{base}/snapshot answered {code}: {body}"
        )));
    }
    let restored = backup::decode(&body)
        .map_err(|e| Failure::run(format!("{base}/snapshot sent a snapshot that {e}")))?;
    write_snapshot(file, &body, &restored)
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

/// Writes a backup's text to `file` and says what it holds.
///
/// # Errors
/// A run [`Failure`] when the file cannot be written.
fn write_snapshot(file: &Path, text: &str, restored: &Restored) -> Result<(), Failure> {
    std::fs::write(file, text)
        .map_err(|e| Failure::run(format!("cannot write {}: {e}", file.display())))?;
    println!(
        "exported checkpoint {} ({} input partitions, {} seen ids, {} outbox) to {}",
        restored.checkpoint.seq,
        restored.checkpoint.offsets.len(),
        restored.seen.len(),
        restored.checkpoint.outbox.len(),
        file.display()
    );
    Ok(())
}

/// Restores `file` into `state_dir`, refusing to overwrite state unless `force`.
///
/// # Errors
/// A usage [`Failure`] for an unsound file or a directory that already holds state; a
/// run [`Failure`] when the store cannot be opened or written.
fn import(state_dir: &Path, file: &Path, force: bool) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let restored =
        backup::decode(&text).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
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
    store
        .save(&restored.checkpoint, &restored.seen.as_slice().into())
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
