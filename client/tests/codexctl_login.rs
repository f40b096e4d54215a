//! `codexctl login` and `codexctl refresh` against a scripted fake daemon on a Unix socket: what they send, what
//! they print, and their exit codes. (The real daemon with a fake issuer is tested end to end in `tests/`.)
#![cfg(unix)]

mod common;

use common::fake::{FakeDaemon, Peer};
use common::{Finished, TempDir};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command};

const AUTH_URL: &str = "http://127.0.0.1:9/oauth/authorize?state=s1&code_challenge=c";

/// Kills the child if a test fails before it ended.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn account_read_reply(peer: &mut Peer) {
    let read = peer.expect("account/read");
    peer.reply(
        &read,
        &json!({"account":{"type":"chatgpt","email":"dev@example.com","planType":"plus","accountId":"acct-1"},
            "requiresOpenaiAuth":true}),
    );
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success());
}

#[test]
fn a_browser_login_opens_browser_with_the_url_and_exits_0_naming_the_account() {
    let fifo_dir = TempDir::new("browser");
    let fifo = fifo_dir.0.join("opened");
    mkfifo(&fifo);
    let script = fifo_dir.0.join("browser.sh");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' \"$1\" > '{}'\n", fifo.display())).unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let daemon = FakeDaemon::start(move |peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        assert_eq!(start["params"], json!({"type":"chatgpt"}));
        peer.reply(&start, &json!({"type":"chatgpt","loginId":"b1","authUrl":AUTH_URL}));
        // Opening the FIFO blocks until the browser command writes to it.
        let opened = std::fs::read_to_string(&fifo).unwrap();
        assert_eq!(opened.trim_end(), AUTH_URL);
        peer.notify(
            "account/updated",
            &json!({"authMode":"chatgpt","planType":"plus","accountId":"acct-1","generation":1,"reason":"login"}),
        );
        peer.completed("b1", true, None);
        account_read_reply(peer);
        peer.until_closed();
    });
    let mut cmd = daemon.codexctl(&["login"]);
    cmd.env("DISPLAY", ":99").env("BROWSER", &script);
    let out = daemon.run(cmd, b"");
    out.assert_exit(0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines[0], "codexctl: open this URL in a browser to sign in:");
    assert_eq!(lines[1], AUTH_URL, "the URL on its own line");
    assert!(lines.contains(&"codexctl: on a machine without a browser, use codexctl login --device-auth"));
    assert_eq!(lines.last(), Some(&"codexctl: logged in as dev@example.com (plus plan)"), "{}", out.stderr);
}

#[test]
fn no_browser_opens_nothing_even_with_a_display() {
    let marker_dir = TempDir::new("nobrowser");
    let marker = marker_dir.0.join("opened");
    let daemon = FakeDaemon::start(|peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        peer.reply(&start, &json!({"type":"chatgpt","loginId":"b2","authUrl":AUTH_URL}));
        peer.completed("b2", true, None);
        let read = peer.expect("account/read");
        peer.reply(&read, &json!({"account":null,"requiresOpenaiAuth":true}));
        peer.until_closed();
    });
    let mut cmd = daemon.codexctl(&["login", "--no-browser"]);
    cmd.env("DISPLAY", ":99").env("BROWSER", format!("touch {}", marker.display()));
    let out = daemon.run(cmd, b"");
    out.assert_exit(0);
    assert!(out.stderr.contains(AUTH_URL));
    assert!(out.stderr.ends_with("codexctl: logged in\n"), "{}", out.stderr);
    assert!(!marker.exists(), "--no-browser started the browser command");
}

#[test]
fn a_device_login_shows_the_code_ignores_other_logins_and_a_failure_exits_1() {
    let daemon = FakeDaemon::start(|peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        assert_eq!(start["params"], json!({"type":"chatgptDeviceCode"}));
        peer.reply(
            &start,
            &json!({"type":"chatgptDeviceCode","loginId":"d1","verificationUrl":"http://127.0.0.1:9/codex/device","userCode":"WXYZ-9876"}),
        );
        peer.completed("someone-else", true, None);
        peer.completed("d1", false, Some("the device code expired"));
        peer.until_closed();
    });
    let cmd = daemon.codexctl(&["login", "--device-auth"]);
    let out = daemon.run(cmd, b"");
    out.assert_exit(1);
    assert!(
        out.stderr
            .starts_with("codexctl: to sign in, open http://127.0.0.1:9/codex/device and enter the code WXYZ-9876\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.ends_with("codexctl: login failed: the device code expired\n"), "{}", out.stderr);
}

#[test]
fn ctrl_c_while_waiting_cancels_the_login_and_exits_130() {
    let mut daemon = FakeDaemon::start(|peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        peer.reply(&start, &json!({"type":"chatgpt","loginId":"c1","authUrl":AUTH_URL}));
        let cancel = peer.expect("account/login/cancel");
        assert_eq!(cancel["params"], json!({"loginId":"c1"}));
        peer.completed("c1", false, Some("login canceled"));
        peer.reply(&cancel, &json!({"status":"canceled"}));
        peer.until_closed();
    });
    let mut child = KillOnDrop(daemon.codexctl(&["login"]).spawn().unwrap());
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut seen = String::new();
    // The "waiting" line comes after the Ctrl-C handler is in place.
    while !seen.contains("Ctrl-C cancels") {
        assert_ne!(stderr.read_line(&mut seen).unwrap(), 0, "codexctl ended early:\n{seen}");
    }
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.0.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    daemon.join();
    assert_eq!(status.code(), Some(130), "stderr:\n{seen}{rest}");
    assert_eq!(rest, "codexctl: login canceled\n");
}

#[test]
fn the_timeout_cancels_the_login_and_exits_1() {
    let daemon = FakeDaemon::start(|peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        peer.reply(&start, &json!({"type":"chatgpt","loginId":"t1","authUrl":AUTH_URL}));
        let cancel = peer.expect("account/login/cancel");
        assert_eq!(cancel["params"], json!({"loginId":"t1"}));
        peer.reply(&cancel, &json!({"status":"canceled"}));
        peer.until_closed();
    });
    let cmd = daemon.codexctl(&["login", "--no-browser", "--timeout", "1"]);
    let out = daemon.run(cmd, b"");
    out.assert_exit(1);
    assert!(
        out.stderr.ends_with(
            "codexctl: the login did not complete within 1 s, so it was canceled; run codexctl login again\n"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn the_daemon_shutting_down_while_waiting_exits_3() {
    let daemon = FakeDaemon::start(|peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        peer.reply(&start, &json!({"type":"chatgpt","loginId":"s1","authUrl":AUTH_URL}));
        peer.notify("daemon/shuttingDown", &json!({}));
    });
    let cmd = daemon.codexctl(&["login", "--no-browser"]);
    let out = daemon.run(cmd, b"");
    out.assert_exit(3);
    assert!(out.stderr.ends_with("codexctl: the daemon stopped before the login completed\n"), "{}", out.stderr);
}

#[test]
fn a_policy_refusal_exits_1_with_the_daemons_message() {
    let daemon = FakeDaemon::start(|peer| {
        peer.handshake();
        let start = peer.expect("account/login/start");
        peer.reply_error(&start, -32002, "ChatGPT login is disabled. Use API key login instead.", "policyRefused");
        peer.until_closed();
    });
    let cmd = daemon.codexctl(&["login"]);
    let out = daemon.run(cmd, b"");
    out.assert_exit(1);
    assert_eq!(out.stderr, "codexctl: ChatGPT login is disabled. Use API key login instead.\n");
}

#[test]
fn an_api_key_login_sends_the_trimmed_key_without_subscribing_and_never_prints_it() {
    let daemon = FakeDaemon::start(|peer| {
        let start = peer.expect("account/login/start");
        assert_eq!(start["params"], json!({"type":"apiKey","apiKey":"sk-test-SECRET-42"}));
        peer.reply(&start, &json!({"type":"apiKey"}));
        peer.until_closed();
    });
    let cmd = daemon.codexctl(&["login", "--with-api-key"]);
    let out = daemon.run(cmd, b"\n  sk-test-SECRET-42 \r\n");
    out.assert_exit(0);
    assert_eq!(out.stderr, "codexctl: logged in with an API key\n");
}

/// Runs `codexctl refresh` against a daemon that answers the forced refresh with `answer`.
fn refresh_with(answer: impl FnOnce(&mut Peer, &Value) + Send + 'static) -> Finished {
    let daemon = FakeDaemon::start(move |peer| {
        let request = peer.expect("getAuthStatus");
        assert_eq!(request["params"], json!({"includeToken":true,"refreshToken":true}));
        answer(peer, &request);
        peer.until_closed();
    });
    let cmd = daemon.codexctl(&["refresh"]);
    daemon.run(cmd, b"")
}

fn auth_status(overrides: &Value) -> Value {
    let mut status = json!({"authMethod":"chatgpt","authToken":"eyJ-SECRET-token","requiresOpenaiAuth":true,
        "accountId":"acct-1","planType":"plus","expiresAt":"2026-11-29T06:00:00Z","generation":3});
    status.as_object_mut().unwrap().extend(overrides.as_object().unwrap().clone());
    status
}

#[test]
fn refresh_prints_the_new_expiry_and_never_the_token() {
    let out = refresh_with(|peer, request| peer.reply(request, &auth_status(&json!({}))));
    out.assert_exit(0);
    assert_eq!(out.stderr, "codexctl: refreshed; the token expires at 2026-11-29T06:00:00Z\n");
}

#[test]
fn a_refused_refresh_exits_1_with_the_issuer_code() {
    let out = refresh_with(|peer, request| {
        let failed = json!({"authMethod":null,"authToken":null,"authError":{"reason":"refreshFailed",
            "message":"Your refresh token has expired. Please try signing in again.","issuerCode":"refresh_token_expired"}});
        peer.reply(request, &auth_status(&failed));
    });
    out.assert_exit(1);
    assert_eq!(
        out.stderr,
        "codexctl: the refresh failed (refresh_token_expired): Your refresh token has expired. Please try signing in again.\n"
    );
}

#[test]
fn an_unavailable_issuer_or_no_login_exits_1_with_one_line() {
    let out = refresh_with(|peer, request| {
        peer.reply_error(request, -32003, "the issuer did not answer within 30 s", "refreshUnavailable");
    });
    out.assert_exit(1);
    assert_eq!(out.stderr, "codexctl: the issuer did not answer within 30 s\n");
    let out = refresh_with(|peer, request| peer.reply_error(request, -32001, "not logged in", "notLoggedIn"));
    out.assert_exit(1);
    assert!(out.stderr.starts_with("codexctl: not logged in"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn an_older_daemon_is_named_on_stderr_with_the_command_that_restarts_it() {
    let daemon = FakeDaemon::start(|peer| {
        let init = peer.expect("initialize");
        assert_eq!(init["params"]["clientInfo"]["version"], env!("CARGO_PKG_VERSION"));
        peer.reply(
            &init,
            &json!({"serverInfo":{"name":"codexd","version":"0.0.1"},"protocolVersion":1,"codexHome":"/h"}),
        );
        peer.notify("daemon/shuttingDown", &json!({}));
    });
    let cmd = daemon.codexctl(&["watch"]);
    let out = daemon.run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, "{\"jsonrpc\":\"2.0\",\"method\":\"daemon/shuttingDown\",\"params\":{}}\n");
    assert_eq!(
        out.stderr,
        format!(
            "codexctl: codexd 0.0.1 is older than codexctl {}; restart it to upgrade: codexctl restart\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn a_daemon_of_the_same_version_gets_no_warning() {
    let daemon = FakeDaemon::start(|peer| {
        let init = peer.expect("initialize");
        peer.reply(
            &init,
            &json!({"serverInfo":{"name":"codexd","version":env!("CARGO_PKG_VERSION")},"protocolVersion":1,"codexHome":"/h"}),
        );
        peer.notify("daemon/shuttingDown", &json!({}));
    });
    let cmd = daemon.codexctl(&["watch"]);
    let out = daemon.run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.stderr, "");
}
