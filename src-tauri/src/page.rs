//! The UI's page as the webview receives it: the embedded assets, with the first reads (the setup
//! status and the overview) written into `index.html` when the data directory is open, so the
//! first screen is drawn without waiting for a round trip through the IPC. Computed afresh each
//! time the page is asked for (a reload gets what is current). When the directory is not open
//! yet, or a command holds it, the page goes without and asks through the IPC as usual.

use std::borrow::Cow;
use std::sync::OnceLock;

use breakglass_engine::desk::{Overview, SetupStatus};
use serde::Serialize;
use tauri::utils::assets::{AssetKey, AssetsIter, CspHash};
use tauri::{App, AppHandle, Assets, Manager, Runtime};

use crate::state::AppState;

/// The id of the element that carries the first reads (read once by `ui/src/lib/firstReads.ts`).
pub const FIRST_READS_ID: &str = "breakglass-first-reads";

/// What the page needs to draw its first screen: what the `setup_status` and `overview` commands
/// would return.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct FirstReads {
    pub setup: SetupStatus,
    pub overview: Overview,
}

/// `html` with `reads` as a JSON data block at the end of its head (unchanged without a head).
/// A data block is never run, so the CSP has nothing to allow; `<`, `>` and `&` are written as
/// JSON escapes, so text from the log (a reason, a ticket) cannot close the element.
pub fn with_first_reads(html: &str, reads: &FirstReads) -> Option<String> {
    let at = html.find("</head>")?;
    let json = serde_json::to_string(reads).ok()?;
    let mut json_safe = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        match c {
            '<' => json_safe.push_str("\\u003c"),
            '>' => json_safe.push_str("\\u003e"),
            '&' => json_safe.push_str("\\u0026"),
            c => json_safe.push(c),
        }
    }
    Some(format!(
        "{}<script type=\"application/json\" id=\"{FIRST_READS_ID}\">{json_safe}</script>\n{}",
        &html[..at],
        &html[at..]
    ))
}

/// The embedded assets, serving `index.html` with the first reads in it.
pub struct PageAssets<R: Runtime> {
    embedded: Box<dyn Assets<R>>,
    app: OnceLock<AppHandle<R>>,
}

impl<R: Runtime> PageAssets<R> {
    pub fn new(embedded: Box<dyn Assets<R>>) -> PageAssets<R> {
        PageAssets {
            embedded,
            app: OnceLock::new(),
        }
    }

    fn first_reads(&self) -> Option<FirstReads> {
        let state = self.app.get()?.try_state::<AppState>()?;
        let desk = state.try_desk()?;
        Some(FirstReads {
            setup: desk.setup_status(),
            overview: desk.overview(),
        })
    }
}

impl<R: Runtime> Assets<R> for PageAssets<R> {
    fn setup(&self, app: &App<R>) {
        let _ = self.app.set(app.handle().clone());
        self.embedded.setup(app);
    }

    fn get(&self, key: &AssetKey) -> Option<Cow<'_, [u8]>> {
        let asset = self.embedded.get(key)?;
        if key.as_ref() != "/index.html" {
            return Some(asset);
        }
        let page = std::str::from_utf8(&asset)
            .ok()
            .zip(self.first_reads())
            .and_then(|(html, reads)| with_first_reads(html, &reads));
        match page {
            Some(page) => Some(Cow::Owned(page.into_bytes())),
            None => Some(asset),
        }
    }

    fn iter(&self) -> Box<AssetsIter<'_>> {
        self.embedded.iter()
    }

    fn csp_hashes(&self, html_path: &AssetKey) -> Box<dyn Iterator<Item = CspHash<'_>> + '_> {
        self.embedded.csp_hashes(html_path)
    }
}

/// Stands in for the embedded assets for as long as it takes to wrap them.
pub struct NoAssets;

impl<R: Runtime> Assets<R> for NoAssets {
    fn get(&self, _: &AssetKey) -> Option<Cow<'_, [u8]>> {
        None
    }

    fn iter(&self) -> Box<AssetsIter<'_>> {
        Box::new(std::iter::empty())
    }

    fn csp_hashes(&self, _: &AssetKey) -> Box<dyn Iterator<Item = CspHash<'_>> + '_> {
        Box::new(std::iter::empty())
    }
}

#[cfg(test)]
mod tests {
    use breakglass_engine::desk::Me;

    use super::*;

    const PAGE: &str = "<!doctype html>\n<html><head><title>B</title></head><body><div id=\"app\"></div></body></html>";

    fn reads(name: &str) -> FirstReads {
        FirstReads {
            setup: SetupStatus {
                data_dir: "/data".into(),
                initialised: true,
                has_policy: true,
                providers: Vec::new(),
                me: Some(name.to_owned()),
                admin: false,
                signed_in: false,
            },
            overview: Overview {
                now_ms: 1_700_000_000_000,
                log_size: 3,
                me: Me {
                    name: name.to_owned(),
                    provider: None,
                    groups: Vec::new(),
                    signed_in: false,
                    signed_in_at_ms: None,
                    fresh_for_decisions: false,
                    max_auth_age_secs: 900,
                    admin: false,
                    approver: false,
                    to_enrol: None,
                },
                targets: Vec::new(),
                requests: Vec::new(),
                alerts: Vec::new(),
            },
        }
    }

    /// The data block's text, as the page's `textContent` would give it.
    fn block(page: &str) -> &str {
        let open = format!("<script type=\"application/json\" id=\"{FIRST_READS_ID}\">");
        let start = page.find(&open).expect("the data block") + open.len();
        let len = page[start..].find("</script>").expect("the block's end");
        &page[start..start + len]
    }

    #[test]
    fn the_first_reads_go_at_the_end_of_the_head_as_the_json_the_commands_return() {
        let r = reads("alice");
        let page = with_first_reads(PAGE, &r).expect("the page has a head");
        assert!(page.starts_with("<!doctype html>\n<html><head><title>B</title><script"));
        assert!(page.ends_with("</head><body><div id=\"app\"></div></body></html>"));
        let parsed: serde_json::Value = serde_json::from_str(block(&page)).expect("valid JSON");
        assert_eq!(parsed, serde_json::to_value(&r).expect("serialises"));
        assert_eq!(parsed["overview"]["me"]["name"], "alice");
    }

    #[test]
    fn text_from_the_log_cannot_close_the_data_block() {
        let hostile = "</script><script>alert(1)</script><!-- & \u{2028} >";
        let page = with_first_reads(PAGE, &reads(hostile)).expect("the page has a head");
        // One data block, no other script, and the text comes back exactly as it was.
        assert_eq!(page.matches("<script").count(), 1);
        assert_eq!(page.matches("</script>").count(), 1);
        let parsed: serde_json::Value = serde_json::from_str(block(&page)).expect("valid JSON");
        assert_eq!(parsed["overview"]["me"]["name"], hostile);
    }

    #[test]
    fn a_page_without_a_head_is_left_alone() {
        assert!(with_first_reads("<p>no head</p>", &reads("alice")).is_none());
    }
}
