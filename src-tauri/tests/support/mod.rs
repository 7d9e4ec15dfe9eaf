//! The desktop app in a real window, shared by the end-to-end tests: a WebDriver session on the
//! built app (tauri-driver, WebKitWebDriver, Xvfb) and what the tests do through it.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use breakglass_idp::testing::TestIdp;
use breakglass_testkit::desktop::Desktop;
use breakglass_testkit::notifications::{Notification, NotificationDaemon};
use fantoccini::{Client, Locator};
use serde_json::json;

pub const WAIT: Duration = Duration::from_secs(20);

/// The app's window size (tauri.conf.json), the area screenshots keep.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 800;

pub fn css(testid: &str) -> String {
    format!("[data-testid='{testid}']")
}

/// Every WebDriver call is bounded: a hung call fails the test, naming the call.
pub const CALL: Duration = Duration::from_secs(30);

pub async fn timed<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(CALL, fut).await {
        Ok(v) => v,
        Err(_) => panic!("the WebDriver call {what} did not answer within {CALL:?}"),
    }
}

pub struct Window<'d> {
    pub client: Client,
    pub desktop: &'d Desktop,
    pub shots: Option<PathBuf>,
}

impl Window<'_> {
    pub async fn find(&self, testid: &str) -> fantoccini::elements::Element {
        let selector = css(testid);
        let found = timed(
            &format!("find {selector}"),
            self.client
                .wait()
                .at_most(WAIT)
                .for_element(Locator::Css(&selector)),
        )
        .await;
        match found {
            Ok(el) => el,
            Err(e) => {
                self.fail(&format!("the window should show {selector}: {e}"))
                    .await
            }
        }
    }

    /// Fails the test with what the window showed: its text, and a screenshot.
    pub async fn fail(&self, why: &str) -> ! {
        // Named after the test (the thread's name), as the tests run side by side.
        let test = std::thread::current()
            .name()
            .unwrap_or("e2e")
            .replace("::", "-");
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-failure.png"));
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body
                .text()
                .await
                .unwrap_or_else(|e| format!("(its text could not be read: {e})")),
            Err(e) => format!("(the window could not be read: {e})"),
        };
        let shot = if self.desktop.screenshot(&shot, WIDTH, HEIGHT) {
            shot.display().to_string()
        } else {
            "none: the X display did not answer".to_owned()
        };
        panic!(
            "{why}\nthe window showed:\n{text}\n(screenshot: {shot})\ntauri-driver's log (the app's output):\n{}",
            self.desktop.driver_log()
        );
    }

    pub async fn click(&self, testid: &str) {
        let el = self.find(testid).await;
        timed(&format!("click {testid}"), el.click())
            .await
            .unwrap_or_else(|e| panic!("click {testid}: {e}"));
    }

    pub async fn type_into(&self, testid: &str, text: &str) {
        let el = self.find(testid).await;
        timed(&format!("clear {testid}"), el.clear())
            .await
            .unwrap_or_else(|e| panic!("clear {testid}: {e}"));
        timed(&format!("type into {testid}"), el.send_keys(text))
            .await
            .unwrap_or_else(|e| panic!("type into {testid}: {e}"));
    }

    pub async fn text(&self, testid: &str) -> String {
        let el = self.find(testid).await;
        timed(&format!("text of {testid}"), el.text())
            .await
            .unwrap_or_default()
    }

    /// Waits until `testid`'s text satisfies `ok`, and returns it.
    pub async fn text_until(&self, testid: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let selector = css(testid);
            let found = timed(&selector, self.client.find(Locator::Css(&selector))).await;
            if let Ok(el) = found {
                if let Ok(t) = timed(&format!("text of {selector}"), el.text()).await {
                    if ok(&t) {
                        return t;
                    }
                }
            }
            if start.elapsed() > WAIT * 5 {
                self.fail(&format!("{testid} should come to show {what}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the window shows no `testid` (failing with `why` after [`WAIT`]).
    pub async fn gone(&self, testid: &str, why: &str) {
        let start = std::time::Instant::now();
        while self.client.find(Locator::Css(&css(testid))).await.is_ok() {
            if start.elapsed() > WAIT {
                self.fail(why).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sets a text area's content the way typing would (an input event), without typing it
    /// key by key.
    pub async fn set_value(&self, testid: &str, value: &str) {
        let run = self.client.execute(
            "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
                 el.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![json!(css(testid)), json!(value)],
        );
        timed(&format!("set {testid}"), run)
            .await
            .unwrap_or_else(|e| panic!("set {testid}: {e}"));
    }

    /// Clicks `button` (a sign-in panel's start), and signs `who` in at the address the window
    /// then shows (no browser here: the provider's own pages, headlessly).
    pub async fn sign_in(&self, idp: &TestIdp, button: &str, who: &str) {
        self.click(button).await;
        let url = self
            .text_until("signin-url", "the sign-in address", |t| {
                t.starts_with("http")
            })
            .await;
        let url = url::Url::parse(url.trim()).expect("the shown address is a URL");
        idp.headless_login(&url, who)
            .await
            .unwrap_or_else(|e| panic!("{who} signs in at the provider: {e}"));
    }

    /// Opens the request form on `target`.
    pub async fn request_form(&self, target: &str) {
        self.click("nav-request").await;
        self.find("req-target")
            .await
            .select_by_value(target)
            .await
            .unwrap_or_else(|e| panic!("choose {target}: {e}"));
    }

    /// Submits the request form and waits for the result to say `status`.
    pub async fn submit_request(&self, status: &str) {
        self.click("req-submit").await;
        self.text_until("req-result", status, |t| t.to_lowercase().contains(status))
            .await;
    }

    pub async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            // Let the last change paint first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let path = dir.join(format!("{name}.png"));
            assert!(
                self.desktop.screenshot(&path, WIDTH, HEIGHT),
                "screenshot {}",
                path.display()
            );
        }
    }
}

/// Where screenshots go (`BREAKGLASS_SCREENSHOTS`), created if need be; none without it.
pub fn screenshot_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("BREAKGLASS_SCREENSHOTS")?);
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    Some(dir)
}

/// Waits until `probe` finds what it looks for (the tray and notifications are refreshed by the
/// app's one-second loop), failing with `what` and the last thing seen.
pub async fn eventually<T, S: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        match probe() {
            Ok(found) => return found,
            Err(seen) if start.elapsed() > WAIT => {
                panic!("{what} within {WAIT:?}; last seen: {seen:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The notification titled `summary`, once the daemon has received it.
pub async fn notified(daemon: &NotificationDaemon, summary: &str) -> Notification {
    eventually(&format!("a notification {summary:?} should arrive"), || {
        let all = daemon.received();
        all.iter()
            .find(|n| n.summary == summary)
            .cloned()
            .ok_or(all)
    })
    .await
}
