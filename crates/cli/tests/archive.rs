//! `breakglass log archive` through the binary: old entries leave the database for a bundle
//! beside it, the log still verifies, answers and grows, the archive verifies on its own, and
//! bad or pointless archives change nothing.

mod support;

use support::{World, REFUSED, USAGE};

/// Rows in the database itself.
fn rows(w: &World) -> i64 {
    support::block_on(async {
        use sqlx::Connection;
        let db = w.cli.data_dir.join("breakglass.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_entries")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        n
    })
}

#[test]
fn archiving_moves_old_entries_to_a_bundle_and_the_log_carries_on() {
    let w = World::sqlite();
    let first = w.request("prod", "30m", "archive test: first");
    w.by(&w.bob, &["approve", &first]).ok("bob approves");
    let size = w.log_size();
    assert_eq!(rows(&w), size as i64);

    // Nothing is older than the year 2000; a time that is no time is refused.
    for (before, code, why) in [
        ("2000-01-01", REFUSED, "nothing to archive"),
        ("yesterday", REFUSED, "invalid --before"),
    ] {
        w.by(&w.admin, &["log", "archive", "--before", before])
            .code(code, why)
            .one_line_error(why)
            .stderr_mentions(&[why], why);
    }
    w.by(&w.admin, &["log", "archive"])
        .code(USAGE, "--before is required");
    assert_eq!(
        rows(&w),
        size as i64,
        "the refused archives deleted nothing"
    );
    assert!(!w.cli.data_dir.join("archive").exists());

    let out = w.by(
        &w.admin,
        &["log", "archive", "--before", "2999-01-01", "--json"],
    );
    out.ok("everything but the newest entry may be archived");
    let done = out.json();
    let archived = done["archived"].as_u64().unwrap();
    assert_eq!(archived, size - 1, "every append carries its checkpoint");
    assert_eq!(done["moved"].as_u64(), Some(archived));
    assert_eq!(rows(&w), 1, "only the newest entry stays in the database");
    let file = std::path::PathBuf::from(done["file"].as_str().unwrap());
    assert_eq!(
        file,
        w.cli
            .data_dir
            .join(format!("archive/log-{archived}.bundle"))
    );

    let verified = w.cli.run(&["verify", "--json", file.to_str().unwrap()]);
    verified.ok("the archive verifies on its own");
    assert_eq!(
        verified.json()["report"]["entries"].as_u64(),
        Some(archived)
    );
    w.cli
        .run(&["log", "verify"])
        .ok("the log verifies, reading its first entries from the archive");
    assert_eq!(
        w.state_of(&first),
        "pending",
        "the archived request is still known"
    );
    w.by(&w.carol, &["approve", &first])
        .ok("and can be decided");
    assert_eq!(w.state_of(&first), "active");
    let second = w.request("prod", "30m", "archive test: second");
    assert_eq!(w.state_of(&second), "pending");

    let bundle = w.path("whole.bundle");
    w.cli
        .run(&[
            "export",
            "--format",
            "bundle",
            "-o",
            bundle.to_str().unwrap(),
        ])
        .ok("the whole log exports");
    let whole = w.cli.run(&["verify", "--json", bundle.to_str().unwrap()]);
    whole.ok("and verifies");
    assert_eq!(
        whole.json()["report"]["entries"].as_u64(),
        Some(w.log_size())
    );
}
