//! Keeping the ChatGPT session alive: when to refresh, one refresh at a time, and never the same refresh
//! token twice.
//!
//! - Single flight: a caller notes how many attempts have completed, then waits for `store_io`; if an attempt
//!   completed meanwhile it takes that attempt's outcome instead of making another request.
//! - An attempt runs in a task of its own: a caller that goes away (a client disconnecting, shutdown) never
//!   cancels a request already on the wire, whose answer would be the only copy of the rotated token.
//! - Cross-process: `auth.lock` is held for the whole attempt, network call included; the store is re-read
//!   after taking it, and tokens another program wrote are adopted without a request. The new tokens replace
//!   the file only if it still holds what the attempt started from.
//! - Nothing redeemed is lost: if the new tokens cannot be written, they are served from memory and the write
//!   is retried (no network call) until it succeeds or another program replaces the file. A refresh token
//!   codexd has already redeemed is never sent again.
//! - Permanent failures (401, `refresh_token_*` codes) re-read the store under `auth.lock`, twice with a short
//!   grace (a Codex CLI that won the race may be waiting to write), then mark the credentials unusable until
//!   the store changes. Transient failures back off with jitter.
//! - [`spawn_scheduler`] refreshes proactively, `margin` before `exp` (clamped to half the token's lifetime),
//!   or 7 days after `last_refresh` when the token has no readable `exp`.

use crate::auth::{AuthDotJson, Credentials};
use crate::daemon::{Daemon, lock, read_with, run_blocking};
use crate::oauth::RefreshReason;
use crate::oauth::error::refresh_failed_message;
use crate::state::{Loaded, StoreRead};
use crate::store::Locked;
use chrono::{DateTime, TimeDelta, Utc};
use codexd_proto::methods::{AuthMode, AuthProblem, UpdateReason};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Without a readable `exp`, refresh when `last_refresh` is older than this (a day before the Codex CLI's 8).
pub const SCHEDULED_INTERVAL: TimeDelta = TimeDelta::days(7);
/// The scheduler re-plans at least this often, so a suspended machine catches up soon after it wakes.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Proactive refreshes are at least this far apart, whatever the issuer's clock says.
const MIN_PROACTIVE_GAP: Duration = Duration::from_secs(1);
/// After a refused refresh, how long to give a Codex CLI that won the race to write its tokens.
const PERMANENT_FAILURE_GRACE: Duration = Duration::from_millis(250);
/// How many redeemed refresh tokens are remembered (by SHA-256) so that none is ever sent again.
const REDEEMED_MEMORY: usize = 64;
/// The `reason` of an [`AuthProblem`] after a refresh refused for good.
pub const REFRESH_FAILED: &str = "refreshFailed";

/// How one refresh attempt ended.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// New tokens were obtained (and stored, or held in memory until they can be).
    Refreshed,
    /// Another program had already stored different credentials; they were taken without a request.
    Adopted,
    /// There is nothing to refresh: logged out, an API key, or the token is fresh already.
    NotRefreshable,
    /// The refresh token is dead; the credentials are marked unusable until the store changes.
    Failed(AuthProblem),
    /// The issuer could not be reached or answered an error that may pass; the old token is still served.
    Unavailable(String),
}

/// When an attempt that finds `store_io` free may skip the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A client asked: always refresh.
    Always,
    /// Only if the token is still stale (see [`stale`]); an answer is about to hand it out.
    IfStale,
    /// Only if the scheduler's plan still says it is due.
    IfDue,
}

/// The bookkeeping behind `store_io`: the last attempt's outcome, the backoff, and tokens not yet written.
#[derive(Debug, Default)]
pub struct RefreshRecord {
    last: Option<RefreshOutcome>,
    consecutive_transient: u32,
    retry_not_before: Option<Instant>,
    pending_write: Option<PendingWrite>,
    redeemed: VecDeque<[u8; 32]>,
}

/// Refreshed tokens that could not be written yet: `new` replaces the stored document only while the store
/// still holds `base`. They belong to the store they were refreshed from, and are written there even after the
/// configuration switched to another store. `Debug` shows `base` (the raw stored document) as its size only.
struct PendingWrite {
    base: Vec<u8>,
    new: AuthDotJson,
    store: Arc<crate::store::Store>,
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWrite")
            .field("base", &format_args!("{} bytes", self.base.len()))
            .field("new", &self.new)
            .field("store", &self.store.mode())
            .finish()
    }
}

impl RefreshRecord {
    /// The tokens waiting to be written to the store of `mode`, if any.
    fn pending_of(&self, mode: crate::settings::StoreMode) -> Option<&PendingWrite> {
        self.pending_write.as_ref().filter(|p| p.store.mode() == mode)
    }

    /// The document held in memory for the store `current` because it could not be written, if any (logout
    /// revokes its token; a migration moves it).
    pub fn pending_document(&self, current: &crate::store::Store) -> Option<AuthDotJson> {
        self.pending_of(current.mode()).map(|p| p.new.clone())
    }

    /// Forgets tokens not yet written to the store `current` (a logout or a login there replaces them; tokens of
    /// another store are kept).
    pub fn discard_pending(&mut self, current: &crate::store::Store) {
        if self.pending_of(current.mode()).is_some() {
            self.pending_write = None;
            tracing::warn!("dropping refreshed tokens that were never written: the store is being replaced");
        }
    }

    /// Forgets tokens not yet written because they are stored elsewhere now (a migration moved them).
    pub fn forget_pending(&mut self) {
        self.pending_write = None;
    }

    /// What the store held when tokens now waiting to be written to `current` were refreshed.
    pub(crate) fn pending_write_base(&self, current: &crate::store::Store) -> Option<Vec<u8>> {
        self.pending_of(current.mode()).map(|p| p.base.clone())
    }

    fn remember_redeemed(&mut self, refresh_token: &str) {
        if self.redeemed.len() == REDEEMED_MEMORY {
            self.redeemed.pop_front();
        }
        self.redeemed.push_back(Sha256::digest(refresh_token.as_bytes()).into());
    }

    fn was_redeemed(&self, refresh_token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        self.redeemed.contains(&digest)
    }

    fn note_transient(&mut self, min: Duration, max: Duration) -> Duration {
        self.consecutive_transient = self.consecutive_transient.saturating_add(1);
        let delay = backoff(self.consecutive_transient, min, max, rand::thread_rng().r#gen());
        self.retry_not_before = Some(Instant::now() + delay);
        delay
    }
}

impl Daemon {
    /// Refreshes now (a client asked), or joins the attempt in flight.
    pub async fn refresh(&self, reason: RefreshReason) -> RefreshOutcome {
        self.spawn_attempt(reason, Need::Always).await
    }

    /// Runs an attempt in a task of its own and waits for it. The attempt counter is read here, when the
    /// caller arrives, so an attempt that completes while the task waits for `store_io` is joined.
    async fn spawn_attempt(&self, reason: RefreshReason, need: Need) -> RefreshOutcome {
        let seen = self.refresh_attempts.load(Ordering::Acquire);
        let daemon = self.handle();
        match tokio::spawn(async move { daemon.attempt(reason, need, seen).await }).await {
            Ok(outcome) => outcome,
            Err(e) => RefreshOutcome::Unavailable(format!("the refresh task failed: {e}")),
        }
    }

    async fn attempt(&self, reason: RefreshReason, need: Need, seen: u64) -> RefreshOutcome {
        let mut record = self.store_io.lock().await;
        if self.refresh_attempts.load(Ordering::Acquire) != seen
            && let Some(last) = &record.last
        {
            return last.clone();
        }
        if need != Need::Always
            && let (Some(not_before), Some(last)) = (record.retry_not_before, &record.last)
            && Instant::now() < not_before
        {
            return last.clone();
        }
        let outcome = match self.flush_pending(&mut record).await {
            Err(message) => RefreshOutcome::Unavailable(message),
            Ok(()) if !self.needs_refresh(need) => RefreshOutcome::NotRefreshable,
            Ok(()) => self.refresh_locked(&mut record, reason).await,
        };
        let session = &self.config().session;
        if matches!(outcome, RefreshOutcome::Unavailable(_)) || record.pending_of(self.store().mode()).is_some() {
            let delay = record.note_transient(session.backoff_min, session.backoff_max);
            tracing::warn!(
                retry_in_ms = delay.as_millis() as u64,
                "refresh incomplete; still serving the current token"
            );
        } else {
            record.consecutive_transient = 0;
            record.retry_not_before = None;
        }
        record.last = Some(outcome.clone());
        self.refresh_attempts.fetch_add(1, Ordering::Release);
        outcome
    }

    fn needs_refresh(&self, need: Need) -> bool {
        let Loaded::LoggedIn(c) = self.snapshot().loaded else { return true };
        let now = Utc::now();
        match need {
            Need::Always => true,
            Need::IfStale => stale(&c, now),
            // Due by the earliest jitter: someone else may have renewed the token meanwhile.
            Need::IfDue => plan(&c, self.config().session.refresh_margin, 1.0).is_some_and(|(at, _)| at <= now),
        }
    }

    /// The backoff state, for the scheduler: whether tokens wait to be written, and when to try again.
    async fn retry_state(&self) -> (bool, Option<Instant>) {
        let record = self.store_io.lock().await;
        (record.pending_write.is_some(), record.retry_not_before)
    }

    /// Writes tokens held in memory, if any, to the store they were refreshed from, and only over what they were
    /// refreshed from; if another program replaced it meanwhile, its contents win. Tokens of a store the
    /// configuration has switched away from are retried without holding up the current store (their failure is
    /// logged, not returned). The caller holds `store_io`.
    pub(crate) async fn flush_pending(&self, record: &mut RefreshRecord) -> Result<(), String> {
        let Some(pending) = &record.pending_write else { return Ok(()) };
        let (base, new, store) = (pending.base.clone(), pending.new.clone(), pending.store.clone());
        let current = store.mode() == self.store().mode();
        match run_blocking(move || store.lock()?.replace_if_unchanged(&base, &new)).await {
            Ok(Some(written)) => {
                tracing::info!(location = written.location.as_str(), "refreshed tokens written");
                record.pending_write = None;
                Ok(())
            }
            Ok(None) => {
                tracing::warn!(
                    "another program replaced the stored login before codexd could write its refreshed tokens; taking its contents"
                );
                record.pending_write = None;
                if current {
                    let read = crate::daemon::read_store(&self.store()).await;
                    self.apply(read, UpdateReason::External);
                }
                Ok(())
            }
            Err(e) if !current => {
                tracing::error!(error = %e, "refreshed tokens of the previous store still cannot be written there");
                Ok(())
            }
            Err(e) => Err(format!("the refreshed tokens are served but cannot be written yet: {e}")),
        }
    }

    /// One attempt; the caller holds `store_io` and nothing is pending.
    async fn refresh_locked(&self, record: &mut RefreshRecord, reason: RefreshReason) -> RefreshOutcome {
        match self.snapshot().loaded {
            Loaded::LoggedIn(c) if c.mode == AuthMode::Chatgpt => {}
            Loaded::Unusable(problem) if problem.reason == REFRESH_FAILED => {
                // No request with a dead token, but the store may have changed unnoticed (a missed event).
                let read = crate::daemon::read_store(&self.store()).await;
                if self.apply(read, UpdateReason::External).is_some() {
                    return RefreshOutcome::Adopted;
                }
                return RefreshOutcome::Failed(problem);
            }
            _ => return RefreshOutcome::NotRefreshable,
        }
        let store = self.store();
        let store_lock = match run_blocking(move || store.lock()).await {
            Ok(store_lock) => Arc::new(store_lock),
            Err(e) => return RefreshOutcome::Unavailable(format!("cannot lock the credential store: {e}")),
        };
        // Another program may have rotated the tokens before we got the lock: adopt theirs.
        let read = read_locked(&store_lock).await;
        if let StoreRead::Unavailable(problem) = &read {
            return RefreshOutcome::Unavailable(problem.message.clone());
        }
        let base = match &read {
            StoreRead::Contents(bytes) => Some(bytes.clone()),
            _ => None,
        };
        if let Some(change) = self.apply(read, UpdateReason::External) {
            tracing::info!("skipping the refresh: another program changed the stored credentials");
            return match change.loaded {
                Loaded::LoggedIn(_) => RefreshOutcome::Adopted,
                Loaded::LoggedOut | Loaded::Unusable(_) => RefreshOutcome::NotRefreshable,
            };
        }
        let Some(base) = base else { return RefreshOutcome::NotRefreshable };
        let Some(doc) = AuthDotJson::parse(&base).ok().filter(|d| d.tokens.is_some()) else {
            return RefreshOutcome::NotRefreshable;
        };
        let tokens = doc.tokens.clone().expect("filtered above");
        if record.was_redeemed(tokens.refresh_token.expose()) {
            tracing::error!("auth.json holds a refresh token codexd has already redeemed; not sending it again");
            drop(store_lock);
            return self
                .permanent_failure(Some("refresh_token_reused".to_owned()), "a refresh token redeemed before")
                .await;
        }
        let url = self.issuer().endpoints().refresh_url(tokens.oauth_provenance.as_ref().map(|p| p.issuer.as_str()));
        tracing::info!(reason = reason.as_str(), token = %crate::auth::fingerprint(tokens.refresh_token.expose()), "refreshing the access token");
        match self.issuer().refresh(&url, &tokens.refresh_token, reason).await {
            Ok(response) => {
                record.remember_redeemed(tokens.refresh_token.expose());
                let mut doc = doc;
                let stored = doc.tokens.as_mut().expect("filtered above");
                if let Some(id_token) = response.id_token {
                    stored.id_token = id_token;
                }
                if let Some(access_token) = response.access_token {
                    stored.access_token = access_token;
                }
                if let Some(refresh_token) = response.refresh_token {
                    stored.refresh_token = refresh_token;
                }
                doc.last_refresh = Some(Utc::now());
                let (writer, expected, new) = (store_lock.clone(), base.clone(), doc.clone());
                match run_blocking(move || writer.replace_if_unchanged(&expected, &new)).await {
                    Ok(Some(written)) => {
                        drop(store_lock);
                        self.apply(StoreRead::Contents(written.contents), UpdateReason::Refresh);
                        tracing::info!("access token refreshed");
                        RefreshOutcome::Refreshed
                    }
                    Ok(None) => {
                        // A program that ignores auth.lock replaced the file during the request (an account
                        // switcher, an old Codex): its login wins over the refreshed old one.
                        tracing::warn!(
                            "auth.json was replaced during the refresh; taking the new contents and dropping the refreshed tokens"
                        );
                        let read = read_locked(&store_lock).await;
                        drop(store_lock);
                        self.apply(read, UpdateReason::External);
                        RefreshOutcome::Adopted
                    }
                    Err(e) => {
                        // The rotated refresh token exists only here now: serve it, and write it as soon as
                        // the store lets us (never redeem the old one again).
                        let store = store_lock.store().clone();
                        drop(store_lock);
                        tracing::error!(error = %e, "refreshed, but cannot write the new tokens yet; serving them from memory");
                        self.apply(StoreRead::Contents(doc.to_compact_bytes()), UpdateReason::Refresh);
                        record.pending_write = Some(PendingWrite { base, new: doc, store });
                        RefreshOutcome::Refreshed
                    }
                }
            }
            Err(error) if error.is_permanent_refresh_failure() => {
                drop(store_lock);
                tracing::warn!(%error, "the issuer refused the refresh token");
                self.permanent_failure(error.code().map(str::to_owned), &error.to_string()).await
            }
            Err(error) => RefreshOutcome::Unavailable(error.to_string()),
        }
    }

    /// After the issuer refused the refresh token for good: adopt what another program may have stored
    /// meanwhile (re-read under `auth.lock`, which a Codex CLI that won the race holds while it writes; once
    /// more after a short grace), else mark the credentials unusable. `auth.json` is never deleted for this.
    async fn permanent_failure(&self, code: Option<String>, detail: &str) -> RefreshOutcome {
        for grace in [Duration::ZERO, PERMANENT_FAILURE_GRACE] {
            tokio::time::sleep(grace).await;
            let store = self.store();
            let read = read_with(move || store.lock()?.read()).await;
            if self.apply(read, UpdateReason::External).is_some() {
                tracing::info!(
                    "the refresh token was refused, but another program has stored new credentials: adopted"
                );
                return RefreshOutcome::Adopted;
            }
        }
        let problem = AuthProblem {
            reason: REFRESH_FAILED.to_owned(),
            message: refresh_failed_message(code.as_deref()).to_owned(),
            issuer_code: code,
        };
        tracing::warn!(detail, "refresh failed for good; sign in again");
        self.mark_unusable(problem.clone(), UpdateReason::RefreshFailed);
        RefreshOutcome::Failed(problem)
    }

    /// Before a token is handed out: if it is already inside the Codex CLI's own 5-minute window (after a
    /// suspend, or an old file at startup; clamped to half its lifetime, as the scheduler's margin is), refresh
    /// it. An expired token waits for the refresh; one that is still valid is served at once while the refresh
    /// runs in the background, so an issuer that hangs never delays an answer that has a good token.
    /// `loaded` is the caller's snapshot; returns whether a refresh was waited for (the snapshot is then out of
    /// date).
    pub async fn refresh_if_stale(&self, loaded: &Loaded) -> bool {
        let Loaded::LoggedIn(c) = loaded else { return false };
        let now = Utc::now();
        if !stale(c, now) {
            return false;
        }
        let reason = if c.expires_at.is_some() { RefreshReason::ProactiveExpiry } else { RefreshReason::Scheduled };
        if c.expires_at.is_some_and(|exp| exp <= now) {
            self.spawn_attempt(reason, Need::IfStale).await;
            return true;
        }
        if !self.background_refresh.swap(true, Ordering::AcqRel) {
            let daemon = self.handle();
            tokio::spawn(async move {
                daemon.spawn_attempt(reason, Need::IfStale).await;
                daemon.background_refresh.store(false, Ordering::Release);
            });
        }
        false
    }

    /// The keyring poll: re-reads the store, unless a store operation is running (which reads it anyway).
    pub async fn poll_store(&self) {
        if self.store_io.try_lock().is_err() {
            return;
        }
        self.reload_external().await;
    }

    /// Re-reads the store after another program may have changed it, and tells subscribers when it did.
    /// Tokens held in memory are written first (or given up for the other program's file).
    pub async fn reload_external(&self) {
        let mut record = self.store_io.lock().await;
        if let Err(message) = self.flush_pending(&mut record).await {
            // The store still holds the old tokens: reading it would replace the new ones.
            tracing::warn!("{message}");
            return;
        }
        tracing::debug!("re-reading the credential store");
        let read = crate::daemon::read_store(&self.store()).await;
        if let Some(change) = self.apply(read, UpdateReason::External) {
            crate::daemon::log_loaded("credentials changed by another program", &change.loaded);
        } else {
            // A removal the policy asked for that failed (a locked keyring) is tried again.
            self.retry_refused_removal();
        }
    }
}

async fn read_locked(store_lock: &Arc<Locked>) -> StoreRead {
    let reader = store_lock.clone();
    read_with(move || reader.read()).await
}

/// Whether the token must be refreshed before it is handed out at `now`: the Codex CLI's rule
/// ([`Credentials::refresh_due`]: at most 5 minutes left, or no `exp` and an old `last_refresh`), with the
/// 5 minutes clamped to half the token's lifetime (`exp - last_refresh`) when that is known.
pub fn stale(credentials: &Credentials, now: DateTime<Utc>) -> bool {
    if !credentials.refresh_due(now) {
        return false;
    }
    match credentials.expires_at {
        Some(exp) => exp - now <= clamped_window(exp, credentials.last_refresh, crate::auth::REFRESH_BEFORE_EXPIRY),
        None => true,
    }
}

/// `window` before `exp`, clamped to half the token's lifetime (`exp - last_refresh`) when that is known: the
/// rule of both the scheduler's margin and the stale check, so that a short-lived token is not refreshed every
/// time it is looked at.
fn clamped_window(exp: DateTime<Utc>, last_refresh: Option<DateTime<Utc>>, window: TimeDelta) -> TimeDelta {
    last_refresh
        .map(|last| exp - last)
        .filter(|lifetime| *lifetime > TimeDelta::zero())
        .map_or(window, |l| window.min(l / 2))
}

/// When the credentials should next be refreshed, and why; `None` when they never need it.
pub fn plan(credentials: &Credentials, margin: Duration, jitter: f64) -> Option<(DateTime<Utc>, RefreshReason)> {
    if credentials.mode != AuthMode::Chatgpt {
        return None;
    }
    match (credentials.expires_at, credentials.last_refresh) {
        (Some(exp), last) => {
            let margin = clamped_window(exp, last, TimeDelta::from_std(margin).unwrap_or(TimeDelta::MAX));
            // Up to a tenth of the margin (at most 30 s) earlier, so that daemons on several machines sharing
            // an account do not all ask at the same second.
            let spread = (margin / 10).min(TimeDelta::seconds(30));
            let jitter = TimeDelta::milliseconds((spread.num_milliseconds() as f64 * jitter.clamp(0.0, 1.0)) as i64);
            Some((exp - margin - jitter, RefreshReason::ProactiveExpiry))
        }
        (None, Some(last)) => Some((last + SCHEDULED_INTERVAL, RefreshReason::Scheduled)),
        (None, None) => Some((Utc::now(), RefreshReason::Scheduled)),
    }
}

/// The delay before retry number `failures` (1-based): `min` doubled each time, capped at `max`, then scaled
/// by a random factor in [0.5, 1.0] so that many daemons do not retry in step.
pub fn backoff(failures: u32, min: Duration, max: Duration, random: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let delay = min.saturating_mul(1 << exponent).min(max);
    delay.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
}

/// Starts the task that refreshes proactively until shutdown. An attempt in flight at shutdown is not
/// cancelled (it runs in its own task); `run` waits for it.
pub fn spawn_scheduler(daemon: Arc<Daemon>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut generations = daemon.watch_generation();
        let shutdown = daemon.shutdown_token().clone();
        let mut jitter: f64 = rand::thread_rng().r#gen();
        let mut last_attempt: Option<Instant> = None;
        loop {
            let due = match daemon.snapshot().loaded {
                Loaded::LoggedIn(c) => plan(&c, daemon.config().session.refresh_margin, jitter),
                _ => None,
            };
            *lock(&daemon.next_refresh) = due.map(|(at, _)| at);
            let (pending, not_before) = daemon.retry_state().await;
            let retry_in = not_before.map(|at| at.saturating_duration_since(Instant::now()));
            let wait = if pending {
                Some(retry_in.unwrap_or(Duration::ZERO))
            } else {
                due.map(|(at, _)| {
                    let mut wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.max(retry_in.unwrap_or(Duration::ZERO));
                    if let Some(last) = last_attempt {
                        wait = wait.max(MIN_PROACTIVE_GAP.saturating_sub(last.elapsed()));
                    }
                    wait
                })
            };
            let sleep = tokio::time::sleep(wait.map_or(MAX_SLEEP, |w| w.min(MAX_SLEEP)));
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    jitter = rand::thread_rng().r#gen();
                }
                () = sleep => {
                    let reason = match due {
                        Some((at, reason)) if pending || Utc::now() >= at => reason,
                        _ if pending => RefreshReason::ProactiveExpiry,
                        _ => continue,
                    };
                    last_attempt = Some(Instant::now());
                    let outcome = daemon.spawn_attempt(reason, Need::IfDue).await;
                    tracing::debug!(?outcome, "scheduled refresh");
                    // An issuer that answers without moving `exp` forward would make the token due again at
                    // once: wait a full re-plan period rather than ask every second.
                    if matches!(outcome, RefreshOutcome::Refreshed)
                        && daemon.needs_refresh(Need::IfDue)
                    {
                        tracing::warn!("the refreshed access token is already due again; check the issuer's clock");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(MAX_SLEEP) => {}
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use codexd_proto::Secret;

    fn chatgpt(expires_at: Option<DateTime<Utc>>, last_refresh: Option<DateTime<Utc>>) -> Credentials {
        Credentials {
            mode: AuthMode::Chatgpt,
            bearer: Secret::new("at"),
            refresh_token: Some(Secret::new("rt")),
            account_id: None,
            user_id: None,
            plan_type: None,
            email: None,
            expires_at,
            last_refresh,
        }
    }

    #[test]
    fn a_long_lived_token_is_refreshed_ten_minutes_early() {
        let now = Utc::now();
        let exp = now + TimeDelta::hours(1);
        let (at, reason) = plan(&chatgpt(Some(exp), Some(now)), Duration::from_secs(600), 0.0).unwrap();
        assert_eq!((at, reason), (exp - TimeDelta::minutes(10), RefreshReason::ProactiveExpiry));
        let (jittered, _) = plan(&chatgpt(Some(exp), Some(now)), Duration::from_secs(600), 1.0).unwrap();
        assert_eq!(jittered, exp - TimeDelta::minutes(10) - TimeDelta::seconds(30));
    }

    #[test]
    fn a_short_lived_token_is_refreshed_at_half_its_life() {
        let now = Utc::now();
        let exp = now + TimeDelta::seconds(4);
        let (at, _) = plan(&chatgpt(Some(exp), Some(now)), Duration::from_secs(600), 0.0).unwrap();
        assert_eq!(at, now + TimeDelta::seconds(2));
    }

    #[test]
    fn a_token_is_stale_in_the_codex_window_clamped_to_half_its_life() {
        let now = Utc::now();
        // An hour-long token: the Codex CLI's 5 minutes.
        let hour =
            chatgpt(Some(now + TimeDelta::seconds(290)), Some(now + TimeDelta::seconds(290) - TimeDelta::hours(1)));
        assert!(stale(&hour, now));
        assert!(!stale(&hour, now - TimeDelta::seconds(20)));
        // A 4-second token: stale only in its second half, not on every request.
        let short = chatgpt(Some(now + TimeDelta::seconds(4)), Some(now));
        assert!(!stale(&short, now + TimeDelta::milliseconds(1900)));
        assert!(stale(&short, now + TimeDelta::milliseconds(2100)));
        // Expired, with a last_refresh after exp (a hand-made file): stale.
        assert!(stale(&chatgpt(Some(now - TimeDelta::seconds(60)), Some(now)), now));
        assert!(stale(&chatgpt(Some(now + TimeDelta::seconds(60)), None), now));
        let mut key = chatgpt(None, None);
        key.mode = AuthMode::ApiKey;
        assert!(!stale(&key, now));
    }

    #[test]
    fn without_exp_the_token_is_refreshed_weekly() {
        let last = Utc::now() - TimeDelta::days(1);
        let (at, reason) = plan(&chatgpt(None, Some(last)), Duration::from_secs(600), 0.5).unwrap();
        assert_eq!((at, reason), (last + TimeDelta::days(7), RefreshReason::Scheduled));
        let mut key = chatgpt(None, None);
        key.mode = AuthMode::ApiKey;
        assert!(plan(&key, Duration::from_secs(600), 0.5).is_none());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(backoff(1, min, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(4, min, max, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(40, min, max, 1.0), max);
        assert_eq!(backoff(4, min, max, 0.0), Duration::from_secs(4));
    }

    #[test]
    fn debug_of_tokens_waiting_to_be_written_shows_no_secret() {
        const CHATGPT: &[u8] = include_bytes!("../../tests/data/auth-chatgpt.json");
        let home = tempfile::tempdir().unwrap();
        let backends = crate::store::Backends {
            file: crate::auth::AuthFile::new(home.path().to_owned()),
            keyring: crate::store::Keyring::new(home.path(), Duration::from_secs(1)),
            memory: crate::store::Memory::default(),
        };
        let doc = AuthDotJson::parse(CHATGPT).unwrap();
        let tokens = doc.tokens.clone().unwrap();
        let record = RefreshRecord {
            pending_write: Some(PendingWrite {
                base: CHATGPT.to_vec(),
                new: doc,
                store: backends.store(crate::settings::StoreMode::File),
            }),
            ..RefreshRecord::default()
        };
        // The ephemeral store holds the document too.
        let memory = backends.store(crate::settings::StoreMode::Ephemeral);
        let written = memory.lock().unwrap().write(&AuthDotJson::parse(CHATGPT).unwrap()).unwrap();
        let shown = format!("{record:?} {backends:?} {memory:?}");
        assert!(shown.contains(&format!("{} bytes", CHATGPT.len())), "{shown}");
        assert!(shown.contains(&format!("{} bytes", written.contents.len())), "{shown}");
        for secret in [tokens.refresh_token.expose(), tokens.access_token.expose(), tokens.id_token.expose()] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
