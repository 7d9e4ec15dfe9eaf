#![forbid(unsafe_code)]
//! The Breakglass desktop app: a thin Tauri shell over the engine's [`Desk`]. Commands translate
//! and nothing more; state is the desk's; a background loop runs the scheduler, tells the UI
//! when the log changes, raises notifications and keeps the tray current.
//!
//! [`Desk`]: breakglass_engine::desk::Desk

mod commands;
mod error;
mod events;
mod page;
mod state;
mod tray;

use std::time::Duration;

use breakglass_engine::desk::{self, TraySummary};
use specta_typescript::{BigIntExportBehavior, Typescript};
use tauri::{AppHandle, Manager};
use tauri_plugin_deep_link::DeepLinkExt;
use tauri_plugin_notification::NotificationExt;
use tauri_specta::{collect_commands, collect_events, Event};

pub use error::AppError;
use events::OpenRequest;
use state::AppState;

/// How often the background loop looks at the log (other processes' entries, deadlines).
const TICK: Duration = Duration::from_secs(1);
/// How often to try again to listen to a team's database that refused it.
const LISTEN_RETRY: Duration = Duration::from_secs(10);

/// The command and event surface, as tauri-specta sees it.
pub fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(collect_commands![
            commands::setup_status,
            commands::init_data_dir,
            commands::join_team,
            commands::open_data_dir,
            commands::discover_provider,
            commands::draft_policy,
            commands::check_policy,
            commands::apply_policy,
            commands::current_policy,
            commands::sign_in,
            commands::sign_out,
            commands::overview,
            commands::issued,
            commands::request_access,
            commands::approve,
            commands::deny,
            commands::revoke,
            commands::cancel,
            commands::review,
            commands::offline_approval,
            commands::import_offline_approval,
            commands::history,
            commands::export_log,
            commands::export_evidence,
            commands::verify_bundle,
            commands::pending_link,
        ])
        .events(collect_events![
            events::LogChanged,
            events::SignInPrompt,
            events::ExportProgress,
            events::OpenRequest,
            events::SyncFailed
        ])
        .typ::<page::FirstReads>()
}

/// The TypeScript the UI imports (`ui/src/lib/bindings.ts`), generated from the Rust types.
pub fn typescript_bindings() -> Result<String, String> {
    specta_builder()
        .export_str(
            Typescript::default()
                .bigint(BigIntExportBehavior::Number)
                .header("// Generated from the Rust types by src-tauri (tauri-specta); do not edit.\n// Regenerate: BREAKGLASS_WRITE_BINDINGS=1 cargo test -p breakglass-app --lib bindings\n"),
        )
        .map_err(|e| e.to_string())
        .and_then(|ts| type_only_window_import(&ts))
}

/// tauri-specta imports the window type as `import { type WebviewWindow … }`, which the UI's
/// `verbatimModuleSyntax` keeps as an import of the module itself: Tauri's whole window and
/// webview API (≈ 17 kB) would load with the first screen, which needs none of it. `import type`
/// is erased.
fn type_only_window_import(ts: &str) -> Result<String, String> {
    const AS_GENERATED: &str =
        "import { type WebviewWindow as __WebviewWindow__ } from \"@tauri-apps/api/webviewWindow\";";
    const TYPE_ONLY: &str =
        "import type { WebviewWindow as __WebviewWindow__ } from \"@tauri-apps/api/webviewWindow\";";
    if ts.matches(AS_GENERATED).count() != 1 {
        return Err(format!(
            "tauri-specta's output no longer has one `{AS_GENERATED}`: see type_only_window_import"
        ));
    }
    Ok(ts.replace(AS_GENERATED, TYPE_ONLY))
}

/// Starts the app.
pub fn run() {
    let builder = specta_builder();
    let state = AppState::load();
    let result = tauri::Builder::default()
        // First, so a second launch (a deep link) goes to the running app instead.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            tray::show_main(app);
            for arg in argv.iter().skip(1) {
                open_link(app, arg);
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .manage(state)
        .invoke_handler(builder.invoke_handler())
        .setup(move |app| {
            builder.mount_events(app);
            let handle = app.handle().clone();
            let links = handle.clone();
            app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    open_link(&links, url.as_str());
                }
            });
            if let Ok(Some(urls)) = app.deep_link().get_current() {
                for url in urls {
                    open_link(&handle, url.as_str());
                }
            }
            let tray = tray::Tray::build(&handle)?;
            tauri::async_runtime::spawn(background(handle, tray));
            Ok(())
        })
        .run(context());
    if let Err(e) = result {
        eprintln!("breakglass-app: {e}");
        std::process::exit(1);
    }
}

/// The app's context, its page carrying the first reads (see [`page`]).
fn context() -> tauri::Context {
    let mut context = tauri::generate_context!();
    let embedded = context.set_assets(Box::new(page::NoAssets));
    context.set_assets(Box::new(page::PageAssets::new(embedded)));
    context
}

fn open_link(app: &AppHandle, url: &str) {
    if !url.starts_with("breakglass:") {
        return;
    }
    match desk::parse_deep_link(url) {
        Ok(id) => {
            app.state::<AppState>().set_pending_link(id.clone());
            let _ = OpenRequest { id }.emit(app);
            tray::show_main(app);
        }
        Err(e) => eprintln!("breakglass-app: {e}"),
    }
}

/// Once a second, and in team mode as soon as another app, the CLI or the broker commits a
/// change: pick up the log's changes and run the scheduler, then refresh the tray and raise the
/// notices the change brings. A command in progress is never waited for.
async fn background(app: AppHandle, tray: tray::Tray<tauri::Wry>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut listener = None;
    let mut listen_again = tokio::time::Instant::now();
    // The failure last reported, so each is reported once.
    let mut failing: Option<AppError> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = breakglass_engine::heard(listener.as_mut()) => {}
        }
        let state = app.state::<AppState>();
        let Some(mut desk) = state.try_desk() else {
            continue;
        };
        if listener.is_none() && tokio::time::Instant::now() >= listen_again {
            listener = desk.listen().await;
            listen_again = tokio::time::Instant::now() + LISTEN_RETRY;
        }
        match desk.sync().await {
            Ok(synced) => {
                failing = None;
                if synced.changed {
                    commands::announce(&app, desk.engine().size());
                }
            }
            Err(e) => {
                eprintln!("breakglass-app: sync: {e}");
                let error = AppError::from(e);
                if failing.as_ref() != Some(&error) {
                    failing = Some(error.clone());
                    alarm(&app, error);
                }
            }
        }
        let overview = desk.overview();
        drop(desk);
        tray.show(&TraySummary::of(&overview), overview.now_ms);
        let notices = match state.notices.lock() {
            Ok(mut n) => n.update(&overview),
            Err(_) => Vec::new(),
        };
        for n in notices {
            let shown = app
                .notification()
                .builder()
                .title(&n.title)
                .body(&n.body)
                .show();
            if let Err(e) = shown {
                eprintln!("breakglass-app: notification {:?} not shown: {e}", n.title);
            }
        }
    }
}

/// Tells the window that reading the log failed, and, when the log failed verification, the
/// desktop too.
fn alarm(app: &AppHandle, error: AppError) {
    if error.code == breakglass_engine::Code::Tampered {
        let shown = app
            .notification()
            .builder()
            .title("Breakglass: the log failed verification")
            .body(&error.message)
            .show();
        if let Err(e) = shown {
            eprintln!("breakglass-app: notification not shown: {e}");
        }
    }
    let _ = events::SyncFailed { error }.emit(app);
}

#[cfg(test)]
mod tests {
    /// The committed TypeScript bindings are the ones the Rust types generate.
    #[test]
    fn bindings_are_current() {
        let path = breakglass_testkit::workspace_root().join("ui/src/lib/bindings.ts");
        let generated = super::typescript_bindings().expect("the types export to TypeScript");
        if std::env::var_os("BREAKGLASS_WRITE_BINDINGS").is_some() {
            std::fs::write(&path, &generated).expect("write the bindings");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "ui/src/lib/bindings.ts is stale: regenerate it with \
             BREAKGLASS_WRITE_BINDINGS=1 cargo test -p breakglass-app --lib bindings"
        );
    }
}
