//! Fake JWTs and `auth.json` files in the exact shapes the Codex CLI 0.171.0 writes, and atomic replacement of
//! `auth.json` as another program would do it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;

/// A substring every fixture secret contains (signatures of tokens, refresh tokens, API keys), so a test can
/// search logs for leaks.
pub const SECRET_MARK: &str = "SECRETMARK";

/// The Codex CLI's OAuth client id.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";

/// A JWT with header `{"alg":"none","typ":"JWT"}`, the given payload, and signature `c2ln` (`"sig"`).
pub fn fake_jwt(payload: &Value) -> String {
    fake_jwt_signed(payload, "c2ln")
}

/// A JWT like [`fake_jwt`] with a chosen signature segment (base64url characters only).
pub fn fake_jwt_signed(payload: &Value, signature: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).expect("JSON encodes"));
    format!("{header}.{body}.{signature}")
}

/// A ChatGPT login to write as `auth.json`. `tag` makes the tokens of two fixtures differ; use base64url
/// characters only (letters, digits, `-`, `_`).
#[derive(Debug, Clone)]
pub struct AuthFixture {
    /// `email` claim of the id token.
    pub email: String,
    /// `chatgpt_plan_type` claim.
    pub plan: String,
    /// `chatgpt_account_id` claim and `tokens.account_id`.
    pub account_id: String,
    /// `chatgpt_user_id` claim.
    pub user_id: String,
    /// `exp` of the access token, Unix seconds.
    pub access_exp: i64,
    /// Distinguishes the tokens of this fixture from another's.
    pub tag: String,
    /// `OPENAI_API_KEY` (set by a browser login, `null` after a device login).
    pub api_key: Option<String>,
    /// `tokens.oauth_provenance.issuer`.
    pub issuer: String,
    /// `last_refresh`, RFC 3339 with nanoseconds.
    pub last_refresh: String,
}

impl Default for AuthFixture {
    /// Ada, on the plus plan, with an access token valid for one more hour (a device login: no API key).
    fn default() -> Self {
        let now = Utc::now();
        AuthFixture {
            email: "ada@example.com".into(),
            plan: "plus".into(),
            account_id: "acct-e2e-0001".into(),
            user_id: "user-e2e-0001".into(),
            access_exp: now.timestamp() + 3600,
            tag: "a".into(),
            api_key: None,
            issuer: "https://auth.openai.com".into(),
            last_refresh: now.to_rfc3339_opts(SecondsFormat::Nanos, true),
        }
    }
}

impl AuthFixture {
    /// The same login with other tokens (as after a refresh or a new login): only `tag` changes.
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> AuthFixture {
        AuthFixture { tag: tag.into(), ..self.clone() }
    }

    fn auth_claims(&self) -> Value {
        json!({
            "chatgpt_plan_type": self.plan,
            "chatgpt_account_id": self.account_id,
            "chatgpt_user_id": self.user_id,
        })
    }

    /// The id token: `email` and the `https://api.openai.com/auth` claims.
    pub fn id_token(&self) -> String {
        let payload = json!({
            "email": self.email,
            "https://api.openai.com/auth": self.auth_claims(),
            "exp": self.access_exp,
            "iss": self.issuer,
        });
        fake_jwt_signed(&payload, &format!("{SECRET_MARK}-id-{}", self.tag))
    }

    /// The access token (the bearer): carries `exp` and the auth claims.
    pub fn access_token(&self) -> String {
        let payload = json!({
            "exp": self.access_exp,
            "iat": self.access_exp - 3600,
            "https://api.openai.com/auth": self.auth_claims(),
        });
        fake_jwt_signed(&payload, &format!("{SECRET_MARK}-access-{}", self.tag))
    }

    /// The opaque refresh token.
    pub fn refresh_token(&self) -> String {
        format!("rt-{SECRET_MARK}-{}", self.tag)
    }

    /// `tokens.login_owner_id`: 43 base64url characters.
    pub fn login_owner_id(&self) -> String {
        let mut seed = [0u8; 32];
        for (slot, byte) in seed.iter_mut().zip(self.tag.bytes().chain(b"login-owner".iter().copied())) {
            *slot = byte;
        }
        URL_SAFE_NO_PAD.encode(seed)
    }

    /// `access_exp` as a UTC time.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.access_exp, 0).expect("valid exp")
    }
}

/// `auth.json` of a ChatGPT login as the Codex CLI 0.171.0 writes it: pretty-printed with a 2-space indent,
/// no trailing newline, keys in the CLI's order.
pub fn chatgpt_auth_json(f: &AuthFixture) -> Vec<u8> {
    let doc = json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": f.api_key,
        "tokens": {
            "id_token": f.id_token(),
            "access_token": f.access_token(),
            "refresh_token": f.refresh_token(),
            "oauth_provenance": {"issuer": f.issuer, "client_id": CLIENT_ID},
            "login_owner_id": f.login_owner_id(),
            "account_id": f.account_id,
        },
        "last_refresh": f.last_refresh,
    });
    serde_json::to_vec_pretty(&doc).expect("JSON encodes")
}

/// `auth.json` of an older Codex CLI: no `auth_mode`, `OPENAI_API_KEY: null`, no `oauth_provenance`, no
/// `login_owner_id`.
pub fn legacy_chatgpt_auth_json(f: &AuthFixture) -> Vec<u8> {
    let doc = json!({
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": f.id_token(),
            "access_token": f.access_token(),
            "refresh_token": f.refresh_token(),
            "account_id": f.account_id,
        },
        "last_refresh": f.last_refresh,
    });
    serde_json::to_vec_pretty(&doc).expect("JSON encodes")
}

/// `auth.json` of an API-key login, byte for byte as the Codex CLI writes it.
pub fn apikey_auth_json(key: &str) -> Vec<u8> {
    format!("{{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"{key}\"\n}}").into_bytes()
}

/// Replaces `home/auth.json` as the Codex CLI does: a 0600 temp file in the same directory, fsync, rename.
pub fn write_atomically(home: &Path, bytes: &[u8]) {
    let mut tmp = tempfile::Builder::new().prefix(".auth-").tempfile_in(home).expect("cannot create temp auth file");
    tmp.write_all(bytes).expect("cannot write temp auth file");
    tmp.as_file().sync_all().expect("cannot fsync temp auth file");
    tmp.persist(home.join("auth.json")).expect("cannot rename the temp file to auth.json");
}

/// Replaces `path` with `text` as an editor or an admin's tool would: a temp file beside it (`.<name>.tmp`), then a
/// rename, so that a watcher never sees a half-written file.
pub fn replace_file(path: &Path, text: &str) {
    let name = path.file_name().unwrap_or_else(|| panic!("{} names no file", path.display()));
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
}

/// Deletes `home/auth.json` as `rm` (or another program's logout) would.
pub fn remove_auth(home: &Path) {
    std::fs::remove_file(home.join("auth.json")).expect("cannot remove auth.json");
}

/// An RFC 3339 UTC timestamp (whole seconds, `Z`) for Unix seconds.
pub fn rfc3339(unix_seconds: i64) -> String {
    DateTime::from_timestamp(unix_seconds, 0).expect("valid time").to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 timestamp as codexd reports it; panics with the text when it is not one.
pub fn parse_rfc3339(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not an RFC 3339 timestamp ({e}): {text:?}"))
        .with_timezone(&Utc)
}

/// Opens (creating it 0600, as codexd does) and `flock`s `path` exclusively, as another Codex program would,
/// blocking until it is ours; the lock lasts until the returned file is dropped.
pub fn hold_flock(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock().unwrap_or_else(|e| panic!("cannot flock {}: {e}", path.display()));
    file
}
