//! The `auto` credential store: the keyring when it works, `auth.json` when it has nothing or fails. A save that
//! the keyring refuses lands in `auth.json` with a `plaintextFallback` warning in `daemon/status` and `codexctl
//! status`; a logout with a failing keyring still deletes `auth.json` and names the keyring failure; a failing
//! keyring with no `auth.json` is a keyring error, not "logged out"; the same login moving between the file and
//! the keyring is no change.

use crate::keyring::{
    AT_ONCE, KEYRING_TIMEOUT, NOTICE, api_key_login, apikey_entry, compact, key_secrets, lock, on_bus, only_item,
    restart_with_entry, stop_with_entry, timed_status, wait_for_daemon_status, without_dbus,
};
use codexd_e2e::logins::{LOGIN_DEADLINE, wait_for_notification, wait_login_completed};
use codexd_e2e::secret_service::{CODEX_SERVICE, SecretService, available, codex_account};
use codexd_e2e::session::{assert_stderr_clean, secrets_of};
use codexd_e2e::text;
use codexd_e2e::{AuthFixture, TestDaemon, apikey_auth_json, chatgpt_auth_json, remove_auth};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn without_a_keyring_a_login_is_saved_to_auth_json_with_a_plaintext_warning() {
    let daemon = without_dbus("auto").start();
    let mut sub = daemon.subscriber();
    let key = "sk-SECRETMARK-auto-fallback";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    let (_, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    // The Codex CLI's file, byte for byte.
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key));
    assert_eq!(sub.auth_status(true)["authToken"], key);

    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("auto"), json!("file")), "{status}");
    assert_eq!(status["storeProblem"]["reason"], "plaintextFallback", "{status}");
    let message = status["storeProblem"]["message"].as_str().unwrap();
    assert!(message.contains("plaintext auth.json") && message.contains("keyring"), "{message}");

    // codexctl status shows the warning; --json carries the fields.
    let out = daemon.codexctl(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let warning = stdout.lines().find(|l| l.trim_start().starts_with("warning:")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(warning.contains("plaintext auth.json"), "{warning}");
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("store:") && l.contains("auto (in auth.json)")),
        "{stdout}"
    );
    let out = daemon.codexctl(&["status", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(json["daemon"]["storeProblem"]["reason"], "plaintextFallback", "{json}");
    assert_eq!(json["daemon"]["storeLocation"], "file", "{json}");
    for output in [&stdout, &text(&out.stdout)] {
        assert!(!output.contains(key), "codexctl status printed the key");
    }
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_logout_with_an_unreachable_keyring_deletes_auth_json_and_names_the_keyring_failure() {
    let key = "sk-SECRETMARK-auto-logout";
    let daemon = without_dbus("auto").auth_json(apikey_auth_json(key)).start();
    let mut sub = daemon.subscriber();
    // Read from the file although the keyring failed.
    let status = sub.auth_status(true);
    assert_eq!(status["authToken"], key, "{status}");
    let status = daemon.status();
    assert_eq!(status["storeLocation"], "file", "{status}");
    assert_eq!(status["storeProblem"]["reason"], "plaintextFallback", "{status}");

    assert_eq!(sub.call("account/logout", Value::Null), json!({}), "the keyring failure failed the logout");
    assert!(!daemon.auth_path().exists(), "auth.json survived the logout");
    let update = wait_for_notification(&mut sub, "account/updated", LOGIN_DEADLINE);
    assert_eq!((update["authMode"].clone(), update["reason"].clone()), (Value::Null, json!("logout")), "{update}");
    let status = daemon.status();
    assert_eq!(status["storeProblem"]["reason"], "keyringUnavailable", "{status}");
    assert_eq!(status.get("storeLocation"), None, "{status}");
    assert_eq!(sub.auth_status(true)["authMethod"], Value::Null);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_logout_with_a_locked_keyring_deletes_auth_json_and_leaves_the_entry() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let file_key = "sk-SECRETMARK-auto-locked-file";
    let mut daemon = on_bus(&keyring, "auto").auth_json(apikey_auth_json(file_key)).start();
    let keyring_key = "sk-SECRETMARK-auto-locked-entry";
    let account = stop_with_entry(&mut daemon, &keyring, &apikey_entry(keyring_key));
    lock(&keyring);
    daemon.restart();
    let mut sub = daemon.subscriber();
    // The keyring is locked: the file is what can be read.
    assert_eq!(sub.auth_status(true)["authToken"], file_key);

    assert_eq!(sub.call("account/logout", Value::Null), json!({}));
    assert!(!daemon.auth_path().exists(), "auth.json survived the logout");
    let problem = daemon.status()["storeProblem"].clone();
    assert_eq!(problem["reason"], "keyringLocked", "{problem}");
    assert!(problem["message"].as_str().unwrap().contains("keyring"), "{problem}");
    // The locked entry could not be removed.
    assert_eq!(keyring.items(CODEX_SERVICE, &account).len(), 1);
    assert_stderr_clean(&daemon, &key_secrets(&[file_key, keyring_key]));
}

#[test]
fn the_keyring_is_preferred_to_auth_json_when_it_works() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let file_key = "sk-SECRETMARK-auto-file";
    let mut daemon = on_bus(&keyring, "auto").auth_json(apikey_auth_json(file_key)).start();
    let keyring_key = "sk-SECRETMARK-auto-keyring";
    let account = restart_with_entry(&mut daemon, &keyring, &apikey_entry(keyring_key));
    let mut sub = daemon.subscriber();
    assert_eq!(sub.auth_status(true)["authToken"], keyring_key, "auto read auth.json before the keyring");
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("auto"), json!("keyring")));
    assert_eq!(status.get("storeProblem"), None, "{status}");

    // A login goes to the keyring, and the plaintext copy goes away.
    let key = "sk-SECRETMARK-auto-new";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    assert_eq!(only_item(&keyring, &account).secret, apikey_entry(key));
    assert!(!daemon.auth_path().exists(), "a keyring save left the plaintext auth.json behind");
    let status = daemon.status();
    assert_eq!(status["storeLocation"], "keyring", "{status}");
    assert_eq!(status.get("storeProblem"), None, "{status}");
    assert_eq!(sub.auth_status(true)["authToken"], key);
    assert_stderr_clean(&daemon, &key_secrets(&[file_key, keyring_key, key]));
}

#[test]
fn an_empty_keyring_falls_back_to_auth_json_without_a_warning() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let fixture = AuthFixture::default();
    let daemon = on_bus(&keyring, "auto").auth_json(chatgpt_auth_json(&fixture)).start();
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], fixture.access_token());
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("auto"), json!("file")));
    assert_eq!(status.get("storeProblem"), None, "an empty keyring is no problem: {status}");
    assert!(keyring.items(CODEX_SERVICE, &codex_account(daemon.home())).is_empty(), "reading wrote to the keyring");
    assert_stderr_clean(&daemon, &secrets_of(&chatgpt_auth_json(&fixture)));
}

/// A daemon in `auto` mode with nothing in `auth.json` and a keyring that fails with `reason`.
fn assert_keyring_error_not_logged_out(daemon: &TestDaemon, reason: &str) {
    let (status, took) = timed_status(daemon);
    assert!(took < AT_ONCE, "getAuthStatus took {took:?}");
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], reason, "a failing keyring read as logged out: {status}");
    let daemon_status = daemon.status();
    assert_eq!(daemon_status["store"], "auto");
    assert_eq!(daemon_status["storeProblem"]["reason"], reason, "{daemon_status}");
}

#[test]
fn no_dbus_and_no_auth_json_is_keyring_unavailable_not_logged_out() {
    let daemon = without_dbus("auto").start();
    assert_keyring_error_not_logged_out(&daemon, "keyringUnavailable");
}

#[test]
fn a_locked_keyring_and_no_auth_json_is_keyring_locked_not_logged_out() {
    if !available() {
        return;
    }
    // The Codex CLI's entry is there, locked away (a locked keyring without the entry simply has no login).
    let keyring = SecretService::start();
    let mut daemon = on_bus(&keyring, "auto").start();
    let key = "sk-SECRETMARK-auto-locked-only";
    stop_with_entry(&mut daemon, &keyring, &apikey_entry(key));
    lock(&keyring);
    daemon.restart();
    assert_keyring_error_not_logged_out(&daemon, "keyringLocked");
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_hung_keyring_and_no_auth_json_is_keyring_timeout_not_logged_out() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let mut daemon = on_bus(&keyring, "auto").start();
    let key = "sk-SECRETMARK-auto-hung";
    stop_with_entry(&mut daemon, &keyring, &apikey_entry(key));
    keyring.freeze();
    let started = std::time::Instant::now();
    daemon.restart();
    assert!(started.elapsed() < KEYRING_TIMEOUT * 3, "startup waited {:?}", started.elapsed());
    assert_keyring_error_not_logged_out(&daemon, "keyringTimeout");
    keyring.thaw();
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn the_same_login_moving_between_auth_json_and_the_keyring_is_no_change() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let fixture = AuthFixture::default();
    let file = chatgpt_auth_json(&fixture);
    let daemon = on_bus(&keyring, "auto").auth_json(file.clone()).start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["storeLocation"], "file");

    // The Codex CLI moves the same login into the keyring (compact JSON there, pretty in the file) ...
    keyring.store_codex_entry(&account, &compact(&file));
    wait_for_daemon_status(&daemon, "codexd to read the login from the keyring", |s| s["storeLocation"] == "keyring");
    // ... and deletes the file.
    remove_auth(daemon.home());
    sub.assert_silent_for(Duration::from_millis(600));
    let status = sub.auth_status(true);
    assert_eq!((status["authToken"].clone(), status["generation"].clone()), (json!(fixture.access_token()), json!(0)));

    // A real change is the next notification, generation 1.
    let other = fixture.with_tag("other");
    keyring.store_codex_entry(&account, &compact(&chatgpt_auth_json(&other)));
    let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
    assert_eq!((update["generation"].clone(), update["reason"].clone()), (json!(1), json!("external")), "{update}");
    assert_eq!(sub.auth_status(true)["authToken"], other.access_token());
    let mut secrets = secrets_of(&file);
    secrets.extend(secrets_of(&chatgpt_auth_json(&other)));
    assert_stderr_clean(&daemon, &secrets);
}
