//! The servers under test as child processes: `codexd` itself, and the echo baseline (this binary started
//! with `echo-server`). Readiness is "a connection answers"; stopping is SIGTERM with a deadline.

use anyhow::{Context, Result, bail, ensure};
use rustix::process::{Pid, Signal, kill_process};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first request, or to exit after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(10);

/// A server running as a child process, killed on drop if [`Server::stop`] was not called.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    child: Option<Child>,
    pid: u32,
    socket: PathBuf,
    stderr: PathBuf,
}

impl Server {
    /// Starts `codexd --socket <socket> --codex-home <codex_home>` with a cleared environment and waits until it
    /// answers `daemon/status`. Its issuer, refresh and revoke URLs point at a closed loopback port.
    pub fn spawn_codexd(bin: &Path, scratch: &Path, codex_home: &Path) -> Result<Self> {
        Self::spawn_codexd_with(bin, scratch, codex_home, crate::fixture::DEAD_ISSUER, &[])
    }

    /// As [`Server::spawn_codexd`], with `issuer` (an `http://127.0.0.1:PORT` URL, nothing else is accepted) for
    /// logins, refreshes and revokes, and `env` set on top (it may override `CODEXD_LOG`).
    pub fn spawn_codexd_with(
        bin: &Path,
        scratch: &Path,
        codex_home: &Path,
        issuer: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        ensure!(
            issuer.starts_with("http://127.0.0.1:"),
            "refusing to point codexd at {issuer:?}: the bench only talks to 127.0.0.1"
        );
        let socket = scratch.join("run/codexd.sock");
        let system_config = scratch.join("etc-codex");
        std::fs::create_dir_all(&system_config).context("cannot create the system config dir")?;
        let stderr = scratch.join("codexd.stderr");
        let mut command = Command::new(bin);
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--codex-home")
            .arg(codex_home)
            .arg("--issuer")
            .arg(issuer)
            .env_clear()
            .env("HOME", scratch)
            .env("CODEXD_LOG", "warn")
            .env("CODEXD_SYSTEM_CONFIG_DIR", &system_config)
            .env("CODEX_REFRESH_TOKEN_URL_OVERRIDE", format!("{issuer}/oauth/token"))
            .env("CODEX_REVOKE_TOKEN_URL_OVERRIDE", format!("{issuer}/oauth/revoke"))
            .envs(env.iter().copied());
        let mut server = Self::spawn("codexd", command, socket, stderr)?;
        let reply = server.wait_ready(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"daemon/status\"}\n")?;
        let status: serde_json::Value = serde_json::from_slice(&reply).context("daemon/status reply is not JSON")?;
        let pid = status["result"]["pid"].as_u64();
        ensure!(pid == Some(u64::from(server.pid)), "daemon/status answered {status}, expected pid {}", server.pid);
        Ok(server)
    }

    /// Starts the echo baseline (this executable, `echo-server <socket> <reply_len>`) and waits until it answers.
    pub fn spawn_echo(scratch: &Path, reply_len: usize) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let socket = scratch.join("echo.sock");
        let stderr = scratch.join("echo.stderr");
        let mut command = Command::new(exe);
        command.arg("echo-server").arg(&socket).arg(reply_len.to_string()).env_clear();
        let mut server = Self::spawn("echo server", command, socket, stderr)?;
        let reply = server.wait_ready(b"{}\n")?;
        ensure!(reply.len() == reply_len, "echo server replied {} bytes, expected {reply_len}", reply.len());
        Ok(server)
    }

    fn spawn(name: &'static str, mut command: Command, socket: PathBuf, stderr: PathBuf) -> Result<Self> {
        let log = std::fs::File::create(&stderr).with_context(|| format!("cannot create {}", stderr.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", Path::new(command.get_program()).display()))?;
        Ok(Self { name, pid: child.id(), child: Some(child), socket, stderr })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The socket it serves.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Connects, sends `probe` and returns the reply line; retries the connection until [`DEADLINE`].
    fn wait_ready(&mut self, probe: &[u8]) -> Result<Vec<u8>> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("cannot poll the child")?
            {
                bail!("{} exited during start-up ({status}); its stderr:\n{}", self.name, self.stderr_text());
            }
            if let Ok(stream) = UnixStream::connect(&self.socket) {
                stream.set_read_timeout(Some(DEADLINE))?;
                let mut writer = &stream;
                writer.write_all(probe).with_context(|| format!("cannot write to {}", self.name))?;
                let mut line = Vec::new();
                BufReader::new(&stream)
                    .read_until(b'\n', &mut line)
                    .with_context(|| format!("{} accepted a connection but did not answer", self.name))?;
                ensure!(line.ends_with(b"\n"), "{} closed the connection instead of answering", self.name);
                return Ok(line);
            }
            if start.elapsed() > DEADLINE {
                bail!(
                    "{} did not accept connections on {} within {DEADLINE:?}; its stderr:\n{}",
                    self.name,
                    self.socket.display(),
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns how long the exit took.
    pub fn stop(mut self) -> Result<Duration> {
        let mut child = self.child.take().context("already stopped")?;
        let start = Instant::now();
        kill_process(Pid::from_child(&child), Signal::TERM)
            .with_context(|| format!("cannot send SIGTERM to {} (pid {})", self.name, self.pid))?;
        loop {
            if let Some(status) = child.try_wait().context("cannot poll the child")? {
                let took = start.elapsed();
                ensure!(
                    status.success(),
                    "{} exited with {status} after SIGTERM; its stderr:\n{}",
                    self.name,
                    self.stderr_text()
                );
                return Ok(took);
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {DEADLINE:?} of SIGTERM (killed it)", self.name);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What the server wrote to stderr (its log), for error messages.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.stderr.display()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
