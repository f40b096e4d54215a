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
use std::path::{Path, PathBuf};
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
    let (store_tx, settings_tx) = (store_wake.clone(), settings_wake.clone());
    let paths = Arc::new(Mutex::new(Watched::default()));
    let classify_paths = paths.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let target = match event {
            // Opens and reads (the daemon's own re-reads among them) change nothing; reacting to them would loop.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => Target::Nothing,
            // An overflowed kernel queue arrives as a rescan that names no file: re-read everything then.
            Ok(event) if event.need_rescan() || event.paths.is_empty() => Target::Both,
            Ok(event) => {
                let paths = crate::daemon::lock(&classify_paths);
                event.paths.iter().map(|p| paths.classify(p)).fold(Target::Nothing, merge)
            }
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
    arm(&watcher, &paths, &daemon);
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
            arm(&rearm, &paths, &daemon);
            daemon.reload_settings().await;
        }
    });
    Ok(StoreWatcher { _watcher: watcher, tasks: vec![store_task, settings_task] })
}

/// (Re)arms the watches that can change while codexd runs (the system config directory, the symlink targets)
/// and the paths events are sorted by.
fn arm(watcher: &Mutex<RecommendedWatcher>, paths: &Mutex<Watched>, daemon: &Daemon) {
    let config = daemon.config();
    watch_system_dir(watcher, &config.system_config_dir);
    let link_targets = watch_link_targets(watcher, daemon);
    *crate::daemon::lock(paths) = Watched::new(&config.codex_home, &config.system_config_dir, link_targets);
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

/// Watches the directories that the symlinked config files resolve to; returns the resolved files.
fn watch_link_targets(watcher: &Mutex<RecommendedWatcher>, daemon: &Daemon) -> Vec<PathBuf> {
    let resolved: Vec<_> = daemon
        .settings_sources()
        .files()
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
    resolved
}

/// The paths events are sorted by: each directory as configured and as resolved (a watcher may report either),
/// worked out when the watches are (re)armed, not per event.
#[derive(Debug, Default)]
struct Watched {
    home: Vec<PathBuf>,
    system_dir: Vec<PathBuf>,
    /// Where symlinked config files really live (a dotfiles checkout, a ConfigMap).
    link_targets: Vec<PathBuf>,
}

impl Watched {
    fn new(home: &Path, system_dir: &Path, link_targets: Vec<PathBuf>) -> Self {
        let both = |dir: &Path| {
            let mut forms = vec![dir.to_owned()];
            forms.extend(std::fs::canonicalize(dir).ok().filter(|c| c != dir));
            forms
        };
        Watched { home: both(home), system_dir: both(system_dir), link_targets }
    }

    fn classify(&self, path: &Path) -> Target {
        let Some(name) = path.file_name() else { return Target::Nothing };
        let dir = path.parent().unwrap_or(Path::new(""));
        if self.system_dir.iter().any(|d| d == path) || self.link_targets.iter().any(|t| t == path) {
            return Target::Settings;
        }
        if self.home.iter().any(|d| d == dir) {
            if name == crate::auth::AUTH_FILE_NAME {
                return Target::Store;
            }
            if name == "config.toml" {
                return Target::Settings;
            }
        }
        // Anything in the system directory: its files may be symlinks re-pointed by renaming another entry (a
        // Kubernetes ConfigMap's `..data`), and re-reading costs little (the daemon compares what it reads).
        if self.system_dir.iter().any(|d| d == dir) {
            return Target::Settings;
        }
        Target::Nothing
    }
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
        let mut stores = daemon.watch_store();
        let mut interval = base;
        loop {
            // No timer at all while the store has no keyring.
            while !matches!(stores.borrow_and_update().mode(), StoreMode::Keyring | StoreMode::Auto) {
                interval = base;
                if stores.changed().await.is_err() {
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
        let watched = Watched::new(Path::new("/h"), Path::new("/etc/codex"), vec![PathBuf::from("/dots/config.toml")]);
        let classify = |path: &str| watched.classify(Path::new(path));
        assert_eq!(classify("/h/auth.json"), Target::Store);
        assert_eq!(classify("/dots/config.toml"), Target::Settings);
        assert_eq!(classify("/dots/other"), Target::Nothing);
        assert_eq!(classify("/h/config.toml"), Target::Settings);
        assert_eq!(classify("/h/.auth-XYZ"), Target::Nothing);
        assert_eq!(classify("/etc/codex/requirements.toml"), Target::Settings);
        assert_eq!(classify("/etc/codex/managed_config.toml"), Target::Settings);
        assert_eq!(classify("/etc/codex"), Target::Settings);
        assert_eq!(classify("/etc/codex/..data"), Target::Settings);
        assert_eq!(classify("/etc/passwd"), Target::Nothing);
        assert_eq!(merge(Target::Store, Target::Settings), Target::Both);
        assert_eq!(merge(Target::Nothing, Target::Store), Target::Store);
    }
}
