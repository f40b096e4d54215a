//! Logins run by the daemon: browser ([`browser`]: PKCE and a loopback callback), device code ([`device`]) and
//! API key. One login is in progress at a time; starting another cancels it. A login replaces the stored
//! credentials only once it has succeeded and passed the policy check (the Codex CLI deletes them first).

pub mod browser;
pub mod device;

use crate::auth::claims;
use crate::auth::{AuthDotJson, OauthProvenance, TokenData};
use crate::daemon::{Daemon, lock};
use crate::oauth::{CLIENT_ID, LoginTokens};
use crate::policy::LoginPolicy;
use base64::Engine as _;
use codexd_proto::methods::{AuthMode, CancelStatus, LoginCompleted, LoginStartResult};
use codexd_proto::{ErrorCode, ErrorObject, Secret};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The error of a login that was replaced by a newer one.
pub const REPLACED: &str = "replaced by a newer login";
/// The error of a login canceled through `account/login/cancel`.
pub const CANCELED: &str = "login canceled";

/// The login in progress, if any.
#[derive(Debug, Default)]
pub struct Logins {
    active: Mutex<Option<Active>>,
}

#[derive(Debug)]
struct Active {
    id: String,
    stop: Stop,
}

/// Ends a login early, saying why.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    why: Arc<OnceLock<&'static str>>,
}

impl Stop {
    fn stop(&self, why: &'static str) {
        let _ = self.why.set(why);
        self.token.cancel();
    }

    /// Resolves with the reason once the login is stopped.
    pub async fn stopped(&self) -> &'static str {
        self.token.cancelled().await;
        self.reason()
    }

    fn reason(&self) -> &'static str {
        self.why.get().copied().unwrap_or(CANCELED)
    }
}

impl Logins {
    /// Registers a new login, stopping the one in progress; returns its id and its stop signal.
    fn begin(&self) -> (String, Stop) {
        let id = random_id(16);
        let stop = Stop::default();
        if let Some(previous) = lock(&self.active).replace(Active { id: id.clone(), stop: stop.clone() }) {
            tracing::info!(login = %previous.id, "a newer login replaces the one in progress");
            previous.stop.stop(REPLACED);
        }
        (id, stop)
    }

    /// Stops the login with this id, if it is still in progress.
    pub fn cancel(&self, id: &str) -> CancelStatus {
        match self.take(id) {
            Some(active) => {
                active.stop.stop(CANCELED);
                CancelStatus::Canceled
            }
            None => CancelStatus::NotFound,
        }
    }

    /// Stops whatever login is in progress (API-key logins replace it too).
    fn stop_active(&self) {
        if let Some(previous) = lock(&self.active).take() {
            previous.stop.stop(REPLACED);
        }
    }

    /// Marks the login as past the point of no return (its credentials are about to be stored): it can no
    /// longer be canceled or replaced. `false` when it was stopped first.
    fn commit(&self, id: &str) -> bool {
        self.take(id).is_some()
    }

    fn finish(&self, id: &str) {
        self.take(id);
    }

    /// Removes the login with this id from "in progress", if it still is.
    fn take(&self, id: &str) -> Option<Active> {
        let mut active = lock(&self.active);
        if active.as_ref().is_some_and(|a| a.id == id) { active.take() } else { None }
    }
}

/// Stores an API key as the Codex CLI does (trimmed, `auth_mode: "apikey"`), after the policy check.
pub async fn login_api_key(daemon: &Daemon, key: &Secret) -> Result<LoginStartResult, ErrorObject> {
    let key = key.expose().trim();
    if key.is_empty() {
        return Err(ErrorObject::new(ErrorCode::InvalidParams, "apiKey is empty"));
    }
    policy(daemon).await.check_method(AuthMode::ApiKey).map_err(refused)?;
    daemon.logins.stop_active();
    daemon
        .save_login(AuthDotJson::from_api_key(Secret::new(key)))
        .await
        .map_err(|e| ErrorObject::new(ErrorCode::StoreError, format!("the API key could not be stored: {e}")))?;
    daemon.publish_login_completed(&LoginCompleted { login_id: None, success: true, error: None });
    Ok(LoginStartResult::ApiKey)
}

/// Starts a browser login: binds the callback listener and returns the URL to open.
pub async fn start_browser(daemon: &Daemon) -> Result<LoginStartResult, ErrorObject> {
    let policy = policy(daemon).await;
    check_chatgpt_allowed(&policy)?;
    let (id, stop) = daemon.logins.begin();
    let prepared = match browser::prepare(daemon, &policy).await {
        Ok(prepared) => prepared,
        Err(message) => {
            daemon.logins.finish(&id);
            return Err(ErrorObject::new(ErrorCode::InternalError, message));
        }
    };
    let auth_url = prepared.auth_url.clone();
    let handle = daemon.handle();
    let timeout = daemon.config().session.login_timeout;
    spawn_login(handle, id.clone(), stop, timeout, move |daemon| async move { prepared.run(&daemon).await });
    Ok(LoginStartResult::Chatgpt { login_id: id, auth_url })
}

/// Starts a device-code login: asks the issuer for a code and returns what to show the user.
pub async fn start_device(daemon: &Daemon) -> Result<LoginStartResult, ErrorObject> {
    check_chatgpt_allowed(&policy(daemon).await)?;
    let code =
        daemon.issuer().device_start().await.map_err(|e| {
            ErrorObject::new(ErrorCode::InternalError, format!("device code login could not start: {e}"))
        })?;
    let (id, stop) = daemon.logins.begin();
    let verification_url = format!("{}/codex/device", daemon.issuer().endpoints().issuer);
    let user_code = code.user_code.clone();
    let timeout = daemon.config().session.device_code_timeout;
    spawn_login(daemon.handle(), id.clone(), stop, timeout, move |daemon| async move {
        let tokens = device::poll(&daemon, &code).await?;
        Ok(Obtained { tokens, api_key: None, responder: None })
    });
    Ok(LoginStartResult::ChatgptDeviceCode { login_id: id, verification_url, user_code })
}

/// What a login's flow obtained: the tokens, and for a browser login the callback request still waiting.
pub struct Obtained {
    /// The tokens of the code exchange.
    pub tokens: LoginTokens,
    /// The API key of the token exchange (browser logins only).
    pub api_key: Option<Secret>,
    /// The browser, waiting for the outcome.
    pub responder: Option<browser::Responder>,
}

/// Runs a login's flow until it has obtained tokens, or is stopped, times out, or the daemon shuts down. Then,
/// past the point of no return (nothing can stop it any more), checks and stores the login, and tells everyone.
fn spawn_login<F, Fut>(daemon: Arc<Daemon>, id: String, stop: Stop, timeout: Duration, flow: F)
where
    F: FnOnce(Arc<Daemon>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Obtained, String>> + Send + 'static,
{
    tokio::spawn(async move {
        let shutdown = daemon.shutdown_token().clone();
        let obtained = tokio::select! {
            result = flow(daemon.clone()) => result,
            why = stop.stopped() => Err(why.to_owned()),
            () = tokio::time::sleep(timeout) => Err(format!("the login timed out after {} s; start it again", timeout.as_secs())),
            () = shutdown.cancelled() => Err("codexd is shutting down".to_owned()),
        };
        let (result, responder) = match obtained {
            Err(error) => (Err(error), None),
            Ok(obtained) if daemon.logins.commit(&id) => {
                (finish_chatgpt(&daemon, obtained.tokens, obtained.api_key).await, obtained.responder)
            }
            Ok(obtained) => (Err(stop.reason().to_owned()), obtained.responder),
        };
        daemon.logins.finish(&id);
        match &result {
            Ok(()) => tracing::info!(login = %id, "login completed"),
            Err(error) => tracing::info!(login = %id, %error, "login ended without signing in"),
        }
        daemon.publish_login_completed(&LoginCompleted {
            login_id: Some(id),
            success: result.is_ok(),
            error: result.clone().err(),
        });
        if let Some(responder) = responder {
            responder.finish(&result).await;
        }
    });
}

/// Checks the workspace against the policy, then stores a ChatGPT login (with the API key from the token
/// exchange, when there is one).
pub async fn finish_chatgpt(daemon: &Daemon, tokens: LoginTokens, api_key: Option<Secret>) -> Result<(), String> {
    let claims = claims::parse_id_token(tokens.id_token.expose()).map_err(|e| format!("the id_token {e}"))?;
    let policy = policy(daemon).await;
    policy.check_method(AuthMode::Chatgpt)?;
    policy.check_workspace(claims.account_id.as_deref())?;
    let doc = AuthDotJson::from_chatgpt(
        TokenData {
            id_token: tokens.id_token,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            oauth_provenance: Some(OauthProvenance {
                issuer: daemon.issuer().endpoints().issuer.clone(),
                client_id: CLIENT_ID.to_owned(),
            }),
            login_owner_id: Some(random_id(32)),
            account_id: claims.account_id,
        },
        api_key,
        chrono::Utc::now(),
    );
    daemon.save_login(doc).await.map_err(|e| format!("the login could not be stored: {e}"))
}

/// The login policy as the config files say now (re-read first, so an edit made a moment ago counts; a file that
/// cannot be used keeps the last good policy).
async fn policy(daemon: &Daemon) -> LoginPolicy {
    daemon.reload_settings().await;
    daemon.settings().policy.clone()
}

/// Refuses a ChatGPT login the policy forbids whatever the account: the wrong kind, or no workspace left.
fn check_chatgpt_allowed(policy: &LoginPolicy) -> Result<(), ErrorObject> {
    policy.check_method(AuthMode::Chatgpt).map_err(refused)?;
    if policy.effective_workspaces().is_some_and(|ids| ids.is_empty()) {
        policy.check_workspace(None).map_err(refused)?;
    }
    Ok(())
}

fn refused(message: String) -> ErrorObject {
    ErrorObject::new(ErrorCode::PolicyRefused, message)
}

/// `bytes` random bytes as unpadded base64url (16 bytes: a login id; 32 bytes: a `login_owner_id`).
pub fn random_id(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}
