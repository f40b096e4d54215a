//! codexd: one long-running owner for the Codex login, served to every client over a local socket.
//!
//! The binary (`main.rs`) turns flags and environment into a [`Config`], binds the socket (or adopts the one
//! systemd passes) with [`ipc::listener::listen`], starts the socket keeper ([`ipc::keeper`]), and calls
//! [`run`]; end-to-end tests drive the real binary. See `docs/ARCHITECTURE.md` for the code map and the
//! invariants.

pub mod auth;
pub mod config;
pub mod daemon;
pub mod events;
pub mod ipc;
pub mod login;
pub mod migrate;
pub mod oauth;
pub mod policy;
pub mod refresh;
pub mod service;
pub mod settings;
pub mod state;
pub mod store;
pub mod watch;

pub use config::Config;

use interprocess::local_socket::tokio::Listener;
use tokio_util::sync::CancellationToken;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTPS client cannot be built.
    #[error(transparent)]
    Http(#[from] oauth::ca::CaError),
    /// A config file cannot be used (the message names the file and the key).
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    /// A startup task failed.
    #[error("a startup task failed: {0}")]
    Task(String),
    /// The credential home cannot be watched.
    #[error("cannot watch {path:?} for changes: {source}")]
    Watch {
        /// The credential home.
        path: std::path::PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// Serves `listener` until `shutdown` is cancelled (by a signal or a `daemon/shutdown` request), then tells
/// every subscriber and returns once the connections are done.
pub async fn run(config: Config, listener: Listener, shutdown: CancellationToken) -> Result<(), RunError> {
    let daemon = daemon::Daemon::start(config, shutdown).await?;
    daemon.enforce_policy_at_start();
    let home = daemon.config().codex_home.clone();
    let _watcher =
        watch::spawn_store_watcher(daemon.clone()).map_err(|source| RunError::Watch { path: home, source })?;
    // A change made between the first read and the start of the watch would otherwise go unseen.
    daemon.reload_settings().await;
    // With a keyring, the poll reads it soon anyway: a keyring that hangs delays the start by one timeout, not two.
    if matches!(daemon.store().mode(), settings::StoreMode::File) {
        daemon.reload_external().await;
    }
    let poller = watch::spawn_keyring_poller(daemon.clone());
    let scheduler = refresh::spawn_scheduler(daemon.clone());
    tracing::info!(socket = %daemon.config().socket.display(), codex_home = %daemon.config().codex_home.display(), "codexd is serving");
    ipc::serve(listener, daemon.clone()).await;
    scheduler.abort();
    poller.abort();
    // A refresh on the wire runs to the end: its answer may be the only copy of the rotated token. Its bound: the
    // HTTP call, the locks (10 s + 2 s) and up to three keyring calls.
    let config = daemon.config();
    let limit = config.session.http_timeout + config.keyring_timeout * 3 + std::time::Duration::from_secs(15);
    let _store_io = daemon.finish(limit).await;
    Ok(())
}
