//! [`TestDaemon`]: the real `codexd` binary on its own socket, with its own `CODEX_HOME` and a cleared
//! environment; stopped with SIGTERM on drop, its stderr printed when the test fails.

use crate::bin::bin_path;
use crate::conn::Conn;
use crate::process::{Spawned, clean_command, run_with_deadline};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a daemon may take to answer its first `daemon/status`.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How long a daemon may take to exit after SIGTERM or `daemon/shutdown`.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// How long a `codexctl` run may take.
pub const CODEXCTL_DEADLINE: Duration = Duration::from_secs(10);

/// Where the daemon's issuer calls go unless a test attaches a fake issuer: a closed loopback port, so that no
/// test can ever reach a real endpoint (fixtures name `https://auth.openai.com` as their issuer).
pub const DEAD_ISSUER: &str = "http://127.0.0.1:9";

/// The system config directory of a test whose scratch directory is `scratch`: `<scratch>/etc/codex`.
pub fn system_config_dir_in(scratch: &Path) -> PathBuf {
    scratch.join("etc").join("codex")
}

/// The environment that keeps a `codexd` (or a `codexctl` that starts one) inside its test:
/// - issuer calls to `issuer`, refresh and revoke following `auth.json` as they do for users; with `None`, every
///   issuer call (`CODEXD_ISSUER` and both token URL overrides) to [`DEAD_ISSUER`];
/// - any free login callback port (`CODEXD_LOGIN_PORTS=0`): tests run in parallel and must not fight over 1455;
/// - never the machine's `/etc/codex`: `CODEXD_SYSTEM_CONFIG_DIR` is [`system_config_dir_in`]`(scratch)`, which
///   exists only if the test puts files there.
///
/// As pairs of strings, so that it also fits `systemd-socket-activate -E NAME=VALUE`.
pub fn codexd_isolation_env(scratch: &Path, issuer: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CODEXD_LOGIN_PORTS", "0".to_owned()),
        ("CODEXD_SYSTEM_CONFIG_DIR", system_config_dir_in(scratch).display().to_string()),
    ];
    match issuer {
        Some(url) => env.push(("CODEXD_ISSUER", url.to_owned())),
        None => env.extend([
            ("CODEXD_ISSUER", DEAD_ISSUER.to_owned()),
            ("CODEX_REFRESH_TOKEN_URL_OVERRIDE", format!("{DEAD_ISSUER}/oauth/token")),
            ("CODEX_REVOKE_TOKEN_URL_OVERRIDE", format!("{DEAD_ISSUER}/oauth/revoke")),
        ]),
    }
    env
}

/// Options for a [`TestDaemon`]; start it with [`TestDaemonBuilder::start`].
#[derive(Debug, Clone)]
pub struct TestDaemonBuilder {
    auth_json: Option<Vec<u8>>,
    log: String,
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    paths_via_env: bool,
    issuer: Option<String>,
    config_toml: Option<String>,
    system_files: Vec<(String, String)>,
}

impl Default for TestDaemonBuilder {
    fn default() -> Self {
        TestDaemonBuilder {
            auth_json: None,
            log: "debug".into(),
            env: Vec::new(),
            args: Vec::new(),
            paths_via_env: false,
            issuer: None,
            config_toml: None,
            system_files: Vec::new(),
        }
    }
}

impl TestDaemonBuilder {
    /// Writes these bytes to `auth.json` in the new `CODEX_HOME` before the daemon starts.
    #[must_use]
    pub fn auth_json(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.auth_json = Some(bytes.into());
        self
    }

    /// The `CODEXD_LOG` filter (default `debug`).
    #[must_use]
    pub fn log(mut self, filter: &str) -> Self {
        self.log = filter.into();
        self
    }

    /// One more environment variable for the daemon.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// One more command-line argument for the daemon.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Points every issuer call at `url` (a fake issuer on loopback) instead of [`DEAD_ISSUER`]: `CODEXD_ISSUER`
    /// is set, and refresh and revoke go to the issuer recorded in `auth.json` as they do for users.
    #[must_use]
    pub fn issuer(mut self, url: &str) -> Self {
        self.issuer = Some(url.to_owned());
        self
    }

    /// Pass the socket and home as `CODEXD_SOCKET` and `CODEX_HOME` instead of `--socket` and `--codex-home`.
    #[must_use]
    pub fn paths_via_env(mut self) -> Self {
        self.paths_via_env = true;
        self
    }

    /// Writes `$CODEX_HOME/config.toml` before the daemon starts.
    #[must_use]
    pub fn config_toml(mut self, text: &str) -> Self {
        self.config_toml = Some(text.to_owned());
        self
    }

    /// Writes `name` (`requirements.toml`, `managed_config.toml`, `config.toml`) into the test's system config
    /// directory (see [`TestDaemon::system_config_dir`]) before the daemon starts, creating the directory.
    #[must_use]
    pub fn system_file(mut self, name: &str, text: &str) -> Self {
        self.system_files.push((name.to_owned(), text.to_owned()));
        self
    }

    /// Creates the temp dirs, starts `codexd`, and waits until it answers `daemon/status`.
    pub fn start(self) -> TestDaemon {
        let home = tempfile::Builder::new().prefix("cxh").tempdir_in("/tmp").expect("cannot create CODEX_HOME");
        if let Some(bytes) = &self.auth_json {
            std::fs::write(home.path().join("auth.json"), bytes).expect("cannot write auth.json");
        }
        if let Some(text) = &self.config_toml {
            std::fs::write(home.path().join("config.toml"), text).expect("cannot write config.toml");
        }
        let run = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").expect("cannot create socket dir");
        // The system config directory's parent exists; the directory itself only when a test puts files there.
        let system_dir = system_config_dir_in(run.path());
        std::fs::create_dir_all(run.path().join("etc")).expect("cannot create the system config parent");
        for (name, text) in &self.system_files {
            std::fs::create_dir_all(&system_dir).expect("cannot create the system config dir");
            std::fs::write(system_dir.join(name), text).expect("cannot write a system config file");
        }
        // The socket's own directory does not exist yet: the daemon creates it (0700).
        let socket = run.path().join("s").join("codexd.sock");
        let stderr_path = run.path().join("codexd.stderr");
        let mut daemon = TestDaemon { options: self, home, run, socket, stderr_path, child: None, exit: None };
        daemon.spawn();
        daemon.wait_ready();
        daemon
    }
}

/// A running `codexd` in a sandbox of its own.
#[derive(Debug)]
pub struct TestDaemon {
    options: TestDaemonBuilder,
    home: TempDir,
    run: TempDir,
    socket: PathBuf,
    stderr_path: PathBuf,
    child: Option<Child>,
    exit: Option<ExitStatus>,
}

impl TestDaemon {
    /// Options for a new daemon.
    pub fn builder() -> TestDaemonBuilder {
        TestDaemonBuilder::default()
    }

    /// A daemon with no credentials.
    pub fn start() -> TestDaemon {
        TestDaemonBuilder::default().start()
    }

    /// A daemon whose `auth.json` holds these bytes.
    pub fn with_auth(bytes: impl Into<Vec<u8>>) -> TestDaemon {
        TestDaemonBuilder::default().auth_json(bytes).start()
    }

    /// The daemon's `CODEX_HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `CODEX_HOME/auth.json`.
    pub fn auth_path(&self) -> PathBuf {
        self.home.path().join("auth.json")
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's system config directory (`CODEXD_SYSTEM_CONFIG_DIR`): `<scratch>/etc/codex`, which exists
    /// only if the builder wrote files there (its parent always exists).
    pub fn system_config_dir(&self) -> PathBuf {
        system_config_dir_in(self.run.path())
    }

    /// A scratch directory of this test (it also holds the socket directory and the stderr file), used as
    /// `HOME` for the daemon and `codexctl`.
    pub fn scratch(&self) -> &Path {
        self.run.path()
    }

    /// The process id of the current daemon process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon was not started").id()
    }

    /// Everything the daemon (all its runs) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A command for `codexd` with this daemon's clean environment (`PATH`, `HOME`, `CODEXD_LOG`,
    /// [`codexd_isolation_env`], the builder's variables) but no socket or home arguments: for starting competing
    /// daemons.
    pub fn codexd_command(&self) -> Command {
        let mut cmd = clean_command(bin_path("codexd"), self.run.path());
        cmd.env("CODEXD_LOG", &self.options.log);
        cmd.envs(codexd_isolation_env(self.run.path(), self.options.issuer.as_deref()));
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn spawn(&mut self) {
        let mut cmd = self.codexd_command();
        if self.options.paths_via_env {
            cmd.env("CODEXD_SOCKET", &self.socket).env("CODEX_HOME", self.home.path());
        } else {
            cmd.arg("--socket").arg(&self.socket).arg("--codex-home").arg(self.home.path());
        }
        cmd.args(&self.options.args);
        let mut stderr =
            OpenOptions::new().create(true).append(true).open(&self.stderr_path).expect("cannot open stderr file");
        if self.child.is_some() {
            let _ = writeln!(stderr, "----- codexd restarted -----");
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        self.child = Some(cmd.spawn().expect("cannot start codexd"));
        self.exit = None;
    }

    /// Waits until the daemon answers `daemon/status` on its socket; panics (with its stderr) if it exits or
    /// [`READY_DEADLINE`] passes first.
    pub fn wait_ready(&mut self) {
        let end = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self.try_exit() {
                panic!("codexd exited ({status}) before it was ready; stderr:\n{}", self.stderr());
            }
            if answers_status(&self.socket) {
                return;
            }
            assert!(
                Instant::now() < end,
                "codexd did not answer daemon/status within {READY_DEADLINE:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(crate::wait::POLL_INTERVAL);
        }
    }

    /// Starts the daemon again on the same socket and home after it exited (or was killed).
    pub fn restart(&mut self) {
        assert!(self.try_exit().is_some(), "restart needs the previous daemon to have exited");
        self.spawn();
        self.wait_ready();
    }

    /// The exit status if the daemon has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let child = self.child.as_mut()?;
            self.exit = child.try_wait().expect("try_wait failed");
        }
        self.exit
    }

    /// Sends `signal` to the daemon (nothing when it has already been reaped).
    pub fn signal(&mut self, signal: Signal) {
        if self.try_exit().is_none()
            && let Some(child) = &self.child
        {
            let _ = kill_process(Pid::from_child(child), signal);
        }
    }

    /// Waits for the daemon to exit; panics (with its stderr) after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(Instant::now() < end, "codexd did not exit within {deadline:?}; stderr:\n{}", self.stderr());
            std::thread::sleep(crate::wait::POLL_INTERVAL);
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::TERM);
        self.wait_exit(EXIT_DEADLINE)
    }

    /// SIGKILL, then waits for the process to be gone (the socket and lock file stay behind).
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(Signal::KILL);
        self.wait_exit(EXIT_DEADLINE)
    }

    /// A raw JSON-lines connection (see [`Conn`]).
    pub fn raw_conn(&self) -> Conn {
        Conn::connect(&self.socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}; stderr:\n{}", self.socket.display(), self.stderr()))
    }

    /// A raw connection that already called `initialize`, so it receives notifications.
    pub fn subscriber(&self) -> Conn {
        let mut conn = self.raw_conn();
        conn.initialize();
        conn
    }

    /// A blocking `codexd_client::Client` on the socket, with a read timeout of [`crate::conn::READ_TIMEOUT`].
    pub fn client(&self) -> codexd_client::Client {
        let mut client = codexd_client::Client::connect(&self.socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}; stderr:\n{}", self.socket.display(), self.stderr()));
        client.set_read_timeout(Some(crate::conn::READ_TIMEOUT)).expect("set_read_timeout failed");
        client
    }

    /// An async `codexd_client::AsyncClient` on the socket (needs a tokio runtime).
    pub async fn async_client(&self) -> codexd_client::AsyncClient {
        codexd_client::AsyncClient::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}; stderr:\n{}", self.socket.display(), self.stderr()))
    }

    /// A plain `UnixStream` to the socket, with a read timeout.
    pub fn raw(&self) -> UnixStream {
        let stream = UnixStream::connect(&self.socket).expect("cannot connect to codexd");
        stream.set_read_timeout(Some(crate::conn::READ_TIMEOUT)).expect("set_read_timeout failed");
        stream
    }

    /// `daemon/status`, asked on a fresh connection.
    pub fn status(&self) -> Value {
        self.raw_conn().daemon_status()
    }

    /// A command for `codexctl` with a cleared environment and `CODEXD_SOCKET` set to this daemon's socket.
    pub fn codexctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command(bin_path("codexctl"), self.run.path());
        cmd.env("CODEXD_SOCKET", &self.socket).args(args);
        cmd
    }

    /// Runs `codexctl args` to completion.
    pub fn codexctl(&self, args: &[&str]) -> Output {
        run_with_deadline(self.codexctl_command(args), CODEXCTL_DEADLINE)
    }

    /// Starts `codexctl args` in the background (e.g. `watch`), with `stdin` bytes if given.
    pub fn spawn_codexctl(&self, args: &[&str], stdin: Option<&[u8]>) -> Spawned {
        Spawned::spawn(self.codexctl_command(args), stdin)
    }
}

/// Whether `socket` answers `daemon/status` within a second (false also when there is no such socket).
pub(crate) fn answers_status(socket: &Path) -> bool {
    let Ok(mut conn) = Conn::connect(socket) else { return false };
    conn.set_read_timeout(Some(Duration::from_secs(1)));
    let id = conn.fresh_id();
    let request = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "daemon/status"});
    let mut line = serde_json::to_vec(&request).expect("JSON encodes");
    line.push(b'\n');
    if conn.send_bytes(&line).is_err() {
        return false;
    }
    matches!(conn.read_message(), Ok(Some(reply)) if reply["id"] == id && reply["result"].is_object())
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.try_exit().is_none() && self.child.is_some() {
            self.signal(Signal::TERM);
            let end = Instant::now() + EXIT_DEADLINE;
            while self.try_exit().is_none() && Instant::now() < end {
                std::thread::sleep(crate::wait::POLL_INTERVAL);
            }
            if self.try_exit().is_none() {
                eprintln!("codexd ignored SIGTERM for {EXIT_DEADLINE:?}; killing it");
                self.signal(Signal::KILL);
                if let Some(child) = self.child.as_mut() {
                    let _ = child.wait();
                }
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "----- codexd stderr (socket {}, home {}) -----\n{}\n----- end of codexd stderr -----",
                self.socket.display(),
                self.home.path().display(),
                self.stderr()
            );
        }
    }
}
