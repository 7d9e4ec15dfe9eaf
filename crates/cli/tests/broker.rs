//! `breakglass broker` as a process: killed with SIGKILL while grants are active, it ends every
//! grant whose deadline passed while it was down in the first pass after it is started again,
//! before anything else; SIGTERM stops it cleanly. On a shared PostgreSQL a second broker waits
//! as a standby and takes over when the acting one dies, revoking nothing twice.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::Duration;

use support::{lines, request_args, until, World};

/// Applies a policy with target `timed` (break-glass up to 10 minutes) whose revoke program
/// appends each instruction to the file returned.
fn timed_target(w: &World) -> std::path::PathBuf {
    timed_target_granting_with(w, "/bin/true")
}

/// A program at `name` that waits `pause` seconds, then appends its instruction (stdin) to the
/// file returned.
fn recording_program(
    w: &World,
    name: &str,
    pause: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let calls = w.path(&format!("{name}.jsonl"));
    let script = w.path(&format!("{name}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep {pause}\n{{ cat; echo; }} >> {}\n",
            calls.display()
        ),
    )
    .expect("write the program");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (script, calls)
}

/// [`timed_target`] whose grant program is `grant`.
fn timed_target_granting_with(w: &World, grant: &str) -> std::path::PathBuf {
    timed_target_with(w, grant, "0")
}

/// [`timed_target`] whose grant program is `grant` and whose revoke program first waits
/// `revoke_pause` seconds.
fn timed_target_with(w: &World, grant: &str, revoke_pause: &str) -> std::path::PathBuf {
    let (script, calls) = recording_program(w, "revokes", revoke_pause);
    let policy = format!(
        r#"{}
[targets.timed]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
break_glass = {{ max_duration = "10m" }}
connector = {{ kind = "command", grant = ["{}"], revoke = ["{}"] }}
"#,
        support::policy(2),
        grant,
        script.display()
    );
    let file = w.path("policy-2.toml");
    std::fs::write(&file, policy).expect("write the policy");
    w.by(&w.admin, &["policy", "apply", &file.display().to_string()])
        .ok("the policy applies");
    calls
}

/// dave's break-glass on `timed` for `duration`, granted (by the acting broker) by the time
/// the command returns; its id.
fn break_glass_granted(w: &World, duration: &str) -> String {
    let mut args = request_args("timed", duration, "primary is down");
    args.extend(["--break-glass", "--json"]);
    let out = w.by(&w.dave, &args);
    out.ok("break-glass on timed");
    let v = out.json();
    assert_eq!(v["state"], "active", "the broker granted it: {out:?}");
    v["request"].as_str().expect("an id").to_owned()
}

/// Each of `ids` reached the revoke program exactly once.
fn assert_revoked_once(calls: &std::path::Path, ids: &[String]) {
    assert_called_once(calls, ids, "revoked");
}

/// Each of `ids` reached the program recording to `calls` exactly once.
fn assert_called_once(calls: &std::path::Path, ids: &[String], what: &str) {
    let seen = std::fs::read_to_string(calls).expect("the program ran");
    for id in ids {
        assert_eq!(
            seen.lines()
                .filter(|l| l.contains(&format!("\"request\":\"{id}\"")))
                .count(),
            1,
            "{id} {what} exactly once: {seen}"
        );
    }
}

#[test]
fn a_killed_broker_ends_every_overdue_grant_in_its_first_pass_when_restarted() {
    let w = World::sqlite();
    let calls = timed_target(&w);
    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    until(&rx, "first pass done");
    // With a broker acting, the broker grants (each command waits until it has, within the
    // broker's 1 s interval), so each deadline is at most 8 s after its command returned.
    let ids: Vec<String> = (0..3).map(|_| break_glass_granted(&w, "8s")).collect();
    let last_granted = std::time::Instant::now();
    assert!(!calls.exists(), "no deadline passed while the broker ran");
    broker.kill().expect("SIGKILL the broker");
    broker.wait().expect("it is gone");

    // The deadlines pass with no broker (and no other command) running.
    std::thread::sleep(
        (last_granted + Duration::from_millis(8500))
            .saturating_duration_since(std::time::Instant::now()),
    );
    assert!(!calls.exists(), "nothing revoked them while no broker ran");

    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    let first = until(&rx, "first pass done");
    let summary = first.last().expect("the summary line");
    assert!(
        summary.contains("3 overdue grant(s) ended, 0 failure(s)"),
        "{first:#?}"
    );
    for id in &ids {
        assert!(
            first
                .iter()
                .any(|l| l.starts_with(&format!("revoked {id} ("))),
            "{id} is revoked in the first pass: {first:#?}"
        );
    }
    assert_revoked_once(&calls, &ids);

    signal(&broker, "TERM");
    let status = broker.wait().expect("the broker exits");
    assert!(status.success(), "SIGTERM stops it cleanly: {status:?}");
    until(&rx, "breakglass broker: stopped");
    for id in &ids {
        assert_eq!(w.state_of(id), "expired");
    }
}

#[test]
fn a_standby_broker_takes_over_when_the_acting_one_dies_and_nothing_is_revoked_twice() {
    let pg = breakglass_store::testing::PgCluster::start_blocking()
        .expect("a throwaway PostgreSQL cluster");
    let url = support::block_on(pg.create_database()).expect("a fresh database");
    let w = World::with_env(&[("BREAKGLASS_DATABASE_URL", &url)]);
    let calls = timed_target(&w);
    let mut active = w.cli.spawn(&["broker", "--interval", "1s"]);
    let active_rx = lines(&mut active);
    until(&active_rx, "first pass done");
    let mut standby = w.cli.spawn(&["broker", "--interval", "1s"]);
    let standby_rx = lines(&mut standby);
    until(&standby_rx, "standby: another broker is acting");

    // Three grants are left for the standby; the last one made ends while the first broker
    // acts (made last, so no other command's pass ends it first).
    let mut ids = Vec::new();
    for secs in ["8s", "8s", "8s", "1s"] {
        let mut args = request_args("timed", secs, "primary is down");
        args.extend(["--break-glass", "--json"]);
        let out = w.by(&w.dave, &args);
        out.ok("break-glass on timed");
        ids.push(out.json()["request"].as_str().expect("an id").to_owned());
    }
    until(&active_rx, &format!("revoked {}", ids[3]));
    active.kill().expect("SIGKILL the acting broker");
    active.wait().expect("it is gone");

    let took_over = until(&standby_rx, "acting (holds the broker lease)");
    assert!(
        took_over.iter().all(|l| !l.starts_with("revoked")),
        "the standby did nothing before taking over: {took_over:#?}"
    );
    for id in &ids[..3] {
        until(&standby_rx, &format!("revoked {id}"));
    }
    assert_revoked_once(&calls, &ids);
    for id in &ids {
        assert_eq!(w.state_of(id), "expired");
    }
    standby.kill().expect("stop the standby");
    standby.wait().expect("it is gone");
    drop(pg);
}

#[test]
fn beside_a_broker_on_postgresql_commands_leave_the_grant_to_it_and_each_grant_runs_once() {
    let pg = breakglass_store::testing::PgCluster::start_blocking()
        .expect("a throwaway PostgreSQL cluster");
    let url = support::block_on(pg.create_database()).expect("a fresh database");
    let w = World::with_env(&[("BREAKGLASS_DATABASE_URL", &url)]);
    // A slow grant program: a command granting beside the broker (which hears each approval
    // at once) would run it a second time.
    let (grant, grants) = recording_program(&w, "grants", "0.3");
    timed_target_granting_with(&w, &grant.display().to_string());
    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    until(&rx, "first pass done");

    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = w.request("timed", "5m", "migration");
        w.by(&w.bob, &["approve", &id])
            .ok("bob's approval completes the quorum");
        assert_eq!(
            w.state_of(&id),
            "active",
            "granted when the approval returned"
        );
        ids.push(id);
    }
    ids.push(break_glass_granted(&w, "5m"));

    for id in &ids {
        until(&rx, &format!("granted {id}"));
    }
    assert_called_once(&grants, &ids, "granted");
    signal(&broker, "TERM");
    assert!(broker.wait().expect("the broker exits").success());
    drop(pg);
}

/// Sends `signal` (STOP, CONT, TERM, …) to `child`.
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal}");
}

#[test]
fn a_broker_told_to_stop_during_its_first_pass_finishes_it_and_stops_cleanly() {
    let w = World::sqlite();
    // Revoking takes two seconds, so the signal comes while the first pass revokes.
    let calls = timed_target_with(&w, "/bin/true", "2");
    let id = break_glass_granted(&w, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    until(&rx, "breakglass broker: started");
    signal(&broker, "TERM");
    let status = broker.wait().expect("the broker exits");
    assert!(status.success(), "SIGTERM stops it cleanly: {status:?}");
    let seen = until(&rx, "breakglass broker: stopped");
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("revoked {id} ("))),
        "the pass under way ended the overdue grant: {seen:#?}"
    );
    assert_revoked_once(&calls, &[id]);
}

#[test]
fn while_a_broker_acts_other_commands_leave_expiry_to_it() {
    let w = World::sqlite();
    let calls = timed_target(&w);
    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    until(&rx, "first pass done");
    let mut args = request_args("timed", "1s", "primary is down");
    args.extend(["--break-glass", "--json"]);
    let out = w.by(&w.dave, &args);
    out.ok("break-glass on timed");
    let id = out.json()["request"].as_str().expect("an id").to_owned();

    // The broker is frozen (it still holds the lease) while the deadline passes: a command
    // does not revoke in its place.
    signal(&broker, "STOP");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        w.state_of(&id),
        "active",
        "status left the expiry to the broker"
    );
    assert!(!calls.exists(), "no command ran the revoke");

    signal(&broker, "CONT");
    until(&rx, &format!("revoked {id}"));
    assert_revoked_once(&calls, std::slice::from_ref(&id));
    signal(&broker, "TERM");
    assert!(broker.wait().expect("the broker exits").success());

    // With no broker, commands run the pass themselves again.
    let out = w.by(&w.dave, &args);
    out.ok("another break-glass");
    let second = out.json()["request"].as_str().expect("an id").to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(w.state_of(&second), "expired", "status ended it");
}
