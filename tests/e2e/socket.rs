//! The socket's file system side: private directory and mode, one daemon per socket, stale sockets, and the
//! start-up errors for unusable paths.

use codexd_e2e::{AuthFixture, TestDaemon, bin_path, chatgpt_auth_json, clean_command, run_with_deadline};
use serde_json::json;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn the_socket_directory_is_private_and_the_socket_owner_only() {
    let daemon = TestDaemon::start();
    let socket = daemon.socket();
    assert!(std::fs::metadata(socket).unwrap().file_type().is_socket(), "not a socket");
    assert_eq!(mode(socket.parent().unwrap()), 0o700, "socket directory mode");
    assert_eq!(mode(socket) & 0o777, 0o600, "socket mode");
    let lock = socket.with_file_name("codexd.sock.lock");
    assert!(lock.exists(), "no lock file {}", lock.display());
}

#[test]
fn a_second_daemon_on_the_same_socket_exits_1_naming_the_first() {
    let daemon = TestDaemon::start();
    let mut second = daemon.codexd_command();
    second.arg("--socket").arg(daemon.socket()).arg("--codex-home").arg(daemon.home());
    let out = run_with_deadline(second, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let pid = daemon.pid().to_string();
    assert!(
        stderr.lines().any(|l| l.contains("already") && l.contains(&pid)),
        "no line with `already` and pid {pid}:\n{stderr}"
    );
    // The first one is untouched and still serving.
    assert_eq!(daemon.status()["pid"], daemon.pid());
    assert!(daemon.socket().exists());
}

#[test]
fn a_stale_socket_left_by_kill_9_is_replaced_by_a_new_daemon() {
    let fixture = AuthFixture::default();
    let mut daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let first_pid = daemon.pid();
    daemon.kill9();
    assert!(daemon.socket().exists(), "kill -9 cannot remove the socket file; the test needs it to stay");
    assert!(codexd_e2e::Conn::connect(daemon.socket()).is_err(), "nothing should listen on the stale socket");
    daemon.restart();
    assert_ne!(daemon.pid(), first_pid);
    let mut conn = daemon.raw_conn();
    assert_eq!(conn.daemon_status()["pid"], daemon.pid());
    assert_eq!(conn.auth_status(true)["authToken"], fixture.access_token());
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn a_socket_path_longer_than_107_bytes_is_refused() {
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let deep = scratch.path().join("d".repeat(60)).join("e".repeat(40));
    let socket = deep.join("codexd.sock");
    assert!(socket.as_os_str().len() > 107);
    let mut cmd = clean_command(bin_path("codexd"), scratch.path());
    cmd.arg("--socket").arg(&socket).arg("--codex-home").arg(&home);
    let out = run_with_deadline(cmd, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("too long"), "stderr:\n{stderr}");
}

#[test]
fn a_missing_codex_home_is_refused() {
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let missing = scratch.path().join("no-such-home");
    let mut cmd = clean_command(bin_path("codexd"), scratch.path());
    cmd.arg("--socket").arg(scratch.path().join("s").join("codexd.sock")).arg("--codex-home").arg(&missing);
    let out = run_with_deadline(cmd, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("does not exist"), "stderr:\n{stderr}");
    assert!(!missing.exists(), "codexd created the missing CODEX_HOME");

    let mut by_env = clean_command(bin_path("codexd"), scratch.path());
    by_env.env("CODEX_HOME", &missing).env("CODEXD_SOCKET", scratch.path().join("t").join("codexd.sock"));
    let out = run_with_deadline(by_env, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("does not exist"), "stderr:\n{stderr}");
}

#[test]
fn codexd_socket_and_codex_home_variables_choose_the_paths() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::builder().paths_via_env().auth_json(chatgpt_auth_json(&fixture)).start();
    let status = daemon.status();
    assert_eq!(status["socket"], daemon.socket().to_str().unwrap());
    assert_eq!(status["codexHome"], daemon.home().canonicalize().unwrap().to_str().unwrap());
    assert_eq!(status["authMethod"], "chatgpt");
    assert_eq!(daemon.raw_conn().call("account/read", json!({}))["account"]["accountId"], fixture.account_id);
}

#[test]
fn the_socket_and_lock_are_reusable_after_a_clean_stop() {
    let mut daemon = TestDaemon::start();
    assert_eq!(daemon.stop().code(), Some(0));
    assert!(!daemon.socket().exists(), "the socket file outlived the daemon");
    daemon.restart();
    assert_eq!(daemon.status()["pid"], daemon.pid());
}
