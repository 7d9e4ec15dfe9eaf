//! A team member's local copy of the log (team mode): the entries it verified and the last
//! checkpoint that covered them, in a SQLite file of its data directory.
//!
//! The shared database may be rewritten by whoever can write to it, and, were the log's key ever
//! stolen, even re-signed. A member that remembers what it verified catches both across restarts:
//! every time the tree it builds from the shared database reaches the copy's size, its root must
//! be the copy's (the copy's frontier is the consistency proof's old side, the entries read are
//! its new side), and the shared log may never hold fewer covered entries than the copy. Only
//! entries a checkpoint covers are copied (entries past it may still be removed by the broker).

use std::path::Path;

use breakglass_ledger::{empty_root, leaf_hash, Frontier, Hash, NoteVerifier};
use breakglass_store::{Store, StoredCheckpoint};

use crate::error::EngineError;

/// The copy's file name in a member's data directory.
pub const REPLICA_FILE: &str = "replica.db";

/// Entries read at a time when checking the copy.
const READ_CHUNK: u64 = 10_000;

/// The local copy, and what of the shared log is verified but not yet in it.
#[derive(Debug)]
pub(crate) struct Replica {
    store: Store,
    /// Entries in the copy; its checkpoint covers exactly these.
    size: u64,
    /// Their Merkle root.
    root: Hash,
    /// Entries verified here at indexes `size..`, in order, not yet copied.
    pending: Vec<Vec<u8>>,
}

impl Replica {
    /// Opens the copy at `path` (created empty when absent) and checks it: its entries hash to
    /// the root of its checkpoint, which the log's key signed.
    pub(crate) async fn open(path: &Path, log: &NoteVerifier) -> Result<Replica, EngineError> {
        let location = path
            .to_str()
            .ok_or_else(|| EngineError::Setup(format!("{} is not a UTF-8 path", path.display())))?;
        let store = Store::open(location).await?;
        let corrupt = |why: String| {
            EngineError::Tampered(format!(
                "the local copy of the log ({}) {why}; move it aside to start a new copy from the \
                 shared database",
                path.display()
            ))
        };
        let size = store.size().await?;
        let checkpoint = store.latest_checkpoint().await?;
        let root = match checkpoint {
            None if size == 0 => empty_root(),
            None => return Err(corrupt("has entries but no checkpoint".into())),
            Some(c) => {
                let cp = log
                    .verify_checkpoint(&c.note)
                    .map_err(|e| corrupt(format!("has a checkpoint that does not verify: {e}")))?;
                if cp.size != size || c.size != size {
                    return Err(corrupt(format!(
                        "holds {size} entries under a checkpoint of {}",
                        cp.size
                    )));
                }
                let mut tree = Frontier::new();
                while tree.size() < size {
                    let to = size.min(tree.size() + READ_CHUNK);
                    let batch = store.entries(tree.size(), to).await?;
                    if batch.is_empty() {
                        return Err(corrupt(format!("lacks entry {}", tree.size())));
                    }
                    for e in batch {
                        tree.push(leaf_hash(&e.bytes));
                    }
                }
                if tree.root() != cp.root {
                    return Err(corrupt("does not hash to its checkpoint".into()));
                }
                cp.root
            }
        };
        Ok(Replica {
            store,
            size,
            root,
            pending: Vec::new(),
        })
    }

    /// Entries in the copy.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Checks the tree read from the shared database, `tree`, when it has just reached the
    /// copy's size: the shared history must extend the copy's, not rewrite it.
    pub(crate) fn check(&self, tree: &Frontier) -> Result<(), EngineError> {
        if tree.size() == self.size && tree.root() != self.root {
            return Err(EngineError::Tampered(format!(
                "the shared log's first {} entries are not the ones this app verified before \
                 (kept in its local copy): its history was rewritten",
                self.size
            )));
        }
        Ok(())
    }

    /// Notes a verified entry at `index`, to be copied once a checkpoint covers it.
    pub(crate) fn hold(&mut self, index: u64, bytes: &[u8]) {
        let next = self.size + self.pending.len() as u64;
        if index == next {
            self.pending.push(bytes.to_vec());
        }
    }

    /// Forgets held entries (the in-memory copy is being read again).
    pub(crate) fn drop_held(&mut self) {
        self.pending.clear();
    }

    /// Copies the held entries a verified `checkpoint` covers, with it, durably.
    pub(crate) async fn copy(
        &mut self,
        checkpoint: &StoredCheckpoint,
        root: Hash,
    ) -> Result<(), EngineError> {
        if checkpoint.size <= self.size {
            return Ok(());
        }
        let count = usize::try_from(checkpoint.size - self.size).unwrap_or(usize::MAX);
        if count > self.pending.len() {
            // Not all held (read again after a failure): copied on a later sync.
            return Ok(());
        }
        let mut tx = self.store.begin_append().await?;
        tx.append(self.size, &self.pending[..count], checkpoint)
            .await?;
        tx.commit().await?;
        self.pending.drain(..count);
        self.size = checkpoint.size;
        self.root = root;
        Ok(())
    }

    /// Closes the copy's database.
    pub(crate) async fn close(self) {
        self.store.close().await;
    }
}
