//! PostgreSQL roles: each grant is a temporary LOGIN role of its own, a member of the target role,
//! whose password stops working at the deadline (`VALID UNTIL`), so PostgreSQL refuses new
//! connections from then on by itself. Revoking ends the role's sessions and drops it (its
//! objects reassigned or dropped, as the policy says). One role per grant: ending one grant never
//! touches another the same person holds.
//!
//! The password never travels: the requester's app makes it, keeps it, and sends only its SCRAM
//! verifier ([`ScramVerifier`]), which PostgreSQL stores as it is. Neither the broker, the log nor
//! the database ever holds the password itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use breakglass_core::policy::PostgresSpec;
use breakglass_core::{Credential, Issued};
use rand::{Rng, RngCore};
use ring::{digest, hmac, pbkdf2};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, PgConnection, Postgres, Row};
use zeroize::Zeroizing;

use crate::{Access, BoxFuture, Connector, ConnectorError, Secrets};

/// PostgreSQL's own default iteration count for SCRAM-SHA-256 verifiers.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// How long revoking waits for each of the role's sessions to end.
const TERMINATE_WAIT_MS: i64 = 5000;

/// What happens to objects a grant's role created, when it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedObjects {
    /// `DROP OWNED BY`: they go with the role.
    Drop,
    /// `REASSIGN OWNED BY … TO role`: they are kept, owned by this role.
    ReassignTo(String),
}

/// A SCRAM-SHA-256 verifier in PostgreSQL's stored form
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), checked strictly so that it can
/// be written into a `CREATE ROLE` statement as a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramVerifier(String);

impl ScramVerifier {
    /// The verifier of `password` with a fresh random salt (RFC 5802 and RFC 7677, as PostgreSQL
    /// computes it). `password` is ASCII from [`new_password`], so SASLprep leaves it as it is.
    pub fn of(password: &str) -> ScramVerifier {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        ScramVerifier::with_salt(password, &salt, SCRAM_ITERATIONS)
    }

    fn with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let mut salted = Zeroizing::new([0u8; 32]);
        let rounds = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            salt,
            password.as_bytes(),
            &mut salted[..],
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted[..]);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let server_key = hmac::sign(&key, b"Server Key");
        ScramVerifier(format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(stored_key.as_ref()),
            STANDARD.encode(server_key.as_ref())
        ))
    }

    /// Checks a verifier a requester sent: the exact stored form, standard base64 that decodes
    /// to a salt of 8–64 bytes and two 32-byte keys, and at least 4096 iterations.
    pub fn parse(text: &str) -> Result<ScramVerifier, ConnectorError> {
        let bad = |why: &str| ConnectorError::new(format!("not a SCRAM-SHA-256 verifier: {why}"));
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(|| bad("it must start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| {
            bad("it must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
        })?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or_else(|| bad("the iterations and salt are not separated by ':'"))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or_else(|| bad("the keys are not separated by ':'"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| bad("the iteration count is not a number"))?;
        if iterations < SCRAM_ITERATIONS {
            return Err(bad(&format!("fewer than {SCRAM_ITERATIONS} iterations")));
        }
        let decode = |what: &str, b64: &str| {
            STANDARD
                .decode(b64)
                .ok()
                .filter(|bytes| STANDARD.encode(bytes) == b64)
                .ok_or_else(|| bad(&format!("the {what} is not canonical base64")))
        };
        let salt_len = decode("salt", salt)?.len();
        if !(8..=64).contains(&salt_len) {
            return Err(bad("the salt must be 8 to 64 bytes"));
        }
        if decode("StoredKey", stored)?.len() != 32 || decode("ServerKey", server)?.len() != 32 {
            return Err(bad("each key must be 32 bytes"));
        }
        Ok(ScramVerifier(text.to_owned()))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new random password for a grant's role: 32 characters from letters and digits (about 190
/// bits), made on the requester's machine.
pub fn new_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    Zeroizing::new(
        (0..32)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect(),
    )
}

/// The role a grant gets: `bg_` and the request id, which must be lower-case letters, digits and
/// `_` (so the name needs no quoting anywhere) and fit PostgreSQL's 63-byte names.
pub fn role_for(request_id: &str) -> Result<String, ConnectorError> {
    let name = format!("bg_{request_id}");
    let plain = request_id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if request_id.is_empty() || !plain || name.len() > 63 {
        return Err(ConnectorError::new(format!(
            "request id {request_id:?} cannot name a PostgreSQL role"
        )));
    }
    Ok(name)
}

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Unix milliseconds as a PostgreSQL timestamp literal in UTC.
fn timestamp(unix_ms: i64) -> Result<String, ConnectorError> {
    let t = chrono::DateTime::from_timestamp_millis(unix_ms)
        .ok_or_else(|| ConnectorError::new(format!("deadline {unix_ms} is out of range")))?;
    Ok(t.format("%Y-%m-%d %H:%M:%S%.3f+00").to_string())
}

fn sql_error(what: &str) -> impl Fn(sqlx::Error) -> ConnectorError + '_ {
    move |e| {
        let detail = match &e {
            sqlx::Error::Database(d) => d.message().to_owned(),
            other => other.to_string(),
        };
        ConnectorError::new(format!("{what}: {detail}"))
    }
}

/// Creates the grant's role: LOGIN with `verifier` as its password, `VALID UNTIL` the deadline
/// (Unix ms), a member of `target_role`. Granting again (a retry) sets the same again.
pub async fn grant(
    conn: &mut PgConnection,
    role: &str,
    target_role: &str,
    verifier: &ScramVerifier,
    deadline_ms: i64,
) -> Result<(), ConnectorError> {
    role_for(role.strip_prefix("bg_").unwrap_or(""))?;
    let until = timestamp(deadline_ms)?;
    let exists = role_exists(conn, role).await?;
    let settings = format!(
        "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
         PASSWORD '{}' VALID UNTIL '{until}'",
        verifier.as_str()
    );
    let statement = if exists {
        format!("ALTER ROLE {} {settings}", ident(role))
    } else {
        format!("CREATE ROLE {} {settings}", ident(role))
    };
    // One simple query: PostgreSQL runs its statements as one transaction, so the role never
    // exists without its membership.
    let statements = format!(
        "{statement}; GRANT {} TO {}",
        ident(target_role),
        ident(role)
    );
    conn.execute(sqlx::raw_sql(&statements))
        .await
        .map_err(sql_error("creating the grant's role in the target role"))?;
    Ok(())
}

// Queries are run as `conn.execute(query)` rather than `query.execute(&mut *conn)`: the latter's
// futures fail the compiler's higher-ranked `Send` check inside a boxed connector future.
async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool, ConnectorError> {
    let row = conn
        .fetch_one(sqlx::query("SELECT count(*) AS n FROM pg_roles WHERE rolname = $1").bind(role))
        .await
        .map_err(sql_error("looking up the grant's role"))?;
    Ok(row.get::<i64, _>("n") > 0)
}

/// Ends the grant: no new logins, its sessions terminated (waiting until they are gone), its
/// objects reassigned or dropped, the role dropped. A role that is already gone is fine: revoking
/// twice does nothing the second time.
pub async fn revoke(
    conn: &mut PgConnection,
    role: &str,
    owned: &OwnedObjects,
) -> Result<(), ConnectorError> {
    role_for(role.strip_prefix("bg_").unwrap_or(""))?;
    if !role_exists(conn, role).await? {
        return Ok(());
    }
    conn.execute(sqlx::raw_sql(&format!(
        "ALTER ROLE {} NOLOGIN",
        ident(role)
    )))
    .await
    .map_err(sql_error("stopping the grant's logins"))?;
    let stuck: i64 = conn
        .fetch_one(
            sqlx::query(
                "SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, $2)) AS stuck \
                 FROM pg_stat_activity WHERE usename = $1",
            )
            .bind(role)
            .bind(TERMINATE_WAIT_MS),
        )
        .await
        .map_err(sql_error("ending the grant's sessions"))?
        .get("stuck");
    if stuck > 0 {
        return Err(ConnectorError::new(format!(
            "{stuck} session(s) of {role} did not end within {} s",
            TERMINATE_WAIT_MS / 1000
        )));
    }
    let owned_sql = match owned {
        OwnedObjects::Drop => format!("DROP OWNED BY {}", ident(role)),
        OwnedObjects::ReassignTo(to) => {
            format!("REASSIGN OWNED BY {} TO {}", ident(role), ident(to))
        }
    };
    // One simple query, so one transaction: its objects go with the role or not at all.
    let statements = format!("{owned_sql}; DROP ROLE IF EXISTS {}", ident(role));
    conn.execute(sqlx::raw_sql(&statements))
        .await
        .map_err(sql_error(
            "handing over the grant's objects and dropping its role",
        ))?;
    Ok(())
}

/// The `postgres` connector: a pool of administrative connections (opened when first needed)
/// and the policy's role mapping.
pub struct PostgresConnector {
    pool: PgPool,
    roles: BTreeMap<String, String>,
    owned: OwnedObjects,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connect options hold the administrative password: never shown.
        f.debug_struct("PostgresConnector")
            .field("roles", &self.roles)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

/// Administrative connections a connector keeps open at most.
const POOL_SIZE: u32 = 4;

impl PostgresConnector {
    /// The connector for `spec`, its administrative password (if any) read through `secrets`.
    /// Connects only when first used.
    pub fn new(
        spec: &PostgresSpec,
        secrets: &dyn Secrets,
    ) -> Result<PostgresConnector, ConnectorError> {
        let mut options = PgConnectOptions::from_str(&spec.url).map_err(|e| {
            ConnectorError::new(format!("the connector's database URL does not parse: {e}"))
        })?;
        if let Some(at) = &spec.password {
            let password = secrets.read(at)?;
            let password = std::str::from_utf8(&password).map_err(|_| {
                ConnectorError::new(format!("the database password in {at} is not UTF-8"))
            })?;
            options = options.password(password.trim_end_matches(['\r', '\n']));
        }
        let timeout = Duration::from_secs(spec.timeout.as_secs());
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        Ok(PostgresConnector {
            pool,
            roles: spec.roles.clone(),
            owned: match &spec.reassign_owned_to {
                Some(to) => OwnedObjects::ReassignTo(to.clone()),
                None => OwnedObjects::Drop,
            },
            timeout,
        })
    }

    async fn timed<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectorError::new(format!(
                    "{what} did not finish within {} s",
                    self.timeout.as_secs()
                )))
            })
    }

    async fn connection(&self) -> Result<PoolConnection<Postgres>, ConnectorError> {
        self.pool
            .acquire()
            .await
            .map_err(sql_error("connecting to the database"))
    }
}

impl Connector for PostgresConnector {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn enforces_expiry(&self) -> bool {
        true
    }

    fn grant<'a>(
        &'a self,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Issued>, ConnectorError>> {
        Box::pin(self.timed("the grant", async move {
            let request = access.request;
            let Some(Credential::ScramVerifier(verifier)) = &request.credential else {
                return Err(ConnectorError::new(format!(
                    "request {} carries no password verifier for its role",
                    request.id
                )));
            };
            let verifier = ScramVerifier::parse(verifier)?;
            let target_role = self.roles.get(&request.role).ok_or_else(|| {
                ConnectorError::new(format!(
                    "the policy maps role {} to no database role",
                    request.role
                ))
            })?;
            let role = role_for(request.id.as_str())?;
            let mut conn = self.connection().await?;
            grant(
                &mut conn,
                &role,
                target_role,
                &verifier,
                access.deadline.unix_millis(),
            )
            .await?;
            Ok(Some(Issued::DatabaseRole(role)))
        }))
    }

    fn revoke<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(self.timed("the revoke", async move {
            let role = role_for(access.request.id.as_str())?;
            let mut conn = self.connection().await?;
            revoke(&mut conn, &role, &self.owned).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange: password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==", 4096
    /// iterations. The server signature it shows (`v=…`) is HMAC(ServerKey, AuthMessage), so the
    /// ServerKey in the verifier must reproduce it; the StoredKey was computed independently
    /// (Python's hashlib and hmac).
    #[test]
    fn the_verifier_matches_rfc_7677() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let v = ScramVerifier::with_salt("pencil", &salt, 4096);
        assert_eq!(
            v.as_str(),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        let server_key = STANDARD
            .decode(v.as_str().rsplit(':').next().expect("ServerKey"))
            .expect("base64");
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
             r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
             c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &server_key),
            auth_message.as_bytes(),
        );
        assert_eq!(
            STANDARD.encode(signature.as_ref()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(ScramVerifier::parse(v.as_str()).expect("parses"), v);
    }

    #[test]
    fn only_well_formed_verifiers_are_accepted() {
        let good = ScramVerifier::of("correct horse").as_str().to_owned();
        assert!(ScramVerifier::parse(&good).is_ok());
        for bad in [
            String::new(),
            "md5abcdef".to_owned(),
            good.replace("SCRAM-SHA-256$4096", "SCRAM-SHA-256$1000"),
            good.replacen(':', ";", 1),
            format!("{good}'; DROP ROLE postgres; --"),
            good.replace('$', "' $"),
            format!("{good}="),
        ] {
            assert!(
                ScramVerifier::parse(&bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn passwords_are_long_random_and_plain() {
        let a = new_password();
        let b = new_password();
        assert_eq!(a.len(), 32);
        assert_ne!(*a, *b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn role_names_come_only_from_plain_request_ids() {
        assert_eq!(role_for("req_abc123").expect("plain"), "bg_req_abc123");
        for bad in ["", "REQ", "req-1", "req\"x", "a b", &"x".repeat(61)] {
            assert!(role_for(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deadlines_are_written_in_utc_to_the_millisecond() {
        assert_eq!(
            timestamp(1_795_536_000_123).expect("in range"),
            "2026-11-24 16:00:00.123+00"
        );
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
