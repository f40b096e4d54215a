//! `codexctl store migrate --to keyring|file` (`store/migrate`): the login moves without a logout and without a
//! notification, `cli_auth_credentials_store` is set in `$CODEX_HOME/config.toml` with every other line kept, and
//! the old copy goes. A move that fails half way (a locked keyring, a config.toml that cannot be edited) changes
//! nothing: the login is still served, `auth.json` and `config.toml` are unchanged byte for byte, and no keyring
//! item is left. A store pinned by managed config cannot be moved away from.

use crate::keyring::{
    apikey_entry, codex_attributes, compact, key_secrets, on_bus, only_item, restart_with_entry, store_config,
    wait_for_daemon_status,
};
use codexd_e2e::logins::{LOGIN_DEADLINE, read_auth_json, wait_for_notification};
use codexd_e2e::secret_service::{BUS_ENV, CODEX_SERVICE, SecretService, available, codex_account};
use codexd_e2e::session::{assert_stderr_clean, secrets_of};
use codexd_e2e::text;
use codexd_e2e::{AuthFixture, Conn, TestDaemon, apikey_auth_json, chatgpt_auth_json, write_atomically};
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

/// Long enough for a keyring poll, the config watcher and the auth.json watcher to have reacted to a move.
const QUIET: Duration = Duration::from_millis(600);

fn migrate(daemon: &TestDaemon, to: &str) -> Output {
    daemon.codexctl(&["store", "migrate", "--to", to])
}

/// Asserts codexctl succeeded and printed exactly `line` (on stderr, as every codexctl report).
fn assert_reported(out: &Output, line: &str) {
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), format!("codexctl: {line}\n"));
    assert_eq!(text(&out.stdout), "");
}

/// Asserts codexctl failed with exit 1 and a one-line `codexctl: ...` message containing each of `parts`.
fn assert_refused(out: &Output, parts: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.starts_with("codexctl: ") && stderr.ends_with('\n') && stderr.lines().count() == 1, "{stderr:?}");
    for part in parts {
        assert!(stderr.contains(part), "{part:?} is not in {stderr:?}");
    }
}

/// `store/migrate` on the wire, expected to fail with `code` and data.reason `reason`; returns the message.
fn migrate_error(daemon: &TestDaemon, to: &str, code: i64, reason: &str) -> String {
    let error = daemon.raw_conn().call_error("store/migrate", json!({"to": to}));
    assert_eq!((error["code"].clone(), error["data"]["reason"].clone()), (json!(code), json!(reason)), "{error}");
    error["message"].as_str().unwrap().to_owned()
}

/// The move told nobody anything: no notification for a while, and the next real change (a logout) is the
/// next notification, with the generation after `generation`.
fn assert_no_notification_then_logout(sub: &mut Conn, generation: u64) {
    sub.assert_silent_for(QUIET);
    assert_eq!(sub.call("account/logout", Value::Null), json!({}));
    let update = wait_for_notification(sub, "account/updated", LOGIN_DEADLINE);
    assert_eq!(
        (update["generation"].clone(), update["reason"].clone()),
        (json!(generation + 1), json!("logout")),
        "the move was announced as a change: {update}"
    );
}

fn config_of(daemon: &TestDaemon) -> String {
    std::fs::read_to_string(daemon.home().join("config.toml")).unwrap_or_else(|e| panic!("config.toml: {e}"))
}

#[test]
fn moving_to_the_keyring_keeps_the_login_and_every_other_config_line_and_tells_nobody() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let config = "# my settings\nmodel = \"o3\"\n\n[tools]\nweb_search = true\n";
    let key = "sk-SECRETMARK-migrate-to-keyring";
    let daemon = on_bus(&keyring, "file").config_toml(config).auth_json(apikey_auth_json(key)).start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["store"], "file");

    assert_reported(&migrate(&daemon, "keyring"), "moved the login from file to keyring");
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), Some(apikey_entry(key)));
    assert_eq!(only_item(&keyring, &account).attributes, codex_attributes(&account));
    assert!(!daemon.auth_path().exists(), "the plaintext copy was left behind");

    // The key is set at the top level (before any table), and every other line is where it was.
    let edited = config_of(&daemon);
    let lines: Vec<&str> = edited.lines().collect();
    let set = lines.iter().position(|l| *l == "cli_auth_credentials_store = \"keyring\"");
    let table = lines.iter().position(|l| *l == "[tools]");
    assert!(set.zip(table).is_some_and(|(s, t)| s < t), "the key is not set at the top level:\n{edited}");
    let others: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("cli_auth_credentials_store")).collect();
    let original: Vec<&str> = config.lines().collect();
    assert_eq!(
        others.iter().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        original.iter().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        "{edited}"
    );

    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("keyring"), json!("keyring")));
    assert_eq!((status.get("storeProblem"), status.get("configProblem")), (None, None), "{status}");
    let auth = sub.auth_status(true);
    assert_eq!((auth["authToken"].clone(), auth["generation"].clone()), (json!(key), json!(0)), "{auth}");
    assert_no_notification_then_logout(&mut sub, 0);
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), None, "the logout after the move left the keyring entry");
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn moving_to_the_file_writes_the_codex_auth_json_removes_the_entry_and_keeps_the_comment() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let fixture = AuthFixture { account_id: "acct-migrate-down".into(), ..AuthFixture::default() };
    let file = chatgpt_auth_json(&fixture);
    let config = "model = \"o3\"\ncli_auth_credentials_store = \"keyring\" # set by me\n";
    let mut daemon = on_bus(&keyring, "keyring").config_toml(config).start();
    let account = restart_with_entry(&mut daemon, &keyring, &compact(&file));
    let mut sub = daemon.subscriber();
    assert_eq!(sub.auth_status(true)["authToken"], fixture.access_token());

    let result = sub.call("store/migrate", json!({"to": "file"}));
    assert_eq!(result, json!({"from": "keyring", "to": "file", "moved": true}));
    // The Codex CLI's file: 0600, pretty, the same document; and no entry left.
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), file, "not the Codex CLI's auth.json");
    read_auth_json(&daemon.auth_path());
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty(), "the keyring entry was left behind");
    assert_eq!(config_of(&daemon), "model = \"o3\"\ncli_auth_credentials_store = \"file\" # set by me\n");
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("file"), json!("file")));
    assert_eq!(sub.auth_status(true)["authToken"], fixture.access_token());

    // The file is the store now: a change to it is noticed, and it is the first notification since the move.
    sub.assert_silent_for(QUIET);
    let other = fixture.with_tag("after-move");
    write_atomically(daemon.home(), &chatgpt_auth_json(&other));
    let update = wait_for_notification(&mut sub, "account/updated", LOGIN_DEADLINE);
    assert_eq!((update["generation"].clone(), update["reason"].clone()), (json!(1), json!("external")), "{update}");
    assert_eq!(sub.auth_status(true)["authToken"], other.access_token());

    let out = daemon.codexctl(&["store", "migrate", "--to", "keyring"]);
    assert_reported(&out, "moved the login from file to keyring");
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), Some(compact(&chatgpt_auth_json(&other))));
    let mut secrets = secrets_of(&file);
    secrets.extend(secrets_of(&chatgpt_auth_json(&other)));
    assert_stderr_clean(&daemon, &secrets);
}

#[test]
fn a_locked_keyring_fails_the_move_and_changes_nothing() {
    if !available() {
        return;
    }
    let keyring = SecretService::start_locked();
    let key = "sk-SECRETMARK-migrate-locked";
    let config = "model = \"o3\"\n";
    let daemon = on_bus(&keyring, "file").config_toml(config).auth_json(apikey_auth_json(key)).start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();

    assert_refused(&migrate(&daemon, "keyring"), &["keyring", "nothing was moved"]);
    let message = migrate_error(&daemon, "keyring", -32007, "storeError");
    assert!(message.contains("locked"), "{message}");
    assert!(!message.contains(key), "the error quotes the key");

    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key), "auth.json changed");
    assert_eq!(config_of(&daemon), config, "config.toml changed");
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty(), "a keyring item was left");
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("file"), json!("file")), "{status}");
    assert_eq!(sub.auth_status(true)["authToken"], key, "the login is not served after a failed move");
    assert_no_notification_then_logout(&mut sub, 0);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_config_toml_that_is_not_toml_fails_the_move_after_the_copy_and_the_copy_is_removed() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let fixture = AuthFixture::default();
    let file = chatgpt_auth_json(&fixture);
    let daemon = on_bus(&keyring, "file").auth_json(file.clone()).start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    // Someone is half way through editing config.toml: codexd keeps the last good configuration.
    let broken = "cli_auth_credentials_store = \"file\"\nmodel = [unclosed\n";
    std::fs::write(daemon.home().join("config.toml"), broken).unwrap();
    wait_for_daemon_status(&daemon, "configProblem", |s| s["configProblem"]["reason"] == "configInvalid");

    assert_refused(&migrate(&daemon, "keyring"), &["cli_auth_credentials_store", "config.toml"]);
    let message = migrate_error(&daemon, "keyring", -32007, "storeError");
    assert!(message.contains("the copy was removed"), "{message}");

    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), file, "auth.json changed");
    assert_eq!(config_of(&daemon), broken, "config.toml changed");
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty(), "the copy in the keyring was left behind");
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("file"), json!("file")), "{status}");
    assert_eq!(sub.auth_status(true)["authToken"], fixture.access_token());
    assert_no_notification_then_logout(&mut sub, 0);
    assert_stderr_clean(&daemon, &secrets_of(&file));
}

#[test]
fn with_nothing_stored_the_move_only_sets_the_store() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    // No config.toml at all: the file store by default.
    let daemon = TestDaemon::builder().env(BUS_ENV, keyring.bus_address()).start();
    let account = codex_account(daemon.home());
    assert_reported(&migrate(&daemon, "keyring"), "nothing was stored; the store is now keyring");
    assert_eq!(config_of(&daemon), store_config("keyring"));
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status.get("storeLocation")), (json!("keyring"), None), "{status}");

    // The next login goes to the keyring.
    let key = "sk-SECRETMARK-migrate-empty";
    let mut conn = daemon.raw_conn();
    assert_eq!(conn.call("account/login/start", json!({"type": "apiKey", "apiKey": key})), json!({"type": "apiKey"}));
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), Some(apikey_entry(key)));
    assert!(!daemon.auth_path().exists());
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn moving_to_the_keyring_the_login_is_already_in_changes_nothing() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let key = "sk-SECRETMARK-migrate-already-keyring";
    let mut daemon = on_bus(&keyring, "keyring").start();
    let account = restart_with_entry(&mut daemon, &keyring, &apikey_entry(key));
    let mut sub = daemon.subscriber();
    assert_reported(&migrate(&daemon, "keyring"), "the login is already in keyring");
    // Still the Codex CLI's own item: not rewritten.
    let item = only_item(&keyring, &account);
    assert_eq!(
        (item.label, item.secret),
        (format!("{account}@Codex Auth:default (keyring v3.6.3)"), apikey_entry(key))
    );
    assert!(!daemon.auth_path().exists());
    assert_eq!(config_of(&daemon), store_config("keyring"));
    assert_no_notification_then_logout(&mut sub, 0);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn moving_to_the_file_the_login_is_already_in_changes_nothing() {
    let key = "sk-SECRETMARK-migrate-already-file";
    let daemon = TestDaemon::builder().config_toml(&store_config("file")).auth_json(apikey_auth_json(key)).start();
    let mut sub = daemon.subscriber();
    assert_reported(&migrate(&daemon, "file"), "the login is already in file");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key));
    assert_eq!(config_of(&daemon), store_config("file"));
    assert_no_notification_then_logout(&mut sub, 0);
}

#[test]
fn a_store_pinned_by_managed_config_cannot_be_moved_away() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let key = "sk-SECRETMARK-migrate-managed";
    // The user's config asks for the keyring: only managed_config.toml makes the store `file`.
    let config = "model = \"o3\"\ncli_auth_credentials_store = \"keyring\"\n";
    let daemon = on_bus(&keyring, "keyring")
        .config_toml(config)
        .system_file("managed_config.toml", &store_config("file"))
        .auth_json(apikey_auth_json(key))
        .start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["store"], "file", "managed_config.toml does not decide the store");

    let managed = daemon.system_config_dir().join("managed_config.toml");
    assert_refused(&migrate(&daemon, "keyring"), &["cli_auth_credentials_store", &managed.display().to_string()]);
    let message = migrate_error(&daemon, "keyring", -32002, "policyRefused");
    assert!(message.contains("managed_config.toml"), "{message}");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key));
    assert_eq!(config_of(&daemon), config);
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty());
    assert_eq!(daemon.status()["store"], "file");
    // Moving to the store it is pinned to is no move away.
    assert_reported(&migrate(&daemon, "file"), "the login is already in file");
    assert_no_notification_then_logout(&mut sub, 0);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_store_pinned_by_requirements_cannot_be_moved_away() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let key = "sk-SECRETMARK-migrate-required";
    let mut daemon = on_bus(&keyring, "file").system_file("requirements.toml", &store_config("keyring")).start();
    let account = restart_with_entry(&mut daemon, &keyring, &apikey_entry(key));
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["store"], "keyring", "requirements.toml does not decide the store");
    assert_eq!(sub.auth_status(true)["authToken"], key);

    let requirements = daemon.system_config_dir().join("requirements.toml");
    assert_refused(&migrate(&daemon, "file"), &[&requirements.display().to_string()]);
    migrate_error(&daemon, "file", -32002, "policyRefused");
    assert!(!daemon.auth_path().exists(), "a refused move wrote auth.json");
    assert_eq!(only_item(&keyring, &account).secret, apikey_entry(key));
    assert_eq!(config_of(&daemon), store_config("file"), "a refused move edited config.toml");
    assert_eq!(daemon.status()["store"], "keyring");
    assert_no_notification_then_logout(&mut sub, 0);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn an_ephemeral_login_moved_to_the_file_outlives_the_daemon_and_is_not_revoked() {
    let issuer = codexd_fake_issuer::FakeIssuer::start();
    let mut daemon = TestDaemon::builder().config_toml(&store_config("ephemeral")).issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    let (login, _) = codexd_e2e::logins::click_through(&mut sub, None);
    let (_, completed) = codexd_e2e::logins::wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    let token = sub.auth_status(true)["authToken"].clone();

    assert_reported(&migrate(&daemon, "file"), "moved the login from memory to file");
    let doc = read_auth_json(&daemon.auth_path());
    assert_eq!(doc["tokens"]["access_token"], token);
    assert_eq!(config_of(&daemon), store_config("file"));
    assert_eq!(daemon.status()["storeLocation"], "file");
    sub.assert_silent_for(QUIET);
    drop(sub);

    // No longer ephemeral: stopping is not a logout.
    assert!(daemon.stop().success());
    assert_eq!(issuer.count(codexd_fake_issuer::Endpoint::Revoke), 0, "the moved login was revoked at stop");
    daemon.restart();
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], token);
}

#[test]
fn a_config_toml_that_is_a_symlink_stays_one() {
    let key = "sk-SECRETMARK-migrate-symlink";
    let daemon = TestDaemon::builder().auth_json(apikey_auth_json(key)).start();
    let dotfiles = tempfile::tempdir().unwrap();
    let target = dotfiles.path().join("codex-config.toml");
    std::fs::write(&target, "model = \"o3\"\n").unwrap();
    let link = daemon.home().join("config.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // Moving to the file store (where the login is) only sets the key, through the link.
    assert_reported(&migrate(&daemon, "file"), "the login is already in file");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "config.toml was replaced by a file");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "model = \"o3\"\ncli_auth_credentials_store = \"file\"\n");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key));
}

#[test]
fn only_keyring_and_file_are_places_to_move_to() {
    let key = "sk-SECRETMARK-migrate-bad-target";
    let daemon = TestDaemon::builder().auth_json(apikey_auth_json(key)).start();
    for to in ["auto", "ephemeral", "bogus", "Keyring"] {
        let message = migrate_error(&daemon, to, -32602, "invalidParams");
        assert!(message.contains("\"keyring\" or \"file\""), "{to}: {message}");
    }
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key));
    assert!(!daemon.home().join("config.toml").exists(), "a refused move wrote config.toml");
    assert_eq!(daemon.status()["store"], "file");
}
