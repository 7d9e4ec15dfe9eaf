//! Bad input through the real binary: every mistake is refused with the documented exit code
//! (1 refused, 2 usage, 3 verification failed), explained in one line on stderr, and leaves the
//! log exactly as it was, both as the CLI reports it and as rows in the SQLite file.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use support::{block_on, request_args, run_binary, Output, World, REFUSED, USAGE, VERIFY_FAILED};

/// Rows in the SQLite file's `log_entries` table, read directly (not through the CLI).
fn sqlite_rows(db: &Path) -> i64 {
    block_on(async {
        let mut conn = SqliteConnectOptions::new()
            .filename(db)
            .connect()
            .await
            .expect("open the SQLite file");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_entries")
            .fetch_one(&mut conn)
            .await
            .expect("count the log entries");
        conn.close().await.expect("close the SQLite file");
        n
    })
}

impl World {
    fn db(&self) -> std::path::PathBuf {
        self.cli.data_dir.join("breakglass.db")
    }

    /// The log's size by the CLI and by the rows in the file; they must agree.
    #[track_caller]
    fn log_fingerprint(&self) -> (u64, i64) {
        let size = self.log_size();
        let rows = sqlite_rows(&self.db());
        assert_eq!(
            i64::try_from(size).expect("a size"),
            rows,
            "status --json's log_size is the number of stored entries"
        );
        (size, rows)
    }

    /// Runs `args` with `key` (or none), expects exit `code` with a one-line explanation that
    /// mentions `needles`, and checks that the log did not change.
    #[track_caller]
    fn rejects(
        &self,
        key: Option<&Path>,
        args: &[&str],
        code: i32,
        needles: &[&str],
        why: &str,
    ) -> Output {
        let before = self.log_fingerprint();
        let out = match key {
            Some(k) => self.by(k, args),
            None => self.cli.run(args),
        };
        out.code(code, why).one_line_error(why);
        out.stderr_mentions(needles, why);
        assert_eq!(
            self.log_fingerprint(),
            before,
            "{why}: a rejected command must leave the log unchanged\n{out:?}"
        );
        out
    }
}

#[test]
fn bad_requests_are_refused_in_one_line_and_append_nothing() {
    let w = World::sqlite();
    let dave = Some(w.dave.as_path());
    let long = "x".repeat(1001);
    let cases: [(&str, &str, &str, &[&str], &str); 9] = [
        ("prod", "30m", "", &["reason"], "an empty reason"),
        (
            "prod",
            "30m",
            "   \t ",
            &["reason"],
            "a whitespace-only reason",
        ),
        (
            "prod",
            "30m",
            &long,
            &["1000"],
            "a reason over 1000 characters",
        ),
        ("prod", "0m", "ok", &["zero"], "a zero duration"),
        ("prod", "abc", "ok", &["abc"], "a duration that is not one"),
        (
            "prod",
            "30",
            "ok",
            &["duration"],
            "a duration without a unit",
        ),
        (
            "prod",
            "2h",
            "ok",
            &["2h", "1h", "prod"],
            "a duration over the target's 1h cap (named with the target)",
        ),
        ("nowhere", "30m", "ok", &["nowhere"], "an unknown target"),
        ("", "30m", "ok", &["target"], "an empty target"),
    ];
    for (target, duration, reason, needles, why) in cases {
        w.rejects(
            dave,
            &request_args(target, duration, reason),
            REFUSED,
            needles,
            why,
        );
    }
    // A negative duration: as one argument it reaches the parser and is refused; as two, clap
    // reads "-5m" as a flag, which is a usage error. Either way one line and nothing written.
    w.rejects(
        dave,
        &[
            "request",
            "--target",
            "prod",
            "--duration=-5m",
            "--reason",
            "ok",
        ],
        REFUSED,
        &["sign"],
        "a negative duration",
    );
    w.rejects(
        dave,
        &request_args("prod", "-5m", "ok"),
        USAGE,
        &["-5"],
        "a negative duration written as a separate argument",
    );
    // Break-glass over its cap, and an extension of something that is not a request id.
    w.rejects(
        dave,
        &[
            "request",
            "--target",
            "prod",
            "--duration",
            "11m",
            "--reason",
            "fire",
            "--break-glass",
        ],
        REFUSED,
        &["10m"],
        "break-glass over the 10m break-glass cap",
    );
    w.rejects(
        dave,
        &[
            "request",
            "--target",
            "prod",
            "--duration",
            "10m",
            "--reason",
            "more",
            "--extends",
            "req_nonsense!",
        ],
        REFUSED,
        &["request id"],
        "--extends with a malformed id",
    );
}

#[test]
fn bad_ids_and_export_filters_are_refused() {
    let w = World::sqlite();
    let bob = Some(w.bob.as_path());
    for cmd in ["approve", "cancel", "revoke"] {
        w.rejects(
            bob,
            &[cmd, "not-an-id"],
            REFUSED,
            &["not a request id"],
            "a malformed request id",
        );
    }
    w.rejects(
        bob,
        &["approve", "req_7k2m9x4p1q3r5s6t"],
        REFUSED,
        &["req_7k2m9x4p1q3r5s6t"],
        "a well-formed id of no request",
    );
    let out = w.path("out.csv").display().to_string();
    w.rejects(
        bob,
        &[
            "export",
            "--format",
            "csv",
            "--from",
            "2026-02-01",
            "--to",
            "2026-01-01",
            "-o",
            &out,
        ],
        REFUSED,
        &["--from", "--to"],
        "export --from after --to",
    );
    w.rejects(
        bob,
        &["export", "--format", "csv", "--state", "bogus", "-o", &out],
        REFUSED,
        &["bogus", "pending"],
        "export --state with an unknown state (the message lists the valid ones)",
    );
    w.rejects(
        bob,
        &[
            "export",
            "--format",
            "csv",
            "--from",
            "yesterday",
            "-o",
            &out,
        ],
        REFUSED,
        &["--from"],
        "export --from that is not a time",
    );
    w.rejects(
        bob,
        &[
            "export", "--format", "bundle", "--target", "prod", "-o", &out,
        ],
        REFUSED,
        &["bundle"],
        "a filtered bundle (bundles always hold the whole log)",
    );
    assert!(!Path::new(&out).exists(), "a refused export writes no file");
}

#[test]
fn usage_errors_exit_2_in_one_line() {
    let w = World::sqlite();
    let dave = Some(w.dave.as_path());
    let cases: [(&[&str], &[&str], &str); 7] = [
        (
            &["request", "--target", "prod", "--reason", "x"],
            &["--duration"],
            "a missing required flag",
        ),
        (&["frobnicate"], &["frobnicate"], "an unknown subcommand"),
        (&["status", "--colour"], &["--colour"], "an unknown flag"),
        (
            &["deny", "req_7k2m9x4p1q3r5s6t"],
            &["--reason"],
            "deny without --reason",
        ),
        (
            &["export", "-o", "-"],
            &["--format"],
            "export without --format",
        ),
        (
            &["export", "--format", "xml", "-o", "-"],
            &["xml"],
            "an unknown export format",
        ),
        (&["approve"], &["ID"], "approve without an id"),
    ];
    for (args, needles, why) in cases {
        w.rejects(dave, args, USAGE, needles, why);
    }
    // --help is not an error: it goes to stdout with exit 0.
    let out = w.cli.run(&["request", "--help"]);
    out.ok("--help succeeds")
        .stdout_mentions("--duration", "help lists the flags");
}

/// A policy with a TOML syntax error on line 3.
const SYNTAX_ERROR: &str = "version = 2\n\n[targets.prod\nmax_duration = \"1h\"\n";

/// A well-formed TOML policy that breaks rules on lines 5, 6 and 9.
const SEMANTIC_ERRORS: &str = r#"version = 2
[groups]
sre = []
[targets.prod]
max_duration = "2h"
request_ttl = "soon"
extension_cap = "1h"
approvers = { groups = ["sre"], quorum = 1 }
connector = { kind = "command", grant = ["true"], revoke = ["/bin/true"] }
"#;

#[test]
fn malformed_policies_are_refused_with_every_problem_located() {
    let w = World::sqlite();
    let admin = Some(w.admin.as_path());
    for (name, source, problem_lines) in [
        ("syntax.toml", SYNTAX_ERROR, &[3][..]),
        ("semantic.toml", SEMANTIC_ERRORS, &[5, 6, 9][..]),
    ] {
        let file = w.path(name);
        fs::write(&file, source).expect("write the policy");
        let file_arg = file.display().to_string();
        for cmd in ["check", "apply"] {
            let before = w.log_fingerprint();
            let out = w.by(&w.admin, &["policy", cmd, &file_arg]);
            out.code(REFUSED, "a malformed policy is refused");
            assert_eq!(
                w.log_fingerprint(),
                before,
                "a refused policy is not recorded"
            );
            let located: Vec<(u32, u32)> = out
                .stderr
                .lines()
                .filter_map(|l| {
                    let rest = l.strip_prefix(&format!("{file_arg}:"))?;
                    let mut parts = rest.splitn(3, ':');
                    let line = parts.next()?.parse().ok()?;
                    let col = parts.next()?.parse().ok()?;
                    Some((line, col))
                })
                .collect();
            let lines: Vec<u32> = located.iter().map(|(l, _)| *l).collect();
            assert_eq!(
                lines, problem_lines,
                "policy {cmd} of {name} prints one `file:LINE:COL:` line per problem, in order\n{out:?}"
            );
            assert!(
                located.iter().all(|&(_, c)| c >= 1),
                "columns are 1-based\n{out:?}"
            );
            let other: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| !l.starts_with(&format!("{file_arg}:")))
                .collect();
            assert!(
                other.len() <= 1,
                "besides the located problems at most a one-line summary\n{out:?}"
            );
        }
    }
    // A valid policy, but by someone who is not an admin, or not a newer version.
    let good = w.path("v2.toml");
    fs::write(&good, support::policy(2)).expect("write the policy");
    let good = good.display().to_string();
    w.rejects(
        Some(w.dave.as_path()),
        &["policy", "apply", &good],
        REFUSED,
        &["admin"],
        "policy apply by a non-admin",
    );
    let v1 = w.path("v1.toml");
    fs::write(&v1, support::policy(1)).expect("write the policy");
    w.rejects(
        admin,
        &["policy", "apply", &v1.display().to_string()],
        REFUSED,
        &["version"],
        "re-applying an old policy version",
    );
    w.rejects(
        admin,
        &[
            "policy",
            "apply",
            &w.path("missing.toml").display().to_string(),
        ],
        REFUSED,
        &["missing.toml"],
        "a policy file that does not exist",
    );
}

#[test]
fn bad_key_files_are_refused() {
    let w = World::sqlite();
    let request = request_args("prod", "30m", "with a bad key");

    let open = w.path("open.pem");
    fs::copy(&w.dave, &open).expect("copy dave's key");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).expect("chmod 644");
    w.rejects(
        Some(&open),
        &request,
        REFUSED,
        &["chmod 600"],
        "a key file readable by others is refused, and the fix is named",
    );

    w.rejects(
        Some(&w.path("nope.pem")),
        &request,
        REFUSED,
        &["nope.pem"],
        "a key file that does not exist",
    );

    let garbage = w.path("garbage.pem");
    fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nnot base64\n").expect("write garbage");
    fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    w.rejects(
        Some(&garbage),
        &request,
        REFUSED,
        &["garbage.pem"],
        "a key file that holds no key",
    );

    // A real key that nobody enrolled.
    let stranger = w.path("stranger.pem");
    w.cli
        .run(&[
            "identity",
            "keygen",
            "--out",
            &stranger.display().to_string(),
        ])
        .ok("keygen makes a key file");
    w.rejects(
        Some(&stranger),
        &request,
        REFUSED,
        &["no enrolled identity"],
        "a key that belongs to no enrolled identity",
    );
    // And a real key claiming to be someone else.
    let mut as_bob = vec!["--as", "bob"];
    as_bob.extend(&request);
    w.rejects(
        Some(&w.dave),
        &as_bob,
        REFUSED,
        &["not bob's"],
        "dave's key used --as bob",
    );
    w.rejects(
        None,
        &["--as", "ghost", "status"],
        REFUSED,
        &["ghost", "not enrolled"],
        "status for a name that is not enrolled",
    );
}

#[test]
fn damaged_bundles_fail_verification() {
    let w = World::sqlite();
    let id = w.request("prod", "30m", "something to export");
    w.by(&w.bob, &["deny", &id, "--reason", "no"])
        .ok("a decision, so the bundle holds several event kinds");
    let bundle = w.path("audit.bundle");
    w.by(
        &w.admin,
        &[
            "export",
            "--format",
            "bundle",
            "-o",
            &bundle.display().to_string(),
        ],
    )
    .ok("bundle export");
    let bytes = fs::read(&bundle).expect("read the bundle");
    let verify = |name: &str, data: &[u8]| -> Output {
        let path = w.path(name);
        fs::write(&path, data).expect("write the damaged bundle");
        run_binary(&["verify", &path.display().to_string()], &[])
    };
    verify("intact.bundle", &bytes).ok("the intact bundle verifies");

    for cut in [bytes.len() / 3, bytes.len() - 2] {
        verify("truncated.bundle", &bytes[..cut])
            .code(VERIFY_FAILED, "a truncated bundle fails verification")
            .one_line_error("truncated bundle");
    }
    // One byte changed anywhere: the start, inside entries, in the checkpoint at the end.
    let positions = (0..12).map(|i| i * (bytes.len() - 1) / 11);
    for at in positions {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        let out = verify("flipped.bundle", &flipped);
        assert_eq!(
            out.code,
            VERIFY_FAILED,
            "flipping byte {at} of {} ({:?}) must fail verification\n{out:?}",
            bytes.len(),
            char::from(bytes[at])
        );
        out.one_line_error("flipped byte");
    }
    run_binary(
        &["verify", &w.path("absent.bundle").display().to_string()],
        &[],
    )
    .code(
        REFUSED,
        "a bundle that does not exist cannot be read: refused, not 'failed'",
    )
    .one_line_error("missing bundle")
    .stderr_mentions(&["absent.bundle"], "the message names the file");
}

#[test]
fn a_row_altered_in_the_database_is_detected() {
    let w = World::sqlite();
    let marker = "tamper-target-reason";
    let id = w.request("prod", "30m", marker);
    w.by(&w.admin, &["log", "verify"])
        .ok("the log verifies before tampering");

    block_on(async {
        let mut conn = SqliteConnectOptions::new()
            .filename(w.db())
            .connect()
            .await
            .expect("open the SQLite file");
        let rows = sqlx::query("SELECT idx, entry FROM log_entries ORDER BY idx")
            .fetch_all(&mut conn)
            .await
            .expect("read the entries");
        let (idx, mut entry, at) = rows
            .iter()
            .find_map(|r| {
                let entry: Vec<u8> = r.get("entry");
                let at = entry
                    .windows(marker.len())
                    .position(|win| win == marker.as_bytes())?;
                Some((r.get::<i64, _>("idx"), entry, at))
            })
            .expect("the request's entry holds its reason as text");
        entry[at] = b'T';
        sqlx::query("DROP TRIGGER log_entries_no_update")
            .execute(&mut conn)
            .await
            .expect("drop the append-only guard");
        sqlx::query("UPDATE log_entries SET entry = ? WHERE idx = ?")
            .bind(&entry)
            .bind(idx)
            .execute(&mut conn)
            .await
            .expect("alter the row");
        conn.close().await.expect("close");
    });

    for args in [
        &["status"][..],
        &["status", "--json"],
        &["log", "verify"],
        &["approve", &id],
    ] {
        let out = w.by(&w.bob, args);
        out.code(
            VERIFY_FAILED,
            "every command re-verifies the log and refuses an altered row",
        )
        .one_line_error("tampered log");
    }
}
