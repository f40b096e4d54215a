//! [`IssuerError`]: how a call to the issuer failed, and whether trying again can help.

/// The issuer's refresh-token error codes that mean "sign in again" even on HTTP 400 (Codex PR #24830).
pub const PERMANENT_REFRESH_CODES: [&str; 3] =
    ["refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated"];

/// A failed call to the issuer. Messages name the endpoint and the status, never a token or a response body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IssuerError {
    /// The issuer answered with an error status.
    #[error("{endpoint} answered HTTP {status}{}", code_suffix(.code.as_deref()))]
    Status {
        /// Which call, e.g. `the token endpoint`.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// The error code of the body (`error.code`, else `error`, else `code`), lower-cased.
        code: Option<String>,
    },
    /// No answer: connection refused, reset, or timed out.
    #[error("{endpoint} could not be reached: {detail}")]
    Unreachable {
        /// Which call.
        endpoint: &'static str,
        /// What went wrong, without the URL's query.
        detail: String,
    },
    /// An answer that is not what the wire promises.
    #[error("{endpoint} answered something codexd cannot use: {detail}")]
    Malformed {
        /// Which call.
        endpoint: &'static str,
        /// What is wrong (never the body itself).
        detail: String,
    },
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|c| format!(" ({c})")).unwrap_or_default()
}

impl IssuerError {
    /// Whether a refresh that failed this way can never succeed with the same refresh token: HTTP 401, or one
    /// of [`PERMANENT_REFRESH_CODES`] on any status.
    pub fn is_permanent_refresh_failure(&self) -> bool {
        match self {
            IssuerError::Status { status, code, .. } => {
                *status == 401 || code.as_deref().is_some_and(|c| PERMANENT_REFRESH_CODES.contains(&c))
            }
            IssuerError::Unreachable { .. } | IssuerError::Malformed { .. } => false,
        }
    }

    /// The issuer's error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            IssuerError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn unreachable(endpoint: &'static str, error: &reqwest::Error) -> Self {
        let detail = if error.is_timeout() {
            "timed out".to_owned()
        } else if error.is_connect() {
            format!("cannot connect ({})", root_cause(error))
        } else {
            root_cause(error)
        };
        IssuerError::Unreachable { endpoint, detail }
    }
}

/// The innermost error's text (reqwest's outer text repeats the URL).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The error code of an error body, as the Codex CLI finds it: `error.code`, else `error` when it is a string,
/// else the top-level `code`; lower-cased.
pub fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(serde_json::Value::as_str)
        .or_else(|| value.get("error").and_then(serde_json::Value::as_str))
        .or_else(|| value.get("code").and_then(serde_json::Value::as_str))?;
    Some(code.to_ascii_lowercase())
}

/// The Codex CLI's message for a refresh that failed for good.
pub fn refresh_failed_message(code: Option<&str>) -> &'static str {
    match code {
        Some("refresh_token_expired") => {
            "Your access token could not be refreshed because your refresh token has expired. Please log out and sign in again."
        }
        Some("refresh_token_reused") => {
            "Your access token could not be refreshed because your refresh token was already used. Please log out and sign in again."
        }
        Some("refresh_token_invalidated") => {
            "Your access token could not be refreshed because your refresh token was revoked. Please log out and sign in again."
        }
        _ => "Your access token could not be refreshed. Please log out and sign in again.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_where_codex_looks() {
        let real =
            br#"{"error":{"message":"m","type":"invalid_request_error","param":null,"code":"refresh_token_reused"}}"#;
        assert_eq!(error_code(real).as_deref(), Some("refresh_token_reused"));
        assert_eq!(error_code(br#"{"error":"Refresh_Token_Expired"}"#).as_deref(), Some("refresh_token_expired"));
        assert_eq!(error_code(br#"{"code":"x"}"#).as_deref(), Some("x"));
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn permanence_follows_codex() {
        let status = |status, code: Option<&str>| IssuerError::Status {
            endpoint: "the token endpoint",
            status,
            code: code.map(str::to_owned),
        };
        assert!(status(401, None).is_permanent_refresh_failure());
        assert!(status(400, Some("refresh_token_reused")).is_permanent_refresh_failure());
        assert!(status(400, Some("refresh_token_invalidated")).is_permanent_refresh_failure());
        assert!(!status(400, Some("invalid_request")).is_permanent_refresh_failure());
        assert!(!status(500, None).is_permanent_refresh_failure());
        let gone = IssuerError::Unreachable { endpoint: "the token endpoint", detail: "timed out".into() };
        assert!(!gone.is_permanent_refresh_failure());
        assert_eq!(
            status(401, Some("refresh_token_reused")).to_string(),
            "the token endpoint answered HTTP 401 (refresh_token_reused)"
        );
    }
}
