//! The daemon's credential service: the one place that holds the state lock and talks to the store.
//!
//! Invariants: the state lives in one `std::sync::Mutex`, held for short critical sections and never across an
//! `.await`; store I/O (reads, writes, and a refresh's whole network call) is serialised by `store_io`, which
//! guards only the refresh bookkeeping, and file work runs on the blocking pool; a notification is published
//! while the state lock is held, so subscribers see generations in order. Logout and login wait for a refresh
//! in flight (bounded by the HTTP timeout) rather than cancel it: its answer may hold the only copy of the
//! rotated refresh token.

use crate::auth::{AuthDotJson, AuthFile};
use crate::config::Config;
use crate::events::{EncodedLine, Events};
use crate::oauth::Issuer;
use crate::refresh::RefreshRecord;
use crate::state::{Change, CredentialState, Loaded, StoreRead};
use codexd_proto::methods::{AccountUpdated, LoginCompleted, UpdateReason, notification};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The auth file could not be changed.
    #[error(transparent)]
    File(#[from] crate::auth::AuthFileError),
    /// The blocking task died.
    #[error("the credential store task failed: {0}")]
    Task(String),
}

/// A point-in-time copy of what clients may ask about.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Credential generation.
    pub generation: u64,
    /// The credentials, or why there are none.
    pub loaded: Loaded,
}

/// Connection and subscriber counts.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    subscribers: AtomicU64,
}

/// Counts a connection (or subscriber) for as long as it lives.
#[derive(Debug)]
pub struct CountGuard<'a>(&'a AtomicU64);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The credential service shared by every connection.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    started: Instant,
    pub(crate) auth_file: AuthFile,
    state: Mutex<CredentialState>,
    /// Serialises store I/O; holds the refresh bookkeeping (single flight, backoff).
    pub(crate) store_io: tokio::sync::Mutex<RefreshRecord>,
    /// Completed refresh attempts, readable without waiting for `store_io` (single flight, see `refresh`).
    pub(crate) refresh_attempts: AtomicU64,
    /// Set while a background refresh (started by a reader of a stale but valid token) is queued or running.
    pub(crate) background_refresh: AtomicBool,
    /// When the scheduler plans the next refresh (for `daemon/status`).
    pub(crate) next_refresh: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    pub(crate) issuer: Issuer,
    pub(crate) logins: crate::login::Logins,
    generation_tx: watch::Sender<u64>,
    events: Events,
    counters: Counters,
    shutdown: CancellationToken,
    weak: Weak<Daemon>,
}

impl Daemon {
    /// Reads the store once and builds the service.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Arc<Daemon>, crate::oauth::ca::CaError> {
        let auth_file = AuthFile::new(config.codex_home.clone());
        let http = crate::oauth::ca::http_client(config.session.ca_bundle.as_ref(), config.session.http_timeout)?;
        let session = &config.session;
        let issuer = Issuer::new(http, session.http_timeout, session.endpoints.clone(), session.originator.clone());
        let read = read_store(&auth_file).await;
        let state = CredentialState::new(read);
        log_loaded("loaded credentials", state.loaded());
        let (generation_tx, _) = watch::channel(state.generation());
        Ok(Arc::new_cyclic(|weak| Daemon {
            config,
            started: Instant::now(),
            auth_file,
            state: Mutex::new(state),
            store_io: tokio::sync::Mutex::new(RefreshRecord::default()),
            refresh_attempts: AtomicU64::new(0),
            background_refresh: AtomicBool::new(false),
            next_refresh: Mutex::new(None),
            issuer,
            logins: crate::login::Logins::default(),
            generation_tx,
            events: Events::new(),
            counters: Counters::default(),
            shutdown,
            weak: weak.clone(),
        }))
    }

    /// A counted handle on this daemon, for tasks that outlive a request (logins).
    pub fn handle(&self) -> Arc<Daemon> {
        // The daemon is only ever reached through an `Arc`, so upgrading cannot fail while `self` is borrowed.
        self.weak.upgrade().expect("the daemon is alive while borrowed")
    }

    /// Wakes whenever the credential generation changes.
    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.generation_tx.subscribe()
    }

    /// The issuer client.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The configuration the daemon runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The daemon-wide shutdown signal.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The credentials as they are now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock_state();
        Snapshot { generation: state.generation(), loaded: state.loaded().clone() }
    }

    /// Subscribes to notifications.
    pub fn subscribe(&self) -> broadcast::Receiver<EncodedLine> {
        self.events.subscribe()
    }

    /// Counts an open connection until the guard drops.
    pub fn count_connection(&self) -> CountGuard<'_> {
        count(&self.counters.connections)
    }

    /// Counts a subscriber until the guard drops.
    pub fn count_subscriber(&self) -> CountGuard<'_> {
        count(&self.counters.subscribers)
    }

    /// Open connections and subscribers.
    pub fn counts(&self) -> (u64, u64) {
        (self.counters.connections.load(Ordering::Relaxed), self.counters.subscribers.load(Ordering::Relaxed))
    }

    /// Logs out as the Codex CLI does: revokes the refresh token (best effort, at most 10 s), removes the stored
    /// credentials under the Codex CLI's locks, and tells every subscriber. Logging out when nothing is stored
    /// changes nothing and tells nobody. A refresh in flight finishes first (its answer is revoked too).
    pub async fn logout(&self) -> Result<(), StoreError> {
        let mut record = self.store_io.lock().await;
        let pending = record.pending_document();
        self.revoke_stored(pending).await;
        let file = self.auth_file.clone();
        let removed = run_blocking(move || file.remove()).await?;
        record.discard_pending();
        if removed {
            tracing::info!("logged out: auth.json removed");
        }
        self.apply(StoreRead::Absent, UpdateReason::Logout);
        Ok(())
    }

    /// Stores the credentials of a successful login, replacing what was there, and tells every subscriber.
    pub async fn save_login(&self, doc: AuthDotJson) -> Result<(), StoreError> {
        let mut record = self.store_io.lock().await;
        let bytes = doc.to_file_bytes();
        let file = self.auth_file.clone();
        let written = bytes.clone();
        run_blocking(move || file.write(&written)).await?;
        record.discard_pending();
        tracing::info!("login stored in auth.json");
        self.apply(StoreRead::Contents(bytes), UpdateReason::Login);
        Ok(())
    }

    /// Waits until no store operation or refresh is in flight (at shutdown), at most `limit`.
    pub async fn quiesce(&self, limit: Duration) {
        if tokio::time::timeout(limit, self.store_io.lock()).await.is_err() {
            tracing::warn!("shutting down with a store operation still in progress");
        }
    }

    /// Tells every subscriber how a login ended.
    pub fn publish_login_completed(&self, completed: &LoginCompleted) {
        self.events.publish(notification::LOGIN_COMPLETED, completed);
    }

    /// Best-effort revoke of the refresh token of `pending` (tokens not written yet), else of the stored one;
    /// failures are logged, never returned.
    async fn revoke_stored(&self, pending: Option<AuthDotJson>) {
        let doc = match pending {
            Some(doc) => doc,
            None => {
                let file = self.auth_file.clone();
                let Ok(Some(doc)) = run_blocking(move || file.load()).await else { return };
                doc
            }
        };
        if doc.resolved_mode() != Some(codexd_proto::methods::AuthMode::Chatgpt) {
            return;
        }
        let Some(tokens) = doc.tokens else { return };
        let url = self.issuer.endpoints().revoke_url(tokens.oauth_provenance.as_ref().map(|p| p.issuer.as_str()));
        match self.issuer.revoke_refresh_token(&url, &tokens.refresh_token).await {
            Ok(()) => tracing::info!("refresh token revoked"),
            Err(e) => tracing::warn!(error = %e, "could not revoke the refresh token; logging out anyway"),
        }
    }

    /// Takes a reading of the store; publishes `account/updated` when it is a change.
    pub(crate) fn apply(&self, read: StoreRead, reason: UpdateReason) -> Option<Change> {
        let mut state = self.lock_state();
        let change = state.observe(read, reason)?;
        self.publish_change(&change);
        Some(change)
    }

    /// Marks the credentials unusable after a permanent refresh failure; publishes `account/updated`.
    pub(crate) fn apply_refresh_failure(&self, problem: codexd_proto::methods::AuthProblem) -> Option<Change> {
        let mut state = self.lock_state();
        let change = state.fail_refresh(problem)?;
        self.publish_change(&change);
        Some(change)
    }

    fn publish_change(&self, change: &Change) {
        self.events.publish(notification::ACCOUNT_UPDATED, &account_updated(change));
        self.generation_tx.send_replace(change.generation);
    }

    fn lock_state(&self) -> MutexGuard<'_, CredentialState> {
        // A panic while holding the lock cannot leave the state half-updated (observe assigns whole fields), so a
        // poisoned lock is still sound to use.
        lock(&self.state)
    }
}

/// Locks a std mutex; the data behind these locks is always whole, so a poisoned lock is still sound to use.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `account/updated` payload for a change.
pub fn account_updated(change: &Change) -> AccountUpdated {
    let (auth_mode, plan_type, account_id, auth_error) = match &change.loaded {
        Loaded::LoggedIn(c) => (Some(c.mode), c.plan_type.clone(), c.account_id.clone(), None),
        Loaded::LoggedOut => (None, None, None, None),
        Loaded::Unusable(problem) => (None, None, None, Some(problem.clone())),
    };
    AccountUpdated {
        auth_mode,
        plan_type,
        account_id,
        generation: change.generation,
        reason: change.reason,
        auth_error,
    }
}

fn count(counter: &AtomicU64) -> CountGuard<'_> {
    counter.fetch_add(1, Ordering::Relaxed);
    CountGuard(counter)
}

pub(crate) async fn read_store(file: &AuthFile) -> StoreRead {
    let file = file.clone();
    read_with(move || file.read()).await
}

/// Runs one reading of the store (plain, or under `auth.lock`) on the blocking pool, as a [`StoreRead`].
pub(crate) async fn read_with(
    read: impl FnOnce() -> Result<Option<Vec<u8>>, crate::auth::AuthFileError> + Send + 'static,
) -> StoreRead {
    match run_blocking(read).await {
        Ok(Some(bytes)) => StoreRead::Contents(bytes),
        Ok(None) => StoreRead::Absent,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the credential store");
            StoreRead::Failed(e.to_string())
        }
    }
}

pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::auth::AuthFileError> + Send + 'static,
) -> Result<T, StoreError> {
    // No outer timeout: `AuthFile` bounds its own lock waits (10 s + 2 s), and giving up on a blocking task that
    // goes on running would release `store_io` while the file is still being changed.
    match tokio::task::spawn_blocking(f).await {
        Err(join) => Err(StoreError::Task(join.to_string())),
        Ok(result) => Ok(result?),
    }
}

pub(crate) fn log_loaded(what: &str, loaded: &Loaded) {
    match loaded {
        Loaded::LoggedOut => tracing::info!("{what}: not logged in"),
        Loaded::LoggedIn(c) => tracing::info!(
            mode = ?c.mode,
            account = c.account_id.as_deref().unwrap_or("-"),
            expires = ?c.expires_at,
            token = %crate::auth::fingerprint(c.bearer.expose()),
            "{what}"
        ),
        Loaded::Unusable(problem) => tracing::warn!(reason = %problem.reason, problem = %problem.message, "{what}"),
    }
}
