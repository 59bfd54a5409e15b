//! Reading replay files: JSON Lines, one envelope a line, in file order.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One line of a replay file, without its line end.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The file's name as given.
    pub file: &'a str,
    /// 1-based line number.
    pub number: u64,
    /// The line's bytes.
    pub bytes: &'a [u8],
}

/// A replay file that cannot be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct SourceError {
    /// The file.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

/// A JSON Lines replay file read line by line with one reused buffer.
pub struct JsonlSource {
    name: String,
    path: PathBuf,
    reader: Box<dyn BufRead>,
    buffer: Vec<u8>,
    number: u64,
    size: Option<u64>,
    consumed: u64,
}

impl JsonlSource {
    /// Opens `path`; `-` reads standard input.
    ///
    /// # Errors
    /// [`SourceError`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let (reader, size): (Box<dyn Read>, Option<u64>) = if name == "-" {
            (Box::new(std::io::stdin()), None)
        } else {
            let file = File::open(path).map_err(|source| SourceError {
                path: path.to_owned(),
                source,
            })?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        };
        Ok(JsonlSource {
            name,
            path: path.to_owned(),
            reader: Box::new(BufReader::with_capacity(1 << 20, reader)),
            buffer: Vec::with_capacity(4096),
            number: 0,
            size,
            consumed: 0,
        })
    }

    /// The next line, skipping blank ones; `None` at the end of the file.
    ///
    /// # Errors
    /// [`SourceError`] when reading fails.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, SourceError> {
        loop {
            self.buffer.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| SourceError {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
            self.consumed += read as u64;
            let mut end = self.buffer.len();
            while end > 0 && matches!(self.buffer[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if self.buffer[..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Line {
                file: &self.name,
                number: self.number,
                bytes: &self.buffer[..end],
            }));
        }
    }

    /// Bytes read so far and the file's size, for progress.
    pub fn progress(&self) -> (u64, Option<u64>) {
        (self.consumed, self.size)
    }
}
