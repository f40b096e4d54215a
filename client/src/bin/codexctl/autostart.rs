//! Autostart, as gpg-agent does it: when nothing listens on the socket, codexctl starts `codexd` in the
//! background on that socket, waits until it answers, and goes on.
//!
//! The daemon is the `codexd` next to the running codexctl (else `codexd` in `PATH`), started with
//! `--socket <path>` in a process group of its own, stdin from /dev/null, stdout and stderr appended to
//! `<socket dir>/codexd.log` (0600), working directory `/`, and codexctl's environment (so `CODEX_HOME`,
//! `CODEXD_ISSUER`, ... apply to it as they would to a codexd started by hand; relative paths in it are made
//! absolute, and systemd's `LISTEN_*` and `NOTIFY_SOCKET` are left out). Two codexctl starting at once take
//! turns on a lock of the log file, so one daemon is started; should two daemons still race (another program
//! started one), the daemon's own `<socket>.lock` makes the second exit with "already serving", and codexctl waits
//! for the one that serves.

use crate::{EXIT_UNREACHABLE, Failure};
use codexd_client::Client;
use codexd_client::proto::methods::DaemonStatusResult;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that turns autostart off (any value but empty and `0`).
pub(crate) const NO_AUTOSTART_ENV: &str = "CODEXD_NO_AUTOSTART";

/// The log file of an autostarted daemon, in the socket's directory.
pub(crate) const LOG_FILE_NAME: &str = "codexd.log";

/// How long a started daemon gets to answer (and a second codexctl waits for the first one's start).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables of the daemon that hold paths, made absolute for the daemon (which runs in `/`).
const PATH_VARIABLES: [&str; 4] = ["CODEX_HOME", "CODEX_CA_CERTIFICATE", "SSL_CERT_FILE", "CODEXD_SYSTEM_CONFIG_DIR"];

/// How often the socket is asked while waiting.
const POLL: Duration = Duration::from_millis(20);

/// How long one readiness probe waits for `daemon/status`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether codexctl may start a daemon, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Autostart {
    /// Start one when nothing listens.
    On,
    /// `--no-autostart`.
    OffByFlag,
    /// `CODEXD_NO_AUTOSTART`.
    OffByEnv,
}

impl Autostart {
    /// From the flag and the value of `CODEXD_NO_AUTOSTART`.
    pub(crate) fn from_settings(flag: bool, env: Option<&OsString>) -> Self {
        if flag {
            Autostart::OffByFlag
        } else if env.is_some_and(|v| !v.is_empty() && v != "0") {
            Autostart::OffByEnv
        } else {
            Autostart::On
        }
    }

    /// Whether a daemon may be started.
    pub(crate) fn is_on(self) -> bool {
        self == Autostart::On
    }

    /// `on`, `off (--no-autostart)`, `off (CODEXD_NO_AUTOSTART)`.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Autostart::On => "on",
            Autostart::OffByFlag => "off (--no-autostart)",
            Autostart::OffByEnv => "off (CODEXD_NO_AUTOSTART)",
        }
    }
}

/// Whether a connect error means that no daemon listens there (no socket file, or nobody accepting on it), as
/// opposed to one that cannot be reached (no permission, path too long, ...).
pub(crate) fn nothing_listens(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused)
}

/// `<socket dir>/codexd.log`.
pub(crate) fn log_path(socket: &Path) -> PathBuf {
    socket.parent().unwrap_or(Path::new(".")).join(LOG_FILE_NAME)
}

/// The `codexd` next to the running codexctl, else `codexd` (looked up in `PATH`).
pub(crate) fn codexd_binary() -> PathBuf {
    let name = format!("codexd{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The shell command that starts a daemon on `socket` by hand, as autostart would.
pub(crate) fn manual_command(socket: &Path) -> String {
    let log = log_path(socket);
    format!(
        "{} --socket {} >>{} 2>&1 &",
        shell_quote(&codexd_binary().to_string_lossy()),
        shell_quote(&socket.to_string_lossy()),
        shell_quote(&log.to_string_lossy())
    )
}

/// `text` as one shell word (single quotes when it holds anything but plain path characters).
fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The daemon that answers on `socket`, asked with a short timeout; `None` when nothing answers.
pub(crate) fn probe(socket: &Path) -> Option<DaemonStatusResult> {
    let mut client = Client::connect(socket).ok()?;
    client.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    client.daemon_status().ok()
}

/// Starts `codexd` on `socket` and waits until it answers; exit 3 with a message naming the log when it does not.
/// With `announce`, says on stderr that it started one (and where it logs). Returns what the daemon that serves
/// (the one started here, or one another codexctl started meanwhile) says to `daemon/status`.
pub(crate) fn start(socket: &Path, announce: bool) -> Result<DaemonStatusResult, Failure> {
    let socket = std::path::absolute(socket)
        .map_err(|e| unreachable(format!("cannot start codexd: {} has no absolute form: {e}", socket.display())))?;
    let dir = socket.parent().unwrap_or(Path::new("/")).to_owned();
    create_private_dir(&dir).map_err(|e| {
        unreachable(format!("cannot start codexd: cannot create the socket directory {}: {e}", dir.display()))
    })?;
    let log = log_path(&socket);
    let open_log = || -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.append(true).create(true).read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&log)
    };
    let log_error = |e: io::Error| unreachable(format!("cannot start codexd: cannot open {}: {e}", log.display()));
    // One codexctl starts the daemon; the others wait for their turn and find it serving. The lock is taken on an
    // open of its own, which the daemon does not inherit (its stdout and stderr are another open of the file).
    let turn = open_log().map_err(log_error)?;
    let deadline = Instant::now() + START_TIMEOUT;
    take_turn(&turn, deadline, &socket)?;
    if let Some(status) = probe(&socket) {
        return Ok(status);
    }
    let mut output = open_log().map_err(log_error)?;
    let log_start = output.seek(SeekFrom::End(0)).unwrap_or(0);
    let binary = codexd_binary();
    let _ = writeln!(
        output,
        "----- codexctl (pid {}) starts {} --socket {} -----",
        std::process::id(),
        binary.display(),
        socket.display()
    );
    let stderr = output.try_clone().map_err(log_error)?;
    let mut cmd = Command::new(&binary);
    cmd.arg("--socket").arg(&socket).stdin(Stdio::null()).stdout(output).stderr(stderr).current_dir("/");
    // The daemon runs in `/`: relative paths in its settings must keep meaning what they mean here.
    for name in PATH_VARIABLES {
        if let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty())
            && let Ok(absolute) = std::path::absolute(&value)
        {
            cmd.env(name, absolute);
        }
    }
    // Meant for codexctl's own service manager, if any; never for the daemon started here.
    for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"] {
        cmd.env_remove(name);
    }
    // A process group of its own: Ctrl-C at the terminal (SIGINT to the foreground group) does not reach it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| {
        unreachable(format!(
            "cannot start {}: {e}; install codexd next to codexctl or in PATH, or start it yourself",
            binary.display()
        ))
    })?;
    if announce {
        let _ = writeln!(
            io::stderr().lock(),
            "codexctl: no codexd answered at {}; started {} (pid {}), logging to {}",
            socket.display(),
            binary.display(),
            child.id(),
            log.display()
        );
    }
    wait_serving(&socket, &mut child, &log, log_start, deadline)
}

/// Waits (polling, until `deadline`) for the lock on the log file; a daemon that starts serving meanwhile ends the
/// wait too (the codexctl that holds the lock may be slow to let go).
fn take_turn(file: &File, deadline: Instant, socket: &Path) -> Result<(), Failure> {
    loop {
        // Taken, or a filesystem without locks: go on (the daemon's own lock still keeps one daemon per socket).
        if !matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if probe(socket).is_some() {
                return Ok(());
            }
            return Err(unreachable(format!(
                "another codexctl has been starting codexd on {} for {} s and it does not answer yet; see {}",
                socket.display(),
                START_TIMEOUT.as_secs(),
                log_path(socket).display()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// Polls until the daemon answers. When the started one exits first, waits on only while another live daemon holds
/// `<socket>.lock` (it lost the race to that one); otherwise fails at once with its last log line.
fn wait_serving(
    socket: &Path,
    child: &mut Child,
    log: &Path,
    log_start: u64,
    deadline: Instant,
) -> Result<DaemonStatusResult, Failure> {
    let mut exited = None;
    loop {
        if let Some(status) = probe(socket) {
            return Ok(status);
        }
        if exited.is_none() {
            exited = child.try_wait().ok().flatten();
        }
        if let Some(status) = exited
            && !lock_holder(socket).is_some_and(|pid| pid != child.id() && process_alive(pid))
        {
            let why = last_line(log, log_start).map_or_else(String::new, |line| format!(": {line}"));
            return Err(unreachable(format!(
                "started codexd for {} but it exited ({status}) before serving{why}; see {}",
                socket.display(),
                log.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(unreachable(format!(
                "started codexd (pid {}) for {} but it did not answer within {} s; see {}",
                child.id(),
                socket.display(),
                START_TIMEOUT.as_secs(),
                log.display()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// The pid written in `<socket>.lock` by the daemon that holds (or held) it.
pub(crate) fn lock_holder(socket: &Path) -> Option<u32> {
    let mut path = socket.as_os_str().to_owned();
    path.push(".lock");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether process `pid` exists and is not a zombie (a daemon that exited but was not reaped yet is gone).
#[cfg(target_os = "linux")]
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S ...`: the state follows the last `)`, since comm may hold anything.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Whether process `pid` exists.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Whether process `pid` exists (unknown here: assume it does).
#[cfg(not(unix))]
pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}

/// The last non-empty line the daemon wrote to the log after `start`, trimmed to a sensible length.
fn last_line(log: &Path, start: u64) -> Option<String> {
    let mut file = File::open(log).ok()?;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty() && !l.starts_with("----- codexctl"))?;
    Some(line.chars().take(300).collect())
}

/// Creates `dir` and its missing parents, owner-only (0700), as the daemon would.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn unreachable(message: String) -> Failure {
    Failure::new(EXIT_UNREACHABLE, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autostart_is_off_with_the_flag_or_a_non_empty_non_zero_variable() {
        let on = |flag, env: Option<&str>| Autostart::from_settings(flag, env.map(OsString::from).as_ref());
        assert_eq!(on(false, None), Autostart::On);
        assert_eq!(on(false, Some("")), Autostart::On);
        assert_eq!(on(false, Some("0")), Autostart::On);
        assert_eq!(on(false, Some("1")), Autostart::OffByEnv);
        assert_eq!(on(false, Some("yes")), Autostart::OffByEnv);
        assert_eq!(on(true, None), Autostart::OffByFlag);
        assert_eq!(on(true, Some("1")), Autostart::OffByFlag);
        assert!(Autostart::On.is_on() && !Autostart::OffByEnv.is_on());
        assert_eq!(Autostart::OffByEnv.describe(), "off (CODEXD_NO_AUTOSTART)");
    }

    #[test]
    fn only_a_missing_socket_or_a_refused_connect_means_nothing_listens() {
        assert!(nothing_listens(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(nothing_listens(&io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert!(!nothing_listens(&io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(!nothing_listens(&io::Error::other("path too long")));
    }

    #[test]
    fn the_log_sits_next_to_the_socket() {
        assert_eq!(log_path(Path::new("/run/user/1/codexd/codexd.sock")), Path::new("/run/user/1/codexd/codexd.log"));
        assert_eq!(log_path(Path::new("s.sock")), Path::new("codexd.log"));
    }

    #[test]
    fn the_manual_command_quotes_what_the_shell_would_split() {
        assert_eq!(shell_quote("/run/user/1/codexd/codexd.sock"), "/run/user/1/codexd/codexd.sock");
        assert_eq!(shell_quote("/tmp/my dir/it's.sock"), r"'/tmp/my dir/it'\''s.sock'");
        assert_eq!(shell_quote(""), "''");
        let command = manual_command(Path::new("/tmp/a b/codexd.sock"));
        assert!(command.contains(" --socket '/tmp/a b/codexd.sock' >>'/tmp/a b/codexd.log' 2>&1 &"), "{command}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_and_a_free_pid_is_not() {
        assert!(process_alive(std::process::id()));
        // Above the largest pid Linux hands out (2^22).
        assert!(!process_alive(4_194_305));
    }

    #[test]
    fn the_lock_holder_is_the_pid_in_the_lock_file() {
        let dir = std::env::temp_dir().join(format!("codexctl-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("codexd.sock");
        assert_eq!(lock_holder(&socket), None);
        std::fs::write(dir.join("codexd.sock.lock"), "4242").unwrap();
        assert_eq!(lock_holder(&socket), Some(4242));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_last_log_line_skips_blank_lines_and_what_came_before() {
        let dir = std::env::temp_dir().join(format!("codexctl-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(LOG_FILE_NAME);
        std::fs::write(&log, "old line\n").unwrap();
        let start = std::fs::metadata(&log).unwrap().len();
        assert_eq!(last_line(&log, start), None);
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(file, "----- codexctl (pid 1) starts codexd -----\ncodexd: another codexd is already serving\n\n")
            .unwrap();
        assert_eq!(last_line(&log, start).as_deref(), Some("codexd: another codexd is already serving"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
