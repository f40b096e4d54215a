//! `codexctl` against a real daemon: its output, exit codes and messages.

use codexd_e2e::text;
use codexd_e2e::{
    AuthFixture, SECRET_MARK, TestDaemon, apikey_auth_json, bin_path, chatgpt_auth_json, clean_command,
    run_with_deadline, wait_until, write_atomically,
};
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// Asserts the exit code, an empty stdout, and exactly one stderr line starting with `codexctl: `.
fn assert_one_message(out: &Output, code: i32) -> String {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout, "", "stdout must stay empty on failure");
    assert_eq!(stderr.lines().count(), 1, "one stderr line expected:\n{stderr}");
    assert!(stderr.starts_with("codexctl: "), "stderr:\n{stderr}");
    assert!(stderr.ends_with('\n'));
    stderr
}

#[test]
fn token_prints_the_access_token_and_a_newline_only() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let out = daemon.codexctl(&["token"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{}\n", fixture.access_token()));
    assert!(!text(&out.stderr).contains(SECRET_MARK), "the token went to stderr");
}

#[test]
fn token_prints_the_api_key() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-test-SECRETMARK-ctl"));
    let out = daemon.codexctl(&["token"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "sk-test-SECRETMARK-ctl\n");
}

#[test]
fn token_when_logged_out_exits_1_with_one_message() {
    let daemon = TestDaemon::start();
    let stderr = assert_one_message(&daemon.codexctl(&["token"]), 1);
    assert!(stderr.contains("not logged in"), "{stderr}");
}

#[test]
fn token_without_a_daemon_exits_3_naming_the_socket() {
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let socket = scratch.path().join("nobody-home.sock");
    let mut cmd = clean_command(bin_path("codexctl"), scratch.path());
    cmd.env("CODEXD_SOCKET", &socket).arg("token");
    let stderr = assert_one_message(&run_with_deadline(cmd, DEADLINE), 3);
    assert!(stderr.contains(socket.to_str().unwrap()), "{stderr}");
}

#[test]
fn token_after_the_daemon_stopped_exits_3() {
    let mut daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-stopped"));
    assert_eq!(daemon.stop().code(), Some(0));
    assert_one_message(&daemon.codexctl(&["token"]), 3);
}

#[test]
fn the_socket_flag_wins_over_the_environment() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-flag"));
    let mut cmd = clean_command(bin_path("codexctl"), daemon.scratch());
    cmd.env("CODEXD_SOCKET", daemon.scratch().join("wrong.sock")).arg("--socket").arg(daemon.socket()).arg("token");
    let out = run_with_deadline(cmd, DEADLINE);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "sk-SECRETMARK-flag\n");
}

#[test]
fn status_json_has_auth_and_daemon_sections_without_secrets() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let out = daemon.codexctl(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(SECRET_MARK), "status printed a secret:\n{stdout}");
    let status: Value = serde_json::from_str(&stdout).expect("status --json prints JSON");
    assert_eq!(status["auth"]["authMethod"], "chatgpt", "{status}");
    assert_eq!(status["auth"]["accountId"], fixture.account_id, "{status}");
    assert_eq!(status["daemon"]["pid"], daemon.pid(), "{status}");
    assert_eq!(status["daemon"]["socket"], daemon.socket().to_str().unwrap(), "{status}");
}

#[test]
fn status_names_the_login_and_exits_0() {
    let fixture = AuthFixture { plan: "team".into(), account_id: "acct-status-9".into(), ..AuthFixture::default() };
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let out = daemon.codexctl(&["status"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert!(stdout.contains("ChatGPT"), "{stdout}");
    assert!(stdout.contains("acct-status-9") && stdout.contains("team"), "{stdout}");
    assert!(!stdout.contains(SECRET_MARK), "status printed a secret:\n{stdout}");
}

#[test]
fn status_exits_1_when_logged_out() {
    let daemon = TestDaemon::start();
    let out = daemon.codexctl(&["status"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Not logged in"), "{}", text(&out.stdout));
    let out = daemon.codexctl(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["auth"]["authMethod"], Value::Null);
}

#[test]
fn logout_exits_0_and_removes_the_credentials() {
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let mut sub = daemon.subscriber();
    let out = daemon.codexctl(&["logout"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.next_account_updated()["reason"], "logout");
    assert_eq!(daemon.codexctl(&["token"]).status.code(), Some(1));
}

#[test]
fn watch_prints_one_json_line_per_notification_and_exits_0_on_shutdown() {
    let mut daemon = TestDaemon::start();
    let mut watch = daemon.spawn_codexctl(&["watch"], None);
    let mut conn = daemon.raw_conn();
    wait_until(DEADLINE, "codexctl watch to subscribe", || conn.daemon_status()["subscribers"] == 1);
    write_atomically(daemon.home(), &apikey_auth_json("sk-SECRETMARK-watch"));
    wait_until(DEADLINE, "the first line from watch", || watch.stdout().lines().count() == 1);
    conn.call("account/logout", json!({}));
    wait_until(DEADLINE, "the second line from watch", || watch.stdout().lines().count() == 2);
    assert_eq!(conn.call("daemon/shutdown", json!({})), json!({}));
    let lines = watch.wait_json_lines(DEADLINE);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["method"], "account/updated");
    assert_eq!(lines[0]["params"]["reason"], "external");
    assert_eq!(lines[0]["params"]["generation"], 1);
    assert_eq!(lines[1]["params"]["reason"], "logout");
    assert_eq!(lines[1]["params"]["generation"], 2);
    assert_eq!(lines[2]["method"], "daemon/shuttingDown");
    assert!(!watch.stdout().contains(SECRET_MARK), "watch printed a secret");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn stop_shuts_the_daemon_down_and_both_exit_0() {
    let mut daemon = TestDaemon::start();
    let mut sub = daemon.subscriber();
    let out = daemon.codexctl(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
    assert_eq!(sub.read_to_end().last().map(|m| m["method"].clone()), Some(json!("daemon/shuttingDown")));
    assert!(!daemon.socket().exists());
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let daemon = TestDaemon::start();
    let out = daemon.codexctl(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
}
