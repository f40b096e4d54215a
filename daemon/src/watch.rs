//! Notices changes other programs make: to `auth.json` and the config files (watched with notify), and to the
//! keyring entry (polled, since a keyring has no file to watch).
//!
//! Directories are watched, not files: the Codex CLI and editors replace files by rename, which a watch on the
//! file itself would lose after the first time. `$CODEX_HOME` is watched for `auth.json` and `config.toml`; the
//! system config directory for any change (its files may be symlinks re-pointed by another rename), or, while it
//! does not exist, its parent, so that creating it is noticed; and the directory each symlinked config file
//! resolves to (a dotfiles checkout). Events are coalesced for a moment, then the store or
//! the settings are re-read; the daemon compares contents, so its own writes and no-op rewrites cause no
//! notification. Idle in `file` and `ephemeral` mode this costs nothing: the watcher thread blocks in the kernel
//! and no timer runs. In `keyring` and `auto` mode one keyring lookup runs every poll interval.

use crate::daemon::Daemon;
use crate::settings::StoreMode;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long events must stay quiet before the store or the settings are re-read.
const SETTLE: Duration = Duration::from_millis(30);

/// The running watcher; dropping it stops watching.
pub struct StoreWatcher {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StoreWatcher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Store,
    Settings,
    Both,
    Nothing,
}

/// Starts watching the daemon's `CODEX_HOME` and system config directory.
pub fn spawn_store_watcher(daemon: Arc<Daemon>) -> notify::Result<StoreWatcher> {
    let store_wake = Arc::new(Notify::new());
    let settings_wake = Arc::new(Notify::new());
    let home = daemon.config().codex_home.clone();
    let system_dir = daemon.config().system_config_dir.clone();
    let (store_tx, settings_tx) = (store_wake.clone(), settings_wake.clone());
    let classify_home = home.clone();
    let classify_system = system_dir.clone();
    // Where symlinked config files really live (a dotfiles checkout, a ConfigMap): watched too.
    let targets: Arc<Mutex<Vec<std::path::PathBuf>>> = Arc::default();
    let classify_targets = targets.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let target = match event {
            // Opens and reads (the daemon's own re-reads among them) change nothing; reacting to them would loop.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => Target::Nothing,
            // An overflowed kernel queue arrives as a rescan that names no file: re-read everything then.
            Ok(event) if event.need_rescan() || event.paths.is_empty() => Target::Both,
            Ok(event) => event
                .paths
                .iter()
                .map(|p| {
                    if crate::daemon::lock(&classify_targets).iter().any(|t| t == p) {
                        Target::Settings
                    } else {
                        classify(p, &classify_home, &classify_system)
                    }
                })
                .fold(Target::Nothing, merge),
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; re-reading the store and the settings");
                Target::Both
            }
        };
        if matches!(target, Target::Store | Target::Both) {
            store_tx.notify_one();
        }
        if matches!(target, Target::Settings | Target::Both) {
            settings_tx.notify_one();
        }
    })?;
    let watcher = Arc::new(Mutex::new(watcher));
    crate::daemon::lock(&watcher).watch(&home, RecursiveMode::NonRecursive)?;
    watch_system_dir(&watcher, &system_dir);
    watch_link_targets(&watcher, &targets, &daemon.settings_sources().files());
    let store_daemon = daemon.clone();
    let store_task = tokio::spawn(async move {
        loop {
            store_wake.notified().await;
            while tokio::time::timeout(SETTLE, store_wake.notified()).await.is_ok() {}
            store_daemon.reload_external().await;
        }
    });
    let rearm = watcher.clone();
    let settings_task = tokio::spawn(async move {
        loop {
            settings_wake.notified().await;
            while tokio::time::timeout(SETTLE, settings_wake.notified()).await.is_ok() {}
            // The system directory may have been created (or removed and created again) meanwhile, and a
            // symlink may point elsewhere now.
            watch_system_dir(&rearm, &daemon.config().system_config_dir);
            watch_link_targets(&rearm, &targets, &daemon.settings_sources().files());
            daemon.reload_settings().await;
        }
    });
    Ok(StoreWatcher { _watcher: watcher, tasks: vec![store_task, settings_task] })
}

/// Watches the system config directory, or its parent while the directory does not exist. Watching a path
/// twice is harmless.
fn watch_system_dir(watcher: &Mutex<RecommendedWatcher>, system_dir: &Path) {
    let mut watcher = crate::daemon::lock(watcher);
    if system_dir.is_dir() {
        if let Err(e) = watcher.watch(system_dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %system_dir.display(), error = %e, "cannot watch the system config directory");
        }
    } else if let Some(parent) = system_dir.parent().filter(|p| p.is_dir())
        && let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive)
    {
        tracing::debug!(dir = %parent.display(), error = %e, "cannot watch the system config directory's parent");
    }
}

/// Watches the directories that symlinked config files resolve to, and records the resolved files.
fn watch_link_targets(
    watcher: &Mutex<RecommendedWatcher>,
    targets: &Mutex<Vec<std::path::PathBuf>>,
    files: &[std::path::PathBuf],
) {
    let resolved: Vec<_> = files
        .iter()
        .filter(|f| f.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()))
        .filter_map(|f| std::fs::canonicalize(f).ok())
        .collect();
    let mut watcher = crate::daemon::lock(watcher);
    for target in &resolved {
        if let Some(dir) = target.parent()
            && let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
        {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a config symlink's target");
        }
    }
    *crate::daemon::lock(targets) = resolved;
}

fn classify(path: &Path, home: &Path, system_dir: &Path) -> Target {
    let Some(name) = path.file_name() else { return Target::Nothing };
    let dir = path.parent().unwrap_or(Path::new(""));
    if path == system_dir {
        return Target::Settings;
    }
    if same_dir(dir, home) {
        if name == crate::auth::AUTH_FILE_NAME {
            return Target::Store;
        }
        if name == "config.toml" {
            return Target::Settings;
        }
    }
    // Anything in the system directory: its files may be symlinks re-pointed by renaming another entry (a
    // Kubernetes ConfigMap's `..data`), and re-reading costs little (the daemon compares what it reads).
    if same_dir(dir, system_dir) {
        return Target::Settings;
    }
    Target::Nothing
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b)
}

fn merge(a: Target, b: Target) -> Target {
    match (a, b) {
        (Target::Nothing, x) | (x, Target::Nothing) => x,
        (x, y) if x == y => x,
        _ => Target::Both,
    }
}

/// Polls the keyring for changes other programs make, while the store is `keyring` or `auto`: one lookup every
/// poll interval, doubled after each failure (up to 5 minutes, so that a locked keyring does not ask for its
/// password every few seconds) and reset by a success.
pub fn spawn_keyring_poller(daemon: Arc<Daemon>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let base = daemon.config().keyring_poll_interval;
        let mut modes = daemon.watch_store_mode();
        let mut interval = base;
        loop {
            // No timer at all while the store has no keyring.
            while !matches!(*modes.borrow_and_update(), StoreMode::Keyring | StoreMode::Auto) {
                interval = base;
                if modes.changed().await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(interval).await;
            let store = daemon.store();
            if !matches!(store.mode(), StoreMode::Keyring | StoreMode::Auto) {
                continue;
            }
            daemon.poll_store().await;
            // Any problem (a fallback to the file included) means the keyring failed: do not ask it again soon.
            interval = if store.health().problem.is_some() {
                (interval * 2).min(crate::config::MAX_KEYRING_POLL_INTERVAL.max(base))
            } else {
                base
            };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_sorted_by_the_file_they_name() {
        let home = Path::new("/h");
        let system = Path::new("/etc/codex");
        assert_eq!(classify(Path::new("/h/auth.json"), home, system), Target::Store);
        assert_eq!(classify(Path::new("/h/config.toml"), home, system), Target::Settings);
        assert_eq!(classify(Path::new("/h/.auth-XYZ"), home, system), Target::Nothing);
        assert_eq!(classify(Path::new("/etc/codex/requirements.toml"), home, system), Target::Settings);
        assert_eq!(classify(Path::new("/etc/codex/managed_config.toml"), home, system), Target::Settings);
        assert_eq!(classify(Path::new("/etc/codex"), home, system), Target::Settings);
        assert_eq!(classify(Path::new("/etc/codex/..data"), home, system), Target::Settings);
        assert_eq!(classify(Path::new("/etc/passwd"), home, system), Target::Nothing);
        assert_eq!(merge(Target::Store, Target::Settings), Target::Both);
        assert_eq!(merge(Target::Nothing, Target::Store), Target::Store);
    }
}
