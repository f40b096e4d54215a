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
//!
//! Nothing is written before the socket directory is known to be private and ours (owned by our effective uid, not
//! a symlink, writable by nobody else; created 0700 when missing) and the log a regular file of ours in it, opened
//! without following a symlink: otherwise codexctl exits 3 naming the directory or the log and why.

use crate::{EXIT_UNREACHABLE, Failure};
use codexd_client::Client;
use codexd_client::proto::methods::DaemonStatusResult;
use std::ffi::OsString;
use std::fs::File;
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

/// How often the socket is asked while waiting (and, in `codexctl restart`, the old daemon's process looked at).
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// How long one readiness probe waits for `daemon/status` (connect included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shortest time a probe gets, even at its deadline.
const MIN_PROBE: Duration = Duration::from_millis(50);

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

/// `text` as one word for a POSIX shell: as is when it holds only plain path characters, else in single quotes.
pub(crate) fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The daemon that answers on `socket` within [`PROBE_TIMEOUT`]; `None` when nothing answers in time.
pub(crate) fn probe(socket: &Path) -> Option<DaemonStatusResult> {
    probe_within(socket, PROBE_TIMEOUT)
}

/// Whether a daemon answers as for [`probe`], bounded by `deadline` too (and by [`MIN_PROBE`] at least, so that a
/// last look is still possible).
fn probe_until(socket: &Path, deadline: Instant) -> bool {
    probe_within(socket, deadline.saturating_duration_since(Instant::now()).clamp(MIN_PROBE, PROBE_TIMEOUT)).is_some()
}

/// The daemon that answers `daemon/status` on `socket` within `limit`, connect included; `None` when nothing
/// answers in time. The connect and the call run on a thread of their own: a blocking `connect(2)` to a listener
/// whose backlog is full (a stopped or hung daemon, systemd's socket while its service is stuck starting) waits
/// until that listener accepts, which may be never, and a read timeout does not bound it. Such a thread is left
/// behind; it ends with its read timeout once connected, or with the process.
fn probe_within(socket: &Path, limit: Duration) -> Option<DaemonStatusResult> {
    let limit = limit.max(MIN_PROBE);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let path = socket.to_owned();
    std::thread::Builder::new()
        .name("codexctl-probe".to_owned())
        .spawn(move || {
            let status = Client::connect(&path).ok().and_then(|mut client| {
                client.set_read_timeout(Some(limit)).ok()?;
                client.daemon_status().ok()
            });
            let _ = tx.send(status);
        })
        .ok()?;
    rx.recv_timeout(limit).ok().flatten()
}

/// Starts `codexd` on `socket` and waits until it answers; exit 3 with a message naming the log when it does not.
/// With `announce`, says on stderr that it started one (and where it logs). `Ok` once a daemon serves (the one
/// started here, or one another codexctl started meanwhile).
pub(crate) fn start(socket: &Path, announce: bool) -> Result<(), Failure> {
    let socket = std::path::absolute(socket)
        .map_err(|e| unreachable(format!("cannot start codexd: {} has no absolute form: {e}", socket.display())))?;
    let dir = socket.parent().unwrap_or(Path::new("/")).to_owned();
    let log = log_path(&socket);
    // Nothing is written before the directory is known to be ours and private, and the log a file of ours in it:
    // another user who created the directory (say `/tmp/codexd-$UID`) could otherwise point the log anywhere.
    let dir_handle = private::open_socket_dir(&dir)?;
    let open_log = || private::open_log(&dir_handle, &log);
    let log_error = |e: io::Error| unreachable(format!("cannot start codexd: cannot open {}: {e}", log.display()));
    // One codexctl starts the daemon; the others wait for their turn and find it serving. The lock is taken on an
    // open of its own, which the daemon does not inherit (its stdout and stderr are another open of the file).
    let turn = open_log()?;
    let deadline = Instant::now() + START_TIMEOUT;
    take_turn(&turn, deadline, &socket)?;
    if probe_until(&socket, deadline) {
        return Ok(());
    }
    let mut output = open_log()?;
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
            if probe_within(socket, MIN_PROBE).is_some() {
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
) -> Result<(), Failure> {
    let mut exited = None;
    loop {
        if probe_until(socket, deadline) {
            return Ok(());
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

/// The socket directory and the log in it, checked before anything is written there.
#[cfg(unix)]
mod private {
    use super::{LOG_FILE_NAME, create_private_dir, unreachable};
    use crate::Failure;
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    use std::fs::{File, Permissions};
    use std::io;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    /// Opens the socket directory without following a symlink, creating it (0700, with its missing parents) when
    /// it does not exist. As the daemon does, it must be a directory owned by our effective uid; one that others
    /// may only read or search is made 0700, one that others may write to is refused (they may have put anything
    /// in it; and it may be a shared directory such as `/tmp`, which must not be chmod'ed). The handle is what the
    /// log is opened in, so that the directory checked is the one written to.
    pub(super) fn open_socket_dir(dir: &Path) -> Result<File, Failure> {
        let refuse = |why: &str| {
            unreachable(format!(
                "cannot start codexd: the socket directory {} is not private to this user: {why}; remove it, or \
                 choose another socket with --socket or CODEXD_SOCKET",
                dir.display()
            ))
        };
        let failed = |action: &str, e: io::Error| {
            unreachable(format!("cannot start codexd: cannot {action} the socket directory {}: {e}", dir.display()))
        };
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(refuse("it is a symbolic link")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(dir).map_err(|e| failed("create", e))?;
            }
            Err(e) => return Err(failed("examine", e)),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let handle = File::from(rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| match e {
            Errno::LOOP => refuse("it is a symbolic link"),
            Errno::NOTDIR => refuse("it is not a directory"),
            e => failed("open", e.into()),
        })?);
        let meta = handle.metadata().map_err(|e| failed("examine", e))?;
        let uid = rustix::process::geteuid().as_raw();
        if meta.uid() != uid {
            return Err(refuse(&format!("it is owned by uid {}, not {uid}", meta.uid())));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(refuse(&format!("other users may write to it (mode {mode:o})")));
        }
        if mode & 0o077 != 0 {
            handle.set_permissions(Permissions::from_mode(0o700)).map_err(|e| failed("make private (0700)", e))?;
        }
        Ok(handle)
    }

    /// Opens (appending, created 0600) `codexd.log` in the checked socket directory `dir`, `log` being its path
    /// for messages. A symlink is never followed; what is there must be a regular file of ours with no other
    /// name (a hard link to some other file); its mode is set to 0600.
    pub(super) fn open_log(dir: &File, log: &Path) -> Result<File, Failure> {
        let refuse = |why: &str| {
            unreachable(format!(
                "cannot start codexd: refusing to write to the log {}: {why}; remove it",
                log.display()
            ))
        };
        let failed = |e: io::Error| unreachable(format!("cannot start codexd: cannot open {}: {e}", log.display()));
        let flags = OFlags::RDWR | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(dir, LOG_FILE_NAME, flags, Mode::from_raw_mode(0o600)).map_err(
            |e| match e {
                Errno::LOOP => refuse("it is a symbolic link"),
                e => failed(e.into()),
            },
        )?);
        let meta = file.metadata().map_err(failed)?;
        let uid = rustix::process::geteuid().as_raw();
        if !meta.file_type().is_file() {
            return Err(refuse("it is not a regular file"));
        }
        if meta.uid() != uid {
            return Err(refuse(&format!("it is owned by uid {}, not {uid}", meta.uid())));
        }
        if meta.nlink() != 1 {
            return Err(refuse(&format!("it has {} hard links", meta.nlink())));
        }
        if meta.mode() & 0o7777 != 0o600 {
            file.set_permissions(Permissions::from_mode(0o600)).map_err(failed)?;
        }
        Ok(file)
    }
}

/// The socket directory and the log in it (no owners or modes to check here).
#[cfg(not(unix))]
mod private {
    use super::{create_private_dir, unreachable};
    use crate::Failure;
    use std::fs::{File, OpenOptions};
    use std::path::{Path, PathBuf};

    /// Creates the directory; the handle is its path.
    pub(super) fn open_socket_dir(dir: &Path) -> Result<PathBuf, Failure> {
        create_private_dir(dir).map_err(|e| {
            unreachable(format!("cannot start codexd: cannot create the socket directory {}: {e}", dir.display()))
        })?;
        Ok(dir.to_owned())
    }

    /// Opens the log for appending.
    pub(super) fn open_log(_dir: &Path, log: &Path) -> Result<File, Failure> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .read(true)
            .open(log)
            .map_err(|e| unreachable(format!("cannot start codexd: cannot open {}: {e}", log.display())))
    }
}

fn unreachable(message: String) -> Failure {
    Failure::new(EXIT_UNREACHABLE, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

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
        assert_eq!(shell_quote("gui/501/dev.codexd.codexd"), "gui/501/dev.codexd.codexd");
        assert_eq!(shell_quote("/Users/a b/x.plist"), "'/Users/a b/x.plist'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
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

    /// A fresh scratch directory for one test.
    #[cfg(unix)]
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("codexctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[cfg(unix)]
    #[test]
    fn the_socket_directory_must_be_ours_and_private_and_is_created_0700() {
        let base = scratch("private-dir");
        let dir = base.join("a/s");
        private::open_socket_dir(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        // Readable by others: nobody else could have put anything in it; made private, as the daemon does.
        chmod(&dir, 0o755);
        private::open_socket_dir(&dir).unwrap();
        assert_eq!(mode_of(&dir), 0o700);

        let message = |dir: &Path| private::open_socket_dir(dir).unwrap_err().to_string();
        chmod(&dir, 0o1777);
        let why = message(&dir);
        assert!(why.contains(&format!("{} is not private", dir.display())), "{why}");
        assert!(why.contains("other users may write to it (mode 1777)"), "{why}");
        assert_eq!(mode_of(&dir), 0o1777, "a shared directory is not chmod'ed");
        chmod(&dir, 0o700);

        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(message(&link).contains("it is a symbolic link"), "{}", message(&link));
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(message(&file).contains("it is not a directory"), "{}", message(&file));
        if is_root() {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            let why = message(&dir);
            assert!(why.contains("it is owned by uid 65534, not 0"), "{why}");
            assert!(!dir.join(LOG_FILE_NAME).exists());
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_log_is_never_a_symlink_a_hard_link_or_someone_elses_and_is_0600() {
        let base = scratch("private-log");
        let dir = base.join("s");
        let handle = private::open_socket_dir(&dir).unwrap();
        let log = dir.join(LOG_FILE_NAME);
        let victim = base.join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let message = || private::open_log(&handle, &log).unwrap_err().to_string();

        std::os::unix::fs::symlink(&victim, &log).unwrap();
        assert!(message().contains(&format!("the log {}: it is a symbolic link", log.display())), "{}", message());
        std::fs::remove_file(&log).unwrap();
        std::fs::hard_link(&victim, &log).unwrap();
        assert!(message().contains("it has 2 hard links"), "{}", message());
        std::fs::remove_file(&log).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n", "the victim was not touched");
        if is_root() {
            std::fs::write(&log, "").unwrap();
            std::os::unix::fs::chown(&log, Some(65534), Some(65534)).unwrap();
            assert!(message().contains("it is owned by uid 65534"), "{}", message());
            std::fs::remove_file(&log).unwrap();
        }

        let mut file = private::open_log(&handle, &log).unwrap();
        assert_eq!(mode_of(&log), 0o600);
        writeln!(file, "one").unwrap();
        chmod(&log, 0o644);
        let mut file = private::open_log(&handle, &log).unwrap();
        assert_eq!(mode_of(&log), 0o600, "an existing log is made 0600");
        writeln!(file, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n", "appended");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_probe_gives_up_in_time_on_a_peer_that_never_answers_or_never_accepts() {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
        let base = scratch("probe");
        // Accepts (the kernel does), never answers.
        let silent = base.join("silent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
        let started = Instant::now();
        assert!(probe_within(&silent, Duration::from_millis(300)).is_none());
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

        // A full backlog: connect(2) itself blocks.
        let full = base.join("full.sock");
        let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&fd, &SocketAddrUnix::new(&full).unwrap()).unwrap();
        rustix::net::listen(&fd, 0).unwrap();
        let _queued = std::os::unix::net::UnixStream::connect(&full).unwrap();
        let started = Instant::now();
        assert!(probe_within(&full, Duration::from_millis(300)).is_none());
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        let deadline = Instant::now() + Duration::from_millis(200);
        assert!(!probe_until(&full, deadline));
        assert!(Instant::now() < deadline + Duration::from_millis(500), "the deadline holds");
        drop(fd);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
