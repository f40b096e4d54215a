//! The issuer's state: accounts, authorization codes, refresh-token families, device codes, and the answers.
//!
//! Everything here is synchronous and runs under one `std::sync::Mutex`; the HTTP layer never holds it across
//! an `.await`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::record::RecordedRequest;
use crate::script::{Fault, Script};
use crate::{Account, CLIENT_ID, IssuedTokens, jwt, random_token};

/// The grant type of the API-key token exchange.
pub(crate) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const SCOPE: &str = "openid profile email offline_access";

/// An HTTP answer, built while the state lock is held and written after it is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub location: Option<String>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply { status, content_type: "application/json", body: body.to_string(), location: None }
    }

    pub(crate) fn text(status: u16, body: &str) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body: body.to_owned(), location: None }
    }

    pub(crate) fn html(body: &str) -> Reply {
        Reply { status: 200, content_type: "text/html; charset=utf-8", body: body.to_owned(), location: None }
    }

    pub(crate) fn redirect(location: String) -> Reply {
        Reply { status: 302, content_type: "text/plain; charset=utf-8", body: String::new(), location: Some(location) }
    }

    /// `{"error":"<code>","error_description":"<description>"}`.
    pub(crate) fn oauth_error(status: u16, code: &str, description: &str) -> Reply {
        Reply::json(status, &json!({"error": code, "error_description": description}))
    }

    /// The body of `Fault::Status`.
    pub(crate) fn server_error(status: u16) -> Reply {
        Reply::json(status, &json!({"error": {"message": "internal error", "type": "server_error", "code": null}}))
    }

    /// The real refresh error body for `code`.
    pub(crate) fn refresh_error(status: u16, code: &str) -> Reply {
        Reply::json(status, &refresh_error_body(code))
    }
}

/// The real issuer's refresh error body: `{"error":{"message","type":"invalid_request_error","param":null,"code"}}`.
pub fn refresh_error_body(code: &str) -> Value {
    let message = match code {
        "refresh_token_reused" => {
            "Your refresh token has already been used to generate a new access token. Please try signing in again."
        }
        "refresh_token_expired" => "Your refresh token has expired. Please try signing in again.",
        "refresh_token_invalidated" => "Your refresh token has been invalidated. Please try signing in again.",
        _ => "Could not validate your refresh token. Please try signing in again.",
    };
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenStatus {
    Current,
    Used,
    Revoked,
}

#[derive(Debug)]
struct RefreshToken {
    family: u64,
    status: TokenStatus,
    account: Account,
}

#[derive(Debug)]
struct CodeGrant {
    challenge: String,
    redirect_uri: String,
    account: Account,
}

#[derive(Debug)]
struct Device {
    user_code: String,
    polls: u32,
    approved: Option<Account>,
    /// `(authorization_code, code_challenge, code_verifier)` once approved and polled.
    issued: Option<(String, String, String)>,
}

/// All mutable state of one fake issuer.
#[derive(Debug)]
pub(crate) struct State {
    pub issuer: String,
    pub account: Account,
    pub lifetime: Duration,
    pub device_interval_secs: u64,
    pub device_auto_approve_after: Option<u32>,
    pub script: Script,
    pub requests: Vec<RecordedRequest>,
    pub revoked: Vec<String>,
    pub log_to_stderr: bool,
    next_family: u64,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshToken>,
    id_tokens: HashSet<String>,
    devices: HashMap<String, Device>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// base64url-nopad(sha256(verifier)).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn mime(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether the content type is `application/json`.
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    mime(content_type) == "application/json"
}

/// Whether the content type is `application/x-www-form-urlencoded`.
pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    mime(content_type) == "application/x-www-form-urlencoded"
}

/// The body's parameters: JSON object members (strings as-is, others as JSON text) or form fields.
pub(crate) fn params(content_type: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    if is_json(content_type) {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else { return HashMap::new() };
        map.into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k, text)
            })
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

/// The opening of the three `POST /oauth/token` grants: the content type must pass `ok` (else 400
/// `invalid_request` with `wrong_type`), and `client_id` must be [`CLIENT_ID`] (else 401 `invalid_client`).
/// `Err` is the answer to send.
fn client_params(
    content_type: Option<&str>,
    body: &[u8],
    ok: fn(Option<&str>) -> bool,
    wrong_type: &str,
) -> Result<HashMap<String, String>, Reply> {
    if !ok(content_type) {
        return Err(Reply::oauth_error(400, "invalid_request", wrong_type));
    }
    let p = params(content_type, body);
    if p.get("client_id").map_or("", String::as_str) != CLIENT_ID {
        return Err(Reply::oauth_error(401, "invalid_client", "unknown client_id"));
    }
    Ok(p)
}

fn user_code() -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let mut pick = || char::from(LETTERS[rng.gen_range(0..LETTERS.len())]);
    let first: String = (0..4).map(|_| pick()).collect();
    let second: String = (0..4).map(|_| pick()).collect();
    format!("{first}-{second}")
}

fn jti() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else { return false };
    url.scheme() == "http"
        && matches!(url.host_str(), Some("127.0.0.1" | "localhost"))
        && url.port().is_some()
        && url.username().is_empty()
        && url.fragment().is_none()
}

impl State {
    pub(crate) fn new(issuer: String, options: crate::Options) -> State {
        State {
            issuer,
            account: options.account,
            lifetime: options.access_token_lifetime,
            device_interval_secs: options.device_interval_secs,
            device_auto_approve_after: options.device_auto_approve_after,
            script: Script::default(),
            requests: Vec::new(),
            revoked: Vec::new(),
            log_to_stderr: false,
            next_family: 1,
            codes: HashMap::new(),
            refresh: HashMap::new(),
            id_tokens: HashSet::new(),
            devices: HashMap::new(),
        }
    }

    /// Issues an id_token, access_token and refresh token of `family` for `account`.
    fn issue_in_family(&mut self, family: u64, account: &Account) -> IssuedTokens {
        let iat = now_secs();
        let exp = iat + self.lifetime.as_secs();
        let id_token = jwt::encode(&jwt::id_token_claims(account, &self.issuer, iat, exp));
        let access_token = jwt::encode(&jwt::access_token_claims(account, &self.issuer, iat, exp, &jti()));
        let refresh_token = format!("rt_fake_{}", random_token(32));
        self.id_tokens.insert(id_token.clone());
        self.refresh.insert(
            refresh_token.clone(),
            RefreshToken { family, status: TokenStatus::Current, account: account.clone() },
        );
        IssuedTokens { id_token, access_token, refresh_token, account: account.clone() }
    }

    /// A fresh login: a new refresh-token family.
    pub(crate) fn mint(&mut self, account: &Account) -> IssuedTokens {
        let family = self.next_family;
        self.next_family += 1;
        self.issue_in_family(family, account)
    }

    fn token_response(&self, tokens: &IssuedTokens) -> Reply {
        Reply::json(
            200,
            &json!({
                "id_token": tokens.id_token,
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "token_type": "Bearer",
                "expires_in": self.lifetime.as_secs(),
                "scope": SCOPE,
            }),
        )
    }

    pub(crate) fn is_current_refresh_token(&self, token: &str) -> bool {
        self.refresh.get(token).is_some_and(|t| t.status == TokenStatus::Current)
    }

    /// `GET /oauth/authorize?...`: sign the current account in and redirect back with a code.
    pub(crate) fn authorize(&mut self, query: Option<&str>, fault: Option<&Fault>) -> Reply {
        let q: HashMap<String, String> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if get("response_type") != Some("code") {
            return Reply::text(400, "response_type must be code");
        }
        if get("client_id") != Some(CLIENT_ID) {
            return Reply::text(400, "unknown client_id");
        }
        let Some(redirect_uri) = get("redirect_uri").filter(|u| is_loopback_redirect(u)) else {
            return Reply::text(400, "redirect_uri must be http://127.0.0.1:<port>/... or http://localhost:<port>/...");
        };
        let Some(challenge) = get("code_challenge") else { return Reply::text(400, "code_challenge is missing") };
        if get("code_challenge_method") != Some("S256") {
            return Reply::text(400, "code_challenge_method must be S256");
        }
        let Some(state) = get("state") else { return Reply::text(400, "state is missing") };
        let Ok(mut location) = url::Url::parse(redirect_uri) else { return Reply::text(400, "bad redirect_uri") };
        match fault {
            Some(Fault::AuthorizeError(code)) => {
                location
                    .query_pairs_mut()
                    .append_pair("error", code)
                    .append_pair("error_description", &format!("fake issuer scripted error: {code}"))
                    .append_pair("state", state);
            }
            _ => {
                let code = format!("ac_fake_{}", random_token(32));
                self.codes.insert(
                    code.clone(),
                    CodeGrant {
                        challenge: challenge.to_owned(),
                        redirect_uri: redirect_uri.to_owned(),
                        account: self.account.clone(),
                    },
                );
                let state =
                    if matches!(fault, Some(Fault::WrongState)) { format!("wrong-{state}") } else { state.to_owned() };
                location.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
            }
        }
        Reply::redirect(location.into())
    }

    /// `POST /oauth/token` with `grant_type=authorization_code` (form).
    pub(crate) fn code_exchange(&mut self, content_type: Option<&str>, body: &[u8]) -> Reply {
        let p = match client_params(content_type, body, is_form, "expected application/x-www-form-urlencoded") {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let get = |k: &str| p.get(k).map_or("", String::as_str);
        // A code is single use: any attempt consumes it.
        let Some(grant) = self.codes.remove(get("code")) else {
            return Reply::oauth_error(400, "invalid_grant", "authorization code is invalid or was already used");
        };
        if get("redirect_uri") != grant.redirect_uri {
            return Reply::oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request");
        }
        if pkce_challenge(get("code_verifier")) != grant.challenge {
            return Reply::oauth_error(400, "invalid_grant", "code_verifier does not match the code_challenge");
        }
        let tokens = self.mint(&grant.account);
        self.token_response(&tokens)
    }

    /// `POST /oauth/token` with the token-exchange grant: an API key for an id_token this issuer issued.
    pub(crate) fn token_exchange(&mut self, content_type: Option<&str>, body: &[u8]) -> Reply {
        let p = match client_params(content_type, body, is_form, "expected application/x-www-form-urlencoded") {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let get = |k: &str| p.get(k).map_or("", String::as_str);
        if get("requested_token") != "openai-api-key" {
            return Reply::oauth_error(400, "invalid_request", "requested_token must be openai-api-key");
        }
        if get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" {
            return Reply::oauth_error(400, "invalid_request", "subject_token_type must be an id_token");
        }
        if !self.id_tokens.contains(get("subject_token")) {
            return Reply::oauth_error(400, "invalid_grant", "subject_token was not issued by this issuer");
        }
        let key: String =
            rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(40).map(char::from).collect();
        Reply::json(200, &json!({"access_token": format!("sk-fake-{key}")}))
    }

    /// `POST /oauth/token` with JSON `grant_type=refresh_token`: rotation.
    pub(crate) fn refresh(&mut self, content_type: Option<&str>, body: &[u8]) -> Reply {
        let p = match client_params(content_type, body, is_json, "refresh requests must be application/json") {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let get = |k: &str| p.get(k).map_or("", String::as_str);
        let token = get("refresh_token").to_owned();
        let (family, account) = match self.refresh.get_mut(&token) {
            None => return Reply::refresh_error(401, "refresh_token_invalidated"),
            Some(t) => match t.status {
                TokenStatus::Used => return Reply::refresh_error(401, "refresh_token_reused"),
                TokenStatus::Revoked => return Reply::refresh_error(401, "refresh_token_invalidated"),
                TokenStatus::Current => {
                    t.status = TokenStatus::Used;
                    (t.family, t.account.clone())
                }
            },
        };
        let tokens = self.issue_in_family(family, &account);
        self.token_response(&tokens)
    }

    /// `POST /api/accounts/deviceauth/usercode`.
    pub(crate) fn device_user_code(&mut self, content_type: Option<&str>, body: &[u8]) -> Reply {
        let p = params(content_type, body);
        if p.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
            return Reply::oauth_error(400, "invalid_request", "unknown client_id");
        }
        let mut code = user_code();
        while self.devices.values().any(|d| d.user_code == code) {
            code = user_code();
        }
        let id = format!("deviceauth_{}", random_token(16));
        self.devices.insert(id.clone(), Device { user_code: code.clone(), polls: 0, approved: None, issued: None });
        Reply::json(
            200,
            &json!({"device_auth_id": id, "user_code": code, "interval": self.device_interval_secs.to_string()}),
        )
    }

    /// `POST /api/accounts/deviceauth/token`.
    pub(crate) fn device_token(&mut self, content_type: Option<&str>, body: &[u8], fault: Option<&Fault>) -> Reply {
        let p = params(content_type, body);
        let id = p.get("device_auth_id").map_or("", String::as_str);
        let code = p.get("user_code").map_or("", String::as_str);
        let current = self.account.clone();
        let auto = self.device_auto_approve_after;
        let callback = format!("{}/deviceauth/callback", self.issuer);
        let Some(device) = self.devices.get_mut(id).filter(|d| d.user_code == code) else {
            return Reply::json(400, &json!({"error": "invalid_request"}));
        };
        match fault {
            Some(Fault::SlowDown { interval_secs }) => {
                let body = match interval_secs {
                    Some(n) => json!({"error": "slow_down", "interval": n.to_string()}),
                    None => json!({"error": "slow_down"}),
                };
                return Reply::json(403, &body);
            }
            Some(Fault::DeviceExpired) => return Reply::json(410, &json!({"error": "expired_token"})),
            _ => {}
        }
        if device.approved.is_none() && auto.is_some_and(|n| device.polls >= n) {
            device.approved = Some(current);
        }
        device.polls += 1;
        let Some(account) = device.approved.clone() else {
            return Reply::json(403, &json!({"error": "authorization_pending"}));
        };
        let (code, challenge, verifier) = device
            .issued
            .get_or_insert_with(|| {
                let verifier = random_token(64);
                (format!("ac_fake_{}", random_token(32)), pkce_challenge(&verifier), verifier)
            })
            .clone();
        self.codes.entry(code.clone()).or_insert(CodeGrant {
            challenge: challenge.clone(),
            redirect_uri: callback,
            account,
        });
        Reply::json(200, &json!({"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}))
    }

    /// Approves the pending device login with this user code as the current account.
    pub(crate) fn approve_device(&mut self, user_code: &str) -> bool {
        let account = self.account.clone();
        match self.devices.values_mut().find(|d| d.user_code.eq_ignore_ascii_case(user_code.trim())) {
            Some(device) => {
                device.approved.get_or_insert(account);
                true
            }
            None => false,
        }
    }

    /// `POST /oauth/revoke`: records the token; a refresh token's whole family dies.
    pub(crate) fn revoke(&mut self, content_type: Option<&str>, body: &[u8]) -> Reply {
        let p = params(content_type, body);
        let Some(token) = p.get("token").filter(|t| !t.is_empty()).cloned() else {
            return Reply::oauth_error(400, "invalid_request", "token is missing");
        };
        if let Some(family) = self.refresh.get(&token).map(|t| t.family) {
            for t in self.refresh.values_mut().filter(|t| t.family == family) {
                t.status = TokenStatus::Revoked;
            }
        }
        self.revoked.push(token);
        Reply::json(200, &json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Options;

    fn state() -> State {
        State::new("http://127.0.0.1:9".into(), Options::default())
    }

    fn refresh_body(token: &str) -> Vec<u8> {
        json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_reason": "forced", "refresh_token": token})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn refresh_rotates_and_a_second_use_is_reused() {
        let mut s = state();
        let first = s.mint(&Account::default());
        let reply = s.refresh(Some("application/json"), &refresh_body(&first.refresh_token));
        assert_eq!(reply.status, 200);
        let next: Value = serde_json::from_str(&reply.body).unwrap();
        let next_rt = next["refresh_token"].as_str().unwrap();
        assert!(s.is_current_refresh_token(next_rt));
        assert!(!s.is_current_refresh_token(&first.refresh_token));
        let again = s.refresh(Some("application/json"), &refresh_body(&first.refresh_token));
        assert_eq!(
            (again.status, serde_json::from_str(&again.body).unwrap()),
            (401, refresh_error_body("refresh_token_reused"))
        );
        let unknown = s.refresh(Some("application/json"), &refresh_body("rt_nope"));
        assert_eq!(unknown.status, 401);
        assert!(unknown.body.contains("refresh_token_invalidated"));
        let form = s.refresh(Some("application/x-www-form-urlencoded"), b"grant_type=refresh_token");
        assert_eq!(form.status, 400);
    }

    #[test]
    fn revoking_kills_the_family() {
        let mut s = state();
        let t = s.mint(&Account::default());
        let reply = s.revoke(Some("application/json"), json!({"token": t.refresh_token}).to_string().as_bytes());
        assert_eq!(reply.status, 200);
        assert!(!s.is_current_refresh_token(&t.refresh_token));
        assert!(s.refresh(Some("application/json"), &refresh_body(&t.refresh_token)).body.contains("invalidated"));
        assert_eq!(s.revoked, vec![t.refresh_token]);
    }

    #[test]
    fn pkce_challenge_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn loopback_redirects_only() {
        assert!(is_loopback_redirect("http://127.0.0.1:1455/auth/callback"));
        assert!(is_loopback_redirect("http://localhost:1457/auth/callback"));
        assert!(!is_loopback_redirect("http://127.0.0.1/auth/callback"));
        assert!(!is_loopback_redirect("https://127.0.0.1:1455/auth/callback"));
        assert!(!is_loopback_redirect("http://example.com:1455/auth/callback"));
    }
}
