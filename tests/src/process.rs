//! Child processes with a cleared environment, output captured to files, and waits with deadlines.

use rustix::process::{Pid, Signal, kill_process};
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The variable that stops `codexctl` from starting a daemon; [`clean_command`] sets it to `1`.
pub const NO_AUTOSTART_ENV: &str = "CODEXD_NO_AUTOSTART";

/// A command for `program` with an empty environment except `PATH`, `HOME=home` and `CODEXD_NO_AUTOSTART=1`, so
/// that nothing from the developer's login (`CODEX_HOME`, `XDG_RUNTIME_DIR`, `CODEXD_SOCKET`, ...) leaks into a
/// test, and a `codexctl` that finds no daemon exits 3 instead of starting one. The autostart tests remove
/// `CODEXD_NO_AUTOSTART` (see [`crate::autostart::Sandbox`]).
pub fn clean_command(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("HOME", home).env(NO_AUTOSTART_ENV, "1");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// A child's output as text (invalid UTF-8 shown as U+FFFD), for assertions and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` to completion with no stdin; kills it and panics if it outlives `deadline`.
pub fn run_with_deadline(cmd: Command, deadline: Duration) -> Output {
    Spawned::spawn(cmd, None).wait_output(deadline)
}

/// `/proc/<pid>/stat` after the command name (`state ppid pgrp ...`), or `None` when there is no such process.
pub(crate) fn proc_stat_after_comm(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: the command name is in parentheses and may contain spaces and `)`; the state
    // follows the last `)`.
    stat.rsplit_once(')').map(|(_, rest)| rest.to_owned())
}

/// The state letter of process `pid` in `/proc/<pid>/stat` (`R`, `S`, `T` for stopped, `Z` for a zombie, ...), or
/// `None` when there is no such process.
pub fn process_state(pid: u32) -> Option<char> {
    proc_stat_after_comm(pid)?.trim_start().chars().next()
}

/// A child process whose stdout and stderr go to files, readable at any time. Killed (SIGKILL) when dropped
/// while still running.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    exit: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

impl Spawned {
    /// Starts `cmd` with `stdin` (bytes, or nothing) and its output captured.
    pub fn spawn(mut cmd: Command, stdin: Option<&[u8]>) -> Spawned {
        let dir = tempfile::Builder::new().prefix("cxp").tempdir().expect("cannot create a temp dir");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let input = match stdin {
            Some(bytes) => {
                let path = dir.path().join("stdin");
                std::fs::write(&path, bytes).expect("cannot write stdin file");
                Stdio::from(File::open(&path).expect("cannot open stdin file"))
            }
            None => Stdio::null(),
        };
        cmd.stdin(input)
            .stdout(File::create(&stdout).expect("cannot create stdout file"))
            .stderr(File::create(&stderr).expect("cannot create stderr file"));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", cmd.get_program().display()));
        Spawned { child, exit: None, stdout, stderr, _dir: dir }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` to the process (ignored when it has already been reaped).
    pub fn signal(&self, signal: Signal) {
        if self.exit.is_none() {
            let _ = kill_process(Pid::from_child(&self.child), signal);
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait failed");
        }
        self.exit
    }

    /// Waits for the process to exit; kills it and panics (with its stderr) if `deadline` passes first.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            if Instant::now() >= end {
                self.signal(Signal::KILL);
                let _ = self.child.wait();
                panic!(
                    "{:?} did not exit within {deadline:?}; stdout:\n{}\nstderr:\n{}",
                    self.child.id(),
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(crate::wait::POLL_INTERVAL);
        }
    }

    /// Waits for the process to exit (see [`Spawned::wait_exit`]), asserts that it exited 0, and returns its stdout
    /// parsed as one JSON value per line (e.g. `codexctl watch`).
    pub fn wait_json_lines(&mut self, deadline: Duration) -> Vec<serde_json::Value> {
        let status = self.wait_exit(deadline);
        assert_eq!(status.code(), Some(0), "stderr:\n{}", self.stderr());
        self.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
            .collect()
    }

    /// Waits for the process to exit (see [`Spawned::wait_exit`]) and returns its status and output.
    pub fn wait_output(mut self, deadline: Duration) -> Output {
        let status = self.wait_exit(deadline);
        Output { status, stdout: self.stdout().into_bytes(), stderr: self.stderr().into_bytes() }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            self.signal(Signal::KILL);
            let _ = self.child.wait();
        }
    }
}
