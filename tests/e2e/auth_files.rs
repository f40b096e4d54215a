//! The golden `auth.json` files in `tests/data/` (shapes the Codex CLI writes, current and legacy), each loaded
//! through the daemon and read back with `getAuthStatus` and `account/read`.

use codexd_e2e::{TestDaemon, parse_rfc3339};
use serde_json::{Value, json};
use std::path::PathBuf;

/// `exp` of every golden access token: 2100-01-01T00:00:00Z.
const GOLDEN_EXP: i64 = 4_102_444_800;

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn access_token(bytes: &[u8]) -> String {
    let doc: Value = serde_json::from_slice(bytes).unwrap();
    doc["tokens"]["access_token"].as_str().unwrap().to_owned()
}

fn load(name: &str) -> (Value, Value) {
    let daemon = TestDaemon::with_auth(golden(name));
    let mut conn = daemon.raw_conn();
    let status = conn.auth_status(true);
    let account = conn.call("account/read", json!({}));
    assert_eq!(account["requiresOpenaiAuth"], true);
    (status, account)
}

fn assert_expires_in_2100(status: &Value) {
    let expires = status["expiresAt"].as_str().unwrap_or_else(|| panic!("no expiresAt: {status}"));
    assert_eq!(parse_rfc3339(expires).timestamp(), GOLDEN_EXP, "{status}");
}

#[test]
fn a_current_browser_login_loads() {
    let bytes = golden("auth-chatgpt.json");
    let (status, account) = load("auth-chatgpt.json");
    assert_eq!(status["authMethod"], "chatgpt", "{status}");
    assert_eq!(status["authToken"], access_token(&bytes));
    assert_eq!(status["accountId"], "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
    assert_eq!(status["planType"], "plus");
    assert_expires_in_2100(&status);
    assert_eq!(
        account["account"],
        json!({"type": "chatgpt", "email": "user@example.com", "planType": "plus",
               "accountId": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"})
    );
}

#[test]
fn a_device_code_login_loads_with_the_profile_email_and_mapped_plan() {
    let bytes = golden("auth-chatgpt-device.json");
    let (status, account) = load("auth-chatgpt-device.json");
    assert_eq!(status["authMethod"], "chatgpt", "{status}");
    assert_eq!(status["authToken"], access_token(&bytes));
    assert_eq!(status["planType"], "enterprise", "plan `hc` maps to enterprise");
    assert_expires_in_2100(&status);
    assert_eq!(
        account["account"],
        json!({"type": "chatgpt", "email": "device-user@example.com", "planType": "enterprise",
               "accountId": "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"})
    );
}

#[test]
fn an_api_key_login_loads() {
    let (status, account) = load("auth-apikey.json");
    assert_eq!(status["authMethod"], "apikey", "{status}");
    assert_eq!(status["authToken"], "sk-test-123");
    assert_eq!((status["accountId"].clone(), status["planType"].clone()), (Value::Null, Value::Null));
    assert_eq!(account["account"], json!({"type": "apiKey"}));
}

#[test]
fn a_legacy_login_loads_with_the_account_id_from_the_id_token() {
    let bytes = golden("auth-legacy.json");
    let (status, account) = load("auth-legacy.json");
    assert_eq!(status["authMethod"], "chatgpt", "{status}");
    assert_eq!(status["authToken"], access_token(&bytes));
    assert_eq!(status["accountId"], "legacy-account-0001");
    assert_eq!(status["planType"], "edu", "plan `education` maps to edu");
    assert_eq!(
        account["account"],
        json!({"type": "chatgpt", "email": "legacy@example.com", "planType": "edu",
               "accountId": "legacy-account-0001"})
    );
}

#[test]
fn a_legacy_file_with_a_key_and_tokens_is_an_api_key_login() {
    let (status, account) = load("auth-legacy-apikey-with-tokens.json");
    assert_eq!(status["authMethod"], "apikey", "{status}");
    assert_eq!(status["authToken"], "sk-FAKElegacyKEY0123456789abcdefghijklmnopqrstuv");
    assert_eq!(account["account"], json!({"type": "apiKey"}));
}

#[test]
fn a_minimal_login_loads_without_claims() {
    let (status, account) = load("auth-minimal.json");
    assert_eq!(status["authMethod"], "chatgpt", "{status}");
    assert_eq!(status["authToken"], "fake-opaque-access-token-minimal");
    assert_eq!(status["expiresAt"], Value::Null, "an opaque access token has no readable expiry");
    assert_eq!(account["account"], json!({"type": "chatgpt", "email": null, "planType": null, "accountId": null}));
}

#[test]
fn corrupt_files_are_reported_with_what_is_wrong() {
    for (name, phrase) in [
        ("corrupt-truncated.json", "ends early"),
        ("corrupt-empty-last-refresh.json", "last_refresh"),
        ("corrupt-bad-id-token.json", "id_token"),
    ] {
        let (status, account) = load(name);
        assert_eq!(status["authMethod"], Value::Null, "{name}: {status}");
        assert_eq!(status["authToken"], Value::Null, "{name}: {status}");
        assert_eq!(account["account"], Value::Null, "{name}: {account}");
        let problem = &status["authError"];
        assert!(problem["reason"].as_str().is_some_and(|r| !r.is_empty()), "{name}: {status}");
        let message = problem["message"].as_str().unwrap_or_else(|| panic!("{name}: no message: {status}"));
        assert!(message.contains(phrase), "{name}: message should mention {phrase:?}: {message}");
        assert!(!message.contains("FAKEfake"), "{name}: the message quotes a secret: {message}");
    }
}
