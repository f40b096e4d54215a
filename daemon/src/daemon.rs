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
use crate::settings::{Settings, SettingsSources, StoreMode};
use crate::state::{Change, CredentialState, Loaded, StoreRead};
use crate::store::{Backends, Keyring, Store};
use codexd_proto::methods::{AccountUpdated, LoginCompleted, UpdateReason, notification};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

pub use crate::store::StoreError;

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
    backends: Backends,
    /// The configured store; replaced (under `store_io`) when `cli_auth_credentials_store` changes. A watch
    /// channel, so that the keyring poll can wait for a store that has a keyring.
    store_tx: watch::Sender<Arc<Store>>,
    sources: SettingsSources,
    /// The last good settings (a file that cannot be used keeps these).
    settings: Mutex<Arc<Settings>>,
    /// Serialises config reloads, so that a login that re-reads the config first never stores into a store
    /// that a reload in progress is replacing.
    settings_io: tokio::sync::Mutex<()>,
    /// Why the config files cannot be used right now, if they cannot.
    config_problem: Mutex<Option<codexd_proto::methods::AuthProblem>>,
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
    /// Reads the config files and the store once and builds the service.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Arc<Daemon>, crate::RunError> {
        let sources = SettingsSources::new(config.codex_home.clone(), config.system_config_dir.clone());
        let settings = {
            let sources = sources.clone();
            tokio::task::spawn_blocking(move || sources.load())
                .await
                .map_err(|e| crate::RunError::Task(e.to_string()))??
        };
        let http = crate::oauth::ca::http_client(config.session.ca_bundle.as_ref(), config.session.http_timeout)?;
        let session = &config.session;
        let issuer = Issuer::new(http, session.http_timeout, session.endpoints.clone(), session.originator.clone());
        let backends = Backends {
            file: AuthFile::new(config.codex_home.clone()),
            keyring: Keyring::new(&config.codex_home, config.keyring_timeout),
            memory: crate::store::Memory::default(),
        };
        let store = backends.store(settings.store);
        let read = read_store(&store).await;
        let state = CredentialState::new(read, settings.policy.clone());
        tracing::info!(store = %settings.store, "credential store");
        log_loaded("loaded credentials", state.loaded());
        let (generation_tx, _) = watch::channel(state.generation());
        Ok(Arc::new_cyclic(|weak| Daemon {
            config,
            started: Instant::now(),
            backends,
            store_tx: watch::channel(store).0,
            sources,
            settings: Mutex::new(Arc::new(settings)),
            settings_io: tokio::sync::Mutex::new(()),
            config_problem: Mutex::new(None),
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
    /// credentials under the Codex CLI's locks (in `keyring` and `auto` mode from both the keyring and
    /// `auth.json`), and tells every subscriber. Logging out when nothing is stored changes nothing and tells
    /// nobody. A refresh in flight finishes first (its answer is revoked too).
    pub async fn logout(&self) -> Result<(), StoreError> {
        let mut record = self.store_io.lock().await;
        let store = self.store();
        let pending = record.pending_document(&store);
        let revoked = self.revoke_stored(pending).await;
        let target = store.clone();
        let removed = match run_blocking(move || target.lock()?.remove()).await {
            Ok(removed) => removed,
            Err(e) if revoked => {
                // The refresh token is dead: serving the stored login on would only fail later.
                let problem = codexd_proto::methods::AuthProblem::new(
                    "logoutIncomplete",
                    format!(
                        "the refresh token was revoked, but the stored login could not be removed ({e}); run \
                         `codexctl logout` again once the store is reachable"
                    ),
                );
                self.mark_unusable(problem, UpdateReason::Logout);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        record.discard_pending(&store);
        if removed {
            tracing::info!("logged out: stored credentials removed");
        }
        self.apply(StoreRead::Absent, UpdateReason::Logout);
        Ok(())
    }

    /// Stores the credentials of a successful login, replacing what was there, and tells every subscriber.
    pub async fn save_login(&self, doc: AuthDotJson) -> Result<(), StoreError> {
        let mut record = self.store_io.lock().await;
        let store = self.store();
        let writer = store.clone();
        let written = run_blocking(move || writer.lock()?.write(&doc)).await?;
        record.discard_pending(&store);
        tracing::info!(location = written.location.as_str(), "login stored");
        self.apply(StoreRead::Contents(written.contents), UpdateReason::Login);
        Ok(())
    }

    /// The configured store.
    pub fn store(&self) -> Arc<Store> {
        self.store_tx.borrow().clone()
    }

    /// The last good settings.
    pub fn settings(&self) -> Arc<Settings> {
        lock(&self.settings).clone()
    }

    /// Why the config files cannot be used right now, if they cannot.
    pub fn config_problem(&self) -> Option<codexd_proto::methods::AuthProblem> {
        lock(&self.config_problem).clone()
    }

    /// Where settings are read from.
    pub fn settings_sources(&self) -> &SettingsSources {
        &self.sources
    }

    /// Re-reads the config files. A file that cannot be used is reported (`daemon/status`) and the last good
    /// settings stay; otherwise a new policy is enforced at once and a new store mode is switched to.
    pub async fn reload_settings(&self) {
        let _reloading = self.settings_io.lock().await;
        let sources = self.sources.clone();
        let loaded = match tokio::task::spawn_blocking(move || sources.load()).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "the config reading task failed");
                return;
            }
        };
        let settings = match loaded {
            Ok(settings) => settings,
            Err(e) => {
                let message = format!("{e}; codexd keeps the last good configuration");
                let mut problem = lock(&self.config_problem);
                if problem.as_ref().is_none_or(|p| p.message != message) {
                    tracing::error!("{message}");
                }
                *problem = Some(codexd_proto::methods::AuthProblem::new("configInvalid", message));
                return;
            }
        };
        if lock(&self.config_problem).take().is_some() {
            tracing::info!("the config files are usable again");
        }
        // A new store is switched to under `store_io`, with the settings, so that no store operation sees the
        // new settings with the old store.
        let mut record = if self.settings().store == settings.store { None } else { Some(self.store_io.lock().await) };
        let previous = std::mem::replace(&mut *lock(&self.settings), Arc::new(settings.clone()));
        if let Some(record) = record.as_mut() {
            self.switch_store(record, settings.store).await;
        }
        if previous.policy != settings.policy {
            tracing::info!("login policy changed");
            self.apply_policy(settings.policy.clone());
        }
    }

    /// Serves from the store of `mode` from now on: the credentials there replace the ones held (reason
    /// `external`), as the Codex CLI would read them after the change. The caller holds `store_io`.
    async fn switch_store(&self, record: &mut crate::refresh::RefreshRecord, mode: StoreMode) {
        if let Err(message) = self.flush_pending(record).await {
            // Kept, and written to the old store as soon as it lets codexd (`store/migrate` can move it too).
            tracing::error!("{message}; switching stores anyway and retrying that write to the old store");
        }
        let (old, change) = self.serve_from(self.backends.store(mode)).await;
        tracing::info!(from = %old.mode(), to = %mode, "credential store changed");
        if let Some(change) = change {
            log_loaded("credentials from the new store", &change.loaded);
        }
    }

    /// Serves what `store` holds from now on (the caller holds `store_io`): it becomes the configured store, and
    /// its reading replaces the credentials held (reason `external`; the same document is no change). What the
    /// old store held is not the login any more, even when the new one cannot be read. Returns the old store.
    pub(crate) async fn serve_from(&self, store: Arc<Store>) -> (Arc<Store>, Option<Change>) {
        let old = self.replace_store(store);
        let read = match read_store(&self.store()).await {
            StoreRead::Unavailable(problem) => StoreRead::Failed(problem),
            read => read,
        };
        (old, self.apply(read, UpdateReason::External))
    }

    /// Records `settings` as the last good ones (a migration changed the store itself).
    pub(crate) fn adopt_settings(&self, settings: Settings) {
        *lock(&self.settings) = Arc::new(settings);
    }

    /// Replaces the configured store (the caller holds `store_io`) and returns the old one.
    fn replace_store(&self, store: Arc<Store>) -> Arc<Store> {
        self.store_tx.send_replace(store)
    }

    /// Wakes whenever the configured store changes.
    pub fn watch_store(&self) -> watch::Receiver<Arc<Store>> {
        self.store_tx.subscribe()
    }

    /// Removes the stored credentials if the policy refused them when the daemon started (a change of the
    /// store or the policy later does this on its own).
    pub fn enforce_policy_at_start(&self) {
        self.remove_if_refused(&self.snapshot().loaded);
    }

    /// The store of `mode` over this daemon's backends.
    pub(crate) fn store_for(&self, mode: StoreMode) -> Arc<Store> {
        self.backends.store(mode)
    }

    /// Applies a new login policy to the held credentials; refused ones are removed.
    fn apply_policy(&self, policy: crate::policy::LoginPolicy) {
        let mut state = self.lock_state();
        if let Some(change) = state.set_policy(policy) {
            self.publish_change(&change);
            drop(state);
            self.remove_if_refused(&change.loaded);
        }
    }

    /// At shutdown: waits until no store operation or refresh is in flight (at most `limit`), then keeps
    /// `store_io` until exit, so that nothing starts meanwhile. Tokens refreshed but not written yet get one last
    /// try; in `ephemeral` mode the login ends (its refresh token is revoked).
    pub async fn finish(&self, limit: Duration) -> Option<tokio::sync::MutexGuard<'_, RefreshRecord>> {
        let Ok(mut record) = tokio::time::timeout(limit, self.store_io.lock()).await else {
            tracing::warn!("shutting down with a store operation still in progress");
            return None;
        };
        if let Err(message) = self.flush_pending(&mut record).await {
            tracing::error!("{message}; exiting anyway: the refreshed login is lost and needs a new sign-in");
        }
        self.forget_ephemeral(&record).await;
        Some(record)
    }

    /// In `ephemeral` mode stopping the daemon is a logout: the refresh token is revoked (best effort, bounded
    /// like a logout's) and the memory store cleared. Other modes keep their login.
    async fn forget_ephemeral(&self, record: &crate::refresh::RefreshRecord) {
        let store = self.store();
        if store.mode() != StoreMode::Ephemeral {
            return;
        }
        let _ = self.revoke_stored(record.pending_document(&store)).await;
        if let Ok(true) = run_blocking(move || store.lock()?.remove()).await {
            tracing::info!("ephemeral store: the login ends with the daemon");
        }
    }

    /// Tells every subscriber how a login ended.
    pub fn publish_login_completed(&self, completed: &LoginCompleted) {
        self.events.publish(notification::LOGIN_COMPLETED, completed);
    }

    /// Best-effort revoke of the refresh token of `pending` (tokens not written yet), else of the stored one;
    /// returns whether a token was revoked (failures are logged, never returned).
    async fn revoke_stored(&self, pending: Option<AuthDotJson>) -> bool {
        let doc = match pending {
            Some(doc) => doc,
            None => {
                let store = self.store();
                let Ok(reading) = run_blocking(move || store.read()).await else { return false };
                let Some(doc) = reading.contents.and_then(|bytes| AuthDotJson::parse(&bytes).ok()) else {
                    return false;
                };
                doc
            }
        };
        if doc.resolved_mode() != Some(codexd_proto::methods::AuthMode::Chatgpt) {
            return false;
        }
        let Some(tokens) = doc.tokens else { return false };
        let url = self.issuer.endpoints().revoke_url(tokens.oauth_provenance.as_ref().map(|p| p.issuer.as_str()));
        match self.issuer.revoke_refresh_token(&url, &tokens.refresh_token).await {
            Ok(()) => {
                tracing::info!("refresh token revoked");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not revoke the refresh token; logging out anyway");
                false
            }
        }
    }

    /// Takes a reading of the store; publishes `account/updated` when it is a change. A keyring that cannot be
    /// asked right now changes nothing while the state comes from a good reading: usable credentials are served
    /// on, and a `refreshFailed` or `policy` mark stays.
    pub(crate) fn apply(&self, read: StoreRead, reason: UpdateReason) -> Option<Change> {
        let mut state = self.lock_state();
        if let StoreRead::Unavailable(problem) = &read
            && state.holds_a_reading()
        {
            tracing::debug!(reason = %problem.reason, "the keyring cannot be read; serving the credentials held");
            return None;
        }
        let change = state.observe(read, reason)?;
        self.publish_change(&change);
        drop(state);
        self.remove_if_refused(&change.loaded);
        Some(change)
    }

    /// If the login policy refused the credentials (`loaded` is its mark), removes them from the store (never
    /// revoked, as the Codex CLI), in a task of its own since the caller may hold `store_io`.
    fn remove_if_refused(&self, loaded: &Loaded) {
        if let Loaded::Unusable(problem) = loaded
            && problem.reason == crate::state::POLICY
        {
            tracing::warn!("{}", problem.message);
            self.spawn_refused_removal();
        }
    }

    /// Removes refused credentials again if an earlier removal failed.
    pub(crate) fn retry_refused_removal(&self) {
        if self.lock_state().refused_still_stored() {
            self.spawn_refused_removal();
        }
    }

    /// Runs [`Daemon::remove_refused`] in a task of its own (its callers may hold `store_io`).
    fn spawn_refused_removal(&self) {
        let daemon = self.handle();
        tokio::spawn(async move { daemon.remove_refused().await });
    }

    /// Removes credentials the policy refused, if the store still holds them (re-read under `auth.lock`) and the
    /// policy still refuses them.
    async fn remove_refused(&self) {
        let mut record = self.store_io.lock().await;
        if !self.snapshot().loaded.is_policy_refusal() {
            return;
        }
        let store = self.store();
        let to_lock = store.clone();
        let locked = match run_blocking(move || to_lock.lock()).await {
            Ok(locked) => Arc::new(locked),
            Err(e) => {
                tracing::error!(error = %e, "cannot remove the credentials the login policy refuses");
                return;
            }
        };
        // Tokens refreshed but not written yet are the refused login's: the stored document is its older copy.
        let pending_base = record.pending_write_base(&store);
        let reader = locked.clone();
        let read = match read_with(move || reader.read()).await {
            StoreRead::Contents(bytes) if pending_base.as_ref() == Some(&bytes) => None,
            read => Some(read),
        };
        if let Some(read) = read
            && (self.apply(read, UpdateReason::External).is_some() || !self.snapshot().loaded.is_policy_refusal())
        {
            return;
        }
        match run_blocking(move || locked.remove()).await {
            Ok(_) => {
                record.discard_pending(&store);
                tracing::info!("removed the credentials the login policy refuses (not revoked)");
                self.apply(StoreRead::Absent, UpdateReason::Policy);
            }
            Err(e) => tracing::error!(error = %e, "cannot remove the credentials the login policy refuses"),
        }
    }

    /// Marks usable credentials unusable for `problem` (a refresh refused for good, a logout that revoked but
    /// could not remove) until the store changes; publishes `account/updated` with `reason`.
    pub(crate) fn mark_unusable(
        &self,
        problem: codexd_proto::methods::AuthProblem,
        reason: UpdateReason,
    ) -> Option<Change> {
        let mut state = self.lock_state();
        let change = state.mark_unusable(problem, reason)?;
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

pub(crate) async fn read_store(store: &Arc<Store>) -> StoreRead {
    let store = store.clone();
    read_with(move || store.read()).await
}

/// Runs one reading of the store (plain, or under `auth.lock`) on the blocking pool, as a [`StoreRead`].
pub(crate) async fn read_with(
    read: impl FnOnce() -> Result<crate::store::Reading, StoreError> + Send + 'static,
) -> StoreRead {
    match run_blocking(read).await {
        Ok(reading) => match reading.contents {
            Some(bytes) => StoreRead::Contents(bytes),
            None => StoreRead::Absent,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the credential store");
            let problem = codexd_proto::methods::AuthProblem::new(e.reason(), e.to_string());
            if e.is_keyring() { StoreRead::Unavailable(problem) } else { StoreRead::Failed(problem) }
        }
    }
}

pub(crate) async fn run_blocking<T: Send + 'static, E: Into<StoreError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, StoreError> {
    // No outer timeout: `AuthFile` bounds its own lock waits (10 s + 2 s) and every keyring call has its own
    // deadline; giving up on a blocking task that goes on running would release `store_io` while the store is
    // still being changed.
    match tokio::task::spawn_blocking(f).await {
        Err(join) => Err(StoreError::Task(join.to_string())),
        Ok(result) => result.map_err(Into::into),
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
