//! A fake Codex issuer (`auth.openai.com`) on 127.0.0.1, for codexd's end-to-end tests, its benchmark, and
//! editor-plugin authors who want logins and refreshes without an OpenAI account.
//!
//! It speaks the real issuer's wire (see `shared/reference/codex-auth.md` §3-§6):
//!
//! | request | answer |
//! |---|---|
//! | `GET /oauth/authorize?response_type=code&client_id&redirect_uri&code_challenge&code_challenge_method=S256&state` | `302` to `<redirect_uri>?code=..&state=..` (the current [`Account`] signs in) |
//! | `POST /oauth/token` form `grant_type=authorization_code` | `{id_token, access_token, refresh_token, token_type, expires_in, scope}` |
//! | `POST /oauth/token` form token-exchange, `requested_token=openai-api-key` | `{access_token: "sk-fake-..."}` |
//! | `POST /oauth/token` JSON `grant_type=refresh_token` | rotation; reuse -> 401 `refresh_token_reused`, unknown -> 401 `refresh_token_invalidated` |
//! | `POST /api/accounts/deviceauth/usercode` | `{device_auth_id, user_code, interval}` |
//! | `POST /api/accounts/deviceauth/token` | 403 `authorization_pending` until approved, then `{authorization_code, code_challenge, code_verifier}` |
//! | `GET /codex/device` | an HTML page |
//! | `POST /oauth/revoke` | `{}`; the refresh token's family is dead afterwards |
//!
//! Tests script faults per [`Endpoint`] ([`Fault`]), read the request log ([`RecordedRequest`]), and mint logins
//! without HTTP ([`FakeIssuer::mint`]). The same controls are served over HTTP under `/_fake/` (see
//! [`control`]) for non-Rust clients and the `codexd-fake-issuer` binary.
//!
//! Only ever point a codexd with a throwaway `CODEX_HOME` at it (a temp dir, as below), never a real one: a real
//! login without `oauth_provenance` would send its refresh token here, where the request log
//! (`GET /_fake/requests`) shows it to any local user, and writing a minted `auth.json` replaces the login there.
//!
//! ```no_run
//! use codexd_fake_issuer::{Account, Endpoint, FakeIssuer, Fault};
//! let issuer = FakeIssuer::start();
//! let login = issuer.mint(&Account::default());
//! let codex_home = tempfile::tempdir().unwrap();
//! std::fs::write(codex_home.path().join("auth.json"), login.auth_json(issuer.url())).unwrap();
//! issuer.script(Endpoint::Refresh, Fault::Status(500));
//! // ... start codexd with CODEX_HOME=<codex_home> and CODEXD_ISSUER=<issuer.url()> ...
//! assert!(issuer.wait_for_count(Endpoint::Refresh, 1, std::time::Duration::from_secs(10)));
//! ```

pub mod browser;
pub mod control;
pub mod jwt;
mod record;
mod script;
mod server;
mod state;
mod tls;

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

pub use record::RecordedRequest;
pub use script::{Endpoint, Fault, FaultSpec};
pub use state::refresh_error_body;

/// The Codex CLI's OAuth client id; the fake issuer accepts only this one.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";

/// `n` random bytes as base64url without padding.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The identity that signs in: the claims of the id_token and access_token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    /// `email` claim.
    pub email: String,
    /// `chatgpt_account_id` (the workspace).
    pub account_id: String,
    /// `chatgpt_user_id` / `user_id` / `sub`.
    pub user_id: String,
    /// `chatgpt_plan_type`, e.g. `plus`.
    pub plan_type: String,
    /// `organization_id`.
    pub organization_id: String,
    /// `project_id`.
    pub project_id: String,
    /// `completed_platform_onboarding`.
    pub completed_platform_onboarding: bool,
    /// `is_org_owner`.
    pub is_org_owner: bool,
}

impl Default for Account {
    fn default() -> Account {
        Account {
            email: "user@example.com".to_owned(),
            account_id: "acct-fake-0001".to_owned(),
            user_id: "user-fake-0001".to_owned(),
            plan_type: "plus".to_owned(),
            organization_id: "org-fake-0001".to_owned(),
            project_id: "proj-fake-0001".to_owned(),
            completed_platform_onboarding: true,
            is_org_owner: true,
        }
    }
}

/// One login's tokens, as the issuer returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The id_token JWT.
    pub id_token: String,
    /// The access_token JWT.
    pub access_token: String,
    /// The (single-use) refresh token.
    pub refresh_token: String,
    /// Who it is for.
    pub account: Account,
}

impl IssuedTokens {
    /// The Codex CLI's `auth.json` for this login (2-space pretty JSON, no trailing newline, the CLI's key order).
    pub fn auth_json(&self, issuer_url: &str) -> String {
        let last_refresh = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let value = json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": self.id_token,
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "oauth_provenance": {"issuer": issuer_url, "client_id": CLIENT_ID},
                "login_owner_id": random_token(32),
                "account_id": self.account.account_id,
            },
            "last_refresh": last_refresh,
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// How to start a [`FakeIssuer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Lifetime of access tokens (whole seconds in `exp`); default 3600 s.
    pub access_token_lifetime: Duration,
    /// Serve HTTPS with a generated CA (see [`FakeIssuer::ca_pem`]); default false.
    pub tls: bool,
    /// Port on 127.0.0.1; 0 (default) picks a free one.
    pub port: u16,
    /// Who signs in at `/oauth/authorize` and device approval.
    pub account: Account,
    /// The device-code polling interval handed out; default 1.
    pub device_interval_secs: u64,
    /// Approve a device login by itself after this many pending polls; default `Some(2)`, `None` = only
    /// [`FakeIssuer::approve_device`].
    pub device_auto_approve_after: Option<u32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            access_token_lifetime: Duration::from_secs(3600),
            tls: false,
            port: 0,
            account: Account::default(),
            device_interval_secs: 1,
            device_auto_approve_after: Some(2),
        }
    }
}

/// State shared by the handle and the server thread.
pub(crate) struct Shared {
    state: Mutex<state::State>,
    /// Signalled whenever a request is recorded.
    recorded: Condvar,
    /// Bumped by `clear_faults` to release hung requests.
    release_tx: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn clear_faults(&self) {
        let mut state = self.lock();
        state.script.clear();
        self.release_tx.send_modify(|n| *n += 1);
    }
}

/// A running fake issuer. Dropping it stops the server and closes every connection, hung ones included.
pub struct FakeIssuer {
    shared: Arc<Shared>,
    url: String,
    ca_pem: Option<String>,
    shutdown_tx: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIssuer").field("url", &self.url).finish_non_exhaustive()
    }
}

impl FakeIssuer {
    /// Starts with default [`Options`]; panics with a clear message if it cannot bind.
    pub fn start() -> FakeIssuer {
        match FakeIssuer::start_with(Options::default()) {
            Ok(issuer) => issuer,
            Err(e) => panic!("fake issuer: cannot start on 127.0.0.1: {e}"),
        }
    }

    /// Starts with `options`: binds 127.0.0.1, then serves on its own thread and tokio runtime.
    pub fn start_with(options: Options) -> std::io::Result<FakeIssuer> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind((std::net::Ipv4Addr::LOCALHOST, options.port).into())?;
        let port = socket.local_addr()?.port();
        let tls = if options.tls { Some(tls::generate()?) } else { None };
        let url = if tls.is_some() { format!("https://localhost:{port}") } else { format!("http://127.0.0.1:{port}") };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-issuer")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            // A deep accept queue: a benchmark releases a thousand clients at once (std's default is 128).
            socket.listen(1024)
        };
        let listener = match listener {
            Ok(listener) => listener,
            Err(e) => {
                // Dropping a runtime inside an async context panics; the caller may be in one.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let (release_tx, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::new(url.clone(), options)),
            recorded: Condvar::new(),
            release_tx,
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| t.acceptor);
        let server_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("fake-issuer".to_owned()).spawn(move || {
            runtime.block_on(server::serve(listener, server_shared, acceptor, shutdown_rx));
            // Drops every connection task, hung ones included, without waiting for them.
            runtime.shutdown_background();
        })?;
        Ok(FakeIssuer { shared, url, ca_pem, shutdown_tx, thread: Some(thread) })
    }

    /// The base URL: `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test CA's PEM (TLS only): trust it via `CODEX_CA_CERTIFICATE`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A fresh login (a new, valid refresh-token family) for `account`, without an HTTP request.
    pub fn mint(&self, account: &Account) -> IssuedTokens {
        self.shared.lock().mint(account)
    }

    /// Sets who signs in at `/oauth/authorize` and device approval from now on.
    pub fn set_account(&self, account: Account) {
        self.shared.lock().account = account;
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().lifetime = lifetime;
    }

    /// Queues `fault` for the next request of `endpoint` (FIFO; one fault per request), then normal service.
    pub fn script(&self, endpoint: Endpoint, fault: Fault) {
        self.shared.lock().script.push(endpoint, fault);
    }

    /// Applies `fault` to every request of `endpoint` (after any queued ones) until [`FakeIssuer::clear_faults`].
    pub fn script_always(&self, endpoint: Endpoint, fault: Fault) {
        self.shared.lock().script.set_always(endpoint, fault);
    }

    /// Forgets every scripted fault and releases hung requests (their connections are closed unanswered).
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// Approves the pending device-code login with this user code; false if there is none.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.shared.lock().approve_device(user_code)
    }

    /// Every issuer request received so far, in order (control requests excluded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests `endpoint` has received so far, in order (faulted ones included).
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.shared.lock().requests.iter().filter(|r| r.endpoint == Some(endpoint)).cloned().collect()
    }

    /// How many requests `endpoint` has received (faulted ones included).
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.shared.lock().requests.iter().filter(|r| r.endpoint == Some(endpoint)).count()
    }

    /// Waits until `endpoint` has received at least `n` requests; false when `deadline` passes first.
    /// It blocks the calling thread: in an async test, use a multi-thread runtime or `spawn_blocking`.
    pub fn wait_for_count(&self, endpoint: Endpoint, n: usize, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        let mut state = self.shared.lock();
        loop {
            if state.requests.iter().filter(|r| r.endpoint == Some(endpoint)).count() >= n {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            state = self.shared.recorded.wait_timeout(state, until - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Every token sent to `/oauth/revoke`, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.shared.lock().revoked.clone()
    }

    /// Whether `token` is the newest, unused, unrevoked refresh token of its family.
    pub fn is_current_refresh_token(&self, token: &str) -> bool {
        self.shared.lock().is_current_refresh_token(token)
    }

    /// Logs one line per request to stderr (token fingerprints only, never values). Off by default.
    pub fn set_stderr_log(&self, on: bool) {
        self.shared.lock().log_to_stderr = on;
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
