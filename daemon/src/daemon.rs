//! The daemon's credential service: the one place that holds the state lock and talks to the store.
//!
//! Invariants: the state lives in one `std::sync::Mutex`, held for short critical sections and never across an
//! `.await`; store I/O is serialised by `store_io` (which guards no data) and runs on the blocking pool; a
//! notification is published while the state lock is held, so subscribers see generations in order.

use crate::auth::AuthFile;
use crate::config::Config;
use crate::events::{EncodedLine, Events};
use crate::state::{Change, CredentialState, Loaded, StoreRead};
use codexd_proto::methods::{AccountUpdated, UpdateReason, notification};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
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
    auth_file: AuthFile,
    state: Mutex<CredentialState>,
    store_io: tokio::sync::Mutex<()>,
    events: Events,
    counters: Counters,
    shutdown: CancellationToken,
}

impl Daemon {
    /// Reads the store once and builds the service.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Arc<Daemon> {
        let auth_file = AuthFile::new(config.codex_home.clone());
        let read = read_store(&auth_file).await;
        let state = CredentialState::new(read);
        log_loaded("loaded credentials", state.loaded());
        Arc::new(Daemon {
            config,
            started: Instant::now(),
            auth_file,
            state: Mutex::new(state),
            store_io: tokio::sync::Mutex::new(()),
            events: Events::new(),
            counters: Counters::default(),
            shutdown,
        })
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

    /// Removes the stored credentials (with the Codex CLI's locking) and tells every subscriber. Logging out
    /// when nothing is stored changes nothing and tells nobody.
    pub async fn logout(&self) -> Result<(), StoreError> {
        let _io = self.store_io.lock().await;
        let file = self.auth_file.clone();
        let removed = run_blocking(move || file.remove()).await?;
        if removed {
            tracing::info!("logged out: auth.json removed");
        }
        self.apply(StoreRead::Absent, UpdateReason::Logout);
        Ok(())
    }

    /// Re-reads the store after another program may have changed it, and tells subscribers when it did.
    pub async fn reload_external(&self) {
        let _io = self.store_io.lock().await;
        tracing::debug!("re-reading the credential store");
        let read = read_store(&self.auth_file).await;
        if let Some(change) = self.apply(read, UpdateReason::External) {
            log_loaded("credentials changed by another program", &change.loaded);
        }
    }

    fn apply(&self, read: StoreRead, reason: UpdateReason) -> Option<Change> {
        let mut state = self.lock_state();
        let change = state.observe(read, reason)?;
        self.events.publish(notification::ACCOUNT_UPDATED, &account_updated(&change));
        Some(change)
    }

    fn lock_state(&self) -> MutexGuard<'_, CredentialState> {
        // A panic while holding the lock cannot leave the state half-updated (observe assigns whole fields), so a
        // poisoned lock is still sound to use.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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

async fn read_store(file: &AuthFile) -> StoreRead {
    let file = file.clone();
    match run_blocking(move || file.read()).await {
        Ok(Some(bytes)) => StoreRead::Contents(bytes),
        Ok(None) => StoreRead::Absent,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the credential store");
            StoreRead::Failed(e.to_string())
        }
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::auth::AuthFileError> + Send + 'static,
) -> Result<T, StoreError> {
    // No outer timeout: `AuthFile` bounds its own lock waits (10 s + 2 s), and giving up on a blocking task that
    // goes on running would release `store_io` while the file is still being changed.
    match tokio::task::spawn_blocking(f).await {
        Err(join) => Err(StoreError::Task(join.to_string())),
        Ok(result) => Ok(result?),
    }
}

fn log_loaded(what: &str, loaded: &Loaded) {
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
