//! Method names, their params and results, and the notifications, as typed structs.
//!
//! Field names are camelCase on the wire, as in the Codex app-server. Unknown fields in params are ignored,
//! so clients written for the app-server (which send more) work unchanged.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// Version of this protocol, announced in `initialize`. Grows when a change is not backward compatible.
pub const PROTOCOL_VERSION: u32 = 1;

/// Method names a client may call.
pub mod method {
    /// Handshake; subscribes the connection to notifications.
    pub const INITIALIZE: &str = "initialize";
    /// Who is logged in, and optionally the bearer token.
    pub const GET_AUTH_STATUS: &str = "getAuthStatus";
    /// The account behind the credentials.
    pub const ACCOUNT_READ: &str = "account/read";
    /// Starts a login.
    pub const LOGIN_START: &str = "account/login/start";
    /// Cancels a login in progress.
    pub const LOGIN_CANCEL: &str = "account/login/cancel";
    /// Logs out everywhere.
    pub const LOGOUT: &str = "account/logout";
    /// The daemon's own state.
    pub const DAEMON_STATUS: &str = "daemon/status";
    /// Asks the daemon to shut down.
    pub const DAEMON_SHUTDOWN: &str = "daemon/shutdown";
    /// Moves the stored login to another credential store (codexd extension).
    pub const STORE_MIGRATE: &str = "store/migrate";
}

/// Notification names the daemon sends.
pub mod notification {
    /// The credentials changed.
    pub const ACCOUNT_UPDATED: &str = "account/updated";
    /// A login finished, well or not.
    pub const LOGIN_COMPLETED: &str = "account/login/completed";
    /// The last message before the daemon closes the connection.
    pub const SHUTTING_DOWN: &str = "daemon/shuttingDown";
}

/// How the stored credentials authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// An OpenAI API key.
    #[serde(rename = "apikey")]
    ApiKey,
    /// A ChatGPT login (OAuth tokens).
    #[serde(rename = "chatgpt")]
    Chatgpt,
}

/// The name and version of a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// Program name, e.g. `codexctl` or `codex_vscode`.
    pub name: String,
    /// Program version.
    pub version: String,
}

/// Params of `initialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// Who is calling.
    pub client_info: ClientInfo,
    /// The protocol version the client speaks, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
}

/// Result of `initialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// Always `{name:"codexd", version}`.
    pub server_info: ClientInfo,
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub protocol_version: u32,
    /// The credential home the daemon serves.
    pub codex_home: String,
}

/// Params of `getAuthStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthStatusParams {
    /// Put the bearer token in `authToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_token: Option<bool>,
    /// Refresh the ChatGPT token before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<bool>,
}

/// Why credentials that exist cannot be used, as reported in status answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthProblem {
    /// A stable camelCase string, e.g. `storeUnreadable`.
    pub reason: String,
    /// What happened and what to do, for people. Never contains a secret.
    pub message: String,
    /// The issuer's error code when `reason` is `refreshFailed`, e.g. `refresh_token_reused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_code: Option<String>,
}

impl AuthProblem {
    /// A problem without an issuer code.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { reason: reason.into(), message: message.into(), issuer_code: None }
    }
}

/// Result of `getAuthStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthStatusResult {
    /// `null` when not logged in.
    pub auth_method: Option<AuthMode>,
    /// The ChatGPT access token or the API key, only when asked with `includeToken`.
    pub auth_token: Option<Secret>,
    /// Always `true`: the OpenAI provider needs these credentials.
    pub requires_openai_auth: bool,
    /// ChatGPT workspace id (`ChatGPT-Account-ID` header), `null` for API keys.
    pub account_id: Option<String>,
    /// ChatGPT plan, e.g. `plus`.
    pub plan_type: Option<String>,
    /// Expiry of the access token, RFC 3339 UTC, when it can be read.
    pub expires_at: Option<String>,
    /// Credential generation; see the crate docs.
    pub generation: u64,
    /// Why stored credentials are not usable, when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_error: Option<AuthProblem>,
}

/// Params of `account/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReadParams {
    /// Refresh the ChatGPT token before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<bool>,
}

/// The account behind the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Account {
    /// Logged in with an API key.
    #[serde(rename = "apiKey")]
    ApiKey,
    /// Logged in with ChatGPT.
    #[serde(rename = "chatgpt", rename_all = "camelCase")]
    Chatgpt {
        /// From the id token.
        email: Option<String>,
        /// From the id token.
        plan_type: Option<String>,
        /// The ChatGPT workspace id.
        account_id: Option<String>,
    },
}

/// Result of `account/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReadResult {
    /// `null` when not logged in.
    pub account: Option<Account>,
    /// Always `true`.
    pub requires_openai_auth: bool,
}

/// Params of `account/login/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LoginStartParams {
    /// Store an API key.
    #[serde(rename = "apiKey", rename_all = "camelCase")]
    ApiKey {
        /// The key; it is trimmed before it is stored.
        api_key: Secret,
    },
    /// Browser login (PKCE, loopback callback).
    #[serde(rename = "chatgpt")]
    Chatgpt,
    /// Device-code login for machines without a browser.
    #[serde(rename = "chatgptDeviceCode")]
    ChatgptDeviceCode,
}

/// Result of `account/login/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LoginStartResult {
    /// The key was stored.
    #[serde(rename = "apiKey")]
    ApiKey,
    /// Open `authUrl`; completion arrives as `account/login/completed`.
    #[serde(rename = "chatgpt", rename_all = "camelCase")]
    Chatgpt {
        /// Identifies this login in `cancel` and `completed`.
        login_id: String,
        /// Where the user signs in.
        auth_url: String,
    },
    /// Show `verificationUrl` and `userCode`; completion arrives as `account/login/completed`.
    #[serde(rename = "chatgptDeviceCode", rename_all = "camelCase")]
    ChatgptDeviceCode {
        /// Identifies this login in `cancel` and `completed`.
        login_id: String,
        /// Where the user types the code.
        verification_url: String,
        /// The code to type.
        user_code: String,
    },
}

/// Params of `account/login/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginCancelParams {
    /// From `account/login/start`.
    pub login_id: String,
}

/// What `account/login/cancel` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CancelStatus {
    /// The login was stopped.
    Canceled,
    /// No login with that id is in progress.
    NotFound,
}

/// Result of `account/login/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginCancelResult {
    /// What happened.
    pub status: CancelStatus,
}

/// Result of `account/logout` and `daemon/shutdown`: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyResult {}

/// Result of `daemon/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatusResult {
    /// codexd's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_seconds: u64,
    /// The credential store configured (`cli_auth_credentials_store`): `file`, `keyring`, `auto` or `ephemeral`.
    pub store: String,
    /// Where the current credentials live: `file` (auth.json), `keyring` or `memory`; `null` when nothing is
    /// stored (or the store cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_location: Option<String>,
    /// What is wrong with the store, when something is: the keyring is unreachable, locked or slow
    /// (`keyringUnavailable`, `keyringLocked`, `keyringTimeout`, `keyringError`), or `auto` fell back to the
    /// plaintext file (`plaintextFallback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_problem: Option<AuthProblem>,
    /// A config file that cannot be used (`configInvalid`): codexd keeps the last good configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_problem: Option<AuthProblem>,
    /// The login restrictions in force, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_policy: Option<LoginPolicyStatus>,
    /// The credential home.
    pub codex_home: String,
    /// The socket the daemon listens on.
    pub socket: String,
    /// Open connections, this one included.
    pub connections: u64,
    /// Connections that called `initialize`.
    pub subscribers: u64,
    /// Credential generation.
    pub generation: u64,
    /// How the stored credentials authenticate, `null` when logged out.
    pub auth_method: Option<AuthMode>,
    /// When the tokens were last refreshed (`last_refresh` of the store), RFC 3339.
    pub last_refresh: Option<String>,
    /// When the daemon will refresh next, RFC 3339; `null` when no refresh is scheduled.
    pub next_refresh: Option<String>,
    /// Why the stored credentials cannot be used, when they cannot.
    pub auth_error: Option<AuthProblem>,
}

/// The login restrictions in force (managed policy and `config.toml`), in `daemon/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginPolicyStatus {
    /// The only login methods allowed; `null` when any is.
    pub allowed_methods: Option<Vec<AuthMode>>,
    /// The only ChatGPT workspaces allowed; `null` when any is.
    pub allowed_workspaces: Option<Vec<String>>,
}

/// Params of `store/migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreMigrateParams {
    /// The store to move the login to: `keyring` or `file`.
    pub to: String,
}

/// Result of `store/migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreMigrateResult {
    /// The store the login was in (`file`, `keyring`, `memory`), `null` when nothing was stored.
    pub from: Option<String>,
    /// The store now configured.
    pub to: String,
    /// Whether credentials were moved (false when there were none, or they were there already).
    pub moved: bool,
    /// Something the user should know although the move succeeded (the old copy could not be removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Why the credentials changed, in `account/updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UpdateReason {
    /// A login through codexd.
    Login,
    /// A logout through codexd.
    Logout,
    /// codexd refreshed the tokens.
    Refresh,
    /// Another program changed the store.
    External,
    /// Managed policy removed the credentials.
    Policy,
    /// A refresh failed for good; sign in again.
    RefreshFailed,
}

/// Params of `account/updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountUpdated {
    /// `null` when logged out or unusable.
    pub auth_mode: Option<AuthMode>,
    /// ChatGPT plan, when known.
    pub plan_type: Option<String>,
    /// ChatGPT workspace id, when known.
    pub account_id: Option<String>,
    /// The new generation.
    pub generation: u64,
    /// What caused the change.
    pub reason: UpdateReason,
    /// Why the stored credentials are unusable, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_error: Option<AuthProblem>,
}

/// Params of `account/login/completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginCompleted {
    /// The login's id (`null` for API-key logins).
    pub login_id: Option<String>,
    /// Whether the credentials were stored.
    pub success: bool,
    /// Why not, when not.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, to_value};

    #[test]
    fn auth_status_serialises_in_the_app_server_shape() {
        let status = GetAuthStatusResult {
            auth_method: Some(AuthMode::Chatgpt),
            auth_token: Some(Secret::new("tok")),
            requires_openai_auth: true,
            account_id: Some("acct".into()),
            plan_type: Some("plus".into()),
            expires_at: Some("2026-11-29T05:00:00Z".into()),
            generation: 4,
            auth_error: None,
        };
        let v = to_value(&status).unwrap();
        assert_eq!(
            v,
            json!({"authMethod":"chatgpt","authToken":"tok","requiresOpenaiAuth":true,"accountId":"acct",
                   "planType":"plus","expiresAt":"2026-11-29T05:00:00Z","generation":4})
        );
        assert_eq!(serde_json::from_value::<GetAuthStatusResult>(v).unwrap(), status);
    }

    #[test]
    fn tagged_enums_use_the_contract_names() {
        assert_eq!(to_value(Account::ApiKey).unwrap(), json!({"type":"apiKey"}));
        let login: LoginStartParams = serde_json::from_value(json!({"type":"apiKey","apiKey":"sk-1"})).unwrap();
        assert_eq!(login, LoginStartParams::ApiKey { api_key: Secret::new("sk-1") });
        assert!(!format!("{login:?}").contains("sk-1"), "Debug must not show the key");
        let device = LoginStartResult::ChatgptDeviceCode {
            login_id: "l".into(),
            verification_url: "u".into(),
            user_code: "c".into(),
        };
        assert_eq!(
            to_value(&device).unwrap(),
            json!({"type":"chatgptDeviceCode","loginId":"l","verificationUrl":"u","userCode":"c"})
        );
        assert_eq!(to_value(EmptyResult {}).unwrap(), json!({}));
        assert_eq!(to_value(UpdateReason::RefreshFailed).unwrap(), json!("refreshFailed"));
        assert_eq!(to_value(CancelStatus::NotFound).unwrap(), json!("notFound"));
    }

    #[test]
    fn params_accept_app_server_extras_and_absent_fields() {
        let init: InitializeParams = serde_json::from_value(
            json!({"clientInfo":{"name":"codex_vscode","title":"VS Code","version":"1"},"capabilities":{}}),
        )
        .unwrap();
        assert_eq!(init.client_info.name, "codex_vscode");
        let status: GetAuthStatusParams = serde_json::from_value(json!({})).unwrap();
        assert_eq!(status, GetAuthStatusParams::default());
    }

    #[test]
    fn account_updated_round_trips() {
        let n = AccountUpdated {
            auth_mode: None,
            plan_type: None,
            account_id: None,
            generation: 2,
            reason: UpdateReason::Logout,
            auth_error: None,
        };
        let v = to_value(&n).unwrap();
        assert_eq!(v, json!({"authMode":null,"planType":null,"accountId":null,"generation":2,"reason":"logout"}));
        assert_eq!(serde_json::from_value::<AccountUpdated>(v).unwrap(), n);
    }
}
