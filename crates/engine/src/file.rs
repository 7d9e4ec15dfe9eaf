//! Files that appear complete or not at all, written as a stream.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// A file being written: bytes go to `NAME.partial` beside it (owner-only), which
/// [`AtomicFile::commit`] flushes, syncs and renames into place. Dropped before that — an
/// export that failed half-way — the partial file is removed and nothing appears at the path.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path`. With `replace` false an existing file there is refused (and
    /// checked again at commit); with it true the commit replaces it.
    pub fn create(path: &Path, replace: bool) -> Result<Self, EngineError> {
        if !replace && path.exists() {
            return Err(exists(path));
        }
        let name = path
            .file_name()
            .ok_or_else(|| EngineError::Invalid(format!("{} names no file", path.display())))?;
        let mut tmp_name = name.to_owned();
        tmp_name.push(".partial");
        let tmp = path.with_file_name(tmp_name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| cannot_write(path, &e))?;
        Ok(Self {
            path: path.to_owned(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// Where the bytes go until the commit.
    pub fn writer(&mut self) -> &mut BufWriter<fs::File> {
        self.out.as_mut().expect("an uncommitted file has a writer")
    }

    /// Puts the complete file in place; returns its length.
    pub fn commit(mut self, replace: bool) -> Result<u64, EngineError> {
        let out = self.out.take().expect("committed once");
        let finish = || -> std::io::Result<u64> {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            let len = file.metadata()?.len();
            if !replace && self.path.exists() {
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            fs::rename(&self.tmp, &self.path)?;
            Ok(len)
        };
        finish().map_err(|e| {
            let _ = fs::remove_file(&self.tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                exists(&self.path)
            } else {
                cannot_write(&self.path, &e)
            }
        })
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

fn exists(path: &Path) -> EngineError {
    EngineError::Invalid(format!(
        "{} already exists; choose another name",
        path.display()
    ))
}

fn cannot_write(path: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Invalid(format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_complete_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut f = AtomicFile::create(&path, false).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert!(!path.exists(), "an abandoned file never appears");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nor its partial file"
        );

        let mut f = AtomicFile::create(&path, false).unwrap();
        f.write_all(b"whole\n").unwrap();
        assert!(!path.exists(), "not before the commit");
        assert_eq!(f.commit(false).unwrap(), 6);
        assert_eq!(fs::read(&path).unwrap(), b"whole\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let e = AtomicFile::create(&path, false).err().unwrap();
        assert!(e.to_string().contains("already exists"), "{e}");
        let mut f = AtomicFile::create(&path, true).unwrap();
        f.write_all(b"new\n").unwrap();
        f.commit(true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        let e = AtomicFile::create(&dir.path().join("no/such/dir/f"), true)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("cannot write"), "{e}");
    }
}
