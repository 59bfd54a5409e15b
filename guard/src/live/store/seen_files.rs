//! The sled store's dedup ids, one file per checkpoint under `STATE_DIR/seen/`.
//!
//! sled kept every block it was given in memory (about twice the ids' size, on top
//! of the engine's own set); plain files cost nothing once written. A block is written
//! to a temporary name, fsynced and renamed before the checkpoint that names it is
//! committed in sled, so a crash leaves either no block or a whole one; a block of a
//! checkpoint sled never committed (its number beyond the committed one) is ignored
//! when loading and replaced when that number is written again.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{SeenBlocks, SeenEntry};

const ENTRY: usize = 24;

/// Writes `bytes` to `path` so that a crash leaves the old file or the whole new one:
/// a temporary file, fsynced, renamed, and the directory fsynced.
pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_durably_with(path, |mut file| file.write_all(bytes))
}

/// Writes a file through `fill` to a temporary name, syncs it and renames it into
/// place, then syncs the directory.
fn write_durably_with(
    path: &Path,
    fill: impl FnOnce(&fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let file = fs::File::create(&temporary)?;
    fill(&file)?;
    file.sync_data()?;
    fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The block files of one store, by (newest event second, checkpoint number).
pub(super) struct SeenFiles {
    dir: PathBuf,
    files: BTreeMap<(i64, u64), PathBuf>,
}

fn name(newest: i64, seq: u64) -> String {
    // The sign bit flipped, so names sort as the seconds do.
    format!("{:016x}-{seq:016x}.ids", (newest as u64) ^ (1 << 63))
}

fn parse(name: &str) -> Option<(i64, u64)> {
    let (newest, seq) = name.strip_suffix(".ids")?.split_once('-')?;
    let newest = u64::from_str_radix(newest, 16).ok()? ^ (1 << 63);
    Some((newest as i64, u64::from_str_radix(seq, 16).ok()?))
}

impl SeenFiles {
    /// The blocks under `dir` (created when missing); leftover temporary files go.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            match parse(&file_name) {
                Some(key) => {
                    files.insert(key, entry.path());
                }
                None if file_name.ends_with(".tmp") => fs::remove_file(entry.path())?,
                None => {}
            }
        }
        Ok(SeenFiles {
            dir: dir.to_owned(),
            files,
        })
    }

    /// Writes the block of checkpoint `seq` durably (replacing any block of an
    /// uncommitted checkpoint numbered `seq` or later).
    pub fn write(&mut self, seq: u64, entries: &SeenBlocks) -> std::io::Result<()> {
        let stale: Vec<(i64, u64)> = self.files.keys().filter(|k| k.1 >= seq).copied().collect();
        for key in stale {
            if let Some(path) = self.files.remove(&key) {
                fs::remove_file(path)?;
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let newest = entries.iter().map(|e| e.second()).max().unwrap_or(i64::MIN);
        let path = self.dir.join(name(newest, seq));
        // Encoded through a small buffer: a backlog's block need not be copied whole.
        write_durably_with(&path, |file| {
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
            for entry in entries.iter() {
                out.write_all(&entry.key().to_be_bytes())?;
                out.write_all(&entry.second().to_be_bytes())?;
            }
            out.flush()
        })?;
        self.files.insert((newest, seq), path);
        Ok(())
    }

    /// Deletes the blocks whose newest entry is before `from` (a committed horizon).
    pub fn forget_before(&mut self, from: i64) -> std::io::Result<()> {
        while let Some(entry) = self.files.first_entry() {
            if entry.key().0 >= from {
                break;
            }
            match fs::remove_file(entry.get()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            entry.remove();
        }
        Ok(())
    }

    /// The entries of the blocks of checkpoints up to `through`, from `from` on.
    ///
    /// # Errors
    /// What is wrong with a block, as text.
    pub fn read(&self, through: u64, from: i64, out: &mut Vec<SeenEntry>) -> Result<(), String> {
        for ((newest, seq), path) in &self.files {
            if *seq > through || *newest < from {
                continue;
            }
            let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if bytes.len() % ENTRY != 0 {
                return Err(format!(
                    "{}: a block of seen ids has a partial entry",
                    path.display()
                ));
            }
            out.extend(
                bytes
                    .chunks_exact(ENTRY)
                    .map(|raw| {
                        SeenEntry::new(
                            u128::from_be_bytes(raw[..16].try_into().expect("16 bytes")),
                            i64::from_be_bytes(raw[16..].try_into().expect("8 bytes")),
                        )
                    })
                    .filter(|entry| entry.second() >= from),
            );
        }
        Ok(())
    }

    /// How many blocks there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.files.len()
    }
}
