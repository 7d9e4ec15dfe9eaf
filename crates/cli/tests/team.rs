//! Team mode from the command line: the administrator's machine runs `breakglass broker` on a
//! log in a shared PostgreSQL database (a real throwaway cluster); people on other machines
//! `breakglass join` it with the log's checkpoint key and request, approve and follow access
//! there, while only the broker grants and ends it.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    find_request, finish, lines, request_args, until, Cli, Output, REFUSED, VERIFY_FAILED,
};

/// The team: the administrator's data directory (with the log's keys, and the broker), the
/// people's key files, and the database (`url`: as the apps' role).
struct Team {
    tmp: tempfile::TempDir,
    url: String,
    /// The database as its superuser (who can switch the append-only guard off).
    superuser: String,
    admin_cli: Cli,
    admin: PathBuf,
    log_key: String,
    _pg: breakglass_store::testing::PgCluster,
}

impl Team {
    fn start() -> Team {
        let pg = breakglass_store::testing::PgCluster::start_blocking()
            .expect("a PostgreSQL test server (Debian package `postgresql`) is required");
        let superuser_url = support::block_on(pg.create_database()).expect("a fresh database");
        // The roles README.md's team setup gives the broker and the apps.
        let (broker_url, url) =
            support::block_on(breakglass_store::testing::team_roles(&superuser_url))
                .expect("README's roles");
        let tmp = tempfile::Builder::new()
            .prefix("breakglass-team-test-")
            .tempdir()
            .expect("a temporary directory");
        let admin_cli = Cli::new(&tmp.path().join("admin"));
        let admin = tmp.path().join("keys/admin.pem");
        let out = admin_cli.run_with_key(
            &admin,
            &["init", "--system-keys", "file", "--database", &broker_url],
        );
        out.ok("init on the team's database, as the broker's role");
        support::block_on(breakglass_store::testing::grant_apps(&broker_url))
            .expect("README's grants to the apps");
        let log_key = checkpoint_key(&out);
        let policy = tmp.path().join("policy.toml");
        std::fs::write(&policy, support::policy(1)).expect("write the policy");
        admin_cli
            .run_with_key(&admin, &["policy", "apply", &policy.display().to_string()])
            .ok("the admin applies the policy");
        let team = Team {
            tmp,
            url,
            superuser: superuser_url,
            admin_cli,
            admin,
            log_key,
            _pg: pg,
        };
        for (name, group) in [("dave", "engineers"), ("bob", "sre"), ("carol", "sre")] {
            let key = team.key(name);
            team.admin_cli
                .run_with_key(
                    &team.admin,
                    &[
                        "identity",
                        "add",
                        name,
                        "--group",
                        group,
                        "--key-out",
                        &key.display().to_string(),
                    ],
                )
                .ok("the admin enrols the team");
        }
        team
    }

    fn key(&self, name: &str) -> PathBuf {
        self.tmp.path().join(format!("keys/{name}.pem"))
    }

    /// `breakglass join` into a new data directory `dir` as `name`.
    fn join(&self, dir: &str, name: &str, key_file: bool) -> (Cli, Output) {
        let cli = Cli::new(&self.tmp.path().join(dir));
        let mut args = vec![
            "join",
            "--database",
            &self.url,
            "--log-key",
            &self.log_key,
            "--name",
            name,
            "--identity-keys",
            "file",
        ];
        let key = self.key(name).display().to_string();
        if key_file {
            args.splice(0..0, ["--key-file", key.as_str()]);
        }
        let out = cli.run(&args);
        (cli, out)
    }
}

/// The `Checkpoint key:` line `init` printed.
fn checkpoint_key(init: &Output) -> String {
    init.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Checkpoint key: "))
        .expect("init prints the checkpoint key")
        .to_owned()
}

/// `status --json --all` on `cli` as the holder of `key`.
fn status(cli: &Cli, key: &Path) -> Value {
    let out = cli.run_with_key(key, &["status", "--json", "--all"]);
    out.ok("status on a member");
    out.json()
}

/// Polls `status` on `cli` until `id` is in `state` (within 20 s).
fn wait_for(cli: &Cli, key: &Path, id: &str, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let s = status(cli, key);
        let found = s["requests"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["id"] == id).cloned());
        if let Some(r) = found.filter(|r| r["status"] == state) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id} should reach {state} on this member: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn members_request_and_approve_on_their_machines_and_only_the_broker_grants_and_ends_access() {
    let team = Team::start();
    let mut broker = team.admin_cli.spawn(&["broker", "--interval", "30s"]);
    let rx = lines(&mut broker);
    until(&rx, "first pass done");

    let (a, out) = team.join("laptop-a", "dave", true);
    out.ok("dave joins with his enrolled key");
    out.stdout_mentions("Acting as dave (enrolled", "the key is recognised");
    let (b, out) = team.join("laptop-b", "bob", true);
    out.ok("bob joins");
    let config = std::fs::read_to_string(team.tmp.path().join("laptop-b/breakglass.toml"))
        .expect("join writes a config");
    assert!(
        config.contains("system_keys = \"none\"") && config.contains(&team.log_key),
        "a member's config names the log key and holds no system key: {config}"
    );
    assert!(
        !team.tmp.path().join("laptop-b/keys").exists(),
        "no key is made or copied for a member that brought its own"
    );
    assert!(
        team.tmp.path().join("laptop-b/replica.db").exists(),
        "a member keeps a local copy of the log it verified"
    );

    // dave asks on his machine and waits; bob and carol see it on bob's machine and approve;
    // the broker grants and dave's wait ends with the deadline. The broker's interval is 30 s:
    // only the database's notifications can wake it that soon.
    let mut args = request_args("prod", "30m", "disk full on db-1");
    args.extend(["--wait", "60s", "--json"]);
    let dave = team.key("dave").display().to_string();
    let mut all = vec!["--key-file", dave.as_str()];
    all.extend(&args);
    let waiting = a.spawn(&all);
    let id = {
        let start = Instant::now();
        loop {
            let s = status(&b, &team.key("bob"));
            let mine = s["requests"].as_array().and_then(|rs| {
                rs.iter()
                    .find(|r| r["requester"] == "dave" && r["status"] == "pending")
                    .cloned()
            });
            if let Some(r) = mine {
                break r["id"].as_str().expect("an id").to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no request on B: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    b.run_with_key(&team.key("bob"), &["approve", &id])
        .ok("bob approves on his machine");
    b.run_with_key(&team.key("carol"), &["approve", &id])
        .ok("carol approves on bob's machine with her own key");
    let granted_at = Instant::now();
    let out = finish(waiting, &all, Duration::from_secs(30));
    out.ok("dave's wait ends with the grant");
    let answer = out.json();
    assert_eq!(answer["request"], id.as_str());
    assert_eq!(answer["state"], "active", "{answer}");
    assert!(answer["deadline"].is_string(), "{answer}");
    until(&rx, &format!("granted {id}"));
    assert!(
        granted_at.elapsed() < Duration::from_secs(20),
        "granted on notification, not at the broker's 30 s interval"
    );
    let on_b = wait_for(&b, &team.key("bob"), &id, "active");
    assert_eq!(
        on_b["deadline"], answer["deadline"],
        "both see one deadline"
    );

    // A break-glass activation on A is granted by the broker; its expiry reaches both.
    let mut args = request_args("prod", "2s", "primary down");
    args.extend(["--break-glass", "--wait", "30s", "--json"]);
    let out = a.run_with_key(&team.key("dave"), &args);
    out.ok("break-glass on a member is granted by the broker");
    let bg = out.json();
    // A 2 s grant may have ended by the time the wait looks: granted is what counts.
    assert!(
        (bg["state"] == "active" || bg["state"] == "expired") && bg["deadline"].is_string(),
        "{bg}"
    );
    let bg_id = bg["request"].as_str().expect("an id").to_owned();
    // Its loud alert is the broker's, recorded when the broker verified the activation.
    let jsonl = team.tmp.path().join("events.jsonl");
    b.run_with_key(
        &team.key("bob"),
        &[
            "export",
            "--format",
            "jsonl",
            "-o",
            &jsonl.display().to_string(),
        ],
    )
    .ok("export on a member");
    let events = std::fs::read_to_string(&jsonl).expect("the export");
    let alerts: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("break_glass_activated") && l.contains(&bg_id))
        .collect();
    assert_eq!(alerts.len(), 1, "one break-glass alert: {events}");
    assert!(
        alerts[0].contains("\"actor\":\"broker\""),
        "signed by the broker: {}",
        alerts[0]
    );
    wait_for(&b, &team.key("bob"), &bg_id, "expired");
    wait_for(&a, &team.key("dave"), &bg_id, "expired");
    until(&rx, &format!("revoked {bg_id}"));

    // bob revokes dave's grant from his machine: the broker ends it.
    b.run_with_key(&team.key("bob"), &["revoke", &id, "--reason", "done"])
        .ok("an approver orders the revocation");
    until(&rx, &format!("revoked {id}"));
    wait_for(&a, &team.key("dave"), &id, "revoked");

    // The member's log checks out, and a member cannot act as the broker.
    a.run_with_key(&team.key("dave"), &["log", "verify"])
        .ok("the member verifies the whole team log");
    // Each member witnessed the log: its newest cosignature is in the shared database.
    let witnesses: Vec<String> = support::block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&team.superuser)
            .await
            .expect("connect as the superuser");
        sqlx::query_scalar("SELECT witness FROM cosignatures ORDER BY witness")
            .fetch_all(&mut db)
            .await
            .expect("read the cosignatures")
    });
    for who in ["bob", "dave"] {
        assert!(
            witnesses
                .iter()
                .any(|w| w.ends_with(&format!("/witness/{who}"))),
            "{who} cosigned what it verified: {witnesses:?}"
        );
    }
    a.run(&["broker"])
        .code(REFUSED, "a member holds no log key")
        .one_line_error("a member cannot run the broker")
        .stderr_mentions(&["the log's keys are the broker's"], "says why");

    broker.kill().expect("stop the broker");
    broker.wait().expect("it is gone");

    // With no broker to cover it, a member's request waits past the newest checkpoint: the log
    // still verifies, and a bundle holds what the checkpoint covers (and verifies on its own).
    let covered = a.run_with_key(&team.key("dave"), &["log", "verify", "--json"]);
    covered.ok("the covered log verifies");
    let covered = covered.json()["report"]["entries"]
        .as_u64()
        .expect("a count of entries");
    let mut args = request_args("prod", "30m", "after hours");
    args.push("--json");
    a.run_with_key(&team.key("dave"), &args)
        .ok("a request with no broker running is appended");
    a.run_with_key(&team.key("dave"), &["log", "verify"])
        .ok("an entry awaiting the broker's checkpoint is no verification failure")
        .stderr_mentions(
            &["1 entries", "await the broker's"],
            "says what it left out",
        );
    let bundle = team.tmp.path().join("team.bundle");
    let bundle_arg = bundle.display().to_string();
    b.run_with_key(
        &team.key("bob"),
        &["export", "--format", "bundle", "-o", &bundle_arg],
    )
    .ok("a member exports the team's log");
    let out = support::run_binary(&["verify", &bundle_arg, "--json"], &[]);
    out.ok("the bundle verifies with nothing else");
    assert_eq!(
        out.json()["report"]["entries"].as_u64(),
        Some(covered),
        "the bundle holds exactly what the newest checkpoint covers"
    );

    // Someone with the database's superuser cuts the newest covered entry and its checkpoint
    // (kept aside here): dave's CLI refuses the log, and keeps its finding, signed with dave's
    // key, until the log verifies again; then the finding is appended, once.
    let sql = |statements: &[&str]| {
        support::block_on(async {
            use sqlx::Connection;
            let mut db = sqlx::PgConnection::connect(&team.superuser)
                .await
                .expect("connect as the superuser");
            for s in statements {
                sqlx::raw_sql(s).execute(&mut db).await.expect(s);
            }
        })
    };
    let cut = format!("idx >= {}", covered - 1);
    sql(&[
        "SET session_replication_role = replica",
        &format!("CREATE TABLE saved_entries AS SELECT * FROM log_entries WHERE {cut}"),
        "CREATE TABLE saved_checkpoints AS SELECT * FROM checkpoints WHERE size = (SELECT max(size) FROM checkpoints)",
        &format!("DELETE FROM log_entries WHERE {cut}"),
        "DELETE FROM checkpoints WHERE size = (SELECT max(size) FROM checkpoints)",
    ]);
    let findings = team.tmp.path().join("laptop-a/findings");
    for _ in 0..2 {
        a.run_with_key(&team.key("dave"), &["status"])
            .code(VERIFY_FAILED, "the cut log is refused")
            .stderr_mentions(
                &[
                    "shrank",
                    "A report of this finding signed by dave is kept in",
                ],
                "says what was found and that it is signed and kept",
            );
    }
    let kept = |dir: &Path| std::fs::read_dir(dir).map_or(0, |d| d.count());
    assert_eq!(kept(&findings), 1, "one finding, kept once");
    sql(&[
        "SET session_replication_role = replica",
        "INSERT INTO log_entries SELECT * FROM saved_entries",
        "INSERT INTO checkpoints SELECT * FROM saved_checkpoints",
    ]);
    a.run_with_key(&team.key("dave"), &["status"])
        .ok("the restored log verifies")
        .stderr_mentions(&["appended 1 finding(s)"], "the finding is appended");
    assert_eq!(kept(&findings), 0, "appended, no longer kept");
    let out = a.run_with_key(&team.key("dave"), &["status"]);
    out.ok("nothing more to append");
    assert!(!out.stderr.contains("finding"), "{}", out.stderr);
    a.run_with_key(&team.key("dave"), &["log", "verify", "--json"])
        .ok("the log verifies with the finding past the checkpoint")
        .stderr_mentions(
            &["2 entries", "await the broker's"],
            "the finding awaits the broker",
        );
}

/// How many of the JSON lines a recording program appended to `file` name request `id`.
fn calls(file: &Path, id: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("\"request\":\"{id}\"")))
        .count()
}

#[test]
fn the_standby_broker_takes_over_mid_way_and_nothing_is_granted_or_revoked_twice_or_missed() {
    let team = Team::start();
    // Target `rec`: its programs append each grant and revoke they are given to a file.
    let grants = team.tmp.path().join("grants.jsonl");
    let revokes = team.tmp.path().join("revokes.jsonl");
    let record = |file: &Path| {
        format!(
            r#"["/bin/sh", "-c", "cat >> {0}; echo >> {0}"]"#,
            file.display()
        )
    };
    let policy = format!(
        r#"{}
[targets.rec]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
break_glass = {{ max_duration = "10m" }}
connector = {{ kind = "command", grant = {}, revoke = {} }}
"#,
        support::policy(2),
        record(&grants),
        record(&revokes)
    );
    let file = team.tmp.path().join("policy-2.toml");
    std::fs::write(&file, policy).expect("write the policy");
    team.admin_cli
        .run_with_key(
            &team.admin,
            &["policy", "apply", &file.display().to_string()],
        )
        .ok("the admin applies the recording target");

    let mut first = team.admin_cli.spawn(&["broker", "--interval", "30s"]);
    let first_rx = lines(&mut first);
    until(&first_rx, "first pass done");
    let mut standby = team.admin_cli.spawn(&["broker", "--interval", "30s"]);
    let standby_rx = lines(&mut standby);
    until(&standby_rx, "standby: another broker is acting");
    let (a, out) = team.join("laptop-a", "dave", true);
    out.ok("dave joins");
    let (b, out) = team.join("laptop-b", "bob", true);
    out.ok("bob joins");

    // The first broker grants a break-glass activation made on A; a request waits for approval.
    let mut args = request_args("rec", "6s", "primary down");
    args.extend(["--break-glass", "--wait", "30s", "--json"]);
    let out = a.run_with_key(&team.key("dave"), &args);
    out.ok("granted by the acting broker");
    let x = out.json()["request"].as_str().expect("an id").to_owned();
    until(&first_rx, &format!("granted {x}"));
    let mut args = request_args("rec", "10m", "rotate keys");
    args.push("--json");
    let out = a.run_with_key(&team.key("dave"), &args);
    out.ok("a request on A");
    let y = out.json()["request"].as_str().expect("an id").to_owned();
    wait_for(&b, &team.key("bob"), &y, "pending");

    // The acting broker dies mid-way: one grant active, one request about to be approved.
    first.kill().expect("SIGKILL the acting broker");
    first.wait().expect("it is gone");
    b.run_with_key(&team.key("bob"), &["approve", &y])
        .ok("bob approves on B while no broker acts");
    let took_over = until(&standby_rx, "acting (holds the broker lease)");
    assert!(
        took_over
            .iter()
            .all(|l| !l.starts_with("granted") && !l.starts_with("revoked")),
        "the standby did nothing before it held the lease: {took_over:#?}"
    );
    until(&standby_rx, &format!("granted {y}"));
    wait_for(&a, &team.key("dave"), &y, "active");
    // Nothing missed: the grant made by the first broker ends at its deadline, by the standby.
    wait_for(&b, &team.key("bob"), &x, "expired");
    wait_for(&a, &team.key("dave"), &x, "expired");
    b.run_with_key(&team.key("bob"), &["revoke", &y, "--reason", "done"])
        .ok("bob orders the revocation");
    wait_for(&a, &team.key("dave"), &y, "revoked");

    for id in [&x, &y] {
        assert_eq!(calls(&grants, id), 1, "{id} granted exactly once");
        assert_eq!(calls(&revokes, id), 1, "{id} revoked exactly once");
    }
    standby.kill().expect("stop the standby");
    standby.wait().expect("it is gone");
}

#[test]
fn a_new_member_gets_a_key_to_enrol_and_bad_joins_change_nothing() {
    let team = Team::start();

    // erin is not enrolled: joining makes her a key and says how to have it enrolled.
    let (e, out) = team.join("laptop-e", "erin", false);
    out.ok("joining without an enrolment is allowed (reading the log)");
    let pk = out
        .stdout
        .lines()
        .skip_while(|l| !l.contains("public key is"))
        .nth(1)
        .expect("the public key is printed")
        .trim()
        .to_owned();
    out.stdout_mentions(
        &format!("breakglass identity add erin --group GROUP --public-key {pk}"),
        "the enrolment command is spelled out",
    );
    let key = team.tmp.path().join("laptop-e/keys/erin.pem");
    assert!(
        key.exists(),
        "the new key is kept in the member's keys/ directory"
    );
    e.run(&request_args("prod", "10m", "look"))
        .code(REFUSED, "not enrolled yet")
        .one_line_error("refused with one line");
    team.admin_cli
        .run_with_key(
            &team.admin,
            &[
                "identity",
                "add",
                "erin",
                "--group",
                "engineers",
                "--public-key",
                &pk,
            ],
        )
        .ok("the admin enrols erin's key");
    let out = e.run(&{
        let mut a = request_args("prod", "10m", "look");
        a.push("--json");
        a
    });
    out.ok("once enrolled, erin requests from her machine");
    let id = out.json()["request"].as_str().expect("an id").to_owned();
    let s = status(&team.admin_cli, &team.admin);
    assert_eq!(find_request(&s, &id)["requester"], "erin");
    let before = status(&team.admin_cli, &team.admin)["log_size"].clone();
    e.run(&["login"])
        .code(REFUSED, "no provider to sign in at")
        .one_line_error("refused before any browser opens")
        .stderr_mentions(
            &["names no identity provider"],
            "the refusal says why (a member signs in as `signin.rs` shows when there is one)",
        );
    assert_eq!(
        status(&team.admin_cli, &team.admin)["log_size"],
        before,
        "the refused sign-in appended nothing"
    );

    // Joins that must change nothing.
    let other = tempfile::tempdir().expect("a temp dir");
    let other_cli = Cli::new(&other.path().join("data"));
    let out = other_cli.run_with_key(
        &other.path().join("k.pem"),
        &["init", "--system-keys", "file"],
    );
    out.ok("another, unrelated log");
    let foreign_key = checkpoint_key(&out);
    let bad = |args: &[&str], code: i32, why: &str, says: &[&str]| {
        let dir = team.tmp.path().join("bad");
        let out = Cli::new(&dir).run(args);
        out.code(code, why)
            .one_line_error(why)
            .stderr_mentions(says, why);
        assert!(!dir.exists(), "{why}: nothing is created");
    };
    let with_password = team.url.replacen("@", ":hunter2@", 1);
    assert_ne!(with_password, team.url, "the test URL names its user");
    bad(
        &[
            "join",
            "--database",
            &team.url,
            "--log-key",
            &foreign_key,
            "--name",
            "x",
        ],
        VERIFY_FAILED,
        "another log's key",
        &["different checkpoint key"],
    );
    bad(
        &[
            "join",
            "--database",
            &with_password,
            "--log-key",
            &team.log_key,
            "--name",
            "x",
        ],
        REFUSED,
        "a password in the URL",
        &["~/.pgpass"],
    );
    let sqlite = team.tmp.path().join("x.db").display().to_string();
    bad(
        &[
            "join",
            "--database",
            &sqlite,
            "--log-key",
            &team.log_key,
            "--name",
            "x",
        ],
        REFUSED,
        "an embedded database",
        &["PostgreSQL"],
    );
    bad(
        &[
            "join",
            "--database",
            &team.url,
            "--log-key",
            "not a key",
            "--name",
            "x",
        ],
        REFUSED,
        "a malformed key",
        &["vkey"],
    );
    let (_, out) = team.join("laptop-e", "erin", false);
    out.code(REFUSED, "joining twice")
        .stderr_mentions(&["already initialised"], "says so");
}
