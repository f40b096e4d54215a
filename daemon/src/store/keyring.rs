//! [`Keyring`]: the Codex login's entry in the OS keyring, reached from one worker thread with a deadline on
//! every call.
//!
//! The entry is the Codex CLI's: service `Codex Auth`, account `cli|` + the first 16 hex digits of the SHA-256 of
//! the canonical `CODEX_HOME`, value the compact JSON document; on Linux a Secret Service item with the attributes
//! `service`, `username`, `target=default` (which the Codex CLI's keyring 3 searches on) and
//! `application=rust-keyring`.
//!
//! Keyring calls are synchronous and may block for as long as an unlock prompt stays open. They all run on one
//! thread; a caller waits at most the timeout and then reports [`KeyringError::Timeout`]. A call whose caller has
//! given up before it started is skipped, so a hung keyring never replays a queue of stale writes when it
//! wakes up. Nothing here prints the value: errors carry the keyring's own message, never the secret.

use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The keyring service of the Codex login.
pub const SERVICE: &str = "Codex Auth";
/// How long a keyring call may take by default before the caller gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A keyring call that failed; the message says what to do and never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No keyring service to talk to (no D-Bus session, no Secret Service provider, unsupported platform).
    #[error(
        "the OS keyring is unavailable ({0}); on a desktop, log in to its session; on a headless machine start a \
         Secret Service (gnome-keyring-daemon) in the D-Bus session, or set cli_auth_credentials_store = \"file\""
    )]
    Unavailable(String),
    /// The keyring is locked, or refused access.
    #[error("the OS keyring is locked or refused access ({0}); unlock it (e.g. log in to the desktop session)")]
    Locked(String),
    /// The keyring did not answer in time (an unlock prompt nobody answered, a hung service).
    #[error(
        "the OS keyring did not answer within {} ms (is it waiting for an unlock prompt?); codexd keeps serving \
         the credentials it holds",
        .0.as_millis()
    )]
    Timeout(Duration),
    /// Any other keyring failure.
    #[error("the OS keyring failed: {0}")]
    Failed(String),
}

impl KeyringError {
    /// The stable `reason` of this failure in status answers.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyringError::Unavailable(_) => "keyringUnavailable",
            KeyringError::Locked(_) => "keyringLocked",
            KeyringError::Timeout(_) => "keyringTimeout",
            KeyringError::Failed(_) => "keyringError",
        }
    }
}

/// The Codex CLI's keyring account for a credential home: `cli|` + 16 hex digits of sha256(canonical path).
pub fn account_for(codex_home: &Path) -> String {
    let canonical = std::fs::canonicalize(codex_home).unwrap_or_else(|_| codex_home.to_owned());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    format!("cli|{}", &format!("{digest:x}")[..16])
}

enum Op {
    Get,
    Set(Vec<u8>),
    Delete,
}

enum Answer {
    Value(Option<Vec<u8>>),
    Done,
    Deleted(bool),
}

struct Job {
    op: Op,
    deadline: Instant,
    reply: mpsc::SyncSender<Result<Answer, KeyringError>>,
}

/// The Codex login's keyring entry for one credential home. Cheap to share; the worker thread starts with the
/// first call and ends when the last handle is dropped.
pub struct Keyring {
    account: String,
    timeout: Duration,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("account", &self.account)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The entry of `codex_home`'s login; every call waits at most `timeout`.
    pub fn new(codex_home: &Path, timeout: Duration) -> Arc<Keyring> {
        Arc::new(Keyring { account: account_for(codex_home), timeout, jobs: Mutex::new(None) })
    }

    /// The stored value; `Ok(None)` when there is no entry.
    pub fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
        match self.call(Op::Get)? {
            Answer::Value(value) => Ok(value),
            Answer::Done | Answer::Deleted(_) => Err(KeyringError::Failed("unexpected answer".to_owned())),
        }
    }

    /// Creates or replaces the entry.
    pub fn set(&self, value: &[u8]) -> Result<(), KeyringError> {
        self.call(Op::Set(value.to_vec())).map(|_| ())
    }

    /// Removes the entry; returns whether there was one.
    pub fn delete(&self) -> Result<bool, KeyringError> {
        match self.call(Op::Delete)? {
            Answer::Deleted(existed) => Ok(existed),
            Answer::Done | Answer::Value(_) => Ok(true),
        }
    }

    fn call(&self, op: Op) -> Result<Answer, KeyringError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let deadline = Instant::now() + self.timeout;
        let job = Job { op, deadline, reply };
        {
            let mut jobs = crate::daemon::lock(&self.jobs);
            let sender = jobs.get_or_insert_with(|| spawn_worker(self.account.clone()));
            if let Err(mpsc::SendError(job)) = sender.send(job) {
                // The worker is gone (it panicked): start another one.
                let sender = spawn_worker(self.account.clone());
                let _ = sender.send(job);
                *jobs = Some(sender);
            }
        }
        match answer.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(KeyringError::Timeout(self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(KeyringError::Failed("the keyring worker stopped".to_owned()))
            }
        }
    }
}

fn spawn_worker(account: String) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new().name("codexd-keyring".to_owned()).spawn(move || {
        let mut backend = Backend::new(account);
        while let Ok(job) = rx.recv() {
            if Instant::now() >= job.deadline {
                // Its caller has given up: doing it now would surprise everyone.
                continue;
            }
            let result = backend.run(job.op);
            let _ = job.reply.send(result);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the keyring thread");
    }
    tx
}

/// The worker's connection to the platform store, made on first use and remade after a platform failure.
struct Backend {
    account: String,
    #[cfg(target_os = "linux")]
    store: Option<Arc<keyring_core::CredentialStore>>,
}

impl Backend {
    fn new(account: String) -> Self {
        Backend {
            account,
            #[cfg(target_os = "linux")]
            store: None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn run(&mut self, _op: Op) -> Result<Answer, KeyringError> {
        let _ = &self.account;
        Err(KeyringError::Unavailable(
            "codexd has no keyring backend on this platform yet; use the file store".to_owned(),
        ))
    }

    #[cfg(target_os = "linux")]
    #[allow(clippy::needless_pass_by_value)]
    fn run(&mut self, op: Op) -> Result<Answer, KeyringError> {
        use keyring_core::Error;
        let result = self.entry().and_then(|entry| match &op {
            Op::Get => match entry.get_secret() {
                Ok(value) => Ok(Answer::Value(Some(value))),
                Err(Error::NoEntry) => Ok(Answer::Value(None)),
                Err(e) => Err(e),
            },
            Op::Set(value) => {
                entry.set_secret(value)?;
                // The Codex CLI's keyring 3 creates items with this attribute too; a failure here is cosmetic.
                let application = std::collections::HashMap::from([("application", "rust-keyring")]);
                if let Err(e) = entry.update_attributes(&application) {
                    tracing::debug!(error = %describe(&e), "cannot set the keyring item's application attribute");
                }
                Ok(Answer::Done)
            }
            Op::Delete => match entry.delete_credential() {
                Ok(()) => Ok(Answer::Deleted(true)),
                Err(Error::NoEntry) => Ok(Answer::Deleted(false)),
                Err(e) => Err(e),
            },
        });
        result.map_err(|e| {
            if matches!(e, Error::PlatformFailure(_) | Error::NoDefaultStore) {
                // The connection may be dead (the bus or the service restarted): reconnect next time.
                self.store = None;
            }
            classify(&e)
        })
    }

    #[cfg(target_os = "linux")]
    fn entry(&mut self) -> Result<keyring_core::Entry, keyring_core::Error> {
        let store = match &self.store {
            Some(store) => store.clone(),
            None => {
                let store: Arc<keyring_core::CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
                self.store = Some(store.clone());
                store
            }
        };
        let label = format!("{}@{SERVICE}:default (codexd)", self.account);
        let modifiers = std::collections::HashMap::from([("target", "default"), ("label", label.as_str())]);
        keyring_core::Entry::new_in_store_with_modifiers(&store, SERVICE, &self.account, &modifiers)
    }
}

/// A keyring error as one of ours; the secret-bearing variants are described without their payload.
#[cfg(target_os = "linux")]
fn classify(error: &keyring_core::Error) -> KeyringError {
    use keyring_core::Error;
    match error {
        Error::PlatformFailure(_) | Error::NoDefaultStore => KeyringError::Unavailable(describe(error)),
        Error::NoStorageAccess(_) => KeyringError::Locked(describe(error)),
        _ => KeyringError::Failed(describe(error)),
    }
}

/// A keyring error's text without anything it may carry of the secret.
#[cfg(target_os = "linux")]
fn describe(error: &keyring_core::Error) -> String {
    use keyring_core::Error;
    match error {
        Error::PlatformFailure(e) => format!("platform failure: {e}"),
        Error::NoStorageAccess(e) => format!("no access: {e}"),
        Error::NoEntry => "no entry".to_owned(),
        Error::BadEncoding(_) | Error::BadDataFormat(..) => "the stored value is not in the expected format".to_owned(),
        Error::BadStoreFormat(reason) => format!("the store is malformed: {reason}"),
        Error::TooLong(name, limit) => {
            format!("the login is too long for this keyring ({name} is limited to {limit})")
        }
        Error::Invalid(what, reason) => format!("{what} is invalid: {reason}"),
        Error::Ambiguous(items) => format!(
            "{} keyring items match service {SERVICE:?} and this account; remove the extra ones (e.g. with secret-tool)",
            items.len()
        ),
        Error::NoDefaultStore => "no keyring store".to_owned(),
        Error::NotSupportedByStore(what) => format!("not supported by the keyring: {what}"),
        _ => "unknown keyring error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_the_codex_cli_one() {
        let home = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(home.path()).unwrap();
        let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
        let expected = format!("cli|{}", &hex.concat()[..16]);
        assert_eq!(account_for(home.path()), expected);
        assert_eq!(account_for(&home.path().join(".")), expected);
        assert_eq!(account_for(home.path()).len(), 20);
    }

    #[test]
    fn without_a_session_bus_calls_fail_fast_and_say_why() {
        // No D-Bus address and no runtime dir: the Secret Service cannot be reached.
        // (The variables are process-wide: this test only runs the worker in a child-free way by checking the
        // error kind; it does not change the environment.)
        let keyring = Keyring::new(Path::new("/nonexistent-codexd-home"), Duration::from_secs(5));
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            return;
        }
        let started = Instant::now();
        let error = keyring.get().unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{error}");
        assert_eq!(error.reason(), "keyringUnavailable", "{error}");
        assert!(error.to_string().contains("cli_auth_credentials_store"), "{error}");
    }

    #[test]
    fn reasons_are_stable() {
        assert_eq!(KeyringError::Timeout(Duration::from_millis(250)).reason(), "keyringTimeout");
        assert!(KeyringError::Timeout(Duration::from_millis(250)).to_string().contains("250 ms"));
        assert_eq!(KeyringError::Locked(String::new()).reason(), "keyringLocked");
        assert_eq!(KeyringError::Failed(String::new()).reason(), "keyringError");
    }
}
