//! Graceful shutdown, by request, SIGTERM or SIGINT: every subscriber gets `daemon/shuttingDown` as its last
//! message, requests already sent are answered, the socket file goes away, and the exit status is 0.

use codexd_e2e::{AuthFixture, Conn, TestDaemon, chatgpt_auth_json};
use rustix::process::Signal;
use serde_json::{Value, json};
use std::time::Duration;

const EXIT: Duration = Duration::from_secs(10);

fn shutting_down() -> Value {
    json!({"jsonrpc": "2.0", "method": "daemon/shuttingDown", "params": {}})
}

/// Asserts that each subscriber's remaining messages end with exactly one `daemon/shuttingDown`, and that the
/// plain connection is closed without one.
fn assert_told_and_closed(subscribers: &mut [Conn], plain: &mut Conn) {
    for (i, sub) in subscribers.iter_mut().enumerate() {
        let messages = sub.read_to_end();
        assert_eq!(messages.last(), Some(&shutting_down()), "subscriber {i}: {messages:?}");
        let count = messages.iter().filter(|m| m["method"] == "daemon/shuttingDown").count();
        assert_eq!(count, 1, "subscriber {i}: {messages:?}");
    }
    let messages = plain.read_to_end();
    assert!(messages.is_empty(), "a connection without initialize got: {messages:?}");
}

fn assert_gone(daemon: &TestDaemon) {
    assert!(!daemon.socket().exists(), "the socket file is still there");
    assert!(Conn::connect(daemon.socket()).is_err(), "something still accepts connections");
}

#[test]
fn shutdown_request_answers_then_tells_every_subscriber_and_exits_0() {
    let mut daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    let mut plain = daemon.raw_conn();
    plain.daemon_status();
    let mut caller = daemon.raw_conn();
    assert_eq!(caller.call("daemon/shutdown", Value::Null), json!({}));
    assert_told_and_closed(&mut subscribers, &mut plain);
    assert!(caller.read_to_end().is_empty(), "the caller did not subscribe");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert_gone(&daemon);
}

#[test]
fn sigterm_tells_every_subscriber_and_exits_0() {
    let mut daemon = TestDaemon::start();
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    let mut plain = daemon.raw_conn();
    plain.daemon_status();
    daemon.signal(Signal::TERM);
    assert_told_and_closed(&mut subscribers, &mut plain);
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert_gone(&daemon);
}

#[test]
fn sigint_tells_every_subscriber_and_exits_0() {
    let mut daemon = TestDaemon::start();
    let mut subscribers: Vec<_> = (0..3).map(|_| daemon.subscriber()).collect();
    let mut plain = daemon.raw_conn();
    plain.daemon_status();
    daemon.signal(Signal::INT);
    assert_told_and_closed(&mut subscribers, &mut plain);
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert_gone(&daemon);
}

#[test]
fn requests_sent_before_the_shutdown_are_answered_first() {
    let fixture = AuthFixture::default();
    let mut daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut conn = daemon.subscriber();
    let mut batch = Vec::new();
    for request in [
        json!({"jsonrpc": "2.0", "id": 10, "method": "getAuthStatus", "params": {"includeToken": true}}),
        json!({"jsonrpc": "2.0", "id": 11, "method": "account/read"}),
        json!({"jsonrpc": "2.0", "id": 12, "method": "daemon/shutdown"}),
    ] {
        batch.extend(serde_json::to_vec(&request).unwrap());
        batch.push(b'\n');
    }
    conn.send_bytes(&batch).unwrap();
    let messages = conn.read_to_end();
    let ids: Vec<&Value> = messages.iter().filter_map(|m| m.get("id")).collect();
    assert_eq!(ids, [&json!(10), &json!(11), &json!(12)], "{messages:?}");
    assert_eq!(messages[0]["result"]["authToken"], fixture.access_token());
    assert_eq!(messages[1]["result"]["account"]["type"], "chatgpt");
    assert_eq!(messages[2]["result"], json!({}));
    assert_eq!(messages.last(), Some(&shutting_down()), "{messages:?}");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
}

#[test]
fn the_blocking_client_sees_the_shutdown_and_then_the_end() {
    let mut daemon = TestDaemon::start();
    let mut client = daemon.client();
    client.initialize("e2e", "1").unwrap();
    daemon.signal(Signal::TERM);
    let event = client.next_event().unwrap();
    assert_eq!(event, Some(codexd_client::Event::ShuttingDown));
    assert!(client.next_event().unwrap().is_none(), "the connection should end after daemon/shuttingDown");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
}
