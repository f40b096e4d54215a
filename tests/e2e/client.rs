//! The `codexd_client` library (blocking `Client`, `AsyncClient`) against the real daemon.

use codexd_client::proto::methods::{Account, AuthMode, UpdateReason};
use codexd_client::{ClientError, Event};
use codexd_e2e::logins::CHATGPT_DISABLED;
use codexd_e2e::{AuthFixture, TestDaemon, chatgpt_auth_json, write_atomically};
use std::time::Duration;

const EVENT_DEADLINE: Duration = Duration::from_secs(5);

#[test]
fn the_blocking_client_reads_token_account_and_daemon_status() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut client = daemon.client();
    let init = client.initialize("e2e", "1.2.3").unwrap();
    assert_eq!(init.server_info.name, "codexd");
    let status = client.get_auth_status(true).unwrap();
    assert_eq!(status.auth_method, Some(AuthMode::Chatgpt));
    assert_eq!(status.auth_token.as_ref().map(|t| t.expose().to_owned()), Some(fixture.access_token()));
    assert_eq!(status.account_id.as_deref(), Some(fixture.account_id.as_str()));
    assert_eq!(
        client.account_read().unwrap().account,
        Some(Account::Chatgpt {
            email: Some(fixture.email.clone()),
            plan_type: Some(fixture.plan.clone()),
            account_id: Some(fixture.account_id.clone()),
        })
    );
    let daemon_status = client.daemon_status().unwrap();
    assert_eq!(daemon_status.pid, daemon.pid());
    assert_eq!(daemon_status.subscribers, 1);
}

#[test]
fn refusals_arrive_as_daemon_errors_and_the_connection_stays_usable() {
    let daemon = TestDaemon::start();
    std::fs::write(daemon.home().join("config.toml"), "forced_login_method = \"api\"\n").unwrap();
    let mut client = daemon.client();
    let err = client
        .call::<_, serde_json::Value>("account/login/start", Some(&serde_json::json!({"type": "chatgpt"})))
        .unwrap_err();
    let ClientError::Daemon(error) = err else { panic!("expected a daemon error, got {err:?}") };
    assert_eq!((error.code, error.reason()), (-32002, "policyRefused"));
    assert_eq!(error.message, CHATGPT_DISABLED);
    assert_eq!(client.get_auth_status(false).unwrap().generation, 0);
}

#[test]
fn connecting_to_a_missing_socket_is_unreachable() {
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let err = codexd_client::Client::connect(&scratch.path().join("none.sock")).unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
}

#[test]
fn the_blocking_client_queues_notifications_that_arrive_during_a_call() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::start();
    let mut client = daemon.client();
    client.initialize("e2e", "1").unwrap();
    let mut watcher = daemon.subscriber();
    write_atomically(daemon.home(), &chatgpt_auth_json(&fixture));
    // Once another subscriber has it, it was sent to this one too; the call's reply comes after it.
    watcher.next_account_updated();
    assert_eq!(client.get_auth_status(false).unwrap().generation, 1);
    let Some(Event::AccountUpdated(update)) = client.next_event().unwrap() else { panic!("no queued update") };
    assert_eq!((update.generation, update.reason), (1, UpdateReason::External));
}

#[tokio::test]
async fn async_subscribers_each_receive_logout_then_shutdown() {
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let mut clients = Vec::new();
    for i in 0..3 {
        let client = daemon.async_client().await;
        client.initialize(&format!("e2e-{i}"), "1").await.unwrap();
        clients.push(client);
    }
    clients[0].logout().await.unwrap();
    for (i, client) in clients.iter_mut().enumerate() {
        let event = tokio::time::timeout(EVENT_DEADLINE, client.next_event()).await.expect("no event in time");
        let Some(Event::AccountUpdated(update)) = event else { panic!("subscriber {i}: {event:?}") };
        assert_eq!((update.generation, update.reason, update.auth_mode), (1, UpdateReason::Logout, None));
    }
    clients[1].shutdown().await.unwrap();
    for (i, client) in clients.iter_mut().enumerate() {
        let event = tokio::time::timeout(EVENT_DEADLINE, client.next_event()).await.expect("no event in time");
        assert_eq!(event, Some(Event::ShuttingDown), "subscriber {i}");
        let end = tokio::time::timeout(EVENT_DEADLINE, client.next_event()).await.expect("connection not closed");
        assert_eq!(end, None, "subscriber {i}: nothing may follow daemon/shuttingDown");
    }
    let err = clients[2].daemon_status().await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
}

#[tokio::test]
async fn concurrent_async_calls_on_one_connection_all_get_their_answers() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let client = std::sync::Arc::new(daemon.async_client().await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = std::sync::Arc::clone(&client);
        tasks.push(tokio::spawn(async move { client.get_auth_status(true).await }));
    }
    for task in tasks {
        let status = tokio::time::timeout(EVENT_DEADLINE, task).await.expect("call timed out").unwrap().unwrap();
        assert_eq!(status.auth_token.map(|t| t.expose().to_owned()), Some(fixture.access_token()));
    }
}
