//! Archived entries (embedded logs only): a prefix of the log moved out of the database into a
//! bundle file beside it, which the store then reads those entries from.
//!
//! The store knows only the bundle's layout (one header line, then each entry's bytes as one
//! line, then one trailer line, `\n` after each), not its meaning: whoever archives writes and
//! verifies the bundle; the store checks, before deleting a row, that the file holds that row's
//! bytes exactly, and records the file's SHA-256, which it checks again whenever it opens it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{StoreError, StoredEntry};

/// Which file holds the log's first `size` entries, as recorded in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArchive {
    /// Number of entries the file holds: indexes `[0, size)`.
    pub size: u64,
    /// The file's path relative to the database's directory.
    pub file: String,
    /// The file's SHA-256, lowercase hex.
    pub sha256: String,
}

/// An archive file, checked and indexed.
#[derive(Debug)]
pub(crate) struct ArchiveFile {
    pub(crate) record: StoredArchive,
    path: PathBuf,
    /// Where each entry's line starts, then where the trailer starts.
    offsets: Vec<u64>,
}

/// Refuses a file name that is absolute or leaves the database's directory.
pub(crate) fn check_file_name(file: &str) -> Result<(), StoreError> {
    let path = Path::new(file);
    let plain = !file.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(StoreError::ArchiveRefused {
            reason: format!(
                "the archive file {file:?} must be a path inside the database's directory"
            ),
        })
    }
}

impl ArchiveFile {
    /// Opens the file `record` names under `dir`, requiring its recorded SHA-256 and entry count.
    pub(crate) fn open(dir: &Path, record: StoredArchive) -> Result<ArchiveFile, StoreError> {
        let path = dir.join(&record.file);
        let broken = |reason: String| StoreError::Archive {
            path: path.clone(),
            size: record.size,
            sha256: record.sha256.clone(),
            reason,
        };
        let (sha256, offsets) = match index(&path) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(broken("is missing".into()))
            }
            Err(e) => return Err(broken(format!("cannot be read ({e})"))),
        };
        if sha256 != record.sha256 {
            return Err(broken(format!(
                "was changed or replaced (its SHA-256 is now {sha256})"
            )));
        }
        if offsets.len() as u64 != record.size + 1 {
            return Err(broken(format!(
                "holds {} entries, not {}",
                offsets.len().saturating_sub(1),
                record.size
            )));
        }
        Ok(ArchiveFile {
            record,
            path,
            offsets,
        })
    }

    /// Opens a file about to be recorded as holding `size` entries, computing its SHA-256.
    pub(crate) fn candidate(dir: &Path, file: &str, size: u64) -> Result<ArchiveFile, StoreError> {
        check_file_name(file)?;
        let path = dir.join(file);
        let refused = |reason: String| StoreError::ArchiveRefused {
            reason: format!("{}: {reason}", path.display()),
        };
        let (sha256, offsets) = index(&path).map_err(|e| refused(e.to_string()))?;
        if offsets.len() as u64 != size + 1 {
            return Err(refused(format!(
                "it holds {} entries, not {size}",
                offsets.len().saturating_sub(1)
            )));
        }
        Ok(ArchiveFile {
            record: StoredArchive {
                size,
                file: file.to_owned(),
                sha256,
            },
            path,
            offsets,
        })
    }

    /// The entries with indexes in `[from, to)`, `to` at most the archive's size.
    pub(crate) fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let to = to.min(self.record.size);
        if from >= to {
            return Ok(Vec::new());
        }
        let unreadable = |e: io::Error| StoreError::Archive {
            path: self.path.clone(),
            size: self.record.size,
            sha256: self.record.sha256.clone(),
            reason: format!("cannot be read ({e})"),
        };
        let start = self.offsets[from as usize];
        let end = self.offsets[to as usize];
        let mut file = File::open(&self.path).map_err(unreadable)?;
        file.seek(SeekFrom::Start(start)).map_err(unreadable)?;
        let mut bytes = vec![0; usize::try_from(end - start).unwrap_or(usize::MAX)];
        file.read_exact(&mut bytes).map_err(unreadable)?;
        let mut entries = Vec::with_capacity((to - from) as usize);
        for index in from..to {
            let lo = (self.offsets[index as usize] - start) as usize;
            let hi = (self.offsets[index as usize + 1] - start) as usize - 1;
            entries.push(StoredEntry {
                index,
                bytes: bytes[lo..hi].to_vec(),
            });
        }
        Ok(entries)
    }
}

/// The file's SHA-256 and the offsets of its entry lines (every line but the first and last),
/// then of its last line. Every line, the last included, must end with `\n`.
fn index(path: &Path) -> io::Result<(String, Vec<u64>)> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut starts = Vec::new();
    let mut line = Vec::new();
    let mut at = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file does not end with a whole line",
            ));
        }
        hasher.update(&line);
        starts.push(at);
        at += n as u64;
    }
    if starts.len() < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file holds no header and trailer lines",
        ));
    }
    // Entry lines start at the second line; the trailer's start ends the last entry.
    starts.remove(0);
    Ok((hex::encode(hasher.finalize()), starts))
}
