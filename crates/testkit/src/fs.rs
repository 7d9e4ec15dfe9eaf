//! File systems that fail on purpose: a tiny tmpfs to fill, a directory made read-only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted at a directory for the value's lifetime (needs root, as CI runs).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"4m"`) at `dir`, owner-only.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "test setup: mounting a small tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir.to_owned())
    }

    /// Fills the file system to its last byte with a file named `filler`; returns its path.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        let mut one = [0u8; 1];
        while f.write(&one).is_ok_and(|n| n == 1) {
            one[0] = one[0].wrapping_add(1);
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
