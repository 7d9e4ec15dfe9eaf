//! Processes and their memory, read from `/proc`: what a benchmark needs to add up the resident
//! memory of an app and every process it started (WebKit's web and network processes).

use std::fs;
use std::path::{Path, PathBuf};

/// Resident memory of a set of processes, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size (`VmRSS`): pages shared between the processes count once per process.
    pub rss_kib: u64,
    /// Proportional set size (`Pss`): shared pages split between the processes sharing them.
    pub pss_kib: u64,
    /// How many processes were added up.
    pub processes: usize,
}

/// Every live process as (pid, parent pid).
fn parents() -> Vec<(u32, u32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        // The command name in `stat` is in parentheses and may hold spaces: the parent pid is
        // the second field after the last ')'.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
        Some((pid, ppid))
    })
    .collect()
}

/// `root` and every process descended from it, `root` first.
pub fn tree(root: u32) -> Vec<u32> {
    let all = parents();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            all.iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found
}

/// The executable a process runs, when it can be read.
pub fn exe(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The first process under `root` (itself included) that runs `program`.
pub fn find_under(root: u32, program: &Path) -> Option<u32> {
    let program = program.canonicalize().ok()?;
    tree(root)
        .into_iter()
        .find(|pid| exe(*pid).is_some_and(|e| e == program))
}

/// Whether a process is still alive (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// A `Name:   123 kB` figure of a `/proc` status-style file.
fn kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The resident memory of `root` and every process descended from it.
pub fn memory_of_tree(root: u32) -> Memory {
    tree(root)
        .into_iter()
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let rss = kib(&status, "VmRSS")?;
            let pss = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .ok()
                .and_then(|s| kib(&s, "Pss"))
                .unwrap_or(rss);
            Some((rss, pss))
        })
        .fold(Memory::default(), |m, (rss, pss)| Memory {
            rss_kib: m.rss_kib + rss,
            pss_kib: m.pss_kib + pss,
            processes: m.processes + 1,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_process_tree_and_its_memory_are_found() {
        // A shell that starts a child and waits: two processes under the shell's pid.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("sh");
        let root = sh.id();
        let mut found = Vec::new();
        for _ in 0..100 {
            found = tree(root);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(found[0], root);
        assert_eq!(found.len(), 2, "the shell and its sleep: {found:?}");
        let sleep = Path::new("/bin/sleep")
            .canonicalize()
            .or_else(|_| Path::new("/usr/bin/sleep").canonicalize())
            .expect("sleep is installed");
        assert_eq!(find_under(root, &sleep), Some(found[1]));
        let mem = memory_of_tree(root);
        assert_eq!(mem.processes, 2);
        assert!(mem.rss_kib > 0 && mem.pss_kib > 0 && mem.pss_kib <= mem.rss_kib);
        assert!(mem.rss_kib >= memory_of_tree(found[1]).rss_kib);
        let _ = Command::new("pkill")
            .args(["-P", &root.to_string()])
            .status();
        let _ = sh.kill();
        let _ = sh.wait();
        assert!(!alive(root));
    }

    #[test]
    fn figures_are_read_from_status_lines() {
        let status = "Name:\tx\nVmRSS:\t  1234 kB\nRssAnon:\t 10 kB\n";
        assert_eq!(kib(status, "VmRSS"), Some(1234));
        assert_eq!(kib(status, "Rss"), None);
        assert_eq!(kib(status, "Pss"), None);
    }
}
