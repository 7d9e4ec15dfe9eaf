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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_reach_the_ui_as_a_fixed_sentence() {
        let e = EngineError::Store(breakglass_store::StoreError::InvalidLocation {
            location: "postgres://breakglass:hunter2@db.internal/breakglass".into(),
            reason: "relation \"entries\" does not exist".into(),
        });
        let shown = AppError::from(e);
        assert_eq!(shown.code, Code::Storage);
        for leak in ["hunter2", "db.internal", "relation"] {
            assert!(
                !shown.message.contains(leak),
                "database detail must not reach the window: {}",
                shown.message
            );
        }
        let refused = AppError::from(EngineError::Invalid("give a reason for the request".into()));
        assert_eq!(refused.code, Code::InvalidInput);
        assert_eq!(
            refused.message, "give a reason for the request",
            "what the person can act on is shown as it is"
        );
    }
}
