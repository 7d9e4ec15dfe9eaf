//! Retention: moving the log's old entries out of the database into a bundle beside it.
//!
//! An archive is a bundle of the log's first entries up to a signed checkpoint, written next to
//! the SQLite file (`archive/log-SIZE.bundle`), verified as any auditor would verify it, and only
//! then recorded in the database, in the same transaction that deletes the rows it holds (the
//! store first checks that the file holds each row byte for byte). The tree is unchanged: the
//! entries keep their indexes, every checkpoint still covers what it covered, and every read of
//! the log — replay at start-up, exports, evidence, `log verify` — reads the archived entries
//! from the file. A later archive holds everything the earlier one did and more, and replaces it.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use breakglass_core::Timestamp;
use breakglass_ledger::{verify_bundle_stream, Entry, VerifyOptions};

use crate::error::EngineError;
use crate::export::write_stored_bundle;
use crate::file::AtomicFile;
use crate::Engine;

/// What [`Engine::archive`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The log's first `size` entries are now in the file, not the database.
    pub size: u64,
    /// How many of them this archive moved out of the database (the rest were in the archive it
    /// replaced).
    pub moved: u64,
    /// The bundle holding them.
    pub path: PathBuf,
    /// Its SHA-256 (lowercase hex), as recorded in the database.
    pub sha256: String,
    /// The signed checkpoint closing the bundle.
    pub checkpoint: String,
    /// The earlier archive file this one replaces, removed once this one was recorded (or left
    /// in place, and named here, if removing it failed).
    pub replaced: Option<PathBuf>,
    /// Whether removing the earlier file failed.
    pub replaced_left: bool,
}

impl Engine {
    /// Moves every entry older than `before` — up to the latest signed checkpoint that covers
    /// only such entries, and never the newest entry — out of the database into a bundle
    /// beside it, and returns what was done. Embedded (SQLite) logs only.
    ///
    /// Refused, with nothing changed, when the log is on PostgreSQL, when no entry older than
    /// `before` is left in the database, or when anything fails before the database records the
    /// new file (a half-written or unverifiable bundle is removed).
    pub async fn archive(&mut self, before: Timestamp) -> Result<Archived, EngineError> {
        let Some(dir) = self.store().archive_dir().map(Path::to_owned) else {
            return Err(EngineError::Invalid(
                "a team's log on PostgreSQL keeps its whole history in the shared database; \
                 archiving is for an embedded log"
                    .into(),
            ));
        };
        self.refresh().await?;
        let already = self.store().archive().await?.map_or(0, |a| a.size);
        let older = self.entries_before(before).await?;
        let limit = older.min(self.size().saturating_sub(1));
        let checkpoint = match self.store().checkpoint_at_most(limit).await? {
            Some(c) if c.size > already => c,
            _ => {
                let archived = if already > 0 {
                    format!(", the first {already} are archived already")
                } else {
                    String::new()
                };
                return Err(EngineError::Invalid(format!(
                    "nothing to archive before {before}: {older} of the log's entries are \
                     older{archived}, and the newest entry stays in the database with any \
                     that no checkpoint closes before it"
                )));
            }
        };
        let size = checkpoint.size;
        let name = format!("archive/log-{size}.bundle");
        let path = dir.join(&name);
        self.write_archive(&path, size, &checkpoint.note).await?;
        // From here until the database records it, a failure removes the file — unless the
        // file by that name is the one in force (another process archived the same entries,
        // byte for byte the same bundle, in the meantime).
        let recorded = async {
            let mut tx = self.store().begin_append().await?;
            let previous = tx.archived().await?;
            let record = tx.archive(size, &name).await?;
            tx.commit().await?;
            Ok::<_, EngineError>((record, previous))
        }
        .await;
        let (record, previous) = match recorded {
            Ok(done) => done,
            Err(e) => {
                let in_force = self.store().archive().await.ok().flatten();
                if in_force.is_none_or(|a| a.file != name) {
                    let _ = fs::remove_file(&path);
                }
                return Err(e);
            }
        };
        let moved = size - previous.as_ref().map_or(0, |p| p.size);
        let replaced = previous.map(|p| dir.join(p.file));
        let replaced_left = replaced
            .as_ref()
            .is_some_and(|p| p != &path && fs::remove_file(p).is_err() && p.exists());
        Ok(Archived {
            size,
            moved,
            path,
            sha256: record.sha256,
            checkpoint: checkpoint.note,
            replaced,
            replaced_left,
        })
    }

    /// How many of the log's first entries are older than `before`.
    async fn entries_before(&self, before: Timestamp) -> Result<u64, EngineError> {
        let mut older = 0;
        self.each_batch(|batch| {
            for e in batch {
                let entry = Entry::decode(&e.bytes).map_err(|err| {
                    EngineError::Tampered(format!("entry {} cannot be read: {err}", e.index))
                })?;
                if entry.event().time >= before {
                    return Ok(false);
                }
                older = e.index + 1;
            }
            Ok(true)
        })
        .await?;
        Ok(older)
    }

    /// Writes the bundle of the first `size` entries, closed by `note`, to `path` (synced, with
    /// its directory), and verifies it against the pinned log key; on any failure nothing is
    /// left at `path`.
    async fn write_archive(&self, path: &Path, size: u64, note: &str) -> Result<(), EngineError> {
        let (origin, log_key) = self.origin_and_key()?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let cannot = |e: std::io::Error| {
            EngineError::Invalid(format!(
                "cannot write the archive in {}: {e}",
                folder.display()
            ))
        };
        let mut dir = fs::DirBuilder::new();
        dir.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(folder).map_err(cannot)?;
        // A file left at this name by an archive that stopped before the database recorded it
        // is not in force (the one in force holds fewer entries, so has another name): it is
        // replaced.
        let mut file = AtomicFile::create(path, true)?;
        write_stored_bundle(
            self.store(),
            origin,
            log_key,
            size,
            note,
            file.writer(),
            &mut |_, _| {},
        )
        .await?;
        file.commit(true)?;
        let verified = fs::File::open(path).map_err(cannot).and_then(|f| {
            let opts = VerifyOptions {
                log_key: Some(self.log_verifier()),
                earlier_checkpoint: None,
            };
            verify_bundle_stream(BufReader::with_capacity(1 << 20, f), &opts)
                .map_err(|e| EngineError::Tampered(format!("the archive does not verify: {e}")))
        });
        let synced = || {
            fs::File::open(folder)
                .and_then(|d| d.sync_all())
                .map_err(cannot)
        };
        if let Err(e) = verified.and_then(|_| synced()) {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(())
    }
}
