//! Sign-in end to end with a real OpenID provider (npm `oidc-provider`, started per test on a
//! loopback port) and the real Secret Service: the CLI signs people in with code+PKCE and with
//! the device flow, enrols their keys from the provider's ID tokens, reads approver groups from
//! fresh sign-ins, logs out with revocation, and — with the provider stopped — completes a
//! break-glass request through an offline approval. No refresh token or private key ends up in
//! the database, the data directory, an export or the CLI's output.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use breakglass_core::SystemClock;
use std::os::unix::fs::PermissionsExt;

use breakglass_idp::testing::{
    TestIdp, TestIdpOptions, TestUser, BROKER_CLIENT_ID, LIFETIME_PARAMETER, OPAQUE_RESOURCE,
    RESOURCE_MAX_TTL_SECS,
};
use breakglass_idp::{AccessToken, Provider, RefreshToken};
use support::SecretService;
use support::{assert_nowhere, Cli, Output, REFUSED};

fn policy(issuer: &str, client_id: &str, version: u64, max_auth_age: &str) -> String {
    format!(
        r#"version = {version}
max_auth_age = "{max_auth_age}"
[groups]
admin = ["admin"]
sre = []
[providers.lab]
issuer = "{issuer}"
client_id = "{client_id}"
name_claim = "sub"
device_flow = true
groups = {{ "sre-team" = ["sre"] }}
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
break_glass = {{ max_duration = "30m" }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }}
"#
    )
}

struct Setup {
    service: SecretService,
    cli: Cli,
    idp: TestIdp,
    client_id: String,
}

impl Setup {
    async fn start() -> Setup {
        Setup::start_with(TestIdpOptions::default()).await
    }

    async fn start_with(options: TestIdpOptions) -> Setup {
        let service = SecretService::start();
        let mut cli = support::keyring_cli(&service);
        cli.env("BREAKGLASS_NO_BROWSER", "1");
        let idp = TestIdp::start(TestIdpOptions {
            users: vec![
                TestUser::new("alice", &["sre-team"]),
                TestUser::new("dave", &["devs"]),
            ],
            ..options
        })
        .await
        .expect("the test identity provider starts (scripts/test.sh runs npm ci for it)");
        let client_id = idp.native_client().client_id;
        cli.run(&["init"]).ok("init with keys in the keyring");
        let setup = Setup {
            service,
            cli,
            idp,
            client_id,
        };
        setup.apply_policy(1, "15m");
        setup
    }

    fn apply_policy(&self, version: u64, max_auth_age: &str) {
        let path = self
            .service
            .tmp
            .path()
            .join(format!("policy-{version}.toml"));
        fs::write(
            &path,
            policy(self.idp.issuer(), &self.client_id, version, max_auth_age),
        )
        .expect("write the policy");
        self.cli
            .run(&["policy", "apply", &path.display().to_string()])
            .ok("the admin applies the policy naming the provider");
    }

    /// Runs `ARGS…` (a `login` command), and when the CLI shows where to sign in, signs `user`
    /// in there through the provider's own pages (browser) or confirms the code (device).
    async fn login(&self, args: &[&str], user: &str) -> Output {
        login_on(&self.cli, &self.idp, args, user).await
    }

    fn request(&self, who: &str, break_glass: bool) -> String {
        let mut args = vec![
            "--as",
            who,
            "request",
            "--target",
            "db",
            "--duration",
            "20m",
            "--reason",
            "database is down",
            "--json",
        ];
        if break_glass {
            args.push("--break-glass");
        }
        let out = self.cli.run(&args);
        out.ok("the request is recorded");
        out.json()["request"]
            .as_str()
            .expect("a request id")
            .to_owned()
    }

    fn state(&self, id: &str) -> String {
        let out = self.cli.run(&["status", "--all", "--json"]);
        out.ok("status");
        support::find_request(&out.json(), id)["status"]
            .as_str()
            .expect("a status")
            .to_owned()
    }

    /// A secret of the keyring entry whose user name ends with `suffix`.
    fn keyring_secret(&self, suffix: &str) -> String {
        let out = self
            .service
            .secret_tool(&["search", "--all", "service", "breakglass"])
            .output()
            .expect("secret-tool search");
        let listing = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let user = listing
            .lines()
            .filter_map(|l| l.strip_prefix("attribute.username = "))
            .find(|u| u.ends_with(suffix))
            .unwrap_or_else(|| panic!("no keyring entry ends with {suffix}"))
            .to_owned();
        let out = self
            .service
            .secret_tool(&["lookup", "service", "breakglass", "username", &user])
            .output()
            .expect("secret-tool lookup");
        String::from_utf8(out.stdout).expect("utf-8 secret")
    }
}

/// Every file under `dir`, recursively.
/// Runs `ARGS…` (a `login` command) on `cli`, and when the CLI shows where to sign in, signs
/// `user` in there through `idp`'s own pages (browser) or confirms the code (device).
async fn login_on(cli: &Cli, idp: &TestIdp, args: &[&str], user: &str) -> Output {
    let all = args.to_vec();
    let mut child = cli.spawn(&all);
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            continue;
        };
        seen.push(line.clone());
        if let Some(url) = line.strip_prefix("Sign in at: ") {
            let url = url.parse().expect("the CLI prints a URL");
            idp.headless_login(&url, user)
                .await
                .expect("the person signs in at the provider");
            break;
        }
        if let Some((_, code)) = line.split_once("enter the code: ") {
            idp.approve_device(code.trim(), user)
                .await
                .expect("the person confirms the device code");
            break;
        }
    }
    let status = tokio::task::spawn_blocking(move || {
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        (child.wait().expect("the CLI exits"), stdout)
    })
    .await
    .expect("join");
    // The reader ends at the end of the exited CLI's stderr: every line it read has been sent.
    reader.join().expect("the stderr reader");
    seen.extend(rx.try_iter());
    Output {
        args: all.iter().map(|s| (*s).to_owned()).collect(),
        code: status.0.code().unwrap_or(-1),
        stdout: status.1,
        stderr: seen.join("\n"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_enrol_approve_and_log_out_against_a_real_provider() {
    let s = Setup::start().await;
    let mut outputs = Vec::new();

    let out = s.login(&["login"], "alice").await;
    out.ok("alice signs in with code + PKCE and is enrolled")
        .stdout_mentions("Signed in as alice", "the CLI says who signed in");
    assert!(
        out.stdout.contains("key enrolled") && out.stdout.contains("sre"),
        "{out:?}"
    );
    outputs.push(out);
    let out = s.cli.run(&["--as", "alice", "whoami", "--json"]);
    out.ok("whoami");
    let me = out.json();
    assert_eq!(me["provider"], "lab");
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["groups"], serde_json::json!(["sre"]));
    assert_eq!(me["fresh_for_decisions"], true, "{me}");
    outputs.push(out);

    let out = s.login(&["login", "--device"], "dave").await;
    out.ok("dave signs in with the device flow")
        .stdout_mentions("Signed in as dave", "the device sign-in completes");
    outputs.push(out);

    let id = s.request("dave", false);
    assert_eq!(s.state(&id), "pending");
    s.cli
        .run(&["--as", "alice", "approve", &id])
        .ok("alice's fresh sign-in shows her in sre-team, so she approves");
    assert_eq!(s.state(&id), "active");

    // Removed from the approver group at the provider: her next sign-in says so.
    s.idp
        .set_groups("alice", &["devs"])
        .await
        .expect("change groups");
    let out = s.login(&["--as", "alice", "login"], "alice").await;
    out.ok("alice signs in again with the key she holds");
    assert!(
        !out.stdout.contains("key enrolled"),
        "same key, no new enrolment: {out:?}"
    );
    let second = s.request("dave", false);
    s.cli
        .run(&["--as", "alice", "approve", &second])
        .code(REFUSED, "no longer an approver")
        .one_line_error("not an approver")
        .stderr_mentions(&["sre"], "the refusal names the approver group");
    assert_eq!(
        s.state(&second),
        "pending",
        "the refused approval changed nothing"
    );

    // The offline verification checks every enrolment's ID token against its key set.
    let bundle = s.service.tmp.path().join("history.bundle");
    s.cli
        .run(&[
            "export",
            "--format",
            "bundle",
            "-o",
            &bundle.display().to_string(),
        ])
        .ok("export a bundle");
    let out = support::run_binary(&["verify", &bundle.display().to_string()], &[]);
    out.ok("the bundle, with both enrolments and the approvals' sign-ins, verifies offline");
    outputs.push(out);

    // Logout revokes the refresh token at the provider and removes it and the key.
    let session: serde_json::Value =
        serde_json::from_str(&s.keyring_secret("/alice#session")).expect("the session reads");
    let refresh = session["refresh_token"]
        .as_str()
        .expect("a refresh token is kept")
        .to_owned();
    let alice_key = s.keyring_secret("/alice");
    let out = s.cli.run(&["--as", "alice", "logout"]);
    out.ok("logout").stdout_mentions(
        "refresh token revoked",
        "the provider confirmed the revocation",
    );
    outputs.push(out);
    let provider = Provider::discover(s.idp.native_client(), std::sync::Arc::new(SystemClock))
        .await
        .expect("discover");
    let seen = provider
        .introspect(&RefreshToken::new(refresh.clone()))
        .await
        .expect("introspect");
    assert!(!seen.active, "after logout the refresh token is inactive");
    s.cli
        .run(&["--as", "alice", "approve", &second])
        .code(REFUSED, "her key left the keyring with the logout")
        .one_line_error("key");

    // No refresh token or private key anywhere it could leak.
    let csv = s.service.tmp.path().join("history.csv");
    s.cli
        .run(&[
            "export",
            "--format",
            "jsonl",
            "-o",
            &csv.display().to_string(),
        ])
        .ok("export JSON Lines");
    let ocsf = s.service.tmp.path().join("history.ocsf.jsonl");
    s.cli
        .run(&[
            "export",
            "--format",
            "ocsf",
            "-o",
            &ocsf.display().to_string(),
        ])
        .ok("export OCSF events");
    let events = fs::read_to_string(&ocsf).expect("the OCSF export");
    assert!(
        events.contains(r#""name":"alice""#) && !events.contains("eyJ"),
        "OCSF events name people and carry no token (a JWT starts with eyJ)"
    );
    let mut places = support::files_under(&s.cli.data_dir);
    places.extend(
        [bundle, csv, ocsf]
            .iter()
            .map(|p| (p.display().to_string(), fs::read(p).unwrap_or_default())),
    );
    for o in &outputs {
        places.push((
            format!("output of {:?}", o.args),
            format!("{}{}", o.stdout, o.stderr).into_bytes(),
        ));
    }
    assert_nowhere(&refresh, "alice's refresh token", &places);
    let pem_body: String = alice_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_nowhere(&pem_body, "alice's private key", &places);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_provider_down_break_glass_completes_through_an_offline_approval() {
    let mut s = Setup::start().await;
    s.login(&["login"], "alice").await.ok("alice signs in");
    s.login(&["login", "--device"], "dave")
        .await
        .ok("dave signs in");

    s.idp.stop().await;
    let started = Instant::now();
    let out = s.cli.run(&["--as", "alice", "login"]);
    out.code(REFUSED, "the provider is down")
        .one_line_error("cannot reach the identity provider")
        .stderr_mentions(&[s.idp.issuer()], "the error names the issuer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a sign-in fails within 10 s when the provider is down ({:?})",
        started.elapsed()
    );

    // Sign-ins older than max_auth_age no longer count, and none can be had now.
    s.apply_policy(2, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let id = s.request("dave", true);
    assert_eq!(
        s.state(&id),
        "pending",
        "a break-glass activation without a fresh sign-in waits for one approval"
    );
    s.cli
        .run(&["--as", "alice", "approve", &id])
        .code(REFUSED, "an online approval needs a fresh sign-in")
        .stderr_mentions(&["sign in"], "the refusal says to sign in");

    let out = s.cli.run(&["--as", "alice", "approve", &id, "--offline"]);
    out.ok("alice signs an offline approval");
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("bgoa1."), "{out:?}");
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    s.cli
        .run(&[
            "--as",
            "dave",
            "approval",
            "import",
            &String::from_utf8(forged).expect("ascii"),
        ])
        .code(REFUSED, "a token with a changed signature is refused")
        .one_line_error("offline approval");
    assert_eq!(
        s.state(&id),
        "pending",
        "the refused import changed nothing"
    );
    s.cli
        .run(&["--as", "dave", "approval", "import", &token])
        .ok("dave imports the offline approval");
    assert_eq!(s.state(&id), "active", "approved offline and granted");
    s.cli
        .run(&["--as", "dave", "approval", "import", &token])
        .code(REFUSED, "a replayed token is refused");
    let out = s.cli.run(&["status", "--all", "--json"]);
    let r = support::find_request(&out.json(), &id);
    assert_eq!(
        r["decisions"][0]["offline"], true,
        "the log records the approval as offline: {r}"
    );
    s.cli.run(&["log", "verify"]).ok("the log verifies");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_id_token_is_refreshed_before_an_approval_keeping_the_sign_in_time() {
    let s = Setup::start_with(TestIdpOptions {
        id_token_ttl: Duration::from_secs(2),
        ..TestIdpOptions::default()
    })
    .await;
    s.login(&["login"], "alice").await.ok("alice signs in");
    s.login(&["login", "--device"], "dave")
        .await
        .ok("dave signs in");
    let before: serde_json::Value =
        serde_json::from_str(&s.keyring_secret("/alice#session")).expect("the session reads");
    let id = s.request("dave", false);
    std::thread::sleep(Duration::from_secs(3));
    s.cli
        .run(&["--as", "alice", "approve", &id])
        .ok("the expired ID token is refreshed, and the sign-in is still fresh enough");
    assert_eq!(s.state(&id), "active");
    let after: serde_json::Value =
        serde_json::from_str(&s.keyring_secret("/alice#session")).expect("the session reads");
    assert_ne!(
        after["id_token"], before["id_token"],
        "a new ID token was stored"
    );
    assert_ne!(
        after["refresh_token"], before["refresh_token"],
        "the rotated refresh token replaced the used one"
    );
    s.cli
        .run(&["log", "verify"])
        .ok("the refreshed token verifies in the log");

    // A sign-in whose enrolment is refused (alice was revoked) keeps the key she held.
    let key_before = s.keyring_secret("/alice");
    s.cli
        .run(&["identity", "revoke", "alice", "--reason", "left the team"])
        .ok("the admin revokes alice");
    s.login(&["login"], "alice")
        .await
        .code(REFUSED, "a revoked person is not enrolled again")
        .stderr_mentions(&["revoked"], "the refusal says why");
    assert_eq!(
        s.keyring_secret("/alice"),
        key_before,
        "the refused sign-in left alice's key as it was"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_requesters_oauth_token_acts_for_them_by_token_exchange() {
    let s = Setup::start().await;
    s.login(&["login"], "alice").await.ok("alice signs in");
    // Version 2 adds an OAuth target at the same provider, whose broker client may exchange
    // tokens (RFC 8693, listed in the provider's discovery document).
    let secret = s.service.tmp.path().join("client-secret");
    fs::write(&secret, s.idp.broker_secret()).expect("write the client secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    let source = format!(
        r#"{base}
[targets.api]
roles = ["read"]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
break_glass = {{ max_duration = "30m" }}
[targets.api.connector]
kind = "oauth"
issuer = "{issuer}"
client_id = "{client}"
client_secret = "file:{secret}"
resource = "{resource}"
scopes = {{ read = ["api:read"] }}
max_token_lifetime = "{max}s"
lifetime_parameter = "{parameter}"
"#,
        base = policy(s.idp.issuer(), &s.client_id, 2, "15m"),
        issuer = s.idp.issuer(),
        client = BROKER_CLIENT_ID,
        secret = secret.display(),
        resource = OPAQUE_RESOURCE,
        max = RESOURCE_MAX_TTL_SECS,
        parameter = LIFETIME_PARAMETER,
    );
    let path = s.service.tmp.path().join("policy-2.toml");
    fs::write(&path, source).expect("write the policy");
    s.cli
        .run(&["policy", "apply", &path.display().to_string()])
        .ok("the admin adds the OAuth target");

    // A break-glass activation with alice's fresh sign-in is granted at once.
    let out = s.cli.run(&[
        "--as",
        "alice",
        "request",
        "--target",
        "api",
        "--duration",
        "10m",
        "--reason",
        "billing API incident",
        "--break-glass",
        "--json",
    ]);
    out.ok("alice self-activates");
    let id = out.json()["request"]
        .as_str()
        .expect("a request id")
        .to_owned();
    assert_eq!(s.state(&id), "active");
    let file = s.service.tmp.path().join("token");
    s.cli
        .run(&[
            "--as",
            "alice",
            "issued",
            &id,
            "-o",
            &file.display().to_string(),
        ])
        .ok("alice opens her token");
    let token = fs::read_to_string(&file).expect("the token file");

    // The provider says the token acts for alice, obtained by the broker's client.
    let provider = Provider::discover(s.idp.broker_client(), std::sync::Arc::new(SystemClock))
        .await
        .expect("discovery");
    assert!(provider.supports_token_exchange());
    let seen = provider
        .introspect(&AccessToken::new(token.trim()))
        .await
        .expect("introspection");
    assert!(seen.active, "active while the grant lasts");
    assert_eq!(
        seen.subject.as_deref(),
        Some("alice"),
        "the token names the requester, not the broker's client"
    );
    assert_eq!(seen.client_id.as_deref(), Some(BROKER_CLIENT_ID));
    assert_eq!(seen.scopes, ["api:read"]);

    // The log says so in the open; the token itself is only sealed there.
    let out = s.cli.run(&["status", "--all", "--json"]);
    out.ok("status");
    let issued = &support::find_request(&out.json(), &id)["issued"]["access_token"];
    assert_eq!(issued["subject"], "alice", "{issued}");
    let exported = s.cli.run(&["export", "--format", "jsonl", "-o", "-"]);
    exported.ok("export");
    assert!(
        !exported.stdout.contains(token.trim()),
        "no plaintext token"
    );
    assert!(exported.stdout.contains(r#""subject":"alice""#));

    s.cli
        .run(&["--as", "alice", "revoke", &id])
        .ok("alice ends it early");
    let seen = provider
        .introspect(&AccessToken::new(token.trim()))
        .await
        .expect("introspection");
    assert!(!seen.active, "inactive at once after the revoke");
    s.cli.run(&["log", "verify"]).ok("the log verifies");
}

/// Team mode: a member's machine holds no system key, so the member signs its own enrolment
/// with the key it enrols; the log accepts it only under provider keys the broker recorded, and
/// only from a sign-in whose nonce names the key.
#[tokio::test(flavor = "multi_thread")]
async fn a_team_member_signs_in_at_the_provider_and_enrols_its_own_key() {
    use breakglass_store::testing::{grant_apps, team_roles, PgCluster};

    let service = SecretService::start();
    let idp = TestIdp::start(TestIdpOptions {
        users: vec![
            TestUser::new("alice", &["sre-team"]),
            TestUser::new("bob", &["sre-team"]),
        ],
        ..TestIdpOptions::default()
    })
    .await
    .expect("the test identity provider starts");
    let pg = PgCluster::start().await.expect("PostgreSQL starts");
    let superuser = pg.create_database().await.expect("a database");
    let (broker_url, app_url) = team_roles(&superuser).await.expect("README's roles");

    // The administrator's machine: the log on the team's database, its keys in files.
    let admin = Cli::new(&service.tmp.path().join("admin"));
    let admin_key = service.tmp.path().join("admin.pem");
    let out = admin.run_with_key(
        &admin_key,
        &["init", "--system-keys", "file", "--database", &broker_url],
    );
    out.ok("init on the team's database");
    grant_apps(&broker_url).await.expect("README's grants");
    let log_key = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Checkpoint key: "))
        .expect("init prints the checkpoint key")
        .to_owned();
    let policy_file = service.tmp.path().join("policy.toml");
    fs::write(
        &policy_file,
        policy(idp.issuer(), &idp.native_client().client_id, 1, "15m"),
    )
    .expect("write the policy");
    admin
        .run_with_key(
            &admin_key,
            &["policy", "apply", &policy_file.display().to_string()],
        )
        .ok("the policy names the provider");
    let size = || {
        let out = admin.run_with_key(&admin_key, &["status", "--json"]);
        out.ok("status");
        out.json()["log_size"].as_u64().expect("a size")
    };

    // A member who signs in before the broker recorded the provider's keys is told to wait.
    let member = |name: &str| {
        let mut cli = Cli::new(&service.tmp.path().join(name));
        for (k, v) in service.env() {
            cli.env(&k, &v);
        }
        cli.env("BREAKGLASS_NO_BROWSER", "1");
        cli.run(&[
            "join",
            "--database",
            &app_url,
            "--log-key",
            &log_key,
            "--name",
            name,
        ])
        .ok("joins the team's log");
        cli
    };
    let alice = member("alice");
    let before = size();
    login_on(&alice, &idp, &["--as", "alice", "login"], "alice")
        .await
        .code(REFUSED, "no provider key is recorded yet")
        .stderr_mentions(
            &["has not recorded yet", "the broker records"],
            "says what to wait for",
        );
    assert_eq!(size(), before, "nothing appended");

    // The broker records the provider's keys as it starts acting.
    let mut broker = admin.spawn(&["broker", "--interval", "30s"]);
    let rx = support::lines(&mut broker);
    support::until(&rx, "recorded new signing keys of identity provider lab");

    // alice signs in in the browser: her key, bound by the sign-in's nonce, is enrolled by
    // her own signature, and the broker covers it.
    let out = login_on(&alice, &idp, &["--as", "alice", "login"], "alice").await;
    out.ok("a member signs in and enrols her key")
        .stdout_mentions(
            "Signed in as alice (lab subject alice), key enrolled; groups: sre",
            "enrolled with the provider's groups",
        );
    let export = service.tmp.path().join("log.jsonl");
    let wait_covered = |what: &str| {
        let start = std::time::Instant::now();
        loop {
            let out = admin.run_with_key(&admin_key, &["log", "verify"]);
            out.ok("the log verifies");
            if !out.stderr.contains("await the broker") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what} should be covered"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_covered("alice's enrolment");
    admin
        .run_with_key(
            &admin_key,
            &[
                "export",
                "--format",
                "jsonl",
                "-o",
                &export.display().to_string(),
            ],
        )
        .ok("export");
    let log = fs::read_to_string(&export).expect("the export");
    let enrolment = log
        .lines()
        .find(|l| l.contains("identity_enrolled") && l.contains("\"name\":\"alice\""))
        .expect("alice's enrolment is in the log");
    assert!(
        enrolment.contains("\"actor\":\"alice\""),
        "signed by alice herself: {enrolment}"
    );

    // Her sign-in counts for decisions: she approves a request on her machine; the broker
    // grants it.
    let out = admin.run_with_key(
        &admin_key,
        &[
            "request",
            "--target",
            "db",
            "--duration",
            "20m",
            "--reason",
            "database is down",
            "--json",
        ],
    );
    out.ok("the admin asks for access");
    let id = out.json()["request"]
        .as_str()
        .expect("a request id")
        .to_owned();
    alice
        .run(&["--as", "alice", "approve", &id])
        .ok("alice, in sre-team at the provider, approves");
    support::until(&rx, &format!("granted {id}"));

    // A device-flow sign-in carries no nonce naming a key: it never enrols one on a member
    // (the policy accepts the device flow for people already enrolled).
    let bob = member("bob");
    let before = size();
    login_on(&bob, &idp, &["--as", "bob", "login", "--device"], "bob")
        .await
        .code(REFUSED, "a device sign-in does not enrol a member's key")
        .stderr_mentions(&["nonce names the new key"], "says why");
    assert_eq!(size(), before, "nothing appended");

    broker.kill().expect("stop the broker");
    broker.wait().expect("it is gone");
}
