//! The PostgreSQL connector against a real, throwaway PostgreSQL cluster that requires passwords:
//! the grant's role connects with the target role's privileges before the deadline, cannot
//! connect after it with nothing revoking it (VALID UNTIL), and after a revoke its open session
//! is gone and the role no longer exists. Grants are per request: revoking one leaves another.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use breakglass_connectors::postgres::{
    grant, new_password, revoke, role_for, OwnedObjects, ScramVerifier,
};
use breakglass_store::testing::PgCluster;
use sqlx::{Connection, PgConnection};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

struct Lab {
    pg: PgCluster,
    db: String,
    admin: PgConnection,
}

/// A cluster requiring passwords, with a database holding a table that the role `readers` may
/// read but not change.
async fn lab() -> Lab {
    let pg = PgCluster::start().await.expect("PostgreSQL starts");
    pg.require_passwords().await.expect("passwords required");
    let url = pg.create_database().await.expect("a database");
    let db = url.rsplit('/').next().expect("its name").to_owned();
    let mut admin = PgConnection::connect(&url).await.expect("admin connects");
    sqlx::raw_sql(
        "CREATE ROLE readers NOLOGIN; \
         CREATE TABLE incidents (id int PRIMARY KEY, note text); \
         INSERT INTO incidents VALUES (1, 'disk full'); \
         GRANT SELECT ON incidents TO readers;",
    )
    .execute(&mut admin)
    .await
    .expect("the target role and its table");
    Lab { pg, db, admin }
}

impl Lab {
    fn url_as(&self, role: &str, password: &str) -> String {
        format!(
            "postgres://{role}:{password}@127.0.0.1:{}/{}",
            self.pg.port(),
            self.db
        )
    }

    async fn role_count(&mut self, role: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_one(&mut self.admin)
            .await
            .expect("count roles")
    }
}

#[tokio::test]
async fn the_role_works_until_its_deadline_and_postgresql_refuses_it_after() {
    let mut lab = lab().await;
    let role = role_for("req_pgexpiry").expect("a role name");
    let password = new_password();
    let deadline = now_ms() + 3000;
    grant(
        &mut lab.admin,
        &role,
        "readers",
        &ScramVerifier::of(&password),
        deadline,
    )
    .await
    .expect("granted");

    let mut session = PgConnection::connect(&lab.url_as(&role, &password))
        .await
        .expect("connects before the deadline");
    let note: String = sqlx::query_scalar("SELECT note FROM incidents WHERE id = 1")
        .fetch_one(&mut session)
        .await
        .expect("reads with the target role's privileges");
    assert_eq!(note, "disk full");
    let write = sqlx::query("DELETE FROM incidents")
        .execute(&mut session)
        .await;
    assert!(write.is_err(), "and nothing more: {write:?}");
    let wrong = PgConnection::connect(&lab.url_as(&role, "not-the-password")).await;
    assert!(wrong.is_err(), "the password is checked");
    session.close().await.expect("close");

    // No revoke, no broker: PostgreSQL itself refuses the role from the deadline on.
    while now_ms() <= deadline + 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = PgConnection::connect(&lab.url_as(&role, &password)).await;
    assert!(after.is_err(), "refused after the deadline");
}

#[tokio::test]
async fn revoke_ends_the_open_session_and_drops_the_role_and_only_that_grant() {
    let mut lab = lab().await;
    let first = role_for("req_pgfirst").expect("name");
    let second = role_for("req_pgsecond").expect("name");
    let (p1, p2) = (new_password(), new_password());
    let deadline = now_ms() + 600_000;
    for (role, password) in [(&first, &p1), (&second, &p2)] {
        grant(
            &mut lab.admin,
            role,
            "readers",
            &ScramVerifier::of(password),
            deadline,
        )
        .await
        .expect("granted");
    }
    let mut open = PgConnection::connect(&lab.url_as(&first, &p1))
        .await
        .expect("first connects");
    sqlx::raw_sql("CREATE TEMP TABLE scratch (x int)")
        .execute(&mut open)
        .await
        .expect("a session with something in it");

    revoke(&mut lab.admin, &first, &OwnedObjects::Drop)
        .await
        .expect("revoked");
    let used = sqlx::query("SELECT 1").execute(&mut open).await;
    assert!(used.is_err(), "its open session is gone");
    assert_eq!(lab.role_count(&first).await, 0, "the role no longer exists");
    assert!(
        PgConnection::connect(&lab.url_as(&first, &p1))
            .await
            .is_err(),
        "and cannot connect"
    );

    // The other grant is untouched.
    let mut other = PgConnection::connect(&lab.url_as(&second, &p2))
        .await
        .expect("the other grant still connects");
    sqlx::query("SELECT 1")
        .execute(&mut other)
        .await
        .expect("and works");

    // Revoking again changes nothing and succeeds.
    revoke(&mut lab.admin, &first, &OwnedObjects::Drop)
        .await
        .expect("revoked again");
}

#[tokio::test]
async fn objects_the_grant_created_are_kept_when_the_policy_says_so() {
    let mut lab = lab().await;
    sqlx::raw_sql("CREATE ROLE keeper NOLOGIN; GRANT CREATE ON SCHEMA public TO readers;")
        .execute(&mut lab.admin)
        .await
        .expect("a role to keep objects, and room to create them");
    let role = role_for("req_pgkeep").expect("name");
    let password = new_password();
    grant(
        &mut lab.admin,
        &role,
        "readers",
        &ScramVerifier::of(&password),
        now_ms() + 600_000,
    )
    .await
    .expect("granted");
    let mut session = PgConnection::connect(&lab.url_as(&role, &password))
        .await
        .expect("connects");
    sqlx::raw_sql("CREATE TABLE postmortem (line text)")
        .execute(&mut session)
        .await
        .expect("creates a table");
    session.close().await.expect("close");

    revoke(
        &mut lab.admin,
        &role,
        &OwnedObjects::ReassignTo("keeper".to_owned()),
    )
    .await
    .expect("revoked");
    let owner: String =
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'postmortem'")
            .fetch_one(&mut lab.admin)
            .await
            .expect("the table is still there");
    assert_eq!(owner, "keeper");
    assert_eq!(lab.role_count(&role).await, 0);
}

#[tokio::test]
async fn a_retried_grant_sets_the_same_role_again() {
    let mut lab = lab().await;
    let role = role_for("req_pgretry").expect("name");
    let password = new_password();
    let verifier = ScramVerifier::of(&password);
    let deadline = now_ms() + 600_000;
    grant(&mut lab.admin, &role, "readers", &verifier, deadline)
        .await
        .expect("granted");
    grant(&mut lab.admin, &role, "readers", &verifier, deadline)
        .await
        .expect("granted again");
    assert_eq!(lab.role_count(&role).await, 1);
    PgConnection::connect(&lab.url_as(&role, &password))
        .await
        .expect("connects");
}
