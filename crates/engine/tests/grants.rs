//! Grants whose targets enforce the deadline themselves, end to end through the engine: a
//! request carries the requester's SSH public key, database password verifier or sealing key,
//! approvals grant it through the policy's connector, and the real sshd, the real PostgreSQL and
//! the real OpenID provider stop accepting it at the deadline on their own (nothing ticks), and
//! at once after a revoke. Connector secrets (the CA key, the administrative password, the
//! client secret) come from 0600 files the policy names; the log never holds them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use breakglass_connectors::postgres::{new_password, ScramVerifier};
use breakglass_connectors::ssh::{RevocationList, SshCa};
use breakglass_core::{
    Clock, Credential, Issued, Refusal, RequestId, Span, Status, SystemClock, Timestamp,
};
use breakglass_engine::{generate, Actor, Engine, EngineError, NewRequest, SystemKeys};
use breakglass_idp::testing::{
    TestIdp, TestIdpOptions, BROKER_CLIENT_ID, JWT_RESOURCE, LIFETIME_PARAMETER, OPAQUE_RESOURCE,
    RESOURCE_MAX_TTL_SECS,
};
use breakglass_idp::{AccessToken, Provider};
use breakglass_ledger::NoteSigner;
use breakglass_store::testing::PgCluster;
use breakglass_store::Store;
use breakglass_testkit::sshd::{keygen, Sshd};
use sqlx::{Connection, PgConnection};

struct Lab {
    dir: tempfile::TempDir,
    engine: Engine,
    dana: Actor,
    bob: Actor,
}

/// A log on SQLite with the real clock (the targets keep real time), `policy` applied, and two
/// identities: dana (an engineer who requests) and bob (an approver).
async fn lab(policy: impl FnOnce(&Path) -> String) -> Lab {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(&dir.path().join("log.db").display().to_string())
        .await
        .expect("store");
    let keys = SystemKeys {
        log: NoteSigner::new("grants.test/log", generate()).expect("log key"),
        broker: generate(),
    };
    let admin = Actor::new("admin", generate());
    let mut engine = Engine::create(store, Arc::new(SystemClock), keys, &admin)
        .await
        .expect("log created");
    let source = policy(dir.path());
    engine
        .apply_policy(&admin, &source)
        .await
        .expect("policy applies");
    let dana = Actor::new("dana", generate());
    let bob = Actor::new("bob", generate());
    engine
        .enrol(&admin, "dana", dana.public_key(), [])
        .await
        .expect("dana");
    engine
        .enrol(&admin, "bob", bob.public_key(), [])
        .await
        .expect("bob");
    Lab {
        dir,
        engine,
        dana,
        bob,
    }
}

fn groups() -> &'static str {
    r#"
version = 1
[groups]
admin = ["admin"]
engineers = ["dana"]
sre = ["bob"]
"#
}

fn write_secret(path: &Path, secret: &[u8]) {
    std::fs::write(path, secret).expect("write the secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

impl Lab {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Dana asks for `duration` on `target` with `credential`; bob approves; the grant is made.
    async fn granted(
        &mut self,
        target: &str,
        duration: &str,
        credential: Option<Credential>,
    ) -> (RequestId, Timestamp, Issued) {
        let out = self
            .engine
            .request(&self.dana, request(target, duration, credential))
            .await
            .expect("requested");
        assert_eq!(out.state, Status::Pending);
        let out = self
            .engine
            .approve(&self.bob, &out.request, None)
            .await
            .expect("approved");
        assert_eq!(out.warning, None, "the connector granted");
        assert_eq!(out.state, Status::Active);
        let r = self.engine.state().request(&out.request).expect("recorded");
        assert_eq!(r.enforced_by_target, Some(true));
        let issued = r.issued.clone().expect("the grant issued something");
        (out.request, out.deadline.expect("a deadline"), issued)
    }
}

fn request(target: &str, duration: &str, credential: Option<Credential>) -> NewRequest {
    NewRequest {
        target: target.into(),
        role: None,
        duration: Span::parse(duration).expect("a duration"),
        reason: "incident INC-42: replica lag".into(),
        ticket: Some("INC-42".into()),
        break_glass: false,
        extends: None,
        credential,
    }
}

async fn sleep_past(deadline: Timestamp) {
    let now = SystemClock.now();
    let wait = deadline.millis_since(now).max(0) + 1200;
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
}

#[tokio::test]
async fn an_approved_ssh_certificate_logs_in_until_its_deadline_and_not_after_a_revoke() {
    let ca = SshCa::generate().expect("a CA key");
    let user = breakglass_testkit::sshd::current_user();
    let mut lab = lab(|dir| {
        write_secret(
            &dir.join("ssh-ca"),
            ca.to_openssh().expect("CA key text").as_bytes(),
        );
        format!(
            r#"{groups}
[targets.bastion]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "2h"
requesters = ["engineers"]
approvers = {{ groups = ["sre"], quorum = 1 }}
[targets.bastion.connector]
kind = "ssh"
ca_key = "file:{dir}/ssh-ca"
revocation_list = "{dir}/revoked.krl"
principals = ["{user}"]
"#,
            groups = groups(),
            dir = dir.display(),
        )
    })
    .await;
    let ca_pub = lab.path("ca.pub");
    std::fs::write(&ca_pub, ca.public_key().to_openssh().expect("CA line")).expect("ca.pub");
    let krl = lab.path("revoked.krl");
    RevocationList::at(&krl)
        .ensure(ca.public_key(), 0)
        .expect("an empty list for sshd to start with");
    let sshd = Sshd::start(&ca_pub, &krl);
    let key = lab.path("id_ed25519");
    keygen(&key);
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("the .pub file");
    let cert = lab.path("id_ed25519-cert.pub");

    // A short grant: sshd refuses the certificate from the deadline on, with nothing revoking it.
    let (id, deadline, issued) = lab
        .granted(
            "bastion",
            "4s",
            Some(Credential::SshPublicKey(public.clone())),
        )
        .await;
    let Issued::SshCertificate(text) = issued else {
        panic!("an SSH grant issues a certificate, not {issued:?}");
    };
    assert!(
        text.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{text}"
    );
    std::fs::write(&cert, format!("{text}\n")).expect("write the certificate");
    let who = sshd
        .login(&key, &cert)
        .expect("logs in before the deadline");
    assert_eq!(who.trim(), "logged-in", "as {user}");
    sleep_past(deadline).await;
    assert_eq!(
        lab.engine.state().request(&id).map(|r| r.status),
        Some(Status::Active),
        "nothing has revoked it yet"
    );
    let refused = sshd.login(&key, &cert);
    assert!(
        refused.is_err(),
        "sshd refuses it after the deadline: {refused:?}"
    );
    let report = lab.engine.tick().await.expect("the scheduler runs");
    assert_eq!(report.expired, [id]);
    assert!(
        RevocationList::at(&krl)
            .listed()
            .expect("the list reads")
            .contains(&id.as_str().to_owned()),
        "and it is on the revocation list as well"
    );

    // A long grant, revoked early by the requester: refused at once.
    let (id, _, issued) = lab
        .granted("bastion", "30m", Some(Credential::SshPublicKey(public)))
        .await;
    let Issued::SshCertificate(text) = issued else {
        panic!("a certificate");
    };
    std::fs::write(&cert, format!("{text}\n")).expect("write the certificate");
    sshd.login(&key, &cert).expect("logs in");
    let out = lab
        .engine
        .revoke(&lab.dana, &id, Some("done".into()))
        .await
        .expect("revoked");
    assert_eq!((out.state, out.warning), (Status::Revoked, None));
    let refused = sshd.login(&key, &cert);
    assert!(
        refused.is_err(),
        "refused right after the revoke: {refused:?}"
    );
}

#[tokio::test]
async fn a_request_without_a_usable_credential_is_refused_and_changes_nothing() {
    let ca = SshCa::generate().expect("a CA key");
    let mut lab = lab(|dir| {
        write_secret(&dir.join("ssh-ca"), ca.to_openssh().expect("text").as_bytes());
        format!(
            r#"{groups}
[targets.bastion]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "ssh", ca_key = "file:{dir}/ssh-ca", revocation_list = "{dir}/k.krl", principals = ["ops"] }}
[targets.wiki]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }}
"#,
            groups = groups(),
            dir = dir.display(),
        )
    })
    .await;
    let size = lab.engine.size();
    let private_key = ca.to_openssh().expect("text").to_string();
    let cases = [
        ("bastion", None, "needs an SSH public key"),
        (
            "bastion",
            Some(Credential::SshPublicKey(private_key)),
            "must be one line",
        ),
        (
            "bastion",
            Some(Credential::SshPublicKey(
                "ssh-ed25519 bm90IGEga2V5 me".into(),
            )),
            "does not parse",
        ),
        (
            "bastion",
            Some(Credential::ScramVerifier(
                ScramVerifier::of("a password of some length")
                    .as_str()
                    .into(),
            )),
            "not a database password verifier",
        ),
        (
            "wiki",
            Some(Credential::SshPublicKey("ssh-ed25519 AAAA me".into())),
            "takes no credential",
        ),
    ];
    for (target, credential, expected) in cases {
        let error = lab
            .engine
            .request(&lab.dana, request(target, "10m", credential))
            .await
            .expect_err("refused");
        assert!(
            matches!(error, EngineError::Refused(Refusal::Credential { .. })),
            "{error:?}"
        );
        assert!(error.to_string().contains(expected), "{error}");
        assert_eq!(lab.engine.size(), size, "nothing was logged");
    }
}

#[tokio::test]
async fn a_database_role_works_until_its_deadline_without_a_broker_and_revoke_ends_its_session() {
    let pg = PgCluster::start().await.expect("PostgreSQL starts");
    pg.require_passwords().await.expect("passwords required");
    let url = pg.create_database().await.expect("a database");
    let db = url.rsplit('/').next().expect("its name").to_owned();
    let admin_password = new_password();
    let mut superuser = PgConnection::connect(&url).await.expect("connects");
    sqlx::raw_sql(&format!(
        "CREATE ROLE readers NOLOGIN; \
         CREATE TABLE incidents (id int PRIMARY KEY, note text); \
         INSERT INTO incidents VALUES (1, 'replica lag'); \
         GRANT SELECT ON incidents TO readers; \
         CREATE ROLE breakglass_admin LOGIN SUPERUSER PASSWORD '{}';",
        admin_password.as_str()
    ))
    .execute(&mut superuser)
    .await
    .expect("the target role, its table and the connector's administrator");
    let port = pg.port();
    let mut lab = lab(|dir| {
        write_secret(&dir.join("pg-admin"), admin_password.as_bytes());
        format!(
            r#"{groups}
[targets.reports]
roles = ["read"]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
[targets.reports.connector]
kind = "postgres"
url = "postgres://breakglass_admin@127.0.0.1:{port}/{db}"
password = "file:{dir}/pg-admin"
roles = {{ read = "readers" }}
"#,
            groups = groups(),
            dir = dir.display(),
        )
    })
    .await;
    let password = new_password();
    let verifier = ScramVerifier::of(&password);
    let (id, deadline, issued) = lab
        .granted(
            "reports",
            "5s",
            Some(Credential::ScramVerifier(verifier.as_str().into())),
        )
        .await;
    let Issued::DatabaseRole(role) = issued else {
        panic!("a PostgreSQL grant issues a role, not {issued:?}");
    };
    assert_eq!(role, format!("bg_{id}"));
    let as_role = format!(
        "postgres://{role}:{}@127.0.0.1:{port}/{db}",
        password.as_str()
    );
    let mut session = PgConnection::connect(&as_role)
        .await
        .expect("the requester's password works before the deadline");
    let note: String = sqlx::query_scalar("SELECT note FROM incidents WHERE id = 1")
        .fetch_one(&mut session)
        .await
        .expect("with the target role's privileges");
    assert_eq!(note, "replica lag");

    // The broker is not running (nothing ticks): PostgreSQL refuses new logins by itself.
    sleep_past(deadline).await;
    let late = PgConnection::connect(&as_role).await;
    assert!(late.is_err(), "refused after the deadline: {late:?}");

    // The scheduler's pass ends the grant: the open session is gone, the role too.
    let report = lab.engine.tick().await.expect("the scheduler runs");
    assert_eq!(report.expired, [id]);
    let used = sqlx::query("SELECT 1").execute(&mut session).await;
    assert!(used.is_err(), "the open session was ended");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(&role)
        .fetch_one(&mut superuser)
        .await
        .expect("count");
    assert_eq!(left, 0, "the role is gone");

    // Nothing secret went into the log: not the password, not the administrator's.
    let entries = lab
        .engine
        .entries(0, lab.engine.size())
        .await
        .expect("entries");
    let log = String::from_utf8_lossy(&entries.concat()).into_owned();
    assert!(!log.contains(password.as_str()));
    assert!(!log.contains(admin_password.as_str()));
    assert!(log.contains(verifier.as_str()), "only the verifier");
}

/// An `oauth` target of the real test provider for `resource`, its client secret in a 0600 file.
fn oauth_policy(dir: &Path, idp: &TestIdp, resource: &str) -> String {
    let secret = dir.join("client-secret");
    write_secret(&secret, idp.broker_secret().as_bytes());
    format!(
        r#"{groups}
[targets.billing]
roles = ["read", "write"]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
requesters = ["engineers"]
approvers = {{ groups = ["sre"], quorum = 1 }}
[targets.billing.connector]
kind = "oauth"
issuer = "{issuer}"
client_id = "{client}"
client_secret = "file:{secret}"
resource = "{resource}"
scopes = {{ read = ["api:read"], write = ["api:read", "api:write"] }}
max_token_lifetime = "{max}s"
lifetime_parameter = "{parameter}"
"#,
        groups = groups(),
        issuer = idp.issuer(),
        client = BROKER_CLIENT_ID,
        secret = secret.display(),
        max = RESOURCE_MAX_TTL_SECS,
        parameter = LIFETIME_PARAMETER,
    )
}

async fn test_idp() -> TestIdp {
    TestIdp::start(TestIdpOptions::default())
        .await
        .expect("the test provider starts")
}

#[tokio::test]
async fn an_oauth_token_reaches_only_its_requester_ends_by_the_deadline_and_dies_on_revoke() {
    let idp = test_idp().await;
    let mut lab = lab(|dir| oauth_policy(dir, &idp, OPAQUE_RESOURCE)).await;
    // No credential given: the engine seals to dana's own key.
    let (id, deadline, issued) = lab.granted("billing", "10m", None).await;
    let Issued::AccessToken(sealed) = &issued else {
        panic!("an oauth grant issues a sealed token, not {issued:?}");
    };
    assert_eq!(sealed.resource, OPAQUE_RESOURCE);
    assert!(!sealed.jwt);
    assert!(
        sealed.expires_at <= deadline,
        "{} after {deadline}",
        sealed.expires_at
    );
    let r = lab.engine.state().request(&id).expect("recorded").clone();
    assert!(
        matches!(&r.credential, Some(Credential::SealKey(k)) if *k == lab.dana.seal_key().public_key().to_string()),
        "the request carries dana's sealing key: {:?}",
        r.credential
    );
    let token = lab.dana.open_token(&r).expect("dana opens her token");
    assert!(
        lab.bob.open_token(&r).is_err(),
        "the approver cannot open it"
    );

    // The provider knows it: active, for the resource, until at most the deadline.
    let provider = Provider::discover(idp.broker_client(), Arc::new(SystemClock))
        .await
        .expect("discovery");
    let bearer = AccessToken::new(token.as_str());
    let seen = provider.introspect(&bearer).await.expect("introspection");
    assert!(seen.active, "active while the grant lasts");

    // The log holds it only sealed.
    let entries = lab
        .engine
        .entries(0, lab.engine.size())
        .await
        .expect("entries");
    let log = String::from_utf8_lossy(&entries.concat()).into_owned();
    assert!(
        !log.contains(token.as_str()),
        "no plaintext token in the log"
    );
    assert!(
        !log.contains(idp.broker_secret()),
        "no client secret in the log"
    );
    assert!(log.contains(&sealed.for_requester));

    lab.engine
        .revoke(&lab.dana, &id, None)
        .await
        .expect("dana ends it early");
    assert_eq!(
        lab.engine.state().request(&id).expect("recorded").status,
        Status::Revoked
    );
    let seen = provider.introspect(&bearer).await.expect("introspection");
    assert!(!seen.active, "inactive at once after the revoke");
}

#[tokio::test]
async fn an_oauth_jwt_expires_by_the_deadline_and_a_target_whose_caps_exceed_the_token_is_refused()
{
    let idp = test_idp().await;
    let mut lab = lab(|dir| oauth_policy(dir, &idp, JWT_RESOURCE)).await;
    let (id, deadline, issued) = lab.granted("billing", "30s", None).await;
    let Issued::AccessToken(sealed) = &issued else {
        panic!("a sealed token, not {issued:?}");
    };
    assert!(sealed.jwt);
    let r = lab.engine.state().request(&id).expect("recorded").clone();
    let token = lab.dana.open_token(&r).expect("dana opens her token");
    let claims = breakglass_core::jose::peek_claims(token.as_str()).expect("a JWT");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        exp * 1000 <= deadline.unix_millis(),
        "exp {exp} at or before the deadline {deadline}"
    );
    assert_eq!(claims["aud"], JWT_RESOURCE);

    // A policy allowing grants longer than the provider's tokens is refused, naming the limit.
    let longer = oauth_policy(lab.dir.path(), &idp, JWT_RESOURCE)
        .replace("version = 1", "version = 2")
        .replace(r#"max_duration = "1h""#, r#"max_duration = "2h""#);
    let error = breakglass_core::policy::Policy::parse(&longer)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("max_duration 2h of target billing exceeds the 1h its oauth connector"),
        "{error}"
    );
}
