//! The desktop app as a member of a team, in a real window: the first run joins a team's log on
//! a real PostgreSQL (with README.md's database roles) and shows which key to enrol until an
//! administrator has; the broker's loop runs in this process, and another member's app files a
//! request. The window shows the request as it is committed, approves it (the broker grants
//! it), and raises the alarm (the severe banner and a desktop notification) when the shared
//! database's history is cut behind its back.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use breakglass_core::{PublicKey, Span, SystemClock};
use breakglass_engine::{generate, Actor, Engine, NewRequest, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::testing::{grant_apps, team_roles, PgCluster};
use breakglass_store::Store;
use breakglass_testkit::desktop::Desktop;
use breakglass_testkit::keyring::SecretService;
use breakglass_testkit::notifications::NotificationDaemon;
use sqlx::{Connection, PgConnection};
use support::{notified, screenshot_dir, Window};

const POLICY: &str = r#"version = 1
[groups]
admin = ["admin"]
sre = ["dana"]
engineers = ["ops"]

[targets.demo]
description = "Demonstration target (no real access is granted)"
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
requesters = ["engineers"]
approvers = { groups = ["sre"], quorum = 1 }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

#[test]
fn a_member_app_follows_the_team_log_live_approves_and_raises_the_alarm_when_history_is_cut() {
    let keyring = SecretService::start();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(story(&keyring));
}

async fn story(keyring: &SecretService) {
    let pg = PgCluster::start().await.expect("PostgreSQL starts");
    let superuser = pg.create_database().await.expect("a database");
    let (broker_url, app_url) = team_roles(&superuser).await.expect("README's roles");

    // The broker's machine: the log, its policy and its people.
    let clock = Arc::new(SystemClock);
    let admin = Actor::new("admin", generate());
    let keys = SystemKeys {
        log: NoteSigner::new("team.e2e/log", generate()).expect("a log key"),
        broker: generate(),
    };
    let log_key = keys.log.verifier();
    let mut broker = Engine::create(
        Store::open(&broker_url).await.expect("store"),
        clock.clone(),
        keys,
        &admin,
    )
    .await
    .expect("the team's log");
    broker.apply_policy(&admin, POLICY).await.expect("policy");
    grant_apps(&broker_url).await.expect("README's grants");
    let ops = Actor::new("ops", generate());
    broker
        .enrol(&admin, "ops", ops.public_key(), [])
        .await
        .expect("ops");

    let home = keyring.tmp.path().join("dana-home");
    let mut env = keyring.env();
    env.push(("BREAKGLASS_HOME".into(), home.display().to_string()));
    let desktop = Desktop::start(&env);
    let notifications = NotificationDaemon::start(desktop.display(), keyring.bus_address());
    let client = desktop
        .session(Path::new(env!("CARGO_BIN_EXE_breakglass-app")))
        .await;
    let w = Window {
        client,
        desktop: &desktop,
        shots: screenshot_dir(),
    };
    let team = Team {
        app_url,
        superuser,
        log_key,
        admin,
        ops,
    };
    let result = tokio::time::timeout(
        Duration::from_secs(300),
        scenario(&w, &team, broker, &notifications),
    )
    .await;
    if result.is_err() || std::thread::panicking() {
        eprintln!("{}", desktop.driver_log());
    }
    let _ = w.client.clone().close().await;
    result.expect("the scenario finishes within 5 minutes");
}

/// What the scenario needs of the team.
struct Team {
    app_url: String,
    superuser: String,
    log_key: breakglass_ledger::NoteVerifier,
    admin: Actor,
    ops: Actor,
}

async fn scenario(
    w: &Window<'_>,
    team: &Team,
    mut broker: Engine,
    notifications: &NotificationDaemon,
) {
    // The first run joins the team's log; a key is made for dana in the keyring, and until an
    // administrator enrols it the window says which.
    w.type_into("setup-join-db", &team.app_url).await;
    w.type_into("setup-join-key", &team.log_key.vkey()).await;
    w.type_into("setup-join-name", "dana").await;
    w.click("setup-join").await;
    let command = w
        .text_until("enrol-command", "the enrolment command", |t| {
            t.starts_with("breakglass identity add dana --group GROUP --public-key ")
        })
        .await;
    w.shot("team-joined").await;
    let key = command
        .rsplit(' ')
        .next()
        .expect("the key ends the command");
    broker
        .enrol(
            &team.admin,
            "dana",
            PublicKey::from_base64(key).expect("the key shown is a public key"),
            [],
        )
        .await
        .expect("the administrator enrols dana's key");
    w.gone("enrol-notice", "the notice should go once dana is enrolled")
        .await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let broker = tokio::spawn(async move {
        broker
            .run_broker(Duration::from_secs(30), |_| {}, async {
                let _ = stopped.await;
            })
            .await;
        broker.close().await;
    });
    w.click("nav-approvals").await;

    // ops files a request from another member's app: it appears in dana's window.
    let mut other = Engine::join(
        Store::open(&team.app_url).await.expect("store"),
        Arc::new(SystemClock),
        team.log_key.clone(),
    )
    .await
    .expect("ops's app joins");
    let id = other
        .request(
            &team.ops,
            NewRequest {
                target: "demo".into(),
                role: None,
                duration: Span::from_secs(1800),
                reason: "rotate the team's keys".into(),
                ticket: Some("OPS-12".into()),
                break_glass: false,
                extends: None,
                credential: None,
            },
        )
        .await
        .expect("ops requests")
        .request
        .to_string();
    w.text_until(&format!("pending-{id}"), "ops's request", |t| {
        t.contains("rotate the team's keys")
    })
    .await;
    w.shot("team-pending").await;

    // dana approves in the window; the broker grants; the window shows the grant.
    w.click(&format!("approve-{id}")).await;
    w.text_until(&format!("active-{id}"), "the grant", |t| t.contains("ops"))
        .await;
    w.shot("team-active").await;
    other.close().await;

    // dana's app witnesses the log: its cosignature of a checkpoint it verified is in the
    // shared database.
    let mut db = PgConnection::connect(&team.superuser)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    loop {
        let witnesses: Vec<String> = sqlx::query_scalar("SELECT witness FROM cosignatures")
            .fetch_all(&mut db)
            .await
            .expect("read the cosignatures");
        if witnesses.iter().any(|w| w.ends_with("/witness/dana")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dana's app cosigns what it verified: {witnesses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.close().await.expect("close");

    // Someone with the database's superuser cuts its newest entry and checkpoint.
    let _ = stop.send(());
    let _ = broker.await;
    let mut db = PgConnection::connect(&team.superuser)
        .await
        .expect("connect");
    for sql in [
        "SET session_replication_role = replica",
        "DELETE FROM checkpoints WHERE size = (SELECT max(size) FROM checkpoints)",
        "DELETE FROM log_entries WHERE idx = (SELECT max(idx) FROM log_entries)",
    ] {
        sqlx::raw_sql(sql).execute(&mut db).await.expect(sql);
    }
    db.close().await.expect("close");
    let message = w
        .text_until("error-banner", "the alarm", |t| {
            t.contains("The log failed verification")
        })
        .await;
    assert!(message.contains("shrank"), "says what was found: {message}");
    assert!(
        message.contains("A report of this finding signed by dana is kept in"),
        "says the finding is signed and kept: {message}"
    );
    let notice = notified(notifications, "Breakglass: the log failed verification").await;
    assert!(notice.body.contains("shrank"), "{notice:?}");
    w.shot("team-alarm").await;
}
