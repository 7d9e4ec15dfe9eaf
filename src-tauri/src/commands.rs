//! The UI's commands: each takes the desk, calls it, and maps the error. Nothing else.

use std::path::PathBuf;

use breakglass_engine::desk::{
    self, Credential, Decided, Discovery, EventRow, ExportDone, ExportFormat, ExportPeriod,
    HistoryFilter, JoinForm, OfflineToken, Overview, PolicyProblem, ProviderDraft, RequestForm,
    SetupStatus, SignedInView, VerifyReport,
};
use breakglass_engine::signin::Method;
use tauri::{AppHandle, State};
use tauri_specta::Event;

use crate::error::AppError;
use crate::events::{ExportProgress, LogChanged};
use crate::state::{off_thread, AppState, BrowserPrompt};

type Result<T> = std::result::Result<T, AppError>;

/// Where the first run stands.
#[tauri::command]
#[specta::specta]
pub async fn setup_status(state: State<'_, AppState>) -> Result<SetupStatus> {
    Ok(state.setup_status().await)
}

/// Creates the data directory (`dir`, or the default) with `admin` as first administrator.
#[tauri::command]
#[specta::specta]
pub async fn init_data_dir(
    state: State<'_, AppState>,
    dir: Option<String>,
    admin: String,
) -> Result<SetupStatus> {
    state.init(dir.map(PathBuf::from), &admin).await
}

/// Joins a team's log (its shared PostgreSQL database) in `dir`, or the default, as a member.
#[tauri::command]
#[specta::specta]
pub async fn join_team(
    state: State<'_, AppState>,
    dir: Option<String>,
    form: JoinForm,
) -> Result<SetupStatus> {
    state.join(dir.map(PathBuf::from), form).await
}

/// Opens an existing data directory.
#[tauri::command]
#[specta::specta]
pub async fn open_data_dir(state: State<'_, AppState>, dir: String) -> Result<SetupStatus> {
    state.open(PathBuf::from(dir)).await
}

/// Reads an identity provider's discovery document.
#[tauri::command]
#[specta::specta]
pub async fn discover_provider(state: State<'_, AppState>, issuer: String) -> Result<Discovery> {
    Ok(desk::discover(&issuer, state.clock()).await?)
}

/// A starting policy naming this app's identity as administrator, with `provider`.
#[tauri::command]
#[specta::specta]
pub async fn draft_policy(
    state: State<'_, AppState>,
    provider: Option<ProviderDraft>,
) -> Result<String> {
    let desk = state.desk().await?;
    Ok(desk::draft_policy(desk.me(), provider.as_ref()))
}

/// Every problem in a policy text, with line and column.
#[tauri::command]
#[specta::specta]
pub fn check_policy(source: String) -> Vec<PolicyProblem> {
    desk::check_policy(&source)
}

/// Applies a policy (administrators only).
#[tauri::command]
#[specta::specta]
pub async fn apply_policy(
    app: AppHandle,
    state: State<'_, AppState>,
    source: String,
) -> Result<SetupStatus> {
    let status = state.desk().await?.apply_policy(&source).await?;
    state.changed(&app).await;
    Ok(status)
}

/// The policy in force.
#[tauri::command]
#[specta::specta]
pub async fn current_policy(state: State<'_, AppState>) -> Result<Option<String>> {
    Ok(state.desk().await?.current_policy())
}

/// Signs in at the identity provider (the browser, or a device code when `device`).
#[tauri::command]
#[specta::specta]
pub async fn sign_in(
    app: AppHandle,
    state: State<'_, AppState>,
    provider: Option<String>,
    device: bool,
) -> Result<SignedInView> {
    let method = if device {
        Method::Device
    } else {
        Method::Browser
    };
    let prompt = BrowserPrompt::new(app.clone());
    let view = off_thread(&app, move |s| {
        Box::pin(async move { s.sign_in(provider.as_deref(), method, &prompt).await })
    })
    .await?;
    state.changed(&app).await;
    Ok(view)
}

/// Ends the provider session held here.
#[tauri::command]
#[specta::specta]
pub async fn sign_out(app: AppHandle, state: State<'_, AppState>) -> Result<Option<String>> {
    let warning = state.desk().await?.sign_out().await?;
    state.changed(&app).await;
    Ok(warning)
}

/// Everything the main screens show.
#[tauri::command]
#[specta::specta]
pub async fn overview(state: State<'_, AppState>) -> Result<Overview> {
    Ok(state.desk().await?.overview())
}

/// What this identity's live grant issued (its SSH certificate or access token), to show it.
#[tauri::command]
#[specta::specta]
pub async fn issued(state: State<'_, AppState>, id: String) -> Result<Credential> {
    Ok(state.desk().await?.issued(&id)?)
}

/// Requests access.
#[tauri::command]
#[specta::specta]
pub async fn request_access(
    app: AppHandle,
    state: State<'_, AppState>,
    form: RequestForm,
) -> Result<Decided> {
    let out = off_thread(&app, move |s| {
        Box::pin(async move { Ok(s.desk().await?.request(form).await?) })
    })
    .await?;
    state.changed(&app).await;
    Ok(out)
}

/// Approves a pending request.
#[tauri::command]
#[specta::specta]
pub async fn approve(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    comment: Option<String>,
) -> Result<Decided> {
    let out = off_thread(&app, move |s| {
        Box::pin(async move { Ok(s.desk().await?.approve(&id, comment).await?) })
    })
    .await?;
    state.changed(&app).await;
    Ok(out)
}

/// Denies a pending request, with the reason the requester will see.
#[tauri::command]
#[specta::specta]
pub async fn deny(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    reason: String,
) -> Result<Decided> {
    let out = off_thread(&app, move |s| {
        Box::pin(async move { Ok(s.desk().await?.deny(&id, reason).await?) })
    })
    .await?;
    state.changed(&app).await;
    Ok(out)
}

/// Ends a grant now.
#[tauri::command]
#[specta::specta]
pub async fn revoke(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    reason: Option<String>,
) -> Result<Decided> {
    let out = off_thread(&app, move |s| {
        Box::pin(async move { Ok(s.desk().await?.revoke(&id, reason).await?) })
    })
    .await?;
    state.changed(&app).await;
    Ok(out)
}

/// Withdraws one's own pending request.
#[tauri::command]
#[specta::specta]
pub async fn cancel(app: AppHandle, state: State<'_, AppState>, id: String) -> Result<Decided> {
    let out = state.desk().await?.cancel(&id).await?;
    state.changed(&app).await;
    Ok(out)
}

/// Records the review a break-glass activation owes.
#[tauri::command]
#[specta::specta]
pub async fn review(
    app: AppHandle,
    state: State<'_, AppState>,
    id: String,
    comment: String,
) -> Result<Decided> {
    let out = off_thread(&app, move |s| {
        Box::pin(async move { Ok(s.desk().await?.review(&id, comment).await?) })
    })
    .await?;
    state.changed(&app).await;
    Ok(out)
}

/// Signs an offline approval token for a break-glass request.
#[tauri::command]
#[specta::specta]
pub async fn offline_approval(
    state: State<'_, AppState>,
    id: String,
    valid_for_secs: u32,
) -> Result<OfflineToken> {
    Ok(state
        .desk()
        .await?
        .offline_approval(&id, u64::from(valid_for_secs))?)
}

/// Imports an offline approval token for one's own request.
#[tauri::command]
#[specta::specta]
pub async fn import_offline_approval(
    app: AppHandle,
    state: State<'_, AppState>,
    token: String,
) -> Result<Decided> {
    let out = state.desk().await?.import_offline_approval(&token).await?;
    state.changed(&app).await;
    Ok(out)
}

/// The log's events that `filter` keeps, newest first.
#[tauri::command]
#[specta::specta]
pub async fn history(state: State<'_, AppState>, filter: HistoryFilter) -> Result<Vec<EventRow>> {
    Ok(state.desk().await?.history(&filter).await?)
}

/// Exports the history of `period` in `format` (to `path`, or a new file in the data
/// directory's exports folder): CSV, JSON Lines, OCSF, the access report, or the whole log as a
/// bundle.
#[tauri::command]
#[specta::specta]
pub async fn export_log(
    app: AppHandle,
    state: State<'_, AppState>,
    format: ExportFormat,
    period: ExportPeriod,
    path: Option<String>,
) -> Result<ExportDone> {
    let path = path.filter(|p| !p.trim().is_empty()).map(PathBuf::from);
    let mut progress = |p: desk::ExportProgress| {
        let _ = ExportProgress {
            done: p.done,
            total: p.total,
        }
        .emit(&app);
    };
    Ok(state
        .desk()
        .await?
        .export(format, period, path.as_deref(), &mut progress)
        .await?)
}

/// Exports one request's evidence package (to `path`, or a new file in the data directory's
/// exports folder): its entries and what they need, each with an inclusion proof.
#[tauri::command]
#[specta::specta]
pub async fn export_evidence(
    state: State<'_, AppState>,
    request: String,
    path: Option<String>,
) -> Result<ExportDone> {
    let path = path.filter(|p| !p.trim().is_empty()).map(PathBuf::from);
    Ok(state
        .desk()
        .await?
        .export_evidence(&request, path.as_deref())
        .await?)
}

/// Verifies a bundle or evidence package file on its own and says what was found.
#[tauri::command]
#[specta::specta]
pub async fn verify_bundle(path: String) -> Result<VerifyReport> {
    if path.trim().is_empty() {
        return Err(AppError::invalid(
            "choose a bundle or evidence file to verify",
        ));
    }
    let path = PathBuf::from(path);
    tauri::async_runtime::spawn_blocking(move || desk::verify_file(&path))
        .await
        .map_err(|_| AppError::invalid("verification stopped unexpectedly"))?
        .map_err(AppError::from)
}

/// The request a deep link asked for before the UI was ready, if any (taken once).
#[tauri::command]
#[specta::specta]
pub async fn pending_link(state: State<'_, AppState>) -> Result<Option<String>> {
    Ok(state.take_pending_link())
}

pub(crate) fn announce(app: &AppHandle, size: u64) {
    let _ = LogChanged { size }.emit(app);
}
