//! Request dispatch: the only place that sees both wire types and the daemon's domain types.

use crate::daemon::{CountGuard, Daemon, Snapshot};
use crate::events::EncodedLine;
use crate::oauth::RefreshReason;
use crate::refresh::RefreshOutcome;
use crate::state::Loaded;
use codexd_proto::methods::{
    Account, AccountReadParams, AccountReadResult, ClientInfo, DaemonStatusResult, EmptyResult, GetAuthStatusParams,
    GetAuthStatusResult, InitializeParams, InitializeResult, LoginCancelParams, LoginCancelResult, LoginPolicyStatus,
    LoginStartParams, PROTOCOL_VERSION, StoreMigrateParams, method,
};
use codexd_proto::{ErrorCode, ErrorObject, Request, Response, ResultReply};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

/// What a connection holds once it has called `initialize`.
pub struct Subscription<'a> {
    /// Notifications for this connection.
    pub events: broadcast::Receiver<EncodedLine>,
    _counted: CountGuard<'a>,
}

/// Per-connection state that requests may change.
#[derive(Default)]
pub struct Session<'a> {
    /// Set by `initialize`.
    pub subscription: Option<Subscription<'a>>,
    /// Who the client said it is.
    pub client: Option<ClientInfo>,
}

/// Handles one parsed request; returns the encoded reply line, or `None` for a client notification (no id).
pub async fn handle<'a>(daemon: &'a Daemon, request: Request, session: &mut Session<'a>) -> Option<Vec<u8>> {
    let id = request.id.clone();
    tracing::debug!(method = %request.method, id = ?id, "request");
    let outcome = if daemon.shutdown_token().is_cancelled() && request.method != method::DAEMON_STATUS {
        Err(ErrorObject::new(ErrorCode::ShuttingDown, "codexd is shutting down; reconnect when it is back"))
    } else {
        route(daemon, &request, session).await
    };
    let id = id?;
    let encoded = match outcome {
        Ok(result) => codexd_proto::frame::encode(&ResultReply::new(&id, &*result)),
        Err(error) => codexd_proto::frame::encode(&Response::error(Some(id.clone()), error)),
    };
    match encoded {
        Ok(line) => Some(line),
        Err(e) => {
            let error = ErrorObject::new(ErrorCode::InternalError, format!("could not encode the reply: {e}"));
            codexd_proto::frame::encode(&Response::error(Some(id), error)).ok()
        }
    }
}

async fn route<'a>(
    daemon: &'a Daemon,
    request: &Request,
    session: &mut Session<'a>,
) -> Result<Box<RawValue>, ErrorObject> {
    match request.method.as_str() {
        method::INITIALIZE => {
            let params: InitializeParams = request.params_as()?;
            tracing::debug!(client = %params.client_info.name, version = %params.client_info.version, "initialize");
            check_protocol_version(params.protocol_version)?;
            if session.subscription.is_none() {
                session.subscription =
                    Some(Subscription { events: daemon.subscribe(), _counted: daemon.count_subscriber() });
            }
            session.client = Some(params.client_info);
            to_value(&InitializeResult {
                server_info: ClientInfo { name: "codexd".to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() },
                protocol_version: PROTOCOL_VERSION,
                codex_home: daemon.config().codex_home.display().to_string(),
            })
        }
        method::GET_AUTH_STATUS => {
            let params: GetAuthStatusParams = request.params_as()?;
            let include_token = params.include_token.unwrap_or(false);
            let snapshot = if params.refresh_token == Some(true) {
                forced_refresh(daemon).await?;
                daemon.snapshot()
            } else {
                // One snapshot serves both the staleness check and the answer, unless a refresh was waited for.
                let snapshot = daemon.snapshot();
                if include_token && daemon.refresh_if_stale(&snapshot.loaded).await {
                    daemon.snapshot()
                } else {
                    snapshot
                }
            };
            to_value(&auth_status(snapshot, include_token))
        }
        method::ACCOUNT_READ => {
            let params: AccountReadParams = request.params_as()?;
            if params.refresh_token == Some(true) {
                forced_refresh(daemon).await?;
            }
            to_value(&account_read(daemon))
        }
        method::LOGIN_START => {
            let params: LoginStartParams = request.params_as()?;
            let result = match params {
                LoginStartParams::ApiKey { api_key } => crate::login::login_api_key(daemon, &api_key).await?,
                LoginStartParams::Chatgpt => crate::login::start_browser(daemon).await?,
                LoginStartParams::ChatgptDeviceCode => crate::login::start_device(daemon).await?,
            };
            to_value(&result)
        }
        method::LOGIN_CANCEL => {
            let params: LoginCancelParams = request.params_as()?;
            to_value(&LoginCancelResult { status: daemon.logins.cancel(&params.login_id) })
        }
        method::LOGOUT => {
            daemon.logout().await.map_err(|e| {
                ErrorObject::new(ErrorCode::StoreError, format!("logout failed, the credentials are still stored: {e}"))
            })?;
            to_value(&EmptyResult {})
        }
        method::DAEMON_STATUS => to_value(&daemon_status(daemon)),
        method::STORE_MIGRATE => {
            let params: StoreMigrateParams = request.params_as()?;
            let Some(to @ (crate::settings::StoreMode::Keyring | crate::settings::StoreMode::File)) =
                crate::settings::StoreMode::parse(&params.to)
            else {
                return Err(ErrorObject::new(
                    ErrorCode::InvalidParams,
                    format!("cannot migrate to {:?}: the store must be \"keyring\" or \"file\"", params.to),
                ));
            };
            let result = daemon.migrate_store(to).await.map_err(|e| {
                let code = if e.is_refusal() { ErrorCode::PolicyRefused } else { ErrorCode::StoreError };
                ErrorObject::new(code, e.to_string())
            })?;
            to_value(&result)
        }
        method::DAEMON_SHUTDOWN => {
            tracing::info!(client = ?session.client.as_ref().map(|c| &c.name), "shutdown requested over the socket");
            daemon.shutdown_token().cancel();
            to_value(&EmptyResult {})
        }
        other => Err(ErrorObject::new(
            ErrorCode::MethodNotFound,
            format!("unknown method {other:?}; see docs/PROTOCOL.md for the methods codexd serves"),
        )),
    }
}

/// Refuses a client that needs a newer protocol than this daemon speaks (`-32600 protocolVersionUnsupported`):
/// typically a daemon started before an upgrade that is still running.
fn check_protocol_version(wanted: Option<u32>) -> Result<(), ErrorObject> {
    match wanted {
        Some(wanted) if wanted > PROTOCOL_VERSION => {
            tracing::warn!(wanted, "a client needs protocol {wanted}; this codexd speaks {PROTOCOL_VERSION}");
            Err(ErrorObject::with_reason(
                ErrorCode::InvalidRequest,
                "protocolVersionUnsupported",
                format!(
                    "this codexd ({}) speaks protocol {PROTOCOL_VERSION} but the client needs protocol {wanted}: \
                     upgrade codexd and restart it (codexctl restart)",
                    env!("CARGO_PKG_VERSION")
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// A refresh a client asked for. A permanent failure is not an error here: the status that follows carries
/// `authError` (as the Codex app-server answers); a transient one is `-32003 refreshUnavailable`.
async fn forced_refresh(daemon: &Daemon) -> Result<(), ErrorObject> {
    match daemon.refresh(RefreshReason::Forced).await {
        RefreshOutcome::Refreshed | RefreshOutcome::Adopted | RefreshOutcome::Failed(_) => Ok(()),
        RefreshOutcome::NotRefreshable => match daemon.snapshot().loaded {
            Loaded::LoggedOut => {
                Err(ErrorObject::new(ErrorCode::NotLoggedIn, "not logged in: sign in with `codexctl login` first"))
            }
            Loaded::LoggedIn(_) | Loaded::Unusable(_) => Ok(()),
        },
        RefreshOutcome::Unavailable(message) => Err(ErrorObject::with_reason(
            ErrorCode::RefreshFailed,
            "refreshUnavailable",
            format!("the refresh failed for now ({message}); the current token is still served and codexd retries"),
        )),
    }
}

fn auth_status(snapshot: Snapshot, include_token: bool) -> GetAuthStatusResult {
    let mut status = GetAuthStatusResult {
        auth_method: None,
        auth_token: None,
        requires_openai_auth: true,
        account_id: None,
        plan_type: None,
        expires_at: None,
        generation: snapshot.generation,
        auth_error: None,
    };
    match snapshot.loaded {
        Loaded::LoggedOut => {}
        Loaded::Unusable(problem) => status.auth_error = Some(problem),
        Loaded::LoggedIn(c) => {
            status.auth_method = Some(c.mode);
            status.auth_token = include_token.then(|| c.bearer.clone());
            status.account_id.clone_from(&c.account_id);
            status.plan_type.clone_from(&c.plan_type);
            status.expires_at = c.expires_at.map(rfc3339);
        }
    }
    status
}

fn account_read(daemon: &Daemon) -> AccountReadResult {
    let account = match daemon.snapshot().loaded {
        Loaded::LoggedIn(c) => Some(match c.mode {
            codexd_proto::methods::AuthMode::ApiKey => Account::ApiKey,
            codexd_proto::methods::AuthMode::Chatgpt => Account::Chatgpt {
                email: c.email.clone(),
                plan_type: c.plan_type.clone(),
                account_id: c.account_id.clone(),
            },
        }),
        Loaded::LoggedOut | Loaded::Unusable(_) => None,
    };
    AccountReadResult { account, requires_openai_auth: true }
}

fn daemon_status(daemon: &Daemon) -> DaemonStatusResult {
    let snapshot = daemon.snapshot();
    let (connections, subscribers) = daemon.counts();
    let config = daemon.config();
    let store = daemon.store();
    let health = store.health();
    let settings = daemon.settings();
    let (auth_method, last_refresh, auth_error) = match snapshot.loaded {
        Loaded::LoggedOut => (None, None, None),
        Loaded::LoggedIn(c) => (Some(c.mode), c.last_refresh.map(rfc3339), None),
        Loaded::Unusable(problem) => (None, None, Some(problem)),
    };
    DaemonStatusResult {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_seconds: daemon.uptime().as_secs(),
        store: store.mode().as_str().to_owned(),
        store_location: health.location.map(|l| l.as_str().to_owned()),
        store_problem: health.problem,
        config_problem: daemon.config_problem(),
        login_policy: settings.policy.is_restricted().then(|| LoginPolicyStatus {
            allowed_methods: settings.policy.allowed_methods(),
            allowed_workspaces: settings.policy.effective_workspaces(),
        }),
        codex_home: config.codex_home.display().to_string(),
        socket: config.socket.display().to_string(),
        connections,
        subscribers,
        generation: snapshot.generation,
        auth_method,
        last_refresh,
        next_refresh: (*crate::daemon::lock(&daemon.next_refresh)).map(rfc3339),
        auth_error,
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Encodes a result straight to JSON text: no intermediate `Value` on the hot path.
fn to_value<T: Serialize>(value: &T) -> Result<Box<RawValue>, ErrorObject> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| ErrorObject::new(ErrorCode::InternalError, format!("could not encode the result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_needing_a_newer_protocol_is_refused_with_both_versions() {
        assert!(check_protocol_version(None).is_ok());
        assert!(check_protocol_version(Some(0)).is_ok());
        assert!(check_protocol_version(Some(PROTOCOL_VERSION)).is_ok());
        let error = check_protocol_version(Some(99)).unwrap_err();
        assert_eq!(error.code, -32600);
        assert_eq!(error.reason(), "protocolVersionUnsupported");
        assert!(error.message.contains("protocol 1 but the client needs protocol 99"), "{}", error.message);
        assert!(error.message.contains(env!("CARGO_PKG_VERSION")), "{}", error.message);
        assert!(error.message.contains("codexctl restart"), "{}", error.message);
    }
}
