//! Watches `$CODEX_HOME` for changes other programs make to `auth.json`, and has the daemon reload.
//!
//! The directory is watched, not the file: the Codex CLI replaces `auth.json` by rename, which a watch on the
//! file itself would lose after the first time. Events are coalesced for a moment, then the store is re-read;
//! the daemon compares contents, so its own writes and no-op rewrites cause no notification. Idle, this costs
//! nothing: the watcher thread blocks in the kernel and no timer runs.

use crate::daemon::Daemon;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long events must stay quiet before the store is re-read.
const SETTLE: Duration = Duration::from_millis(30);

/// The running watcher; dropping it stops watching.
pub struct StoreWatcher {
    _watcher: RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StoreWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the daemon's `CODEX_HOME`.
pub fn spawn_store_watcher(daemon: Arc<Daemon>) -> notify::Result<StoreWatcher> {
    let wake = Arc::new(Notify::new());
    let wake_tx = wake.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        // Opens and reads (the daemon's own re-reads among them) change nothing; reacting to them would loop.
        Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
        Ok(event) => {
            // An overflowed kernel queue arrives as a rescan that names no file: re-read then too.
            if event.need_rescan()
                || event.paths.is_empty()
                || event.paths.iter().any(|p| p.file_name().is_some_and(|n| n == crate::auth::AUTH_FILE_NAME))
            {
                wake_tx.notify_one();
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "file watcher error; re-reading the store");
            wake_tx.notify_one();
        }
    })?;
    watcher.watch(&daemon.config().codex_home, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        loop {
            wake.notified().await;
            while tokio::time::timeout(SETTLE, wake.notified()).await.is_ok() {}
            daemon.reload_external().await;
        }
    });
    Ok(StoreWatcher { _watcher: watcher, task })
}
