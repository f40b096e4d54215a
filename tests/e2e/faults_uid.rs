//! Another user on the socket: a client of another uid cannot reach a daemon's socket (its directory is 0700),
//! and a client that gets through anyway (root, past the file permissions) is refused by the daemon's peer-uid
//! check, without a word and with a log line naming its uid and pid.
//!
//! These tests run processes as uid 65534 with `setpriv`, so they need root; they print why and return early
//! when `setpriv` is missing or the tests do not run as root.

use crate::faults::SOON;
use codexd_e2e::{Conn, Spawned, TestDaemon, apikey_auth_json, bin_path, clean_command, run_with_deadline, wait_until};
use rustix::process::Signal;
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The uid and gid the other user runs as (`nobody`).
pub(crate) const NOBODY: u32 = 65534;

/// How long a process may take to start, answer or exit.
const DEADLINE: Duration = Duration::from_secs(10);

/// `setpriv`'s path, or `None` (after saying why) when these tests cannot run here.
pub(crate) fn setpriv_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("setpriv"))
        .find(|p| p.is_file());
    let Some(setpriv) = found else {
        eprintln!("SKIPPED {test}: `setpriv` (util-linux) is not installed, so no process can run as another uid");
        return None;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED {test}: running as another uid with `setpriv` needs root");
        return None;
    }
    Some(setpriv)
}

/// `setpriv --reuid=65534 --regid=65534 --clear-groups <program>` with a clean environment.
pub(crate) fn as_nobody(setpriv: &Path, program: &Path, home: &Path) -> Command {
    let mut cmd = clean_command(setpriv, home);
    cmd.arg(format!("--reuid={NOBODY}")).arg(format!("--regid={NOBODY}")).arg("--clear-groups").arg(program);
    cmd
}

#[test]
fn a_client_of_another_uid_cannot_reach_the_socket() {
    let Some(setpriv) = setpriv_or_skip("a_client_of_another_uid_cannot_reach_the_socket") else { return };
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-other-uid"));
    let mut cmd = as_nobody(&setpriv, &bin_path("codexctl"), daemon.scratch());
    cmd.arg("token").env("CODEXD_SOCKET", daemon.socket());
    let out = run_with_deadline(cmd, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "codexctl token as uid {NOBODY}: {}; stderr:\n{stderr}", out.status);
    assert!(out.stdout.is_empty(), "codexctl printed something to stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.starts_with("codexctl: "), "stderr:\n{stderr}");
    assert!(stderr.to_lowercase().contains("permission denied"), "the message does not say why:\n{stderr}");
    // The daemon never saw it, and still serves its own user.
    assert!(!daemon.stderr().contains("refused a connection"), "{}", daemon.stderr());
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], "sk-e2e-other-uid");
}

/// A `codexd` started as uid 65534; SIGTERM on drop, its stderr printed when the test fails.
struct NobodyDaemon {
    process: Spawned,
}

impl Drop for NobodyDaemon {
    fn drop(&mut self) {
        if self.process.try_exit().is_none() {
            self.process.signal(Signal::TERM);
            let end = Instant::now() + DEADLINE;
            while self.process.try_exit().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if std::thread::panicking() {
            eprintln!("----- codexd (uid {NOBODY}) stderr -----\n{}\n-----", self.process.stderr());
        }
    }
}

/// The numbers that follow `key` in `line` (within a few characters: `uid=0`, `uid 0`, `uid=Some(0)`).
fn numbers_after(line: &str, key: &str) -> Vec<u64> {
    line.match_indices(key)
        .filter_map(|(i, _)| {
            let window: String = line[i + key.len()..].chars().take(16).collect();
            let digits: String =
                window.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Creates `path` as a directory owned by uid/gid 65534 with `mode`.
fn nobody_dir(path: &Path) {
    std::fs::create_dir(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    chown(path, Some(NOBODY), Some(NOBODY)).unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod failed");
}

#[test]
fn a_daemon_closes_a_connection_from_another_uid_without_a_reply_and_logs_it() {
    let Some(setpriv) = setpriv_or_skip("a_daemon_closes_a_connection_from_another_uid_without_a_reply_and_logs_it")
    else {
        return;
    };
    let base = tempfile::Builder::new().prefix("cxu").tempdir_in("/tmp").expect("cannot create a temp dir");
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod failed");
    let home = base.path().join("home");
    nobody_dir(&home);
    let auth = home.join("auth.json");
    std::fs::write(&auth, apikey_auth_json("sk-e2e-nobody")).expect("cannot write auth.json");
    chown(&auth, Some(NOBODY), Some(NOBODY)).expect("cannot chown auth.json");
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).expect("chmod failed");
    let run = base.path().join("run");
    nobody_dir(&run);
    let socket = run.join("codexd.sock");

    let mut cmd = as_nobody(&setpriv, &bin_path("codexd"), &home);
    cmd.arg("--socket").arg(&socket).arg("--codex-home").arg(&home).env("CODEXD_LOG", "debug");
    let mut daemon = NobodyDaemon { process: Spawned::spawn(cmd, None) };

    // Root passes the file permission checks, so connecting works as soon as the daemon listens.
    let end = Instant::now() + DEADLINE;
    let mut conn = loop {
        if let Some(status) = daemon.process.try_exit() {
            panic!("codexd as uid {NOBODY} exited ({status}) before listening");
        }
        match Conn::connect(&socket) {
            Ok(conn) => break conn,
            Err(e) => assert!(Instant::now() < end, "codexd as uid {NOBODY} did not listen within {DEADLINE:?}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A valid request gets no reply: the connection is just closed.
    let _ = conn.send_bytes(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"getAuthStatus\",\"params\":{\"includeToken\":true}}\n",
    );
    let received = conn.read_to_end();
    assert!(received.is_empty(), "codexd answered a connection from uid 0: {received:?}");

    // The log says so, naming uid 0 and this process.
    let refusal =
        |stderr: &str| stderr.lines().find(|l| l.contains("refused") && l.contains("another user")).map(str::to_owned);
    wait_until(SOON, "codexd to log the refused connection", || refusal(&daemon.process.stderr()).is_some());
    let line = refusal(&daemon.process.stderr()).expect("the refusal line");
    assert!(numbers_after(&line, "uid").contains(&0), "the refusal does not name uid 0: {line}");
    let pid = u64::from(std::process::id());
    assert!(numbers_after(&line, "pid").contains(&pid), "the refusal does not name the client's pid {pid}: {line}");
    assert!(!line.contains("sk-e2e-nobody"), "{line}");

    // Its own user is served: the refusal is the peer check, not a broken daemon.
    let mut own = as_nobody(&setpriv, &bin_path("codexctl"), &home);
    own.arg("token").env("CODEXD_SOCKET", &socket);
    let out = run_with_deadline(own, DEADLINE);
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), b"sk-e2e-nobody\n".as_slice()),
        "codexctl token as uid {NOBODY}; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    daemon.process.signal(Signal::TERM);
    let status = daemon.process.wait_exit(DEADLINE);
    assert!(status.success(), "codexd as uid {NOBODY} exited with {status}");
    assert!(!socket.exists(), "the socket was not removed");
}
