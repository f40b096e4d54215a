//! Whole-process cost of asking for a secret from a shell: `codexctl token` against a running codexd,
//! `git credential-cache get` against a running `git credential-cache--daemon`, and `/bin/true` as the floor
//! (what spawning any process costs). The three are run interleaved, so that drift hits them alike.

use crate::stats::Summary;
use anyhow::{Context, Result, bail, ensure};
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The credential `git credential-cache` stores and is asked for.
const GIT_STORE: &[u8] = b"protocol=https\nhost=example.com\nusername=u\npassword=p\n\n";
const GIT_QUERY: &[u8] = b"protocol=https\nhost=example.com\nusername=u\n\n";

/// Timings of the three commands.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// `codexctl token`.
    pub codexctl: Summary,
    /// `git credential-cache get`.
    pub git: Summary,
    /// `/bin/true`.
    pub true_: Summary,
}

/// A running `git credential-cache--daemon` on its own socket, with a throwaway HOME; told to exit on drop.
#[derive(Debug)]
pub struct GitCache {
    socket: PathBuf,
    home: PathBuf,
}

impl GitCache {
    /// Starts the cache daemon (through `git credential-cache store`) and stores one credential.
    pub fn start(scratch: &Path) -> Result<Self> {
        let home = scratch.join("git-home");
        let dir = scratch.join("gcc");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&home).context("cannot create git HOME")?;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).context("cannot create gcc dir")?;
        let cache = Self { socket: dir.join("gcc.sock"), home };
        let store = cache.run(&["--timeout", "600", "store"], GIT_STORE).context("git credential-cache store")?;
        ensure!(
            store.status.success(),
            "git credential-cache store failed ({}): {}",
            store.status,
            String::from_utf8_lossy(&store.stderr)
        );
        let get = cache.get()?;
        ensure!(
            get.status.success() && get.stdout.windows(11).any(|w| w == b"password=p\n"),
            "git credential-cache get did not return the stored credential ({}): {}{}",
            get.status,
            String::from_utf8_lossy(&get.stdout),
            String::from_utf8_lossy(&get.stderr)
        );
        Ok(cache)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .arg("credential-cache")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        command
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run git (is it installed?)")?;
        child.stdin.take().context("no stdin")?.write_all(stdin).context("cannot write to git")?;
        child.wait_with_output().context("cannot wait for git")
    }

    /// `git credential-cache get`, with the query on stdin.
    pub fn get(&self) -> Result<Output> {
        self.run(&["get"], GIT_QUERY)
    }
}

impl Drop for GitCache {
    fn drop(&mut self) {
        let _ = self.command(&["exit"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// Runs each command `warmup` times, then `runs` times measured, interleaved.
pub fn measure(
    codexctl: &Path,
    socket: &Path,
    token: &str,
    git: &GitCache,
    warmup: usize,
    runs: usize,
) -> Result<Outcome> {
    let expected = format!("{token}\n");
    let run_codexctl = || -> Result<Duration> {
        let start = Instant::now();
        let out = Command::new(codexctl)
            .arg("token")
            .env_clear()
            .env("CODEXD_SOCKET", socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot run {}", codexctl.display()))?;
        let took = start.elapsed();
        if !out.status.success() || out.stdout != expected.as_bytes() {
            bail!(
                "`codexctl token` failed ({}), stdout {} bytes (expected {}), stderr: {}",
                out.status,
                out.stdout.len(),
                expected.len(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    };
    let run_git = || -> Result<Duration> {
        let start = Instant::now();
        let out = git.get()?;
        let took = start.elapsed();
        ensure!(out.status.success() && !out.stdout.is_empty(), "git credential-cache get failed: {}", out.status);
        Ok(took)
    };
    let run_true = || -> Result<Duration> {
        let start = Instant::now();
        let out = Command::new("/bin/true")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("cannot run /bin/true")?;
        let took = start.elapsed();
        ensure!(out.status.success(), "/bin/true failed: {}", out.status);
        Ok(took)
    };
    let mut codexctl_times = Vec::with_capacity(runs);
    let mut git_times = Vec::with_capacity(runs);
    let mut true_times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let times = (run_codexctl()?, run_git()?, run_true()?);
        if i >= warmup {
            codexctl_times.push(times.0);
            git_times.push(times.1);
            true_times.push(times.2);
        }
    }
    Ok(Outcome {
        codexctl: Summary::of(&mut codexctl_times)?,
        git: Summary::of(&mut git_times)?,
        true_: Summary::of(&mut true_times)?,
    })
}
