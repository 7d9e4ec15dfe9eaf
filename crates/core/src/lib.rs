#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Breakglass core: the domain of time-boxed access, with no I/O.
//!
//! Owns the policy format, identities, the events of the log and the rules of the request
//! lifecycle ([`LogState::apply`]). It never reads the clock (callers pass a [`Clock`]), the
//! disk or the network, and never decides anything the state machine has not checked.

mod error;
mod event;
mod id;
mod identity;
pub mod names;
pub mod policy;
pub mod span;
mod state;
mod text;
mod time;

pub use error::Refusal;
pub use event::{
    AlertKind, Event, EventBody, EVENT_FORMAT, MAX_GRANT_RECORD_DELAY_SECS, MAX_TEXT_LEN,
    MAX_TICKET_LEN,
};
pub use id::RequestId;
pub use identity::{Binding, IdentityRecord, PublicKey};
pub use policy::{Policy, TargetPolicy, ADMIN_GROUP};
pub use span::Span;
pub use state::{
    hex, Decision, Identity, LogState, PolicyVersion, Request, Review, Status, VerifiedEvent,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
