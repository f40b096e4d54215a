//! Remote use over SSH (docs/REMOTE.md): the daemon's socket forwarded with `ssh -N -R <remote>:<local>`
//! through a real `sshd` on 127.0.0.1 and a private port, started and stopped by each test. The "remote" side
//! is another path on this machine; the remote `codexctl` runs with `CODEXD_NO_AUTOSTART=1`, as a remote one
//! must (it must never start a daemon of its own there).
//!
//! The tests need `sshd`, `ssh` and `ssh-keygen` (Debian's openssh-server and openssh-client) and root; they
//! print why and return early when either is missing. The tests of another remote account also need
//! `setpriv` (util-linux).

use crate::faults_uid::{NOBODY, as_nobody, setpriv_or_skip};
use codexd_e2e::sshd::{SshTools, Sshd};
use codexd_e2e::text;
use codexd_e2e::{
    AuthFixture, Conn, SECRET_MARK, Spawned, TestDaemon, apikey_auth_json, bin_path, chatgpt_auth_json, clean_command,
    run_with_deadline, wait_until, write_atomically,
};
use serde_json::{Value, json};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, chown};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(10);

/// The OpenSSH tools, or `None` (after saying why) when these tests cannot run here.
fn tools_or_skip(test: &str) -> Option<SshTools> {
    match SshTools::find() {
        Ok(tools) => Some(tools),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// A private directory standing for the remote account's runtime directory (`/run/user/<uid>/codexd`).
fn remote_dir() -> TempDir {
    let dir = tempfile::Builder::new().prefix("cxr").tempdir_in("/tmp").expect("cannot create the remote dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod remote dir");
    dir
}

/// `codexctl --socket <remote> args` as a remote user runs it: clean environment, no autostart (`clean_command`
/// sets `CODEXD_NO_AUTOSTART=1`).
fn remote_codexctl(remote: &Path, home: &Path, args: &[&str]) -> Command {
    let mut cmd = clean_command(bin_path("codexctl"), home);
    cmd.arg("--socket").arg(remote).args(args);
    cmd
}

fn run(cmd: Command) -> Output {
    run_with_deadline(cmd, DEADLINE)
}

/// Asserts exit 0 and returns stdout.
fn ok_stdout(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Leaves a socket file at `path` with nothing listening, as a dead forward or server leaves it.
fn leave_stale_socket(path: &Path) {
    drop(UnixListener::bind(path).expect("cannot bind the stale socket"));
    assert!(path.exists(), "the stale socket file should stay behind");
}

/// The token served at `path`, or `None` when nothing answers there.
fn forward_token(path: &Path) -> Option<String> {
    let mut conn = Conn::connect(path).ok()?;
    conn.auth_status(true)["authToken"].as_str().map(str::to_owned)
}

#[test]
fn token_through_the_forward_prints_the_local_daemons_token() {
    let Some(tools) = tools_or_skip("token_through_the_forward_prints_the_local_daemons_token") else { return };
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let sshd = Sshd::start(&tools);
    let remote = remote_dir();
    let forward = sshd.forward(&remote.path().join("codexd.sock"), daemon.socket());

    let out = run(remote_codexctl(forward.remote(), remote.path(), &["token"]));
    assert_eq!(ok_stdout(&out), format!("{}\n", fixture.access_token()));
    assert!(!text(&out.stderr).contains(SECRET_MARK), "the token went to stderr");

    // The documented remote setup: CODEXD_SOCKET names the forwarded path.
    let mut cmd = clean_command(bin_path("codexctl"), remote.path());
    cmd.env("CODEXD_SOCKET", forward.remote()).arg("token");
    assert_eq!(ok_stdout(&run(cmd)), format!("{}\n", fixture.access_token()));

    // It is the laptop's daemon answering: its pid and its own socket path.
    let out = run(remote_codexctl(forward.remote(), remote.path(), &["status", "--json"]));
    let status: Value = serde_json::from_str(&ok_stdout(&out)).expect("status --json prints JSON");
    assert_eq!(status["daemon"]["pid"], daemon.pid(), "{status}");
    assert_eq!(status["daemon"]["socket"], daemon.socket().to_str().unwrap(), "{status}");
    assert_eq!(status["auth"]["accountId"], fixture.account_id, "{status}");
}

#[test]
fn watch_through_the_forward_sees_the_logout_and_the_shutdown() {
    let Some(tools) = tools_or_skip("watch_through_the_forward_sees_the_logout_and_the_shutdown") else { return };
    let mut daemon = TestDaemon::with_auth(chatgpt_auth_json(&AuthFixture::default()));
    let sshd = Sshd::start(&tools);
    let remote = remote_dir();
    let forward = sshd.forward(&remote.path().join("codexd.sock"), daemon.socket());

    let mut watch = Spawned::spawn(remote_codexctl(forward.remote(), remote.path(), &["watch"]), None);
    let mut local = daemon.raw_conn();
    wait_until(DEADLINE, "the remote watch to subscribe", || local.daemon_status()["subscribers"] == 1);
    local.call("account/logout", json!({}));
    wait_until(DEADLINE, "the logout line from the remote watch", || watch.stdout().lines().count() == 1);
    assert_eq!(daemon.stop().code(), Some(0), "stderr:\n{}", daemon.stderr());

    let lines = watch.wait_json_lines(DEADLINE);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["method"], "account/updated", "{lines:?}");
    assert_eq!(lines[0]["params"]["reason"], "logout", "{lines:?}");
    assert_eq!(lines[1]["method"], "daemon/shuttingDown", "{lines:?}");
    assert!(!watch.stdout().contains(SECRET_MARK), "watch printed a secret");
}

#[test]
fn a_remote_subscriber_sees_logins_and_logouts_made_on_the_local_side_and_then_the_end() {
    let Some(tools) =
        tools_or_skip("a_remote_subscriber_sees_logins_and_logouts_made_on_the_local_side_and_then_the_end")
    else {
        return;
    };
    let mut daemon = TestDaemon::start();
    let sshd = Sshd::start(&tools);
    let remote = remote_dir();
    let forward = sshd.forward(&remote.path().join("codexd.sock"), daemon.socket());
    let mut sub = forward.conn();
    sub.initialize();
    let token = |args: &[&str]| run(remote_codexctl(forward.remote(), remote.path(), args));
    assert_eq!(token(&["token"]).status.code(), Some(1), "logged out at first");

    // A login on the laptop (here: another program writing auth.json) reaches the remote at once.
    write_atomically(daemon.home(), &apikey_auth_json("sk-e2e-SECRETMARK-remote"));
    assert_eq!(sub.next_account_updated()["reason"], "external");
    assert_eq!(ok_stdout(&token(&["token"])), "sk-e2e-SECRETMARK-remote\n");

    // So does a logout.
    daemon.raw_conn().call("account/logout", json!({}));
    assert_eq!(sub.next_account_updated()["reason"], "logout");
    let out = token(&["token"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not logged in"), "{}", text(&out.stderr));

    // And the daemon stopping: the last message, then the end of the forwarded stream.
    assert_eq!(daemon.stop().code(), Some(0));
    let messages = sub.read_to_end();
    assert_eq!(
        messages.last(),
        Some(&json!({"jsonrpc": "2.0", "method": "daemon/shuttingDown", "params": {}})),
        "{messages:?}"
    );
}

#[test]
fn the_daemon_admits_the_forwarded_connection_as_the_local_ssh_client() {
    let Some(tools) = tools_or_skip("the_daemon_admits_the_forwarded_connection_as_the_local_ssh_client") else {
        return;
    };
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-peer"));
    let sshd = Sshd::start(&tools);
    let remote = remote_dir();
    let forward = sshd.forward(&remote.path().join("codexd.sock"), daemon.socket());
    let mut conn = forward.conn();
    assert_eq!(conn.auth_status(true)["authToken"], "sk-e2e-peer");
    drop(conn);
    // The peer the daemon checked is the ssh client on this side (the user who ran `ssh -R`), not sshd nor the
    // remote program: its pid is in the log line of the closed connection.
    let peer = format!("pid {}", forward.pid());
    wait_until(DEADLINE, "the daemon to log the forwarded connection", || {
        daemon.stderr().lines().any(|l| l.contains("connection closed") && l.contains(&peer))
    });
    assert!(!daemon.stderr().contains("refused a connection"), "{}", daemon.stderr());
}

#[test]
fn forwarding_to_another_remote_account_works_and_its_socket_is_private_to_it() {
    let test = "forwarding_to_another_remote_account_works_and_its_socket_is_private_to_it";
    let Some(tools) = tools_or_skip(test) else { return };
    let Some(setpriv) = setpriv_or_skip(test) else { return };
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-SECRETMARK-nobody"));
    let sshd = Sshd::start(&tools);
    let token_as_nobody = |remote: &Path, home: &Path| {
        let mut cmd = as_nobody(&setpriv, &bin_path("codexctl"), home);
        cmd.arg("--socket").arg(remote).arg("token");
        run(cmd)
    };

    // Logged in as nobody on the "remote": sshd creates the socket as nobody, 0600.
    let nobody_dir = remote_dir();
    chown(nobody_dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown the remote dir to nobody");
    let forward = sshd.forward_as("nobody", &nobody_dir.path().join("codexd.sock"), daemon.socket());
    let meta = std::fs::metadata(forward.remote()).expect("the forwarded socket exists");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600), "owner and mode of the forwarded socket");
    // The daemon still sees the ssh client on this side (its own uid) and serves the remote account.
    let out = token_as_nobody(forward.remote(), nobody_dir.path());
    assert_eq!(ok_stdout(&out), "sk-e2e-SECRETMARK-nobody\n");
    assert!(!daemon.stderr().contains("refused a connection"), "{}", daemon.stderr());

    // A socket forwarded to another remote account (root, in a directory everyone may traverse) is 0600 too:
    // nobody cannot use it.
    let root_dir = remote_dir();
    std::fs::set_permissions(root_dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let root_forward = sshd.forward(&root_dir.path().join("codexd.sock"), daemon.socket());
    let meta = std::fs::metadata(root_forward.remote()).expect("the forwarded socket exists");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600), "owner and mode of the forwarded socket");
    let out = token_as_nobody(root_forward.remote(), nobody_dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stdout:\n{}\nstderr:\n{stderr}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "the token leaked: {}", text(&out.stdout));
    assert!(stderr.to_lowercase().contains("permission denied"), "{stderr}");
}

#[test]
fn a_stale_socket_at_the_remote_path_is_replaced_and_a_new_forward_takes_over() {
    let Some(tools) = tools_or_skip("a_stale_socket_at_the_remote_path_is_replaced_and_a_new_forward_takes_over")
    else {
        return;
    };
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-stale"));
    let sshd = Sshd::start(&tools); // StreamLocalBindUnlink yes in its sshd_config
    let remote = remote_dir();
    let path = remote.path().join("codexd.sock");
    leave_stale_socket(&path);
    let first = sshd.forward(&path, daemon.socket());
    assert_eq!(ok_stdout(&run(remote_codexctl(&path, remote.path(), &["token"]))), "sk-e2e-stale\n");

    // The connection drops (laptop suspended, network gone). sshd leaves its socket file behind, refusing
    // connections: a remote codexctl finds no daemon (and, with autostart off, starts none).
    drop(first);
    wait_until(
        DEADLINE,
        "the old forward to stop listening",
        || matches!(UnixStream::connect(&path), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    assert!(path.exists(), "sshd removed the socket file when the forward ended (docs/REMOTE.md says it stays)");
    let out = run(remote_codexctl(&path, remote.path(), &["token"]));
    assert_eq!(out.status.code(), Some(3), "stderr:\n{}", text(&out.stderr));

    // ssh reconnects: a new forward on the same path replaces the stale file.
    let _second = sshd.forward(&path, daemon.socket());
    assert_eq!(ok_stdout(&run(remote_codexctl(&path, remote.path(), &["token"]))), "sk-e2e-stale\n");
}

#[test]
fn without_stream_local_bind_unlink_on_the_server_a_stale_socket_fails_the_forward() {
    let Some(tools) = tools_or_skip("without_stream_local_bind_unlink_on_the_server_a_stale_socket_fails_the_forward")
    else {
        return;
    };
    let daemon = TestDaemon::start();
    let sshd = Sshd::builder().bind_unlink(false).start(&tools);
    let remote = remote_dir();
    let path = remote.path().join("codexd.sock");
    leave_stale_socket(&path);
    // The client's own `-o StreamLocalBindUnlink=yes` (passed here) does not help: for -R, sshd binds.
    let mut ssh = sshd.spawn_forward(Sshd::own_user(), &path, daemon.socket());
    let status = ssh.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(255), "ssh stderr:\n{}\nsshd log:\n{}", ssh.stderr(), sshd.log());
    assert!(ssh.stderr().contains("remote port forwarding failed"), "ssh stderr:\n{}", ssh.stderr());
}

#[test]
fn the_forward_outlives_a_daemon_restart() {
    let Some(tools) = tools_or_skip("the_forward_outlives_a_daemon_restart") else { return };
    let mut daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-restart"));
    let sshd = Sshd::start(&tools);
    let remote = remote_dir();
    let forward = sshd.forward(&remote.path().join("codexd.sock"), daemon.socket());
    let token = || run(remote_codexctl(forward.remote(), remote.path(), &["token"]));
    assert_eq!(ok_stdout(&token()), "sk-e2e-restart\n");

    // No daemon behind the forward: sshd accepts, the local side cannot connect, and the remote codexctl
    // fails as if no daemon answered (and, with autostart off, starts none).
    assert_eq!(daemon.stop().code(), Some(0));
    let out = token();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stdout:\n{}\nstderr:\n{stderr}", text(&out.stdout));
    assert!(out.stdout.is_empty());
    assert!(stderr.starts_with("codexctl: "), "{stderr}");
    assert!(!daemon.socket().exists(), "something started a daemon on the local socket");

    // The laptop's daemon comes back: the same forward serves again, each connection being forwarded anew.
    daemon.restart();
    assert_eq!(ok_stdout(&token()), "sk-e2e-restart\n");
}

#[test]
fn a_second_forward_to_the_same_path_takes_it_over_and_leaves_it_dead_when_it_ends() {
    let Some(tools) = tools_or_skip("a_second_forward_to_the_same_path_takes_it_over_and_leaves_it_dead_when_it_ends")
    else {
        return;
    };
    // Two daemons tell the two forwards apart.
    let first_daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-first"));
    let second_daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-second"));
    let sshd = Sshd::start(&tools);
    let remote = remote_dir();
    let path = remote.path().join("codexd.sock");
    let token_at_path = || forward_token(&path);
    let mut first = sshd.forward(&path, first_daemon.socket());
    assert_eq!(token_at_path(), Some("sk-e2e-first".to_owned()));

    // Another ssh connection with the same RemoteForward (a second terminal): sshd unlinks the live socket
    // and binds its own.
    let second = sshd.forward(&path, second_daemon.socket());
    wait_until(DEADLINE, "the second forward to own the path", || token_at_path().as_deref() == Some("sk-e2e-second"));

    // It ends: the path is dead although the first connection and its listener are still there.
    drop(second);
    wait_until(
        DEADLINE,
        "the second forward to stop listening",
        || matches!(UnixStream::connect(&path), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    assert!(first.try_exit().is_none(), "the first ssh exited: {}", first.stderr());
    assert_eq!(token_at_path(), None);
}
