//! codexd as a user service: socket activation (the socket systemd passes is served, locked, and left in place),
//! readiness and stopping reported to the service manager, the socket keeper (touching the socket, and shutting
//! down when the socket is removed or replaced), a crash leaving nothing that stops the next daemon, and the
//! protocol-version check of `initialize`.

use codexd_e2e::text;
use codexd_e2e::{
    AuthFixture, Conn, Spawned, TestDaemon, bin_path, chatgpt_auth_json, clean_command, codexd_isolation_env,
    run_with_deadline, wait_until,
};
use rustix::process::Signal;
use serde_json::{Value, json};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(10);

fn shutting_down() -> Value {
    json!({"jsonrpc": "2.0", "method": "daemon/shuttingDown", "params": {}})
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut lock = socket.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

fn lock_pid(socket: &Path) -> String {
    std::fs::read_to_string(lock_path(socket)).unwrap_or_default().trim().to_owned()
}

/// Whether something answers `daemon/status` on `socket`, and with which pid.
fn status_pid(socket: &Path) -> Option<u64> {
    let mut conn = Conn::connect(socket).ok()?;
    let id = conn.fresh_id();
    conn.send(&json!({"jsonrpc": "2.0", "id": id, "method": "daemon/status"}));
    let reply = conn.read_message().ok()??;
    reply["result"]["pid"].as_u64()
}

/// A credential home with a ChatGPT login, a private socket directory, and the socket path in it, outside any
/// `TestDaemon` (these tests start codexd their own way).
struct Sandbox {
    dir: TempDir,
    fixture: AuthFixture,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("cxs").tempdir_in("/tmp").unwrap();
        let fixture = AuthFixture::default();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::write(dir.path().join("home").join("auth.json"), chatgpt_auth_json(&fixture)).unwrap();
        std::fs::create_dir(dir.path().join("s")).unwrap();
        std::fs::set_permissions(dir.path().join("s"), std::fs::Permissions::from_mode(0o700)).unwrap();
        Sandbox { dir, fixture }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("s").join("codexd.sock")
    }

    /// The environment a test daemon gets: its home, debug logs, and [`codexd_isolation_env`] (no real issuer,
    /// any callback port, the sandbox's own system config directory).
    fn daemon_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("HOME", self.dir.path().display().to_string()),
            ("CODEX_HOME", self.home().display().to_string()),
            ("CODEXD_LOG", "debug".to_owned()),
        ];
        env.extend(codexd_isolation_env(self.dir.path(), None));
        env
    }

    /// `codexd --socket <socket> --codex-home <home>` with a clean environment.
    fn codexd(&self) -> Command {
        let mut cmd = clean_command(bin_path("codexd"), self.dir.path());
        cmd.envs(self.daemon_env()).arg("--socket").arg(self.socket()).arg("--codex-home").arg(self.home());
        cmd
    }

    /// `codexctl --socket <socket> args` that never starts a daemon itself (`clean_command` sets
    /// `CODEXD_NO_AUTOSTART=1`).
    fn codexctl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = clean_command(bin_path("codexctl"), self.dir.path());
        cmd.arg("--socket").arg(self.socket()).args(args);
        run_with_deadline(cmd, DEADLINE)
    }
}

/// `systemd-socket-activate` from Debian's systemd package, or `None` (the caller skips, saying why).
fn socket_activate() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-socket-activate"))
        .find(|candidate| candidate.is_file())
}

fn skip_without_socket_activate() -> Option<PathBuf> {
    let found = socket_activate();
    if found.is_none() {
        eprintln!(
            "SKIPPED: systemd-socket-activate is not installed (Debian: apt-get install --no-install-recommends \
             systemd); socket activation is not tested"
        );
    }
    found
}

#[test]
fn systemd_socket_activate_serves_codexctl_token_through_the_passed_socket_and_leaves_it() {
    let Some(activate) = skip_without_socket_activate() else { return };
    let sandbox = Sandbox::new();
    let socket = sandbox.socket();
    let mut cmd = clean_command(&activate, sandbox.dir.path());
    cmd.arg("-l").arg(&socket);
    for (key, value) in sandbox.daemon_env() {
        cmd.arg("-E").arg(format!("{key}={value}"));
    }
    cmd.arg(bin_path("codexd")).arg("--socket").arg(&socket).arg("--codex-home").arg(sandbox.home());
    let mut activator = Spawned::spawn(cmd, None);
    wait_until(DEADLINE, "systemd-socket-activate listening", || activator.stderr().contains("Listening on"));
    assert!(!activator.stderr().contains("codexd is serving"), "codexd started before the first connection");

    // The first connection starts codexd, which serves it on the socket it was passed.
    let out = sandbox.codexctl(&["token"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}\nactivator:\n{}", text(&out.stderr), activator.stderr());
    assert_eq!(text(&out.stdout), format!("{}\n", sandbox.fixture.access_token()));

    let status = Conn::connect(&socket).unwrap().daemon_status();
    assert_eq!(status["socket"], socket.to_str().unwrap(), "{status}");
    // systemd-socket-activate execs codexd in its own process.
    assert_eq!(status["pid"], activator.pid(), "{status}");
    assert_eq!(lock_pid(&socket), activator.pid().to_string(), "the lock file does not name the daemon");
    assert!(activator.stderr().contains("socket activation"), "stderr:\n{}", activator.stderr());

    activator.signal(Signal::TERM);
    assert_eq!(activator.wait_exit(DEADLINE).code(), Some(0), "stderr:\n{}", activator.stderr());
    // The socket belongs to whoever passed it: codexd leaves it where it is.
    assert!(is_socket(&socket), "codexd removed the socket it was passed; stderr:\n{}", activator.stderr());

    // Nothing listens on it any more, and a daemon started by hand takes it over.
    assert!(Conn::connect(&socket).is_err(), "something still listens on the socket");
    let mut by_hand = Spawned::spawn(sandbox.codexd(), None);
    wait_until(DEADLINE, "the daemon started by hand to serve", || status_pid(&socket).is_some());
    assert_eq!(status_pid(&socket), Some(u64::from(by_hand.pid())));
    by_hand.signal(Signal::TERM);
    assert_eq!(by_hand.wait_exit(DEADLINE).code(), Some(0), "stderr:\n{}", by_hand.stderr());
    assert!(!socket.exists(), "the daemon started by hand did not remove its own socket");
}

/// A daemon that adopts a listening socket the test holds, as systemd holds it for its service: started through
/// `sh`, which moves the socket from stdin to fd 3 and sets `LISTEN_PID` to its own pid before exec.
struct Adopted {
    child: Child,
    stderr: PathBuf,
}

impl Adopted {
    fn start(sandbox: &Sandbox, listener: &UnixListener, name: &str) -> Adopted {
        let stderr = sandbox.dir.path().join(format!("{name}.stderr"));
        let mut cmd = clean_command("sh", sandbox.dir.path());
        cmd.envs(sandbox.daemon_env())
            .env("CODEXD", bin_path("codexd"))
            .env("SOCKET", sandbox.socket())
            .arg("-c")
            .arg(r#"exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$CODEXD" --socket "$SOCKET""#)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener.try_clone().unwrap())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        Adopted { child: cmd.spawn().unwrap(), stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn kill(&mut self, signal: Signal) -> std::process::ExitStatus {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal);
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < end, "codexd did not exit; stderr:\n{}", self.stderr());
            std::thread::sleep(codexd_e2e::wait::POLL_INTERVAL);
        }
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- adopted codexd stderr -----\n{}\n-----", self.stderr());
        }
    }
}

#[test]
fn an_adopted_socket_survives_kill_9_and_the_next_daemon_serves_it() {
    let sandbox = Sandbox::new();
    let socket = sandbox.socket();
    let listener = UnixListener::bind(&socket).unwrap();
    let mut first = Adopted::start(&sandbox, &listener, "first");
    wait_until(DEADLINE, "the first adopted daemon to serve", || status_pid(&socket).is_some());
    assert_eq!(status_pid(&socket), Some(u64::from(first.pid())), "stderr:\n{}", first.stderr());
    assert_eq!(lock_pid(&socket), first.pid().to_string());

    // kill -9 leaves the socket (the test holds it, as systemd would) and a lock file naming a dead pid.
    first.kill(Signal::KILL);
    assert!(is_socket(&socket));
    assert_eq!(lock_pid(&socket), first.pid().to_string());

    // A client connecting meanwhile waits in the backlog, as under systemd, and the next daemon answers it.
    let mut waiting = Conn::connect(&socket).expect("the held socket still accepts connections");
    let id = waiting.fresh_id();
    waiting.send(&json!({"jsonrpc": "2.0", "id": id, "method": "getAuthStatus", "params": {"includeToken": true}}));
    let mut second = Adopted::start(&sandbox, &listener, "second");
    let reply = waiting.read_response(&json!(id));
    assert_eq!(reply["result"]["authToken"], sandbox.fixture.access_token(), "stderr:\n{}", second.stderr());
    assert_eq!(status_pid(&socket), Some(u64::from(second.pid())));
    assert_eq!(lock_pid(&socket), second.pid().to_string());

    assert_eq!(second.kill(Signal::TERM).code(), Some(0), "stderr:\n{}", second.stderr());
    assert!(is_socket(&socket), "codexd removed a socket it was passed");
    assert!(second.stderr().contains("socket activation"), "stderr:\n{}", second.stderr());
}

#[test]
fn an_adopted_socket_at_another_path_is_the_one_reported_and_locked() {
    let sandbox = Sandbox::new();
    let passed = sandbox.dir.path().join("s").join("passed.sock");
    let listener = UnixListener::bind(&passed).unwrap();
    let adopted = Adopted::start(&sandbox, &listener, "elsewhere");
    wait_until(DEADLINE, "the adopted daemon to serve", || status_pid(&passed).is_some());
    let status = Conn::connect(&passed).unwrap().daemon_status();
    assert_eq!(status["socket"], passed.to_str().unwrap(), "{status}");
    assert_eq!(lock_pid(&passed), adopted.pid().to_string());
    assert!(!sandbox.socket().exists(), "codexd bound the configured path as well");
    assert!(adopted.stderr().contains("not at the configured path"), "stderr:\n{}", adopted.stderr());
}

/// Reads datagrams from the notify socket until one contains `wanted`; returns everything read.
fn read_notify_until(notify: &UnixDatagram, wanted: &str, seen: &mut Vec<String>) {
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == wanted)) {
        assert!(Instant::now() < end, "no {wanted} within {DEADLINE:?}; got {seen:?}");
        match notify.recv(&mut buf) {
            Ok(n) => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the notify socket failed: {e}"),
        }
    }
}

#[test]
fn the_service_manager_hears_ready_once_it_serves_and_stopping_at_shutdown() {
    let scratch = tempfile::Builder::new().prefix("cxn").tempdir_in("/tmp").unwrap();
    let notify_path = scratch.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut daemon = TestDaemon::builder().env("NOTIFY_SOCKET", &notify_path).start();
    let mut seen = Vec::new();
    read_notify_until(&notify, "READY=1", &mut seen);
    let serving = format!("STATUS=serving {}", daemon.socket().display());
    assert!(seen.iter().any(|m| m.lines().any(|l| l == serving)), "no {serving:?} in {seen:?}");
    assert!(!seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");

    let mut subscriber = daemon.subscriber();
    daemon.signal(Signal::TERM);
    read_notify_until(&notify, "STOPPING=1", &mut seen);
    assert_eq!(subscriber.read_to_end().last(), Some(&shutting_down()));
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping = seen.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(ready < stopping, "{seen:?}");
}

/// Asserts the daemon, told by its keeper that its socket is gone or not its own, says why, says goodbye to
/// `subscriber`, and exits 0.
fn assert_leaves_gracefully(daemon: &mut TestDaemon, subscriber: &mut Conn) {
    subscriber.set_read_timeout(Some(DEADLINE));
    let messages = subscriber.read_to_end();
    assert_eq!(messages.last(), Some(&shutting_down()), "{messages:?}; stderr:\n{}", daemon.stderr());
    let status = daemon.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
    let said =
        format!("the socket {} was removed or replaced (a newer codexd?); shutting down", daemon.socket().display());
    assert!(daemon.stderr().contains(&said), "stderr does not say {said:?}:\n{}", daemon.stderr());
}

#[test]
fn a_daemon_whose_socket_file_is_removed_tells_subscribers_and_exits_0() {
    let mut daemon = TestDaemon::builder()
        .env("CODEXD_SOCKET_CHECK_MS", "100")
        .auth_json(chatgpt_auth_json(&AuthFixture::default()))
        .start();
    let mut subscriber = daemon.subscriber();
    std::fs::remove_file(daemon.socket()).unwrap();
    assert_leaves_gracefully(&mut daemon, &mut subscriber);
    assert!(!daemon.socket().exists());
}

#[test]
fn a_daemon_whose_socket_is_replaced_exits_0_and_leaves_the_new_socket_alone() {
    let mut daemon = TestDaemon::builder().env("CODEXD_SOCKET_CHECK_MS", "100").start();
    let mut subscriber = daemon.subscriber();
    std::fs::remove_file(daemon.socket()).unwrap();
    let newer = UnixListener::bind(daemon.socket()).unwrap();
    assert_leaves_gracefully(&mut daemon, &mut subscriber);
    assert!(is_socket(daemon.socket()), "the old daemon removed the socket that replaced its own");
    newer.set_nonblocking(true).unwrap();
    let _client = std::os::unix::net::UnixStream::connect(daemon.socket()).expect("the newer socket is gone");
    wait_until(DEADLINE, "the newer socket to get the connection", || newer.accept().is_ok());
}

#[test]
fn a_daemon_whose_socket_stays_keeps_serving_and_touches_it() {
    let daemon = TestDaemon::builder().env("CODEXD_SOCKET_CHECK_MS", "100").start();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    // `touch` sets a socket's times by path (a socket cannot be opened); -h: the path itself.
    let out = run_with_deadline(
        {
            let mut cmd = clean_command("touch", daemon.scratch());
            cmd.arg("-h").arg("-d").arg("@1000000").arg(daemon.socket());
            cmd
        },
        DEADLINE,
    );
    assert!(out.status.success(), "touch failed: {}", text(&out.stderr));
    let mtime = || std::fs::symlink_metadata(daemon.socket()).unwrap().modified().unwrap();
    let atime = || std::fs::symlink_metadata(daemon.socket()).unwrap().accessed().unwrap();
    assert_eq!(mtime(), old);
    wait_until(DEADLINE, "the daemon to touch its socket", || mtime() > old);
    let now = SystemTime::now();
    assert!(now.duration_since(mtime()).unwrap_or_default() < Duration::from_secs(60), "mtime not set to now");
    assert!(atime() > old, "atime not set");
    assert_eq!(daemon.status()["pid"], daemon.pid(), "the daemon stopped serving its own socket");
}

#[test]
fn kill_9_leaves_a_socket_and_a_lock_that_do_not_stop_the_next_daemon() {
    let fixture = AuthFixture::default();
    let mut daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let first = daemon.pid();
    assert_eq!(lock_pid(daemon.socket()), first.to_string());
    daemon.kill9();
    // What a crash leaves: the socket file, nobody listening, and the lock file naming the dead daemon.
    assert!(is_socket(daemon.socket()));
    assert!(Conn::connect(daemon.socket()).is_err());
    assert_eq!(lock_pid(daemon.socket()), first.to_string());
    daemon.restart();
    assert_ne!(daemon.pid(), first);
    assert_eq!(lock_pid(daemon.socket()), daemon.pid().to_string());
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], fixture.access_token());
    assert!(daemon.stderr().contains("removed a stale socket"), "stderr:\n{}", daemon.stderr());
}

#[test]
fn initialize_refuses_a_client_that_needs_a_newer_protocol() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let client_info = json!({"name": "from-the-future", "version": "9.0.0"});
    let error = conn.call_error("initialize", json!({"clientInfo": client_info, "protocolVersion": 99}));
    assert_eq!(error["code"], -32600, "{error}");
    assert_eq!(error["data"]["reason"], "protocolVersionUnsupported", "{error}");
    let message = error["message"].as_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(message.contains(&format!("this codexd ({version}) speaks protocol 1")), "{message}");
    assert!(message.contains("needs protocol 99") && message.contains("codexctl restart"), "{message}");
    // Refused means not subscribed; the connection stays usable.
    assert_eq!(conn.daemon_status()["subscribers"], 0);

    for params in [
        json!({"clientInfo": client_info, "protocolVersion": 1}),
        json!({"clientInfo": client_info}),
        json!({"clientInfo": client_info, "protocolVersion": 0}),
    ] {
        let result = daemon.raw_conn().call("initialize", params.clone());
        assert_eq!(result["protocolVersion"], 1, "{params}: {result}");
        assert_eq!(result["serverInfo"]["version"], version, "{params}: {result}");
    }
    let result = conn.call("initialize", json!({"clientInfo": client_info, "protocolVersion": 1}));
    assert_eq!(result["protocolVersion"], 1);
    assert_eq!(conn.daemon_status()["subscribers"], 1);
}

#[test]
fn a_live_socket_that_is_not_a_codexd_is_never_removed() {
    // systemd's idle codexd.socket or an `ssh -R` forward listen without holding codexd's lock.
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let dir = scratch.path().join("s");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("codexd.sock");
    let other = UnixListener::bind(&socket).unwrap();
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut cmd = clean_command(bin_path("codexd"), scratch.path());
    cmd.arg("--socket").arg(&socket).arg("--codex-home").arg(&home).envs(codexd_isolation_env(scratch.path(), None));
    let out = run_with_deadline(cmd, DEADLINE);
    assert_eq!(out.status.code(), Some(1), "codexd took over a live socket; stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("something other than a codexd listens on"), "{}", text(&out.stderr));
    assert!(is_socket(&socket), "codexd removed the live socket");
    other.set_nonblocking(true).unwrap();
    let _client = std::os::unix::net::UnixStream::connect(&socket).expect("the other listener still accepts");
    assert!(other.accept().is_ok(), "the connection reached the other listener");
}

#[test]
fn descriptors_inherited_from_the_starting_process_are_closed() {
    // A shell or codexctl that starts codexd must not stay tied to it: a caller waiting for the end of a pipe
    // codexd inherited would wait for the daemon's whole life. The test hands codexd the write end of a FIFO
    // (as fd 7, through sh) and waits for the end of file on its read end while the daemon keeps running.
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let fifo = scratch.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(&fifo)
        .unwrap();
    let socket = scratch.path().join("s").join("codexd.sock");
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut cmd = clean_command("sh", scratch.path());
    cmd.arg("-c")
        .arg(r#"exec 7>"$1"; shift; exec "$@""#)
        .arg("sh")
        .arg(&fifo)
        .arg(bin_path("codexd"))
        .arg("--socket")
        .arg(&socket)
        .arg("--codex-home")
        .arg(&home)
        .envs(codexd_isolation_env(scratch.path(), None))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_until(DEADLINE, "codexd to serve", || status_pid(&socket).is_some());
    let mut eof = false;
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        let mut buf = [0u8; 16];
        match std::io::Read::read(&mut reader, &mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("reading the FIFO: {e}"),
        }
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
        Signal::TERM,
    );
    let _ = child.wait();
    assert!(running, "codexd exited instead of serving");
    assert!(eof, "codexd still holds the pipe it inherited (fd 7) while it serves");
}
