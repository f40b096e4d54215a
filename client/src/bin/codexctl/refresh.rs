//! `codexctl refresh`: makes codexd refresh the ChatGPT tokens now and says how it went.

use crate::{Ctx, EXIT_OK, EXIT_REFUSED, Failure, token};
use codexd_client::ClientError;
use codexd_client::proto::ErrorCode;
use codexd_client::proto::methods::{AuthMode, AuthProblem, GetAuthStatusResult};
use std::io::{self, Write};

/// The `authError.reason` of a refresh the issuer refused for good.
const REFRESH_FAILED: &str = "refreshFailed";

/// Forces a refresh; exit 0 with the new expiry, 1 when it failed or nobody is logged in.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    let mut client = ctx.connect_or_start()?;
    let mut status = match client.refresh() {
        // `refreshUnavailable`: the issuer could not be asked now; the daemon's message says the current token
        // stays in use.
        Err(ClientError::Daemon(e)) if e.kind() == ErrorCode::RefreshFailed => {
            return Err(Failure::new(EXIT_REFUSED, e.message).into());
        }
        other => other?,
    };
    // The answer carries the new token; it is never printed.
    status.auth_token = None;
    match outcome(&status) {
        Ok(message) => {
            let _ = writeln!(io::stderr().lock(), "codexctl: {message}");
            Ok(EXIT_OK)
        }
        Err(message) => Err(Failure::new(EXIT_REFUSED, message).into()),
    }
}

/// The message for the answer: `Ok` when the refresh happened (or there is nothing to refresh).
fn outcome(status: &GetAuthStatusResult) -> Result<String, String> {
    if let Some(message) = status.auth_error.as_ref().and_then(failure_message) {
        return Err(message);
    }
    match (status.auth_method, status.expires_at.as_deref()) {
        (None, _) => Err(token::not_logged_in(status.auth_error.as_ref().map(|p| p.message.as_str()))),
        (Some(AuthMode::ApiKey), _) => Ok("refreshed; an API key does not expire".to_owned()),
        (Some(AuthMode::Chatgpt), Some(expires)) => Ok(format!("refreshed; the token expires at {expires}")),
        (Some(AuthMode::Chatgpt), None) => Ok("refreshed".to_owned()),
    }
}

/// `the refresh failed (<issuer code>): <message>` (the issuer's message says to sign in again), or
/// `the refresh failed: <message>`, on one line; `None` when the problem is not a refused refresh.
pub(crate) fn failure_message(problem: &AuthProblem) -> Option<String> {
    if problem.reason != REFRESH_FAILED {
        return None;
    }
    let message = problem.message.replace(['\n', '\r'], " ");
    Some(match problem.issuer_code.as_deref().filter(|c| !c.is_empty()) {
        Some(code) => format!("the refresh failed ({code}): {message}"),
        None => format!("the refresh failed: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(changes: serde_json::Value) -> GetAuthStatusResult {
        let mut base = json!({"authMethod":"chatgpt","authToken":null,"requiresOpenaiAuth":true,"accountId":"a",
            "planType":"plus","expiresAt":"2026-11-29T06:00:00Z","generation":5});
        let serde_json::Value::Object(changes) = changes else { panic!("changes must be an object") };
        base.as_object_mut().unwrap().extend(changes);
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_chatgpt_refresh_names_the_new_expiry() {
        assert_eq!(outcome(&status(json!({}))).unwrap(), "refreshed; the token expires at 2026-11-29T06:00:00Z");
        assert_eq!(outcome(&status(json!({"expiresAt":null}))).unwrap(), "refreshed");
    }

    #[test]
    fn an_api_key_has_nothing_to_refresh() {
        let s = status(json!({"authMethod":"apikey","accountId":null,"planType":null,"expiresAt":null}));
        assert!(outcome(&s).unwrap().starts_with("refreshed"));
    }

    #[test]
    fn a_refused_refresh_names_the_issuer_code_and_message() {
        let s = status(json!({"authMethod":null,"authError":{"reason":"refreshFailed",
            "message":"Your refresh token has already been used.","issuerCode":"refresh_token_reused"}}));
        assert_eq!(
            outcome(&s).unwrap_err(),
            "the refresh failed (refresh_token_reused): Your refresh token has already been used."
        );
        let s = status(json!({"authMethod":null,"authError":{"reason":"refreshFailed","message":"no"}}));
        assert_eq!(outcome(&s).unwrap_err(), "the refresh failed: no");
    }

    #[test]
    fn nobody_logged_in_is_a_failure() {
        let s = status(json!({"authMethod":null,"accountId":null,"planType":null,"expiresAt":null}));
        assert!(outcome(&s).unwrap_err().starts_with("not logged in"));
    }
}
