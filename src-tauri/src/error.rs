//! The one error shape the UI sees: `{code, message}`, with a code it can match on. Storage and
//! other internal failures reach it as a fixed sentence; their detail goes to the app's log.

use breakglass_engine::{Code, EngineError};
use serde::Serialize;

/// A failed command, as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct AppError {
    /// What kind of failure.
    pub code: Code,
    /// What to tell the person.
    pub message: String,
}

impl AppError {
    pub(crate) fn setup_required() -> AppError {
        AppError {
            code: Code::SetupRequired,
            message: "no data directory is open yet; finish the first run".into(),
        }
    }

    pub(crate) fn internal() -> AppError {
        AppError {
            code: Code::Internal,
            message: "the command stopped unexpectedly; nothing was changed".into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> AppError {
        AppError {
            code: Code::InvalidInput,
            message: message.into(),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        let code = e.code();
        let message = match code {
            Code::Storage | Code::Internal => {
                eprintln!("breakglass-app: {e}");
                "the database could not be read or written; nothing was changed (details are in the app's log)".to_owned()
            }
            _ => e.to_string(),
        };
        AppError { code, message }
    }
}
