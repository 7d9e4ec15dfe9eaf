//! Shared helpers for the bundle tests: deterministic keys, a log builder that validates every
//! event it appends (or deliberately does not, for forgeries), a random but always valid history
//! generator, and bundle writers.
//!
//! Only `breakglass-core` and `breakglass-ledger` are used: no store, no engine, no clock, no OS
//! randomness, so every history is a pure function of its seed.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeSet;

use breakglass_core::{
    hex, AlertKind, Binding, Event, EventBody, IdentityRecord, LogState, PublicKey, Refusal,
    RequestId, Span, Timestamp, VerifiedEvent, EVENT_FORMAT,
};
use breakglass_ledger::{
    leaf_hash, root_of, write_bundle, Checkpoint, Entry, Hash, NoteSigner, NoteVerifier,
};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// The origin of every generated log.
pub const ORIGIN: &str = "test.breakglass/props";
/// The first administrator (signs `log_created`, the policy and the enrolments).
pub const ADMIN: &str = "alice";
/// The broker identity named in `log_created`.
pub const BROKER: &str = "broker";
/// Approver (group `sre`).
pub const BOB: &str = "bob";
/// Approver (group `sre`).
pub const CAROL: &str = "carol";
/// Requester (group `engineers`).
pub const DAVE: &str = "dave";
/// The approvers of both targets.
pub const SRE: [&str; 2] = [BOB, CAROL];

/// Target with roles, requesters, quorum 2 and break-glass (cap 30m).
pub const PROD_DB: &str = "prod-db";
/// Target with the default role, any requester, quorum 2 and no break-glass.
pub const WIKI: &str = "wiki";

/// 2027-01-15T08:00:00.000Z.
pub const START_MILLIS: i64 = 1_800_000_000_000;

/// Identities, groups and the log's origin and key, as enrolled by [`Log::genesis`].
pub const GENESIS_EVENTS: usize = 5;

/// SplitMix64: tiny, deterministic, good enough to pick actions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6a09_e667_f3bc_c908)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A fresh request id.
    pub fn request_id(&mut self) -> RequestId {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&a);
        bytes[8..].copy_from_slice(&b[..2]);
        RequestId::from_random(bytes)
    }
}

/// A signing key derived from a seed and a label.
pub fn derive_key(seed: u64, label: &str) -> SigningKey {
    let digest = Sha256::new()
        .chain_update(b"breakglass-ledger-tests/key\n")
        .chain_update(seed.to_le_bytes())
        .chain_update(label.as_bytes())
        .finalize();
    SigningKey::from_bytes(&digest.into())
}

/// The public key of `key` as the core crate spells it.
pub fn public(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// Every key of one test log.
#[derive(Clone)]
pub struct Keys {
    /// The seed the keys were derived from.
    pub seed: u64,
    pub admin: SigningKey,
    pub broker: SigningKey,
    pub bob: SigningKey,
    pub carol: SigningKey,
    pub dave: SigningKey,
    /// The checkpoint key (never signs events).
    pub log: SigningKey,
}

impl Keys {
    /// Keys derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            admin: derive_key(seed, ADMIN),
            broker: derive_key(seed, BROKER),
            bob: derive_key(seed, BOB),
            carol: derive_key(seed, CAROL),
            dave: derive_key(seed, DAVE),
            log: derive_key(seed, "log"),
        }
    }

    /// The key enrolled for `name`.
    pub fn of(&self, name: &str) -> &SigningKey {
        match name {
            ADMIN => &self.admin,
            BROKER => &self.broker,
            BOB => &self.bob,
            CAROL => &self.carol,
            DAVE => &self.dave,
            other => panic!("no key for {other:?}"),
        }
    }

    /// The checkpoint signer, named by the origin.
    pub fn note_signer(&self) -> NoteSigner {
        NoteSigner::new(ORIGIN, self.log.clone()).expect("valid key name")
    }

    /// The checkpoint verifier.
    pub fn verifier(&self) -> NoteVerifier {
        self.note_signer().verifier()
    }

    /// The checkpoint verifier key in C2SP `vkey` form, as recorded in `log_created`.
    pub fn vkey(&self) -> String {
        self.verifier().vkey()
    }
}

/// The policy every generated log applies (with `version` varying): two targets, groups
/// sre = [bob, carol] and engineers = [dave], quorum 2, break-glass on prod-db only.
pub fn policy_source(version: u64) -> String {
    format!(
        r#"# generated by the ledger tests
version = {version}

[groups]
sre = ["bob", "carol"]
engineers = ["dave"]

[targets.prod-db]
description = "Production database"
roles = ["read", "write"]
max_duration = "2h"
request_ttl = "30m"
extension_cap = "6h"
requesters = ["engineers", "sre"]
approvers = {{ groups = ["sre"], quorum = 2 }}
break_glass = {{ max_duration = "30m" }}
connector = {{ kind = "command", grant = ["/bin/true", "grant"], revoke = ["/bin/true", "revoke"] }}

[targets.wiki]
max_duration = "1h"
request_ttl = "15m"
extension_cap = "4h"
approvers = {{ groups = ["sre"], quorum = 2 }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"], timeout = "10s" }}
"#
    )
}

/// `prod-db`'s caps, as in [`policy_source`] (seconds).
pub const PROD_DB_MAX: u64 = 2 * 3600;
pub const PROD_DB_TTL: u64 = 30 * 60;
pub const PROD_DB_EXT_CAP: u64 = 6 * 3600;
pub const PROD_DB_BG_MAX: u64 = 30 * 60;
/// `wiki`'s caps (seconds).
pub const WIKI_MAX: u64 = 3600;
pub const WIKI_TTL: u64 = 15 * 60;
pub const WIKI_EXT_CAP: u64 = 4 * 3600;

/// An identity record with no groups (policy memberships give bob, carol and dave theirs).
pub fn record(name: &str, key: &SigningKey, groups: &[&str]) -> IdentityRecord {
    IdentityRecord {
        name: name.to_owned(),
        key: public(key),
        groups: groups
            .iter()
            .map(|g| (*g).to_owned())
            .collect::<BTreeSet<_>>(),
        binding: Binding::Local,
    }
}

/// A timestamp `millis` after [`START_MILLIS`].
pub fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(START_MILLIS + millis).expect("in range")
}

/// `t` plus `millis` milliseconds.
pub fn plus_millis(t: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() + millis).expect("in range")
}

/// `t` plus `secs` seconds.
pub fn plus_secs(t: Timestamp, secs: u64) -> Timestamp {
    t.checked_add(Span::from_secs(secs)).expect("in range")
}

/// Signs `event` with `key`.
pub fn sign(event: Event, key: &SigningKey) -> Entry {
    Entry::sign(event, key).expect("event serialises")
}

/// The signed checkpoint note over `leaves`.
pub fn checkpoint_note(signer: &NoteSigner, leaves: &[Hash]) -> String {
    signer
        .sign_checkpoint(&Checkpoint {
            origin: signer.name().to_owned(),
            size: leaves.len() as u64,
            root: root_of(leaves),
            extensions: vec![],
        })
        .expect("valid checkpoint")
}

/// A bundle of arbitrary entry lines (not necessarily canonical or valid), with a header naming
/// `signer`'s origin and key and a checkpoint `signer` signs over exactly these lines.
pub fn bundle_of_lines(signer: &NoteSigner, lines: &[Vec<u8>]) -> Vec<u8> {
    let leaves: Vec<Hash> = lines.iter().map(|l| leaf_hash(l)).collect();
    let note = checkpoint_note(signer, &leaves);
    let mut out = Vec::new();
    write_bundle(
        &mut out,
        signer.name(),
        &signer.verifier().vkey(),
        lines,
        lines.len() as u64,
        &note,
    )
    .expect("bundle writes");
    out
}

/// A bundle of `entries` with a valid checkpoint by `signer`; nothing is validated.
pub fn bundle_of_entries(signer: &NoteSigner, entries: &[Entry]) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = entries.iter().map(|e| e.bytes().to_vec()).collect();
    bundle_of_lines(signer, &lines)
}

/// A bundle of arbitrary `(event, key)` pairs, each signed as given, WITHOUT applying any rule:
/// for forgeries that are validly signed but break the lifecycle.
pub fn bundle_of_events(signer: &NoteSigner, events: &[(Event, &SigningKey)]) -> Vec<u8> {
    let entries: Vec<Entry> = events
        .iter()
        .map(|(event, key)| sign(event.clone(), key))
        .collect();
    bundle_of_entries(signer, &entries)
}

/// A log being built: its entries, the state they replay to, and the time of the next event.
#[derive(Clone)]
pub struct Log {
    pub keys: Keys,
    pub state: LogState,
    pub entries: Vec<Entry>,
    /// Time of the last event appended.
    pub now: Timestamp,
    /// Set once an unchecked entry has been appended: `state` no longer matches `entries`.
    pub forged: bool,
}

impl Log {
    /// A log with `log_created`, `policy_applied` (version 1) and the enrolments of bob, carol
    /// and dave, every event checked by [`LogState::apply`].
    pub fn genesis(keys: Keys) -> Self {
        Self::genesis_with(keys, None)
    }

    /// Like [`Log::genesis`], shifting the time of event `bump_at` (and all later ones) by 1 ms.
    pub fn genesis_with(keys: Keys, bump_at: Option<usize>) -> Self {
        let mut log = Log {
            keys,
            state: LogState::new(),
            entries: Vec::new(),
            now: at(0),
            forged: false,
        };
        let created = EventBody::LogCreated {
            origin: ORIGIN.to_owned(),
            log_key: log.keys.vkey(),
            admin: record(ADMIN, &log.keys.admin, &["admin"]),
            broker: record(BROKER, &log.keys.broker, &[]),
        };
        let bodies = [
            created,
            EventBody::PolicyApplied {
                version: 1,
                source: policy_source(1),
            },
            EventBody::IdentityEnrolled {
                identity: record(BOB, &log.keys.bob, &[]),
            },
            EventBody::IdentityEnrolled {
                identity: record(CAROL, &log.keys.carol, &[]),
            },
            EventBody::IdentityEnrolled {
                identity: record(DAVE, &log.keys.dave, &[]),
            },
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let time = if i == 0 {
                log.now
            } else {
                plus_secs(log.now, 1)
            };
            let time = if bump_at == Some(i) {
                plus_millis(time, 1)
            } else {
                time
            };
            log.push_at(time, ADMIN, body);
        }
        log
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True before the first entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An event of this log at `time`.
    pub fn event_at(&self, time: Timestamp, actor: &str, body: EventBody) -> Event {
        Event {
            v: EVENT_FORMAT,
            log: ORIGIN.to_owned(),
            time,
            actor: actor.to_owned(),
            body,
        }
    }

    /// An event one second after the last one.
    pub fn next_event(&self, actor: &str, body: EventBody) -> Event {
        self.event_at(plus_secs(self.now, 1), actor, body)
    }

    /// Applies `entry` to the state; on success appends it.
    pub fn try_push_entry(&mut self, entry: Entry) -> Result<usize, Refusal> {
        assert!(!self.forged, "the state no longer matches the entries");
        self.state.apply(VerifiedEvent {
            event: entry.event(),
            signer: entry.key(),
            leaf_hash: entry.leaf_hash(),
        })?;
        self.now = entry.event().time;
        self.entries.push(entry);
        Ok(self.entries.len() - 1)
    }

    /// Signs `event` with `key`, checks it against every rule and appends it; panics if refused
    /// (a generator must only emit valid histories).
    pub fn push_event(&mut self, event: Event, key: &SigningKey) -> usize {
        let kind = event.body.kind();
        let actor = event.actor.clone();
        let index = self.len();
        self.try_push_entry(sign(event, key))
            .unwrap_or_else(|r| panic!("entry {index} ({kind} by {actor}) was refused: {r}"))
    }

    /// Appends a valid event by `actor` (signed with their key) at `time`.
    pub fn push_at(&mut self, time: Timestamp, actor: &str, body: EventBody) -> usize {
        let event = self.event_at(time, actor, body);
        let key = self.keys.of(actor).clone();
        self.push_event(event, &key)
    }

    /// Appends a valid event by `actor` one second after the last one.
    pub fn push(&mut self, actor: &str, body: EventBody) -> usize {
        self.push_at(plus_secs(self.now, 1), actor, body)
    }

    /// Signs and appends `event` WITHOUT checking any rule (a forgery). Later events can only
    /// be appended unchecked too.
    pub fn push_unchecked(&mut self, event: Event, key: &SigningKey) -> usize {
        self.forged = true;
        if event.time > self.now {
            self.now = event.time;
        }
        self.entries.push(sign(event, key));
        self.entries.len() - 1
    }

    /// Appends an already-signed entry WITHOUT checking any rule.
    pub fn push_entry_unchecked(&mut self, entry: Entry) -> usize {
        self.forged = true;
        self.entries.push(entry);
        self.entries.len() - 1
    }

    /// The hex leaf hash of the entry that made request `id` (what decisions bind to).
    pub fn digest(&self, id: &RequestId) -> String {
        self.entries
            .iter()
            .find(|e| {
                matches!(&e.event().body, EventBody::AccessRequested { request, .. } if request == id)
            })
            .map(|e| hex(e.leaf_hash()))
            .unwrap_or_else(|| panic!("no request {id} in the log"))
    }

    /// Leaf hashes of every entry.
    pub fn leaves(&self) -> Vec<Hash> {
        self.entries.iter().map(|e| *e.leaf_hash()).collect()
    }

    /// The signed checkpoint for the first `k` entries.
    pub fn note_for_prefix(&self, k: usize) -> String {
        checkpoint_note(&self.keys.note_signer(), &self.leaves()[..k])
    }

    /// The bundle of the first `k` entries with their checkpoint.
    pub fn bundle_prefix(&self, k: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_bundle(
            &mut out,
            ORIGIN,
            &self.keys.vkey(),
            self.entries[..k].iter().map(Entry::bytes),
            k as u64,
            &self.note_for_prefix(k),
        )
        .expect("bundle writes");
        out
    }

    /// The bundle of the whole log.
    pub fn bundle(&self) -> Vec<u8> {
        self.bundle_prefix(self.len())
    }

    // Convenience constructors for lifecycle events, all valid only if the caller says so.

    /// A request body for `target` (role chosen by target) of `minutes`.
    pub fn request_body(id: &RequestId, target: &str, secs: u64, break_glass: bool) -> EventBody {
        EventBody::AccessRequested {
            auth: None,
            request: *id,
            target: target.to_owned(),
            role: if target == PROD_DB { "read" } else { "default" }.to_owned(),
            duration: Span::from_secs(secs),
            reason: "investigate incident".to_owned(),
            ticket: None,
            break_glass,
            credential: None,
            extends: None,
            policy_version: 1,
        }
    }

    /// An approval of `id` bound to its request entry.
    pub fn approve_body(&self, id: &RequestId) -> EventBody {
        EventBody::RequestApproved {
            auth: None,
            request: *id,
            request_digest: self.digest(id),
            comment: None,
        }
    }

    /// A grant of `id` starting at `granted_at`, for `secs`.
    pub fn grant_body(id: &RequestId, granted_at: Timestamp, secs: u64) -> EventBody {
        EventBody::AccessGranted {
            request: *id,
            granted_at,
            issued: None,
            deadline: plus_secs(granted_at, secs),
            enforced_by_target: false,
        }
    }
}

/// Counts a generator expects the verifier's report to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub entries: u64,
    pub identities: usize,
    pub policy_versions: usize,
    pub requests: usize,
    pub grants: usize,
    pub break_glass: usize,
    pub reviews_owed: usize,
}

/// A generated history.
#[derive(Clone)]
pub struct History {
    pub log: Log,
    pub expected: Expected,
    /// How many events of each kind were generated, by kind name.
    pub kinds: std::collections::BTreeMap<&'static str, usize>,
}

/// Where a request is, as the generator's own model sees it (independent of `LogState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Pending,
    Approved,
    Active,
    Revoking,
    Done,
}

#[derive(Debug, Clone)]
struct Req {
    id: RequestId,
    requester: &'static str,
    target: &'static str,
    role: &'static str,
    secs: u64,
    chain: RequestId,
    /// Counts towards its chain's total (not denied, cancelled, lapsed or failed).
    counts: bool,
    st: St,
    deciders: Vec<&'static str>,
    approvals: usize,
    lapses_at: Timestamp,
    deadline: Option<Timestamp>,
    break_glass: bool,
    alerted: bool,
    review_owed: bool,
    revoke_failures: u32,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Request,
    Approve(usize, &'static str),
    Deny(usize, &'static str),
    Cancel(usize),
    Lapse(usize),
    Grant(usize),
    GrantFailed(usize),
    Alert(usize),
    OrderRevocation(usize, &'static str),
    Revoked(usize),
    Expire(usize),
    RevokeFailed(usize),
    Review(usize, &'static str),
    NewPolicy,
}

/// Generates a valid history: genesis, then `steps` random lifecycle events. Deterministic in
/// `seed`; keys come from `seed` too.
pub fn generate(seed: u64, steps: usize) -> History {
    generate_with(seed, steps, None)
}

/// Like [`generate`], but event `bump_at` (and so everything after it) happens 1 ms later:
/// the same keys, a history that differs from index `bump_at` on.
pub fn generate_with(seed: u64, steps: usize, bump_at: Option<usize>) -> History {
    Generator::new(seed, bump_at).run(steps)
}

struct Generator {
    rng: Rng,
    log: Log,
    reqs: Vec<Req>,
    policy_version: u64,
    expected: Expected,
    kinds: std::collections::BTreeMap<&'static str, usize>,
    bump_at: Option<usize>,
}

impl Generator {
    fn new(seed: u64, bump_at: Option<usize>) -> Self {
        let log = Log::genesis_with(Keys::new(seed), bump_at);
        let mut kinds = std::collections::BTreeMap::new();
        for e in &log.entries {
            *kinds.entry(e.event().body.kind()).or_insert(0) += 1;
        }
        Self {
            rng: Rng::new(seed),
            log,
            reqs: Vec::new(),
            policy_version: 1,
            expected: Expected {
                identities: 5,
                policy_versions: 1,
                ..Expected::default()
            },
            kinds,
            bump_at,
        }
    }

    fn run(mut self, steps: usize) -> History {
        for _ in 0..steps {
            let actions = self.candidates();
            let action = *self.rng.pick(&actions);
            self.perform(action);
        }
        self.expected.entries = self.log.len() as u64;
        self.expected.reviews_owed = self.reqs.iter().filter(|r| r.review_owed).count();
        let state = &self.log.state;
        assert_eq!(
            state.len(),
            self.log.len() as u64,
            "every event was applied"
        );
        History {
            log: self.log,
            expected: self.expected,
            kinds: self.kinds,
        }
    }

    /// Time of the next ordinary event: one second on, sometimes a little more.
    fn next_time(&mut self) -> Timestamp {
        let extra = if self.rng.chance(1, 8) {
            self.rng.range(1, 300)
        } else {
            0
        };
        plus_secs(self.log.now, 1 + extra)
    }

    fn emit(&mut self, time: Timestamp, actor: &'static str, body: EventBody) {
        let time = if self.bump_at == Some(self.log.len()) {
            plus_millis(time, 1)
        } else {
            time
        };
        *self.kinds.entry(body.kind()).or_insert(0) += 1;
        self.log.push_at(time, actor, body);
    }

    fn open(&self) -> usize {
        self.reqs
            .iter()
            .filter(|r| r.st != St::Done || (r.break_glass && !r.alerted))
            .count()
    }

    fn candidates(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.open() < 3 {
            // Weighted: new requests are the engine of the history.
            out.extend([Action::Request; 3]);
        }
        if self.rng.chance(1, 40) {
            out.push(Action::NewPolicy);
        }
        // A decision is one second (plus, when rewriting, one millisecond) after the last event
        // and must come strictly before the request lapses.
        let soon = plus_millis(plus_secs(self.log.now, 1), 1);
        for (i, r) in self.reqs.iter().enumerate() {
            match r.st {
                St::Pending => {
                    for a in SRE {
                        if a != r.requester && !r.deciders.contains(&a) && soon < r.lapses_at {
                            out.extend([Action::Approve(i, a); 4]);
                            out.push(Action::Deny(i, a));
                        }
                    }
                    out.push(Action::Cancel(i));
                    out.push(Action::Lapse(i));
                }
                St::Approved => {
                    out.extend([Action::Grant(i); 4]);
                    out.push(Action::GrantFailed(i));
                }
                St::Active => {
                    out.extend([Action::Expire(i); 3]);
                    for by in [r.requester, BOB, CAROL, ADMIN] {
                        out.push(Action::OrderRevocation(i, by));
                    }
                    out.push(Action::RevokeFailed(i));
                }
                St::Revoking => {
                    out.extend([Action::Revoked(i); 3]);
                    out.push(Action::Expire(i));
                    out.push(Action::RevokeFailed(i));
                }
                St::Done => {}
            }
            if r.break_glass && !r.alerted {
                out.extend([Action::Alert(i); 4]);
            }
            if r.review_owed {
                for by in [BOB, CAROL, ADMIN] {
                    if by != r.requester {
                        out.push(Action::Review(i, by));
                    }
                }
            }
        }
        if out.is_empty() {
            out.push(Action::Request);
        }
        out
    }

    fn chain_total(&self, chain: &RequestId) -> u64 {
        self.reqs
            .iter()
            .filter(|r| &r.chain == chain && r.counts)
            .map(|r| r.secs)
            .sum()
    }

    fn request(&mut self) {
        let time = self.next_time();
        let id = self.rng.request_id();
        let requester: &'static str = match self.rng.below(10) {
            0 => BOB,
            1 => ADMIN,
            _ => DAVE,
        };
        // The admin is not a prod-db requester (neither engineers nor sre).
        let target = if requester == ADMIN || self.rng.chance(1, 3) {
            WIKI
        } else {
            PROD_DB
        };
        let role = if target == WIKI {
            "default"
        } else if self.rng.chance(1, 2) {
            "read"
        } else {
            "write"
        };
        let (max, ttl, ext_cap) = if target == PROD_DB {
            (PROD_DB_MAX, PROD_DB_TTL, PROD_DB_EXT_CAP)
        } else {
            (WIKI_MAX, WIKI_TTL, WIKI_EXT_CAP)
        };
        let break_glass = target == PROD_DB && self.rng.chance(1, 5);
        // An extension of an active grant of the same requester, target and role, if one fits.
        let extendable = (!break_glass && self.rng.chance(1, 2))
            .then(|| {
                self.reqs.iter().position(|r| {
                    r.st == St::Active
                        && r.requester == requester
                        && r.target == target
                        && r.role == role
                        && !self.reqs.iter().any(|o| {
                            o.chain == r.chain && matches!(o.st, St::Pending | St::Approved)
                        })
                        && self.chain_total(&r.chain) + 60 <= ext_cap
                })
            })
            .flatten();
        let cap = if break_glass { PROD_DB_BG_MAX } else { max };
        let cap = match extendable {
            Some(p) => cap.min(ext_cap - self.chain_total(&self.reqs[p].chain)),
            None => cap,
        };
        let secs = match self.rng.below(4) {
            0 => cap,
            1 => self.rng.range(1, cap),
            _ => self.rng.range(1, cap / 60) * 60,
        };
        let ticket = self
            .rng
            .chance(1, 3)
            .then(|| format!("INC-{}", self.rng.below(100_000)));
        let (extends, chain) = match extendable {
            Some(p) => (Some(self.reqs[p].id), self.reqs[p].chain),
            None => (None, id),
        };
        let body = EventBody::AccessRequested {
            auth: None,
            request: id,
            target: target.to_owned(),
            role: role.to_owned(),
            duration: Span::from_secs(secs),
            reason: format!("step {} needs {target}", self.log.len()),
            ticket,
            break_glass,
            credential: None,
            extends,
            policy_version: self.policy_version,
        };
        self.emit(time, requester, body);
        let time = self.log.now;
        self.expected.requests += 1;
        if break_glass {
            self.expected.break_glass += 1;
        }
        self.reqs.push(Req {
            id,
            requester,
            target,
            role,
            secs,
            chain,
            counts: true,
            st: if break_glass {
                St::Approved
            } else {
                St::Pending
            },
            deciders: Vec::new(),
            approvals: 0,
            lapses_at: plus_secs(time, ttl),
            deadline: None,
            break_glass,
            alerted: false,
            review_owed: break_glass,
            revoke_failures: 0,
        });
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Request => self.request(),
            Action::NewPolicy => {
                let time = self.next_time();
                self.policy_version += 1;
                let v = self.policy_version;
                self.emit(
                    time,
                    ADMIN,
                    EventBody::PolicyApplied {
                        version: v,
                        source: policy_source(v),
                    },
                );
                self.expected.policy_versions += 1;
            }
            Action::Approve(i, by) | Action::Deny(i, by) => {
                let approve = matches!(action, Action::Approve(..));
                let time = plus_secs(self.log.now, 1);
                let id = self.reqs[i].id;
                let request_digest = self.log.digest(&id);
                let body = if approve {
                    EventBody::RequestApproved {
                        auth: None,
                        request: id,
                        request_digest,
                        comment: self.rng.chance(1, 2).then(|| format!("ok from {by}")),
                    }
                } else {
                    EventBody::RequestDenied {
                        request: id,
                        request_digest,
                        reason: "not now".to_owned(),
                    }
                };
                self.emit(time, by, body);
                let r = &mut self.reqs[i];
                r.deciders.push(by);
                if approve {
                    r.approvals += 1;
                    if r.approvals >= 2 {
                        r.st = St::Approved;
                    }
                } else {
                    r.st = St::Done;
                    r.counts = false;
                }
            }
            Action::Cancel(i) => {
                let time = self.next_time();
                let r = &self.reqs[i];
                let (requester, request) = (r.requester, r.id);
                self.emit(time, requester, EventBody::RequestCancelled { request });
                self.reqs[i].st = St::Done;
                self.reqs[i].counts = false;
            }
            Action::Lapse(i) => {
                let base = plus_secs(self.log.now, 1);
                let time = base.max(plus_millis(
                    self.reqs[i].lapses_at,
                    self.rng.range(0, 5000) as i64,
                ));
                let request = self.reqs[i].id;
                self.emit(time, BROKER, EventBody::RequestLapsed { request });
                self.reqs[i].st = St::Done;
                self.reqs[i].counts = false;
            }
            Action::Grant(i) => {
                let time = self.next_time();
                let (request, secs) = (self.reqs[i].id, self.reqs[i].secs);
                // When this event is the rewritten one, `emit` records it 1 ms after `time`:
                // still a valid grant (it may be recorded a little after it starts).
                let deadline = plus_secs(time, secs);
                let enforced_by_target = self.rng.chance(1, 2);
                self.emit(
                    time,
                    BROKER,
                    EventBody::AccessGranted {
                        request,
                        granted_at: time,
                        issued: None,
                        deadline,
                        enforced_by_target,
                    },
                );
                self.expected.grants += 1;
                self.reqs[i].st = St::Active;
                self.reqs[i].deadline = Some(deadline);
            }
            Action::GrantFailed(i) => {
                let time = self.next_time();
                let request = self.reqs[i].id;
                self.emit(
                    time,
                    BROKER,
                    EventBody::GrantFailed {
                        request,
                        error: "connector exited with status 1".to_owned(),
                    },
                );
                self.reqs[i].st = St::Done;
                self.reqs[i].counts = false;
            }
            Action::Alert(i) => {
                let time = plus_secs(self.log.now, 1);
                let request = self.reqs[i].id;
                self.emit(
                    time,
                    BROKER,
                    EventBody::Alert {
                        message: format!("break-glass activated: {request}"),
                        request: Some(request),
                        kind: AlertKind::BreakGlassActivated,
                    },
                );
                self.reqs[i].alerted = true;
            }
            Action::OrderRevocation(i, by) => {
                let time = self.next_time();
                let request = self.reqs[i].id;
                let reason = self.rng.chance(1, 2).then(|| "done early".to_owned());
                self.emit(time, by, EventBody::RevocationOrdered { request, reason });
                self.reqs[i].st = St::Revoking;
            }
            Action::Revoked(i) => {
                let time = plus_secs(self.log.now, 1);
                let request = self.reqs[i].id;
                self.emit(time, BROKER, EventBody::AccessRevoked { request });
                self.reqs[i].st = St::Done;
            }
            Action::Expire(i) => {
                let base = plus_secs(self.log.now, 1);
                let deadline = self.reqs[i].deadline.expect("granted");
                let time = base.max(plus_millis(deadline, self.rng.range(0, 3000) as i64));
                let request = self.reqs[i].id;
                self.emit(time, BROKER, EventBody::AccessExpired { request });
                self.reqs[i].st = St::Done;
            }
            Action::RevokeFailed(i) => {
                let time = plus_secs(self.log.now, 1);
                let request = self.reqs[i].id;
                let attempt = self.reqs[i].revoke_failures + 1;
                self.emit(
                    time,
                    BROKER,
                    EventBody::RevokeFailed {
                        request,
                        attempt,
                        error: "connection refused".to_owned(),
                    },
                );
                self.reqs[i].revoke_failures = attempt;
                if self.rng.chance(1, 2) {
                    let time = plus_secs(self.log.now, 1);
                    self.emit(
                        time,
                        BROKER,
                        EventBody::Alert {
                            request: Some(request),
                            kind: AlertKind::RevokeFailing,
                            message: format!("revoke attempt {attempt} failed"),
                        },
                    );
                }
            }
            Action::Review(i, by) => {
                let time = self.next_time();
                let request = self.reqs[i].id;
                self.emit(
                    time,
                    by,
                    EventBody::ReviewRecorded {
                        request,
                        comment: "justified".to_owned(),
                    },
                );
                self.reqs[i].review_owed = false;
            }
        }
    }
}
