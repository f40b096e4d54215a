//! The credential state: what the store held when it was last read, what the login policy makes of it, and the
//! generation counter. Pure, no I/O.

use crate::auth::{AuthDotJson, AuthFileError, Credentials};
use crate::policy::LoginPolicy;
use codexd_proto::methods::{AuthProblem, UpdateReason};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The `reason` of an [`AuthProblem`] when managed policy refused the stored credentials.
pub const POLICY: &str = "policy";

/// What reading the store gave. `Debug` never shows the contents (they hold the tokens).
pub enum StoreRead {
    /// Nothing is stored.
    Absent,
    /// The raw stored document.
    Contents(Vec<u8>),
    /// The store could not be read (permissions, I/O); the message names the path, never the contents.
    Failed(AuthProblem),
    /// The keyring could not be asked (unreachable, locked, slow): what the daemon holds is still served.
    Unavailable(AuthProblem),
}

impl std::fmt::Debug for StoreRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreRead::Absent => f.write_str("Absent"),
            StoreRead::Contents(bytes) => write!(f, "Contents({} bytes)", bytes.len()),
            StoreRead::Failed(problem) => f.debug_tuple("Failed").field(problem).finish(),
            StoreRead::Unavailable(problem) => f.debug_tuple("Unavailable").field(problem).finish(),
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
    /// Something is stored but cannot be used (or policy removed it); the store is left as it is.
    Unusable(AuthProblem),
}

impl Loaded {
    /// Whether this is the mark left by managed policy.
    pub fn is_policy_refusal(&self) -> bool {
        matches!(self, Loaded::Unusable(problem) if problem.reason == POLICY)
    }
}

/// Identity of one reading of the store, to tell a real change from an echo of the same contents. A document
/// is identified by its canonical (compact) form, so the same login read from `auth.json` or the keyring is
/// the same login.
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
    /// What the store holds, as read (before the policy and refresh failures are applied).
    stored: Loaded,
    /// What is served.
    loaded: Loaded,
    policy: LoginPolicy,
}

impl CredentialState {
    /// The state after the first reading at startup, generation 0.
    pub fn new(read: StoreRead, policy: LoginPolicy) -> Self {
        let (fingerprint, stored) = interpret(read);
        let loaded = judge(&stored, &policy);
        Self { generation: 0, fingerprint, stored, loaded, policy }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the state comes from a successful reading of the store (not from a failure to read it).
    pub fn holds_a_reading(&self) -> bool {
        !matches!(self.fingerprint, Fingerprint::Failed(_))
    }

    /// The current credentials, or why there are none.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// Marks usable credentials as unusable for `problem` (a refresh refused for good, a logout that revoked but
    /// could not remove). The stored contents are unchanged, so the mark lasts until the store changes (a login,
    /// or another program writing new tokens); `None` when there were no usable credentials to mark.
    pub fn mark_unusable(&mut self, problem: AuthProblem, reason: UpdateReason) -> Option<Change> {
        if !matches!(self.loaded, Loaded::LoggedIn(_)) {
            return None;
        }
        self.loaded = Loaded::Unusable(problem);
        Some(self.bump(reason))
    }

    /// Whether credentials the policy refuses are still in the store (their removal failed, or is pending).
    pub fn refused_still_stored(&self) -> bool {
        self.loaded.is_policy_refusal() && matches!(self.stored, Loaded::LoggedIn(_))
    }

    /// Takes a new reading of the store. Identical contents are no change (this is what keeps the daemon's
    /// own writes from echoing back as external changes); anything else bumps the generation. Credentials the
    /// policy refuses are served as [`POLICY`] problems, with reason `policy`; their removal that follows is no
    /// change: the mark stays until something else is stored.
    pub fn observe(&mut self, read: StoreRead, reason: UpdateReason) -> Option<Change> {
        let (fingerprint, stored) = interpret(read);
        if fingerprint == self.fingerprint {
            return None;
        }
        self.fingerprint = fingerprint;
        if matches!(stored, Loaded::LoggedOut) && self.loaded.is_policy_refusal() {
            self.stored = stored;
            return None;
        }
        self.stored = stored;
        self.loaded = judge(&self.stored, &self.policy);
        let reason = if self.loaded.is_policy_refusal() { UpdateReason::Policy } else { reason };
        Some(self.bump(reason))
    }

    /// Applies a new login policy to what is stored: credentials it refuses are marked (reason `policy`);
    /// credentials a relaxed policy allows again (not yet removed) are served again.
    pub fn set_policy(&mut self, policy: LoginPolicy) -> Option<Change> {
        self.policy = policy;
        let Loaded::LoggedIn(_) = &self.stored else { return None };
        let judged = judge(&self.stored, &self.policy);
        let changed = match (&self.loaded, &judged) {
            (Loaded::Unusable(now), Loaded::Unusable(new)) => now.reason == POLICY && now != new,
            // A refresh failure stays marked unless the policy refuses the credentials.
            (Loaded::Unusable(now), Loaded::LoggedIn(_)) => now.reason == POLICY,
            (Loaded::LoggedIn(_), Loaded::Unusable(_)) => true,
            _ => false,
        };
        if !changed {
            return None;
        }
        self.loaded = judged;
        Some(self.bump(UpdateReason::Policy))
    }

    fn bump(&mut self, reason: UpdateReason) -> Change {
        self.generation += 1;
        Change { generation: self.generation, reason, loaded: self.loaded.clone() }
    }
}

/// What is served for `stored` under `policy`.
fn judge(stored: &Loaded, policy: &LoginPolicy) -> Loaded {
    match stored {
        Loaded::LoggedIn(c) => match policy.check_stored(c.mode, c.account_id.as_deref()) {
            Ok(()) => stored.clone(),
            Err(message) => Loaded::Unusable(AuthProblem::new(POLICY, message)),
        },
        other => other.clone(),
    }
}

fn interpret(read: StoreRead) -> (Fingerprint, Loaded) {
    match read {
        StoreRead::Absent => (Fingerprint::Absent, Loaded::LoggedOut),
        StoreRead::Failed(problem) | StoreRead::Unavailable(problem) => {
            (Fingerprint::Failed(problem.message.clone()), Loaded::Unusable(problem))
        }
        StoreRead::Contents(bytes) => {
            let parsed = AuthDotJson::parse(&bytes);
            let canonical = match &parsed {
                Ok(doc) => Sha256::digest(doc.to_compact_bytes()),
                Err(_) => Sha256::digest(&bytes),
            };
            let loaded = match parsed.and_then(|doc| Credentials::from_dotjson(&doc)) {
                Ok(credentials) => Loaded::LoggedIn(Arc::new(credentials)),
                Err(AuthFileError::NoCredentials) => Loaded::LoggedOut,
                Err(e) => Loaded::Unusable(AuthProblem::new(
                    "authFileCorrupt",
                    format!(
                        "{e}; codexd leaves the file as it is: fix it or sign in again, and codexd reloads it at once"
                    ),
                )),
            };
            (Fingerprint::Sha256(canonical.into()), loaded)
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
        let mut state = CredentialState::new(StoreRead::Contents(APIKEY.to_vec()), LoginPolicy::default());
        assert_eq!(state.generation(), 0);
        assert!(matches!(state.loaded(), Loaded::LoggedIn(_)));
        assert!(state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).is_none());
        assert_eq!(state.generation(), 0);
    }

    #[test]
    fn every_real_change_bumps_the_generation_once() {
        let mut state = CredentialState::new(StoreRead::Absent, LoginPolicy::default());
        let login = state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).unwrap();
        assert_eq!(login.generation, 1);
        let logout = state.observe(StoreRead::Absent, UpdateReason::Logout).unwrap();
        assert_eq!((logout.generation, logout.reason), (2, UpdateReason::Logout));
        assert!(matches!(logout.loaded, Loaded::LoggedOut));
        assert!(state.observe(StoreRead::Absent, UpdateReason::External).is_none());
    }

    #[test]
    fn a_refresh_failure_lasts_until_the_store_changes() {
        let mut state = CredentialState::new(StoreRead::Contents(APIKEY.to_vec()), LoginPolicy::default());
        let failed = state
            .mark_unusable(AuthProblem::new("refreshFailed", "sign in again"), UpdateReason::RefreshFailed)
            .unwrap();
        assert_eq!((failed.generation, failed.reason), (1, UpdateReason::RefreshFailed));
        assert!(state.mark_unusable(AuthProblem::new("refreshFailed", "again"), UpdateReason::RefreshFailed).is_none());
        assert!(state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).is_none());
        assert!(matches!(state.loaded(), Loaded::Unusable(_)));
        let other = b"{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-test-456\"\n}";
        let change = state.observe(StoreRead::Contents(other.to_vec()), UpdateReason::External).unwrap();
        assert!(matches!(change.loaded, Loaded::LoggedIn(_)));
    }

    #[test]
    fn corrupt_contents_are_unusable_and_never_quoted() {
        let mut state = CredentialState::new(StoreRead::Absent, LoginPolicy::default());
        let change = state
            .observe(StoreRead::Contents(b"{\"OPENAI_API_KEY\": \"sk-leak-me".to_vec()), UpdateReason::External)
            .unwrap();
        let Loaded::Unusable(problem) = change.loaded else { panic!("expected unusable") };
        assert_eq!(problem.reason, "authFileCorrupt");
        assert!(!problem.message.contains("sk-leak-me"), "{}", problem.message);
    }

    fn chatgpt_only() -> LoginPolicy {
        LoginPolicy { forced_login_method: Some(codexd_proto::methods::AuthMode::Chatgpt), ..LoginPolicy::default() }
    }

    #[test]
    fn credentials_the_policy_refuses_are_served_as_a_policy_problem_until_something_else_is_stored() {
        let mut state = CredentialState::new(StoreRead::Absent, chatgpt_only());
        let refused = state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::External).unwrap();
        assert_eq!(refused.reason, UpdateReason::Policy);
        assert!(refused.loaded.is_policy_refusal());
        let Loaded::Unusable(problem) = &refused.loaded else { panic!("expected a policy problem") };
        assert_eq!(problem.message, "ChatGPT login is required, but an API key is currently being used. Logging out.");
        // The daemon removes them: no second notification, and the reason stays visible.
        assert!(state.observe(StoreRead::Absent, UpdateReason::Policy).is_none());
        assert!(state.loaded().is_policy_refusal());
        // The same key stored again is refused again.
        let again = state.observe(StoreRead::Contents(APIKEY.to_vec()), UpdateReason::Login).unwrap();
        assert_eq!((again.reason, again.generation), (UpdateReason::Policy, 2));
    }

    #[test]
    fn a_policy_change_marks_and_unmarks_stored_credentials_once() {
        let mut state = CredentialState::new(StoreRead::Contents(APIKEY.to_vec()), LoginPolicy::default());
        assert!(matches!(state.loaded(), Loaded::LoggedIn(_)));
        let marked = state.set_policy(chatgpt_only()).unwrap();
        assert_eq!((marked.reason, marked.generation), (UpdateReason::Policy, 1));
        assert!(state.set_policy(chatgpt_only()).is_none());
        let relaxed = state.set_policy(LoginPolicy::default()).unwrap();
        assert!(matches!(relaxed.loaded, Loaded::LoggedIn(_)));
        // A refresh failure is not undone by a policy change.
        state.mark_unusable(AuthProblem::new("refreshFailed", "sign in again"), UpdateReason::RefreshFailed).unwrap();
        assert!(state.set_policy(LoginPolicy::default()).is_none());
        assert!(matches!(state.loaded(), Loaded::Unusable(p) if p.reason == "refreshFailed"));
    }

    #[test]
    fn the_same_document_in_another_format_is_the_same_login() {
        let compact = AuthDotJson::parse(APIKEY).unwrap().to_compact_bytes();
        assert_ne!(compact, APIKEY);
        let mut state = CredentialState::new(StoreRead::Contents(APIKEY.to_vec()), LoginPolicy::default());
        assert!(state.observe(StoreRead::Contents(compact), UpdateReason::External).is_none());
    }
}
