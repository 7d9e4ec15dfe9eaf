//! Faults through the `breakglass` binary: a data directory on a full disk, and one made
//! read-only. Each refused command says so in one line, exits 1, and changes nothing; with the
//! fault gone, the same command goes through.

mod support;

use std::process::Command;

use breakglass_testkit::fs::Tmpfs;
use support::{request_args, Cli, World, REFUSED};

/// The world's data directory moved onto `mnt` (a small tmpfs), the CLI pointed at it.
fn move_data_to(w: &mut World, mnt: &std::path::Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&w.cli.data_dir)
        .arg(mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "copy the data directory");
    w.cli = Cli::new(&mnt.join("data"));
}

#[test]
fn a_full_disk_refuses_a_command_in_one_line_and_loses_nothing() {
    let mut w = World::sqlite();
    let mnt = w.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let tmpfs = Tmpfs::mount(&mnt, "8m");
    move_data_to(&mut w, &mnt);
    let id = w.request("prod", "30m", "disk full test");
    let size = w.log_size();

    let filler = tmpfs.fill();
    let out = w.by(&w.bob, &["approve", &id]);
    out.code(REFUSED, "nothing can be written to a full disk")
        .one_line_error("a full disk");
    assert!(
        ["full", "space"]
            .iter()
            .any(|s| out.stderr.to_lowercase().contains(s)),
        "the error says the disk is full: {out:?}"
    );

    std::fs::remove_file(filler).unwrap();
    assert_eq!(w.log_size(), size, "the refused approval left no trace");
    assert_eq!(w.state_of(&id), "pending");
    w.by(&w.bob, &["approve", &id])
        .ok("with space again, the same approval goes through");
    w.by(&w.carol, &["approve", &id]).ok("quorum");
    assert_eq!(w.state_of(&id), "active");
}

#[test]
fn a_read_only_data_directory_refuses_a_command_in_one_line_and_loses_nothing() {
    let w = World::sqlite();
    let id = w.request("prod", "30m", "read-only test");
    let size = w.log_size();
    let data = w.cli.data_dir.clone();
    // Every CLI command has ended, so SQLite has folded and removed its -wal and -shm files.
    let frozen: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .chain([data.clone()])
        .collect();
    let chattr = |flag: &str| {
        frozen.iter().all(|p| {
            Command::new("chattr")
                .arg(flag)
                .arg(p)
                .status()
                .is_ok_and(|s| s.success())
        })
    };
    assert!(
        chattr("+i"),
        "test setup: chattr +i (e2fsprogs) on the data directory needs root and ext4/tmpfs"
    );
    let probe_fails = std::fs::write(data.join("probe"), b"").is_err();
    let refused = w.by(&w.dave, &request_args("prod", "10m", "while read-only"));
    let approval = w.by(&w.bob, &["approve", &id]);
    assert!(chattr("-i"), "test cleanup: chattr -i");
    assert!(probe_fails, "test setup: the data directory is read-only");

    for out in [&refused, &approval] {
        out.code(
            REFUSED,
            "nothing can be written to a read-only data directory",
        )
        .one_line_error("read-only");
        let e = out.stderr.to_lowercase();
        assert!(
            ["read-only", "readonly", "writable", "permission"]
                .iter()
                .any(|s| e.contains(s)),
            "the error says the data directory cannot be written: {out:?}"
        );
    }
    assert_eq!(w.log_size(), size, "nothing was appended or half-written");
    assert_eq!(w.state_of(&id), "pending");
    w.by(&w.bob, &["approve", &id])
        .ok("writable again, the same approval goes through");
}
