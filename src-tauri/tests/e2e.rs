//! The desktop app in a real window: the built app under Xvfb, driven through tauri-driver and
//! WebKitWebDriver, against the real OpenID provider and a real gnome-keyring. A second person
//! (the first administrator, whose key the first run put in the keyring) acts from a desk of
//! their own on the same data directory, as a second app would.
//!
//! One test tells the requester's story in order, because each step needs the one before; a
//! second, alongside it, tells an approver's (a fresh sign-in to decide, approving, revoking,
//! the break-glass alert).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use breakglass_core::SystemClock;
use breakglass_engine::desk::Desk;
use breakglass_idp::testing::{TestIdp, TestIdpOptions};
use breakglass_testkit::desktop::Desktop;
use breakglass_testkit::keyring::SecretService;
use breakglass_testkit::notifications::NotificationDaemon;
use breakglass_testkit::tray;
use support::{eventually, notified, screenshot_dir, Window, WAIT};

/// The demonstration target both stories ask for: no real access is granted.
const DEMO_TARGET: &str = r#"
[targets.demo]
description = "Demonstration target (no real access is granted)"
roles = ["default"]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "3h"
approvers = { groups = ["approvers"], quorum = 1 }
break_glass = { max_duration = "15m" }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

/// A policy with the provider `lab` and the demonstration target: `head` sets the version,
/// max_auth_age and groups, `mapping` maps the provider's groups to ours.
fn policy_with(issuer: &str, client_id: &str, head: &str, mapping: &str) -> String {
    format!(
        r#"{head}

[providers.lab]
issuer = "{issuer}"
client_id = "{client_id}"
name_claim = "sub"
[providers.lab.groups]
{mapping}
{DEMO_TARGET}"#
    )
}

/// The requester's story's policy, applied over the first-run draft (version 2): alice is an
/// engineer, the administrator approves.
fn policy(issuer: &str, client_id: &str) -> String {
    policy_with(
        issuer,
        client_id,
        r#"version = 2
max_auth_age = "15m"

[groups]
admin = ["admin"]
approvers = ["admin"]
engineers = []"#,
        r#"devs = ["engineers"]"#,
    )
}

/// The tray menu's first line (the status line) once it satisfies `ok`.
async fn tray_status(bus: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    eventually(&format!("the tray should show {what}"), || {
        let labels = tray::menu_labels(bus);
        match labels.as_ref().and_then(|l| l.first()) {
            Some(line) if ok(line) => Ok(line.clone()),
            _ => Err(labels),
        }
    })
    .await
}

/// The administrator's own desk on the app's data directory (a second app, in effect).
async fn admin_desk(home: &Path) -> Desk {
    let mut desk = Desk::open(home, Arc::new(SystemClock))
        .await
        .expect("the administrator opens the data directory the app created");
    desk.act_as("admin").expect("admin is enrolled");
    desk
}

/// The newest pending request, as the administrator's desk sees it after catching up.
async fn newest_pending(admin: &mut Desk) -> breakglass_engine::desk::RequestView {
    admin.sync().await.expect("the admin's desk catches up");
    admin
        .overview()
        .requests
        .into_iter()
        .find(|r| r.status == breakglass_core::Status::Pending)
        .expect("the request the window made is in the log, pending")
}

#[test]
fn first_run_request_approval_expiry_denial_break_glass_and_export_in_the_real_window() {
    let keyring = SecretService::start();
    // The administrator's desk in this process uses the same keyring as the app.
    for (k, v) in keyring.env() {
        std::env::set_var(k, v);
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(story(&keyring));
}

async fn story(keyring: &SecretService) {
    let mut idp = TestIdp::start(TestIdpOptions::default())
        .await
        .expect("the real OpenID provider starts");
    let home = keyring.tmp.path().join("app-home");
    let mut env = keyring.env();
    env.push(("BREAKGLASS_HOME".into(), home.display().to_string()));
    env.push(("BREAKGLASS_NO_BROWSER".into(), "1".into()));
    let desktop = Desktop::start(&env);
    let bus = keyring.bus_address().to_owned();
    // The desktop's notification daemon, on the same display and bus as the app.
    let notifications = NotificationDaemon::start(desktop.display(), &bus);
    let shots = screenshot_dir();
    let client = desktop
        .session(Path::new(env!("CARGO_BIN_EXE_breakglass-app")))
        .await;
    let w = Window {
        client,
        desktop: &desktop,
        shots,
    };
    let result = tokio::time::timeout(
        Duration::from_secs(600),
        scenario(&w, &idp, &home, &bus, &notifications),
    )
    .await;
    if result.is_err() || std::thread::panicking() {
        eprintln!("{}", desktop.driver_log());
    }
    let _ = w.client.clone().close().await;
    idp.stop().await;
    result.expect("the scenario finishes within 10 minutes");
}

async fn scenario(
    w: &Window<'_>,
    idp: &TestIdp,
    home: &Path,
    bus: &str,
    notifications: &NotificationDaemon,
) {
    // First run: the data directory and its first administrator.
    w.type_into("setup-admin", "admin").await;
    w.shot("first-run").await;
    w.click("setup-create").await;

    // The identity provider, by its issuer: discovery is shown before it is added.
    w.type_into("setup-issuer", idp.issuer()).await;
    w.click("setup-discover").await;
    let discovery = w
        .text_until("setup-discovery", "the discovery document", |t| {
            t.contains("/token")
        })
        .await;
    assert!(discovery.contains(idp.issuer()) || discovery.contains("auth"));
    let client_id = idp.native_client().client_id;
    w.type_into("setup-client-id", &client_id).await;
    w.type_into("setup-provider-name", "lab").await;
    w.click("setup-provider-next").await;

    // The policy: a mistake is shown at its line, then the real policy is applied.
    w.find("policy-editor").await;
    w.set_value(
        "policy-editor",
        "version = 1\n[targets.x]\nmax_duration = \"forever\"\n",
    )
    .await;
    w.click("policy-check").await;
    w.text_until("policy-problems", "the problem's line", |t| t.contains('3'))
        .await;
    w.set_value("policy-editor", &policy(idp.issuer(), &client_id))
        .await;
    w.click("policy-apply").await;

    // Sign in: the app shows the address (no browser here); the provider completes it.
    w.sign_in(idp, "signin-start", "alice").await;

    // Request access; the administrator approves from their own desk.
    w.request_form("demo").await;
    w.type_into("req-duration-hours", "0").await;
    w.type_into("req-duration-minutes", "1").await;
    w.type_into("req-reason", "rotate the TLS certificate")
        .await;
    w.type_into("req-ticket", "CHG-1").await;
    w.shot("request").await;
    w.submit_request("pending").await;
    let mut admin = admin_desk(home).await;
    let pending = newest_pending(&mut admin).await;
    assert_eq!(pending.requester, "alice");
    admin
        .approve(&pending.id, Some("go".into()))
        .await
        .expect("the administrator approves");

    // My access: live within a second, with a countdown that runs down to expiry.
    w.click("nav-access").await;
    let countdown = format!("countdown-{}", pending.id);
    let first = w
        .text_until(&countdown, "a running countdown", |t| t.contains("00:0"))
        .await;
    w.shot("my-access").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = w.text(&countdown).await;
    assert_ne!(first, later, "the countdown moves");
    // The tray (as a panel reads it over D-Bus): the grant and the time left on it.
    let line = tray_status(bus, "the active grant", |l| {
        l.contains("1 active grant") && l.contains("demo ends in 00:0")
    })
    .await;
    assert!(line.starts_with("Breakglass: "), "{line}");
    let approved = notified(notifications, "Access to demo approved").await;
    assert!(
        approved.body.contains("Approved by admin") && approved.body.contains("active until"),
        "the approval notice names the approver and gives the deadline: {approved:?}"
    );
    w.click("nav-history").await;
    w.text_until(&format!("request-row-{}", pending.id), "the expiry", |t| {
        t.to_lowercase().contains("expired")
    })
    .await;
    // Expired: the tray says so, and so does a notification.
    tray_status(bus, "no active access after the expiry", |l| {
        l == "Breakglass: no active access"
    })
    .await;
    notified(notifications, "Access to demo ended").await;

    // A denial reaches the requester.
    w.request_form("demo").await;
    w.type_into("req-reason", "look at the logs").await;
    w.submit_request("pending").await;
    let second = newest_pending(&mut admin).await;
    admin
        .deny(&second.id, "use the read replica".into())
        .await
        .expect("the administrator denies");
    w.click("nav-history").await;
    w.text_until(&format!("request-row-{}", second.id), "the denial", |t| {
        t.to_lowercase().contains("denied")
    })
    .await;
    let denied = notified(notifications, "Request for demo denied").await;
    assert!(
        denied.body.contains("use the read replica"),
        "the denial notice gives the reason: {denied:?}"
    );

    // A breakglass:// link opened by a second launch goes to the running app (one instance),
    // which shows that request's record.
    w.click("nav-request").await;
    let link = format!("breakglass://request/{}", second.id);
    let mut second_launch = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass-app"))
        .arg(&link)
        .env("DISPLAY", w.desktop.display())
        .env("BREAKGLASS_HOME", home)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a second launch with the link");
    let exited = eventually(
        "the second launch should hand the link over and exit",
        || match second_launch.try_wait() {
            Ok(Some(status)) => Ok(status),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(
        exited.success(),
        "the second launch exits cleanly: {exited}"
    );
    w.find(&format!("request-record-{}", second.id)).await;
    assert_eq!(
        w.find("nav-history")
            .await
            .attr("aria-current")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some("page"),
        "the link opened the history screen"
    );
    w.click("request-record-close").await;
    w.shot("history").await;

    // Break-glass: granted at once, with the warning shown first.
    w.request_form("demo").await;
    w.click("req-breakglass").await;
    w.type_into("req-duration-hours", "0").await;
    w.type_into("req-duration-minutes", "5").await;
    let warning = w.text("req-breakglass-warning").await;
    assert!(
        warning.to_lowercase().contains("review"),
        "the warning says a review is owed: {warning}"
    );
    w.type_into("req-reason", "production is down").await;
    w.submit_request("active").await;
    admin.sync().await.expect("the admin's desk catches up");
    assert!(
        admin
            .overview()
            .alerts
            .iter()
            .any(|a| a.kind == breakglass_engine::desk::AlertKind::BreakGlass),
        "every approver sees the break-glass alert"
    );

    // Export the signed bundle from the window and verify it there.
    w.click("nav-history").await;
    w.find("export-format")
        .await
        .select_by_value("bundle")
        .await
        .expect("choose the bundle format");
    w.click("export-start").await;
    w.text_until("export-done", "the saved file", |t| t.contains(".bundle"))
        .await;
    w.click("export-verify").await;
    let verified = w.find("verify-result").await;
    let start = std::time::Instant::now();
    while verified.attr("data-ok").await.ok().flatten().as_deref() != Some("true") {
        assert!(
            start.elapsed() < WAIT,
            "the exported bundle verifies in the window"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.shot("verify").await;

    // The access report, from the window, written beside the bundle.
    w.find("export-format")
        .await
        .select_by_value("report")
        .await
        .expect("choose the report");
    w.click("export-start").await;
    let saved = w
        .text_until("export-done", "the saved report", |t| t.contains(".html"))
        .await;
    let path = saved
        .split_whitespace()
        .find(|s| s.ends_with(".html"))
        .expect("the report's path");
    let html = std::fs::read_to_string(path).expect("the report the window saved");
    assert!(
        html.contains("Verification: OK"),
        "the report verified the log"
    );
    admin.close().await;
}

/// An approver's policy: the provider's `approvers` group decides, and a sign-in is fresh
/// enough to decide for 20 s only, so the window has to ask for a new one within the test.
/// The page's Content-Security-Policy allows its own script (by hash, as `ui/inlinePage.ts`
/// inlines it) and nothing else: a script or style written into the page does not apply, and
/// `eval` is refused. The policy's text comes from the violation reports (Tauri sends it as a
/// response header, which the page cannot read otherwise). Results go through the DOM, which
/// the page's scripts and WebDriver's share.
async fn csp_in_force(w: &Window<'_>) {
    w.find("signin-start").await;
    let tried = w
        .client
        .execute(
            r#"const root = document.documentElement;
               root.dataset.violations = "[]";
               document.addEventListener("securitypolicyviolation", (e) => {
                 const seen = JSON.parse(root.dataset.violations);
                 seen.push({ directive: e.effectiveDirective, policy: e.originalPolicy });
                 root.dataset.violations = JSON.stringify(seen);
               });
               const s = document.createElement("script");
               s.textContent = "document.documentElement.dataset.injected = 'ran'";
               document.head.append(s);
               const style = document.createElement("style");
               style.textContent = "body { outline: 7px solid rgb(1, 2, 3) }";
               document.head.append(style);
               let evaluated = false;
               try { evaluated = window.eval("true"); } catch (e) { evaluated = false; }
               return {
                 injected: root.dataset.injected === "ran",
                 styled: getComputedStyle(document.body).outlineColor === "rgb(1, 2, 3)",
                 evaluated,
               };"#,
            vec![],
        )
        .await
        .expect("try to run what the CSP forbids");
    assert_eq!(tried["injected"], false, "an injected script must not run");
    assert_eq!(tried["styled"], false, "an injected style must not apply");
    assert_eq!(tried["evaluated"], false, "eval must be refused");
    // Violations are reported as a task after the fact.
    let start = std::time::Instant::now();
    let violations: Vec<serde_json::Value> = loop {
        let seen = w
            .client
            .execute("return document.documentElement.dataset.violations", vec![])
            .await
            .expect("read the violation reports");
        let seen: Vec<serde_json::Value> =
            serde_json::from_str(seen.as_str().unwrap_or("[]")).expect("the reports are JSON");
        if seen.len() >= 2 || start.elapsed() > WAIT {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let directives: Vec<&str> = violations
        .iter()
        .filter_map(|v| v["directive"].as_str())
        .collect();
    assert!(
        directives.contains(&"script-src-elem") || directives.contains(&"script-src"),
        "the injected script is reported: {violations:?}"
    );
    assert!(
        directives.iter().any(|d| d.starts_with("style-src")),
        "the injected style is reported: {violations:?}"
    );
    let csp = violations[0]["policy"].as_str().unwrap_or_default();
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_default();
    assert!(
        script_src.starts_with("script-src 'self'") && script_src.contains("'sha256-"),
        "the page's script is allowed by its hash: {csp}"
    );
    for loose in ["unsafe-inline", "unsafe-eval", "*"] {
        assert!(!csp.contains(loose), "the CSP allows no {loose}: {csp}");
    }
}

fn approver_policy(issuer: &str, client_id: &str) -> String {
    policy_with(
        issuer,
        client_id,
        r#"version = 1
max_auth_age = "20s"

[groups]
admin = ["admin"]
approvers = []
engineers = ["bob"]"#,
        r#"approvers = ["approvers"]"#,
    )
}

fn form(reason: &str, break_glass: bool) -> breakglass_engine::desk::RequestForm {
    breakglass_engine::desk::RequestForm {
        target: "demo".into(),
        role: None,
        duration_secs: 600,
        reason: reason.into(),
        ticket: Some("INC-7".into()),
        break_glass,
        extends: None,
        ssh_public_key: None,
    }
}

/// bob's view of request `id`, after catching up with the log.
async fn status_of(bob: &mut Desk, id: &str) -> breakglass_core::Status {
    bob.sync().await.expect("bob's desk catches up");
    bob.overview()
        .requests
        .into_iter()
        .find(|r| r.id == id)
        .map(|r| r.status)
        .expect("the request is in the log")
}

#[test]
fn an_approver_signs_in_again_approves_revokes_and_sees_break_glass_in_the_real_window() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        // Its own keyring and session bus: the app keeps alice's provider session there. The
        // desks of this process keep their keys in files, so they never touch a keyring.
        let keyring = SecretService::start();
        let mut idp = TestIdp::start(TestIdpOptions::default())
            .await
            .expect("the real OpenID provider starts");
        let home = keyring.tmp.path().join("approver-home");
        let mut desk = Desk::init_with(
            &home,
            "admin",
            breakglass_engine::KeyStoreKind::File,
            Arc::new(SystemClock),
        )
        .await
        .expect("a new data directory");
        desk.apply_policy(&approver_policy(
            idp.issuer(),
            &idp.native_client().client_id,
        ))
        .await
        .expect("the approvers' policy applies");
        desk.enrol_local("bob", &["engineers".to_owned()])
            .await
            .expect("bob is enrolled");
        desk.act_as("bob").expect("bob acts from this desk");

        let mut env = keyring.env();
        env.push(("BREAKGLASS_HOME".into(), home.display().to_string()));
        env.push(("BREAKGLASS_NO_BROWSER".into(), "1".into()));
        let desktop = Desktop::start(&env);
        let bus = keyring.bus_address().to_owned();
        let notifications = NotificationDaemon::start(desktop.display(), &bus);
        let client = desktop
            .session(Path::new(env!("CARGO_BIN_EXE_breakglass-app")))
            .await;
        let w = Window {
            client,
            desktop: &desktop,
            shots: screenshot_dir(),
        };
        let result = tokio::time::timeout(
            Duration::from_secs(300),
            approver_scenario(&w, &idp, &mut desk, &notifications),
        )
        .await;
        if result.is_err() || std::thread::panicking() {
            eprintln!("{}", desktop.driver_log());
        }
        let _ = w.client.clone().close().await;
        desk.close().await;
        idp.stop().await;
        result.expect("the approver's scenario finishes within 5 minutes");
    });
}

async fn approver_scenario(
    w: &Window<'_>,
    idp: &TestIdp,
    bob: &mut Desk,
    notifications: &NotificationDaemon,
) {
    // The page runs under the strict CSP: its own (inlined) script by hash, nothing injected.
    csp_in_force(w).await;

    // alice opens the app on the team's data directory and signs in at the provider, whose
    // `approvers` group makes her an approver.
    w.sign_in(idp, "signin-start", "alice").await;
    w.find("nav-approvals").await;

    // bob asks; the request reaches alice live, with a notification giving its expiry.
    let asked = bob
        .request(form("rotate the signing key", false))
        .await
        .expect("bob requests demo")
        .request;
    w.click("nav-approvals").await;
    w.text_until("approvals-count", "one request waiting", |t| t == "1")
        .await;
    let quorum = w.text(&format!("quorum-{}", asked.id)).await;
    assert!(
        quorum.starts_with("0 of 1 approval"),
        "the card shows the quorum's progress: {quorum}"
    );
    w.shot("approvals").await;
    let notice = notified(notifications, "bob asks for demo").await;
    assert!(
        notice.body.contains("rotate the signing key") && notice.body.contains("Lapses at"),
        "the new-request notice gives the reason and when it lapses: {notice:?}"
    );

    // The sign-in is older than max_auth_age (20 s): the window asks for a new one, and
    // deciding waits for it.
    w.find("reauth-prompt").await;
    let approve = format!("approve-{}", asked.id);
    let start = std::time::Instant::now();
    while w
        .find(&approve)
        .await
        .attr("disabled")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            start.elapsed() < WAIT,
            "approving waits for a fresh sign-in"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.sign_in(idp, "reauth", "alice").await;
    w.gone(
        "reauth-prompt",
        "the prompt should go once alice has signed in again",
    )
    .await;

    // Approve, with a comment; bob's access is active.
    w.type_into(&format!("comment-{}", asked.id), "go ahead")
        .await;
    w.click(&approve).await;
    w.find(&format!("active-{}", asked.id)).await;
    assert_eq!(
        status_of(bob, &asked.id).await,
        breakglass_core::Status::Active
    );

    // Revoke it from the window, with a reason; bob's access ends.
    w.click(&format!("revoke-{}", asked.id)).await;
    w.type_into("confirm-text", "done early").await;
    w.click("confirm-ok").await;
    let start = std::time::Instant::now();
    while status_of(bob, &asked.id).await != breakglass_core::Status::Revoked {
        assert!(start.elapsed() < WAIT, "the revocation reaches the log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // bob self-activates break-glass: alice's window raises the alert, with a notification.
    let emergency = bob
        .request(form("production is down", true))
        .await
        .expect("bob activates break-glass")
        .request;
    let alert = w
        .text_until(
            &format!("alert-{}", emergency.id),
            "the break-glass alert",
            |t| t.to_lowercase().contains("break-glass"),
        )
        .await;
    assert!(alert.contains("bob"), "the alert names who: {alert}");
    w.text_until("alerts-count", "the alert counted in the menu", |t| {
        t.trim().parse::<u32>().is_ok_and(|n| n >= 1)
    })
    .await;
    let notice = notified(notifications, "Break-glass access activated").await;
    assert!(
        notice.body.contains("bob") && notice.body.contains("A review is owed"),
        "the break-glass notice names who and that a review is owed: {notice:?}"
    );
}
