//! Refresh against an issuer that misbehaves or refuses: a reused, expired or invalidated refresh token ends in
//! one `refreshFailed` and no request loop, with `auth.json` untouched until another program signs in; 5xx,
//! hangs and lost responses are retried with backoff while the old token is served promptly; and no token ever
//! reaches the daemon's log on any of these paths.

use codexd_e2e::session::{
    Session, access_token_of, aging, assert_no_secrets, assert_stderr_clean, forced, redeem, secrets_of, start_issuer,
};
use codexd_e2e::{Conn, wait_until, write_atomically};
use codexd_fake_issuer::{Account, Endpoint, Fault};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// An access-token lifetime that never needs a refresh during a test.
const HOUR: Duration = Duration::from_secs(3600);

/// Seconds left on a token inside the Codex CLI's 5-minute window: every `includeToken` call wants a refresh.
const IN_CLI_WINDOW: i64 = 240;

/// "Promptly", for an answer while the issuer hangs: well under a second, above the 500 ms HTTP timeout the
/// daemon may spend on its own attempt first.
const PROMPT: Duration = Duration::from_secs(1);

/// Asserts `update` is the one `refreshFailed` notification, with `code`.
fn assert_refresh_failed(update: &Value, code: &str) {
    assert_eq!(update["reason"], "refreshFailed", "{update}");
    assert_eq!(update["authMode"], Value::Null, "{update}");
    assert_eq!(update["authError"]["reason"], "refreshFailed", "{update}");
    assert_eq!(update["authError"]["issuerCode"], code, "{update}");
    assert!(update["authError"]["message"].as_str().is_some_and(|m| m.contains("sign in again")), "{update}");
}

/// Asserts the status answer carries no token and the permanent failure with `code`.
fn assert_status_failed(status: &Value, code: &str) {
    assert_eq!(status["authToken"], Value::Null, "{status}");
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authError"]["reason"], "refreshFailed", "{status}");
    assert_eq!(status["authError"]["issuerCode"], code, "{status}");
}

#[test]
fn a_reused_refresh_token_fails_once_for_good_until_another_program_signs_in() {
    let issuer = start_issuer(HOUR);
    let login = issuer.mint(&Account::default());
    // Another program redeemed this refresh token already; auth.json still holds it, near expiry.
    let (status, _) = redeem(issuer.url(), &login.refresh_token);
    assert_eq!(status, 200, "the direct redemption failed");
    let stale = aging(login.auth_json(issuer.url()).as_bytes(), IN_CLI_WINDOW);
    let baseline = issuer.count(Endpoint::Refresh);
    let daemon = codexd_e2e::session::daemon_for(&issuer).start();
    let mut subscriber = daemon.subscriber();
    write_atomically(daemon.home(), &stale);
    assert_eq!(subscriber.next_account_updated()["reason"], "external");

    // The daemon refreshes on its own (the token is near expiry), once, and gives up for good.
    let failed = subscriber.next_account_updated();
    assert_refresh_failed(&failed, "refresh_token_reused");
    assert_eq!(issuer.count(Endpoint::Refresh), baseline + 1);
    // No retry loop: several backoff periods (and the scheduler's 1 s floor) pass without another request.
    assert!(
        !issuer.wait_for_count(Endpoint::Refresh, baseline + 2, Duration::from_secs(1)),
        "codexd asked again with a refresh token the issuer refused for good"
    );

    let mut conn = daemon.raw_conn();
    let status = conn.auth_status(true);
    assert_status_failed(&status, "refresh_token_reused");
    assert_eq!(status["generation"], failed["generation"]);
    // Asking for a refresh again sends nothing and answers the same.
    assert_status_failed(&conn.call("getAuthStatus", forced()), "refresh_token_reused");
    let account = conn.call("account/read", json!({"refreshToken": true}));
    assert_eq!(account["account"], Value::Null, "{account}");
    assert_eq!(issuer.count(Endpoint::Refresh), baseline + 1, "a forced refresh of a dead token made a request");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), stale, "auth.json changed");

    // Another program signs in: the failure is forgotten, the new token served (the next notification is that
    // one, so there was no second refreshFailed).
    let fresh = issuer.mint(&Account::default());
    let fresh_json = fresh.auth_json(issuer.url());
    write_atomically(daemon.home(), fresh_json.as_bytes());
    let update = subscriber.next_account_updated();
    assert_eq!((update["reason"].as_str(), update["authMode"].as_str()), (Some("external"), Some("chatgpt")));
    assert!(update.get("authError").is_none_or(Value::is_null), "{update}");
    let status = conn.auth_status(true);
    assert_eq!(status["authToken"], fresh.access_token.as_str(), "{status}");
    assert!(status.get("authError").is_none_or(Value::is_null), "{status}");
    assert_eq!(issuer.count(Endpoint::Refresh), baseline + 1);

    let mut secrets = secrets_of(&stale);
    secrets.extend(secrets_of(fresh_json.as_bytes()));
    assert_stderr_clean(&daemon, &secrets);
}

#[test]
fn refresh_token_expired_and_invalidated_on_http_400_are_permanent() {
    for code in ["refresh_token_expired", "refresh_token_invalidated"] {
        let session = Session::start(HOUR);
        let mut subscriber = session.daemon.subscriber();
        session.issuer.script(Endpoint::Refresh, Fault::RefreshError { status: 400, code: code.into() });
        let status = subscriber.call("getAuthStatus", forced());
        assert_status_failed(&status, code);
        let hint = if code.ends_with("expired") { "expired" } else { "revoked" };
        assert!(status["authError"]["message"].as_str().unwrap().contains(hint), "{status}");
        assert_refresh_failed(&subscriber.next_account_updated(), code);
        // Dead for good: a plain status and another forced refresh answer the same, without a request.
        assert_status_failed(&subscriber.auth_status(true), code);
        assert_status_failed(&subscriber.call("getAuthStatus", forced()), code);
        assert_eq!(session.refreshes(), 1, "{code}");
        assert_eq!(std::fs::read(session.daemon.auth_path()).unwrap(), session.auth_json, "{code}: auth.json changed");
        assert_stderr_clean(&session.daemon, &secrets_of(&session.auth_json));
    }
}

#[test]
fn an_http_400_with_another_code_is_transient() {
    let session = Session::start(HOUR);
    let mut subscriber = session.daemon.subscriber();
    session.issuer.script(Endpoint::Refresh, Fault::RefreshError { status: 400, code: "invalid_request".into() });
    let error = subscriber.call_error("getAuthStatus", forced());
    assert_eq!(error["code"], -32003, "{error}");
    assert_eq!(error["data"]["reason"], "refreshUnavailable", "{error}");
    // The old token is still served, nothing was announced, and the next forced refresh succeeds.
    let status = subscriber.auth_status(true);
    assert_eq!(status["authToken"], session.login.access_token.as_str(), "{status}");
    assert!(status.get("authError").is_none_or(Value::is_null), "{status}");
    assert_eq!(subscriber.pending_notifications(), 0, "a transient failure was announced");
    let status = subscriber.call("getAuthStatus", forced());
    assert_ne!(status["authToken"], session.login.access_token.as_str());
    assert!(status["authToken"].is_string(), "{status}");
    assert_eq!(subscriber.next_account_updated()["reason"], "refresh");
    assert_eq!(session.refreshes(), 2);
    // The same refresh token both times: the failed attempt did not consume it.
    assert_eq!(session.presented_refresh_tokens(), vec![session.login.refresh_token.clone(); 2]);
}

#[test]
fn transient_500s_are_retried_with_growing_backoff_while_the_old_token_is_served() {
    // Backoff 100-800 ms: retries after 50-100, 100-200, 200-400 ms.
    const MIN_MS: u64 = 100;
    let (session, mut subscriber) = Session::start_external(
        HOUR,
        |issuer, auth| {
            for _ in 0..3 {
                issuer.script(Endpoint::Refresh, Fault::Status(500));
            }
            aging(&auth, IN_CLI_WINDOW)
        },
        |builder| {
            builder.env("CODEXD_REFRESH_BACKOFF_MIN_MS", MIN_MS.to_string()).env("CODEXD_REFRESH_BACKOFF_MAX_MS", "800")
        },
    );
    let old = access_token_of(&session.auth_json);
    let mut conn = session.daemon.raw_conn();
    let mut old_served = 0;
    let mut new_token = String::new();
    wait_until(Duration::from_secs(10), "a refresh to succeed after three 500s", || {
        let status = conn.auth_status(true);
        let token = status["authToken"].as_str().unwrap_or_else(|| panic!("no token served: {status}"));
        if token == old {
            old_served += 1;
            return false;
        }
        new_token = token.to_owned();
        true
    });
    assert!(old_served > 0, "the old token was never served while the issuer failed");
    assert_eq!(session.refreshes(), 4, "three failures and one success");
    assert_eq!(subscriber.next_account_updated()["reason"], "refresh", "the failures were announced");
    let stored = std::fs::read(session.daemon.auth_path()).unwrap();
    assert_eq!(access_token_of(&stored), new_token);

    let times: Vec<_> = session.issuer.requests_to(Endpoint::Refresh).iter().map(|r| r.received_at).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1].duration_since(w[0]).unwrap_or_default()).collect();
    for (k, gap) in gaps.iter().enumerate() {
        // Retry k+1 waits at least half of min * 2^k (the jitter scales the delay into [0.5, 1.0]).
        let floor = Duration::from_millis(MIN_MS * (1 << k) / 2);
        assert!(
            *gap >= floor,
            "retry {} came {gap:?} after the failure, before the backoff {floor:?}: {gaps:?}",
            k + 1
        );
    }
    assert!(gaps[2] > gaps[0], "the backoff did not grow: {gaps:?}");
    // A failed attempt does not consume the refresh token: all four presented the login's.
    assert_eq!(session.presented_refresh_tokens(), vec![session.login.refresh_token.clone(); 4]);
}

#[test]
fn a_hanging_issuer_is_timed_out_and_retried_while_tokens_are_served_promptly() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let (session, mut subscriber) = Session::start_external(
        HOUR,
        |issuer, auth| {
            issuer.script_always(Endpoint::Refresh, Fault::Hang);
            aging(&auth, IN_CLI_WINDOW)
        },
        |builder| builder.env("CODEXD_HTTP_TIMEOUT_MS", TIMEOUT.as_millis().to_string()),
    );
    let old = access_token_of(&session.auth_json);
    let mut conn = session.daemon.raw_conn();
    let ask = |conn: &mut Conn| {
        let started = Instant::now();
        let status = conn.auth_status(true);
        let took = started.elapsed();
        assert!(took < PROMPT, "getAuthStatus took {took:?} while the issuer hangs");
        status["authToken"].as_str().unwrap_or_else(|| panic!("no token served: {status}")).to_owned()
    };
    wait_until(Duration::from_secs(10), "three timed-out refresh attempts", || {
        assert_eq!(ask(&mut conn), old, "a new token while the issuer hangs");
        session.refreshes() >= 3
    });
    // A forced refresh during the hang is answered (within the timeout plus one attempt) as unavailable.
    let started = Instant::now();
    let error = conn.call_error("getAuthStatus", forced());
    assert!(started.elapsed() < TIMEOUT * 3, "the forced refresh took {:?}", started.elapsed());
    assert_eq!((error["code"].clone(), error["data"]["reason"].clone()), (json!(-32003), json!("refreshUnavailable")));

    let times: Vec<_> = session.issuer.requests_to(Endpoint::Refresh).iter().map(|r| r.received_at).collect();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
        // 20 ms less: the daemon's clock starts when it sends, the issuer's when it has read the request.
        let floor = TIMEOUT.saturating_sub(Duration::from_millis(20));
        assert!(gap >= floor, "attempts {gap:?} apart: one did not wait out the timeout");
    }

    // The issuer recovers: the next retry succeeds, and answers stay prompt throughout.
    session.issuer.clear_faults();
    let mut new_token = String::new();
    wait_until(Duration::from_secs(10), "the refresh to succeed after the issuer recovered", || {
        new_token = ask(&mut conn);
        new_token != old
    });
    assert_eq!(subscriber.next_account_updated()["reason"], "refresh");
    assert_eq!(access_token_of(&std::fs::read(session.daemon.auth_path()).unwrap()), new_token);
    assert!(session.presented_refresh_tokens().iter().all(|t| *t == session.login.refresh_token));
}

#[test]
fn a_response_lost_after_rotation_ends_in_refresh_failed_without_touching_auth_json() {
    // Outside the Codex CLI's window: only the scheduler refreshes, so the retry is the scheduler's.
    let (session, mut subscriber) = Session::start_external(
        HOUR,
        |issuer, auth| {
            issuer.script(Endpoint::Refresh, Fault::LoseResponseAfterRotate);
            aging(&auth, 400)
        },
        |builder| builder,
    );
    assert_refresh_failed(&subscriber.next_account_updated(), "refresh_token_reused");
    // The lost answer left the daemon with the redeemed token: the retry presented it and was refused.
    assert_eq!(session.presented_refresh_tokens(), vec![session.login.refresh_token.clone(); 2]);
    assert!(!session.issuer.is_current_refresh_token(&session.login.refresh_token));
    let mut conn = session.daemon.raw_conn();
    assert_status_failed(&conn.auth_status(true), "refresh_token_reused");
    assert_status_failed(&conn.call("getAuthStatus", forced()), "refresh_token_reused");
    assert_eq!(session.refreshes(), 2);
    assert_eq!(std::fs::read(session.daemon.auth_path()).unwrap(), session.auth_json, "auth.json changed");
    assert_stderr_clean(&session.daemon, &secrets_of(&session.auth_json));
}

#[test]
fn no_token_reaches_the_log_on_any_refresh_path() {
    let session =
        Session::start_with(HOUR, |_, auth| auth, |builder| builder.log("trace").env("CODEXD_HTTP_TIMEOUT_MS", "500"));
    let (daemon, issuer) = (&session.daemon, &session.issuer);
    let mut secrets = secrets_of(&session.auth_json);
    let mut conn = daemon.raw_conn();
    let remember_stored = |secrets: &mut Vec<String>| {
        secrets.extend(secrets_of(&std::fs::read(daemon.auth_path()).expect("auth.json")));
    };

    // Success.
    let status = conn.call("getAuthStatus", forced());
    assert!(status["authToken"].is_string(), "{status}");
    remember_stored(&mut secrets);
    // Transient: 500, a dropped connection, a hang past the timeout, a 400 with another code.
    for fault in [
        Fault::Status(500),
        Fault::Drop,
        Fault::Hang,
        Fault::RefreshError { status: 400, code: "invalid_grant".into() },
    ] {
        issuer.script(Endpoint::Refresh, fault.clone());
        let error = conn.call_error("getAuthStatus", forced());
        assert_eq!(error["data"]["reason"], "refreshUnavailable", "{fault:?}: {error}");
        issuer.clear_faults();
    }
    // A lost answer, then the permanent refusal of the redeemed token.
    issuer.script(Endpoint::Refresh, Fault::LoseResponseAfterRotate);
    assert_eq!(conn.call_error("getAuthStatus", forced())["data"]["reason"], "refreshUnavailable");
    assert_status_failed(&conn.call("getAuthStatus", forced()), "refresh_token_reused");
    // Another program signs in; refreshed again.
    let fresh = issuer.mint(&Account::default());
    let fresh_json = fresh.auth_json(issuer.url());
    secrets.extend(secrets_of(fresh_json.as_bytes()));
    let mut subscriber = daemon.subscriber();
    write_atomically(daemon.home(), fresh_json.as_bytes());
    assert_eq!(subscriber.next_account_updated()["reason"], "external");
    assert!(conn.call("getAuthStatus", forced())["authToken"].is_string());
    remember_stored(&mut secrets);
    secrets.extend(session.presented_refresh_tokens());
    secrets.sort();
    secrets.dedup();

    let log = daemon.stderr();
    assert!(log.contains("TRACE"), "the daemon did not log at trace level:\n{log}");
    assert!(log.contains("refreshing the access token"), "the refreshes were not logged:\n{log}");
    assert_no_secrets(&log, &secrets, "codexd's trace log");
}
