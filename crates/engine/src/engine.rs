//! The engine: takes commands, checks them against the rules, signs and appends events, runs
//! connectors and the expiry scheduler.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use breakglass_core::policy::Policy;
use breakglass_core::seal::SealSecretKey;
use breakglass_core::{
    AlertKind, Binding, Clock, Credential, CredentialKind, Event, EventBody, IdentityRecord,
    Issued, LogState, PublicKey, Request, RequestId, SealedToken, Span, Status, Timestamp,
    VerifiedEvent, EVENT_FORMAT,
};
use breakglass_ledger::{
    decode_all, replay_lines, Checkpoint, Entry, Frontier, Hash, NoteSigner, NoteVerifier,
};
use breakglass_store::{Store, StoredCheckpoint};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::EngineError;
use crate::keys::public_key;
use crate::replica::Replica;
use breakglass_connectors::{Access, Connector, ConnectorError, SystemSecrets};

use crate::scheduler::TickReport;

/// How long a command that completed a request's approval waits for the broker acting on the
/// log to grant it (the broker hears of it at once in team mode, and within its `--interval`,
/// 1 s by default, on the embedded log).
pub const GRANT_HANDOFF_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An identity ready to sign: its name, its private key and, for a person of an identity
/// provider, the ID token of their latest sign-in (presented with approvals and break-glass).
pub struct Actor {
    name: String,
    key: SigningKey,
    sign_in: Option<String>,
}

impl Actor {
    /// Pairs a name with its key.
    pub fn new(name: impl Into<String>, key: SigningKey) -> Self {
        Actor {
            name: name.into(),
            key,
            sign_in: None,
        }
    }

    /// Adds the ID token of the identity's latest sign-in with its provider.
    pub fn with_sign_in(mut self, id_token: String) -> Self {
        self.sign_in = Some(id_token);
        self
    }

    /// The identity's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The identity's public key.
    pub fn public_key(&self) -> PublicKey {
        public_key(&self.key)
    }

    /// This identity's witness key named `name` (its own key, cosigning checkpoints).
    pub(crate) fn cosigner(&self, name: &str) -> Result<breakglass_ledger::Cosigner, EngineError> {
        breakglass_ledger::Cosigner::new(name, self.key.clone())
            .map_err(|e| EngineError::Invalid(format!("witness name {name:?}: {e}")))
    }

    /// Signs `event` as this identity (a member's finding, kept before it is appended).
    pub(crate) fn sign(&self, event: Event) -> Result<Entry, EngineError> {
        Entry::sign(event, &self.key).map_err(|e| EngineError::Invalid(e.to_string()))
    }

    /// The identity's sealing key, derived from its signing key: access tokens granted to it
    /// are sealed to its public half.
    pub fn seal_key(&self) -> SealSecretKey {
        SealSecretKey::derive(&self.key.to_bytes())
    }

    /// Opens the access token granted to this identity by request `r`.
    pub fn open_token(&self, r: &Request) -> Result<Zeroizing<String>, EngineError> {
        let Some(Issued::AccessToken(t)) = &r.issued else {
            return Err(EngineError::Invalid(format!(
                "{} issued no access token",
                r.id
            )));
        };
        let bytes = self
            .seal_key()
            .open(&SealedToken::requester_context(&r.id), &t.for_requester)
            .map_err(|e| EngineError::Invalid(format!("the token of {}: {e}", r.id)))?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| EngineError::Invalid(format!("the token of {} is not text", r.id)))
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("name", &self.name)
            .field("key", &self.public_key())
            .field("signed_in", &self.sign_in.is_some())
            .finish_non_exhaustive()
    }
}

/// The keys of the log itself: the checkpoint key and the broker's signing key.
pub struct SystemKeys {
    /// Signs checkpoints; its name is the log's origin.
    pub log: NoteSigner,
    /// Signs the broker's events (grants, expiries, alerts).
    pub broker: SigningKey,
}

impl fmt::Debug for SystemKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemKeys")
            .field("log", &self.log.name())
            .field("broker", &public_key(&self.broker))
            .finish()
    }
}

/// What a new request asks for.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Target name.
    pub target: String,
    /// Role; the target's default role when `None`.
    pub role: Option<String>,
    /// How long access should last.
    pub duration: Span,
    /// Why.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Emergency self-activation.
    pub break_glass: bool,
    /// The active grant this extends.
    pub extends: Option<RequestId>,
    /// What the target's connector needs from the requester (see [`Credential`]).
    pub credential: Option<Credential>,
}

/// The result of a command that touches a request.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The request.
    pub request: RequestId,
    /// Its state after the command.
    pub state: Status,
    /// Its deadline, once granted.
    pub deadline: Option<Timestamp>,
    /// Log size after the command.
    pub log_size: u64,
    /// Set when the command found nothing to do (e.g. revoking an ended grant).
    pub unchanged: bool,
    /// A connector problem the command ran into after its decision was recorded.
    pub warning: Option<String>,
}

pub(crate) struct Pending<'a> {
    pub(crate) signer: Signer<'a>,
    pub(crate) body: EventBody,
    pub(crate) not_before: Option<Timestamp>,
}

/// The broker's loud alert on a break-glass activation by `requester`, or, when it `awaits` an
/// approval (no fresh sign-in), on its asking for one.
fn break_glass_alert(
    requester: &str,
    target: &str,
    duration: Span,
    id: RequestId,
    awaits: bool,
) -> Pending<'static> {
    let message = if awaits {
        format!(
            "{requester} asked for break-glass access to {target} for {duration} without a \
             fresh sign-in with their identity provider: it waits for one approval, which an \
             approver may sign offline (`breakglass approve {id} --offline`); a review is \
             required"
        )
    } else {
        format!(
            "{requester} activated break-glass access to {target} for {duration}; a review is \
             required"
        )
    };
    Pending {
        signer: Signer::Broker,
        body: EventBody::Alert {
            request: Some(id),
            kind: AlertKind::BreakGlassActivated,
            message,
        },
        not_before: None,
    }
}

pub(crate) enum Signer<'a> {
    Actor(&'a Actor),
    Broker,
}

/// What an engine holds of the log's own keys.
enum Keys {
    /// The checkpoint key and the broker's key: an embedded log's app and CLI, and the broker.
    System(Box<SystemKeys>),
    /// Only the checkpoint key's verifier: an app or the CLI in team mode. It appends its
    /// people's signed events; the broker verifies them, covers them with checkpoints, grants
    /// and ends access.
    Member(Box<NoteVerifier>),
}

/// One log, opened for commands.
pub struct Engine {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    keys: Keys,
    state: LogState,
    /// The largest log size a checkpoint verified here covers. Unlike the in-memory copy it
    /// survives [`Engine::forget`], so a store that later holds fewer covered entries, or an
    /// older newest checkpoint, is caught as truncated.
    verified: u64,
    /// The Merkle root after each entry past `verified` (entries a member appended or read that
    /// no checkpoint covers yet), to check the checkpoint that will cover them.
    uncovered: Vec<(u64, [u8; 32])>,
    frontier: Frontier,
    /// Connectors built so far, by policy version and target (building one reads its secrets
    /// and may open connection pools).
    connectors: HashMap<(u64, String), Arc<dyn Connector>>,
    /// A member's local copy of what it verified, and the newest checkpoint verified since it
    /// was last brought up to date (with its root).
    replica: Option<Replica>,
    to_copy: Option<(StoredCheckpoint, Hash)>,
    /// A member's own entries no checkpoint covers yet, by index, with their leaf hashes. The
    /// broker never removes them (a member never appends on top of an entry that fails), so
    /// one that goes missing or changes was removed by someone writing to the database.
    own: Vec<(u64, Hash)>,
    /// The state as last read, kept when the copy is dropped (a read that failed verification,
    /// an append that failed part-way) until a read verifies again: the grants it holds still
    /// end at their deadlines ([`Engine::end_due_unrecorded`]), since no database writer may
    /// keep access alive by breaking the log.
    pub(crate) last_known: Option<LogState>,
    /// Grants whose revoke a connector confirmed while the log could not be verified, so not
    /// yet recorded in it, with when that revoke started and was confirmed: once it verifies,
    /// their end is recorded without a second revoke.
    pub(crate) revoked_unrecorded: HashMap<RequestId, (Timestamp, Timestamp)>,
    /// Team mode: cosigning verified checkpoints and checking the other members' cosignatures
    /// ([`crate::witness`]).
    pub(crate) witness: crate::witness::Witnessing,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Creates a new log in an empty store: the first entry, signed by `admin`, names the log,
    /// its checkpoint key, the first administrator and the broker.
    pub async fn create(
        store: Store,
        clock: Arc<dyn Clock>,
        keys: SystemKeys,
        admin: &Actor,
    ) -> Result<Engine, EngineError> {
        if store.size().await? != 0 {
            return Err(EngineError::Setup(
                "the database already holds a log; open it instead of creating one".into(),
            ));
        }
        let origin = keys.log.name().to_owned();
        let body = EventBody::LogCreated {
            origin: origin.clone(),
            log_key: keys.log.verifier().vkey(),
            admin: IdentityRecord {
                name: admin.name.clone(),
                key: admin.public_key(),
                groups: [breakglass_core::ADMIN_GROUP.to_owned()].into(),
                binding: Binding::Local,
            },
            broker: IdentityRecord {
                name: "broker".into(),
                key: public_key(&keys.broker),
                groups: Default::default(),
                binding: Binding::Local,
            },
        };
        let mut engine = Engine::unloaded(store, clock, Keys::System(Box::new(keys)));
        engine
            .commit(vec![Pending {
                signer: Signer::Actor(admin),
                body,
                not_before: None,
            }])
            .await?;
        Ok(engine)
    }

    fn unloaded(store: Store, clock: Arc<dyn Clock>, keys: Keys) -> Engine {
        Engine {
            store: Arc::new(store),
            clock,
            keys,
            state: LogState::new(),
            verified: 0,
            uncovered: Vec::new(),
            frontier: Frontier::new(),
            connectors: HashMap::new(),
            replica: None,
            to_copy: None,
            own: Vec::new(),
            last_known: None,
            revoked_unrecorded: HashMap::new(),
            witness: Default::default(),
        }
    }

    /// Opens an existing log, verifying all of it: every signature, every rule, and the Merkle
    /// root against the newest checkpoint signed by the log key.
    pub async fn open(
        store: Store,
        clock: Arc<dyn Clock>,
        keys: SystemKeys,
    ) -> Result<Engine, EngineError> {
        Engine::load(Engine::unloaded(store, clock, Keys::System(Box::new(keys)))).await
    }

    /// Opens a team's log as a member (an app or the CLI on the shared database), holding only
    /// the log's checkpoint verifier, verifying all of it as [`Engine::open`] does. A member
    /// appends its people's signed events without checkpoints; the broker, which holds the
    /// log's key, verifies and covers them ([`Engine::integrate`]), and alone grants and ends
    /// access.
    pub async fn join(
        store: Store,
        clock: Arc<dyn Clock>,
        log: NoteVerifier,
    ) -> Result<Engine, EngineError> {
        Engine::load(Engine::unloaded(store, clock, Keys::Member(Box::new(log)))).await
    }

    /// [`Engine::join`] keeping a local copy of the verified log at `replica` (a SQLite file,
    /// created when absent): the shared log must extend what was verified before, across
    /// restarts, or it is refused as rewritten, truncated or forked.
    pub async fn join_with_replica(
        store: Store,
        clock: Arc<dyn Clock>,
        log: NoteVerifier,
        replica: &Path,
    ) -> Result<Engine, EngineError> {
        let copy = Replica::open(replica, &log).await?;
        let mut engine = Engine::unloaded(store, clock, Keys::Member(Box::new(log)));
        engine.replica = Some(copy);
        Engine::load(engine).await
    }

    async fn load(mut engine: Engine) -> Result<Engine, EngineError> {
        if engine.is_member() && !engine.members_append() {
            return Err(EngineError::Setup(
                "joining a team's log needs its shared PostgreSQL database (postgres://…)".into(),
            ));
        }
        if engine.is_member() || !engine.members_append() {
            engine.refresh().await?;
        } else {
            // The broker (or an admin beside it) on a team's log: the covered prefix only, so a
            // row written into the database past it cannot keep the broker from starting; its
            // first pass verifies the rest ([`Engine::integrate`]).
            let checkpoint = engine.store.latest_checkpoint().await?;
            let covered = checkpoint.as_ref().map_or(0, |c| c.size);
            engine.catch_up(covered, checkpoint, None).await?;
        }
        if engine.state.is_empty() {
            return Err(EngineError::Setup(
                "the database holds no log yet; run `breakglass init` first".into(),
            ));
        }
        Ok(engine)
    }

    /// The replayed state.
    pub fn state(&self) -> &LogState {
        &self.state
    }

    /// Puts `state` in place of the replayed state and returns the one it replaces (the
    /// scheduler's fail-safe revokes run over the state last read).
    pub(crate) fn replace_state(&mut self, state: LogState) -> LogState {
        std::mem::replace(&mut self.state, state)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The checkpoint key's verifier.
    pub fn log_verifier(&self) -> NoteVerifier {
        match &self.keys {
            Keys::System(keys) => keys.log.verifier(),
            Keys::Member(verifier) => (**verifier).clone(),
        }
    }

    /// Whether this engine is a team member: it holds no system key, so it neither signs
    /// checkpoints nor grants or ends access (the broker does).
    pub fn is_member(&self) -> bool {
        matches!(self.keys, Keys::Member(_))
    }

    /// How many entries the newest checkpoint verified here covers: entries past it were
    /// appended by team members and await the broker's checkpoint.
    pub fn covered(&self) -> u64 {
        self.verified
    }

    /// Whether team members may append entries the broker covers later: only on a shared
    /// PostgreSQL database (team mode). On an embedded SQLite log every append carries its
    /// checkpoint.
    pub(crate) fn members_append(&self) -> bool {
        self.store.backend() == breakglass_store::Backend::Postgres
    }

    fn system_keys(&self, what: &str) -> Result<&SystemKeys, EngineError> {
        match &self.keys {
            Keys::System(keys) => Ok(keys),
            Keys::Member(_) => Err(EngineError::Invalid(format!(
                "{what} is the broker's: in team mode this app holds none of the log's keys"
            ))),
        }
    }

    /// The current time: the clock's, but never earlier than the newest event in the log, so a
    /// wall clock that jumps backwards cannot postpone an expiry or back-date an event.
    pub fn now(&self) -> Timestamp {
        let now = self.clock.now();
        self.state.last_time().map_or(now, |last| now.max(last))
    }

    /// Closes the log's database connections and waits until they are closed (dropping the
    /// engine closes them in the background).
    pub async fn close(self) {
        if let Ok(store) = Arc::try_unwrap(self.store) {
            store.close().await;
        }
        if let Some(replica) = self.replica {
            replica.close().await;
        }
    }

    /// Reads entries appended by other processes and verifies them, with the newest checkpoint.
    /// On a team's log it also checks the members' cosignatures and, for a witness, cosigns
    /// the newest checkpoint verified ([`crate::witness`]).
    pub async fn refresh(&mut self) -> Result<(), EngineError> {
        let (size, checkpoint) = self.store.head().await?;
        self.catch_up(size, checkpoint, None).await?;
        if self.members_append() {
            self.witness_pass().await?;
        }
        Ok(())
    }

    /// Brings the in-memory copy up to the store's `size` entries and its newest `checkpoint`,
    /// reading through `tx` when one is held.
    async fn catch_up(
        &mut self,
        size: u64,
        checkpoint: Option<StoredCheckpoint>,
        tx: Option<&mut breakglass_store::AppendTx<'_>>,
    ) -> Result<(), EngineError> {
        self.check_not_shrunk(size, checkpoint.as_ref())?;
        if size < self.size() {
            // Entries read here past the newest checkpoint are gone (the broker removed an entry
            // that failed verification, and what was appended on top of it): read it all again.
            self.forget();
        }
        let have = self.size();
        let newer = checkpoint.as_ref().is_some_and(|c| c.size > self.verified);
        if size > have || newer {
            let stored = match tx {
                Some(tx) => tx.entries(have, size).await?,
                None => self.store.entries(have, size).await?,
            };
            self.absorb(have, stored, checkpoint)?;
        }
        if let (Some(replica), Some((checkpoint, root))) = (&mut self.replica, self.to_copy.take())
        {
            replica.copy(&checkpoint, root).await?;
        }
        let size = self.size();
        if let Some(&(index, _)) = self.own.iter().find(|(i, _)| *i >= size) {
            // Reported once: what the database holds now is what is read from here on.
            self.own.clear();
            return Err(EngineError::Tampered(format!(
                "entry {index}, which this app appended, was removed from the shared database \
                 before the broker covered it (the broker never removes a member's valid entry)"
            )));
        }
        Ok(())
    }

    fn check_not_shrunk(
        &self,
        stored_size: u64,
        checkpoint: Option<&StoredCheckpoint>,
    ) -> Result<(), EngineError> {
        // A member's local copy holds what it verified before it started.
        let verified = self
            .verified
            .max(self.replica.as_ref().map_or(0, Replica::size));
        if stored_size < verified {
            return Err(EngineError::Tampered(format!(
                "the log shrank from {verified} to {stored_size} entries"
            )));
        }
        let covered = checkpoint.map_or(0, |c| c.size);
        if covered < verified {
            return Err(EngineError::Tampered(format!(
                "the newest checkpoint went back from {verified} to {covered} entries"
            )));
        }
        Ok(())
    }

    /// Drops the in-memory copy of the log after a failure that may have left it ahead of the
    /// store; the next refresh or commit re-reads and re-verifies everything.
    fn forget(&mut self) {
        let known = std::mem::replace(&mut self.state, LogState::new());
        if !known.is_empty() {
            self.last_known = Some(known);
        }
        self.frontier = Frontier::new();
        self.witness.drop_leaves();
        self.uncovered.clear();
        self.to_copy = None;
        if let Some(replica) = &mut self.replica {
            replica.drop_held();
        }
    }

    /// Verifies and applies entries other writers appended, and the newest checkpoint. On any
    /// failure the in-memory copy is dropped rather than left half-updated.
    fn absorb(
        &mut self,
        from: u64,
        stored: Vec<breakglass_store::StoredEntry>,
        checkpoint: Option<StoredCheckpoint>,
    ) -> Result<(), EngineError> {
        let result = self.absorb_verified(from, stored, checkpoint);
        match result {
            Ok(()) => self.last_known = None,
            Err(_) => self.forget(),
        }
        result
    }

    fn absorb_verified(
        &mut self,
        from: u64,
        stored: Vec<breakglass_store::StoredEntry>,
        checkpoint: Option<StoredCheckpoint>,
    ) -> Result<(), EngineError> {
        for (i, s) in stored.iter().enumerate() {
            let index = from + i as u64;
            if s.index != index {
                return Err(EngineError::Tampered(format!(
                    "entry {index} is missing from the store"
                )));
            }
        }
        let lines: Vec<&[u8]> = stored.iter().map(|s| s.bytes.as_slice()).collect();
        let covers = checkpoint.as_ref().map_or(0, |c| c.size);
        // The state is taken out while the entries are replayed onto it, so that each entry's
        // own checks (`absorb_one`) may borrow the engine.
        let mut state = std::mem::replace(&mut self.state, LogState::new());
        let replayed = replay_lines(&mut state, &lines, from, |index, e| {
            self.absorb_one(index, e, covers)
        });
        self.state = state;
        replayed?;
        if !self.members_append() && covers != self.size() {
            // Embedded: every append carries its checkpoint, so an entry none covers was written
            // past the engine.
            return Err(EngineError::Tampered(format!(
                "no signed checkpoint covers the {} entries",
                self.size()
            )));
        }
        self.check_checkpoint(checkpoint)
    }

    /// The checks and bookkeeping of entry `index` read from the store, once it has been
    /// verified and replayed: it must be the entry this app appended there, if it did, and the
    /// tree (and a team member's local copy) grows by it.
    fn absorb_one(&mut self, index: u64, e: &Entry<&[u8]>, covers: u64) -> Result<(), EngineError> {
        if self
            .own
            .iter()
            .any(|(i, leaf)| *i == index && leaf != e.leaf_hash())
        {
            self.own.clear();
            return Err(EngineError::Tampered(format!(
                "entry {index}, which this app appended, was replaced in the shared \
                 database before the broker covered it"
            )));
        }
        self.push_leaf(*e.leaf_hash(), covers);
        if let Some(replica) = &mut self.replica {
            replica.check(&self.frontier)?;
            replica.hold(index, e.bytes());
        }
        Ok(())
    }

    /// Adds a leaf to the tree, keeping the root of every size from `keep_from` on (the sizes a
    /// checkpoint yet to be checked may cover).
    fn push_leaf(&mut self, leaf: [u8; 32], keep_from: u64) {
        self.frontier.push(leaf);
        if self.members_append() {
            self.witness.leaves.push(leaf);
        }
        if self.frontier.size() >= keep_from.max(self.verified) {
            self.uncovered
                .push((self.frontier.size(), self.frontier.root()));
        }
    }

    /// Checks the store's newest checkpoint against the tree held here: signed by the log's key
    /// (this data directory's, never one the database names) over exactly the root of the size
    /// it claims.
    fn check_checkpoint(
        &mut self,
        checkpoint: Option<StoredCheckpoint>,
    ) -> Result<(), EngineError> {
        let size = self.size();
        let Some(stored) = checkpoint else {
            return Err(EngineError::Tampered(format!(
                "no signed checkpoint covers any of the {size} entries"
            )));
        };
        // A database swapped for a forged log with its own genesis and key must fail here, on
        // every (re)read, not only when the engine is opened.
        let verifier = self.log_verifier();
        if self.state.log_key() != Some(verifier.vkey().as_str()) {
            return Err(EngineError::Tampered(
                "the log was created with a different checkpoint key than the one this app trusts"
                    .into(),
            ));
        }
        let cp = verifier
            .verify_checkpoint(&stored.note)
            .map_err(|e| EngineError::Tampered(format!("checkpoint {}: {e}", stored.size)))?;
        let root = self
            .uncovered
            .iter()
            .find(|(at, _)| *at == stored.size)
            .map(|(_, root)| *root);
        match root {
            Some(root) if cp.size == stored.size && cp.root == root => {}
            _ => {
                return Err(EngineError::Tampered(format!(
                    "the entries do not hash to the signed checkpoint of size {}",
                    stored.size
                )))
            }
        }
        if self.replica.is_some() {
            self.to_copy = Some((stored, cp.root));
        }
        self.covered_up_to(cp.size);
        self.witness.verified(cp);
        Ok(())
    }

    /// Records that a verified checkpoint covers the first `size` entries: the roots and own
    /// entries kept for the ones no checkpoint covered are no longer needed.
    fn covered_up_to(&mut self, size: u64) {
        self.verified = self.verified.max(size);
        self.uncovered.retain(|(at, _)| *at >= size);
        self.own.retain(|(i, _)| *i >= size);
    }

    /// Signs and appends events atomically: under the store's writer lock, catches up with
    /// other writers, applies every event to the state (refusing the batch on the first broken
    /// rule), signs a checkpoint over the new tree (a team member leaves that to the broker)
    /// and commits durably. A refused first event changes nothing; any later failure drops the
    /// in-memory copy (see [`Engine::forget`]).
    pub(crate) async fn commit(&mut self, pending: Vec<Pending<'_>>) -> Result<u64, EngineError> {
        let store = Arc::clone(&self.store);
        let mut tx = store.begin_append().await?;
        let size = tx.size().await?;
        // On an embedded log nothing covers entries without appending them, so when no one else
        // appended, the newest checkpoint is the one this engine wrote and verified: it is read
        // again only when the log moved (in team mode the broker covers without appending).
        if self.members_append() || size != self.size() || self.verified != size {
            let checkpoint = tx.latest_checkpoint().await?;
            self.catch_up(size, checkpoint, Some(&mut tx)).await?;
        }
        let mut touched = false;
        let result = self.append_batch(tx, size, pending, &mut touched).await;
        if result.is_err() && touched {
            // The in-memory copy may be ahead of the store: drop it and re-read what is
            // durable, so the next command sees the log as it is (if this read fails too, the
            // next command's own read tries again).
            self.forget();
            let _ = self.refresh().await;
        }
        result
    }

    /// Team mode, the broker: verifies the entries members appended since the newest
    /// checkpoint, one by one, and covers them with a checkpoint. An entry that fails (a bad
    /// signature or a broken rule: a row written into the database directly) is removed with
    /// everything appended on top of it — no checkpoint ever covered them — and an
    /// [`AlertKind::EntryRefused`] alert saying what and why is recorded and covered instead.
    /// Returns that alert's text, if there was one.
    pub async fn integrate(&mut self) -> Result<Option<String>, EngineError> {
        self.system_keys("covering members' entries with checkpoints")?;
        if !self.members_append() {
            // Embedded: there are no members; an uncovered entry is refused, never covered.
            self.refresh().await?;
            return Ok(None);
        }
        // Without the writer lock first: most passes find nothing uncovered.
        let (size, checkpoint) = self.store.head().await?;
        if checkpoint.as_ref().map_or(0, |c| c.size) == size {
            self.catch_up(size, checkpoint, None).await?;
            return Ok(None);
        }
        let store = Arc::clone(&self.store);
        let mut tx = store.begin_append().await?;
        let checkpoint = tx.latest_checkpoint().await?;
        let size = tx.size().await?;
        let covered = checkpoint.as_ref().map_or(0, |c| c.size);
        // The signed prefix the usual way; the tail is what members appended since.
        self.catch_up(covered, checkpoint, Some(&mut tx)).await?;
        if size == covered {
            return Ok(None);
        }
        let tail = tx.entries(covered, size).await?;
        let mut refused = None;
        // Members' break-glass activations, whose alert is the broker's to record.
        let mut activations = Vec::new();
        for (offset, stored) in (0u64..).zip(&tail) {
            let index = covered + offset;
            let checked = if stored.index != index {
                Err(format!("entry {index} is missing"))
            } else {
                decode_all(&[stored.bytes.as_slice()])
                    .map_err(|(_, error)| format!("entry {index}: {error}"))
                    .and_then(|entries| {
                        let entry = &entries[0];
                        breakglass_ledger::replay_one(&mut self.state, entry, index)
                            .map_err(|v| v.to_string())?;
                        if let EventBody::AccessRequested {
                            request,
                            break_glass: true,
                            ..
                        } = &entry.event().body
                        {
                            activations.push(*request);
                        }
                        Ok(*entry.leaf_hash())
                    })
            };
            match checked {
                Ok(leaf) => self.push_leaf(leaf, covered),
                Err(why) => {
                    refused = Some((index, why));
                    break;
                }
            }
        }
        let Some((index, why)) = refused else {
            let result = if activations.is_empty() {
                self.cover(tx, size).await
            } else {
                // The alerts, covered with the members' entries by one checkpoint.
                let alerts = activations
                    .iter()
                    .filter_map(|id| self.state.request(id))
                    .map(|r| {
                        break_glass_alert(
                            &r.requester,
                            &r.target,
                            r.duration,
                            r.id,
                            r.status == Status::Pending,
                        )
                    })
                    .collect();
                let mut touched = false;
                self.append_batch(tx, size, alerts, &mut touched)
                    .await
                    .map(|_| ())
            };
            if result.is_err() {
                self.forget();
            }
            return result.map(|()| None);
        };
        let removed = tx.remove_uncovered(index).await?;
        let mut message = format!(
            "entry {index} in the shared database failed verification and was removed with the \
             {} entries after it, before any checkpoint covered them: {why}",
            removed.saturating_sub(1)
        );
        if message.chars().count() > 1000 {
            message = message.chars().take(999).chain(['…']).collect();
        }
        let alert = Pending {
            signer: Signer::Broker,
            body: EventBody::Alert {
                kind: AlertKind::EntryRefused,
                message: message.clone(),
                request: None,
            },
            not_before: None,
        };
        let mut touched = false;
        let result = self
            .append_batch(tx, index, vec![alert], &mut touched)
            .await;
        if result.is_err() {
            self.forget();
            let _ = self.refresh().await;
        }
        result.map(|_| Some(message))
    }

    /// Signs a checkpoint over the whole tree held here (the store's `size` entries) and stores
    /// it alone, covering entries members appended.
    async fn cover(
        &mut self,
        mut tx: breakglass_store::AppendTx<'_>,
        size: u64,
    ) -> Result<(), EngineError> {
        let keys = self.system_keys("covering members' entries with checkpoints")?;
        let note = keys
            .log
            .sign_checkpoint(&Checkpoint {
                origin: keys.log.name().to_owned(),
                size,
                root: self.frontier.root(),
                extensions: Vec::new(),
            })
            .map_err(|e| EngineError::Setup(format!("cannot sign the checkpoint: {e}")))?;
        tx.cover(&StoredCheckpoint { size, note }).await?;
        tx.commit().await?;
        self.covered_up_to(size);
        Ok(())
    }

    async fn append_batch(
        &mut self,
        mut tx: breakglass_store::AppendTx<'_>,
        size: u64,
        pending: Vec<Pending<'_>>,
        touched: &mut bool,
    ) -> Result<u64, EngineError> {
        let mut bytes = Vec::with_capacity(pending.len());
        let mut leaves = Vec::with_capacity(pending.len());
        let origin = self
            .state
            .origin()
            .map(str::to_owned)
            .or_else(|| match &self.keys {
                Keys::System(keys) => Some(keys.log.name().to_owned()),
                Keys::Member(_) => None,
            })
            .ok_or_else(|| EngineError::Setup("the log has no origin yet".into()))?;
        for p in pending {
            let mut time = self.clock.now();
            for floor in [self.state.last_time(), p.not_before].into_iter().flatten() {
                time = time.max(floor);
            }
            let (actor, key) = match p.signer {
                Signer::Actor(a) => (a.name.clone(), &a.key),
                Signer::Broker => (
                    self.state.broker().unwrap_or("broker").to_owned(),
                    &self.system_keys("signing the broker's events")?.broker,
                ),
            };
            let event = Event {
                v: EVENT_FORMAT,
                log: origin.clone(),
                time,
                actor,
                body: p.body,
            };
            let entry = Entry::sign(event, key).map_err(|e| EngineError::Invalid(e.to_string()))?;
            self.state.apply(VerifiedEvent {
                event: entry.event(),
                signer: entry.key(),
                leaf_hash: entry.leaf_hash(),
            })?;
            *touched = true;
            self.push_leaf(*entry.leaf_hash(), self.verified);
            leaves.push(*entry.leaf_hash());
            bytes.push(entry.bytes().to_vec());
        }
        let new_size = self.size();
        let Keys::System(keys) = &self.keys else {
            // A member: the broker verifies these entries and covers them with its checkpoint.
            tx.append_uncovered(size, &bytes).await?;
            tx.commit().await?;
            self.own.extend((size..).zip(leaves));
            if let Some(replica) = &mut self.replica {
                for (index, b) in (size..).zip(&bytes) {
                    replica.hold(index, b);
                }
            }
            return Ok(new_size);
        };
        let note = keys
            .log
            .sign_checkpoint(&Checkpoint {
                origin,
                size: new_size,
                root: self.frontier.root(),
                extensions: Vec::new(),
            })
            .map_err(|e| EngineError::Setup(format!("cannot sign the checkpoint: {e}")))?;
        tx.append(
            size,
            &bytes,
            &StoredCheckpoint {
                size: new_size,
                note,
            },
        )
        .await?;
        tx.commit().await?;
        self.covered_up_to(new_size);
        Ok(new_size)
    }

    /// Enrols an identity (admin only).
    pub async fn enrol(
        &mut self,
        admin: &Actor,
        name: &str,
        key: PublicKey,
        groups: impl IntoIterator<Item = String>,
    ) -> Result<u64, EngineError> {
        let identity = IdentityRecord {
            name: name.to_owned(),
            key,
            groups: groups.into_iter().collect(),
            binding: Binding::Local,
        };
        self.commit(vec![Pending {
            signer: Signer::Actor(admin),
            body: EventBody::IdentityEnrolled { identity },
            not_before: None,
        }])
        .await
    }

    /// Revokes an identity (admin only): its key signs nothing from now on and it is in no group.
    pub async fn revoke_identity(
        &mut self,
        admin: &Actor,
        name: &str,
        reason: String,
    ) -> Result<u64, EngineError> {
        self.commit(vec![Pending {
            signer: Signer::Actor(admin),
            body: EventBody::IdentityRevoked {
                name: name.to_owned(),
                reason,
            },
            not_before: None,
        }])
        .await
    }

    /// Applies a policy (admin only). The policy's problems are reported with line and column.
    pub async fn apply_policy(&mut self, admin: &Actor, source: &str) -> Result<u64, EngineError> {
        let policy = Policy::parse(source).map_err(EngineError::Policy)?;
        self.commit(vec![Pending {
            signer: Signer::Actor(admin),
            body: EventBody::PolicyApplied {
                version: policy.version,
                source: source.to_owned(),
            },
            not_before: None,
        }])
        .await
    }

    /// Enrols (or re-enrols with a new key) a person who signed in at identity provider
    /// `provider`: the broker records the provider's ID token, whose nonce names `key`, with
    /// the provider's key set that checked it.
    pub async fn enrol_from_provider(
        &mut self,
        provider: &str,
        name: &str,
        key: PublicKey,
        subject: &str,
        id_token: &str,
        jwks: &str,
    ) -> Result<u64, EngineError> {
        let identity = self.provider_identity(provider, name, key, subject, id_token, jwks)?;
        self.commit(vec![Pending {
            signer: Signer::Broker,
            body: EventBody::IdentityEnrolled { identity },
            not_before: None,
        }])
        .await
    }

    /// Team mode: `actor`, who signed in at identity provider `provider`, enrols their own key
    /// (the actor's), signing the enrolment with it. The log accepts it only when the ID token
    /// verifies against provider keys the broker or an administrator recorded, and its nonce
    /// names the key; `jwks` (the key set fetched here) is recorded with it but not trusted.
    pub async fn enrol_own(
        &mut self,
        actor: &Actor,
        provider: &str,
        subject: &str,
        id_token: &str,
        jwks: &str,
    ) -> Result<u64, EngineError> {
        let identity = self.provider_identity(
            provider,
            actor.name(),
            actor.public_key(),
            subject,
            id_token,
            jwks,
        )?;
        self.commit(vec![Pending {
            signer: Signer::Actor(actor),
            body: EventBody::IdentityEnrolled { identity },
            not_before: None,
        }])
        .await
    }

    fn provider_identity(
        &self,
        provider: &str,
        name: &str,
        key: PublicKey,
        subject: &str,
        id_token: &str,
        jwks: &str,
    ) -> Result<IdentityRecord, EngineError> {
        let issuer = self
            .state
            .policy()
            .and_then(|p| p.policy.provider(provider))
            .map(|p| p.issuer.clone())
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "identity provider {provider:?} is not in the policy in force"
                ))
            })?;
        Ok(IdentityRecord {
            name: name.to_owned(),
            key,
            groups: Default::default(),
            binding: Binding::Oidc(Box::new(breakglass_core::OidcBinding {
                id_token: id_token.to_owned(),
                issuer,
                jwks: jwks.to_owned(),
                provider: provider.to_owned(),
                subject: subject.to_owned(),
            })),
        })
    }

    /// Records an identity provider's current key set (after a key rotation), unless every key
    /// in it is already recorded. Returns whether an event was appended.
    pub async fn record_provider_keys(
        &mut self,
        provider: &str,
        jwks: &str,
    ) -> Result<bool, EngineError> {
        let fresh = breakglass_core::jose::Jwks::parse(jwks)
            .map_err(|e| EngineError::Invalid(format!("key set of {provider}: {e}")))?;
        let known = self.state.provider_keys(provider);
        if known.is_some_and(|k| fresh.kids().all(|kid| k.contains(kid))) {
            return Ok(false);
        }
        self.commit(vec![Pending {
            signer: Signer::Broker,
            body: EventBody::ProviderKeysRecorded {
                jwks: jwks.to_owned(),
                provider: provider.to_owned(),
            },
            not_before: None,
        }])
        .await?;
        Ok(true)
    }

    /// Signs an offline approval of break-glass request `id` by `approver`, valid for `ttl`
    /// (at most 15 minutes). Nothing is appended: the requester or the broker imports it.
    /// The checks the import will make are made now too, so a token that would be refused is
    /// never handed out.
    pub fn offline_approval(
        &self,
        approver: &Actor,
        id: &RequestId,
        ttl: Span,
    ) -> Result<String, EngineError> {
        let max = Span::from_secs(breakglass_core::offline::MAX_OFFLINE_APPROVAL_TTL_SECS);
        if ttl > max || ttl.as_secs() == 0 {
            return Err(EngineError::Invalid(format!(
                "an offline approval is valid for 1s to {max}; {ttl} was asked for"
            )));
        }
        let issued = self.now();
        let approval = breakglass_core::offline::OfflineApproval {
            approver: approver.name.clone(),
            expires: issued
                .checked_add(ttl)
                .ok_or(breakglass_core::Refusal::TimeOutOfRange)?,
            issued,
            log: self.state.origin().unwrap_or_default().to_owned(),
            request: *id,
            request_digest: self.digest_of(id)?,
        };
        let token = approval.sign(&approver.key);
        let requester = self
            .state
            .request(id)
            .map(|r| r.requester.clone())
            .ok_or(breakglass_core::Refusal::UnknownRequest(*id))?;
        // Dry run of the import as the requester would make it (on a copy of the state).
        let requester_key = self
            .state
            .identity(&requester)
            .map(|i| i.record.key)
            .ok_or_else(|| breakglass_core::Refusal::UnknownIdentity(requester.clone()))?;
        let trial = Event {
            v: EVENT_FORMAT,
            log: approval.log.clone(),
            time: issued,
            actor: requester,
            body: EventBody::OfflineApprovalImported {
                request: *id,
                token: token.clone(),
            },
        };
        self.state.clone().apply(VerifiedEvent {
            event: &trial,
            signer: &requester_key,
            leaf_hash: &[0; 32],
        })?;
        Ok(token)
    }

    /// Imports an offline approval token; `importer` must be the request's requester (the
    /// broker imports it otherwise). Grants the request when it is then approved.
    pub async fn import_offline_approval(
        &mut self,
        importer: &Actor,
        token: &str,
    ) -> Result<Outcome, EngineError> {
        let (approval, _) = breakglass_core::offline::OfflineApproval::decode(token)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let id = approval.request;
        let requester = self
            .state
            .request(&id)
            .map(|r| r.requester.clone())
            .ok_or(breakglass_core::Refusal::UnknownRequest(id))?;
        let signer = if requester == importer.name {
            Signer::Actor(importer)
        } else {
            Signer::Broker
        };
        self.commit(vec![Pending {
            signer,
            body: EventBody::OfflineApprovalImported {
                request: id,
                token: token.trim().to_owned(),
            },
            not_before: None,
        }])
        .await?;
        let warning = self.grant_once(&id).await?;
        Ok(self.outcome(&id, false, warning))
    }

    /// Whether `token` (not verified here: the log's rules check it) says its sign-in is recent
    /// enough for decisions under the policy in force.
    pub fn sign_in_is_fresh(&self, token: &str) -> bool {
        crate::signin::signed_in_at(token)
            .is_some_and(|at| self.now().millis_since(at) <= self.state.max_auth_age().as_millis())
    }

    /// Requests access. A break-glass request is granted at once, raises an alert and owes a
    /// review.
    pub async fn request(
        &mut self,
        actor: &Actor,
        req: NewRequest,
    ) -> Result<Outcome, EngineError> {
        let policy = self
            .state
            .policy()
            .ok_or(breakglass_core::Refusal::NoPolicy)?;
        let version = policy.policy.version;
        let target = policy
            .policy
            .target(&req.target)
            .ok_or_else(|| breakglass_core::Refusal::UnknownTarget(req.target.clone()))?;
        let role = req.role.unwrap_or_else(|| target.default_role().to_owned());
        // A pasted key often ends in a newline; what is signed is the line itself.
        let credential = req.credential.map(|c| match c {
            Credential::SshPublicKey(key) => Credential::SshPublicKey(key.trim().to_owned()),
            other => other,
        });
        // A token is sealed to the requester's own sealing key unless they name another.
        let credential = match (credential, target.connector.credential()) {
            (None, Some(CredentialKind::SealKey)) => Some(Credential::SealKey(
                actor.seal_key().public_key().to_string(),
            )),
            (given, _) => given,
        };
        if let Some(credential) = &credential {
            // Core checks the shape and whether the connector needs one; this checks the key or
            // verifier in full, so a request whose grant could never work is not recorded.
            if credential.shape_problem().is_none() {
                breakglass_connectors::check_credential(&target.connector, Some(credential))
                    .map_err(|e| breakglass_core::Refusal::Credential {
                        target: req.target.clone(),
                        why: e.to_string(),
                    })?;
            }
        }
        // A stale sign-in is left out of a break-glass activation, which then waits for one
        // approval (possibly offline) instead of failing: the provider may be down.
        let auth = match &actor.sign_in {
            Some(token) if req.break_glass && !self.sign_in_is_fresh(token) => None,
            other => other.clone(),
        };
        let mut random = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let id = RequestId::from_random(random);
        // Without a fresh sign-in, a provider person's activation waits for one approval.
        let awaits_approval = req.break_glass
            && auth.is_none()
            && self
                .state
                .identity(&actor.name)
                .is_some_and(|i| i.record.binding.oidc().is_some());
        let mut batch = vec![Pending {
            signer: Signer::Actor(actor),
            body: EventBody::AccessRequested {
                auth,
                request: id,
                target: req.target.clone(),
                role,
                duration: req.duration,
                reason: req.reason,
                ticket: req.ticket,
                break_glass: req.break_glass,
                credential,
                extends: req.extends,
                policy_version: version,
            },
            not_before: None,
        }];
        // The alert is the broker's; in team mode it records it on verifying the request.
        if req.break_glass && !self.is_member() {
            batch.push(break_glass_alert(
                &actor.name,
                &req.target,
                req.duration,
                id,
                awaits_approval,
            ));
        }
        self.commit(batch).await?;
        let warning = self.grant_once(&id).await?;
        Ok(self.outcome(&id, false, warning))
    }

    /// Approves a pending request; grants it when quorum is met.
    pub async fn approve(
        &mut self,
        actor: &Actor,
        id: &RequestId,
        comment: Option<String>,
    ) -> Result<Outcome, EngineError> {
        let digest = self.digest_of(id)?;
        self.commit(vec![Pending {
            signer: Signer::Actor(actor),
            body: EventBody::RequestApproved {
                auth: actor.sign_in.clone(),
                request: *id,
                request_digest: digest,
                comment,
            },
            not_before: None,
        }])
        .await?;
        let warning = self.grant_once(id).await?;
        Ok(self.outcome(id, false, warning))
    }

    /// Denies a pending request; one denial ends it.
    pub async fn deny(
        &mut self,
        actor: &Actor,
        id: &RequestId,
        reason: String,
    ) -> Result<Outcome, EngineError> {
        let digest = self.digest_of(id)?;
        self.single(
            actor,
            EventBody::RequestDenied {
                request: *id,
                request_digest: digest,
                reason,
            },
            id,
        )
        .await
    }

    /// Withdraws the actor's own pending request.
    pub async fn cancel(&mut self, actor: &Actor, id: &RequestId) -> Result<Outcome, EngineError> {
        self.single(actor, EventBody::RequestCancelled { request: *id }, id)
            .await
    }

    /// Team mode: appends a finding `actor` signed and kept while the shared log failed
    /// verification ([`crate::findings`]); `body` is the kept finding's.
    pub(crate) async fn report_finding(
        &mut self,
        actor: &Actor,
        body: EventBody,
    ) -> Result<u64, EngineError> {
        self.commit(vec![Pending {
            signer: Signer::Actor(actor),
            body,
            not_before: None,
        }])
        .await
    }

    /// Records the mandatory review of a break-glass activation.
    pub async fn review(
        &mut self,
        actor: &Actor,
        id: &RequestId,
        comment: String,
    ) -> Result<Outcome, EngineError> {
        self.single(
            actor,
            EventBody::ReviewRecorded {
                request: *id,
                comment,
            },
            id,
        )
        .await
    }

    /// Ends an active grant early. Idempotent: revoking an ended grant changes nothing.
    pub async fn revoke(
        &mut self,
        actor: &Actor,
        id: &RequestId,
        reason: Option<String>,
    ) -> Result<Outcome, EngineError> {
        let r = self
            .state
            .request(id)
            .ok_or(breakglass_core::Refusal::UnknownRequest(*id))?;
        match r.status {
            Status::Expired | Status::Revoked => return Ok(self.outcome(id, true, None)),
            Status::Revoking => {}
            _ => {
                self.commit(vec![Pending {
                    signer: Signer::Actor(actor),
                    body: EventBody::RevocationOrdered {
                        request: *id,
                        reason,
                    },
                    not_before: None,
                }])
                .await?;
            }
        }
        let warning = self.end_access(id).await?;
        Ok(self.outcome(id, false, warning))
    }

    async fn single(
        &mut self,
        actor: &Actor,
        body: EventBody,
        id: &RequestId,
    ) -> Result<Outcome, EngineError> {
        self.commit(vec![Pending {
            signer: Signer::Actor(actor),
            body,
            not_before: None,
        }])
        .await?;
        Ok(self.outcome(id, false, None))
    }

    fn digest_of(&self, id: &RequestId) -> Result<String, EngineError> {
        Ok(self
            .state
            .request(id)
            .ok_or(breakglass_core::Refusal::UnknownRequest(*id))?
            .digest
            .clone())
    }

    fn outcome(&self, id: &RequestId, unchanged: bool, warning: Option<String>) -> Outcome {
        let r = self.state.request(id);
        Outcome {
            request: *id,
            state: r.map_or(Status::Pending, |r| r.status),
            deadline: r.and_then(|r| r.deadline),
            log_size: self.size(),
            unchanged,
            warning,
        }
    }

    /// The connector of `target` under the policy in force, built once per policy version
    /// (building reads its secrets and may set up connection pools). A target the policy in
    /// force no longer names keeps the connector of the newest version that named it, so grants
    /// made before it was removed are still revoked at their deadline.
    pub(crate) fn connector_for(
        &mut self,
        target: &str,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let current = self
            .state
            .policy()
            .ok_or_else(|| ConnectorError::new("no policy is in force"))?
            .policy
            .version;
        let (version, spec) = self
            .state
            .policies()
            .iter()
            .rev()
            .find_map(|p| Some((p.policy.version, &p.policy.target(target)?.connector)))
            .ok_or_else(|| ConnectorError::new(format!("target {target} is not in the policy")))?;
        let key = (version, target.to_owned());
        if let Some(connector) = self.connectors.get(&key) {
            return Ok(Arc::clone(connector));
        }
        let broker = SealSecretKey::derive(
            &self
                .system_keys("running a connector")
                .map_err(|e| ConnectorError::new(e.to_string()))?
                .broker
                .to_bytes(),
        );
        let connector: Arc<dyn Connector> =
            breakglass_connectors::build(spec, &SystemSecrets, &broker)?.into();
        // Connectors of older policy versions are needed again only for removed targets.
        self.connectors
            .retain(|(v, t), _| *v == current || (*v == version && t == target));
        self.connectors.insert(key, Arc::clone(&connector));
        Ok(connector)
    }

    fn request_and_connector(
        &mut self,
        id: &RequestId,
    ) -> Result<(Request, Arc<dyn Connector>), EngineError> {
        let r = self
            .state
            .request(id)
            .ok_or(breakglass_core::Refusal::UnknownRequest(*id))?
            .clone();
        let connector = self
            .connector_for(&r.target)
            .map_err(|e| EngineError::Connector {
                target: r.target.clone(),
                error: e.to_string(),
            })?;
        Ok((r, connector))
    }

    /// The engine's clock.
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// What a command runs after recording the approval (or activation) that completes request
    /// `id`: the grant, by exactly one process. The grant is made holding the broker lease, so
    /// it never races a broker's pass (which would run the connector twice). While a broker
    /// acts, the grant is the broker's: this follows the log, for at most
    /// [`GRANT_HANDOFF_WAIT`], until the request is granted (or ended), and otherwise says the
    /// broker has it. When the lease cannot even be tried (a read-only data directory, say),
    /// the grant is made as it always was.
    pub(crate) async fn grant_once(
        &mut self,
        id: &RequestId,
    ) -> Result<Option<String>, EngineError> {
        let until = tokio::time::Instant::now() + GRANT_HANDOFF_WAIT;
        loop {
            if self.is_member()
                || self.state.request(id).map(|r| r.status) != Some(Status::Approved)
            {
                return Ok(None);
            }
            match self.store.try_broker_lease().await {
                Ok(Some(lease)) => {
                    // Whoever held the lease may have granted it meanwhile.
                    let granted = match self.refresh().await {
                        Ok(()) => self.grant_if_approved(id).await,
                        Err(e) => Err(e),
                    };
                    lease.release().await;
                    return granted;
                }
                Ok(None) => {}
                Err(_) => return self.grant_if_approved(id).await,
            }
            if tokio::time::Instant::now() >= until {
                return Ok(Some(format!(
                    "{id} is approved; the broker acting on this log grants it (not done within {} s)",
                    GRANT_HANDOFF_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            self.refresh().await?;
        }
    }

    /// Grants an approved request: the approval is already durable and covered by a signed
    /// checkpoint (fail closed), then the connector runs, then the grant (or its failure) is
    /// recorded. Returns a warning line when the connector failed.
    pub(crate) async fn grant_if_approved(
        &mut self,
        id: &RequestId,
    ) -> Result<Option<String>, EngineError> {
        // In team mode the broker grants, once its checkpoint covers the approval.
        if self.is_member() || self.state.request(id).map(|r| r.status) != Some(Status::Approved) {
            return Ok(None);
        }
        let (r, connector) = self.request_and_connector(id)?;
        let granted_at = self.now();
        let deadline = granted_at
            .checked_add(r.duration)
            .ok_or(breakglass_core::Refusal::TimeOutOfRange)?;
        let result = connector
            .grant(Access {
                request: &r,
                granted_at,
                deadline,
            })
            .await;
        let (body, warning) = match result {
            Ok(issued) => (
                EventBody::AccessGranted {
                    request: *id,
                    granted_at,
                    deadline,
                    enforced_by_target: connector.enforces_expiry(),
                    issued,
                },
                None,
            ),
            Err(e) => (
                EventBody::GrantFailed {
                    request: *id,
                    error: e.to_string(),
                },
                Some(format!("grant of {id} on {} failed: {e}", r.target)),
            ),
        };
        self.commit(vec![Pending {
            signer: Signer::Broker,
            body,
            not_before: Some(granted_at),
        }])
        .await?;
        Ok(warning)
    }

    /// Runs the connector's revoke for an active or revoking grant and records the result:
    /// expired (deadline passed), revoked (ordered early) or a loud failure to retry.
    async fn end_access(&mut self, id: &RequestId) -> Result<Option<String>, EngineError> {
        if self.is_member() {
            // In team mode the broker ends access.
            return Ok(None);
        }
        let (r, connector) = self.request_and_connector(id)?;
        let (Some(granted_at), Some(deadline)) = (r.granted_at, r.deadline) else {
            return Ok(None);
        };
        if self.now() < deadline && r.status != Status::Revoking {
            return Ok(None);
        }
        let result = connector
            .revoke(Access {
                request: &r,
                granted_at,
                deadline,
            })
            .await;
        let mut report = TickReport::default();
        let events = self.revoke_events(&r, result, &mut report);
        if !events.is_empty() {
            self.commit(events).await?;
        }
        Ok(report.failures.pop())
    }

    /// Raw entries `[from, to)` as stored (verified when the engine opened or refreshed).
    pub async fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, EngineError> {
        Ok(self
            .store
            .entries(from, to.min(self.size()))
            .await?
            .into_iter()
            .map(|e| e.bytes)
            .collect())
    }

    /// The newest checkpoint verified here: the number of entries it covers (all of them on the
    /// embedded log; on a team's log, entries members appended since await the broker's next
    /// checkpoint) and its signed note.
    pub async fn latest_checkpoint(&self) -> Result<(u64, String), EngineError> {
        let size = self.covered();
        let checkpoint = self.store.checkpoint(size).await?;
        let checkpoint = checkpoint
            .ok_or_else(|| EngineError::Tampered(format!("no checkpoint for size {size}")))?;
        Ok((size, checkpoint.note))
    }
}
