//! End to end: the whole request lifecycle through the real `breakglass` binary, one process per
//! command, told once and run on the embedded SQLite database and on a real PostgreSQL server.
//! Time is the real clock, so the timed parts (a 3-second grant, a 2-second request TTL) run
//! while the rest of the scenario proceeds, and are polled for at the end.

mod support;

use std::time::Duration;

use breakglass_store::testing::PgCluster;
use serde_json::Value;
use support::{block_on, find_request, millis, now_millis, World, OK, REFUSED, USAGE};

/// The CSV header the README and `breakglass_engine::CSV_COLUMNS` document.
const CSV_HEADER: [&str; 20] = [
    "request_id",
    "requester",
    "target",
    "role",
    "reason",
    "ticket",
    "break_glass",
    "duration_seconds",
    "approvers",
    "denied_by",
    "requested_at",
    "granted_at",
    "deadline",
    "ended_at",
    "outcome",
    "revoked_by",
    "enforced_by_target",
    "extends",
    "review",
    "review_comment",
];

/// How long the polls for expiry and lapse may take: well past the 3 s and 2 s timers.
const POLL_LIMIT: Duration = Duration::from_secs(10);

/// A reason that a spreadsheet would evaluate as a formula.
const FORMULA_REASON: &str = "=HYPERLINK(\"http://evil.example/\",\"click\")";

fn scenario(w: &World) {
    // --- Quorum: two distinct sre approvals; never the requester; never a non-approver. ---
    let short = w.request("prod", "3s", "deploy the INC-1 hotfix");
    let size = w.log_size();
    w.by(&w.dave, &["approve", &short])
        .code(REFUSED, "a requester may never approve their own request")
        .one_line_error("self-approval refusal")
        .stderr_mentions(&["own request"], "the refusal says why");
    w.by(&w.erin, &["approve", &short])
        .code(REFUSED, "erin is in no approver group of prod")
        .one_line_error("non-approver refusal")
        .stderr_mentions(&["not an approver"], "the refusal says why");
    assert_eq!(w.log_size(), size, "refused approvals append nothing");
    w.by(&w.bob, &["approve", &short, "--comment", "looks right"])
        .ok("bob is in sre, an approver group of prod");
    let r = w.request_json(&short);
    assert_eq!(
        r["status"], "pending",
        "one approval of a quorum of two: {r}"
    );
    assert_eq!(
        r["decisions"].as_array().map(Vec::len),
        Some(1),
        "bob's approval is recorded: {r}"
    );
    w.by(&w.bob, &["approve", &short])
        .code(REFUSED, "an approver counts once towards the quorum")
        .one_line_error("second approval by the same person");
    let before = now_millis();
    w.by(&w.carol, &["approve", &short])
        .ok("carol completes the quorum");
    let after = now_millis();
    let status = w.status();
    let r = find_request(&status, &short);
    let granted = millis(&r["granted_at"]);
    let deadline = millis(&r["deadline"]);
    // On a loaded machine the 3 s may already be over by the time `status` runs; the state must
    // then be expired, never anything else.
    let expected = if millis(&status["now"]) < deadline {
        "active"
    } else {
        "expired"
    };
    assert_eq!(
        r["status"], expected,
        "quorum met: access granted until the deadline: {r}"
    );
    assert_eq!(
        deadline - granted,
        3_000,
        "the deadline is exactly granted_at + the requested duration: {r}"
    );
    assert!(
        (before - 1_000..=after + 1_000).contains(&granted),
        "access is granted when the quorum is met ({before}..{after}), not earlier or later: {r}"
    );

    // --- Deny: one denial ends it; a later approval is refused. ---
    let denied = w.request("prod", "1h", "schema migration");
    w.by(
        &w.bob,
        &["deny", &denied, "--reason", "not during the change freeze"],
    )
    .ok("an approver may deny");
    assert_eq!(w.state_of(&denied), "denied", "one denial ends a request");
    w.by(&w.carol, &["approve", &denied])
        .code(REFUSED, "a denied request cannot be approved any more")
        .one_line_error("approval after denial");
    assert_eq!(w.state_of(&denied), "denied", "still denied");

    // --- Cancel: the requester's alone. ---
    let cancelled = w.request("prod", "1h", "maybe later");
    w.by(&w.bob, &["cancel", &cancelled])
        .code(REFUSED, "only the requester may cancel a request")
        .one_line_error("cancel by someone else");
    assert_eq!(
        w.state_of(&cancelled),
        "pending",
        "bob's cancel changed nothing"
    );
    w.by(&w.dave, &["cancel", &cancelled])
        .ok("dave withdraws his own request");
    assert_eq!(w.state_of(&cancelled), "cancelled", "withdrawn");

    // --- Revoke: ends an active grant now; idempotent. The reason is a formula (see CSV). ---
    let revoked = w.request("prod", "1h", FORMULA_REASON);
    w.by(&w.bob, &["approve", &revoked]).ok("first approval");
    w.by(&w.carol, &["approve", &revoked]).ok("second approval");
    assert_eq!(w.state_of(&revoked), "active", "granted after quorum");
    w.by(&w.dave, &["revoke", &revoked, "--reason", "done early"])
        .ok("the requester may end his own grant");
    let r = w.request_json(&revoked);
    assert_eq!(r["status"], "revoked", "revoked at once: {r}");
    assert_eq!(r["revoked_by"], "dave", "the log says who revoked: {r}");
    let size = w.log_size();
    w.by(&w.dave, &["revoke", &revoked])
        .ok("revoking an ended grant is not an error (revokes are idempotent)")
        .stdout_mentions("nothing to do", "a repeated revoke says it did nothing");
    assert_eq!(w.log_size(), size, "a no-op revoke appends nothing");

    // --- Extension: a new linked request, within the chain's cap, approved again. ---
    let base = w.request("prod", "1h", "long investigation");
    w.by(&w.bob, &["approve", &base]).ok("first approval");
    w.by(&w.carol, &["approve", &base]).ok("second approval");
    let base_deadline = w.request_json(&base)["deadline"].clone();
    assert!(base_deadline.is_string(), "an active grant has a deadline");
    let extend = |duration: &str| {
        w.by(
            &w.dave,
            &[
                "request",
                "--target",
                "prod",
                "--duration",
                duration,
                "--reason",
                "need more time",
                "--extends",
                &base,
                "--json",
            ],
        )
    };
    extend("45m")
        .code(REFUSED, "1h + 45m exceeds prod's 1h30m extension cap")
        .one_line_error("extension over the cap")
        .stderr_mentions(&["1h30m", "cap"], "the refusal names the cap");
    let out = extend("30m");
    out.ok("1h + 30m fits in the 1h30m cap");
    let v = out.json();
    assert_eq!(
        v["state"], "pending",
        "an extension needs approval again: {v}"
    );
    let ext = v["request"]
        .as_str()
        .expect("the extension's id")
        .to_owned();
    let r = w.request_json(&ext);
    assert_eq!(r["extends"], base.as_str(), "the extension is linked: {r}");
    assert_eq!(
        w.request_json(&base)["deadline"],
        base_deadline,
        "asking for an extension never moves the grant's deadline"
    );

    // --- Break-glass: active at once, review owed, never reviewed by the requester. ---
    let break_glass = |duration: &str| {
        w.by(
            &w.dave,
            &[
                "request",
                "--target",
                "prod",
                "--duration",
                duration,
                "--reason",
                "database down, INC-7",
                "--break-glass",
                "--json",
            ],
        )
    };
    let size = w.log_size();
    break_glass("20m")
        .code(REFUSED, "prod's break-glass rule caps activations at 10m")
        .one_line_error("break-glass over its cap")
        .stderr_mentions(&["10m"], "the refusal names the break-glass cap");
    assert_eq!(w.log_size(), size, "a refused activation appends nothing");

    // --- Lapse: started now, observed at the end (quick's request TTL is 2 s). Started after
    // the checks that a refused command appends nothing, which the lapse, appended by the pass
    // a command runs first, would otherwise race. ---
    let lapsing = {
        let out = w.by(
            &w.bob,
            &[
                "request",
                "--target",
                "quick",
                "--duration",
                "5m",
                "--reason",
                "nobody will decide this",
                "--json",
            ],
        );
        out.ok("anyone enrolled may request quick");
        let v = out.json();
        assert_eq!(v["state"], "pending", "a new request is pending: {v}");
        v["request"].as_str().expect("a request id").to_owned()
    };
    let out = break_glass("5m");
    out.ok("break-glass within its cap self-activates");
    let v = out.json();
    assert_eq!(v["state"], "active", "break-glass is granted at once: {v}");
    assert!(v["deadline"].is_string(), "with a deadline: {v}");
    let bg = v["request"]
        .as_str()
        .expect("the activation's id")
        .to_owned();
    let r = w.request_json(&bg);
    assert_eq!(r["break_glass"], true, "marked as break-glass: {r}");
    assert_eq!(
        r["review"]["state"], "required",
        "a break-glass activation owes a review: {r}"
    );
    w.by(&w.dave, &["status"])
        .ok("status as dave")
        .stdout_mentions("REVIEW OWED", "the text status shows the owed review");
    w.by(&w.dave, &["review", &bg, "--comment", "all fine"])
        .code(REFUSED, "the requester may not review his own activation")
        .one_line_error("self-review");
    w.by(
        &w.bob,
        &["review", &bg, "--comment", "justified: INC-7 outage"],
    )
    .ok("an approver reviews the activation");
    let r = w.request_json(&bg);
    assert_eq!(r["review"]["state"], "done", "the review is recorded: {r}");
    assert_eq!(r["review"]["by"], "bob", "by bob: {r}");

    // --- The timed parts: expiry at the deadline, lapse after the TTL. ---
    let r = w.wait_for_state(
        &short,
        "expired",
        POLL_LIMIT,
        "every command runs the expiry scheduler first",
    );
    assert!(
        millis(&r["ended_at"]) >= deadline,
        "a grant never ends before its deadline: {r}"
    );
    assert!(
        now_millis() >= deadline,
        "expired is only reported once the deadline has passed"
    );
    let r = w.wait_for_state(
        &lapsing,
        "lapsed",
        POLL_LIMIT,
        "an undecided request lapses after the 2s TTL",
    );
    assert_eq!(
        millis(&r["lapses_at"]) - millis(&r["requested_at"]),
        2_000,
        "the TTL is quick's request_ttl: {r}"
    );
    w.by(&w.carol, &["approve", &lapsing])
        .code(REFUSED, "a lapsed request cannot be approved")
        .one_line_error("approval after lapse");
    assert_eq!(w.state_of(&lapsing), "lapsed", "still lapsed");

    audit(w, &revoked);
}

/// The log verifies; its exports verify and parse.
fn audit(w: &World, formula_request: &str) {
    let status = w.status();
    let log_size = status["log_size"].as_u64().expect("log_size");
    let requests = status["requests"].as_array().expect("requests").len();

    w.by(&w.admin, &["log", "verify"])
        .ok("the log written by the CLI verifies")
        .stdout_mentions("OK", "a verified log says OK");

    let bundle = w.path("audit.bundle");
    let bundle_arg = bundle.display().to_string();
    w.by(
        &w.admin,
        &["export", "--format", "bundle", "-o", &bundle_arg],
    )
    .ok("bundle export");
    // `verify` needs no data directory: it is for auditors with only the bundle.
    let out = support::run_binary(&["verify", &bundle_arg], &[]);
    out.ok("an exported bundle verifies offline")
        .stdout_mentions("OK", "a verified bundle says OK");
    // It says what it checked, in plain words and in --json.
    for said in [
        "Checked:",
        "Merkle tree: the RFC 6962 root",
        "signatures: all",
        "policy rules, replayed",
        "not the requester",
        "consistency: not checked",
    ] {
        out.stdout_mentions(said, "verify explains what it checked");
    }
    // An auditor keeps the bundle's checkpoint; a later bundle must extend it.
    let text = std::fs::read_to_string(&bundle).expect("the bundle");
    let trailer: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a last line")).expect("json");
    let kept = w.path("audit.checkpoint");
    std::fs::write(&kept, trailer["checkpoint"].as_str().expect("a note")).expect("write");
    let kept_arg = kept.display().to_string();
    support::run_binary(&["verify", &bundle_arg, "--checkpoint", &kept_arg], &[])
        .ok("the bundle extends the checkpoint kept")
        .stdout_mentions(
            &format!("consistency: the first {log_size} entries hash to the earlier checkpoint"),
            "says what the kept checkpoint proved",
        );
    let out = support::run_binary(&["verify", &bundle_arg, "--json"], &[]);
    out.ok("--json");
    let checks = out.json()["report"]["checks"].clone();
    assert!(
        checks.as_array().is_some_and(|c| c.len() >= 5),
        "the checks, in --json too: {checks}"
    );

    // One request's evidence package verifies offline too, and says what it proves.
    let evidence = w.path("request.evidence");
    let evidence_arg = evidence.display().to_string();
    w.by(
        &w.admin,
        &[
            "export",
            "--format",
            "evidence",
            "--request",
            formula_request,
            "-o",
            &evidence_arg,
        ],
    )
    .ok("evidence export");
    let out = support::run_binary(&["verify", &evidence_arg], &[]);
    out.ok("the evidence verifies offline").stdout_mentions(
        &format!("evidence of request {formula_request}"),
        "says which request it proves",
    );
    for said in ["inclusion: each of the", "completeness: not provable"] {
        out.stdout_mentions(said, "says what a package proves and what it cannot");
    }
    let out = support::run_binary(&["verify", &evidence_arg, "--json"], &[]);
    out.ok("--json");
    assert_eq!(out.json()["evidence"]["request"]["id"], formula_request);
    let mut bytes = std::fs::read(&evidence).expect("the package");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&evidence, &bytes).expect("tamper");
    support::run_binary(&["verify", &evidence_arg], &[])
        .code(support::VERIFY_FAILED, "a changed byte fails verification");
    for (args, code, why) in [
        (
            vec!["--format", "evidence"],
            support::USAGE,
            "evidence needs --request",
        ),
        (
            vec!["--format", "csv", "--request", formula_request],
            support::USAGE,
            "--request is for evidence only",
        ),
        (
            vec!["--format", "evidence", "--request", "req_nope"],
            support::REFUSED,
            "not a request id",
        ),
    ] {
        let out_file = w.path("refused.evidence");
        let mut all = vec!["export"];
        all.extend(args);
        let out_arg = out_file.display().to_string();
        all.extend(["-o", out_arg.as_str()]);
        w.by(&w.admin, &all).code(code, why).one_line_error(why);
        assert!(!out_file.exists(), "{why}: nothing written");
    }

    let csv_path = w.path("audit.csv");
    w.by(
        &w.admin,
        &[
            "export",
            "--format",
            "csv",
            "-o",
            &csv_path.display().to_string(),
        ],
    )
    .ok("CSV export");
    let mut reader = csv::Reader::from_path(&csv_path).expect("the CSV export is readable");
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header, CSV_HEADER,
        "the CSV header is the documented one, in order"
    );
    assert_eq!(
        breakglass_engine::CSV_COLUMNS,
        CSV_HEADER,
        "the engine's columns are the documented ones"
    );
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("every CSV row parses (RFC 4180)");
    assert_eq!(rows.len(), requests, "one CSV row per request");
    let row = rows
        .iter()
        .find(|r| &r[0] == formula_request)
        .expect("the revoked request has a row");
    assert_eq!(
        &row[4],
        format!("'{FORMULA_REASON}"),
        "a reason starting with '=' is prefixed with an apostrophe so spreadsheets do not run it"
    );
    assert_eq!(&row[14], "revoked", "the outcome column");
    assert!(
        rows.iter().all(|r| r.len() == CSV_HEADER.len()),
        "every row has every column"
    );

    let out = w.by(&w.admin, &["export", "--format", "jsonl", "-o", "-"]);
    out.ok("JSON Lines export to stdout");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("every JSONL line is JSON ({e}): {l}"))
        })
        .collect();
    assert_eq!(
        u64::try_from(lines.len()).expect("a count"),
        log_size,
        "an unfiltered JSONL export holds every event of the log"
    );

    // OCSF for SIEMs (validated against the schema in crates/engine/tests/ocsf.rs): one event
    // per entry about access or an account, the rest counted aloud.
    let ocsf_path = w.path("events.ocsf.jsonl");
    let ocsf_arg = ocsf_path.display().to_string();
    let out = w.by(&w.admin, &["export", "--format", "ocsf", "-o", &ocsf_arg]);
    out.ok("OCSF export");
    let without_form: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("note: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the export says how many entries have no OCSF form: {out:?}"));
    let events: Vec<Value> = std::fs::read_to_string(&ocsf_path)
        .expect("the OCSF export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every OCSF line is JSON"))
        .collect();
    assert_eq!(
        events.len() as u64 + without_form,
        log_size,
        "every entry accounted for"
    );
    assert!(
        events
            .iter()
            .all(|e| matches!(e["class_uid"].as_u64(), Some(3001 | 3005))
                && e["metadata"]["version"] == "1.8.0"),
        "User Access Management and Account Change events of OCSF 1.8.0"
    );
    assert!(
        events
            .iter()
            .any(|e| e["metadata"]["event_code"] == "access_granted" && e["activity_id"] == 1),
        "a grant is an Assign Privileges event"
    );

    // The access report, as HTML and PDF (rendering and charts: crates/engine/tests/report.rs).
    let html = w.path("report.html");
    let pdf = w.path("report.pdf");
    let (html_arg, pdf_arg) = (html.display().to_string(), pdf.display().to_string());
    w.by(&w.admin, &["report", "-o", &html_arg, "--pdf", &pdf_arg])
        .ok("the report")
        .stderr_mentions(&["Wrote the report", "PDF"], "says where it wrote");
    let page = std::fs::read_to_string(&html).expect("the report");
    assert!(page.contains("Verification: OK") && page.contains("Grants per day"));
    assert!(std::fs::read(&pdf).expect("the PDF").starts_with(b"%PDF-"));
    w.by(
        &w.admin,
        &[
            "report",
            "--from",
            "2030-01-02",
            "--to",
            "2030-01-01",
            "-o",
            &w.path("bad.html").display().to_string(),
        ],
    )
    .code(REFUSED, "a period that ends before it starts")
    .one_line_error("--from");
    w.by(&w.admin, &["report", "-o", "-"])
        .code(USAGE, "the report is a file");
    assert!(
        !w.path("bad.html").exists(),
        "a refused report writes nothing"
    );

    // At a terminal a long export shows its progress; piped, it shows none (above).
    let out = w.cli.run_in_terminal(
        &w.admin,
        &[
            "export",
            "--format",
            "jsonl",
            "-o",
            &w.path("t.jsonl").display().to_string(),
        ],
    );
    out.code(OK, "an export at a terminal");
    assert!(
        out.stdout.contains("exporting") && out.stdout.contains(&format!("/{log_size} entries")),
        "the progress bar counts the log's entries: {out:?}"
    );
    assert!(
        !out.stderr.contains("exporting")
            && !w
                .by(
                    &w.admin,
                    &[
                        "export",
                        "--format",
                        "jsonl",
                        "-o",
                        &w.path("u.jsonl").display().to_string()
                    ]
                )
                .stderr
                .contains("exporting"),
        "no bar when standard error is not a terminal"
    );
}

#[test]
fn lifecycle_on_sqlite() {
    let w = World::sqlite();
    scenario(&w);
    assert!(
        w.cli.data_dir.join("breakglass.db").is_file(),
        "the default database is SQLite in the data directory"
    );
}

#[test]
fn lifecycle_on_postgres() {
    let pg = PgCluster::start_blocking().expect(
        "a throwaway PostgreSQL cluster (Debian's postgresql package; scripts/bootstrap.sh installs it)",
    );
    let url = block_on(pg.create_database()).expect("a fresh database on the test cluster");
    let w = World::with_env(&[("BREAKGLASS_DATABASE_URL", &url)]);
    scenario(&w);
    assert!(
        !w.cli.data_dir.join("breakglass.db").exists(),
        "with BREAKGLASS_DATABASE_URL set, nothing is written to a local SQLite file"
    );
    // The same log read back by a process that only has the URL and the data directory.
    let out = w.by(&w.admin, &["status", "--json"]);
    assert_eq!(out.code, OK, "status on PostgreSQL: {out:?}");
    drop(w);
    drop(pg);
}
