//! The control API under `/_fake/`, with the same semantics as the Rust API. Control requests are not recorded.
//!
//! | request | effect / answer |
//! |---|---|
//! | `GET /_fake/requests` | JSON array of recorded requests (`endpoint`, `method`, `path`, `query`, `headers`, `body`, `received_at_ms`) |
//! | `POST /_fake/script` `{"endpoint":"refresh","fault":{"kind":"status","status":500},"always":false}` | queue (or always apply) a fault; kinds as [`FaultSpec`] |
//! | `POST /_fake/clear` | clear every fault and release hung requests |
//! | `POST /_fake/mint` (optional [`Account`] JSON) | `{id_token, access_token, refresh_token, auth_json}` |
//! | `POST /_fake/approve` `{"user_code":"ABCD-EFGH"}` | `{"approved":true}`, or 404 `{"approved":false}` |
//! | `POST /_fake/lifetime` `{"seconds":N}` | access-token lifetime from now on |
//! | `POST /_fake/account` ([`Account`] JSON) | who signs in from now on |
//! | `GET /_fake/revoked` | JSON array of revoked tokens |
//!
//! Errors: 400 `{"error":"<what is wrong>"}`; unknown control paths: 404.

use std::time::Duration;

use hyper::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::state::Reply;
use crate::{Account, Endpoint, FaultSpec, Shared};

#[derive(Deserialize)]
struct ScriptRequest {
    endpoint: Endpoint,
    fault: FaultSpec,
    #[serde(default)]
    always: bool,
}

#[derive(Deserialize)]
struct ApproveRequest {
    user_code: String,
}

#[derive(Deserialize)]
struct LifetimeRequest {
    seconds: u64,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::json(400, &json!({"error": format!("bad JSON body: {e}")})))
}

/// Answers one control request.
pub(crate) fn handle(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Reply {
    match dispatch(shared, method, path, body) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn dispatch(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Result<Reply, Reply> {
    let ok = || Reply::json(200, &json!({}));
    Ok(match (method.as_str(), path) {
        ("GET", "/_fake/requests") => {
            let list: Vec<Value> = shared.lock().requests.iter().map(crate::RecordedRequest::to_json).collect();
            Reply::json(200, &Value::Array(list))
        }
        ("GET", "/_fake/revoked") => Reply::json(200, &json!(shared.lock().revoked)),
        ("POST", "/_fake/script") => {
            let request: ScriptRequest = parse(body)?;
            let mut state = shared.lock();
            if request.always {
                state.script.set_always(request.endpoint, request.fault.into());
            } else {
                state.script.push(request.endpoint, request.fault.into());
            }
            ok()
        }
        ("POST", "/_fake/clear") => {
            shared.clear_faults();
            ok()
        }
        ("POST", "/_fake/mint") => {
            let account = if body.iter().all(u8::is_ascii_whitespace) {
                shared.lock().account.clone()
            } else {
                parse::<Account>(body)?
            };
            let mut state = shared.lock();
            let tokens = state.mint(&account);
            let auth_json = tokens.auth_json(&state.issuer);
            Reply::json(
                200,
                &json!({
                    "id_token": tokens.id_token,
                    "access_token": tokens.access_token,
                    "refresh_token": tokens.refresh_token,
                    "auth_json": auth_json,
                }),
            )
        }
        ("POST", "/_fake/approve") => {
            let request: ApproveRequest = parse(body)?;
            if shared.lock().approve_device(&request.user_code) {
                Reply::json(200, &json!({"approved": true}))
            } else {
                Reply::json(404, &json!({"approved": false}))
            }
        }
        ("POST", "/_fake/lifetime") => {
            let request: LifetimeRequest = parse(body)?;
            shared.lock().lifetime = Duration::from_secs(request.seconds);
            ok()
        }
        ("POST", "/_fake/account") => {
            let account: Account = parse(body)?;
            shared.lock().account = account;
            ok()
        }
        _ => Reply::json(404, &json!({"error": "unknown control path"})),
    })
}
