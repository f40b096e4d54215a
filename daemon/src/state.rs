//! The credential state: what the store held when it was last read, and the generation counter. Pure, no I/O.

use crate::auth::{AuthDotJson, AuthFileError, Credentials};
use codexd_proto::methods::{AuthProblem, UpdateReason};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What reading the store gave. `Debug` never shows the contents (they hold the tokens).
pub enum StoreRead {
    /// There is no `auth.json`.
    Absent,
    /// The raw contents of `auth.json`.
    Contents(Vec<u8>),
    /// The file could not be read (permissions, I/O); the message names the path, never the contents.
    Failed(String),
}

impl std::fmt::Debug for StoreRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreRead::Absent => f.write_str("Absent"),
            StoreRead::Contents(bytes) => write!(f, "Contents({} bytes)", bytes.len()),
            StoreRead::Failed(message) => f.debug_tuple("Failed").field(message).finish(),
        }
    }
}

/// What the daemon can do with the stored credentials.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Nothing stored.
    LoggedOut,
    /// Usable credentials.
    LoggedIn(Arc<Credentials>),
    /// Something is stored but cannot be used; the file is left as it is.
    Unusable(AuthProblem),
}

/// Identity of one reading of the store, to tell a real change from an echo of the same contents.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Absent,
    Sha256([u8; 32]),
    Failed(String),
}

/// A change worth telling subscribers about.
#[derive(Debug, Clone)]
pub struct Change {
    /// The generation after the change.
    pub generation: u64,
    /// Why it changed.
    pub reason: UpdateReason,
    /// The state after the change.
    pub loaded: Loaded,
}

/// The one owner of the credential state (kept behind the daemon's mutex).
#[derive(Debug)]
pub struct CredentialState {
    generation: u64,
    fingerprint: Fingerprint,
    loaded: Loaded,
}

impl CredentialState {
    /// The state after the first reading at startup, generation 0.
    pub fn new(read: StoreRead) -> Self {
        let (fingerprint, loaded) = interpret(read);
        Self { generation: 0, fingerprint, loaded }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The current credentials, or why there are none.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// Marks the credentials as unusable after a refresh failed for good. The stored contents are unchanged,
    /// so the mark lasts until the store changes (a login, or another program writing new tokens); `None` when
    /// there were no usable credentials to mark.
    pub fn fail_refresh(&mut self, problem: AuthProblem) -> Option<Change> {
        if !matches!(self.loaded, Loaded::LoggedIn(_)) {
            return None;
        }
        self.loaded = Loaded::Unusable(problem);
        self.generation += 1;
        Some(Change { generation: self.generation, reason: UpdateReason::RefreshFailed, loaded: self.loaded.clone() })
    }

    /// Takes a new reading of the store. Identical contents are no change (this is what keeps the daemon's
    /// own writes from echoing back as external changes); anything else bumps the generation.
    pub fn observe(&mut self, read: StoreRead, reason: UpdateReason) -> Option<Change> {
        let (fingerprint, loaded) = interpret(read);
        if fingerprint == self.fingerprint {
            return None;
        }
        self.fingerprint = fingerprint;
        self.loaded = loaded;
        self.generation += 1;
        Some(Change { generation: self.generation, reason, loaded: self.loaded.clone() })
    }
}

fn interpret(read: StoreRead) -> (Fingerprint, Loaded) {
    match read {
        StoreRead::Absent => (Fingerprint::Absent, Loaded::LoggedOut),
        StoreRead::Failed(message) => {
            (Fingerprint::Failed(message.clone()), Loaded::Unusable(AuthProblem::new("authFileUnreadable", message)))
        }
        StoreRead::Contents(bytes) => {
            let fingerprint = Fingerprint::Sha256(Sha256::digest(&bytes).into());
            let loaded = match AuthDotJson::parse(&bytes).and_then(|doc| Credentials::from_dotjson(&doc)) {
                Ok(credentials) => Loaded::LoggedIn(Arc::new(credentials)),
                Err(AuthFileError::NoCredentials) => Loaded::LoggedOut,
                Err(e) => Loaded::Unusable(AuthProblem::new(
                    "authFileCorrupt",
                    format!(
                        "{e}; codexd leaves the file as it is: fix it or sign in again, and codexd reloads it at once"
                    ),
                )),
            };
            (fingerprint, loaded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APIKEY: &[u8] = b"{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-test-123\"\n}";

    #[test]
    fn store_read_debug_hides_the_contents() {
        assert_eq!(format!("{:?}", StoreRead::Contents(APIKEY.to_vec())), "Contents(62 bytes)");
    }

    #[test]
    fn identical_contents_are_not_a_change() {
        let mut state = CredentialState::new(StoreRead::Contents(APIKEY.to_vec()));
        assert_eq!(state.generation(), 0);
        assert!(matches!(state.loaded(), Loaded::LoggedIn(_)));
        assert!(state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).is_none());
        assert_eq!(state.generation(), 0);
    }

    #[test]
    fn every_real_change_bumps_the_generation_once() {
        let mut state = CredentialState::new(StoreRead::Absent);
        let login = state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).unwrap();
        assert_eq!(login.generation, 1);
        let logout = state.observe(StoreRead::Absent, UpdateReason::Logout).unwrap();
        assert_eq!((logout.generation, logout.reason), (2, UpdateReason::Logout));
        assert!(matches!(logout.loaded, Loaded::LoggedOut));
        assert!(state.observe(StoreRead::Absent, UpdateReason::External).is_none());
    }

    #[test]
    fn a_refresh_failure_lasts_until_the_store_changes() {
        let mut state = CredentialState::new(StoreRead::Contents(APIKEY.to_vec()));
        let failed = state.fail_refresh(AuthProblem::new("refreshFailed", "sign in again")).unwrap();
        assert_eq!((failed.generation, failed.reason), (1, UpdateReason::RefreshFailed));
        assert!(state.fail_refresh(AuthProblem::new("refreshFailed", "again")).is_none());
        assert!(state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).is_none());
        assert!(matches!(state.loaded(), Loaded::Unusable(_)));
        let other = b"{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-test-456\"\n}";
        let change = state.observe(StoreRead::Contents(other.to_vec()), UpdateReason::External).unwrap();
        assert!(matches!(change.loaded, Loaded::LoggedIn(_)));
    }

    #[test]
    fn corrupt_contents_are_unusable_and_never_quoted() {
        let mut state = CredentialState::new(StoreRead::Absent);
        let change = state
            .observe(StoreRead::Contents(b"{\"OPENAI_API_KEY\": \"sk-leak-me".to_vec()), UpdateReason::External)
            .unwrap();
        let Loaded::Unusable(problem) = change.loaded else { panic!("expected unusable") };
        assert_eq!(problem.reason, "authFileCorrupt");
        assert!(!problem.message.contains("sk-leak-me"), "{}", problem.message);
    }
}
