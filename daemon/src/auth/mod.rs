//! The credential store: the `auth.json` format, its safe reading and writing, and the daemon's view of it.
//!
//! - [`dotjson`]: [`AuthDotJson`], the document exactly as the Codex CLI reads and writes it.
//! - [`claims`]: JWT payloads (email, plan, account, expiry); signatures are never checked, as in Codex.
//! - [`file`](mod@file): [`AuthFile`], the Codex CLI's locking (`auth.lock`, then `auth.json.lock` only for the write) and
//!   atomic replace (temp file `O_EXCL` 0600, fsync, rename).
//! - here: [`Credentials`], what the daemon serves, built from a document.
//!
//! Everything is blocking std code; the daemon calls it through `spawn_blocking`. No type here prints a token,
//! key or email in `Debug`, and no error quotes the file.

pub mod claims;
pub mod dotjson;
mod error;
pub mod file;
#[cfg(test)]
mod golden;

pub use dotjson::{AUTH_MODE_APIKEY, AUTH_MODE_CHATGPT, AuthDotJson, OauthProvenance, TokenData};
pub use error::AuthFileError;
pub use file::{AUTH_FILE_NAME, AUTH_JSON_LOCK_NAME, AUTH_LOCK_NAME, AuthFile, StoreLock};

use chrono::{DateTime, TimeDelta, Utc};
use codexd_proto::Secret;
use codexd_proto::methods::AuthMode;
use sha2::{Digest, Sha256};

/// A ChatGPT access token is refreshed when its `exp` is at most this far away (Codex: 5 minutes).
pub const REFRESH_BEFORE_EXPIRY: TimeDelta = TimeDelta::minutes(5);
/// A token without a readable `exp` is refreshed when `last_refresh` is older than this (Codex: 8 days).
pub const REFRESH_INTERVAL: TimeDelta = TimeDelta::days(8);

/// The usable credentials of a document: what the daemon serves and refreshes.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// API key or ChatGPT.
    pub mode: AuthMode,
    /// The bearer token: the ChatGPT access token, or the API key.
    pub bearer: Secret,
    /// The ChatGPT refresh token; `None` for API keys.
    pub refresh_token: Option<Secret>,
    /// The ChatGPT workspace id: `tokens.account_id`, else the id_token's `chatgpt_account_id`.
    pub account_id: Option<String>,
    /// The ChatGPT user id from the id_token.
    pub user_id: Option<String>,
    /// The ChatGPT plan from the id_token, mapped as Codex does (`hc` → `enterprise`, `education` → `edu`).
    pub plan_type: Option<String>,
    /// The account email from the id_token.
    pub email: Option<String>,
    /// The access token's `exp`; `None` for API keys and when the access token is not a readable JWT.
    pub expires_at: Option<DateTime<Utc>>,
    /// `last_refresh` of the document.
    pub last_refresh: Option<DateTime<Utc>>,
}

impl Credentials {
    /// The credentials of `doc`, with `mode` worked out as [`AuthDotJson::resolved_mode`] does.
    pub fn from_dotjson(doc: &AuthDotJson) -> Result<Self, AuthFileError> {
        let mode = match (doc.resolved_mode(), doc.auth_mode.as_deref()) {
            (Some(mode), _) => mode,
            (None, Some(other)) => return Err(AuthFileError::unsupported_mode(other)),
            (None, None) => return Err(AuthFileError::NoCredentials),
        };
        match mode {
            AuthMode::ApiKey => {
                let key = doc
                    .openai_api_key
                    .clone()
                    .ok_or_else(|| AuthFileError::corrupt("auth_mode is \"apikey\" but OPENAI_API_KEY is null"))?;
                Ok(Self {
                    mode,
                    bearer: key,
                    refresh_token: None,
                    account_id: None,
                    user_id: None,
                    plan_type: None,
                    email: None,
                    expires_at: None,
                    last_refresh: doc.last_refresh,
                })
            }
            AuthMode::Chatgpt => {
                let tokens = doc
                    .tokens
                    .as_ref()
                    .ok_or_else(|| AuthFileError::corrupt("auth_mode is \"chatgpt\" but tokens are missing"))?;
                let claims = claims::parse_id_token(tokens.id_token.expose())
                    .map_err(|e| AuthFileError::corrupt(format!("id_token {e}")))?;
                Ok(Self {
                    mode,
                    bearer: tokens.access_token.clone(),
                    refresh_token: Some(tokens.refresh_token.clone()),
                    account_id: tokens.account_id.clone().or(claims.account_id),
                    user_id: claims.user_id,
                    plan_type: claims.plan_type,
                    email: claims.email,
                    expires_at: claims::parse_expiration(tokens.access_token.expose()).ok().flatten(),
                    last_refresh: doc.last_refresh,
                })
            }
        }
    }

    /// Whether the Codex CLI would refresh these credentials at `now`: the access token expires within
    /// [`REFRESH_BEFORE_EXPIRY`], or, without a readable `exp`, `last_refresh` is older than [`REFRESH_INTERVAL`]
    /// (or unknown). Always `false` for API keys.
    pub fn refresh_due(&self, now: DateTime<Utc>) -> bool {
        if self.mode == AuthMode::ApiKey {
            return false;
        }
        match (self.expires_at, self.last_refresh) {
            (Some(exp), _) => exp - now <= REFRESH_BEFORE_EXPIRY,
            (None, Some(last)) => now - last > REFRESH_INTERVAL,
            (None, None) => true,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mode", &self.mode)
            .field("bearer", &format_args!("fp:{}", fingerprint(self.bearer.expose())))
            .field("refresh_token", &self.refresh_token)
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("plan_type", &self.plan_type)
            .field("email", &self.email.as_ref().map(|_| "***"))
            .field("expires_at", &self.expires_at)
            .field("last_refresh", &self.last_refresh)
            .finish()
    }
}

/// A short, stable name of a secret for logs: the first 8 hex digits of its SHA-256.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex = format!("{digest:x}");
    hex[..8].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::auth::golden::*;

    fn credentials(bytes: &[u8]) -> Credentials {
        Credentials::from_dotjson(&AuthDotJson::parse(bytes).unwrap()).unwrap()
    }

    fn year_2100() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_browser_login_yields_every_claim() {
        let c = credentials(CHATGPT);
        assert_eq!(c.mode, AuthMode::Chatgpt);
        assert!(c.bearer.expose().starts_with("eyJ"));
        assert!(c.refresh_token.is_some());
        assert_eq!(c.account_id.as_deref(), Some("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"));
        assert_eq!(c.user_id.as_deref(), Some("user-FAKEfake0123456789abcd"));
        assert_eq!(c.plan_type.as_deref(), Some("plus"));
        assert_eq!(c.email.as_deref(), Some("user@example.com"));
        assert_eq!(c.expires_at, Some(year_2100()));
        assert_eq!(c.last_refresh.unwrap().to_rfc3339(), "2026-11-29T03:10:06.242282525+00:00");
    }

    #[test]
    fn a_device_login_reads_the_profile_email_and_maps_hc_to_enterprise() {
        let c = credentials(DEVICE);
        assert_eq!(c.mode, AuthMode::Chatgpt);
        assert_eq!(c.email.as_deref(), Some("device-user@example.com"));
        assert_eq!(c.plan_type.as_deref(), Some("enterprise"));
    }

    #[test]
    fn a_legacy_file_takes_the_account_id_from_the_id_token_and_maps_education_to_edu() {
        let c = credentials(LEGACY);
        assert_eq!(c.mode, AuthMode::Chatgpt);
        assert_eq!(c.plan_type.as_deref(), Some("edu"));
        assert_eq!(c.account_id.as_deref(), Some("legacy-account-0001"));
        assert_eq!(c.expires_at, Some(year_2100()));
    }

    #[test]
    fn api_keys_carry_no_chatgpt_details() {
        for bytes in [APIKEY, LEGACY_APIKEY] {
            let c = credentials(bytes);
            assert_eq!(c.mode, AuthMode::ApiKey);
            assert!(c.bearer.expose().starts_with("sk-"));
            assert_eq!((c.refresh_token, c.account_id, c.plan_type, c.expires_at), (None, None, None, None));
        }
    }

    #[test]
    fn an_opaque_access_token_has_no_expiry() {
        let c = credentials(MINIMAL);
        assert_eq!(c.mode, AuthMode::Chatgpt);
        assert_eq!((c.expires_at, c.email.as_deref(), c.account_id.as_deref()), (None, None, None));
        assert!(c.last_refresh.is_some());
    }

    #[test]
    fn a_document_without_credentials_is_reported_as_such() {
        let doc = AuthDotJson::parse(br#"{"OPENAI_API_KEY": null}"#).unwrap();
        let err = Credentials::from_dotjson(&doc).unwrap_err();
        assert!(matches!(err, AuthFileError::NoCredentials));
        assert_eq!(err.to_string(), "no credentials in auth.json (neither an API key nor ChatGPT tokens)");
    }

    #[test]
    fn unsupported_and_inconsistent_modes_are_errors() {
        let doc = AuthDotJson::parse(br#"{"auth_mode": "bedrockApiKey", "OPENAI_API_KEY": null}"#).unwrap();
        let err = Credentials::from_dotjson(&doc).unwrap_err();
        assert!(err.to_string().contains("auth_mode \"bedrockApiKey\" is not supported"), "{err}");
        let doc = AuthDotJson::parse(br#"{"auth_mode": "sk-looks like a key!", "OPENAI_API_KEY": null}"#).unwrap();
        assert!(!Credentials::from_dotjson(&doc).unwrap_err().to_string().contains("sk-"));
        let doc = AuthDotJson::parse(br#"{"auth_mode": "chatgpt", "OPENAI_API_KEY": "sk-x"}"#).unwrap();
        assert!(Credentials::from_dotjson(&doc).unwrap_err().to_string().contains("tokens are missing"));
        let doc = AuthDotJson::parse(br#"{"auth_mode": "apikey", "OPENAI_API_KEY": null}"#).unwrap();
        assert!(matches!(Credentials::from_dotjson(&doc), Err(AuthFileError::Corrupt { .. })));
    }

    #[test]
    fn debug_shows_neither_tokens_nor_email() {
        for bytes in [APIKEY, CHATGPT, DEVICE, LEGACY, LEGACY_APIKEY, MINIMAL] {
            let c = credentials(bytes);
            let shown = format!("{c:?}");
            assert!(shown.contains(&fingerprint(c.bearer.expose())), "{shown}");
            assert!(!shown.contains(c.bearer.expose()), "{shown}");
            assert!(!shown.contains('@'), "{shown}");
            if let Some(rt) = &c.refresh_token {
                assert!(!shown.contains(rt.expose()), "{shown}");
            }
        }
    }

    #[test]
    fn refresh_is_due_like_codex() {
        let mut c = credentials(CHATGPT);
        let exp = year_2100();
        assert!(!c.refresh_due(exp - TimeDelta::seconds(310)));
        assert!(c.refresh_due(exp - TimeDelta::seconds(290)));
        c.expires_at = None;
        let last = c.last_refresh.unwrap();
        assert!(!c.refresh_due(last + TimeDelta::hours(7 * 24 + 21)));
        assert!(c.refresh_due(last + TimeDelta::hours(8 * 24 + 2)));
        c.last_refresh = None;
        assert!(c.refresh_due(exp));
        assert!(!credentials(APIKEY).refresh_due(exp));
    }

    #[test]
    fn fingerprints_are_8_hex_digits_of_sha256() {
        // sha256("abc") = ba7816bf...
        assert_eq!(fingerprint("abc"), "ba7816bf");
        assert_eq!(fingerprint("sk-test-123").len(), 8);
    }
}
