//! `store/migrate`: moves the login to another credential store without logging out.
//!
//! Order, so that nothing is lost whichever step fails: (1) copy the document to the new location, (2) read
//! the copy back and compare, (3) set `cli_auth_credentials_store` in `$CODEX_HOME/config.toml`, (4) remove the
//! old copy. A failure in 1-3 removes the copy (if any) and leaves the login and the config as they were; a
//! failure in 4 leaves both copies and says so. Everything runs under `store_io` and one `auth.lock`.

use crate::auth::AuthDotJson;
use crate::daemon::Daemon;
use crate::settings::{SettingsError, StoreMode};
use crate::store::{Location, Store, StoreError};
use codexd_proto::methods::StoreMigrateResult;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a migration did not happen; the login is where it was.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A managed file decides the store.
    #[error(
        "cli_auth_credentials_store is set to \"{mode}\" by {}, which $CODEX_HOME/config.toml cannot override; ask \
         your administrator",
        .path.display()
    )]
    Managed {
        /// The file that sets it.
        path: PathBuf,
        /// What it sets.
        mode: StoreMode,
    },
    /// The login cannot be read from where it is.
    #[error("cannot read the login from the {from} store: {source}; nothing was moved")]
    Read {
        /// The current store.
        from: StoreMode,
        /// What failed.
        source: StoreError,
    },
    /// The stored login is not a usable document.
    #[error("the stored login is not valid ({0}); sign in again rather than move it")]
    Unusable(String),
    /// The copy could not be made.
    #[error("cannot store the login in the {to} store: {source}; nothing was moved, the login stays where it was")]
    Write {
        /// The new store.
        to: StoreMode,
        /// What failed.
        source: StoreError,
    },
    /// The copy did not read back the same.
    #[error(
        "the copy in the {to} store did not read back the same ({detail}); it was removed and the login stays where it was"
    )]
    Verify {
        /// The new store.
        to: StoreMode,
        /// What differed.
        detail: String,
    },
    /// The config could not be changed.
    #[error("cannot set cli_auth_credentials_store: {source}; the copy was removed and the login stays where it was")]
    Config {
        /// What failed.
        source: SettingsError,
    },
    /// The blocking task died.
    #[error("the migration task failed: {0}")]
    Task(String),
}

impl MigrateError {
    /// Whether policy (a managed file) refused it, as opposed to a store failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self, MigrateError::Managed { .. })
    }
}

/// What the blocking part did.
#[allow(clippy::struct_field_names)]
struct Moved {
    from: Option<Location>,
    moved: bool,
    warning: Option<String>,
}

impl Daemon {
    /// Moves the login to the store `to` (`keyring` or `file`) and configures that store.
    pub async fn migrate_store(&self, to: StoreMode) -> Result<StoreMigrateResult, MigrateError> {
        self.reload_settings().await;
        let settings = self.settings();
        let user_config = self.settings_sources().user_config();
        if let Some(path) = &settings.store_managed_by
            && settings.store != to
        {
            return Err(MigrateError::Managed { path: path.clone(), mode: settings.store });
        }
        let mut record = self.store_io.lock().await;
        let source = self.store();
        // Tokens refreshed but not writable where they belong (a locked keyring) are the newest copy of the login:
        // they are what moves, which is the way out of a store that does not take them.
        let pending = match self.flush_pending(&mut record).await {
            Ok(()) => None,
            Err(message) => {
                tracing::warn!("{message}; moving them to the {to} store instead");
                record.pending_document(&source)
            }
        };
        let target = self.store_for(to);
        let home = self.config().codex_home.clone();
        let (blocking_source, blocking_target) = (source.clone(), target.clone());
        let moved = match tokio::task::spawn_blocking(move || {
            migrate(&blocking_source, &blocking_target, &home, pending.as_ref())
        })
        .await
        {
            Ok(result) => result?,
            Err(e) => return Err(MigrateError::Task(e.to_string())),
        };
        if moved.moved {
            record.forget_pending();
        }
        tracing::info!(
            from = moved.from.map_or("nothing", Location::as_str),
            to = %to,
            moved = moved.moved,
            "credential store migrated"
        );
        if let Some(warning) = &moved.warning {
            tracing::warn!("{warning}");
        }
        let mut new_settings = (*self.settings()).clone();
        new_settings.store = to;
        new_settings.store_set_by = Some(user_config);
        self.adopt_settings(new_settings);
        // The same document read from the new place is the same login: no notification.
        self.serve_from(target).await;
        drop(record);
        Ok(StoreMigrateResult {
            from: moved.from.map(|l| l.as_str().to_owned()),
            to: to.as_str().to_owned(),
            moved: moved.moved,
            warning: moved.warning,
        })
    }
}

/// The location a store mode writes to.
fn home_of(mode: StoreMode) -> Location {
    match mode {
        StoreMode::Keyring => Location::Keyring,
        StoreMode::File | StoreMode::Auto => Location::File,
        StoreMode::Ephemeral => Location::Memory,
    }
}

fn migrate(
    source: &Arc<Store>,
    target: &Arc<Store>,
    home: &Path,
    pending: Option<&AuthDotJson>,
) -> Result<Moved, MigrateError> {
    let to = target.mode();
    // One auth.lock for both stores (the ephemeral store takes none).
    let held = if source.mode() == StoreMode::Ephemeral { target.lock() } else { source.lock() }
        .map_err(|source_error| MigrateError::Read { from: source.mode(), source: source_error })?;
    let set_config = || crate::settings::set_user_store(home, to).map_err(|e| MigrateError::Config { source: e });
    let destination = home_of(to);
    let (doc, from) = match pending {
        // The store could not take these tokens; its old copy is removed below, if it lets codexd.
        Some(doc) => (doc.clone(), source.health().location.unwrap_or_else(|| home_of(source.mode()))),
        None => {
            let reading = source.read().map_err(|e| MigrateError::Read { from: source.mode(), source: e })?;
            let (Some(bytes), Some(from)) = (reading.contents, reading.location) else {
                set_config()?;
                return Ok(Moved { from: None, moved: false, warning: None });
            };
            if from == destination {
                set_config()?;
                return Ok(Moved { from: Some(from), moved: false, warning: None });
            }
            (AuthDotJson::parse(&bytes).map_err(|e| MigrateError::Unusable(e.to_string()))?, from)
        }
    };
    if let Err(e) = held.put_at(destination, &doc) {
        // A keyring that did not answer in time may still store the copy later: ask it to remove it then.
        if matches!(e, StoreError::Keyring(crate::store::KeyringError::Timeout(_))) && from != destination {
            let _ = held.delete_at(destination);
        }
        return Err(MigrateError::Write { to, source: e });
    }
    let undo = |why: MigrateError| {
        // (Pending tokens rewritten in place replaced the only other copy: nothing to undo there.)
        if from != destination
            && let Err(e) = held.delete_at(destination)
        {
            tracing::error!(error = %e, "cannot remove the copy of a migration that failed");
        }
        why
    };
    let verified = match held.get_at(destination) {
        Ok(Some(copy)) => match AuthDotJson::parse(&copy) {
            Ok(copy) if copy == doc => Ok(()),
            Ok(_) => Err("it holds another login".to_owned()),
            Err(e) => Err(e.to_string()),
        },
        Ok(None) => Err("it is missing".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(detail) = verified {
        return Err(undo(MigrateError::Verify { to, detail }));
    }
    if let Err(e) = set_config() {
        return Err(undo(e));
    }
    // Tokens that were pending for the same place have just been written there: nothing old to remove.
    let removed = if from == destination { Ok(true) } else { held.delete_at(from) };
    let warning = match removed {
        Ok(_) => None,
        Err(e) => Some(format!(
            "the login was moved, but the old copy in {} could not be removed ({e}); remove it by hand",
            from.as_str()
        )),
    };
    Ok(Moved { from: Some(from), moved: true, warning })
}
