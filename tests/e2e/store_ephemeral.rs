//! The `ephemeral` credential store: logins live in codexd's memory only. Nothing is written (no `auth.json`, no
//! keyring item), an `auth.json` already there is neither read nor touched, a restart is logged out, and stopping
//! codexd revokes a ChatGPT login's refresh token as a logout does (an API key goes nowhere).

use crate::keyring::{api_key_login, key_secrets, on_bus, store_config};
use codexd_e2e::logins::{LOGIN_DEADLINE, click_through, wait_for_notification, wait_login_completed};
use codexd_e2e::secret_service::{CODEX_SERVICE, SecretService, available, codex_account};
use codexd_e2e::session::{assert_stderr_clean, secrets_of};
use codexd_e2e::{TestDaemon, apikey_auth_json};
use codexd_fake_issuer::{CLIENT_ID, Endpoint, FakeIssuer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` (names relative to it) with its contents.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap_or_else(|e| panic!("cannot list {}: {e}", next.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

fn ephemeral() -> codexd_e2e::TestDaemonBuilder {
    TestDaemon::builder().config_toml(&store_config("ephemeral"))
}

#[test]
fn an_ephemeral_login_is_served_but_nothing_is_written_and_a_restart_is_logged_out() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let mut daemon = on_bus(&keyring, "ephemeral").start();
    let account = codex_account(daemon.home());
    let before = tree(daemon.home());
    let mut sub = daemon.subscriber();

    let key = "sk-SECRETMARK-ephemeral";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    let (updates, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["params"]["reason"], "login");
    let status = sub.auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (json!("apikey"), json!(key)));
    let daemon_status = daemon.status();
    assert_eq!(
        (daemon_status["store"].clone(), daemon_status["storeLocation"].clone()),
        (json!("ephemeral"), json!("memory")),
        "{daemon_status}"
    );

    // Nothing on disk, nothing in the keyring.
    assert!(!daemon.auth_path().exists(), "an ephemeral login wrote auth.json");
    assert_eq!(tree(daemon.home()), before, "an ephemeral login changed CODEX_HOME");
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty(), "an ephemeral login wrote to the keyring");

    daemon.stop();
    daemon.restart();
    let status = daemon.raw_conn().auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (Value::Null, Value::Null), "{status}");
    assert_eq!(daemon.status().get("storeLocation"), None);
    assert_eq!(tree(daemon.home()), before);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn an_auth_json_already_there_is_neither_read_nor_touched() {
    let file_key = "sk-SECRETMARK-ephemeral-file";
    let daemon = ephemeral().auth_json(apikey_auth_json(file_key)).start();
    let mut sub = daemon.subscriber();
    let status = sub.auth_status(true);
    assert_eq!(status["authMethod"], Value::Null, "ephemeral mode read auth.json: {status}");

    let key = "sk-SECRETMARK-ephemeral-memory";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    assert_eq!(sub.auth_status(true)["authToken"], key);
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(file_key), "the login touched auth.json");

    assert_eq!(sub.call("account/logout", Value::Null), json!({}));
    let update = wait_for_notification(&mut sub, "account/updated", LOGIN_DEADLINE);
    assert_eq!(update["reason"], "login", "{update}");
    let update = wait_for_notification(&mut sub, "account/updated", LOGIN_DEADLINE);
    assert_eq!((update["authMode"].clone(), update["reason"].clone()), (Value::Null, json!("logout")), "{update}");
    assert_eq!(sub.auth_status(true)["authMethod"], Value::Null, "the logout served auth.json afterwards");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(file_key), "the logout touched auth.json");
    assert_stderr_clean(&daemon, &key_secrets(&[key, file_key]));
}

#[test]
fn stopping_codexd_revokes_an_ephemeral_chatgpt_login() {
    let issuer = FakeIssuer::start();
    let mut daemon = ephemeral().issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    let (login, page) = click_through(&mut sub, None);
    assert_eq!(page.status, 200, "{page:?}");
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    let token = sub.auth_status(true)["authToken"].as_str().expect("a token after the login").to_owned();
    assert!(!daemon.auth_path().exists(), "an ephemeral login wrote auth.json");
    assert_eq!(issuer.count(Endpoint::Revoke), 0, "revoked before the stop");
    drop(sub);

    assert!(daemon.stop().success(), "codexd did not exit cleanly");
    let requests = issuer.requests_to(Endpoint::Revoke);
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: Value = serde_json::from_str(&requests[0].body).expect("a JSON revoke body");
    assert_eq!(
        (body["token_type_hint"].clone(), body["client_id"].clone()),
        (json!("refresh_token"), json!(CLIENT_ID))
    );
    let revoked = body["token"].as_str().expect("the revoked token").to_owned();
    assert!(revoked.starts_with("rt_fake_"), "not a refresh token the issuer minted");
    assert_eq!(issuer.revoked(), [revoked.as_str()]);
    assert!(!issuer.is_current_refresh_token(&revoked), "the login's refresh token is still alive");

    daemon.restart();
    assert_eq!(daemon.raw_conn().auth_status(true)["authMethod"], Value::Null, "a restart is still logged in");
    assert_eq!(issuer.count(Endpoint::Revoke), 1, "the restart revoked again");
    let tokens = json!({"tokens": {"access_token": token, "refresh_token": revoked}}).to_string();
    assert_stderr_clean(&daemon, &secrets_of(tokens.as_bytes()));
}

#[test]
fn stopping_codexd_sends_an_ephemeral_api_key_nowhere() {
    let issuer = FakeIssuer::start();
    let mut daemon = ephemeral().issuer(issuer.url()).start();
    let key = "sk-SECRETMARK-ephemeral-stop";
    assert_eq!(api_key_login(&mut daemon.raw_conn(), key)["result"], json!({"type": "apiKey"}));
    assert!(daemon.stop().success());
    assert_eq!(issuer.requests(), Vec::new(), "an API key went to the issuer at stop");
    daemon.restart();
    assert_eq!(daemon.raw_conn().auth_status(true)["authMethod"], Value::Null);
    assert!(!daemon.auth_path().exists());
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_file_store_keeps_its_chatgpt_login_across_a_stop_without_revoking_it() {
    // The contrast that makes the ephemeral revoke meaningful: only ephemeral mode treats a stop as a logout.
    let issuer = FakeIssuer::start();
    let mut daemon = TestDaemon::builder().config_toml(&store_config("file")).issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    let (login, _) = click_through(&mut sub, None);
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    let token = sub.auth_status(true)["authToken"].clone();
    drop(sub);
    assert!(daemon.stop().success());
    assert_eq!(issuer.count(Endpoint::Revoke), 0, "a file-store login was revoked at stop");
    daemon.restart();
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], token);
}
