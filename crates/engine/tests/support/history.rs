//! A history with every kind of event a request and an identity go through, on SQLite, with
//! a real program as connector and a manual clock.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use breakglass_core::{ManualClock, Span, Timestamp};
use breakglass_engine::{generate, Actor, Engine, NewRequest, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;

pub fn start() -> Timestamp {
    Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap()
}

/// A real program as connector, failing (exit 3) while fail-grant / fail-revoke exists.
fn write_connector(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("connector.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\nd=$(dirname \"$0\")\n[ -e \"$d/fail-$1\" ] && exit 3\ncat > /dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn policy(connector: &Path) -> String {
    let c = connector.display();
    format!(
        r#"
version = 1

[groups]
admin = ["admin"]
sre = ["bob", "carol"]
engineers = ["dave"]

[targets.prod-db]
roles = ["read", "write"]
max_duration = "2h"
request_ttl = "30m"
extension_cap = "3h"
approvers = {{ groups = ["sre"], quorum = 2 }}

[targets.prod-db.break_glass]
max_duration = "30m"

[targets.prod-db.connector]
kind = "command"
grant = ["{c}", "grant"]
revoke = ["{c}", "revoke"]

[targets.staging]
max_duration = "4h"
request_ttl = "1h"
extension_cap = "8h"
approvers = {{ groups = ["sre"], quorum = 1 }}

[targets.staging.connector]
kind = "command"
grant = ["{c}", "grant"]
revoke = ["{c}", "revoke"]
"#
    )
}

fn ask(target: &str, duration: &str, break_glass: bool) -> NewRequest {
    NewRequest {
        target: target.into(),
        role: None,
        duration: Span::parse(duration).unwrap(),
        reason: "=HYPERLINK(\"x\") investigate INC-42".into(),
        ticket: Some("INC-42".into()),
        break_glass,
        extends: None,
        credential: None,
    }
}

/// A log with every kind of event the OCSF export maps, and every kind it does not.
pub async fn history(dir: &Path) -> Engine {
    history_with_keys(dir).await.0
}

/// [`history`], with a way to open the log again and add to it: its system keys, its clock (now
/// at the end of the history) and its first administrator.
pub async fn history_with_keys(
    dir: &Path,
) -> (Engine, impl Fn() -> SystemKeys, ManualClock, Actor) {
    let connector = write_connector(dir);
    let clock = ManualClock::new(start());
    let store = Store::open(&format!("sqlite://{}", dir.join("log.db").display()))
        .await
        .unwrap();
    let (log_key, broker_key) = (generate(), generate());
    let system_keys = move || SystemKeys {
        log: NoteSigner::new("test.breakglass/ocsf", log_key.clone()).unwrap(),
        broker: broker_key.clone(),
    };
    let keys = system_keys();
    let admin = Actor::new("admin", generate());
    let mut e = Engine::create(store, Arc::new(clock.clone()), keys, &admin)
        .await
        .unwrap();
    e.apply_policy(&admin, &policy(&connector)).await.unwrap();
    let mut people = BTreeMap::new();
    for (name, groups) in [
        ("bob", vec!["sre"]),
        ("carol", vec!["sre"]),
        ("dave", vec!["engineers"]),
        ("erin", vec![]),
    ] {
        let actor = Actor::new(name, generate());
        e.enrol(
            &admin,
            name,
            actor.public_key(),
            groups.into_iter().map(String::from),
        )
        .await
        .unwrap();
        people.insert(name, actor);
    }
    let (bob, carol, dave) = (&people["bob"], &people["carol"], &people["dave"]);

    // Quorum, grant, expiry.
    let id = e
        .request(dave, ask("prod-db", "1h", false))
        .await
        .unwrap()
        .request;
    e.approve(bob, &id, Some("ok".into())).await.unwrap();
    e.approve(carol, &id, None).await.unwrap();
    clock.advance(Span::parse("1h").unwrap());
    e.tick().await.unwrap();
    // Denied, cancelled, lapsed.
    let id = e
        .request(dave, ask("prod-db", "1h", false))
        .await
        .unwrap()
        .request;
    e.deny(bob, &id, "not during the freeze".into())
        .await
        .unwrap();
    let id = e
        .request(dave, ask("staging", "1h", false))
        .await
        .unwrap()
        .request;
    e.cancel(dave, &id).await.unwrap();
    e.request(dave, ask("staging", "1h", false)).await.unwrap();
    clock.advance(Span::parse("2h").unwrap());
    e.tick().await.unwrap();
    // Revoked early.
    let id = e
        .request(dave, ask("staging", "1h", false))
        .await
        .unwrap()
        .request;
    e.approve(carol, &id, None).await.unwrap();
    e.revoke(bob, &id, Some("done early".into())).await.unwrap();
    // A grant that fails.
    std::fs::write(dir.join("fail-grant"), "").unwrap();
    let id = e
        .request(dave, ask("staging", "1h", false))
        .await
        .unwrap()
        .request;
    e.approve(carol, &id, None).await.unwrap();
    std::fs::remove_file(dir.join("fail-grant")).unwrap();
    // Break-glass: alert, review, a revoke that fails before it succeeds.
    let id = e
        .request(dave, ask("prod-db", "20m", true))
        .await
        .unwrap()
        .request;
    e.review(bob, &id, "justified: INC-42 outage".into())
        .await
        .unwrap();
    std::fs::write(dir.join("fail-revoke"), "").unwrap();
    clock.advance(Span::parse("20m").unwrap());
    e.tick().await.unwrap();
    std::fs::remove_file(dir.join("fail-revoke")).unwrap();
    clock.advance(Span::from_secs(1));
    e.tick().await.unwrap();
    // An identity revoked.
    e.revoke_identity(&admin, "erin", "left the company".into())
        .await
        .unwrap();
    (e, system_keys, clock, admin)
}
