//! Unsigned-looking JWTs in the shape the Codex issuer hands out. Nobody checks the signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::{Account, CLIENT_ID, random_token};

/// `base64url(header).base64url(payload).base64url(signature)`, no padding; the signature is random bytes.
pub fn encode(payload: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "fake-issuer"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(random_token(24))
    )
}

/// The JSON payload of a JWT (no signature check), or `None` when it is not `x.y.z` with a JSON middle part.
pub fn decode_payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The id_token payload for `account`.
pub(crate) fn id_token_claims(account: &Account, issuer: &str, iat: u64, exp: u64) -> Value {
    json!({
        "iss": issuer,
        "aud": [CLIENT_ID],
        "sub": account.user_id,
        "iat": iat,
        "auth_time": iat,
        "exp": exp,
        "email": account.email,
        "email_verified": true,
        "https://api.openai.com/profile": {"email": account.email, "email_verified": true},
        "https://api.openai.com/auth": {
            "chatgpt_account_id": account.account_id,
            "chatgpt_plan_type": account.plan_type,
            "chatgpt_user_id": account.user_id,
            "user_id": account.user_id,
            "organization_id": account.organization_id,
            "project_id": account.project_id,
            "completed_platform_onboarding": account.completed_platform_onboarding,
            "is_org_owner": account.is_org_owner,
        },
    })
}

/// The access_token payload for `account`, with a fresh `jti`.
pub(crate) fn access_token_claims(account: &Account, issuer: &str, iat: u64, exp: u64, jti: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": ["https://api.openai.com/v1"],
        "sub": account.user_id,
        "client_id": CLIENT_ID,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": jti,
        "scp": ["openid", "profile", "email", "offline_access"],
        "https://api.openai.com/profile": {"email": account.email, "email_verified": true},
        "https://api.openai.com/auth": {
            "chatgpt_account_id": account.account_id,
            "chatgpt_plan_type": account.plan_type,
            "chatgpt_user_id": account.user_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_tokens_decode_to_their_payload() {
        let claims = id_token_claims(&Account::default(), "http://127.0.0.1:1", 10, 20);
        let token = encode(&claims);
        assert_eq!(token.split('.').count(), 3);
        assert!(!token.contains('='));
        assert_eq!(decode_payload(&token), Some(claims));
        assert_eq!(decode_payload("a.b"), None);
    }
}
