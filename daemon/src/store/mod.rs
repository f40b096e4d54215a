//! The credential store: where the Codex login lives (`auth.json`, the OS keyring, or memory), behind one
//! interface with the Codex CLI's semantics for each `cli_auth_credentials_store` mode.
//!
//! | mode | read | write | remove |
//! |---|---|---|---|
//! | `file` | `auth.json` | `auth.json` | `auth.json` |
//! | `keyring` | keyring only | keyring, then a stale `auth.json` is removed | both; a keyring error fails it |
//! | `auto` | keyring, else `auth.json` | keyring, else `auth.json` (a warning in status) | both; a keyring error is reported, the file is removed anyway |
//! | `ephemeral` | memory | memory | memory |
//!
//! Unlike the Codex CLI, `auto` does not read "logged out" when the keyring fails and there is no file: the
//! read fails, so the daemon keeps serving what it holds rather than drop a login it cannot see right now.
//! Every change is made under `auth.lock` ([`StoreLock`]), as every writer of the Codex login does; the
//! ephemeral store needs no lock. Everything here is blocking; the daemon calls it on the blocking pool.

pub mod keyring;

use crate::auth::{AuthDotJson, AuthFile, AuthFileError, StoreLock};
use crate::settings::StoreMode;
use codexd_proto::methods::AuthProblem;
pub use keyring::{Keyring, KeyringError};
use std::sync::{Arc, Mutex};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `auth.json` (or its lock) could not be read or changed.
    #[error(transparent)]
    File(#[from] AuthFileError),
    /// The OS keyring failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The blocking task died.
    #[error("the credential store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// The stable `reason` of this failure in status answers.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::File(_) => "authFileUnreadable",
            StoreError::Keyring(e) => e.reason(),
            StoreError::Task(_) => "storeError",
        }
    }

    /// Whether this is the keyring failing (the daemon then keeps what it holds instead of reporting a change).
    pub fn is_keyring(&self) -> bool {
        matches!(self, StoreError::Keyring(_))
    }
}

/// Where credentials live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `$CODEX_HOME/auth.json`.
    File,
    /// The OS keyring.
    Keyring,
    /// The daemon's memory (ephemeral).
    Memory,
}

impl Location {
    /// The name used in status answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::File => "file",
            Location::Keyring => "keyring",
            Location::Memory => "memory",
        }
    }
}

/// One reading of the store. `Debug` never shows the contents.
pub struct Reading {
    /// The raw document, `None` when nothing is stored.
    pub contents: Option<Vec<u8>>,
    /// Where it was found.
    pub location: Option<Location>,
}

impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading")
            .field("bytes", &self.contents.as_ref().map(Vec::len))
            .field("location", &self.location)
            .finish()
    }
}

/// What a write stored, byte for byte (what the next read gives back), and where.
pub struct Written {
    /// The bytes stored.
    pub contents: Vec<u8>,
    /// Where.
    pub location: Location,
}

/// What `daemon/status` says about the store: where the credentials are, and what is wrong, if anything.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Where the current credentials live.
    pub location: Option<Location>,
    /// The last problem the store had (cleared by the next call that succeeds cleanly).
    pub problem: Option<AuthProblem>,
}

/// The ephemeral store's document. `Debug` shows its size, never its contents.
#[derive(Clone, Default)]
pub struct Memory(Arc<Mutex<Option<Vec<u8>>>>);

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self.get().map(|v| v.len());
        f.debug_tuple("Memory").field(&size.map(|n| format!("{n} bytes"))).finish()
    }
}

impl Memory {
    fn get(&self) -> Option<Vec<u8>> {
        crate::daemon::lock(&self.0).clone()
    }

    fn set(&self, value: Vec<u8>) {
        *crate::daemon::lock(&self.0) = Some(value);
    }

    fn take(&self) -> bool {
        crate::daemon::lock(&self.0).take().is_some()
    }
}

/// The configured store of one credential home.
#[derive(Debug)]
pub struct Store {
    mode: StoreMode,
    file: AuthFile,
    keyring: Arc<Keyring>,
    memory: Memory,
    health: Mutex<Health>,
}

/// The parts every [`Store`] of one daemon shares, whatever mode the configuration switches to.
#[derive(Debug, Clone)]
pub struct Backends {
    /// `auth.json`.
    pub file: AuthFile,
    /// The keyring entry.
    pub keyring: Arc<Keyring>,
    /// The ephemeral store.
    pub memory: Memory,
}

impl Backends {
    /// The store of `mode` over these backends.
    pub fn store(&self, mode: StoreMode) -> Arc<Store> {
        Arc::new(Store {
            mode,
            file: self.file.clone(),
            keyring: self.keyring.clone(),
            memory: self.memory.clone(),
            health: Mutex::new(Health::default()),
        })
    }
}

impl Store {
    /// The configured mode.
    pub fn mode(&self) -> StoreMode {
        self.mode
    }

    /// Where the credentials are and what is wrong, as of the last call.
    pub fn health(&self) -> Health {
        crate::daemon::lock(&self.health).clone()
    }

    /// Reads the credentials without a lock (a file is only ever replaced whole; a keyring item too).
    pub fn read(&self) -> Result<Reading, StoreError> {
        let result = self.read_inner();
        match &result {
            Ok(reading) => self.note(|h| h.location = reading.location),
            Err(e) => self.note_error(e),
        }
        result
    }

    /// Takes `auth.lock` (waiting at most its timeout) for a read-compare-write; the ephemeral store takes none.
    pub fn lock(self: &Arc<Self>) -> Result<Locked, StoreError> {
        let guard = match self.mode {
            StoreMode::Ephemeral => None,
            _ => Some(self.file.lock_store()?),
        };
        Ok(Locked { store: self.clone(), guard })
    }

    fn read_inner(&self) -> Result<Reading, StoreError> {
        match self.mode {
            StoreMode::File => Ok(file_reading(self.file.read()?)),
            StoreMode::Keyring => {
                let value = self.keyring.get()?;
                self.clear_problem();
                Ok(Reading { location: value.as_ref().map(|_| Location::Keyring), contents: value })
            }
            StoreMode::Auto => match self.keyring.get() {
                Ok(Some(value)) => {
                    self.clear_problem();
                    // A file beside the keyring entry is a fallback written while the keyring failed: the newer
                    // of the two is the login (an old entry must not hide the tokens the fallback saved).
                    match self.file.read()? {
                        Some(file) if newer(&file, &value) => Ok(file_reading(Some(file))),
                        _ => Ok(Reading { contents: Some(value), location: Some(Location::Keyring) }),
                    }
                }
                Ok(None) => {
                    self.clear_problem();
                    Ok(file_reading(self.file.read()?))
                }
                Err(e) => match self.file.read()? {
                    Some(bytes) => {
                        self.note_fallback(&e, "read from");
                        Ok(file_reading(Some(bytes)))
                    }
                    None => Err(e.into()),
                },
            },
            StoreMode::Ephemeral => {
                let value = self.memory.get();
                Ok(Reading { location: value.as_ref().map(|_| Location::Memory), contents: value })
            }
        }
    }

    /// Reads one location only, whatever the mode.
    fn get_at(&self, location: Location) -> Result<Option<Vec<u8>>, StoreError> {
        match location {
            Location::File => Ok(self.file.read()?),
            Location::Keyring => Ok(self.keyring.get()?),
            Location::Memory => Ok(self.memory.get()),
        }
    }

    /// Writes `doc` to one location only, with no fallback and no clean-up of the others: the file in the Codex
    /// CLI's pretty format (under `guard`), the keyring and memory in compact JSON.
    fn put_at(&self, guard: Option<&StoreLock>, location: Location, doc: &AuthDotJson) -> Result<Written, StoreError> {
        let contents = match location {
            Location::File => {
                let guard = guard.ok_or_else(|| StoreError::Task("auth.json written without auth.lock".to_owned()))?;
                let contents = doc.to_file_bytes();
                guard.write(&contents)?;
                contents
            }
            Location::Keyring => {
                let contents = doc.to_compact_bytes();
                self.keyring.set(&contents)?;
                contents
            }
            Location::Memory => {
                let contents = doc.to_compact_bytes();
                self.memory.set(contents.clone());
                contents
            }
        };
        Ok(Written { contents, location })
    }

    /// Removes the credentials from one location only; returns whether there were any. Without `guard` (the
    /// ephemeral store's lock) the file is not touched.
    fn delete_at(&self, guard: Option<&StoreLock>, location: Location) -> Result<bool, StoreError> {
        match location {
            Location::File => guard.map_or(Ok(false), |guard| Ok(guard.remove()?)),
            Location::Keyring => Ok(self.keyring.delete()?),
            Location::Memory => Ok(self.memory.take()),
        }
    }

    fn write_inner(&self, guard: Option<&StoreLock>, doc: &AuthDotJson) -> Result<Written, StoreError> {
        let written = match self.mode {
            StoreMode::File => self.put_at(guard, Location::File, doc)?,
            StoreMode::Keyring => {
                let written = self.put_at(guard, Location::Keyring, doc)?;
                self.clear_problem();
                self.remove_stale_file(guard);
                written
            }
            StoreMode::Auto => match self.put_at(guard, Location::Keyring, doc) {
                Ok(written) => {
                    self.clear_problem();
                    self.remove_stale_file(guard);
                    written
                }
                Err(StoreError::Keyring(e)) => {
                    self.note_fallback(&e, "written to");
                    self.put_at(guard, Location::File, doc)?
                }
                Err(e) => return Err(e),
            },
            StoreMode::Ephemeral => self.put_at(guard, Location::Memory, doc)?,
        };
        self.note(|h| h.location = Some(written.location));
        Ok(written)
    }

    fn remove_inner(&self, guard: Option<&StoreLock>) -> Result<bool, StoreError> {
        let removed = match self.mode {
            StoreMode::File => self.delete_at(guard, Location::File)?,
            StoreMode::Keyring => {
                let file = self.delete_at(guard, Location::File)?;
                let keyring = self.delete_at(guard, Location::Keyring)?;
                self.clear_problem();
                file || keyring
            }
            StoreMode::Auto => {
                let file = self.delete_at(guard, Location::File)?;
                match self.keyring.delete() {
                    Ok(keyring) => {
                        self.clear_problem();
                        file || keyring
                    }
                    Err(e) => {
                        // The Codex CLI fails the logout here and leaves auth.json behind; codexd removes the file
                        // and says what could not be done.
                        tracing::warn!(error = %e, "logged out of auth.json, but the keyring entry could not be removed");
                        self.note(|h| {
                            h.problem = Some(AuthProblem::new(
                                e.reason(),
                                format!(
                                    "the keyring entry could not be removed ({e}); a login stored there may come \
                                     back once the keyring is reachable: run `codexctl logout` again then"
                                ),
                            ));
                        });
                        file
                    }
                }
            }
            StoreMode::Ephemeral => self.delete_at(guard, Location::Memory)?,
        };
        self.note(|h| h.location = None);
        Ok(removed)
    }

    fn remove_stale_file(&self, guard: Option<&StoreLock>) {
        match self.delete_at(guard, Location::File) {
            Ok(true) => tracing::info!("removed the stale auth.json: the login is in the keyring now"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the login is in the keyring, but a stale auth.json could not be removed");
            }
        }
    }

    fn note(&self, change: impl FnOnce(&mut Health)) {
        change(&mut crate::daemon::lock(&self.health));
    }

    fn clear_problem(&self) {
        self.note(|h| h.problem = None);
    }

    fn note_error(&self, error: &StoreError) {
        if error.is_keyring() {
            let problem = AuthProblem::new(error.reason(), error.to_string());
            self.note(|h| h.problem = Some(problem));
        }
    }

    fn note_fallback(&self, error: &KeyringError, what: &str) {
        tracing::warn!(error = %error, "the keyring failed; the login is {what} plaintext auth.json instead");
        let problem = AuthProblem::new(
            "plaintextFallback",
            format!("the keyring failed ({error}); the login is {what} plaintext auth.json instead"),
        );
        self.note(|h| h.problem = Some(problem));
    }
}

/// `auth.lock`, held (or nothing, for the ephemeral store): the store may be read, written and removed without
/// another writer in between. Released when dropped.
#[derive(Debug)]
pub struct Locked {
    store: Arc<Store>,
    guard: Option<StoreLock>,
}

impl Locked {
    /// Reads the credentials.
    pub fn read(&self) -> Result<Reading, StoreError> {
        self.store.read()
    }

    /// Stores `doc` (the file in the Codex CLI's pretty format, the keyring and memory in compact JSON).
    pub fn write(&self, doc: &AuthDotJson) -> Result<Written, StoreError> {
        let result = self.store.write_inner(self.guard.as_ref(), doc);
        if let Err(e) = &result {
            self.store.note_error(e);
        }
        result
    }

    /// Stores `doc` only if the store still holds `expected` (re-read first); `None` when it did not.
    pub fn replace_if_unchanged(&self, expected: &[u8], doc: &AuthDotJson) -> Result<Option<Written>, StoreError> {
        if self.store.mode == StoreMode::File {
            // Under auth.json.lock for the compare and the write, as the Codex CLI re-reads before it writes.
            let Some(guard) = &self.guard else { return Ok(None) };
            let contents = doc.to_file_bytes();
            return Ok(guard
                .replace_if_unchanged(expected, &contents)?
                .then_some(Written { contents, location: Location::File }));
        }
        match self.store.read() {
            Ok(current) if current.contents.as_deref() != Some(expected) => return Ok(None),
            Ok(_) => {}
            // `auto` with a keyring that cannot be read: compare with what can be seen (the file), and let the
            // write fall back to the file rather than keep the new tokens in memory only.
            Err(e) if e.is_keyring() && self.store.mode == StoreMode::Auto => {
                if self.store.file.read()?.is_some_and(|file| file != expected) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
        self.write(doc).map(Some)
    }

    /// Removes the credentials; returns whether there were any.
    pub fn remove(&self) -> Result<bool, StoreError> {
        let result = self.store.remove_inner(self.guard.as_ref());
        if let Err(e) = &result {
            self.store.note_error(e);
        }
        result
    }

    /// The store these operations act on.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Reads one location only, whatever the mode (migrations: every store of a home shares the backends, so
    /// one `auth.lock` serves both ends; a second `flock` of it from this process would wait for the first).
    pub fn get_at(&self, location: Location) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get_at(location)
    }

    /// Writes `doc` to one location only: no fallback and no clean-up of the others (for migrations).
    pub fn put_at(&self, location: Location, doc: &AuthDotJson) -> Result<Written, StoreError> {
        self.store.put_at(self.guard.as_ref(), location, doc)
    }

    /// Removes the credentials from one location only (for migrations); returns whether there were any.
    pub fn delete_at(&self, location: Location) -> Result<bool, StoreError> {
        self.store.delete_at(self.guard.as_ref(), location)
    }
}

/// Whether the document `a` was refreshed after `b` (by `last_refresh`; a document that cannot be read is never
/// newer).
fn newer(a: &[u8], b: &[u8]) -> bool {
    let last = |bytes: &[u8]| AuthDotJson::parse(bytes).ok().and_then(|doc| doc.last_refresh);
    match (last(a), last(b)) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        _ => false,
    }
}

fn file_reading(contents: Option<Vec<u8>>) -> Reading {
    Reading { location: contents.as_ref().map(|_| Location::File), contents }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const APIKEY: &[u8] = include_bytes!("../../../tests/data/auth-apikey.json");

    fn backends(home: &std::path::Path) -> Backends {
        Backends {
            file: AuthFile::new(home.to_owned()),
            // No session bus in unit tests: the keyring is unreachable at once.
            keyring: Keyring::new(home, Duration::from_secs(5)),
            memory: Memory::default(),
        }
    }

    #[test]
    fn the_file_store_round_trips_in_the_codex_format() {
        let home = tempfile::tempdir().unwrap();
        let store = backends(home.path()).store(StoreMode::File);
        let doc = AuthDotJson::parse(APIKEY).unwrap();
        let written = store.lock().unwrap().write(&doc).unwrap();
        assert_eq!(written.contents, APIKEY);
        assert_eq!(std::fs::read(home.path().join("auth.json")).unwrap(), APIKEY);
        let reading = store.read().unwrap();
        assert_eq!((reading.contents.as_deref(), reading.location), (Some(APIKEY), Some(Location::File)));
        assert!(store.lock().unwrap().remove().unwrap());
        assert!(store.read().unwrap().contents.is_none());
    }

    #[test]
    fn the_ephemeral_store_never_touches_the_disk() {
        let home = tempfile::tempdir().unwrap();
        let store = backends(home.path()).store(StoreMode::Ephemeral);
        let doc = AuthDotJson::parse(APIKEY).unwrap();
        let locked = store.lock().unwrap();
        let written = locked.write(&doc).unwrap();
        assert_eq!(written.location, Location::Memory);
        assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
        assert!(locked.replace_if_unchanged(b"other", &doc).unwrap().is_none());
        assert!(locked.replace_if_unchanged(&written.contents, &doc).unwrap().is_some());
        assert_eq!(store.read().unwrap().location, Some(Location::Memory));
        assert!(locked.remove().unwrap());
        assert!(!locked.remove().unwrap());
    }

    #[test]
    fn auto_falls_back_to_the_file_and_says_so_when_there_is_no_keyring() {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            return;
        }
        let home = tempfile::tempdir().unwrap();
        let store = backends(home.path()).store(StoreMode::Auto);
        // Nothing stored and no keyring: the read fails rather than say "logged out".
        assert!(store.read().unwrap_err().is_keyring());
        let doc = AuthDotJson::parse(APIKEY).unwrap();
        let written = store.lock().unwrap().write(&doc).unwrap();
        assert_eq!(written.location, Location::File);
        let problem = store.health().problem.unwrap();
        assert_eq!(problem.reason, "plaintextFallback");
        assert!(problem.message.contains("plaintext auth.json"), "{}", problem.message);
        assert_eq!(store.read().unwrap().location, Some(Location::File));
        // A logout removes the file even though the keyring cannot be reached.
        assert!(store.lock().unwrap().remove().unwrap());
        assert!(!home.path().join("auth.json").exists());
        assert_eq!(store.health().problem.unwrap().reason, "keyringUnavailable");
    }

    #[test]
    fn the_keyring_store_fails_a_save_it_cannot_make() {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            return;
        }
        let home = tempfile::tempdir().unwrap();
        let store = backends(home.path()).store(StoreMode::Keyring);
        let doc = AuthDotJson::parse(APIKEY).unwrap();
        let error = store.lock().unwrap().write(&doc).err().unwrap();
        assert_eq!(error.reason(), "keyringUnavailable");
        assert!(!home.path().join("auth.json").exists());
        assert!(!format!("{error} {error:?}").contains("sk-"));
    }
}
