//! The `keyring` credential store against a real Secret Service (gnome-keyring on a private D-Bus session bus):
//! the entry codexd writes is the one the Codex CLI reads (`secret-tool lookup service "Codex Auth" username
//! cli|…`) and the other way round; a ChatGPT login is stored and refreshed there; a keyring that is absent,
//! locked or hung fails what needs it quickly (or after `CODEXD_KEYRING_TIMEOUT_MS`) while the token already
//! held is still served at once; changes made with `secret-tool` are noticed and broadcast. No secret reaches
//! codexd's stderr in any of it.
//!
//! The helpers at the top are shared with `store_auto`, `store_ephemeral` and `store_migrate`.

use codexd_e2e::logins::{LOGIN_DEADLINE, click_through, keys, wait_for_notification, wait_login_completed};
use codexd_e2e::secret_service::{BUS_ENV, CODEX_SERVICE, Item, SecretService, available, codex_account};
use codexd_e2e::session::{assert_stderr_clean, forced, jwt_payload, secrets_of};
use codexd_e2e::text;
use codexd_e2e::{
    AuthFixture, Conn, TestDaemon, TestDaemonBuilder, apikey_auth_json, chatgpt_auth_json, clean_command,
    run_with_deadline, wait_until,
};
use codexd_fake_issuer::{Endpoint, FakeIssuer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `CODEXD_KEYRING_TIMEOUT_MS` of these tests: how long codexd waits for a hung keyring.
pub(crate) const KEYRING_TIMEOUT: Duration = Duration::from_millis(1500);

/// `CODEXD_KEYRING_POLL_MS` of these tests: how often codexd looks for changes other programs made.
pub(crate) const KEYRING_POLL_MS: &str = "200";

/// How long an answer that must not wait for the keyring may take.
pub(crate) const AT_ONCE: Duration = Duration::from_millis(500);

/// How long a failure that must not wait for anything (no bus, a locked keyring) may take.
pub(crate) const QUICKLY: Duration = Duration::from_secs(2);

/// How long codexd may take to notice a change made by another program (several poll intervals, loaded machine).
pub(crate) const NOTICE: Duration = Duration::from_secs(10);

/// `config.toml` choosing `store`.
pub(crate) fn store_config(store: &str) -> String {
    format!("cli_auth_credentials_store = \"{store}\"\n")
}

/// A daemon on `keyring`'s private bus with `cli_auth_credentials_store = store`, keyring calls bounded by
/// [`KEYRING_TIMEOUT`], the keyring polled every [`KEYRING_POLL_MS`] ms, and logging at `trace` (the keyring and
/// D-Bus crates included) so that the secret checks see everything codexd could print.
pub(crate) fn on_bus(keyring: &SecretService, store: &str) -> TestDaemonBuilder {
    TestDaemon::builder()
        .log("trace")
        .env(BUS_ENV, keyring.bus_address())
        .env("CODEXD_KEYRING_TIMEOUT_MS", KEYRING_TIMEOUT.as_millis().to_string())
        .env("CODEXD_KEYRING_POLL_MS", KEYRING_POLL_MS)
        .config_toml(&store_config(store))
}

/// A daemon with no D-Bus session at all: its bus address names a socket that does not exist. (Leaving the
/// variable unset would be the same on a headless machine, but on a desktop a client may fall back to
/// `/run/user/<uid>/bus`, the developer's real keyring.)
pub(crate) fn without_dbus(store: &str) -> TestDaemonBuilder {
    TestDaemon::builder()
        .log("trace")
        .env(BUS_ENV, "unix:path=/nonexistent/codexd-e2e/no-session-bus")
        .env("CODEXD_KEYRING_TIMEOUT_MS", KEYRING_TIMEOUT.as_millis().to_string())
        .env("CODEXD_KEYRING_POLL_MS", KEYRING_POLL_MS)
        .config_toml(&store_config(store))
}

/// The keyring value of an API-key login: the Codex CLI's compact JSON, exactly.
pub(crate) fn apikey_entry(key: &str) -> String {
    format!(r#"{{"auth_mode":"apikey","OPENAI_API_KEY":"{key}"}}"#)
}

/// The compact JSON of an `auth.json` document (keys in the file's order), as the Codex CLI stores it in the
/// keyring.
pub(crate) fn compact(auth_json: &[u8]) -> String {
    let doc: Value = serde_json::from_slice(auth_json).expect("auth.json is JSON");
    serde_json::to_string(&doc).expect("JSON encodes")
}

/// The attributes the Codex CLI (keyring v3.6.3) gives its entry for `account`.
pub(crate) fn codex_attributes(account: &str) -> BTreeMap<String, String> {
    [("service", CODEX_SERVICE), ("username", account), ("target", "default"), ("application", "rust-keyring")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The one Codex entry of `account`; panics when there is none or more than one.
pub(crate) fn only_item(keyring: &SecretService, account: &str) -> Item {
    let mut items = keyring.items(CODEX_SERVICE, account);
    assert_eq!(
        items.len(),
        1,
        "expected exactly one keyring item for {account}, got {} ({:?})",
        items.len(),
        labels(&items)
    );
    items.remove(0)
}

fn labels(items: &[Item]) -> Vec<&str> {
    items.iter().map(|item| item.label.as_str()).collect()
}

/// Polls `secret-tool lookup` until the entry of `account` satisfies `ok`; returns it.
pub(crate) fn wait_for_entry(
    keyring: &SecretService,
    account: &str,
    what: &str,
    mut ok: impl FnMut(Option<&str>) -> bool,
) -> Option<String> {
    let mut last = None;
    wait_until(NOTICE, what, || {
        last = keyring.lookup(CODEX_SERVICE, account);
        ok(last.as_deref())
    });
    last
}

/// `getAuthStatus {includeToken: true}` on a fresh connection, and how long it took.
pub(crate) fn timed_status(daemon: &TestDaemon) -> (Value, Duration) {
    let mut conn = daemon.raw_conn();
    let started = Instant::now();
    let status = conn.auth_status(true);
    (status, started.elapsed())
}

/// Polls `daemon/status` until `ok`; returns the last answer.
pub(crate) fn wait_for_daemon_status(daemon: &TestDaemon, what: &str, mut ok: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    wait_until(NOTICE, what, || {
        last = daemon.status();
        ok(&last)
    });
    last
}

/// Starts an API-key login on `conn` and returns the whole JSON-RPC response (result or error).
pub(crate) fn api_key_login(conn: &mut Conn, key: &str) -> Value {
    conn.request("account/login/start", json!({"type": "apiKey", "apiKey": key}))
}

/// Asserts a `-32007 storeError` reply and returns its message.
pub(crate) fn store_error_message(response: &Value) -> String {
    let error = response.get("error").unwrap_or_else(|| panic!("expected a storeError, got {response}"));
    assert_eq!(
        (error["code"].clone(), error["data"]["reason"].clone()),
        (json!(-32007), json!("storeError")),
        "{response}"
    );
    error["message"].as_str().unwrap_or_else(|| panic!("an error without a message: {response}")).to_owned()
}

/// The secrets of API keys, to search output for.
pub(crate) fn key_secrets(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// Locks `keyring`'s `login` collection (`org.freedesktop.Secret.Service.Lock`, sent with `dbus-send`, which comes
/// with `dbus-daemon`), as a screen locker would. There is no prompter on the bus, so it stays locked.
pub(crate) fn lock(keyring: &SecretService) {
    let mut cmd = clean_command("dbus-send", keyring.dir());
    cmd.env(BUS_ENV, keyring.bus_address()).args([
        "--session",
        "--print-reply",
        "--dest=org.freedesktop.secrets",
        "/org/freedesktop/secrets",
        "org.freedesktop.Secret.Service.Lock",
        "array:objpath:/org/freedesktop/secrets/collection/login",
    ]);
    let out = run_with_deadline(cmd, Duration::from_secs(10));
    assert!(out.status.success(), "dbus-send Lock failed ({}): {}\n{}", out.status, text(&out.stderr), keyring.logs());
    // The lock is immediate: a store fails from now on.
    let probe = keyring.secret_tool(&["store", "--label=probe", "service", "codexd-e2e-lock-probe"], Some(b"x"));
    assert!(!probe.status.success(), "the keyring still accepts items after Lock\n{}", keyring.logs());
}

/// Stops `daemon` and plants `value` as the Codex CLI's keyring entry of its home (the home is made by the
/// builder, so the entry can only be planted once the daemon knows it). Returns the keyring account. The caller
/// may lock or freeze the keyring, or write `auth.json`, before its `daemon.restart()`.
pub(crate) fn stop_with_entry(daemon: &mut TestDaemon, keyring: &SecretService, value: &str) -> String {
    let account = codex_account(daemon.home());
    daemon.stop();
    keyring.store_codex_entry(&account, value);
    account
}

/// [`stop_with_entry`], then starts the daemon again, which reads the entry at startup.
pub(crate) fn restart_with_entry(daemon: &mut TestDaemon, keyring: &SecretService, value: &str) -> String {
    let account = stop_with_entry(daemon, keyring, value);
    daemon.restart();
    account
}

#[test]
fn an_api_key_login_is_stored_as_the_codex_cli_entry_and_a_stale_auth_json_is_removed() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let stale = "sk-SECRETMARK-stale-file";
    let daemon = on_bus(&keyring, "keyring").auth_json(apikey_auth_json(stale)).start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();

    // keyring mode reads the keyring only: the auth.json there is not the login.
    let status = sub.auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (Value::Null, Value::Null), "{status}");
    assert!(daemon.auth_path().exists(), "codexd removed an auth.json it does not use before any login");

    let key = "sk-SECRETMARK-keyring-login";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    let (_, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");

    // What the Codex CLI reads back with `secret-tool lookup service "Codex Auth" username cli|…`.
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), Some(apikey_entry(key)));
    let item = only_item(&keyring, &account);
    assert_eq!(item.attributes, codex_attributes(&account), "not the attributes the Codex CLI searches on");
    assert_eq!(item.secret, apikey_entry(key));
    assert!(!daemon.auth_path().exists(), "the stale auth.json survived a keyring login");

    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("keyring"), json!("keyring")));
    assert_eq!(status.get("storeProblem"), None, "{status}");
    assert_eq!(sub.auth_status(true)["authToken"], key);
    assert_stderr_clean(&daemon, &key_secrets(&[key, stale]));
}

#[test]
fn an_entry_the_codex_cli_wrote_is_served_and_left_as_it_is() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let fixture = AuthFixture { account_id: "acct-from-cli".into(), plan: "pro".into(), ..AuthFixture::default() };
    let value = compact(&chatgpt_auth_json(&fixture));
    // The CODEX_HOME is made by the builder, so the entry is planted once the daemon knows its home; the
    // daemon then starts again to read it at startup, as it would after `codex login` with the keyring.
    let mut daemon = on_bus(&keyring, "keyring").start();
    let account = restart_with_entry(&mut daemon, &keyring, &value);

    let status = daemon.raw_conn().auth_status(true);
    assert_eq!(status["authMethod"], "chatgpt", "{status}");
    assert_eq!(status["authToken"], fixture.access_token());
    assert_eq!((status["accountId"].clone(), status["planType"].clone()), (json!("acct-from-cli"), json!("pro")));
    assert_eq!(daemon.status()["storeLocation"], "keyring");
    let out = daemon.codexctl(&["token"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, format!("{}\n", fixture.access_token()).into_bytes(), "codexctl token");

    // Reading it changed nothing: the Codex CLI's own item, label and all.
    let item = only_item(&keyring, &account);
    assert_eq!(item.secret, value);
    assert_eq!(item.label, format!("{account}@Codex Auth:default (keyring v3.6.3)"));
    assert!(!daemon.auth_path().exists());
    assert_stderr_clean(&daemon, &secrets_of(&chatgpt_auth_json(&fixture)));
}

#[test]
fn a_login_replaces_the_codex_cli_entry_instead_of_adding_a_second_one() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let mut daemon = on_bus(&keyring, "keyring").start();
    let old = "sk-SECRETMARK-written-by-codex";
    let account = restart_with_entry(&mut daemon, &keyring, &apikey_entry(old));
    let mut sub = daemon.subscriber();
    assert_eq!(sub.auth_status(true)["authToken"], old);

    let new = "sk-SECRETMARK-written-by-codexd";
    assert_eq!(api_key_login(&mut sub, new)["result"], json!({"type": "apiKey"}));
    // One item, holding the new login: two would make the Codex CLI's lookup ambiguous.
    let item = only_item(&keyring, &account);
    assert_eq!(item.secret, apikey_entry(new));
    assert_eq!(item.attributes, codex_attributes(&account));
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), Some(apikey_entry(new)));
    assert_eq!(sub.auth_status(true)["authToken"], new);
    assert_stderr_clean(&daemon, &key_secrets(&[old, new]));
}

#[test]
fn a_chatgpt_login_is_stored_in_the_keyring_and_refreshed_there() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let daemon = on_bus(&keyring, "keyring").issuer(issuer.url()).start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();

    let (login, page) = click_through(&mut sub, None);
    assert_eq!(page.status, 200, "{page:?}");
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");

    // The whole document as one compact JSON value with the file's keys, and no auth.json.
    let stored = keyring.lookup(CODEX_SERVICE, &account).expect("no keyring entry after a ChatGPT login");
    let doc: Value = serde_json::from_str(&stored).expect("the keyring value is JSON");
    assert_eq!(serde_json::to_string(&doc).unwrap(), stored, "the keyring value is not compact JSON");
    assert_eq!(keys(&doc), ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]);
    assert_eq!(
        keys(&doc["tokens"]),
        ["id_token", "access_token", "refresh_token", "oauth_provenance", "login_owner_id", "account_id"]
    );
    assert_eq!(doc["auth_mode"], "chatgpt");
    assert_eq!(doc["tokens"]["account_id"], "acct-fake-0001");
    assert!(!daemon.auth_path().exists(), "a keyring login wrote auth.json");
    let first_access = doc["tokens"]["access_token"].as_str().unwrap().to_owned();
    let first_refresh = doc["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    assert!(issuer.is_current_refresh_token(&first_refresh));
    assert_eq!(sub.auth_status(true)["authToken"], first_access.as_str());
    assert_eq!(only_item(&keyring, &account).attributes, codex_attributes(&account));

    // A refresh rotates the tokens in the keyring; the token served is the new one.
    let refreshed = sub.call("getAuthStatus", forced());
    assert_eq!(issuer.count(Endpoint::Refresh), 1);
    let served = refreshed["authToken"].as_str().expect("a token after the refresh").to_owned();
    assert_ne!(served, first_access, "the refresh served the old token");
    let rotated = wait_for_entry(&keyring, &account, "the refreshed tokens in the keyring", |value| {
        value.is_some_and(|v| !v.contains(&first_refresh))
    })
    .unwrap();
    let rotated: Value = serde_json::from_str(&rotated).unwrap();
    assert_eq!(
        rotated["tokens"]["access_token"],
        served.as_str(),
        "the keyring holds another token than the one served"
    );
    let new_refresh = rotated["tokens"]["refresh_token"].as_str().unwrap();
    assert!(issuer.is_current_refresh_token(new_refresh), "the keyring does not hold the rotated refresh token");
    assert_eq!(keys(&rotated), ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]);
    assert_eq!(jwt_payload(&served)["iss"], issuer.url());
    assert_eq!(only_item(&keyring, &account).attributes, codex_attributes(&account), "the refresh added an item");
    assert!(!daemon.auth_path().exists(), "a refresh in keyring mode wrote auth.json");
    assert_eq!(sub.auth_status(true)["authToken"], served.as_str());

    let mut secrets = secrets_of(stored.as_bytes());
    secrets.extend(secrets_of(serde_json::to_vec(&rotated).unwrap().as_slice()));
    assert_stderr_clean(&daemon, &secrets);
}

#[test]
fn logout_removes_the_keyring_entry_and_auth_json() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    let key = "sk-SECRETMARK-logout";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert!(keyring.lookup(CODEX_SERVICE, &account).is_some());
    // A copy left in auth.json by an older Codex goes too.
    let file_key = "sk-SECRETMARK-logout-file";
    std::fs::write(daemon.auth_path(), apikey_auth_json(file_key)).unwrap();

    assert_eq!(sub.call("account/logout", Value::Null), json!({}));
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), None, "the keyring entry survived the logout");
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty());
    assert!(!daemon.auth_path().exists(), "auth.json survived the logout");
    let update = wait_for_notification(&mut sub, "account/updated", LOGIN_DEADLINE);
    assert_eq!((update["authMode"].clone(), update["reason"].clone()), (Value::Null, json!("logout")), "{update}");
    assert_eq!(sub.auth_status(true)["authMethod"], Value::Null);
    assert_stderr_clean(&daemon, &key_secrets(&[key, file_key]));
}

#[test]
fn without_dbus_the_keyring_is_unavailable_at_once_and_a_login_fails() {
    let started = Instant::now();
    let daemon = without_dbus("keyring").start();
    assert!(started.elapsed() < QUICKLY + Duration::from_secs(1), "startup took {:?}", started.elapsed());
    let (status, took) = timed_status(&daemon);
    assert!(took < AT_ONCE, "getAuthStatus took {took:?}");
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], "keyringUnavailable", "{status}");
    let daemon_status = daemon.status();
    assert_eq!(daemon_status["store"], "keyring");
    assert_eq!(daemon_status["storeProblem"]["reason"], "keyringUnavailable", "{daemon_status}");
    assert_eq!(daemon_status.get("storeLocation"), None, "{daemon_status}");

    let key = "sk-SECRETMARK-no-dbus";
    let mut conn = daemon.raw_conn();
    let started = Instant::now();
    let message = store_error_message(&api_key_login(&mut conn, key));
    assert!(started.elapsed() < QUICKLY, "the failed login took {:?}", started.elapsed());
    assert!(message.contains("keyring"), "{message}");
    assert!(!message.contains(key), "the error quotes the key: {message}");
    assert!(!daemon.auth_path().exists(), "keyring mode fell back to auth.json");

    // codexctl says it failed (exit 1), and the same failure.
    let out = daemon
        .spawn_codexctl(&["login", "--with-api-key"], Some(format!("{key}\n").as_bytes()))
        .wait_output(LOGIN_DEADLINE);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("codexctl: "), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("keyring"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains(key));
    assert!(!daemon.auth_path().exists());
    assert_eq!(daemon.raw_conn().auth_status(true)["authMethod"], Value::Null);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_bus_without_a_secret_service_is_unavailable_at_once() {
    if !available() {
        return;
    }
    let keyring = SecretService::start_without_provider();
    let daemon = on_bus(&keyring, "keyring").start();
    let (status, took) = timed_status(&daemon);
    assert!(took < AT_ONCE, "getAuthStatus took {took:?}");
    assert_eq!(status["authError"]["reason"], "keyringUnavailable", "{status}");
    let key = "sk-SECRETMARK-no-provider";
    let started = Instant::now();
    store_error_message(&api_key_login(&mut daemon.raw_conn(), key));
    assert!(started.elapsed() < QUICKLY, "the failed login took {:?}", started.elapsed());
    assert_eq!(daemon.status()["storeProblem"]["reason"], "keyringUnavailable");
    assert!(!daemon.auth_path().exists());
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_locked_keyring_is_reported_at_once_and_a_login_fails_without_touching_it() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let mut daemon = on_bus(&keyring, "keyring").start();
    // The Codex CLI's entry exists, but the collection is locked and no unlock prompt can be answered.
    let seeded = "sk-SECRETMARK-locked-away";
    let account = stop_with_entry(&mut daemon, &keyring, &apikey_entry(seeded));
    lock(&keyring);
    let started = Instant::now();
    daemon.restart();
    assert!(started.elapsed() < QUICKLY, "startup took {:?}", started.elapsed());

    let (status, took) = timed_status(&daemon);
    assert!(took < AT_ONCE, "getAuthStatus took {took:?}");
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], "keyringLocked", "{status}");
    assert_eq!(daemon.status()["storeProblem"]["reason"], "keyringLocked");

    let key = "sk-SECRETMARK-locked-login";
    let started = Instant::now();
    let message = store_error_message(&api_key_login(&mut daemon.raw_conn(), key));
    assert!(started.elapsed() < QUICKLY, "the failed login took {:?}", started.elapsed());
    assert!(message.contains("locked"), "{message}");
    assert!(!daemon.auth_path().exists(), "keyring mode fell back to auth.json");
    // The Codex CLI's entry is still there, still one item (locked: its attributes are hashed).
    assert_eq!(keyring.items(CODEX_SERVICE, &account).len(), 1);
    assert_stderr_clean(&daemon, &key_secrets(&[key, seeded]));
}

#[test]
fn a_keyring_locked_while_running_keeps_serving_the_login_held_and_refuses_a_logout() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    let key = "sk-SECRETMARK-held-while-locked";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    let (_, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");

    lock(&keyring);
    // The poller finds the keyring locked; the login held is still served, at once, and nobody is told of a change.
    wait_for_daemon_status(&daemon, "storeProblem keyringLocked", |s| s["storeProblem"]["reason"] == "keyringLocked");
    let (status, took) = timed_status(&daemon);
    assert!(took < AT_ONCE, "getAuthStatus took {took:?}");
    assert_eq!((status["authToken"].clone(), status["generation"].clone()), (json!(key), json!(1)), "{status}");
    assert_eq!(sub.pending_notifications(), 0);

    // A logout cannot remove the entry: it fails, and the login stays.
    let response = sub.request("account/logout", Value::Null);
    let message = store_error_message(&response);
    assert!(message.contains("locked"), "{message}");
    assert_eq!(keyring.items(CODEX_SERVICE, &account).len(), 1, "the entry is gone after a failed logout");
    let status = sub.auth_status(true);
    assert_eq!(status["authToken"], key, "a failed logout dropped the login: {status}");
    sub.assert_silent_for(Duration::from_millis(300));
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn a_hung_keyring_times_out_while_the_token_held_is_served_at_once() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    let held = "sk-SECRETMARK-held-while-frozen";
    assert_eq!(api_key_login(&mut sub, held)["result"], json!({"type": "apiKey"}));
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account), Some(apikey_entry(held)));

    keyring.freeze();
    let wanted = "sk-SECRETMARK-sent-to-a-frozen-keyring";
    let (response, took, answered) = std::thread::scope(|scope| {
        let login = scope.spawn(|| {
            let mut conn = daemon.raw_conn();
            let started = Instant::now();
            let response = api_key_login(&mut conn, wanted);
            (response, started.elapsed())
        });
        // While the keyring call hangs, every getAuthStatus answers at once with the token held.
        let mut answered = 0;
        while !login.is_finished() {
            let (status, took) = timed_status(&daemon);
            assert!(took < AT_ONCE, "getAuthStatus took {took:?} while the keyring hung");
            assert_eq!(status["authToken"], held, "{status}");
            answered += 1;
        }
        let (response, took) = login.join().unwrap();
        (response, took, answered)
    });
    let message = store_error_message(&response);
    assert!(
        took + Duration::from_millis(100) >= KEYRING_TIMEOUT,
        "the login failed after {took:?}, before the timeout"
    );
    assert!(took < KEYRING_TIMEOUT * 3, "the login failed only after {took:?}");
    assert!(answered >= 2, "only {answered} status answers while the keyring hung for {took:?}");
    assert!(message.contains("did not answer within 1500 ms"), "{message}");
    wait_for_daemon_status(&daemon, "storeProblem keyringTimeout", |s| s["storeProblem"]["reason"] == "keyringTimeout");
    assert_eq!(timed_status(&daemon).0["authToken"], held);

    // Once it answers again, the problem clears and codexd serves what the keyring holds.
    keyring.thaw();
    let status = wait_for_daemon_status(&daemon, "storeProblem to clear", |s| s.get("storeProblem").is_none());
    assert_eq!(status["storeLocation"], "keyring");
    let stored = keyring.lookup(CODEX_SERVICE, &account).expect("the entry");
    let mut served = Value::Null;
    wait_until(NOTICE, "codexd to serve what the keyring holds", || {
        served = daemon.raw_conn().auth_status(true)["authToken"].clone();
        served.as_str().map(apikey_entry).as_deref() == Some(stored.as_str())
    });
    assert_stderr_clean(&daemon, &key_secrets(&[held, wanted]));
}

#[test]
fn a_keyring_hung_at_startup_reports_a_timeout_and_the_login_appears_once_it_answers() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let mut daemon = on_bus(&keyring, "keyring").start();
    let key = "sk-SECRETMARK-behind-a-hung-keyring";
    stop_with_entry(&mut daemon, &keyring, &apikey_entry(key));
    keyring.freeze();
    let started = Instant::now();
    daemon.restart();
    let took = started.elapsed();
    assert!(took < KEYRING_TIMEOUT * 3, "startup waited {took:?} for a hung keyring");

    let (status, took) = timed_status(&daemon);
    assert!(took < AT_ONCE, "getAuthStatus took {took:?}");
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], "keyringTimeout", "{status}");
    let mut sub = daemon.subscriber();

    keyring.thaw();
    let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
    assert_eq!(
        (update["authMode"].clone(), update["reason"].clone()),
        (json!("apikey"), json!("external")),
        "{update}"
    );
    assert_eq!(sub.auth_status(true)["authToken"], key);
    assert_eq!(daemon.status().get("storeProblem"), None);
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

#[test]
fn changes_made_with_secret_tool_are_noticed_and_broadcast() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut subscribers: Vec<Conn> = (0..2).map(|_| daemon.subscriber()).collect();

    // `codex login --with-api-key` with the keyring store: a new entry.
    let first = "sk-SECRETMARK-external-1";
    keyring.store_codex_entry(&account, &apikey_entry(first));
    for (i, sub) in subscribers.iter_mut().enumerate() {
        let update = wait_for_notification(sub, "account/updated", NOTICE);
        assert_eq!(
            update,
            json!({"authMode": "apikey", "planType": null, "accountId": null, "generation": 1, "reason": "external"}),
            "subscriber {i}"
        );
    }
    assert_eq!(subscribers[0].auth_status(true)["authToken"], first);

    // A ChatGPT login replaces it.
    let fixture = AuthFixture { account_id: "acct-ext-keyring".into(), ..AuthFixture::default() };
    keyring.store_codex_entry(&account, &compact(&chatgpt_auth_json(&fixture)));
    for (i, sub) in subscribers.iter_mut().enumerate() {
        let update = wait_for_notification(sub, "account/updated", NOTICE);
        assert_eq!(
            update,
            json!({"authMode": "chatgpt", "planType": "plus", "accountId": "acct-ext-keyring", "generation": 2,
                   "reason": "external"}),
            "subscriber {i}"
        );
    }
    assert_eq!(subscribers[1].auth_status(true)["authToken"], fixture.access_token());

    // `codex logout`: the entry is cleared.
    keyring.clear(CODEX_SERVICE, &account);
    for (i, sub) in subscribers.iter_mut().enumerate() {
        let update = wait_for_notification(sub, "account/updated", NOTICE);
        assert_eq!(
            update,
            json!({"authMode": null, "planType": null, "accountId": null, "generation": 3, "reason": "external"}),
            "subscriber {i}"
        );
    }
    assert_eq!(subscribers[0].auth_status(true)["authMethod"], Value::Null);
    let mut secrets = key_secrets(&[first]);
    secrets.extend(secrets_of(&chatgpt_auth_json(&fixture)));
    assert_stderr_clean(&daemon, &secrets);
}

#[test]
fn rewriting_the_same_entry_is_no_change() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    let key = "sk-SECRETMARK-same-entry";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    let (_, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true);
    // The Codex CLI stores the same login again (its own item label, the same value).
    keyring.store_codex_entry(&account, &apikey_entry(key));
    // Several poll intervals: nothing to tell.
    sub.assert_silent_for(Duration::from_secs(1));
    let other = "sk-SECRETMARK-other-entry";
    keyring.store_codex_entry(&account, &apikey_entry(other));
    let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
    assert_eq!((update["generation"].clone(), update["reason"].clone()), (json!(2), json!("external")), "{update}");
    assert_stderr_clean(&daemon, &key_secrets(&[key, other]));
}

#[test]
fn another_codex_homes_entry_and_auth_json_changes_are_not_the_login() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    // The entry of another CODEX_HOME (same service, another account) is someone else's login.
    let elsewhere = "sk-SECRETMARK-other-home";
    keyring.store_codex_entry("cli|0123456789abcdef", &apikey_entry(elsewhere));
    // And in keyring mode auth.json is not the store: writing one changes nothing.
    let file_key = "sk-SECRETMARK-ignored-file";
    codexd_e2e::write_atomically(daemon.home(), &apikey_auth_json(file_key));
    sub.assert_silent_for(Duration::from_millis(600));
    assert_eq!(sub.auth_status(true)["authMethod"], Value::Null);

    // The entry of this home is, and it is the next notification.
    let key = "sk-SECRETMARK-this-home";
    keyring.store_codex_entry(&account, &apikey_entry(key));
    let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
    assert_eq!((update["generation"].clone(), update["authMode"].clone()), (json!(1), json!("apikey")), "{update}");
    assert_eq!(sub.auth_status(true)["authToken"], key);
    assert_eq!(keyring.lookup(CODEX_SERVICE, "cli|0123456789abcdef"), Some(apikey_entry(elsewhere)));
    assert_stderr_clean(&daemon, &key_secrets(&[elsewhere, file_key, key]));
}

#[test]
fn an_entry_that_is_not_json_is_reported_without_quoting_it() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").start();
    let account = codex_account(daemon.home());
    let mut sub = daemon.subscriber();
    let garbage = r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-SECRETMARK-truncated"#;
    keyring.store_codex_entry(&account, garbage);
    let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
    assert_eq!((update["authMode"].clone(), update["reason"].clone()), (Value::Null, json!("external")), "{update}");
    let problem = update["authError"].clone();
    assert!(problem["reason"].is_string(), "an unusable entry without authError: {update}");
    let status = sub.auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (Value::Null, Value::Null));
    assert_eq!(status["authError"], problem, "{status}");
    assert!(!problem.to_string().contains("SECRETMARK"), "the problem quotes the entry: {problem}");
    // The entry is left for the user to fix; a login replaces it.
    assert_eq!(keyring.lookup(CODEX_SERVICE, &account).as_deref(), Some(garbage));
    let key = "sk-SECRETMARK-after-garbage";
    assert_eq!(api_key_login(&mut sub, key)["result"], json!({"type": "apiKey"}));
    assert_eq!(only_item(&keyring, &account).secret, apikey_entry(key));
    assert_stderr_clean(&daemon, &key_secrets(&["sk-SECRETMARK-truncated", key]));
}
