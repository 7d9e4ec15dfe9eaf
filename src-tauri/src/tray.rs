//! The tray icon: active grants, the nearest deadline and pending approvals, refreshed every
//! second from the same overview the window shows.

use breakglass_engine::desk::TraySummary;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime};

/// The tray icon and the menu lines it updates.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    status: MenuItem<R>,
    approvals: MenuItem<R>,
}

impl<R: Runtime> Tray<R> {
    /// Builds the tray icon with its menu.
    pub fn build(app: &AppHandle<R>) -> tauri::Result<Tray<R>> {
        let status = MenuItem::with_id(app, "status", "Breakglass: starting", false, None::<&str>)?;
        let approvals = MenuItem::with_id(
            app,
            "approvals",
            "No requests awaiting you",
            false,
            None::<&str>,
        )?;
        let open = MenuItem::with_id(app, "open", "Open Breakglass", true, None::<&str>)?;
        let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
        let menu = Menu::with_items(
            app,
            &[
                &status,
                &approvals,
                &PredefinedMenuItem::separator(app)?,
                &open,
                &quit,
            ],
        )?;
        let mut builder = TrayIconBuilder::with_id("breakglass")
            .menu(&menu)
            .tooltip("Breakglass")
            .on_menu_event(|app, event| match event.id().as_ref() {
                "open" => show_main(app),
                "quit" => app.exit(0),
                _ => {}
            });
        if let Some(icon) = app.default_window_icon() {
            builder = builder.icon(icon.clone());
        }
        let icon = builder.build(app)?;
        Ok(Tray {
            icon,
            status,
            approvals,
        })
    }

    /// Shows `summary` as of `now_ms`.
    pub fn show(&self, summary: &TraySummary, now_ms: i64) {
        let line = summary.line(now_ms);
        let _ = self.status.set_text(&line);
        let _ = self.approvals.set_text(match summary.pending_approvals {
            0 => "No requests awaiting you".to_owned(),
            1 => "1 request awaiting your approval".to_owned(),
            n => format!("{n} requests awaiting your approval"),
        });
        let _ = self.icon.set_tooltip(Some(&line));
        // The label beside the icon (shown by Linux panels; ignored elsewhere).
        let _ = self.icon.set_title(Some(summary.short(now_ms)));
    }
}

/// Brings the main window forward.
pub fn show_main<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}
