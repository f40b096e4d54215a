//! `account/logout`: removes `auth.json`, tells every subscriber exactly once, and is harmless when logged out.

use codexd_e2e::{AuthFixture, TestDaemon, apikey_auth_json, chatgpt_auth_json, write_atomically};
use serde_json::{Value, json};

fn logout_update(generation: u64) -> Value {
    json!({"authMode": null, "planType": null, "accountId": null, "generation": generation, "reason": "logout"})
}

/// Files left in CODEX_HOME besides the lock files the Codex CLI leaves behind too.
fn leftovers(daemon: &TestDaemon) -> Vec<String> {
    std::fs::read_dir(daemon.home())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "auth.lock" && name != "auth.json.lock")
        .collect()
}

#[test]
fn logout_removes_auth_json_and_answers_an_empty_object() {
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let mut conn = daemon.raw_conn();
    assert_eq!(conn.call("account/logout", Value::Null), json!({}));
    assert!(!daemon.auth_path().exists(), "auth.json is still there");
    assert_eq!(leftovers(&daemon), Vec::<String>::new(), "only the lock files may remain");
    let status = conn.auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (Value::Null, Value::Null));
    assert_eq!(status["generation"], 1);
    assert_eq!(conn.call("account/read", json!({}))["account"], Value::Null);
    assert_eq!(conn.daemon_status()["generation"], 1);
}

#[test]
fn logout_notifies_every_subscriber_once() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    let mut caller = daemon.raw_conn();
    assert_eq!(caller.call("account/logout", json!({})), json!({}));
    for (i, sub) in subscribers.iter_mut().enumerate() {
        assert_eq!(sub.next_account_updated(), logout_update(1), "subscriber {i}");
    }
    // The daemon's own deletion of auth.json must not come back as an `external` change: the next notification
    // is the one for a later login by another program.
    let other = fixture.with_tag("relogin");
    write_atomically(daemon.home(), &chatgpt_auth_json(&other));
    for (i, sub) in subscribers.iter_mut().enumerate() {
        let update = sub.next_account_updated();
        assert_eq!(
            update,
            json!({"authMode": "chatgpt", "planType": fixture.plan, "accountId": fixture.account_id,
                   "generation": 2, "reason": "external"}),
            "subscriber {i}"
        );
    }
    assert_eq!(caller.auth_status(true)["authToken"], other.access_token());
    assert_eq!(caller.pending_notifications(), 0, "a connection without initialize got notifications");
}

#[test]
fn a_subscriber_that_logs_out_is_notified_too() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-self"));
    let mut sub = daemon.subscriber();
    assert_eq!(sub.call("account/logout", json!({})), json!({}));
    assert_eq!(sub.next_account_updated(), logout_update(1));
    assert!(!daemon.auth_path().exists());
}

#[test]
fn logout_when_logged_out_changes_nothing_and_notifies_nobody() {
    let daemon = TestDaemon::start();
    let mut sub = daemon.subscriber();
    let mut caller = daemon.raw_conn();
    assert_eq!(caller.call("account/logout", json!({})), json!({}));
    assert_eq!(caller.auth_status(false)["generation"], 0);
    assert_eq!(sub.call("account/logout", json!({})), json!({}));
    assert_eq!(sub.auth_status(false)["generation"], 0);
    assert!(!daemon.auth_path().exists(), "logout created auth.json");
    // Had either logout notified, that notification would come first.
    write_atomically(daemon.home(), &apikey_auth_json("sk-SECRETMARK-later"));
    let update = sub.next_account_updated();
    assert_eq!(
        update,
        json!({"authMode": "apikey", "planType": null, "accountId": null, "generation": 1, "reason": "external"})
    );
}

#[test]
fn logging_out_twice_notifies_once() {
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let mut sub = daemon.subscriber();
    let mut caller = daemon.raw_conn();
    caller.call("account/logout", json!({}));
    caller.call("account/logout", json!({}));
    assert_eq!(sub.next_account_updated(), logout_update(1));
    assert_eq!(caller.auth_status(false)["generation"], 1);
    write_atomically(daemon.home(), &apikey_auth_json("sk-SECRETMARK-again"));
    let update = sub.next_account_updated();
    assert_eq!((update["generation"].clone(), update["reason"].clone()), (json!(2), json!("external")), "{update}");
}
