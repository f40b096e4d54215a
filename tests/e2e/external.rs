//! Changes made to `auth.json` by other programs (the Codex CLI logging in, refreshing, logging out): each one
//! reaches every subscriber as `account/updated` with reason `external`, and the next answer serves it.

use codexd_e2e::{
    AuthFixture, TestDaemon, apikey_auth_json, chatgpt_auth_json, legacy_chatgpt_auth_json, remove_auth, wait_until,
    write_atomically,
};
use serde_json::{Value, json};
use std::time::Duration;

fn chatgpt_update(f: &AuthFixture, generation: u64) -> Value {
    json!({"authMode": "chatgpt", "planType": f.plan, "accountId": f.account_id, "generation": generation,
           "reason": "external"})
}

#[test]
fn an_external_login_notifies_every_subscriber() {
    let daemon = TestDaemon::start();
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    let fixture = AuthFixture { plan: "pro".into(), account_id: "acct-ext-login".into(), ..AuthFixture::default() };
    write_atomically(daemon.home(), &chatgpt_auth_json(&fixture));
    for (i, sub) in subscribers.iter_mut().enumerate() {
        assert_eq!(sub.next_account_updated(), chatgpt_update(&fixture, 1), "subscriber {i}");
    }
    let status = subscribers[0].auth_status(true);
    assert_eq!(status["authToken"], fixture.access_token());
    assert_eq!(status["generation"], 1);
    assert_eq!(status["accountId"], "acct-ext-login");
}

#[test]
fn new_tokens_written_by_another_program_are_served_after_the_notification() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    let refreshed = AuthFixture { access_exp: fixture.access_exp + 7200, ..fixture.with_tag("refreshed") };
    write_atomically(daemon.home(), &chatgpt_auth_json(&refreshed));
    for (i, sub) in subscribers.iter_mut().enumerate() {
        assert_eq!(sub.next_account_updated(), chatgpt_update(&refreshed, 1), "subscriber {i}");
    }
    let status = subscribers[1].auth_status(true);
    assert_eq!(status["authToken"], refreshed.access_token());
    assert_eq!(codexd_e2e::parse_rfc3339(status["expiresAt"].as_str().unwrap()), refreshed.expires_at());
}

#[test]
fn an_external_deletion_logs_every_subscriber_out() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-deleted"));
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    remove_auth(daemon.home());
    for (i, sub) in subscribers.iter_mut().enumerate() {
        assert_eq!(
            sub.next_account_updated(),
            json!({"authMode": null, "planType": null, "accountId": null, "generation": 1, "reason": "external"}),
            "subscriber {i}"
        );
    }
    let status = subscribers[2].auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (Value::Null, Value::Null));
}

#[test]
fn rewriting_identical_bytes_does_not_notify() {
    let fixture = AuthFixture::default();
    let bytes = chatgpt_auth_json(&fixture);
    let daemon = TestDaemon::with_auth(bytes.clone());
    let mut sub = daemon.subscriber();
    write_atomically(daemon.home(), &bytes);
    write_atomically(daemon.home(), &bytes);
    sub.assert_silent_for(Duration::from_millis(400));
    let changed = fixture.with_tag("changed");
    write_atomically(daemon.home(), &chatgpt_auth_json(&changed));
    assert_eq!(sub.next_account_updated(), chatgpt_update(&changed, 1), "the identical rewrites counted as changes");
    assert_eq!(sub.auth_status(false)["generation"], 1);
}

#[test]
fn switching_from_chatgpt_to_an_api_key_is_reported() {
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let mut sub = daemon.subscriber();
    write_atomically(daemon.home(), &apikey_auth_json("sk-SECRETMARK-switch"));
    assert_eq!(
        sub.next_account_updated(),
        json!({"authMode": "apikey", "planType": null, "accountId": null, "generation": 1, "reason": "external"})
    );
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-switch");
    assert_eq!(sub.call("account/read", json!({}))["account"], json!({"type": "apiKey"}));
}

#[test]
fn a_sequence_of_external_changes_counts_generations_in_order() {
    let daemon = TestDaemon::start();
    let mut subscribers: Vec<_> = (0..2).map(|_| daemon.subscriber()).collect();
    let first = AuthFixture::default();
    let second = AuthFixture { account_id: "acct-second".into(), plan: "team".into(), ..first.with_tag("second") };
    write_atomically(daemon.home(), &chatgpt_auth_json(&first));
    for sub in &mut subscribers {
        assert_eq!(sub.next_account_updated(), chatgpt_update(&first, 1));
    }
    write_atomically(daemon.home(), &legacy_chatgpt_auth_json(&second));
    for sub in &mut subscribers {
        assert_eq!(sub.next_account_updated(), chatgpt_update(&second, 2));
    }
    remove_auth(daemon.home());
    for sub in &mut subscribers {
        let update = sub.next_account_updated();
        assert_eq!((update["generation"].clone(), update["authMode"].clone()), (json!(3), Value::Null), "{update}");
    }
    assert_eq!(daemon.status()["generation"], 3);
}

#[test]
fn connections_without_initialize_receive_no_notifications() {
    let daemon = TestDaemon::start();
    let mut plain = daemon.raw_conn();
    plain.auth_status(false);
    let mut sub = daemon.subscriber();
    write_atomically(daemon.home(), &apikey_auth_json("sk-SECRETMARK-plain"));
    sub.next_account_updated();
    let status = plain.auth_status(false);
    assert_eq!(status["generation"], 1, "the plain connection sees the change on its next call");
    assert_eq!(plain.pending_notifications(), 0, "a connection without initialize got a notification");
}

#[test]
fn an_in_place_rewrite_by_an_old_codex_is_picked_up() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut sub = daemon.subscriber();
    let newer = fixture.with_tag("inplace");
    std::fs::write(daemon.auth_path(), chatgpt_auth_json(&newer)).unwrap();
    // Truncate-then-write may be seen half way (an unusable file) first; the final state must arrive.
    let mut last = Value::Null;
    wait_until(Duration::from_secs(5), "a notification with the rewritten login", || {
        last = sub.next_account_updated();
        last["authMode"] == "chatgpt"
    });
    assert_eq!(last["reason"], "external");
    assert_eq!(sub.auth_status(true)["authToken"], newer.access_token());
}

#[test]
fn the_watcher_re_reads_once_per_change_and_not_because_of_its_own_reads() {
    // The watcher once woke on its own opens of auth.json and re-read the file forever (~30 times a second).
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let rereads = || daemon.stderr().matches("re-reading the credential store").count();
    let mut sub = daemon.subscriber();
    wait_until(Duration::from_secs(5), "the start-up re-read", || rereads() >= 1);
    write_atomically(daemon.home(), &chatgpt_auth_json(&fixture.with_tag("other")));
    assert_eq!(sub.next_account_updated()["reason"], "external");
    let after_change = rereads();
    assert!(after_change <= 3, "{after_change} re-reads for one start and one change");
    // Silence on the socket for a while, and no further re-read: the watcher is idle.
    sub.assert_silent_for(Duration::from_millis(500));
    assert_eq!(rereads(), after_change, "the store was re-read with nothing changing");
}
