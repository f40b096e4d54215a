//! Regression tests for the review of issue 4's credential stores: in `auto` the newer of the keyring entry and
//! the fallback `auth.json` is the login (review #1); tokens refreshed while the keyring is locked are held in
//! memory, can be rescued with `store migrate --to file` (#2), and are written at shutdown once the keyring is
//! unlocked (#4); a logout that revoked but could not delete stops serving the revoked login (#9); a policy
//! removal that a locked keyring refused is retried once it is unlocked (#11); and a policy tightened and relaxed
//! again while tokens are pending keeps them (#3).
//!
//! Everything is real: gnome-keyring on a private bus (locked with `Lock` over D-Bus and unlocked through its
//! control socket, as pam_gnome_keyring does), the fake issuer on loopback, the codexd and codexctl binaries.
//! Tokens become "pending" by locking the keyring while the issuer holds a forced refresh's answer back, so the
//! redemption succeeds and only the write fails.

use crate::keyring::{
    NOTICE, api_key_login, apikey_entry, compact, key_secrets, lock, on_bus, restart_with_entry, stop_with_entry,
    wait_for_daemon_status,
};
use codexd_e2e::logins::{API_REQUIRED, CHATGPT_REQUIRED, notifications_until, wait_for_notification};
use codexd_e2e::secret_service::{CODEX_SERVICE, SecretService, available, codex_account};
use codexd_e2e::session::{
    access_token_of, assert_presented_distinct, assert_stderr_clean, edit_auth_json, forced, presented_refresh_tokens,
    refresh_token_of, refreshed_elsewhere, secrets_of,
};
use codexd_e2e::{Conn, TestDaemon, TestDaemonBuilder, replace_file, text, wait_until};
use codexd_fake_issuer::{Account, Endpoint, FakeIssuer, Fault, IssuedTokens};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long the fake issuer holds back the answer of the refresh during which the keyring gets locked.
const ISSUER_DELAY: Duration = Duration::from_secs(4);

/// How long a call that waits for the issuer's delayed answer or for `auth.lock` may take (loaded machine).
const SLOW: Duration = Duration::from_secs(30);

/// How long codexd may take to retry a keyring write or delete after an unlock: the keyring poll backs off
/// (doubling from 200 ms) while the keyring is locked, so the next poll may be several seconds away.
const AFTER_UNLOCK: Duration = Duration::from_secs(40);

/// The password of the kit's `login` collection (`SecretService::start` creates it with this one).
const KEYRING_PASSWORD: &str = "codexd-e2e-password";

/// `GKD_CONTROL_OP_UNLOCK` of gnome-keyring's control protocol (daemon/control/gkd-control-codes.h).
const GKD_CONTROL_OP_UNLOCK: u32 = 1;

/// Unlocks the `login` collection without a prompter: gnome-keyring's control socket
/// (`$XDG_RUNTIME_DIR/keyring/control`), a credentials byte, then the `UNLOCK` operation with the password
/// (big-endian packet length, operation, string length, bytes), as pam_gnome_keyring does at a desktop login.
/// Panics unless the daemon answers OK and an item can be stored afterwards.
fn unlock(keyring: &SecretService) {
    let path = keyring.dir().join("run/keyring/control");
    let mut stream = UnixStream::connect(&path)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}\n{}", path.display(), keyring.logs()));
    stream.set_read_timeout(Some(SLOW)).expect("set_read_timeout failed");
    let password = KEYRING_PASSWORD.as_bytes();
    let length = u32::try_from(12 + password.len()).expect("a short password");
    let mut packet = vec![0u8];
    packet.extend(length.to_be_bytes());
    packet.extend(GKD_CONTROL_OP_UNLOCK.to_be_bytes());
    packet.extend(u32::try_from(password.len()).expect("a short password").to_be_bytes());
    packet.extend(password);
    stream.write_all(&packet).expect("cannot send the unlock request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("no answer from gnome-keyring's control socket");
    // `[length = 8][result]`, result 0 = GKD_CONTROL_RESULT_OK.
    assert_eq!(answer, [0, 0, 0, 8, 0, 0, 0, 0], "gnome-keyring refused the unlock\n{}", keyring.logs());
    let probe = ["service", "codexd-e2e-unlock-probe"];
    let stored = keyring.secret_tool(&["store", "--label=probe", probe[0], probe[1]], Some(b"x"));
    assert!(stored.status.success(), "the keyring is still locked after the unlock: {}", text(&stored.stderr));
    keyring.secret_tool(&["clear", probe[0], probe[1]], None);
}

/// A keyring-mode (or `store`-mode) daemon on `keyring`'s bus that refreshes at `issuer`.
fn keyring_daemon(keyring: &SecretService, store: &str, issuer: &FakeIssuer) -> TestDaemonBuilder {
    on_bus(keyring, store).issuer(issuer.url())
}

/// `auth.json` of a fresh login at `issuer` whose `last_refresh` is `age` ago.
fn login_json(issuer: &FakeIssuer, login: &IssuedTokens, age: chrono::TimeDelta) -> Vec<u8> {
    let at = (chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    edit_auth_json(login.auth_json(issuer.url()).as_bytes(), |doc| doc["last_refresh"] = json!(at))
}

/// The token `getAuthStatus` serves now.
fn served(daemon: &TestDaemon) -> String {
    let status = daemon.raw_conn().auth_status(true);
    status["authToken"].as_str().unwrap_or_else(|| panic!("no token served: {}", hidden(&status))).to_owned()
}

/// An answer with its token replaced, for failure messages (tokens are never printed, not even the fakes).
fn hidden(answer: &Value) -> Value {
    let mut answer = answer.clone();
    for pointer in ["/authToken", "/result/authToken"] {
        if let Some(token) = answer.pointer_mut(pointer).filter(|t| t.is_string()) {
            *token = json!("<token>");
        }
    }
    answer
}

/// Asserts that two tokens are the same one without printing either.
#[track_caller]
fn assert_same(actual: &str, expected: &str, what: &str) {
    assert!(actual == expected, "{what}");
}

/// `secret-tool lookup` of the Codex entry of `account`, for polls that race with codexd changing the entry:
/// the entry (`None`: there is none), or secret-tool's complaint when the lookup failed otherwise (ask again).
fn poll_entry(keyring: &SecretService, account: &str) -> Result<Option<String>, String> {
    let out = keyring.secret_tool(&["lookup", "service", CODEX_SERVICE, "username", account], None);
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8(out.stdout).expect("the entry is UTF-8"))),
        Some(1) if out.stderr.is_empty() => Ok(None),
        _ => Err(text(&out.stderr)),
    }
}

/// A forced refresh that the issuer answers only after the keyring was locked: codexd redeems the refresh
/// token, cannot write the new tokens and serves them from memory. Returns the new access token.
fn refresh_while_the_keyring_locks(daemon: &TestDaemon, keyring: &SecretService, issuer: &FakeIssuer) -> String {
    let old = served(daemon);
    let before = issuer.count(Endpoint::Refresh);
    issuer.script(Endpoint::Refresh, Fault::Delay(ISSUER_DELAY));
    let response = std::thread::scope(|scope| {
        let refresh = scope.spawn(|| {
            let mut conn = daemon.raw_conn();
            conn.set_read_timeout(Some(SLOW));
            conn.request("getAuthStatus", forced())
        });
        assert!(issuer.wait_for_count(Endpoint::Refresh, before + 1, SLOW), "codexd did not ask the issuer");
        let started = Instant::now();
        lock(keyring);
        // The issuer's delay started when the request arrived, a little before `started`.
        let took = started.elapsed();
        assert!(
            took + Duration::from_millis(500) < ISSUER_DELAY,
            "locking the keyring took {took:?}, too close to the issuer's delay: the test cannot tell"
        );
        refresh.join().expect("the refresh thread panicked")
    });
    let new = response["result"]["authToken"]
        .as_str()
        .unwrap_or_else(|| panic!("the forced refresh did not serve new tokens: {}", hidden(&response)))
        .to_owned();
    assert!(new != old, "the forced refresh served the old token");
    assert_eq!(response["result"].get("authError"), None, "{}", hidden(&response));
    // Held in memory: the store says why it could not take them.
    wait_for_daemon_status(daemon, "storeProblem keyringLocked", |s| s["storeProblem"]["reason"] == "keyringLocked");
    assert_same(&served(daemon), &new, "the refreshed tokens are not served from memory");
    new
}

/// Asserts that the keyring entry holds the login whose access token is `access`, with the issuer's current
/// refresh token; returns the entry.
#[track_caller]
fn assert_entry_holds(keyring: &SecretService, account: &str, issuer: &FakeIssuer, access: &str) -> String {
    let entry = keyring.lookup(CODEX_SERVICE, account).expect("no keyring entry");
    assert_same(&access_token_of(entry.as_bytes()), access, "the keyring holds another login than the one served");
    assert!(
        issuer.is_current_refresh_token(&refresh_token_of(entry.as_bytes())),
        "the keyring holds a dead refresh token"
    );
    entry
}

/// Asserts that a forced refresh succeeds (no `refresh_token_reused`, no transient error) and returns the new
/// access token.
#[track_caller]
fn assert_refresh_works(conn: &mut Conn, previous: &str) -> String {
    let response = conn.request("getAuthStatus", forced());
    let result = response.get("result").unwrap_or_else(|| panic!("the forced refresh failed: {}", hidden(&response)));
    assert_eq!(result.get("authError"), None, "the login died: {}", hidden(&response));
    let token = result["authToken"].as_str().unwrap_or_else(|| panic!("no token: {}", hidden(&response))).to_owned();
    assert!(token != previous, "the forced refresh served the old token");
    token
}

/// Review #1: an older keyring entry must not hide the newer login that `auto` saved to `auth.json` while the
/// keyring failed (the entry's refresh token is already redeemed); the next refresh heals it into the keyring.
#[test]
fn auto_serves_a_fallback_file_newer_than_the_keyring_entry_and_heals_it_into_the_keyring() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let older = login_json(&issuer, &issuer.mint(&Account::default()), chrono::TimeDelta::hours(1));
    let newer = refreshed_elsewhere(&issuer, &older);
    let mut daemon = keyring_daemon(&keyring, "auto", &issuer).start();
    let account = stop_with_entry(&mut daemon, &keyring, &compact(&older));
    std::fs::write(daemon.auth_path(), &newer).expect("cannot write auth.json");
    daemon.restart();

    assert_same(&served(&daemon), &access_token_of(&newer), "auto served the stale keyring entry");
    assert_eq!(daemon.status()["storeLocation"], "file");

    // The refresh redeems the newer login's token, stores the result in the keyring and drops the fallback file.
    let mut conn = daemon.raw_conn();
    let refreshed = assert_refresh_works(&mut conn, &access_token_of(&newer));
    let presented = presented_refresh_tokens(&issuer);
    assert!(presented == [refresh_token_of(&older), refresh_token_of(&newer)], "codexd did not redeem the newer login");
    let entry = assert_entry_holds(&keyring, &account, &issuer, &refreshed);
    assert!(!daemon.auth_path().exists(), "the fallback auth.json survived a refresh stored in the keyring");
    let status = daemon.status();
    assert_eq!((status["storeLocation"].clone(), status.get("storeProblem")), (json!("keyring"), None), "{status}");
    assert_same(&served(&daemon), &refreshed, "the refreshed token is not served");
    let mut secrets = secrets_of(&older);
    secrets.extend(secrets_of(&newer));
    secrets.extend(secrets_of(entry.as_bytes()));
    assert_stderr_clean(&daemon, &secrets);
}

/// Review #1, the other way: the fix compares `last_refresh`; it must not simply prefer the file, so a keyring
/// entry newer than a leftover `auth.json` is still the login (and the leftover goes at the next write).
#[test]
fn auto_serves_a_keyring_entry_newer_than_a_leftover_file() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let older = login_json(&issuer, &issuer.mint(&Account::default()), chrono::TimeDelta::hours(1));
    let newer = refreshed_elsewhere(&issuer, &older);
    let mut daemon = keyring_daemon(&keyring, "auto", &issuer).start();
    let account = stop_with_entry(&mut daemon, &keyring, &compact(&newer));
    std::fs::write(daemon.auth_path(), &older).expect("cannot write auth.json");
    daemon.restart();

    assert_same(&served(&daemon), &access_token_of(&newer), "auto served the older auth.json");
    assert_eq!(daemon.status()["storeLocation"], "keyring");

    let mut conn = daemon.raw_conn();
    let refreshed = assert_refresh_works(&mut conn, &access_token_of(&newer));
    assert_presented_distinct(&issuer);
    let entry = assert_entry_holds(&keyring, &account, &issuer, &refreshed);
    assert!(!daemon.auth_path().exists(), "the leftover auth.json survived a write to the keyring");
    let mut secrets = secrets_of(&older);
    secrets.extend(secrets_of(&newer));
    secrets.extend(secrets_of(entry.as_bytes()));
    assert_stderr_clean(&daemon, &secrets);
}

/// Review #2 (and #5): tokens refreshed while the keyring is locked are reported as a keyring problem and held
/// in memory; `store migrate --to file` moves those new tokens (not the redeemed ones in the keyring) to
/// auth.json, so the login survives leaving the keyring.
#[test]
fn migrating_to_the_file_rescues_tokens_a_locked_keyring_did_not_take() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let login = login_json(&issuer, &issuer.mint(&Account::default()), chrono::TimeDelta::minutes(5));
    let mut daemon = keyring_daemon(&keyring, "keyring", &issuer).start();
    restart_with_entry(&mut daemon, &keyring, &compact(&login));
    let pending = refresh_while_the_keyring_locks(&daemon, &keyring, &issuer);
    let mut sub = daemon.subscriber();

    let out = daemon.codexctl(&["store", "migrate", "--to", "file"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "store migrate failed: {stderr}");
    assert!(stderr.starts_with("codexctl: moved the login from keyring to file\n"), "{stderr}");
    // The redeemed copy is still in the locked keyring: the user is told to remove it.
    assert!(stderr.contains("codexctl: warning: "), "{stderr}");

    let stored = std::fs::read(daemon.auth_path()).expect("no auth.json after the migration");
    assert_same(&access_token_of(&stored), &pending, "auth.json holds another login than the one served");
    assert!(
        issuer.is_current_refresh_token(&refresh_token_of(&stored)),
        "auth.json holds the redeemed refresh token, not the one the issuer issued last"
    );
    let config = std::fs::read_to_string(daemon.home().join("config.toml")).expect("config.toml");
    assert!(config.contains("cli_auth_credentials_store = \"file\""), "{config}");
    let status = daemon.status();
    assert_eq!((status["store"].clone(), status["storeLocation"].clone()), (json!("file"), json!("file")), "{status}");
    assert_same(&served(&daemon), &pending, "the migration changed the token served");

    // The login goes on: the next refresh redeems the rescued token.
    let refreshed = assert_refresh_works(&mut sub, &pending);
    assert_presented_distinct(&issuer);
    let stored_after = std::fs::read(daemon.auth_path()).expect("auth.json");
    assert_same(&access_token_of(&stored_after), &refreshed, "auth.json does not hold the refreshed login");
    assert!(issuer.is_current_refresh_token(&refresh_token_of(&stored_after)));
    let mut secrets = secrets_of(&login);
    secrets.extend(secrets_of(&stored));
    secrets.extend(secrets_of(&stored_after));
    assert_stderr_clean(&daemon, &secrets);
}

/// Review #4: tokens held because the keyring was locked are written at shutdown once it is unlocked again,
/// instead of dying with the process (the retry is backed off far beyond the stop here).
#[test]
fn tokens_held_for_a_locked_keyring_are_written_at_shutdown_after_it_is_unlocked() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let login = login_json(&issuer, &issuer.mint(&Account::default()), chrono::TimeDelta::minutes(5));
    // No poll and no retry before the stop: only the shutdown can write the tokens.
    let mut daemon = keyring_daemon(&keyring, "keyring", &issuer)
        .env("CODEXD_KEYRING_POLL_MS", "600000")
        .env("CODEXD_REFRESH_BACKOFF_MIN_MS", "600000")
        .env("CODEXD_REFRESH_BACKOFF_MAX_MS", "600000")
        .start();
    let account = restart_with_entry(&mut daemon, &keyring, &compact(&login));
    let pending = refresh_while_the_keyring_locks(&daemon, &keyring, &issuer);

    unlock(&keyring);
    assert!(
        keyring.lookup(CODEX_SERVICE, &account) == Some(compact(&login)),
        "the tokens were written before the stop: the test cannot tell"
    );
    let status = daemon.stop();
    assert!(status.success(), "codexd exited with {status}");
    let entry = assert_entry_holds(&keyring, &account, &issuer, &pending);
    assert!(!daemon.stderr().contains("the refreshed login is lost"), "{}", daemon.stderr());
    let mut secrets = secrets_of(&login);
    secrets.extend(secrets_of(entry.as_bytes()));
    assert_stderr_clean(&daemon, &secrets);
}

/// A keyring-mode daemon whose logout revoked the tokens it held but could not delete the locked entry.
/// Dropped in field order: the daemon stops before its issuer and keyring go away.
struct IncompleteLogout {
    daemon: TestDaemon,
    sub: Conn,
    issuer: FakeIssuer,
    keyring: SecretService,
    account: String,
    login: Vec<u8>,
}

/// Logs in (keyring mode), refreshes into a locked keyring (the tokens codexd holds are the only ones it can
/// revoke while the keyring is locked), then runs `codexctl logout`, which must fail with exit 1.
fn incomplete_logout() -> IncompleteLogout {
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let login = login_json(&issuer, &issuer.mint(&Account::default()), chrono::TimeDelta::minutes(5));
    let mut daemon = keyring_daemon(&keyring, "keyring", &issuer).start();
    let account = restart_with_entry(&mut daemon, &keyring, &compact(&login));
    refresh_while_the_keyring_locks(&daemon, &keyring, &issuer);
    let sub = daemon.subscriber();
    let out = daemon.codexctl(&["logout"]);
    assert_eq!(out.status.code(), Some(1), "the logout did not fail: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("locked"), "{}", text(&out.stderr));
    IncompleteLogout { daemon, sub, issuer, keyring, account, login }
}

/// Review #9: a logout that revoked the refresh token but could not delete the entry (locked keyring) must not
/// go on serving the revoked login: it is marked `logoutIncomplete` until a logout succeeds.
#[test]
fn a_logout_that_revoked_but_could_not_delete_stops_serving_the_revoked_login() {
    if !available() {
        return;
    }
    let IncompleteLogout { daemon, mut sub, issuer, keyring, account, login } = incomplete_logout();
    let revoked = issuer.revoked();
    assert_eq!(revoked.len(), 1, "expected one revoke");
    assert!(revoked[0] != refresh_token_of(&login), "codexd revoked the redeemed token, not the one it held");
    assert!(!issuer.is_current_refresh_token(&revoked[0]));

    let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
    assert_eq!((update["authMode"].clone(), update["reason"].clone()), (Value::Null, json!("logout")), "{update}");
    assert_eq!(update["authError"]["reason"], "logoutIncomplete", "{update}");
    assert!(sub.auth_status(true)["authToken"].is_null(), "the revoked login is still served");
    let status = sub.auth_status(false);
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], "logoutIncomplete", "{status}");
    assert_eq!(keyring.items(CODEX_SERVICE, &account).len(), 1, "the locked entry is gone");

    // Once the keyring is unlocked, logging out again finishes the job.
    unlock(&keyring);
    let out = daemon.codexctl(&["logout"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty(), "the entry survived the second logout");
    assert_eq!(sub.auth_status(true)["authMethod"], Value::Null);
    assert_stderr_clean(&daemon, &secrets_of(&login));
}

/// Review #9's message: what `getAuthStatus` (and `codexctl status`) shows after such a logout is one readable
/// sentence.
#[test]
fn the_logout_incomplete_message_reads_as_one_sentence() {
    if !available() {
        return;
    }
    let mut state = incomplete_logout();
    let status = state.sub.auth_status(false);
    let message = status["authError"]["message"].as_str().unwrap_or_else(|| panic!("no message: {status}"));
    assert!(message.starts_with("the refresh token was revoked, but the stored login could not be removed ("));
    assert!(message.ends_with("; run `codexctl logout` again once the store is reachable"), "{message:?}");
    assert!(!message.contains("  "), "{message:?}");
}

/// Review #11: a login the policy refuses whose removal failed (locked keyring) is removed once the keyring is
/// unlocked, without telling subscribers a second time.
#[test]
fn a_policy_removal_refused_by_a_locked_keyring_is_retried_after_the_unlock() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "keyring").system_file("config.toml", "").start();
    let account = codex_account(daemon.home());
    let key = "sk-SECRETMARK-refused-while-locked";
    assert_eq!(api_key_login(&mut daemon.raw_conn(), key)["result"], json!({"type": "apiKey"}));
    assert!(keyring.lookup(CODEX_SERVICE, &account) == Some(apikey_entry(key)), "the key is not in the keyring");
    let mut subscribers: Vec<Conn> = (0..2).map(|_| daemon.subscriber()).collect();
    lock(&keyring);
    wait_for_daemon_status(&daemon, "storeProblem keyringLocked", |s| s["storeProblem"]["reason"] == "keyringLocked");

    replace_file(&daemon.system_config_dir().join("requirements.toml"), "forced_login_method = \"chatgpt\"\n");
    for (i, sub) in subscribers.iter_mut().enumerate() {
        let update = wait_for_notification(sub, "account/updated", NOTICE);
        assert_eq!(
            (update["reason"].clone(), update["authMode"].clone(), update["authError"].clone()),
            (json!("policy"), Value::Null, json!({"reason": "policy", "message": CHATGPT_REQUIRED})),
            "subscriber {i}"
        );
    }
    // The removal was tried and refused by the locked keyring; the entry stays.
    wait_until(NOTICE, "codexd to try the removal", || {
        daemon.stderr().contains("cannot remove the credentials the login policy refuses")
    });
    assert_eq!(keyring.items(CODEX_SERVICE, &account).len(), 1, "the locked entry is gone");

    unlock(&keyring);
    wait_until(AFTER_UNLOCK, "codexd to remove the refused entry after the unlock", || {
        poll_entry(&keyring, &account) == Ok(None)
    });
    assert!(keyring.items(CODEX_SERVICE, &account).is_empty());
    for sub in &mut subscribers {
        sub.assert_silent_for(Duration::from_millis(500));
    }
    assert!(subscribers[0].auth_status(true)["authToken"].is_null(), "the refused key is served");
    let status = subscribers[0].auth_status(false);
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"], json!({"reason": "policy", "message": CHATGPT_REQUIRED}), "{status}");
    assert_stderr_clean(&daemon, &key_secrets(&[key]));
}

/// Review #3: a policy that refuses the login and is relaxed again before the removal gets to run must not drop
/// the refreshed tokens held in memory (they reach the keyring once it is unlocked, and the login goes on).
#[test]
fn a_policy_tightened_and_relaxed_while_tokens_are_pending_keeps_them() {
    if !available() {
        return;
    }
    let keyring = SecretService::start();
    let issuer = FakeIssuer::start();
    let login = login_json(&issuer, &issuer.mint(&Account::default()), chrono::TimeDelta::minutes(5));
    let mut daemon = keyring_daemon(&keyring, "keyring", &issuer).system_file("config.toml", "").start();
    let account = restart_with_entry(&mut daemon, &keyring, &compact(&login));
    let pending = refresh_while_the_keyring_locks(&daemon, &keyring, &issuer);
    let mut sub = daemon.subscriber();

    // Another program holds auth.lock: the store work queued behind it (here a forced refresh that first tries
    // the pending write) keeps the removal the policy spawns waiting until the policy is relaxed again.
    let auth_lock = daemon.home().join("auth.lock");
    let held = codexd_e2e::hold_flock(&auth_lock);
    let requirements = daemon.system_config_dir().join("requirements.toml");
    std::thread::scope(|scope| {
        let blocked = scope.spawn(|| {
            let mut conn = daemon.raw_conn();
            conn.set_read_timeout(Some(SLOW));
            conn.request("getAuthStatus", forced())
        });
        wait_until(SLOW, "codexd to wait for auth.lock", || {
            codexd_e2e::session::process_has_open(daemon.pid(), &auth_lock)
        });
        replace_file(&requirements, "forced_login_method = \"api\"\n");
        let update = wait_for_notification(&mut sub, "account/updated", NOTICE);
        assert_eq!(
            (update["reason"].clone(), update["authError"]["message"].clone()),
            (json!("policy"), json!(API_REQUIRED))
        );
        std::fs::remove_file(&requirements).expect("cannot remove requirements.toml");
        let seen = notifications_until(&mut sub, NOTICE, |n| n["params"]["authMode"] == "chatgpt");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            codexd_e2e::session::process_has_open(daemon.pid(), &auth_lock),
            "codexd stopped waiting for auth.lock before the policy was relaxed: the test cannot tell"
        );
        drop(held);
        blocked.join().expect("the blocked refresh panicked");
    });
    assert_same(&served(&daemon), &pending, "the pending tokens were dropped");

    unlock(&keyring);
    let mut entry = None;
    wait_until(AFTER_UNLOCK, "the pending tokens to reach the keyring", || {
        entry = poll_entry(&keyring, &account).ok().flatten();
        entry.as_deref().is_some_and(|e| access_token_of(e.as_bytes()) == pending)
    });
    assert_entry_holds(&keyring, &account, &issuer, &pending);
    let mut conn = daemon.raw_conn();
    assert_refresh_works(&mut conn, &pending);
    assert_presented_distinct(&issuer);
    let mut secrets = secrets_of(&login);
    secrets.extend(secrets_of(entry.expect("the entry").as_bytes()));
    assert_stderr_clean(&daemon, &secrets);
}
