//! Device-code logins through codexd against the fake issuer: polling while pending, `slow_down`, an expired
//! code, the device-code timeout, cancel, and what is stored (no API key; the exchange's redirect_uri is the
//! issuer's `/deviceauth/callback`).

use codexd_e2e::TestDaemon;
use codexd_e2e::logins::{
    LOGIN_DEADLINE, device_issuer, form_decode, keys, param, read_auth_json, start_device_login, wait_login_completed,
    wait_login_failed,
};
use codexd_fake_issuer::{CLIENT_ID, Endpoint, Fault};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime};

fn gap(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or_default()
}

#[test]
fn device_login_polls_while_pending_then_stores_the_login_without_an_api_key() {
    let issuer = device_issuer(Some(2));
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    let login = start_device_login(&mut sub);
    assert_eq!(login.verification_url, format!("{}/codex/device", issuer.url()));
    let code = login.user_code.as_bytes();
    assert!(
        code.len() == 9 && code[4] == b'-' && code.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_uppercase()),
        "user code {:?}",
        login.user_code
    );

    let (before, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": true, "error": null}));
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(
        before[0]["params"],
        json!({"authMode": "chatgpt", "planType": "plus", "accountId": "acct-fake-0001", "generation": 1,
               "reason": "login"})
    );

    // The wire: the user code request, two pending polls and the approving one, then the code exchange with the
    // server-made verifier and the issuer's device callback; no token exchange.
    let user_code_request = issuer.requests_to(Endpoint::DeviceUserCode);
    assert_eq!(user_code_request.len(), 1);
    assert_eq!(user_code_request[0].json(), Some(json!({"client_id": CLIENT_ID})));
    let polls = issuer.requests_to(Endpoint::DeviceToken);
    assert_eq!(polls.len(), 3, "two pending polls, then the approving one");
    let device_auth_id = polls[0].param("device_auth_id").expect("device_auth_id");
    for poll in &polls {
        assert_eq!(poll.json(), Some(json!({"device_auth_id": device_auth_id, "user_code": login.user_code})));
    }
    assert_eq!(issuer.requests_to(Endpoint::TokenExchange).len(), 0, "a device login has no token exchange");
    let exchange = issuer.requests_to(Endpoint::CodeExchange);
    assert_eq!(exchange.len(), 1);
    let form = form_decode(&exchange[0].body);
    assert_eq!(param(&form, "grant_type").as_deref(), Some("authorization_code"));
    assert_eq!(param(&form, "redirect_uri"), Some(format!("{}/deviceauth/callback", issuer.url())));
    assert!(param(&form, "code_verifier").is_some_and(|v| v.len() == 86), "{form:?}");

    let doc = read_auth_json(&daemon.auth_path());
    assert_eq!(keys(&doc), ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]);
    assert_eq!((doc["auth_mode"].clone(), doc["OPENAI_API_KEY"].clone()), (json!("chatgpt"), Value::Null));
    assert_eq!(doc["tokens"]["oauth_provenance"], json!({"issuer": issuer.url(), "client_id": CLIENT_ID}));
    assert_eq!(doc["tokens"]["account_id"], "acct-fake-0001");
    assert!(issuer.is_current_refresh_token(doc["tokens"]["refresh_token"].as_str().unwrap()));
    assert_eq!(sub.auth_status(true)["authToken"], doc["tokens"]["access_token"]);
}

#[test]
fn slow_down_makes_the_daemon_poll_less_often() {
    let issuer = device_issuer(None);
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    // The first poll is told to slow down to 1 s; approve once two more polls have come (the approval reaches
    // the 3rd poll if it is still being answered, else the 4th).
    issuer.script(Endpoint::DeviceToken, Fault::SlowDown { interval_secs: Some(1) });
    let login = start_device_login(&mut sub);
    assert!(issuer.wait_for_count(Endpoint::DeviceToken, 3, LOGIN_DEADLINE), "codexd stopped polling");
    assert!(issuer.approve_device(&login.user_code));
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");

    let user_code_at = issuer.requests_to(Endpoint::DeviceUserCode)[0].received_at;
    let polls: Vec<SystemTime> = issuer.requests_to(Endpoint::DeviceToken).iter().map(|r| r.received_at).collect();
    assert!(matches!(polls.len(), 3 | 4), "polls: {polls:?}");
    // Before: the issuer's interval "0", i.e. codexd's 100 ms floor (generous bound for a loaded machine).
    let first = gap(user_code_at, polls[0]);
    assert!(first < Duration::from_millis(800), "first poll after {first:?}");
    // After: at least the new interval.
    let gaps: Vec<Duration> = polls.windows(2).map(|w| gap(w[0], w[1])).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(950)), "gaps after slow_down: {gaps:?}");
    assert_eq!(read_auth_json(&daemon.auth_path())["OPENAI_API_KEY"], Value::Null);
}

#[test]
fn an_expired_device_code_ends_the_login() {
    let issuer = device_issuer(None);
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    issuer.script(Endpoint::DeviceToken, Fault::DeviceExpired);
    let login = start_device_login(&mut sub);
    let error = wait_login_failed(&mut sub, &login.login_id);
    assert!(error.contains("expired"), "{error}");
    assert_eq!(issuer.count(Endpoint::DeviceToken), 1, "codexd polled on after the code expired");
    assert_eq!(issuer.count(Endpoint::CodeExchange), 0);
    assert!(!daemon.auth_path().exists());
}

#[test]
fn device_login_gives_up_after_the_device_code_timeout() {
    let issuer = device_issuer(None);
    let daemon = TestDaemon::builder().issuer(issuer.url()).env("CODEXD_DEVICE_CODE_TIMEOUT_SECS", "1").start();
    let mut sub = daemon.subscriber();
    let started = Instant::now();
    let login = start_device_login(&mut sub);
    let error = wait_login_failed(&mut sub, &login.login_id);
    let took = started.elapsed();
    assert!(error.contains("timed out"), "{error}");
    assert!(took >= Duration::from_millis(900), "ended after {took:?}, before its 1 s timeout");
    assert!(issuer.count(Endpoint::DeviceToken) >= 2, "codexd did not poll while waiting");
    assert_eq!(issuer.count(Endpoint::CodeExchange), 0);
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": login.login_id})), json!({"status": "notFound"}));
}

#[test]
fn cancel_ends_a_device_login() {
    let issuer = device_issuer(None);
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let mut sub = daemon.subscriber();
    let login = start_device_login(&mut sub);
    assert!(issuer.wait_for_count(Endpoint::DeviceToken, 1, LOGIN_DEADLINE));
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": login.login_id})), json!({"status": "canceled"}));
    assert_eq!(wait_login_failed(&mut sub, &login.login_id), "login canceled");
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.auth_status(false)["generation"], 0);
}
