//! A realistic ChatGPT `auth.json`: JWTs of the size the real issuer hands out (an access token of about
//! 1.7 KB with an RS256-sized signature), written the way the Codex CLI writes it.

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use codexd_fake_issuer::CLIENT_ID;
use serde_json::{Value, json};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Where a refresh would go if one happened: a closed loopback port, so no request ever leaves the machine.
pub const DEAD_ISSUER: &str = "http://127.0.0.1:9";

/// The tokens of one ChatGPT login.
#[derive(Debug, Clone)]
pub struct Login {
    /// The bearer token `getAuthStatus {includeToken:true}` returns.
    pub access_token: String,
    id_token: String,
    refresh_token: String,
    account_id: String,
    last_refresh: String,
}

impl Login {
    /// A login made `now`, valid for ten days, with the claims the real issuer puts in its tokens.
    pub fn realistic(now: DateTime<Utc>) -> Self {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let iat = now.timestamp();
        let exp = iat + 10 * 24 * 3600;
        let account_id = rng.uuid();
        let user_id = format!("user-{}", rng.alnum(24));
        let email = "bench.user@example.com";
        let auth_claims = json!({
            "chatgpt_account_id": account_id,
            "chatgpt_account_user_id": format!("{user_id}__{account_id}"),
            "chatgpt_compute_residency": "no_constraint",
            "chatgpt_plan_type": "plus",
            "chatgpt_user_id": user_id,
            "user_id": user_id,
        });
        let access = json!({
            "aud": ["https://api.openai.com/v1"],
            "client_id": CLIENT_ID,
            "exp": exp,
            "https://api.openai.com/auth": auth_claims,
            "https://api.openai.com/mfa": {"required": "no"},
            "https://api.openai.com/profile": {"email": email, "email_verified": true},
            "iat": iat,
            "iss": "https://auth.openai.com",
            "jti": rng.uuid(),
            "nbf": iat,
            "pwd_auth_time": iat * 1000 - 4242,
            "scp": ["openid", "profile", "email", "offline_access", "api.connectors.read", "api.connectors.invoke"],
            "session_id": format!("authsess_{}", rng.alnum(24)),
            "sub": format!("google-oauth2|{}", rng.digits(21)),
        });
        let id = json!({
            "at_hash": rng.alnum(22),
            "aud": [CLIENT_ID],
            "auth_provider": "google",
            "auth_time": iat - 5,
            "email": email,
            "email_verified": true,
            "exp": exp,
            "https://api.openai.com/auth": {
                "chatgpt_account_id": account_id,
                "chatgpt_plan_type": "plus",
                "chatgpt_subscription_active_start": "2026-01-01T00:00:00+00:00",
                "chatgpt_subscription_active_until": "2027-01-01T00:00:00+00:00",
                "chatgpt_subscription_last_checked": now.to_rfc3339_opts(SecondsFormat::Micros, false),
                "chatgpt_user_id": user_id,
                "completed_platform_onboarding": true,
                "groups": [],
                "is_org_owner": true,
                "organizations": [
                    {"id": format!("org-{}", rng.alnum(24)), "is_default": true, "role": "owner", "title": "Personal"}
                ],
                "user_id": user_id,
            },
            "iat": iat,
            "iss": "https://auth.openai.com",
            "jti": rng.uuid(),
            "rat": iat - 5,
            "sid": rng.uuid(),
            "sub": format!("google-oauth2|{}", rng.digits(21)),
        });
        Self {
            access_token: jwt(&access, &mut rng),
            id_token: jwt(&id, &mut rng),
            refresh_token: format!("rt_{}.{}", rng.alnum(43), rng.alnum(43)),
            account_id,
            last_refresh: now.to_rfc3339_opts(SecondsFormat::Nanos, true),
        }
    }

    /// The `auth.json` the Codex CLI 0.171 writes after a ChatGPT login: pretty-printed, no trailing newline.
    pub fn auth_json(&self) -> Result<String> {
        let doc = json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": self.id_token,
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "oauth_provenance": {"issuer": DEAD_ISSUER, "client_id": CLIENT_ID},
                "login_owner_id": URL_SAFE_NO_PAD.encode([7u8; 32]),
                "account_id": self.account_id,
            },
            "last_refresh": self.last_refresh,
        });
        serde_json::to_string_pretty(&doc).context("cannot encode auth.json")
    }
}

/// Writes `$home/auth.json` atomically (0600 temp file, fsync, rename), as another program would.
pub fn write_auth_json(home: &Path, contents: &str) -> Result<()> {
    let temp = home.join(".bench-auth.tmp");
    let target = home.join("auth.json");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", temp.display()))?;
    file.sync_all().with_context(|| format!("cannot fsync {}", temp.display()))?;
    drop(file);
    std::fs::rename(&temp, &target).with_context(|| format!("cannot rename {} to auth.json", temp.display()))
}

fn jwt(claims: &Value, rng: &mut XorShift) -> String {
    let header = json!({"alg": "RS256", "kid": rng.uuid(), "typ": "JWT"});
    // An RS256 signature is 256 bytes.
    let signature: Vec<u8> = (0..256).map(|_| rng.next() as u8).collect();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// A tiny deterministic generator, so the fixture is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize])).collect()
    }

    fn alnum(&mut self, len: usize) -> String {
        self.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", len)
    }

    fn digits(&mut self, len: usize) -> String {
        self.pick(b"0123456789", len)
    }

    fn uuid(&mut self) -> String {
        let h = self.pick(b"0123456789abcdef", 32);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}
