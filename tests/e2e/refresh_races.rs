//! Regression tests for the races of the refresh and login review (issue 3): rotated tokens that cannot be
//! written are served from memory and never redeemed twice (M1); a refresh on the wire survives shutdown (M2);
//! a Codex CLI that wins the refresh race is adopted, not reported as `refreshFailed` (S1); a still-valid stale
//! token is served at once while the issuer hangs (S2); a forced refresh after a permanent failure re-reads the
//! store (S3); a login past its commit point can no longer be canceled (S7); and each `slow_down` without an
//! interval slows device polling by 5 s more (S10).
//!
//! The test plays the other programs itself: it holds `auth.lock` / `auth.json.lock` with `flock` (std's
//! `File::lock`, the same lock the daemon takes), redeems refresh tokens at the fake issuer as a Codex CLI
//! would, and walks the browser's redirects by hand where the moment between two of them matters.

use codexd_e2e::logins::{
    LOGIN_DEADLINE, device_issuer, login_daemon, start_browser_login, start_device_login, wait_login_completed,
    wait_login_failed,
};
use codexd_e2e::session::{
    Session, access_token_of, aging, assert_presented_distinct, daemon_for, expire, forced, jwt_exp, jwt_payload,
    now_secs, patient, process_has_open, redeem, refresh_token_of, refreshed_elsewhere, start_issuer,
};
use codexd_e2e::{Conn, TestDaemon, wait_until, write_atomically};
use codexd_fake_issuer::{Account, Endpoint, FakeIssuer, Fault};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// An access-token lifetime that never needs a refresh during a test.
const HOUR: Duration = Duration::from_secs(3600);

/// Seconds left on a token inside the daemon's 10-minute margin but outside the Codex CLI's 5-minute window:
/// the scheduler refreshes it at once, `getAuthStatus` does not.
const IN_MARGIN: i64 = 400;

/// Seconds left on a token inside the Codex CLI's 5-minute window: every `includeToken` call wants a refresh.
const IN_CLI_WINDOW: i64 = 240;

fn lock_path(home: &Path, name: &str) -> PathBuf {
    home.join(name)
}

fn read_auth(daemon: &TestDaemon) -> Vec<u8> {
    std::fs::read(daemon.auth_path()).expect("cannot read auth.json")
}

/// Reads `account/updated` notifications for `quiet` and panics on any `refreshFailed` among them (a negative
/// check with a short bound, not a synchronisation).
fn assert_no_refresh_failed_for(subscriber: &mut Conn, quiet: Duration) {
    let end = Instant::now() + quiet;
    while subscriber.pending_notifications() > 0 {
        let n = subscriber.next_notification();
        assert_ne!(n["params"]["reason"], "refreshFailed", "a false refreshFailed: {n}");
    }
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        subscriber.set_read_timeout(Some(left));
        let read = subscriber.read_message();
        subscriber.set_read_timeout(Some(codexd_e2e::conn::READ_TIMEOUT));
        match read {
            Ok(Some(n)) => assert_ne!(n["params"]["reason"], "refreshFailed", "a false refreshFailed: {n}"),
            Ok(None) => panic!("codexd closed the subscriber's connection"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return,
            Err(e) => panic!("reading notifications failed: {e}"),
        }
    }
}

/// A GET over a fresh loopback TCP connection that does not follow redirects: the status, the `Location`
/// header, and the body.
fn http_get(url: &str) -> (u16, Option<String>, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not a plain-HTTP URL: {url}"));
    let (address, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    assert!(address.starts_with("127.0.0.1:"), "not a loopback URL: {url}");
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set_read_timeout failed");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("cannot send GET");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap_or_else(|e| panic!("no answer to GET {url}: {e}"));
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad answer: {text}"));
    let location = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("location").then(|| value.trim().to_owned())
    });
    (status, location, body.to_owned())
}

/// M1. The scheduler redeems the refresh token while another program holds `auth.json.lock` longer than the
/// daemon's 2 s write wait: the new tokens are served from memory, the write (not the redemption) is retried,
/// and they reach `auth.json` once the lock is free. No refresh token is presented twice.
#[test]
fn refreshed_tokens_that_cannot_be_written_are_served_from_memory_and_never_redeemed_again() {
    let issuer = start_issuer(HOUR);
    let login = issuer.mint(&Account::default());
    let due = aging(login.auth_json(issuer.url()).as_bytes(), IN_MARGIN);
    let old = access_token_of(&due);
    let daemon = daemon_for(&issuer).start();
    let mut subscriber = daemon.subscriber();
    let mut conn = daemon.raw_conn();
    conn.set_read_timeout(Some(Duration::from_secs(10)));

    // Another program holds auth.json.lock before the login appears; the scheduler finds the token due at once.
    let held = codexd_e2e::hold_flock(&lock_path(daemon.home(), "auth.json.lock"));
    let hold_started = Instant::now();
    write_atomically(daemon.home(), &due);
    assert_eq!(subscriber.next_account_updated()["reason"], "external");
    assert!(issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(10)), "the scheduler did not refresh");

    // The write gives up after 2 s, and the redeemed tokens are served anyway.
    let update = codexd_e2e::logins::wait_for_notification(&mut subscriber, "account/updated", Duration::from_secs(10));
    assert_eq!(update["reason"], "refresh", "{update}");
    let status = conn.auth_status(true);
    let new = status["authToken"].as_str().unwrap_or_else(|| panic!("no token served: {status}")).to_owned();
    assert_ne!(new, old, "the old token is served after the refresh");
    assert_eq!(jwt_payload(&new)["iss"], issuer.url(), "not an issuer-issued token");
    assert!(jwt_exp(&new) > jwt_exp(&old), "the served token is not newer than the stored one");
    assert_eq!(read_auth(&daemon), due, "auth.json changed while auth.json.lock was held");

    // A forced refresh during the hold first tries to write what is pending (and fails, the lock still held):
    // it never redeems again. (The first answer may join the attempt that just refreshed.)
    let mut unavailable = None;
    for _ in 0..3 {
        let response = conn.request("getAuthStatus", forced());
        if let Some(error) = response.get("error") {
            unavailable = Some(error.clone());
            break;
        }
        assert_eq!(response["result"]["authToken"], new.as_str(), "{response}");
    }
    let error = unavailable.expect("a forced refresh during the hold did not report the pending write");
    assert_eq!((error["code"].clone(), error["data"]["reason"].clone()), (json!(-32003), json!("refreshUnavailable")));
    assert_eq!(conn.auth_status(true)["authToken"], new.as_str(), "the refreshed token is no longer served");
    assert!(hold_started.elapsed() > Duration::from_secs(3), "the lock was held for {:?} only", hold_started.elapsed());
    assert_eq!(issuer.count(Endpoint::Refresh), 1, "codexd redeemed again while the write was blocked");
    assert_eq!(read_auth(&daemon), due, "auth.json changed while auth.json.lock was held");

    // Released: the pending write lands, without another request.
    drop(held);
    wait_until(Duration::from_secs(10), "the refreshed tokens to reach auth.json", || {
        access_token_of(&read_auth(&daemon)) == new
    });
    let stored = read_auth(&daemon);
    assert!(issuer.is_current_refresh_token(&refresh_token_of(&stored)), "auth.json holds a dead refresh token");
    assert_eq!(assert_presented_distinct(&issuer), vec![login.refresh_token.clone()]);
    assert_eq!(conn.auth_status(true)["authToken"], new.as_str());
    assert_no_refresh_failed_for(&mut subscriber, Duration::from_millis(500));
    assert_eq!(issuer.count(Endpoint::Refresh), 1);
}

/// S1. A Codex CLI redeems the stored refresh token while codexd's own request with it is on the wire, then
/// waits for `auth.lock` (held by codexd during its request) to write its tokens. codexd's request is refused
/// as reused; it must re-read under `auth.lock` and adopt the CLI's tokens instead of reporting `refreshFailed`.
#[test]
fn a_codex_cli_that_wins_the_refresh_race_is_adopted_not_reported_as_failed() {
    let session = Session::start_with(
        HOUR,
        |issuer, auth| {
            // Only codexd's request is delayed: the CLI's direct redemption (the next request) is answered at once.
            issuer.script(Endpoint::Refresh, Fault::Delay(Duration::from_secs(1)));
            auth
        },
        patient,
    );
    let (daemon, issuer) = (&session.daemon, &session.issuer);
    let mut subscriber = daemon.subscriber();
    let socket = daemon.socket().to_owned();
    let forced_call = std::thread::spawn(move || {
        let mut conn = Conn::connect(&socket).expect("cannot connect to codexd");
        conn.set_read_timeout(Some(Duration::from_secs(15)));
        conn.request("getAuthStatus", forced())
    });
    assert!(issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(10)), "codexd did not refresh");
    let auth_lock = lock_path(daemon.home(), "auth.lock");
    assert!(process_has_open(daemon.pid(), &auth_lock), "codexd does not hold auth.lock during its request");

    // The CLI: network first (it wins: codexd's request is still delayed), then flock(auth.lock), blocking.
    let cli_auth = refreshed_elsewhere(issuer, &session.auth_json);
    let cli_access = access_token_of(&cli_auth);
    {
        let _auth_lock = codexd_e2e::hold_flock(&auth_lock);
        // codexd has released auth.lock: its request was answered (refused as reused).
        assert_eq!(issuer.count(Endpoint::Refresh), 2);
        let _write_lock = codexd_e2e::hold_flock(&lock_path(daemon.home(), "auth.json.lock"));
        write_atomically(daemon.home(), &cli_auth);
    }

    let response = forced_call.join().expect("the forced call panicked");
    let result = response.get("result").unwrap_or_else(|| panic!("the forced refresh failed: {response}"));
    assert_eq!(result["authToken"], cli_access.as_str(), "the CLI's token was not adopted: {result}");
    assert!(result.get("authError").is_none_or(Value::is_null), "{result}");
    let update = subscriber.next_account_updated();
    assert_eq!((update["reason"].as_str(), update["authMode"].as_str()), (Some("external"), Some("chatgpt")));
    assert_no_refresh_failed_for(&mut subscriber, Duration::from_millis(500));

    // Both presented the login's token (codexd's was refused); codexd did not touch what the CLI stored.
    assert_eq!(session.presented_refresh_tokens(), vec![session.login.refresh_token.clone(); 2]);
    assert_eq!(read_auth(daemon), cli_auth);
    assert!(issuer.is_current_refresh_token(&refresh_token_of(&cli_auth)));
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], cli_access.as_str());
}

/// S2. A token inside the Codex CLI's 5-minute window that is still valid is served at once while the
/// scheduler's refresh hangs (for up to the 8 s HTTP timeout); an expired one waits for the refresh.
#[test]
fn a_still_valid_stale_token_is_served_at_once_while_the_refresh_hangs_and_an_expired_one_waits() {
    let session = Session::start_with(
        HOUR,
        |issuer, auth| {
            issuer.script_always(Endpoint::Refresh, Fault::Hang);
            aging(&auth, IN_CLI_WINDOW)
        },
        |builder| builder.env("CODEXD_HTTP_TIMEOUT_MS", "8000"),
    );
    let old = access_token_of(&session.auth_json);
    assert!(session.issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(10)), "no refresh started");
    let mut conn = session.daemon.raw_conn();
    // Longer than the HTTP timeout, so that a blocked answer fails on the timing below, not on the read.
    conn.set_read_timeout(Some(Duration::from_secs(12)));
    for i in 0..10 {
        let started = Instant::now();
        let status = conn.auth_status(true);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(500), "call {i} took {took:?} while the issuer hangs");
        assert_eq!(status["authToken"], old.as_str(), "call {i}: {status}");
    }
    assert_eq!(session.refreshes(), 1, "a second request while the first one hangs");
    // Release the hang (the connection is closed unanswered): the retry succeeds.
    session.issuer.clear_faults();
    wait_until(Duration::from_secs(10), "the refresh to succeed once the issuer answers", || {
        conn.auth_status(true)["authToken"] != old.as_str()
    });

    // Expired: the answer waits for the refresh in flight and carries its token.
    let expired = Session::start_with(
        HOUR,
        |issuer, auth| {
            issuer.script(Endpoint::Refresh, Fault::Delay(Duration::from_secs(1)));
            expire(&auth)
        },
        patient,
    );
    let stale = access_token_of(&expired.auth_json);
    assert!(expired.issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(10)), "no refresh started");
    let status = expired.daemon.raw_conn().auth_status(true);
    let token = status["authToken"].as_str().unwrap_or_else(|| panic!("no token: {status}"));
    assert_ne!(token, stale, "an expired token was served while its refresh was in flight");
    assert!(jwt_exp(token) > now_secs(), "the served token is expired: {status}");
    assert_eq!(expired.refreshes(), 1);
}

/// S3. After a permanent failure, the store changes without the watcher seeing it (here: `auth.json` is a
/// symlink to a file in another directory, replaced there, as on a remote `$CODEX_HOME` whose events are
/// lost). A forced refresh re-reads the store and serves the new login instead of the cached failure.
#[test]
fn a_forced_refresh_after_a_permanent_failure_rereads_a_store_the_watcher_missed() {
    let issuer = start_issuer(HOUR);
    let login = issuer.mint(&Account::default());
    let daemon = daemon_for(&issuer).start();
    let mut subscriber = daemon.subscriber();
    let elsewhere = tempfile::Builder::new().prefix("cxe").tempdir_in("/tmp").expect("cannot create a temp dir");
    write_atomically(elsewhere.path(), login.auth_json(issuer.url()).as_bytes());
    std::os::unix::fs::symlink(elsewhere.path().join("auth.json"), daemon.auth_path()).expect("cannot symlink");
    assert_eq!(subscriber.next_account_updated()["reason"], "external");

    // Another program redeemed the stored token: the forced refresh fails for good.
    assert_eq!(redeem(issuer.url(), &login.refresh_token).0, 200);
    let mut conn = daemon.raw_conn();
    let status = conn.call("getAuthStatus", forced());
    assert_eq!(status["authToken"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], "refreshFailed", "{status}");
    assert_eq!(subscriber.next_account_updated()["reason"], "refreshFailed");

    // The user signs in again elsewhere; the watcher of $CODEX_HOME sees nothing.
    let fresh = issuer.mint(&Account::default());
    write_atomically(elsewhere.path(), fresh.auth_json(issuer.url()).as_bytes());
    subscriber.assert_silent_for(Duration::from_millis(300));
    assert_eq!(conn.auth_status(true)["authError"]["reason"], "refreshFailed", "the watcher saw the change");

    let before = issuer.count(Endpoint::Refresh);
    let status = conn.call("getAuthStatus", forced());
    assert_eq!(status["authToken"], fresh.access_token.as_str(), "the cached failure was returned: {status}");
    assert!(status.get("authError").is_none_or(Value::is_null), "{status}");
    assert_eq!(issuer.count(Endpoint::Refresh), before, "the new login was adopted with a request");
    let update = subscriber.next_account_updated();
    assert_eq!((update["reason"].as_str(), update["authMode"].as_str()), (Some("external"), Some("chatgpt")));
}

/// S3, as the review describes it: a new login written into `$CODEX_HOME` after a permanent failure, then a
/// forced refresh at once, without waiting for a notification. Whether the forced path or the watcher (30 ms
/// settle) reads the new file first, the answer carries the new login's token: its access token as stored
/// (adopted by the forced path), or one refreshed from its refresh token (the watcher won, the refresh ran).
#[test]
fn a_forced_refresh_right_after_a_new_login_is_written_serves_the_new_login() {
    let session = Session::start(HOUR);
    let (daemon, issuer) = (&session.daemon, &session.issuer);
    let mut subscriber = daemon.subscriber();
    assert_eq!(redeem(issuer.url(), &session.login.refresh_token).0, 200);
    let mut conn = daemon.raw_conn();
    assert_eq!(conn.call("getAuthStatus", forced())["authError"]["reason"], "refreshFailed");
    assert_eq!(subscriber.next_account_updated()["reason"], "refreshFailed");

    let fresh = issuer.mint(&Account::default());
    let before = session.refreshes();
    write_atomically(daemon.home(), fresh.auth_json(issuer.url()).as_bytes());
    let status = conn.call("getAuthStatus", forced());
    let token = status["authToken"].as_str().unwrap_or_else(|| panic!("the cached failure was returned: {status}"));
    let presented = session.presented_refresh_tokens();
    if token == fresh.access_token {
        assert_eq!(presented.len(), before, "adopted, yet a request was made: {presented:?}");
    } else {
        // The watcher adopted the file first; the forced refresh then redeemed the new login's token.
        eprintln!("the watcher read the new login before the forced refresh did");
        assert_eq!(presented[before..], [fresh.refresh_token.as_str()], "{status}");
        assert_eq!(access_token_of(&read_auth(daemon)), token);
    }
    assert_eq!(subscriber.next_account_updated()["reason"], "external");
}

/// M2, a client's refresh: SIGTERM while the forced refresh is on the wire. The daemon waits for the answer,
/// stores the rotated token, answers the caller, and exits 0.
#[test]
fn shutdown_waits_for_a_forced_refresh_on_the_wire_and_stores_the_rotation() {
    let mut session = Session::start_with(
        HOUR,
        |issuer, auth| {
            issuer.script(Endpoint::Refresh, Fault::Delay(Duration::from_millis(1500)));
            auth
        },
        patient,
    );
    let socket = session.daemon.socket().to_owned();
    let forced_call = std::thread::spawn(move || {
        let mut conn = Conn::connect(&socket).expect("cannot connect to codexd");
        conn.set_read_timeout(Some(Duration::from_secs(15)));
        conn.request("getAuthStatus", forced())
    });
    assert!(session.issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(10)), "no refresh started");
    let exit = session.daemon.stop();
    assert!(exit.success(), "codexd exited with {exit}");

    let stored = read_auth(&session.daemon);
    let rotated = refresh_token_of(&stored);
    assert_ne!(rotated, session.login.refresh_token, "the rotation was lost: auth.json holds the redeemed token");
    assert!(session.issuer.is_current_refresh_token(&rotated), "auth.json holds a dead refresh token");
    let response = forced_call.join().expect("the forced call panicked");
    assert_eq!(response["result"]["authToken"], access_token_of(&stored).as_str(), "{response}");
    assert_eq!(session.presented_refresh_tokens(), vec![session.login.refresh_token.clone()]);
}

/// M2, the scheduler's refresh: SIGTERM while a proactive refresh is on the wire and no client waits for it.
#[test]
fn shutdown_waits_for_a_scheduled_refresh_on_the_wire_and_stores_the_rotation() {
    let mut session = Session::start_with(
        HOUR,
        |issuer, auth| {
            issuer.script(Endpoint::Refresh, Fault::Delay(Duration::from_millis(1500)));
            aging(&auth, IN_MARGIN)
        },
        patient,
    );
    assert!(session.issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(10)), "no refresh started");
    let exit = session.daemon.stop();
    assert!(exit.success(), "codexd exited with {exit}");
    let rotated = refresh_token_of(&read_auth(&session.daemon));
    assert_ne!(rotated, session.login.refresh_token, "the rotation was lost: auth.json holds the redeemed token");
    assert!(session.issuer.is_current_refresh_token(&rotated), "auth.json holds a dead refresh token");
    assert_eq!(session.presented_refresh_tokens(), vec![session.login.refresh_token.clone()]);
}

/// S7, cancel after the save: the browser's callback has been answered (the login is stored) but the browser
/// has not fetched the success page yet. The cancel finds nothing to cancel and the login succeeded.
#[test]
fn cancel_after_a_browser_login_was_stored_answers_not_found_and_the_login_succeeds() {
    let issuer = FakeIssuer::start();
    let (daemon, mut subscriber) = login_daemon(&issuer);
    let login = start_browser_login(&mut subscriber);
    // The browser, one hop at a time: the issuer redirects to the callback, which answers once the login is saved.
    let (status, callback, _) = http_get(&login.auth_url);
    assert_eq!(status, 302);
    let callback = callback.expect("the issuer's redirect has a Location");
    let (status, success, body) = http_get(&callback);
    assert_eq!((status, success.as_deref()), (302, Some("/success")), "{body}");
    assert!(daemon.auth_path().exists(), "the callback was answered before the login was stored");

    let answer = subscriber.call("account/login/cancel", json!({"loginId": login.login_id}));
    assert_eq!(answer, json!({"status": "notFound"}), "a stored login could still be canceled");
    let (before, completed) = wait_login_completed(&mut subscriber, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": true, "error": null}));
    assert!(before.iter().any(|n| n["params"]["reason"] == "login"), "{before:?}");

    // The success page is still served.
    let (status, _, page) = http_get(&format!("http://127.0.0.1:{}/success", login.callback_port()));
    assert_eq!(status, 200, "{page}");
    let doc: Value = serde_json::from_slice(&read_auth(&daemon)).unwrap();
    assert!(issuer.is_current_refresh_token(doc["tokens"]["refresh_token"].as_str().unwrap()));
    assert_eq!(subscriber.auth_status(true)["authToken"], doc["tokens"]["access_token"]);
}

/// S7, cancel during the save: `auth.json.lock` is held by another program, so the save waits; a cancel then
/// comes after the commit point. It answers `notFound`, and once the lock is free the login is stored and
/// reported as a success (not a failure with the credentials written behind its back).
#[test]
fn cancel_while_a_browser_login_is_being_stored_answers_not_found_and_the_login_succeeds() {
    let issuer = FakeIssuer::start();
    let (daemon, mut subscriber) = login_daemon(&issuer);
    let write_lock = lock_path(daemon.home(), "auth.json.lock");
    let held = codexd_e2e::hold_flock(&write_lock);
    let login = start_browser_login(&mut subscriber);
    let url = login.auth_url.clone();
    let browser = std::thread::spawn(move || codexd_fake_issuer::browser::visit(&url, None));
    wait_until(Duration::from_secs(10), "codexd to wait for auth.json.lock in the save", || {
        process_has_open(daemon.pid(), &write_lock)
    });
    let answer = subscriber.call("account/login/cancel", json!({"loginId": login.login_id}));
    assert_eq!(answer, json!({"status": "notFound"}), "a login being stored could still be canceled");
    drop(held);

    let (before, completed) = wait_login_completed(&mut subscriber, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": true, "error": null}));
    assert!(before.iter().any(|n| n["params"]["reason"] == "login"), "{before:?}");
    let page = browser.join().expect("the browser thread panicked").expect("the browser failed");
    assert!(page.final_url.contains("/success"), "{page:?}");
    let doc: Value = serde_json::from_slice(&read_auth(&daemon)).unwrap();
    assert!(issuer.is_current_refresh_token(doc["tokens"]["refresh_token"].as_str().unwrap()));
    assert_eq!(subscriber.auth_status(true)["authToken"], doc["tokens"]["access_token"]);
}

/// S7, cancel before the commit point: during the code exchange. The login fails as canceled and nothing is
/// stored, not even after the issuer has answered the exchange.
#[test]
fn cancel_during_the_code_exchange_fails_the_login_and_stores_nothing() {
    const EXCHANGE_DELAY: Duration = Duration::from_secs(1);
    let issuer = FakeIssuer::start();
    let (daemon, mut subscriber) = login_daemon(&issuer);
    issuer.script(Endpoint::CodeExchange, Fault::Delay(EXCHANGE_DELAY));
    let login = start_browser_login(&mut subscriber);
    let url = login.auth_url.clone();
    let browser = std::thread::spawn(move || codexd_fake_issuer::browser::visit(&url, None));
    assert!(issuer.wait_for_count(Endpoint::CodeExchange, 1, LOGIN_DEADLINE), "no code exchange");
    let exchange_seen = Instant::now();
    let answer = subscriber.call("account/login/cancel", json!({"loginId": login.login_id}));
    assert_eq!(answer, json!({"status": "canceled"}));
    assert_eq!(wait_login_failed(&mut subscriber, &login.login_id), "login canceled");
    if let Ok(page) = browser.join().expect("the browser thread panicked") {
        assert!(!page.final_url.contains("/success"), "a canceled login showed the success page: {page:?}");
    }

    // Absence, with a short bound: past the moment the issuer answers the exchange, nothing was stored.
    std::thread::sleep((EXCHANGE_DELAY + Duration::from_millis(500)).saturating_sub(exchange_seen.elapsed()));
    assert!(!daemon.auth_path().exists(), "a canceled login stored its credentials");
    assert_eq!(issuer.count(Endpoint::TokenExchange), 0, "the canceled login went on to the token exchange");
    let status = subscriber.auth_status(true);
    assert_eq!((status["generation"].clone(), status["authToken"].clone()), (json!(0), Value::Null), "{status}");
}

/// S10. Two `slow_down` answers without an interval: the first adds 5 s to the current interval (100 ms,
/// codexd's floor for the issuer's "0"), the second 5 s more. The old code went back to original + 5 s, so its
/// third poll came 5 s after the second; here none comes within 7 s (the next is due after 10.1 s). About 12 s.
#[test]
fn each_slow_down_without_an_interval_slows_device_polling_by_five_more_seconds() {
    let issuer = device_issuer(None);
    let (_daemon, mut subscriber) = login_daemon(&issuer);
    issuer.script(Endpoint::DeviceToken, Fault::SlowDown { interval_secs: None });
    issuer.script(Endpoint::DeviceToken, Fault::SlowDown { interval_secs: None });
    let login = start_device_login(&mut subscriber);
    assert!(issuer.wait_for_count(Endpoint::DeviceToken, 2, Duration::from_secs(10)), "no second poll");
    let polls: Vec<SystemTime> = issuer.requests_to(Endpoint::DeviceToken).iter().map(|r| r.received_at).collect();
    let first_gap = polls[1].duration_since(polls[0]).unwrap_or_default();
    assert!(first_gap >= Duration::from_secs(5), "the poll after the first slow_down came after {first_gap:?}");
    assert!(
        !issuer.wait_for_count(Endpoint::DeviceToken, 3, Duration::from_secs(7)),
        "the poll after the second slow_down came within 7 s: the interval did not grow again"
    );
    assert_eq!(
        subscriber.call("account/login/cancel", json!({"loginId": login.login_id})),
        json!({"status": "canceled"})
    );
    assert_eq!(wait_login_failed(&mut subscriber, &login.login_id), "login canceled");
}
