//! [`Sandbox`]: a socket, `HOME` and `CODEX_HOME` for tests in which `codexctl` starts the daemon itself
//! (autostart), and [`codexd_pids`]: the `codexd` processes serving a socket, found through `/proc`.
//!
//! A daemon that `codexctl` starts is not a child of the test, so nothing else would stop it: dropping the sandbox
//! kills every `codexd` whose command line names the sandbox's socket (SIGTERM, then SIGKILL), also when the test
//! fails, and prints the daemon's log when it does.

use crate::bin::bin_path;
use crate::daemon::codexd_isolation_env;
use crate::process::{
    NO_AUTOSTART_ENV, Spawned, clean_command, proc_stat_after_comm, process_state, run_with_deadline,
};
use rustix::process::{Pid, Signal, kill_process};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a `codexctl` run that may start a daemon gets (codexctl itself waits at most 10 s for it).
pub const AUTOSTART_DEADLINE: Duration = Duration::from_secs(30);

/// How long a killed daemon gets to be gone.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

/// A socket nobody serves yet, with its own `HOME` and `CODEX_HOME`; `codexctl` runs with autostart on.
#[derive(Debug)]
pub struct Sandbox {
    home: TempDir,
    run: TempDir,
    socket: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// An empty `CODEX_HOME` (nobody logged in).
    pub fn new() -> Sandbox {
        let home = tempfile::Builder::new().prefix("cxh").tempdir_in("/tmp").expect("cannot create CODEX_HOME");
        let run = tempfile::Builder::new().prefix("cxa").tempdir_in("/tmp").expect("cannot create a scratch dir");
        // The socket's directory does not exist yet: codexctl (or the daemon) creates it, 0700.
        let socket = run.path().join("s").join("codexd.sock");
        Sandbox { home, run, socket }
    }

    /// A `CODEX_HOME` whose `auth.json` holds these bytes.
    pub fn with_auth(bytes: impl AsRef<[u8]>) -> Sandbox {
        let sandbox = Sandbox::new();
        std::fs::write(sandbox.home().join("auth.json"), bytes).expect("cannot write auth.json");
        sandbox
    }

    /// The `CODEX_HOME` given to `codexctl` (and so to the daemon it starts).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A scratch directory: `HOME` of `codexctl` and the daemon; the socket's directory is `s` in it.
    pub fn scratch(&self) -> &Path {
        self.run.path()
    }

    /// The socket `codexctl` uses (through `CODEXD_SOCKET`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The log of a daemon that `codexctl` started: `codexd.log` next to the socket.
    pub fn log(&self) -> PathBuf {
        self.socket.with_file_name("codexd.log")
    }

    /// What the log holds so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// A `codexd` command with the sandbox's clean environment ([`codexd_isolation_env`]: issuer calls to
    /// [`DEAD_ISSUER`], the sandbox's own system config directory), no arguments.
    ///
    /// [`DEAD_ISSUER`]: crate::DEAD_ISSUER
    pub fn codexd_command(&self) -> Command {
        let mut cmd = clean_command(bin_path("codexd"), self.run.path());
        self.daemon_env(&mut cmd);
        cmd
    }

    /// `codexctl args` with a clean environment and autostart on: `CODEXD_SOCKET`, `CODEX_HOME`, and the
    /// variables the started daemon needs so that it never leaves loopback or the sandbox.
    pub fn codexctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command(bin_path("codexctl"), self.run.path());
        cmd.env_remove(NO_AUTOSTART_ENV).env("CODEXD_SOCKET", &self.socket).args(args);
        self.daemon_env(&mut cmd);
        cmd
    }

    fn daemon_env(&self, cmd: &mut Command) {
        cmd.env("CODEX_HOME", self.home.path()).env("CODEXD_LOG", "debug");
        cmd.envs(codexd_isolation_env(self.run.path(), None));
    }

    /// Runs `codexctl args` (autostart on) to completion.
    pub fn codexctl(&self, args: &[&str]) -> Output {
        run_with_deadline(self.codexctl_command(args), AUTOSTART_DEADLINE)
    }

    /// Starts `codexctl args` (autostart on) in the background.
    pub fn spawn_codexctl(&self, args: &[&str]) -> Spawned {
        Spawned::spawn(self.codexctl_command(args), None)
    }

    /// The live `codexd` processes whose command line names this socket.
    pub fn daemon_pids(&self) -> Vec<u32> {
        codexd_pids(&self.socket)
    }

    /// Kills every daemon on this socket (SIGTERM, then SIGKILL after `KILL_DEADLINE`) and waits until they are
    /// gone.
    pub fn kill_daemons(&self) {
        for signal in [Signal::TERM, Signal::KILL] {
            let pids = self.daemon_pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                    let _ = kill_process(pid, signal);
                }
            }
            let end = Instant::now() + KILL_DEADLINE;
            while !self.daemon_pids().is_empty() && Instant::now() < end {
                std::thread::sleep(crate::wait::POLL_INTERVAL);
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill_daemons();
        if std::thread::panicking() {
            eprintln!(
                "----- codexd.log (socket {}, home {}) -----\n{}\n----- end of codexd.log -----",
                self.socket.display(),
                self.home.path().display(),
                self.log_text()
            );
        }
    }
}

/// The live (not zombie) `codexd` processes whose arguments include `socket`, e.g. `codexd --socket <socket>`.
pub fn codexd_pids(socket: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let socket = socket.as_os_str().as_encoded_bytes();
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let mut args = cmdline.split(|b| *b == 0);
            let is_codexd = args.next().is_some_and(|argv0| argv0.rsplit(|b| *b == b'/').next() == Some(b"codexd"));
            is_codexd && args.any(|arg| arg == socket) && process_alive(*pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    !matches!(process_state(pid), Some('Z' | 'X') | None)
}

/// The process group of `pid`, from `/proc/<pid>/stat`.
pub fn process_group(pid: u32) -> Option<u32> {
    // `state ppid pgrp ...`
    proc_stat_after_comm(pid)?.split_whitespace().nth(2)?.parse().ok()
}
