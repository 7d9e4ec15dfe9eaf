#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Breakglass core: the domain of time-boxed access, with no I/O.
//!
//! Owns the policy format, identities, the events of the log and the rules of the request
//! lifecycle ([`LogState::apply`]). It never reads the clock (callers pass a [`Clock`]), the
//! disk or the network, and never decides anything the state machine has not checked.
//!
//! ```
//! use breakglass_core::policy::{Policy, SAMPLE_POLICY};
//! use breakglass_core::Span;
//!
//! let policy = Policy::parse(SAMPLE_POLICY)?;
//! let db = policy.target("prod-db").expect("the sample names prod-db");
//! assert_eq!(db.max_duration, Span::parse("2h")?);
//! // Caps are compared, never trimmed: a 3h request is refused with the 2h cap named.
//! assert!(Span::parse("3h")? > db.max_duration);
//!
//! let problems = Policy::parse("version = 0\n").unwrap_err();
//! assert!(problems.to_string().starts_with("1:"), "every problem carries line:column");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod credential;
mod error;
mod event;
mod id;
mod identity;
pub mod jose;
pub mod names;
pub mod offline;
pub mod policy;
pub mod seal;
pub mod span;
mod state;
mod text;
mod time;

pub use credential::{Credential, CredentialKind, Issued, SealedToken, MAX_CREDENTIAL_BYTES};
pub use error::Refusal;
pub use event::{
    AlertKind, Event, EventBody, EVENT_FORMAT, MAX_GRANT_RECORD_DELAY_SECS, MAX_TEXT_LEN,
    MAX_TICKET_LEN,
};
pub use id::{RequestId, REQUEST_LINK_PREFIX};
pub use identity::{Binding, IdentityRecord, OidcBinding, PublicKey};
pub use policy::{Policy, ProviderPolicy, TargetPolicy, ADMIN_GROUP};
pub use span::Span;
pub use state::{
    hex, Decision, Identity, LogState, PolicyVersion, Request, RequestTally, Review, Status,
    VerifiedEvent, BREAK_GLASS_OFFLINE_QUORUM, SIGN_IN_LEEWAY,
};
pub use time::{Clock, ManualClock, SteadyClock, SystemClock, Timestamp};
