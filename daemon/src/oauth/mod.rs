//! Calls to the issuer on the Codex CLI's wire (`reference/codex-auth.md` §3-§6): refresh (JSON), the
//! authorization-code exchange and the API-key token exchange (forms), the device-code endpoints, and revoke.
//!
//! - [`ca`]: the HTTP client, with the custom CA bundle.
//! - [`error`]: [`IssuerError`] and the Codex CLI's permanent-failure rules.
//! - here: [`Endpoints`] (where each call goes) and [`Issuer`] (the calls).
//!
//! Nothing here keeps state or touches the store; tokens travel as [`Secret`]s, so no `Debug` shows them.

pub mod ca;
pub mod error;

pub use error::IssuerError;

use codexd_proto::Secret;
use serde::Deserialize;
use std::time::Duration;

/// The Codex CLI's OAuth client id.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// The `originator` the Codex CLI sends.
pub const ORIGINATOR: &str = "codex_cli_rs";
/// Scopes of the browser login, as the Codex CLI asks for them.
pub const SCOPES: &str = "openid profile email offline_access api.connectors.read api.connectors.invoke";
/// The Codex CLI's bound on a revoke call.
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(10);

const TOKEN_ENDPOINT: &str = "the token endpoint";
const DEVICE_ENDPOINT: &str = "the device-code endpoint";
const REVOKE_ENDPOINT: &str = "the revoke endpoint";

/// Where each call goes: the configured issuer, the Codex CLI's override variables, and the issuer recorded in
/// the tokens (`oauth_provenance`).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Issuer base URL for logins, without a trailing slash.
    pub issuer: String,
    /// `CODEX_REFRESH_TOKEN_URL_OVERRIDE`.
    pub refresh_override: Option<String>,
    /// `CODEX_REVOKE_TOKEN_URL_OVERRIDE`.
    pub revoke_override: Option<String>,
}

impl Endpoints {
    /// Endpoints of `issuer` without overrides.
    pub fn new(issuer: &str) -> Self {
        Self { issuer: issuer.trim_end_matches('/').to_owned(), refresh_override: None, revoke_override: None }
    }

    /// The refresh target: the override, else `<provenance issuer>/oauth/token`, else the configured issuer's.
    pub fn refresh_url(&self, provenance_issuer: Option<&str>) -> String {
        if let Some(url) = &self.refresh_override {
            return url.clone();
        }
        format!("{}/oauth/token", provenance_issuer.unwrap_or(&self.issuer).trim_end_matches('/'))
    }

    /// The revoke target: its override, else the refresh override with the path `/oauth/revoke`, else
    /// `<provenance issuer>/oauth/revoke`, else the configured issuer's.
    pub fn revoke_url(&self, provenance_issuer: Option<&str>) -> String {
        if let Some(url) = &self.revoke_override {
            return url.clone();
        }
        if let Some(refresh) = &self.refresh_override
            && let Ok(mut url) = url::Url::parse(refresh)
        {
            url.set_path("/oauth/revoke");
            url.set_query(None);
            return url.to_string();
        }
        format!("{}/oauth/revoke", provenance_issuer.unwrap_or(&self.issuer).trim_end_matches('/'))
    }

    /// `<issuer>/oauth/token` for logins.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}

/// Why a refresh is made, sent as `refresh_reason` (the Codex CLI's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshReason {
    /// The access token is close to its `exp`.
    ProactiveExpiry,
    /// No readable `exp` and an old `last_refresh`.
    Scheduled,
    /// A client asked (`refreshToken: true`, `codexctl refresh`).
    Forced,
}

impl RefreshReason {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshReason::ProactiveExpiry => "proactive_expiry",
            RefreshReason::Scheduled => "scheduled",
            RefreshReason::Forced => "forced",
        }
    }
}

/// Tokens from the token endpoint; a refresh may leave any of them out (the old value is kept).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// A new id_token.
    #[serde(default)]
    pub id_token: Option<Secret>,
    /// A new access token.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The rotated refresh token.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
}

/// The three tokens a login must return.
#[derive(Debug, Clone)]
pub struct LoginTokens {
    /// The id_token.
    pub id_token: Secret,
    /// The access token.
    pub access_token: Secret,
    /// The refresh token.
    pub refresh_token: Secret,
}

/// A device code to show the user. Its id and code together let anyone poll for the authorization code, so
/// `Debug` shows neither.
#[derive(Clone)]
pub struct DeviceCode {
    /// Identifies the device authorization when polling.
    pub device_auth_id: String,
    /// The code the user types.
    pub user_code: String,
    /// How often to poll.
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode").field("interval", &self.interval).finish_non_exhaustive()
    }
}

/// One poll of a device code.
#[derive(Debug, Clone)]
pub enum DevicePoll {
    /// Not approved yet; poll again.
    Pending {
        /// The issuer asked to poll less often (`slow_down`).
        slow_down: bool,
        /// The interval the issuer asked for, if it named one.
        interval: Option<Duration>,
    },
    /// Approved: exchange this code with the server-made PKCE verifier.
    Approved {
        /// The authorization code.
        code: Secret,
        /// The PKCE verifier to send with it.
        code_verifier: Secret,
    },
}

/// The issuer client: one HTTP client with a timeout on every call.
#[derive(Debug, Clone)]
pub struct Issuer {
    http: reqwest::Client,
    http_timeout: Duration,
    endpoints: Endpoints,
    originator: String,
}

impl Issuer {
    /// An issuer client over `http` (see [`ca::http_client`]), whose requests time out after `http_timeout`,
    /// sending `originator` (the Codex CLI's is [`ORIGINATOR`]).
    pub fn new(http: reqwest::Client, http_timeout: Duration, endpoints: Endpoints, originator: String) -> Self {
        Self { http, http_timeout, endpoints, originator }
    }

    /// Where the calls go.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Redeems `refresh_token` at `url` with the Codex CLI's JSON body.
    pub async fn refresh(
        &self,
        url: &str,
        refresh_token: &Secret,
        reason: RefreshReason,
    ) -> Result<TokenResponse, IssuerError> {
        let body = serde_json::json!({
            "client_id": CLIENT_ID,
            "grant_type": "refresh_token",
            "refresh_reason": reason.as_str(),
            "refresh_token": refresh_token.expose(),
        });
        let request = self
            .http
            .post(url)
            .header("originator", &self.originator)
            .header(
                reqwest::header::USER_AGENT,
                format!(
                    "{}/{} ({}; {}) codexd",
                    self.originator,
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH
                ),
            )
            .json(&body);
        let bytes = send(request, TOKEN_ENDPOINT).await?;
        parse(&bytes, TOKEN_ENDPOINT)
    }

    /// Exchanges an authorization code (browser or device login) for the three tokens.
    pub async fn exchange_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        code_verifier: &Secret,
    ) -> Result<LoginTokens, IssuerError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier.expose()),
        ];
        let bytes = send(self.http.post(self.endpoints.token_url()).form(&form), TOKEN_ENDPOINT).await?;
        let tokens: TokenResponse = parse(&bytes, TOKEN_ENDPOINT)?;
        match (tokens.id_token, tokens.access_token, tokens.refresh_token) {
            (Some(id_token), Some(access_token), Some(refresh_token)) => {
                Ok(LoginTokens { id_token, access_token, refresh_token })
            }
            _ => Err(IssuerError::Malformed {
                endpoint: TOKEN_ENDPOINT,
                detail: "the code exchange did not return id_token, access_token and refresh_token".to_owned(),
            }),
        }
    }

    /// Exchanges an id_token for an API key, as the Codex CLI's browser login does.
    pub async fn exchange_api_key(&self, id_token: &Secret) -> Result<Secret, IssuerError> {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("client_id", CLIENT_ID),
            ("requested_token", "openai-api-key"),
            ("subject_token", id_token.expose()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
        ];
        let bytes = send(self.http.post(self.endpoints.token_url()).form(&form), TOKEN_ENDPOINT).await?;
        let tokens: TokenResponse = parse(&bytes, TOKEN_ENDPOINT)?;
        tokens.access_token.ok_or(IssuerError::Malformed {
            endpoint: TOKEN_ENDPOINT,
            detail: "the token exchange returned no access_token".to_owned(),
        })
    }

    /// Asks for a device code.
    pub async fn device_start(&self) -> Result<DeviceCode, IssuerError> {
        #[derive(Deserialize)]
        struct UserCodeReply {
            device_auth_id: String,
            #[serde(alias = "usercode")]
            user_code: String,
            #[serde(default)]
            interval: Option<serde_json::Value>,
        }
        let url = format!("{}/api/accounts/deviceauth/usercode", self.endpoints.issuer);
        let request = self.http.post(url).json(&serde_json::json!({ "client_id": CLIENT_ID }));
        let bytes = match send(request, DEVICE_ENDPOINT).await {
            Err(IssuerError::Status { status: 404, .. }) => {
                return Err(IssuerError::Malformed {
                    endpoint: DEVICE_ENDPOINT,
                    detail: "device code login is not enabled for this Codex server (HTTP 404); use the browser \
                             login, or ask the workspace admin to enable device code authorization"
                        .to_owned(),
                });
            }
            other => other?,
        };
        let code: UserCodeReply = parse(&bytes, DEVICE_ENDPOINT)?;
        let interval = code.interval.as_ref().and_then(seconds).unwrap_or(Duration::from_secs(5));
        Ok(DeviceCode { device_auth_id: code.device_auth_id, user_code: code.user_code, interval })
    }

    /// Polls a device code once: 403/404 mean pending (a `slow_down` body changes the interval).
    pub async fn device_poll(&self, device: &DeviceCode) -> Result<DevicePoll, IssuerError> {
        #[derive(Deserialize)]
        struct Approved {
            authorization_code: Secret,
            code_verifier: Secret,
        }
        let url = format!("{}/api/accounts/deviceauth/token", self.endpoints.issuer);
        let request = self.http.post(url).json(&serde_json::json!({
            "device_auth_id": device.device_auth_id,
            "user_code": device.user_code,
        }));
        let response = request.send().await.map_err(|e| IssuerError::unreachable(DEVICE_ENDPOINT, &e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| IssuerError::unreachable(DEVICE_ENDPOINT, &e))?;
        match status {
            200..=299 => {
                let approved: Approved = parse(&bytes, DEVICE_ENDPOINT)?;
                Ok(DevicePoll::Approved { code: approved.authorization_code, code_verifier: approved.code_verifier })
            }
            403 | 404 => {
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let slow_down = body.get("error").and_then(serde_json::Value::as_str) == Some("slow_down");
                Ok(DevicePoll::Pending { slow_down, interval: body.get("interval").and_then(seconds) })
            }
            _ => Err(IssuerError::Status { endpoint: DEVICE_ENDPOINT, status, code: error::error_code(&bytes) }),
        }
    }

    /// Revokes a refresh token (best effort; the caller ignores the outcome beyond logging it), waiting at most
    /// the Codex CLI's 10 s, or the client's timeout when that is shorter.
    pub async fn revoke_refresh_token(&self, url: &str, refresh_token: &Secret) -> Result<(), IssuerError> {
        let body = serde_json::json!({
            "token": refresh_token.expose(),
            "token_type_hint": "refresh_token",
            "client_id": CLIENT_ID,
        });
        let request = self.http.post(url).timeout(REVOKE_TIMEOUT.min(self.http_timeout)).json(&body);
        send(request, REVOKE_ENDPOINT).await.map(drop)
    }
}

/// Sends a request; a non-2xx status becomes [`IssuerError::Status`] with the body's error code.
async fn send(request: reqwest::RequestBuilder, endpoint: &'static str) -> Result<Vec<u8>, IssuerError> {
    let response = request.send().await.map_err(|e| IssuerError::unreachable(endpoint, &e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| IssuerError::unreachable(endpoint, &e))?;
    if status.is_success() {
        Ok(bytes.to_vec())
    } else {
        Err(IssuerError::Status { endpoint, status: status.as_u16(), code: error::error_code(&bytes) })
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], endpoint: &'static str) -> Result<T, IssuerError> {
    serde_json::from_slice(bytes).map_err(|e| IssuerError::Malformed {
        endpoint,
        // Only the category and position: the body holds tokens.
        detail: format!("not the expected JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
    })
}

/// Seconds as the device endpoints send them: a string (`"5"`) or a number.
fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let secs = match value {
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_goes_to_the_override_then_the_provenance_then_the_issuer() {
        let mut endpoints = Endpoints::new("https://issuer.example/");
        assert_eq!(endpoints.refresh_url(None), "https://issuer.example/oauth/token");
        assert_eq!(endpoints.refresh_url(Some("http://127.0.0.1:9")), "http://127.0.0.1:9/oauth/token");
        endpoints.refresh_override = Some("http://127.0.0.1:7/custom/token?x=1".to_owned());
        assert_eq!(endpoints.refresh_url(Some("http://127.0.0.1:9")), "http://127.0.0.1:7/custom/token?x=1");
    }

    #[test]
    fn revoke_follows_the_codex_cli_rules() {
        let mut endpoints = Endpoints::new("https://issuer.example");
        assert_eq!(endpoints.revoke_url(None), "https://issuer.example/oauth/revoke");
        assert_eq!(endpoints.revoke_url(Some("http://127.0.0.1:9/")), "http://127.0.0.1:9/oauth/revoke");
        endpoints.refresh_override = Some("http://127.0.0.1:7/custom/token?x=1".to_owned());
        assert_eq!(endpoints.revoke_url(None), "http://127.0.0.1:7/oauth/revoke");
        endpoints.revoke_override = Some("http://127.0.0.1:8/r".to_owned());
        assert_eq!(endpoints.revoke_url(None), "http://127.0.0.1:8/r");
    }

    #[test]
    fn device_intervals_are_strings_or_numbers() {
        assert_eq!(seconds(&serde_json::json!("5")), Some(Duration::from_secs(5)));
        assert_eq!(seconds(&serde_json::json!(2)), Some(Duration::from_secs(2)));
        assert_eq!(seconds(&serde_json::json!("-1")), None);
        assert_eq!(seconds(&serde_json::json!("soon")), None);
    }

    #[test]
    fn malformed_bodies_are_never_quoted() {
        let err = parse::<TokenResponse>(br#"{"access_token": "sk-secret-"#, TOKEN_ENDPOINT).unwrap_err();
        assert!(!err.to_string().contains("sk-secret"), "{err}");
    }
}
