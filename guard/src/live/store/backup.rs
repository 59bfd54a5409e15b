//! The backup file of `guard snapshot export|import` and of `GET /snapshot` (runbook
//! §10): one JSON object `{"format", "sha256", "body"}` whose body is the checkpoint
//! (engine snapshot, input offsets, outbox) and every dedup id within the horizon, and
//! whose checksum is the SHA-256 of the body's exact text. A damaged or foreign file is
//! refused before anything of it reaches a store.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Checkpoint, Restored};

/// The format this build writes and reads.
pub const FORMAT: &str = "noctria-guard-snapshot/2";

#[derive(Serialize, Deserialize)]
struct Body {
    checkpoint: Checkpoint,
    /// `key:second`, the key as 32 hex digits.
    seen: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    sha256: String,
    body: Box<serde_json::value::RawValue>,
}

/// Why a backup cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a backup at all.
    #[error("not a guard snapshot: {0}")]
    NotSnapshot(String),
    /// Another format.
    #[error("format {0:?}; this build reads {FORMAT:?}")]
    Format(String),
    /// The body is not what was written.
    #[error("fails its checksum: the file is damaged")]
    Checksum,
    /// The body does not parse.
    #[error("{0}")]
    Body(String),
    /// A dedup entry is not `key:second`.
    #[error("a seen entry is not key:second: {0:?}")]
    Seen(String),
}

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The backup file's text for a restored checkpoint.
///
/// # Errors
/// [`BackupError::Body`] when the checkpoint does not serialise.
pub fn encode(restored: &Restored) -> Result<String, BackupError> {
    let body = Body {
        // Where the order records begin on this guard's state topic, and which are
        // left to delete, mean nothing to a guard the backup restores under another
        // one: it reads its journal from the start.
        checkpoint: Checkpoint {
            journal_from: None,
            order_runs: Vec::new(),
            order_cuts: Vec::new(),
            ..restored.checkpoint.clone()
        },
        seen: restored
            .seen
            .iter()
            .map(|e| format!("{:032x}:{}", e.key(), e.second()))
            .collect(),
    };
    let body = serde_json::to_string(&body).map_err(|e| BackupError::Body(e.to_string()))?;
    // A struct, not json!(): the RawValue is written verbatim, as the checksum saw it.
    let file = File {
        format: FORMAT.to_owned(),
        sha256: digest(body.as_bytes()),
        body: serde_json::value::RawValue::from_string(body)
            .map_err(|e| BackupError::Body(e.to_string()))?,
    };
    serde_json::to_string(&file).map_err(|e| BackupError::Body(e.to_string()))
}

/// Reads a backup file's text, checking format and checksum before trusting its body.
///
/// # Errors
/// [`BackupError`] for another format, a checksum mismatch, a body or a dedup entry
/// that does not parse.
pub fn decode(text: &str) -> Result<Restored, BackupError> {
    let file: File =
        serde_json::from_str(text).map_err(|e| BackupError::NotSnapshot(e.to_string()))?;
    if file.format != FORMAT {
        return Err(BackupError::Format(file.format));
    }
    if digest(file.body.get().as_bytes()) != file.sha256 {
        return Err(BackupError::Checksum);
    }
    let body: Body =
        serde_json::from_str(file.body.get()).map_err(|e| BackupError::Body(e.to_string()))?;
    let seen = body
        .seen
        .iter()
        .map(|entry| {
            let parsed = entry.split_once(':').and_then(|(hex, second)| {
                Some(super::SeenEntry::new(
                    u128::from_str_radix(hex, 16).ok()?,
                    second.parse().ok()?,
                ))
            });
            parsed.ok_or_else(|| BackupError::Seen(entry.clone()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Restored {
        checkpoint: Checkpoint {
            journal_from: None,
            order_runs: Vec::new(),
            order_cuts: Vec::new(),
            ..body.checkpoint
        },
        seen,
    })
}
