//! The CLI's side of connector credentials: `--ssh-key` for a target that grants SSH
//! certificates (checked, then certified on approval; `issued -o` writes the certificate, which
//! the real `ssh-keygen` reads back), and the database password of a `postgres` target, made on
//! the requester's machine and shown once, never written to the log.

mod support;

use std::process::Command;

use support::{request_args, World, REFUSED};

/// `policy(2)` plus `bastion` (SSH certificates from a CA key made by the real ssh-keygen) and
/// `reports` (PostgreSQL roles on a server that is not there: its grants fail, requests do not).
fn connector_world() -> (World, std::path::PathBuf) {
    let w = World::sqlite();
    let ca = w.path("ssh-ca");
    keygen(&ca);
    let user = breakglass_testkit::sshd::current_user();
    let source = format!(
        r#"{base}
[targets.bastion]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "ssh", ca_key = "file:{ca}", revocation_list = "{krl}", principals = ["{user}"] }}

[targets.reports]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "postgres", url = "postgres://admin@127.0.0.1:1/app" }}
"#,
        base = support::policy(2),
        ca = ca.display(),
        krl = w.path("revoked.krl").display(),
    );
    let file = w.path("policy-2.toml");
    std::fs::write(&file, source).expect("write the policy");
    w.by(&w.admin, &["policy", "apply", &file.display().to_string()])
        .ok("the policy with connectors applies");
    (w, ca)
}

fn keygen(path: &std::path::Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

#[test]
fn an_ssh_request_needs_a_public_key_and_its_certificate_is_written_on_request() {
    let (w, ca) = connector_world();
    let key = w.path("id_ed25519");
    keygen(&key);
    let public = key.with_extension("pub").display().to_string();
    let size = w.log_size();

    let mut args = request_args("bastion", "30m", "patch the bastion");
    w.by(&w.dave, &args)
        .code(REFUSED, "an SSH target needs a key to certify")
        .one_line_error("missing key")
        .stderr_mentions(&["--ssh-key"], "the refusal says what to give");
    let private = key.display().to_string();
    let mut with_private = args.clone();
    with_private.extend(["--ssh-key", &private]);
    w.by(&w.dave, &with_private)
        .code(REFUSED, "a private key is not a public key")
        .one_line_error("private key");
    assert_eq!(w.log_size(), size, "refused requests log nothing");

    args.extend(["--ssh-key", &public, "--json"]);
    let out = w.by(&w.dave, &args);
    out.ok("a request with the .pub file");
    let id = out.json()["request"].as_str().expect("an id").to_owned();
    w.by(&w.dave, &["issued", &id])
        .code(REFUSED, "nothing is issued before the grant")
        .stderr_mentions(&["issued nothing"], "says so");
    w.by(&w.bob, &["approve", &id]).ok("bob approves");
    assert_eq!(w.state_of(&id), "active");

    let cert = w.path("id_ed25519-cert.pub");
    w.by(&w.dave, &["issued", &id, "-o", &cert.display().to_string()])
        .ok("the certificate is written");
    // The CA's private key, and dave's, are in no file of the data directory and no export.
    let places = w.leak_places();
    for (file, what) in [
        (&ca, "the SSH CA's private key"),
        (&key, "dave's private key"),
    ] {
        let pem = std::fs::read_to_string(file).expect("the key file");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        support::assert_nowhere(&body, what, &places);
    }
    let shown = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert)
        .output()
        .expect("ssh-keygen -L runs");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(&format!("Key ID: \"{id}\"")), "{shown}");
    assert!(
        shown.contains(&breakglass_testkit::sshd::current_user()),
        "{shown}"
    );
    let printed = w.by(&w.dave, &["issued", &id]);
    printed.ok("printed too");
    assert!(printed
        .stdout
        .starts_with("ssh-ed25519-cert-v01@openssh.com "));
}

#[test]
fn a_database_password_is_made_shown_once_and_never_logged() {
    let (w, _) = connector_world();
    let args = request_args("reports", "30m", "read the quarter's figures");
    let out = w.by(&w.dave, &args);
    out.ok("a password is made when none is given");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Password of your database role"))
        .unwrap_or_else(|| panic!("the password is shown: {out:?}"));
    let password = line.rsplit(' ').next().expect("the password").to_owned();
    assert_eq!(password.len(), 32, "{line}");
    let status = w.by(&w.dave, &["status", "--json"]);
    assert!(!status.stdout.contains(&password), "not in status");
    let database = std::fs::read(w.cli.data_dir.join("breakglass.db")).expect("the database");
    assert!(
        !database
            .windows(password.len())
            .any(|win| win == password.as_bytes()),
        "the password is not in the database"
    );

    let size = w.log_size();
    let mut json = args.clone();
    json.push("--json");
    w.by(&w.dave, &json)
        .code(REFUSED, "a script must bring its own password")
        .stderr_mentions(&["--db-password-file"], "says how");
    let short = w.path("short-password");
    std::fs::write(&short, "too short\n").expect("write");
    let short = short.display().to_string();
    let mut with_short = args.clone();
    with_short.extend(["--db-password-file", &short]);
    w.by(&w.dave, &with_short)
        .code(REFUSED, "a weak password is refused")
        .stderr_mentions(&["16 to 1024"], "says what is needed");
    assert_eq!(w.log_size(), size, "refused requests log nothing");

    let good = w.path("password");
    std::fs::write(&good, "correct-horse-battery-staple-42\n").expect("write");
    let good = good.display().to_string();
    let mut with_good = json.clone();
    with_good.extend(["--db-password-file", &good]);
    let out = w.by(&w.dave, &with_good);
    out.ok("a script gives its own password");
    assert!(!out.stdout.contains("correct-horse"), "never echoed");

    // Neither password in the data directory or any export (the log holds only their SCRAM
    // verifiers).
    let places = w.leak_places();
    support::assert_nowhere(&password, "the password made", &places);
    support::assert_nowhere(
        "correct-horse-battery-staple-42",
        "the password given",
        &places,
    );
}

#[test]
fn an_access_token_is_opened_only_by_its_requester_and_written_to_a_private_file() {
    use breakglass_idp::testing::{
        TestIdp, TestIdpOptions, BROKER_CLIENT_ID, LIFETIME_PARAMETER, OPAQUE_RESOURCE,
    };
    use std::os::unix::fs::PermissionsExt;
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let idp = runtime
        .block_on(TestIdp::start(TestIdpOptions::default()))
        .expect("the test provider starts");
    let w = World::sqlite();
    let secret = w.path("client-secret");
    std::fs::write(&secret, idp.broker_secret()).expect("write the secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let source = format!(
        r#"{base}
[targets.billing]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "oauth", issuer = "{issuer}", client_id = "{client}", client_secret = "file:{secret}", resource = "{resource}", scopes = ["api:read"], max_token_lifetime = "1h", lifetime_parameter = "{parameter}" }}
"#,
        base = support::policy(2),
        issuer = idp.issuer(),
        client = BROKER_CLIENT_ID,
        secret = secret.display(),
        resource = OPAQUE_RESOURCE,
        parameter = LIFETIME_PARAMETER,
    );
    let file = w.path("policy-2.toml");
    std::fs::write(&file, &source).expect("write the policy");
    let too_long = w.path("policy-too-long.toml");
    std::fs::write(
        &too_long,
        source.replace(
            r#"max_duration = "1h"
request_ttl = "10m""#,
            r#"max_duration = "2h"
request_ttl = "10m""#,
        ),
    )
    .expect("write");
    w.by(
        &w.admin,
        &["policy", "check", &too_long.display().to_string()],
    )
    .code(REFUSED, "caps beyond the provider's tokens are refused")
    .stderr_mentions(&["max_token_lifetime"], "naming the connector's limit");
    w.by(&w.admin, &["policy", "apply", &file.display().to_string()])
        .ok("the policy with an oauth target applies");

    let mut args = request_args("billing", "20m", "reconcile invoices");
    args.push("--json");
    let out = w.by(&w.dave, &args);
    out.ok("no credential to give: the token is sealed to dave's key");
    let id = out.json()["request"].as_str().expect("an id").to_owned();
    w.by(&w.bob, &["approve", &id]).ok("bob approves");
    assert_eq!(w.state_of(&id), "active");

    w.by(&w.bob, &["issued", &id])
        .code(REFUSED, "only the requester opens the token")
        .stderr_mentions(&["sealed to its requester dave"], "says whose it is");
    let printed = w.by(&w.dave, &["issued", &id]);
    printed.ok("dave opens it");
    let token = printed.stdout.trim().to_owned();
    assert!(token.len() >= 20, "a token: {token:?}");
    let out_file = w.path("token");
    w.by(
        &w.dave,
        &["issued", &id, "-o", &out_file.display().to_string()],
    )
    .ok("written to a file");
    assert_eq!(
        std::fs::read_to_string(&out_file)
            .expect("the token file")
            .trim(),
        token
    );
    let mode = std::fs::metadata(&out_file)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "only its owner may read it");
    w.by(
        &w.dave,
        &["issued", &id, "-o", &out_file.display().to_string()],
    )
    .code(REFUSED, "an existing file is not replaced");

    // Every file of the data directory (the database, its write-ahead log), every export, and
    // status: the token is recorded only sealed. Nor is the broker's client secret anywhere.
    let mut places = w.leak_places();
    places.push((
        "status".into(),
        w.by(&w.dave, &["status", "--json"]).stdout.into_bytes(),
    ));
    support::assert_nowhere(&token, "the access token", &places);
    support::assert_nowhere(idp.broker_secret(), "the broker's client secret", &places);
    drop(idp);
}
