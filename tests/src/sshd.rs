//! [`Sshd`]: a real OpenSSH server (Debian's `openssh-server`) on 127.0.0.1 and a private port, started and
//! stopped by the test itself with a host key, a user key and an `sshd_config` made in a temp dir; and
//! [`SshForward`]: `ssh -N -R <remote socket>:<local socket>` through it, the way a user forwards codexd's socket
//! to a remote machine. Here "remote" and "local" are the same machine: the remote side is just another path.
//!
//! Nothing leaves loopback: sshd listens on 127.0.0.1 only, and the client reads no configuration, agent or
//! `known_hosts` of the developer (`-F /dev/null`, a temp `HOME`, `IdentityAgent=none`).
//!
//! ```no_run
//! use codexd_e2e::TestDaemon;
//! use codexd_e2e::sshd::{Sshd, SshTools};
//! let Ok(tools) = SshTools::find() else { return };
//! let daemon = TestDaemon::start();
//! let sshd = Sshd::start(&tools);
//! let remote = tempfile::tempdir().unwrap();
//! let forward = sshd.forward(&remote.path().join("codexd.sock"), daemon.socket());
//! // forward.remote() now answers like daemon.socket().
//! ```

use crate::conn::Conn;
use crate::daemon::answers_status;
use crate::process::{Spawned, clean_command};
use crate::wait::POLL_INTERVAL;
use rustix::process::{Pid, Signal, kill_process};
use std::fs::File;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long sshd may take to listen, and a forward to be set up and answer.
pub const SSH_DEADLINE: Duration = Duration::from_secs(10);

/// How many ports are tried when the free port found is taken again before sshd binds it.
const PORT_ATTEMPTS: usize = 5;

/// Where `sshd` keeps its privilege-separation chroot when it runs as root; it refuses to start without it.
const PRIVSEP_DIR: &str = "/run/sshd";

/// The OpenSSH programs, found on this machine.
#[derive(Debug, Clone)]
pub struct SshTools {
    /// `sshd`, by absolute path (sshd re-executes itself and refuses a relative path).
    pub sshd: PathBuf,
    /// `ssh`.
    pub ssh: PathBuf,
    /// `ssh-keygen`.
    pub keygen: PathBuf,
}

impl SshTools {
    /// Finds `sshd`, `ssh` and `ssh-keygen` (in `PATH`, `/usr/sbin` and `/usr/bin`) and checks that a test
    /// server can run here; `Err` says why not, for a skip message.
    pub fn find() -> Result<SshTools, String> {
        const HINT: &str = "install Debian's openssh-server and openssh-client (CI does)";
        let sshd = find_program("sshd").ok_or_else(|| format!("`sshd` is not installed: {HINT}"))?;
        let ssh = find_program("ssh").ok_or_else(|| format!("`ssh` is not installed: {HINT}"))?;
        let keygen = find_program("ssh-keygen").ok_or_else(|| format!("`ssh-keygen` is not installed: {HINT}"))?;
        if !rustix::process::geteuid().is_root() {
            return Err(
                "not running as root: the test sshd needs root to log users in (CI runs the tests as root)".into()
            );
        }
        if !Path::new(PRIVSEP_DIR).is_dir() {
            std::fs::create_dir_all(PRIVSEP_DIR).map_err(|e| format!("cannot create {PRIVSEP_DIR}: {e}"))?;
            std::fs::set_permissions(PRIVSEP_DIR, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot chmod {PRIVSEP_DIR}: {e}"))?;
        }
        Ok(SshTools { sshd, ssh, keygen })
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Options for an [`Sshd`].
#[derive(Debug, Clone)]
pub struct SshdBuilder {
    bind_unlink: bool,
}

impl Default for SshdBuilder {
    fn default() -> Self {
        SshdBuilder { bind_unlink: true }
    }
}

impl SshdBuilder {
    /// The server's `StreamLocalBindUnlink` (default `yes`): whether a socket file left at a forward's remote
    /// path is replaced. For `-R` only the server's setting counts, not the client's.
    #[must_use]
    pub fn bind_unlink(mut self, yes: bool) -> Self {
        self.bind_unlink = yes;
        self
    }

    /// Makes the keys and the config, starts `sshd -D -e` on a free loopback port (another port when that one
    /// was taken in between), and waits until it answers with an SSH banner.
    pub fn start(self, tools: &SshTools) -> Sshd {
        let dir = tempfile::Builder::new().prefix("cxs").tempdir_in("/tmp").expect("cannot create the sshd dir");
        // Readable by every user, so that other accounts (nobody) can log in with the authorized key; the
        // private keys stay 0600.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod sshd dir");
        let host_key = dir.path().join("host_key");
        let user_key = dir.path().join("user_key");
        keygen(&tools.keygen, &host_key);
        keygen(&tools.keygen, &user_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(user_key.with_extension("pub"), &authorized).expect("cannot write authorized_keys");
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644)).expect("chmod authorized_keys");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("cannot create the ssh client's HOME");

        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, self.config(dir.path(), &host_key, &authorized, port))
                .expect("cannot write sshd_config");
            let log = dir.path().join(format!("sshd-{port}.log"));
            match spawn_and_wait(tools, &config, &log, port) {
                Ok(child) => {
                    return Sshd { tools: tools.clone(), dir, port, child, log, user_key, home, exit: None };
                }
                Err(failure) => failures.push(failure),
            }
        }
        panic!("sshd did not start in {PORT_ATTEMPTS} attempts:\n{}", failures.join("\n"));
    }

    fn config(&self, dir: &Path, host_key: &Path, authorized: &Path, port: u16) -> String {
        let unlink = if self.bind_unlink { "yes" } else { "no" };
        // `AllowTcpForwarding no` would deny Unix-socket -R forwards too (OpenSSH 9.2 sets up the permission for
        // every remote forward from it), so remote forwards are allowed and local ones are not.
        format!(
            "# A throwaway sshd for one codexd test: loopback only, key login only, socket forwarding only.\n\
             ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {host_key}\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {authorized}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             HostbasedAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             AllowStreamLocalForwarding yes\n\
             StreamLocalBindUnlink {unlink}\n\
             AllowTcpForwarding remote\n\
             AllowAgentForwarding no\n\
             X11Forwarding no\n\
             PermitTTY no\n\
             PrintMotd no\n\
             UseDNS no\n\
             LoginGraceTime 20\n\
             MaxStartups 100\n\
             LogLevel VERBOSE\n",
            host_key = host_key.display(),
            dir = dir.display(),
            authorized = authorized.display(),
        )
    }
}

/// `ssh-keygen -t ed25519 -N '' -f path`.
fn keygen(program: &Path, path: &Path) {
    let out = Command::new(program)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "codexd-e2e", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
}

/// A loopback port that was free a moment ago (bound and released).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Starts sshd and waits until it logs that it listens and answers with a banner; `Err` (with its log) when
/// it exits first, e.g. because the port was taken.
fn spawn_and_wait(tools: &SshTools, config: &Path, log: &Path, port: u16) -> Result<Child, String> {
    let mut cmd = clean_command(&tools.sshd, Path::new("/"));
    cmd.arg("-D").arg("-e").arg("-f").arg(config);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(File::create(log).expect("cannot create the sshd log"));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.sshd.display()));
    let listening = format!("Server listening on 127.0.0.1 port {port}.");
    let end = Instant::now() + SSH_DEADLINE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = child.try_wait().expect("try_wait failed") {
            return Err(format!("sshd on port {port} exited ({status}); its log:\n{text}"));
        }
        if text.contains(&listening) {
            break;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sshd did not listen on port {port} within {SSH_DEADLINE:?}; its log:\n{text}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    // It says it listens; check that it is what answers there.
    match ssh_banner(port) {
        Ok(banner) if banner.starts_with("SSH-2.0-") => Ok(child),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("port {port} does not answer like sshd: {other:?}"))
        }
    }
}

/// The first bytes the server on `port` sends.
fn ssh_banner(port: u16) -> std::io::Result<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A running test sshd. Stopped (SIGTERM, then SIGKILL) when dropped; its log is printed when the test fails.
/// Forwards borrow it, so they are gone (their connections closed) before it stops.
#[derive(Debug)]
pub struct Sshd {
    tools: SshTools,
    dir: TempDir,
    port: u16,
    child: Child,
    log: PathBuf,
    user_key: PathBuf,
    home: PathBuf,
    exit: Option<ExitStatus>,
}

impl Sshd {
    /// Options for a server.
    pub fn builder() -> SshdBuilder {
        SshdBuilder::default()
    }

    /// A server with the default options.
    pub fn start(tools: &SshTools) -> Sshd {
        SshdBuilder::default().start(tools)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temp dir (keys, config, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The user this process runs as, the one a forward logs in as by default.
    pub fn own_user() -> &'static str {
        "root"
    }

    /// The client command: `ssh ... -N -R <remote>:<local> user@127.0.0.1`, reading no user or system
    /// configuration and no agent, trusting the test's host key without recording it.
    pub fn forward_command(&self, user: &str, remote: &Path, local: &Path) -> Command {
        let mut cmd = clean_command(&self.tools.ssh, &self.home);
        cmd.args(["-F", "/dev/null", "-i"]).arg(&self.user_key);
        for option in [
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "ExitOnForwardFailure=yes",
            "StreamLocalBindUnlink=yes",
            "ConnectTimeout=5",
            "LogLevel=ERROR",
        ] {
            cmd.arg("-o").arg(option);
        }
        let mut spec = remote.as_os_str().to_owned();
        spec.push(":");
        spec.push(local.as_os_str());
        cmd.arg("-p").arg(self.port.to_string()).arg("-N").arg("-R").arg(spec).arg(format!("{user}@127.0.0.1"));
        cmd
    }

    /// Starts the client for a forward without waiting for anything (for forwards that must fail).
    pub fn spawn_forward(&self, user: &str, remote: &Path, local: &Path) -> Spawned {
        Spawned::spawn(self.forward_command(user, remote, local), None)
    }

    /// Forwards `remote` to `local` logged in as [`Sshd::own_user`], and waits until `remote` answers
    /// `daemon/status`.
    pub fn forward(&self, remote: &Path, local: &Path) -> SshForward<'_> {
        self.forward_as(Sshd::own_user(), remote, local)
    }

    /// Forwards `remote` to `local` logged in as `user` (sshd then creates `remote` as that user), and waits
    /// until `remote` answers `daemon/status`; panics with both logs when ssh exits or [`SSH_DEADLINE`] passes.
    pub fn forward_as(&self, user: &str, remote: &Path, local: &Path) -> SshForward<'_> {
        let mut forward =
            SshForward { sshd: self, ssh: self.spawn_forward(user, remote, local), remote: remote.into() };
        forward.wait_answers();
        forward
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait failed");
        }
        self.exit
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
            let end = Instant::now() + SSH_DEADLINE;
            while self.try_exit().is_none() && Instant::now() < end {
                std::thread::sleep(POLL_INTERVAL);
            }
            if self.try_exit().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("----- sshd log (port {}) -----\n{}\n----- end of sshd log -----", self.port, self.log());
        }
    }
}

/// A running `ssh -N -R remote:local`; killed when dropped (the server then closes the remote socket).
#[derive(Debug)]
pub struct SshForward<'a> {
    sshd: &'a Sshd,
    ssh: Spawned,
    remote: PathBuf,
}

impl SshForward<'_> {
    /// The forwarded socket's path on the "remote" side.
    pub fn remote(&self) -> &Path {
        &self.remote
    }

    /// The ssh client's pid: the process that connects to the local socket for each forwarded connection.
    pub fn pid(&self) -> u32 {
        self.ssh.pid()
    }

    /// What the ssh client wrote to stderr.
    pub fn stderr(&self) -> String {
        self.ssh.stderr()
    }

    /// The ssh client's exit status if it has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.ssh.try_exit()
    }

    /// A raw connection through the forward.
    pub fn conn(&self) -> Conn {
        Conn::connect(&self.remote).unwrap_or_else(|e| {
            panic!("cannot connect to the forwarded socket {}: {e}\n{}", self.remote.display(), self.diagnostics())
        })
    }

    fn wait_answers(&mut self) {
        let end = Instant::now() + SSH_DEADLINE;
        loop {
            if let Some(status) = self.ssh.try_exit() {
                panic!("ssh exited ({status}) before the forward answered\n{}", self.diagnostics());
            }
            if answers_status(&self.remote) {
                return;
            }
            assert!(
                Instant::now() < end,
                "the forwarded socket {} did not answer within {SSH_DEADLINE:?}\n{}",
                self.remote.display(),
                self.diagnostics()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn diagnostics(&self) -> String {
        format!("ssh stderr:\n{}\nsshd log:\n{}", self.ssh.stderr(), self.sshd.log())
    }
}

impl Drop for SshForward<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- ssh -R {} stderr -----\n{}\n-----", self.remote.display(), self.ssh.stderr());
        }
    }
}
