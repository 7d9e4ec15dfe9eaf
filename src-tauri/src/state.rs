//! The app's state: the engine's desk (or none before the first run), and what the tray and
//! notifications remember. Every screen's data comes from the desk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};

use breakglass_core::{Clock, SteadyClock, SystemClock};
use breakglass_engine::desk::{self, Desk, JoinForm, Notices, SetupStatus, SignedInView};
use breakglass_engine::signin::{Method, Prompt};
use breakglass_engine::{default_dir, Home};
use tauri::{AppHandle, Manager};
use tauri_specta::Event;
use tokio::sync::{Mutex, MutexGuard};

use crate::error::AppError;
use crate::events::SignInPrompt;

/// Managed by Tauri; shared by the commands and the background loop.
pub struct AppState {
    /// Held by the task that opens the data directory until it has, so every command waits
    /// for it while the window starts at the same time.
    desk: Arc<Mutex<Option<Desk>>>,
    dir: StdMutex<Option<PathBuf>>,
    clock: Arc<dyn Clock>,
    pub(crate) notices: StdMutex<Notices>,
    pending_link: StdMutex<Option<String>>,
}

/// The desk, held for one command.
pub type DeskGuard<'a> = tokio::sync::MappedMutexGuard<'a, Desk>;

impl AppState {
    /// Starts opening the default data directory (when it is initialised; otherwise the first
    /// run will) on the async runtime and returns at once: the desk is locked until it is open,
    /// so the first command waits for it rather than finding none.
    pub fn load() -> AppState {
        // The app runs the expiry scheduler in embedded mode: a wall clock stepped back must not
        // delay an expiry.
        let clock: Arc<dyn Clock> = Arc::new(SteadyClock::new(Arc::new(SystemClock)));
        let dir = default_dir();
        let desk = Arc::new(Mutex::new(None));
        let mut slot = desk.clone().try_lock_owned().expect("a new mutex is free");
        let opening = (dir.clone(), clock.clone());
        tauri::async_runtime::spawn(async move {
            let (dir, clock) = opening;
            *slot = match &dir {
                Some(d) if Home::open(d).is_ok() => match Desk::open(d, clock).await {
                    Ok(desk) => Some(desk),
                    Err(e) => {
                        eprintln!("breakglass-app: cannot open {}: {e}", d.display());
                        None
                    }
                },
                _ => None,
            };
        });
        AppState {
            desk,
            dir: StdMutex::new(dir),
            clock,
            notices: StdMutex::new(Notices::new()),
            pending_link: StdMutex::new(None),
        }
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The open desk, or `setup_required`.
    pub async fn desk(&self) -> Result<DeskGuard<'_>, AppError> {
        MutexGuard::try_map(self.desk.lock().await, Option::as_mut)
            .map_err(|_| AppError::setup_required())
    }

    /// The desk if one is open, without waiting for a long command to finish.
    pub fn try_desk(&self) -> Option<DeskGuard<'_>> {
        MutexGuard::try_map(self.desk.try_lock().ok()?, Option::as_mut).ok()
    }

    pub async fn setup_status(&self) -> SetupStatus {
        match self.desk.lock().await.as_ref() {
            Some(desk) => desk.setup_status(),
            None => SetupStatus {
                data_dir: self
                    .dir
                    .lock()
                    .ok()
                    .and_then(|d| d.as_ref().map(|d| d.display().to_string()))
                    .unwrap_or_default(),
                initialised: false,
                has_policy: false,
                providers: Vec::new(),
                me: None,
                admin: false,
                signed_in: false,
            },
        }
    }

    fn chosen_dir(&self, dir: Option<PathBuf>) -> Result<PathBuf, AppError> {
        dir.or_else(|| self.dir.lock().ok().and_then(|d| d.clone()))
            .ok_or_else(|| {
                AppError::invalid(
                    "there is no default data directory on this system; choose a folder",
                )
            })
    }

    pub async fn init(&self, dir: Option<PathBuf>, admin: &str) -> Result<SetupStatus, AppError> {
        let dir = self.chosen_dir(dir)?;
        let mut slot = self.desk.lock().await;
        if slot.is_some() {
            return Err(AppError::invalid("a data directory is already open"));
        }
        let desk = Desk::init(&dir, admin, self.clock.clone()).await?;
        let status = desk.setup_status();
        *slot = Some(desk);
        self.remember_dir(dir);
        Ok(status)
    }

    pub async fn join(
        &self,
        dir: Option<PathBuf>,
        form: JoinForm,
    ) -> Result<SetupStatus, AppError> {
        let dir = self.chosen_dir(dir)?;
        let mut slot = self.desk.lock().await;
        if slot.is_some() {
            return Err(AppError::invalid("a data directory is already open"));
        }
        let desk = Desk::join(&dir, form, self.clock.clone()).await?;
        let status = desk.setup_status();
        *slot = Some(desk);
        self.remember_dir(dir);
        Ok(status)
    }

    pub async fn open(&self, dir: PathBuf) -> Result<SetupStatus, AppError> {
        let desk = Desk::open(&dir, self.clock.clone()).await?;
        let status = desk.setup_status();
        let previous = self.desk.lock().await.replace(desk);
        if let Some(previous) = previous {
            previous.close().await;
        }
        self.remember_dir(dir);
        Ok(status)
    }

    fn remember_dir(&self, dir: PathBuf) {
        if let Ok(mut d) = self.dir.lock() {
            *d = Some(dir);
        }
        if let Ok(mut n) = self.notices.lock() {
            *n = Notices::new();
        }
    }

    /// Signs in without holding the desk, so the app stays live while the browser is open.
    pub async fn sign_in(
        &self,
        provider: Option<&str>,
        method: Method,
        prompt: &dyn Prompt,
    ) -> Result<SignedInView, AppError> {
        let home = self.desk().await?.home().clone();
        let view = desk::sign_in(&home, self.clock.clone(), provider, method, prompt).await?;
        let mut desk = self.desk().await?;
        desk.sync().await?;
        desk.act_as(&view.name)?;
        Ok(view)
    }
}

/// Runs `work` on a thread of its own, driven to completion there.
///
/// The identity provider's futures (sign-in, token refresh before a decision) are not `Send`
/// for every lifetime, which rustc's higher-ranked checks demand of a Tauri command's future;
/// on its own thread nothing needs to be `Send` but the result.
pub async fn off_thread<T, F>(app: &AppHandle, work: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: for<'s> FnOnce(&'s AppState) -> LocalFuture<'s, Result<T, AppError>> + Send + 'static,
{
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let state = app.state::<AppState>();
        tauri::async_runtime::block_on(work(&state))
    })
    .await
    .map_err(|e| {
        eprintln!("breakglass-app: a command stopped: {e}");
        AppError::internal()
    })?
}

/// A future that stays on the thread that polls it.
pub type LocalFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

impl AppState {
    /// Tells the UI the log changed.
    pub async fn changed(&self, app: &AppHandle) {
        if let Some(desk) = self.desk.lock().await.as_ref() {
            crate::commands::announce(app, desk.engine().size());
        }
    }

    pub fn set_pending_link(&self, id: String) {
        if let Ok(mut p) = self.pending_link.lock() {
            *p = Some(id);
        }
    }

    pub fn take_pending_link(&self) -> Option<String> {
        self.pending_link.lock().ok().and_then(|mut p| p.take())
    }
}

/// Shows the sign-in to the person: opens the system browser (unless `BREAKGLASS_NO_BROWSER`
/// is set) and always tells the UI the address or code, in case no browser opens.
pub struct BrowserPrompt {
    app: AppHandle,
}

impl BrowserPrompt {
    pub fn new(app: AppHandle) -> Self {
        BrowserPrompt { app }
    }
}

impl Prompt for BrowserPrompt {
    fn open(&self, url: &url::Url) {
        let _ = SignInPrompt {
            url: Some(url.to_string()),
            user_code: None,
            verification_uri: None,
        }
        .emit(&self.app);
        if std::env::var_os("BREAKGLASS_NO_BROWSER").is_none() {
            if let Err(e) = webbrowser::open(url.as_str()) {
                eprintln!("breakglass-app: could not open a browser: {e}");
            }
        }
    }

    fn show_code(&self, user_code: &str, uri: &url::Url, complete: Option<&url::Url>) {
        let _ = SignInPrompt {
            url: complete.map(ToString::to_string),
            user_code: Some(user_code.to_owned()),
            verification_uri: Some(uri.to_string()),
        }
        .emit(&self.app);
    }
}
