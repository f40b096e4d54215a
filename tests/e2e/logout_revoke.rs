//! `account/logout` with revocation: the Codex CLI's JSON revoke request goes to the issuer recorded in
//! `auth.json` before the file is deleted; a dead revoke endpoint delays the logout by a bounded time only;
//! API keys are never sent anywhere.

use codexd_e2e::logins::wait_for_notification;
use codexd_e2e::{AuthFixture, Conn, TestDaemon, TestDaemonBuilder, apikey_auth_json, legacy_chatgpt_auth_json};
use codexd_fake_issuer::{Account, CLIENT_ID, Endpoint, FakeIssuer, Fault, RecordedRequest};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Long enough for a revoke that hangs until codexd's own bound (10 s at most) gives up.
const LOGOUT_DEADLINE: Duration = Duration::from_secs(15);

fn logout_update(generation: u64) -> Value {
    json!({"authMode": null, "planType": null, "accountId": null, "generation": generation, "reason": "logout"})
}

/// `account/logout` on `conn`, allowing for a slow revoke.
fn logout(conn: &mut Conn) -> Value {
    conn.set_read_timeout(Some(LOGOUT_DEADLINE));
    let result = conn.call("account/logout", Value::Null);
    conn.set_read_timeout(Some(codexd_e2e::conn::READ_TIMEOUT));
    result
}

/// Asserts the Codex CLI's revoke request for `refresh_token`.
fn assert_revoke_request(request: &RecordedRequest, refresh_token: &str) {
    assert_eq!(request.path, "/oauth/revoke");
    assert!(request.header("content-type").is_some_and(|t| t.starts_with("application/json")), "{request:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&request.body).unwrap_or_default(),
        json!({"token": refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID})
    );
    let keys: Vec<String> = request.json().unwrap().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["token", "token_type_hint", "client_id"], "not the Codex CLI's key order");
}

#[test]
fn logout_revokes_the_refresh_token_at_the_provenance_issuer() {
    // The login came from one issuer; codexd is configured with another. Revoke goes where the tokens came from.
    let login_issuer = FakeIssuer::start();
    let configured = FakeIssuer::start();
    let tokens = login_issuer.mint(&Account::default());
    let daemon = TestDaemon::builder().issuer(configured.url()).auth_json(tokens.auth_json(login_issuer.url())).start();
    let mut sub = daemon.subscriber();
    let mut caller = daemon.raw_conn();
    assert_eq!(logout(&mut caller), json!({}));

    let revokes = login_issuer.requests_to(Endpoint::Revoke);
    assert_eq!(revokes.len(), 1, "{revokes:?}");
    assert_revoke_request(&revokes[0], &tokens.refresh_token);
    assert_eq!(login_issuer.revoked(), [tokens.refresh_token.as_str()]);
    assert!(!login_issuer.is_current_refresh_token(&tokens.refresh_token), "the token family is still alive");
    assert_eq!(configured.requests(), Vec::new(), "the configured issuer was called");
    assert!(!daemon.auth_path().exists(), "auth.json is still there");
    assert_eq!(sub.next_account_updated(), logout_update(1));
}

#[test]
fn logout_revokes_before_it_deletes() {
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account::default());
    let daemon = TestDaemon::builder().issuer(issuer.url()).auth_json(tokens.auth_json(issuer.url())).start();
    let mut sub = daemon.subscriber();
    issuer.script(Endpoint::Revoke, Fault::Hang);
    std::thread::scope(|scope| {
        let logging_out = scope.spawn(|| logout(&mut daemon.raw_conn()));
        assert!(issuer.wait_for_count(Endpoint::Revoke, 1, LOGOUT_DEADLINE), "no revoke request");
        // The revoke is in flight: the credentials are still stored and nobody was told of a logout.
        assert!(daemon.auth_path().exists(), "auth.json was deleted before the revoke finished");
        assert_eq!(daemon.raw_conn().auth_status(false)["authMethod"], "chatgpt");
        // Release the hung request (its connection closes unanswered): the logout goes on.
        issuer.clear_faults();
        assert_eq!(logging_out.join().unwrap(), json!({}));
    });
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.next_account_updated(), logout_update(1));
    assert_revoke_request(&issuer.requests_to(Endpoint::Revoke)[0], &tokens.refresh_token);
}

/// Logs out of a ChatGPT login (daemon builder passed through `configure`) whose revoke endpoint hangs for good:
/// asserts that the logout succeeds, deletes the credentials, is announced, and tried one revoke; returns how long
/// the logout took.
fn logout_with_hanging_revoke(configure: impl FnOnce(TestDaemonBuilder) -> TestDaemonBuilder) -> Duration {
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account::default());
    let daemon =
        configure(TestDaemon::builder().issuer(issuer.url())).auth_json(tokens.auth_json(issuer.url())).start();
    let mut sub = daemon.subscriber();
    issuer.script_always(Endpoint::Revoke, Fault::Hang);
    let started = Instant::now();
    assert_eq!(logout(&mut daemon.raw_conn()), json!({}));
    let took = started.elapsed();
    assert!(!daemon.auth_path().exists(), "a dead revoke endpoint kept the credentials");
    assert_eq!(sub.next_account_updated(), logout_update(1));
    assert_eq!(issuer.count(Endpoint::Revoke), 1);
    took
}

#[test]
fn a_hanging_revoke_endpoint_delays_logout_by_ten_seconds_at_most() {
    let took = logout_with_hanging_revoke(|builder| builder);
    // The default HTTP timeout is 30 s; the revoke's own bound is the Codex CLI's 10 s.
    assert!(took < Duration::from_millis(11_500), "logout took {took:?}");
}

#[test]
fn a_hanging_revoke_endpoint_delays_logout_by_the_http_timeout_only() {
    let took = logout_with_hanging_revoke(|builder| builder.env("CODEXD_HTTP_TIMEOUT_MS", "500"));
    // The revoke is bounded by min(CODEXD_HTTP_TIMEOUT_MS, 10 s): 0.5 s here, plus slack for a loaded machine.
    assert!(took < Duration::from_secs(5), "logout took {took:?} with a 500 ms HTTP timeout");
}

#[test]
fn a_dropped_revoke_connection_does_not_stop_the_logout() {
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account::default());
    let daemon = TestDaemon::builder().issuer(issuer.url()).auth_json(tokens.auth_json(issuer.url())).start();
    let mut sub = daemon.subscriber();
    issuer.script_always(Endpoint::Revoke, Fault::Drop);
    assert_eq!(logout(&mut daemon.raw_conn()), json!({}));
    assert!(issuer.count(Endpoint::Revoke) >= 1, "no revoke attempt");
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.next_account_updated(), logout_update(1));
}

#[test]
fn a_legacy_login_without_provenance_is_revoked_at_the_configured_issuer() {
    let issuer = FakeIssuer::start();
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::builder().issuer(issuer.url()).auth_json(legacy_chatgpt_auth_json(&fixture)).start();
    let mut sub = daemon.subscriber();
    assert_eq!(logout(&mut daemon.raw_conn()), json!({}));
    let revokes = issuer.requests_to(Endpoint::Revoke);
    assert_eq!(revokes.len(), 1, "{revokes:?}");
    assert_revoke_request(&revokes[0], &fixture.refresh_token());
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.next_account_updated(), logout_update(1));
}

#[test]
fn an_api_key_logout_sends_no_revoke() {
    let issuer = FakeIssuer::start();
    let daemon =
        TestDaemon::builder().issuer(issuer.url()).auth_json(apikey_auth_json("sk-SECRETMARK-local-only")).start();
    let mut sub = daemon.subscriber();
    assert_eq!(logout(&mut daemon.raw_conn()), json!({}));
    let update = wait_for_notification(&mut sub, "account/updated", LOGOUT_DEADLINE);
    assert_eq!(update, logout_update(1));
    assert!(!daemon.auth_path().exists());
    assert_eq!(issuer.requests(), Vec::new(), "an API-key logout called the issuer");
}
