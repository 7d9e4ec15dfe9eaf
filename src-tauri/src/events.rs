//! Events the core pushes to the UI.

use serde::{Deserialize, Serialize};

/// The log changed (a command here, the scheduler, or another process): fetch the overview.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct LogChanged {
    /// Entries in the log now.
    pub size: u64,
}

/// Reading the log in the background failed: the database is unreachable, or what it holds
/// failed verification (code `tampered`: history rewritten, truncated or forked, or an entry
/// without a valid signature). Sent once per distinct failure; nothing past what was verified is
/// shown meanwhile.
#[derive(Debug, Clone, Serialize, specta::Type, tauri_specta::Event)]
pub struct SyncFailed {
    /// What failed, as a command's error would say it.
    pub error: crate::AppError,
}

/// A sign-in is waiting for the person: a browser address, or a device code to enter.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct SignInPrompt {
    /// The address to open in a browser (also opened automatically where possible).
    pub url: Option<String>,
    /// The device flow's code.
    pub user_code: Option<String>,
    /// Where to enter the device code.
    pub verification_uri: Option<String>,
}

/// An export's progress.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ExportProgress {
    /// Entries processed.
    pub done: u64,
    /// Entries in all.
    pub total: u64,
}

/// A deep link asked to show a request.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct OpenRequest {
    /// The request's id.
    pub id: String,
}
