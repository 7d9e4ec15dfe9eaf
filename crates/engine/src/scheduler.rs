//! The expiry scheduler: lapses requests past their TTL, grants approved requests, and revokes
//! every grant at its deadline (and every ordered revocation), retrying failed revokes with
//! backoff until the connector confirms, each failure a signed event and an alert.
//!
//! Revokes due at the same moment run concurrently (at most [`REVOKE_CONCURRENCY`] at once), or,
//! for connectors that take batches, all of a target's at once in one call; their results are
//! recorded in batches as they arrive. Deadlines are absolute, so a pass after downtime (the broker's
//! first) ends everything that should already have ended. [`Engine::run_broker`] runs passes
//! until told to stop, waking at the next deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use breakglass_connectors::{Access, Connector, ConnectorError};
use breakglass_core::{AlertKind, EventBody, Request, RequestId, Span, Status, Timestamp};
use breakglass_store::{BrokerLease, Heard, LogListener, StoreError};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::engine::{Engine, Pending, Signer};
use crate::error::EngineError;
use crate::signin::PROVIDER_KEYS_EVERY;

/// How often a standby broker tries to take the broker lease: a broker that dies is replaced
/// within about this long (for PostgreSQL, once the server has seen its connection close).
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

/// What [`Engine::run_leased_broker`] reports besides its passes.
#[derive(Debug)]
pub enum BrokerNotice<'a> {
    /// Another broker holds the lease: this one waits.
    Standby,
    /// This broker holds the lease and acts.
    Acting,
    /// The lease could not be confirmed: this broker stopped acting and waits again.
    Lost(&'a StoreError),
    /// Trying to take the lease failed (the database is unreachable, say); it is tried again.
    LeaseError(&'a StoreError),
}

type FetchedKeys = Result<String, EngineError>;

/// Identity providers' key sets being fetched; dropping it stops the fetch.
struct Fetching(tokio::task::JoinHandle<Vec<(String, FetchedKeys)>>);

impl Drop for Fetching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Revokes run at once, at most.
pub const REVOKE_CONCURRENCY: usize = 64;

/// Revoke results recorded per append while others are still running.
const RECORD_BATCH: usize = 500;

/// The wait before the first retry of a failed revoke; it doubles with each failure, up to
/// [`REVOKE_RETRY_MAX`].
pub const REVOKE_RETRY_FIRST: Span = Span::from_secs(1);

/// The longest wait between retries of a failed revoke.
pub const REVOKE_RETRY_MAX: Span = Span::from_secs(300);

/// What one scheduler pass did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TickReport {
    /// Requests that lapsed.
    pub lapsed: Vec<RequestId>,
    /// Approved requests granted.
    pub granted: Vec<RequestId>,
    /// Grants that expired.
    pub expired: Vec<RequestId>,
    /// Ordered revocations completed.
    pub revoked: Vec<RequestId>,
    /// Connector failures (grant or revoke), one line each.
    pub failures: Vec<String>,
    /// Entries members appended that failed verification and were removed (team mode), one
    /// line each, as recorded in their alert.
    pub refused: Vec<String>,
    /// Every revoke run, with when it started.
    pub revokes: Vec<RevokeRun>,
    /// Team mode: identity providers whose new signing keys the broker recorded.
    pub provider_keys: Vec<String>,
}

/// One revoke the scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RevokeRun {
    /// The grant.
    pub request: RequestId,
    /// Its deadline.
    pub deadline: Timestamp,
    /// When the connector was asked to revoke it.
    pub started: Timestamp,
    /// When the connector answered.
    pub finished: Timestamp,
    /// Whether the connector confirmed.
    pub ok: bool,
}

/// What `listener` hears next; never, without one.
pub async fn heard(listener: Option<&mut LogListener>) -> Heard {
    match listener {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

/// When a revoke of `r` is due: at its deadline while it is active, at once once ordered, and
/// after a failure only when its backoff has passed. `None` when nothing is to be revoked.
pub fn revoke_due_at(r: &Request) -> Option<Timestamp> {
    let base = match r.status {
        Status::Active => r.deadline?,
        // Ordered: due now, whatever the time (the grant started before now).
        Status::Revoking => r.granted_at?,
        _ => return None,
    };
    match r.last_revoke_failure {
        None => Some(base),
        Some(failed) => {
            let doublings = r.revoke_failures.saturating_sub(1).min(16);
            let wait = REVOKE_RETRY_FIRST
                .as_secs()
                .saturating_mul(1 << doublings)
                .min(REVOKE_RETRY_MAX.as_secs());
            Some(failed.checked_add(Span::from_secs(wait))?.max(base))
        }
    }
}

impl Engine {
    /// One scheduler pass at the clock's current time: lapses overdue requests, grants approved
    /// ones, revokes grants past their deadline or ordered revoked (retrying failed revokes once
    /// their backoff has passed). Deadlines are absolute, so a pass after downtime ends
    /// everything that should already have ended.
    ///
    /// In team mode a member only reads what others appended (the broker's passes do the
    /// rest); the broker first verifies and covers what members appended
    /// ([`Engine::integrate`]).
    pub async fn tick(&mut self) -> Result<TickReport, EngineError> {
        let mut report = TickReport::default();
        if self.is_member() {
            self.refresh().await?;
            return Ok(report);
        }
        report.refused.extend(self.integrate().await?);
        let now = self.now();
        let lapsed: Vec<RequestId> = self
            .state()
            .requests()
            .filter(|r| r.status == Status::Pending && now >= r.lapses_at)
            .map(|r| r.id)
            .collect();
        if !lapsed.is_empty() {
            let events = lapsed
                .iter()
                .map(|id| Pending {
                    signer: Signer::Broker,
                    body: EventBody::RequestLapsed { request: *id },
                    not_before: None,
                })
                .collect();
            self.commit(events).await?;
            report.lapsed = lapsed;
        }
        let approved: Vec<RequestId> = self
            .state()
            .requests()
            .filter(|r| r.status == Status::Approved)
            .map(|r| r.id)
            .collect();
        for id in approved {
            match self.grant_if_approved(&id).await? {
                None => report.granted.push(id),
                Some(w) => report.failures.push(w),
            }
        }
        let due = self.revokes_due(now);
        self.run_revokes(due, now, &mut report, true).await?;
        Ok(report)
    }

    /// The grants of the state held now whose revoke is due at `now`.
    fn revokes_due(&self, now: Timestamp) -> Vec<Request> {
        self.state()
            .requests()
            .filter(|r| revoke_due_at(r).is_some_and(|at| at <= now))
            .cloned()
            .collect()
    }

    /// The broker's fail-safe after a pass failed (the log fails verification, or the database
    /// cannot be reached or written): the grants of the state last read are still revoked at
    /// their deadlines (and ordered revocations carried out), since ending access is always
    /// safe and no database writer, or outage, may keep access alive past its deadline.
    /// Nothing can be recorded meanwhile: each confirmed revoke is remembered, and once a pass
    /// succeeds again it records the grant's end without revoking a second time. Grants
    /// nothing. The report's `failures` says what was not recorded.
    pub async fn end_due_unrecorded(&mut self) -> TickReport {
        let mut report = TickReport::default();
        if self.is_member() {
            // A member never executes: the broker ends access.
            return report;
        }
        // After a verification failure the copy read before it is what is known; connectors
        // are found through its policy, so it is put in place for the revokes and taken out
        // again after.
        let held = self.last_known.take();
        let live = held.map(|known| self.replace_state(known));
        let now = self.now();
        let due: Vec<Request> = self
            .revokes_due(now)
            .into_iter()
            .filter(|r| !self.revoked_unrecorded.contains_key(&r.id))
            .collect();
        let result = self.run_revokes(due, now, &mut report, false).await;
        if let Some(live) = live {
            self.last_known = Some(self.replace_state(live));
        }
        if let Err(e) = result {
            report.failures.push(e.to_string());
        }
        let unrecorded = report.revokes.iter().filter(|r| r.ok).count();
        if unrecorded > 0 {
            report.failures.push(format!(
                "{unrecorded} revoke(s) made while the log cannot be read or written are not \
                 recorded in it yet; they will be once a pass succeeds"
            ));
        }
        report
    }

    /// The earliest instant at which [`Engine::tick`] has something to do.
    pub fn next_due(&self) -> Option<Timestamp> {
        let now = self.now();
        self.state()
            .requests()
            .filter_map(|r| match r.status {
                Status::Pending => Some(r.lapses_at),
                Status::Approved => Some(now),
                Status::Active | Status::Revoking => revoke_due_at(r),
                _ => None,
            })
            .min()
    }

    /// Runs the revokes of `due` at `now`, concurrently, and when `record`, records each result
    /// as it arrives (a grant a connector already revoked while the log could not be verified
    /// is recorded without a second revoke). Without `record`, each confirmed revoke is
    /// remembered in [`Engine::revoked_unrecorded`] and each failure reported.
    async fn run_revokes(
        &mut self,
        due: Vec<Request>,
        now: Timestamp,
        report: &mut TickReport,
        record: bool,
    ) -> Result<(), EngineError> {
        if due.is_empty() {
            return Ok(());
        }
        let limit = Arc::new(Semaphore::new(REVOKE_CONCURRENCY));
        let mut running = JoinSet::new();
        let mut events = Vec::new();
        let mut settled = Vec::new();
        // Connectors that take revokes in batches get every one of their target's at once.
        // Keyed by the connector itself: one target's grants under two policy versions may have
        // different connectors.
        let mut batches: HashMap<usize, (Arc<dyn Connector>, Vec<Request>)> = HashMap::new();
        for r in due {
            let (Some(granted_at), Some(deadline)) = (r.granted_at, r.deadline) else {
                continue;
            };
            if record {
                if let Some(&(started, finished)) = self.revoked_unrecorded.get(&r.id) {
                    settled.push((r, started, finished, Ok(())));
                    continue;
                }
            }
            let connector = match self.connector_for(&r.target) {
                Ok(c) => c,
                Err(e) => {
                    // A connector that cannot even be built (a secret gone missing) is a failed
                    // revoke like any other: recorded, alerted, retried.
                    report.revokes.push(RevokeRun {
                        request: r.id,
                        deadline,
                        started: now,
                        finished: now,
                        ok: false,
                    });
                    if record {
                        events.extend(self.revoke_events(&r, Err(e), report));
                    } else {
                        report.failures.push(format!("revoking {}: {e}", r.id));
                    }
                    continue;
                }
            };
            if connector.batches() {
                batches
                    .entry(Arc::as_ptr(&connector).cast::<()>() as usize)
                    .or_insert_with(|| (connector, Vec::new()))
                    .1
                    .push(r);
                continue;
            }
            let clock = self.clock();
            let limit = Arc::clone(&limit);
            running.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let started = clock.now();
                let result = connector
                    .revoke(Access {
                        request: &r,
                        granted_at,
                        deadline,
                    })
                    .await;
                vec![(r, started, clock.now(), result)]
            });
        }
        if !settled.is_empty() {
            // Revoked while the log failed verification: confirmed then, recorded now.
            running.spawn(async move { settled });
        }
        for (connector, requests) in batches.into_values() {
            let clock = self.clock();
            running.spawn(async move {
                let started = clock.now();
                let accesses: Vec<Access<'_>> = requests.iter().filter_map(Access::of).collect();
                let mut results = connector.revoke_many(&accesses).await;
                let finished = clock.now();
                if results.len() != requests.len() {
                    let e = ConnectorError::new(format!(
                        "the connector answered {} of {} revokes",
                        results.len(),
                        requests.len()
                    ));
                    results = requests.iter().map(|_| Err(e.clone())).collect();
                }
                drop(accesses);
                requests
                    .into_iter()
                    .zip(results)
                    .map(|(r, result)| (r, started, finished, result))
                    .collect::<Vec<_>>()
            });
        }
        while let Some(joined) = running.join_next().await {
            let done = joined.map_err(|e| EngineError::Connector {
                target: "?".into(),
                error: format!("a revoke stopped unexpectedly: {e}"),
            })?;
            for (r, started, finished, result) in done {
                report.revokes.push(RevokeRun {
                    request: r.id,
                    deadline: r.deadline.unwrap_or(started),
                    started,
                    finished,
                    ok: result.is_ok(),
                });
                if record {
                    self.revoked_unrecorded.remove(&r.id);
                    events.extend(self.revoke_events(&r, result, report));
                } else {
                    match result {
                        Ok(()) => {
                            self.revoked_unrecorded.insert(r.id, (started, finished));
                        }
                        Err(e) => report.failures.push(format!(
                            "revoking {} on {} failed: {e}; access may still be live",
                            r.id, r.target
                        )),
                    }
                }
            }
            if events.len() >= RECORD_BATCH {
                self.commit(std::mem::take(&mut events)).await?;
            }
        }
        if !events.is_empty() {
            self.commit(events).await?;
        }
        Ok(())
    }

    /// The events recording a revoke's result: expired (the deadline has passed) or revoked
    /// (ordered early) when the connector confirmed; a failure and an alert when it did not.
    pub(crate) fn revoke_events(
        &self,
        r: &Request,
        result: Result<(), ConnectorError>,
        report: &mut TickReport,
    ) -> Vec<Pending<'static>> {
        let id = r.id;
        let now = self.now();
        match result {
            Ok(()) => match r.deadline {
                Some(deadline) if now >= deadline => {
                    report.expired.push(id);
                    vec![Pending {
                        signer: Signer::Broker,
                        body: EventBody::AccessExpired { request: id },
                        not_before: Some(deadline),
                    }]
                }
                _ if r.status == Status::Revoking => {
                    report.revoked.push(id);
                    vec![Pending {
                        signer: Signer::Broker,
                        body: EventBody::AccessRevoked { request: id },
                        not_before: None,
                    }]
                }
                _ => Vec::new(),
            },
            Err(e) => {
                let attempt = r.revoke_failures + 1;
                let message = format!(
                    "revoking {id} on {} failed (attempt {attempt}): {e}; access may still be live",
                    r.target
                );
                report.failures.push(message.clone());
                vec![
                    Pending {
                        signer: Signer::Broker,
                        body: EventBody::RevokeFailed {
                            request: id,
                            attempt,
                            error: e.to_string(),
                        },
                        not_before: None,
                    },
                    Pending {
                        signer: Signer::Broker,
                        body: EventBody::Alert {
                            request: Some(id),
                            kind: AlertKind::RevokeFailing,
                            message,
                        },
                        not_before: None,
                    },
                ]
            }
        }
    }

    /// Runs scheduler passes until `stop` completes: the first at once (so whatever came due
    /// while no broker ran is ended first), then at each next deadline, and at least every
    /// `max_sleep` (to pick up work other processes recorded). `on_pass` sees each pass's
    /// report, or the error that stopped it (the next pass tries again).
    pub async fn run_broker(
        &mut self,
        max_sleep: Duration,
        mut on_pass: impl FnMut(Result<&TickReport, &EngineError>),
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        // Without a lease there is nothing to lose: this returns only when `stop` completes.
        let _ = self.act(max_sleep, &mut on_pass, &mut stop, None).await;
    }

    /// [`Engine::run_broker`] as the one broker of its log: it waits as a standby (trying every
    /// [`STANDBY_POLL`]) until it holds the store's [`breakglass_store::BrokerLease`], confirms the lease before
    /// every pass, and on losing it stops acting and waits again. `on_notice` hears of each
    /// change.
    pub async fn run_leased_broker(
        &mut self,
        max_sleep: Duration,
        mut on_notice: impl FnMut(BrokerNotice<'_>),
        mut on_pass: impl FnMut(Result<&TickReport, &EngineError>),
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let mut standby = false;
            let mut lease = loop {
                match self.store().try_broker_lease().await {
                    Ok(Some(lease)) => break lease,
                    Ok(None) if !standby => {
                        standby = true;
                        on_notice(BrokerNotice::Standby);
                    }
                    Ok(None) => {}
                    Err(e) => on_notice(BrokerNotice::LeaseError(&e)),
                }
                tokio::select! {
                    () = tokio::time::sleep(STANDBY_POLL) => {}
                    () = &mut stop => return,
                }
            };
            on_notice(BrokerNotice::Acting);
            match self
                .act(max_sleep, &mut on_pass, &mut stop, Some(&mut lease))
                .await
            {
                Ok(()) => {
                    lease.release().await;
                    return;
                }
                Err(e) => on_notice(BrokerNotice::Lost(&e)),
            }
        }
    }

    /// Scheduler passes, the first at once, then at each next deadline, on each change another
    /// process commits (team mode), and at least every `max_sleep`, until `stop` completes
    /// (`Ok`) or, holding `lease`, until the lease cannot be confirmed before a pass (`Err`:
    /// stop acting).
    async fn act(
        &mut self,
        max_sleep: Duration,
        on_pass: &mut impl FnMut(Result<&TickReport, &EngineError>),
        stop: &mut (impl Future<Output = ()> + Unpin),
        mut lease: Option<&mut BrokerLease>,
    ) -> Result<(), StoreError> {
        // In team mode a member's request or decision wakes the broker at once; without the
        // channel (the embedded log, or the database refusing it) it looks every `max_sleep`.
        let mut listener = self.store().listen().await.ok().flatten();
        // Team mode: the policy's identity providers' keys, fetched beside the passes (a slow
        // provider never delays a revoke) when acting starts and every PROVIDER_KEYS_EVERY.
        let mut keys_due = tokio::time::Instant::now();
        let mut fetching: Option<Fetching> = None;
        loop {
            if let Some(lease) = lease.as_deref_mut() {
                lease.check().await?;
            }
            let result = self.tick().await;
            on_pass(result.as_ref());
            if result.is_err() {
                let unrecorded = self.end_due_unrecorded().await;
                if !unrecorded.revokes.is_empty() {
                    on_pass(Ok(&unrecorded));
                }
            }
            if fetching.is_none() && tokio::time::Instant::now() >= keys_due {
                keys_due = tokio::time::Instant::now() + PROVIDER_KEYS_EVERY;
                fetching = self.fetch_provider_keys();
            }
            let wait = self.wait_after(&result, max_sleep);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = heard(listener.as_mut()) => {}
                fetched = async { (&mut fetching.as_mut().expect("selected only when some").0).await },
                    if fetching.is_some() =>
                {
                    fetching = None;
                    let report = self.record_fetched_keys(fetched.unwrap_or_default()).await;
                    if !report.provider_keys.is_empty() || !report.failures.is_empty() {
                        on_pass(Ok(&report));
                    }
                }
                () = &mut *stop => return Ok(()),
            }
        }
    }

    /// Starts fetching the key sets of the policy's identity providers, on a team's log with
    /// providers in its policy.
    fn fetch_provider_keys(&self) -> Option<Fetching> {
        let providers: Vec<_> = self
            .state()
            .policy()
            .map(|p| p.policy.providers.values().cloned().collect())
            .unwrap_or_default();
        if !self.members_append() || providers.is_empty() {
            return None;
        }
        Some(Fetching(tokio::spawn(crate::signin::fetch_provider_keys(
            providers,
            self.clock(),
        ))))
    }

    /// Records the provider keys fetched that are new to the log.
    async fn record_fetched_keys(&mut self, fetched: Vec<(String, FetchedKeys)>) -> TickReport {
        let mut report = TickReport::default();
        for (provider, jwks) in fetched {
            let recorded = match jwks {
                Ok(jwks) => self.record_provider_keys(&provider, &jwks).await,
                Err(e) => {
                    report.failures.push(format!(
                        "fetching the signing keys of identity provider {provider}: {e}"
                    ));
                    continue;
                }
            };
            match recorded {
                Ok(true) => report.provider_keys.push(provider),
                Ok(false) => {}
                Err(e) => report.failures.push(format!(
                    "recording the signing keys of identity provider {provider}: {e}"
                )),
            }
        }
        report
    }

    /// What a command runs first: a scheduler pass, unless a broker is acting on this log —
    /// then the pass is the broker's, and this only picks up what others appended (so a
    /// command never races the broker on a revoke). When the lease cannot even be tried (a
    /// read-only data directory, say), the pass runs as it always did.
    pub async fn tick_unless_brokered(&mut self) -> Result<TickReport, EngineError> {
        if self.is_member() {
            return self.tick().await;
        }
        match self.store().try_broker_lease().await {
            Ok(Some(lease)) => {
                let report = self.tick().await;
                lease.release().await;
                report
            }
            Ok(None) => {
                self.refresh().await?;
                Ok(TickReport::default())
            }
            Err(_) => self.tick().await,
        }
    }

    /// Follows the log until request `id` is granted or has ended (it is no longer pending or
    /// approved), for at most `limit`: its status then, or `None` when it is still waiting.
    /// In team mode each change is heard as it is committed; on the embedded log, which has no
    /// such channel, the log is read four times a second. Each look is what a command runs
    /// first ([`Engine::tick_unless_brokered`]), so without a broker the approval's grant
    /// still happens.
    pub async fn follow(
        &mut self,
        id: &RequestId,
        limit: Duration,
    ) -> Result<Option<Status>, EngineError> {
        let until = tokio::time::Instant::now() + limit;
        let mut listener = self.store().listen().await.ok().flatten();
        // With the channel a look now and then only guards against a silent connection.
        let poll = if listener.is_some() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(250)
        };
        loop {
            let status = self.state().request(id).map(|r| r.status).ok_or_else(|| {
                EngineError::Refused(breakglass_core::Refusal::UnknownRequest(*id))
            })?;
            if !matches!(status, Status::Pending | Status::Approved) {
                return Ok(Some(status));
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(None);
            }
            tokio::select! {
                () = tokio::time::sleep(poll.min(until - now)) => {}
                _ = heard(listener.as_mut()) => {}
            }
            self.tick_unless_brokered().await?;
        }
    }

    /// How long to sleep after a pass: until the next deadline, at most `max_sleep`.
    fn wait_after(
        &self,
        result: &Result<TickReport, EngineError>,
        max_sleep: Duration,
    ) -> Duration {
        let until = |due: Timestamp| {
            let ms = due.millis_since(self.now()).max(0);
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        };
        match result {
            Ok(_) => self
                .next_due()
                .map_or(max_sleep, |due| until(due).min(max_sleep)),
            // After a failed pass the fail-safe revokes ([`Engine::end_due_unrecorded`]) wake
            // for the next deadline it knows of, but retry no sooner than a failed revoke would.
            Err(_) => self
                .last_known
                .as_ref()
                .unwrap_or(self.state())
                .requests()
                .filter(|r| !self.revoked_unrecorded.contains_key(&r.id))
                .filter_map(revoke_due_at)
                .min()
                .map_or(max_sleep, |due| {
                    until(due)
                        .max(Duration::from_secs(REVOKE_RETRY_FIRST.as_secs()))
                        .min(max_sleep)
                }),
        }
    }
}
