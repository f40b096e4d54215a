//! A corrupt `auth.json`, present when the daemon starts or written while it runs: the daemon keeps running,
//! reports what is wrong (`authError`, reason `authFileCorrupt`) without quoting any secret, serves no
//! credentials, never rewrites the file, and picks up the fixed file at once with `account/updated`
//! (`reason: "external"`).

use codexd_e2e::{Conn, SECRET_MARK, TestDaemon, apikey_auth_json, write_atomically};
use serde_json::{Value, json};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What identifies the file on disk: its bytes, inode and modification time.
#[derive(Debug, PartialEq)]
struct FileIdentity {
    bytes: Vec<u8>,
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
}

fn identity(path: &Path) -> FileIdentity {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    FileIdentity { bytes, dev: meta.dev(), ino: meta.ino(), mtime: (meta.mtime(), meta.mtime_nsec()) }
}

/// A corrupt file, what the daemon must say about it, and the good file that fixes it.
struct Case {
    corrupt: Vec<u8>,
    /// A phrase the `authError` message must contain.
    says: &'static str,
    fixed: Vec<u8>,
    fixed_mode: &'static str,
    fixed_token: String,
    /// Strings no message may contain: the secrets of both files and their marker.
    secrets: Vec<String>,
}

/// A case built on `tests/data/auth-chatgpt.json` and one of its corrupt variants.
fn golden_case(corrupt: &str, says: &'static str) -> Case {
    let fixed = data("auth-chatgpt.json");
    let good: Value = serde_json::from_slice(&fixed).expect("auth-chatgpt.json is JSON");
    let tokens = &good["tokens"];
    let mut secrets: Vec<String> =
        [&good["OPENAI_API_KEY"], &tokens["access_token"], &tokens["id_token"], &tokens["refresh_token"]]
            .iter()
            .map(|v| v.as_str().expect("a string secret").to_owned())
            .collect();
    // Every fake secret in the golden files carries this marker (including the bad id token).
    secrets.push("FAKEfake".to_owned());
    secrets.push("not-a-jwt".to_owned());
    Case {
        corrupt: data(corrupt),
        says,
        fixed_token: tokens["access_token"].as_str().expect("access_token").to_owned(),
        fixed,
        fixed_mode: "chatgpt",
        secrets,
    }
}

fn assert_no_secret(text: &str, case: &Case, what: &str) {
    for secret in &case.secrets {
        assert!(!text.contains(secret.as_str()), "{what} contains the secret {secret:?}: {text}");
    }
}

fn absent_or_null(value: &Value, key: &str) -> bool {
    value.get(key).is_none_or(Value::is_null)
}

/// The daemon reports the corrupt file, serves nothing, keeps running, and leaves the file as it is.
fn assert_reported_and_untouched(daemon: &mut TestDaemon, conn: &mut Conn, case: &Case, phase: &str) {
    let path = daemon.auth_path();
    let before = identity(&path);
    assert_eq!(before.bytes, case.corrupt, "{phase}: auth.json is not the corrupt file the test wrote");

    let status = conn.daemon_status();
    assert_eq!(status["authError"]["reason"], "authFileCorrupt", "{phase}: daemon/status {status}");
    let message = status["authError"]["message"].as_str().unwrap_or_else(|| panic!("{phase}: no message: {status}"));
    assert!(
        message.contains("auth.json") && message.contains(case.says),
        "{phase}: the message does not say `{}`: {message}",
        case.says
    );
    assert_no_secret(message, case, &format!("{phase}: the authError message"));
    assert_eq!(status["authMethod"], Value::Null, "{phase}: daemon/status {status}");

    let auth = conn.auth_status(true);
    assert_eq!(auth["authMethod"], Value::Null, "{phase}: getAuthStatus {auth}");
    assert_eq!(auth["authToken"], Value::Null, "{phase}: getAuthStatus {auth}");
    assert_eq!(auth["authError"]["reason"], "authFileCorrupt", "{phase}: getAuthStatus {auth}");
    assert_no_secret(&auth.to_string(), case, &format!("{phase}: getAuthStatus"));
    assert_eq!(identity(&path), before, "{phase}: auth.json changed after daemon/status and getAuthStatus");

    let account = conn.call("account/read", json!({}));
    assert_eq!(account["account"], Value::Null, "{phase}: account/read {account}");
    assert_no_secret(&account.to_string(), case, &format!("{phase}: account/read"));

    let out = daemon.codexctl(&["token"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{phase}: codexctl token: {}; stderr:\n{stderr}", out.status);
    assert!(out.stdout.is_empty(), "{phase}: codexctl token printed {:?}", String::from_utf8_lossy(&out.stdout));
    assert_no_secret(&stderr, case, &format!("{phase}: codexctl token's stderr"));

    assert_eq!(identity(&path), before, "{phase}: auth.json changed after account/read");
    assert!(daemon.try_exit().is_none(), "{phase}: codexd exited");
}

/// Writes the fixed file and checks that the subscriber hears it and the token is served again.
fn fix_and_expect_reload(daemon: &TestDaemon, subscriber: &mut Conn, case: &Case, phase: &str) {
    let generation = subscriber.daemon_status()["generation"].as_u64().expect("generation");
    write_atomically(daemon.home(), &case.fixed);
    let update = subscriber.next_account_updated();
    assert_eq!(update["reason"], "external", "{phase}: {update}");
    assert_eq!(update["authMode"], case.fixed_mode, "{phase}: {update}");
    assert!(absent_or_null(&update, "authError"), "{phase}: the fixed file still has an error: {update}");
    assert!(
        update["generation"].as_u64().is_some_and(|g| g > generation),
        "{phase}: generation did not grow: {update}"
    );
    let auth = subscriber.auth_status(true);
    assert_eq!(auth["authMethod"], case.fixed_mode, "{phase}: {auth}");
    assert!(auth["authToken"].as_str() == Some(case.fixed_token.as_str()), "{phase}: the token is not served again");
    assert!(absent_or_null(&auth, "authError"), "{phase}: {auth}");
    assert!(absent_or_null(&subscriber.daemon_status(), "authError"), "{phase}: daemon/status still has an error");
}

/// Both ways a corrupt file can meet the daemon: at start, and written by another program while it runs.
fn corrupt_file_is_reported_untouched_and_reloaded_when_fixed(case: &Case) {
    let mut daemon = TestDaemon::with_auth(case.corrupt.clone());
    let mut subscriber = daemon.subscriber();
    assert_reported_and_untouched(&mut daemon, &mut subscriber, case, "corrupt at start");
    fix_and_expect_reload(&daemon, &mut subscriber, case, "fixed after start");

    write_atomically(daemon.home(), &case.corrupt);
    let update = subscriber.next_account_updated();
    assert_eq!(update["reason"], "external", "corrupted while running: {update}");
    assert_eq!(update["authMode"], Value::Null, "corrupted while running: {update}");
    assert_eq!(update["authError"]["reason"], "authFileCorrupt", "corrupted while running: {update}");
    assert_no_secret(&update.to_string(), case, "the account/updated notification");
    assert_reported_and_untouched(&mut daemon, &mut subscriber, case, "corrupted while running");
    fix_and_expect_reload(&daemon, &mut subscriber, case, "fixed while running");
}

#[test]
fn a_truncated_auth_json_is_reported_never_rewritten_and_reloaded_when_fixed() {
    corrupt_file_is_reported_untouched_and_reloaded_when_fixed(&golden_case("corrupt-truncated.json", "ends early"));
}

#[test]
fn an_auth_json_with_an_empty_last_refresh_is_reported_never_rewritten_and_reloaded_when_fixed() {
    corrupt_file_is_reported_untouched_and_reloaded_when_fixed(&golden_case(
        "corrupt-empty-last-refresh.json",
        "last_refresh is empty",
    ));
}

#[test]
fn an_auth_json_with_a_bad_id_token_is_reported_never_rewritten_and_reloaded_when_fixed() {
    corrupt_file_is_reported_untouched_and_reloaded_when_fixed(&golden_case(
        "corrupt-bad-id-token.json",
        "id_token is not a JWT",
    ));
}

#[test]
fn a_truncated_auth_json_holding_a_secret_is_reported_without_quoting_it() {
    let key = format!("sk-{SECRET_MARK}-corrupt-0123456789abcdefghijklmnop");
    let full = apikey_auth_json(&key);
    // Cut inside the key: the file ends in the middle of the secret.
    let cut = full.len() - 12;
    let case = Case {
        corrupt: full[..cut].to_vec(),
        says: "ends early",
        fixed: full.clone(),
        fixed_mode: "apikey",
        fixed_token: key.clone(),
        secrets: vec![key[..key.len() - 10].to_owned(), SECRET_MARK.to_owned()],
    };
    corrupt_file_is_reported_untouched_and_reloaded_when_fixed(&case);
}
