//! JWT payload parsing: the id_token claims (email, plan, account and user id) and the access token's `exp`.
//!
//! As in the Codex CLI, the signature is never checked: the tokens come from our own credential store, and the
//! issuer checks them when they are used. A token is `header.payload.signature` with three non-empty parts; the
//! payload is base64url without padding and holds a JSON object.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The `PlanType` values of the Codex 0.171.0 protocol schema; these are reported in lower case.
const KNOWN_PLANS: &[&str] = &[
    "free",
    "go",
    "plus",
    "pro",
    "prolite",
    "promax",
    "team",
    "self_serve_business_prolite",
    "self_serve_business_usage_based",
    "business",
    "ent26",
    "enterprise_cbp_automation",
    "enterprise_cbp_usage_based",
    "enterprise",
    "edu",
    "edu_plus",
    "edu_pro",
    "sci",
    "sci_plus",
    "unknown",
];

/// Why a token could not be read as a JWT. The messages never quote the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// Not three non-empty dot-separated parts.
    #[error("is not a JWT (expected three dot-separated parts)")]
    NotJwt,
    /// The payload part is not base64url without padding.
    #[error("is not a JWT (the payload is not base64url)")]
    Base64,
    /// The payload is not a JSON object of the expected claim types.
    #[error("is not a JWT (the payload is not a JSON object of claims)")]
    Json,
}

/// The claims of an id_token that the daemon uses.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IdTokenClaims {
    /// `email`, else `https://api.openai.com/profile`.`email`.
    pub email: Option<String>,
    /// `chatgpt_plan_type`, mapped with [`normalize_plan_type`].
    pub plan_type: Option<String>,
    /// `chatgpt_user_id`, else `user_id`.
    pub user_id: Option<String>,
    /// `chatgpt_account_id` (the ChatGPT workspace id).
    pub account_id: Option<String>,
}

impl std::fmt::Debug for IdTokenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenClaims")
            .field("email", &self.email.as_ref().map(|_| "***"))
            .field("plan_type", &self.plan_type)
            .field("user_id", &self.user_id)
            .field("account_id", &self.account_id)
            .finish()
    }
}

#[derive(Deserialize)]
struct IdClaims {
    #[serde(default)]
    email: Option<String>,
    #[serde(rename = "https://api.openai.com/profile", default)]
    profile: Option<ProfileClaims>,
    #[serde(rename = "https://api.openai.com/auth", default)]
    auth: Option<AuthClaims>,
}

#[derive(Deserialize)]
struct ProfileClaims {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct AuthClaims {
    #[serde(default)]
    chatgpt_plan_type: Option<String>,
    #[serde(default)]
    chatgpt_user_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    chatgpt_account_id: Option<String>,
}

#[derive(Deserialize)]
struct ExpClaims {
    #[serde(default)]
    exp: Option<i64>,
}

/// Decodes the payload of `jwt` into `T` without checking the signature.
fn decode_payload<T: DeserializeOwned>(jwt: &str) -> Result<T, ClaimsError> {
    let mut parts = jwt.split('.');
    let payload = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s)) if !h.is_empty() && !p.is_empty() && !s.is_empty() => p,
        _ => return Err(ClaimsError::NotJwt),
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| ClaimsError::Base64)?;
    serde_json::from_slice(&bytes).map_err(|_| ClaimsError::Json)
}

/// Reads the claims of an id_token (the Codex CLI's `parse_chatgpt_jwt_claims`).
pub fn parse_id_token(jwt: &str) -> Result<IdTokenClaims, ClaimsError> {
    let claims: IdClaims = decode_payload(jwt)?;
    let email = claims.email.or_else(|| claims.profile.and_then(|p| p.email));
    let Some(auth) = claims.auth else {
        return Ok(IdTokenClaims { email, ..IdTokenClaims::default() });
    };
    Ok(IdTokenClaims {
        email,
        plan_type: auth.chatgpt_plan_type.as_deref().map(normalize_plan_type),
        user_id: auth.chatgpt_user_id.or(auth.user_id),
        account_id: auth.chatgpt_account_id,
    })
}

/// Reads the `exp` claim of a JWT (the Codex CLI's `parse_jwt_expiration`); `Ok(None)` when it has none.
pub fn parse_expiration(jwt: &str) -> Result<Option<DateTime<Utc>>, ClaimsError> {
    let claims: ExpClaims = decode_payload(jwt)?;
    Ok(claims.exp.and_then(|exp| DateTime::from_timestamp(exp, 0)))
}

/// Maps a raw `chatgpt_plan_type` as the Codex CLI does: case-insensitive, `hc` → `enterprise`, `education` →
/// `edu`, known plans in lower case, anything else unchanged.
pub fn normalize_plan_type(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    match lower.as_str() {
        "hc" => "enterprise".to_owned(),
        "education" => "edu".to_owned(),
        known if KNOWN_PLANS.contains(&known) => lower,
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an unsigned test JWT the way the golden files are built.
    pub(crate) fn jwt(payload: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
        format!("{header}.{body}.c2ln")
    }

    #[test]
    fn id_token_claims_are_read_from_the_auth_namespace() {
        let token = jwt(&serde_json::json!({
            "email": "user@example.com",
            "https://api.openai.com/auth": {
                "chatgpt_plan_type": "pro",
                "chatgpt_user_id": "user-1",
                "user_id": "user-2",
                "chatgpt_account_id": "acct-1"
            }
        }));
        let claims = parse_id_token(&token).unwrap();
        assert_eq!(claims.email.as_deref(), Some("user@example.com"));
        assert_eq!(claims.plan_type.as_deref(), Some("pro"));
        assert_eq!(claims.user_id.as_deref(), Some("user-1"));
        assert_eq!(claims.account_id.as_deref(), Some("acct-1"));
    }

    #[test]
    fn email_falls_back_to_the_profile_claim_and_user_id_to_user_id() {
        let token = jwt(&serde_json::json!({
            "https://api.openai.com/profile": { "email": "profile@example.com" },
            "https://api.openai.com/auth": { "user_id": "user-2" }
        }));
        let claims = parse_id_token(&token).unwrap();
        assert_eq!(claims.email.as_deref(), Some("profile@example.com"));
        assert_eq!(claims.user_id.as_deref(), Some("user-2"));
        assert_eq!(claims.plan_type, None);
    }

    #[test]
    fn an_empty_payload_has_no_claims() {
        assert_eq!(parse_id_token("e30.e30.c2ln").unwrap(), IdTokenClaims::default());
        assert_eq!(parse_expiration("e30.e30.c2ln").unwrap(), None);
    }

    #[test]
    fn plans_are_mapped_like_codex() {
        assert_eq!(normalize_plan_type("hc"), "enterprise");
        assert_eq!(normalize_plan_type("HC"), "enterprise");
        assert_eq!(normalize_plan_type("education"), "edu");
        assert_eq!(normalize_plan_type("Plus"), "plus");
        assert_eq!(normalize_plan_type("edu_plus"), "edu_plus");
        assert_eq!(normalize_plan_type("Galaxy-Brain"), "Galaxy-Brain");
    }

    #[test]
    fn expiry_comes_from_exp() {
        let token = jwt(&serde_json::json!({ "exp": 4_102_444_800_i64 }));
        let exp = parse_expiration(&token).unwrap().unwrap();
        assert_eq!(exp.to_rfc3339(), "2100-01-01T00:00:00+00:00");
    }

    #[test]
    fn malformed_tokens_are_rejected_by_kind() {
        assert_eq!(parse_id_token("not-a-jwt"), Err(ClaimsError::NotJwt));
        assert_eq!(parse_id_token("a..c"), Err(ClaimsError::NotJwt));
        assert_eq!(parse_id_token("a.b."), Err(ClaimsError::NotJwt));
        assert_eq!(parse_id_token("e30.e30=.c2ln"), Err(ClaimsError::Base64));
        assert_eq!(parse_id_token("e30.!!!.c2ln"), Err(ClaimsError::Base64));
        let not_json = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode("hello"));
        assert_eq!(parse_id_token(&not_json), Err(ClaimsError::Json));
        let wrong_type = jwt(&serde_json::json!({ "email": 5 }));
        assert_eq!(parse_id_token(&wrong_type), Err(ClaimsError::Json));
        let float_exp = jwt(&serde_json::json!({ "exp": 1.5 }));
        assert_eq!(parse_expiration(&float_exp), Err(ClaimsError::Json));
    }
}
