//! Whether systemd's user instance owns the socket: `codexd.socket` active and listening on the path. Read-only
//! questions to `systemctl --user`, bounded in time; any failure (no systemctl, no user bus) counts as "no".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The socket unit of the installed service.
pub(crate) const SOCKET_UNIT: &str = "codexd.socket";

/// The service unit of the installed service.
pub(crate) const SERVICE_UNIT: &str = "codexd.service";

/// How long one `systemctl` call may take.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(5);

/// What systemd says about `codexd.socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnitState {
    /// `systemctl --user` could not be asked (not installed, no user manager, timed out).
    Unknown,
    /// The unit's `ActiveState` (`active`, `inactive`, `failed`, ...) and the paths it listens on.
    Known {
        /// `ActiveState`.
        active_state: String,
        /// The `Listen` paths.
        listens: Vec<PathBuf>,
    },
}

impl UnitState {
    /// Whether the socket unit is active and listens on `socket`.
    pub(crate) fn owns(&self, socket: &Path) -> bool {
        match self {
            UnitState::Known { active_state, listens } => {
                active_state == "active" && listens.iter().any(|l| same_path(l, socket))
            }
            UnitState::Unknown => false,
        }
    }

    /// One line for `codexctl where`.
    pub(crate) fn describe(&self, socket: &Path) -> String {
        match self {
            UnitState::Unknown => "not asked (systemctl --user is not available)".to_owned(),
            UnitState::Known { active_state, listens } if active_state == "active" => {
                if self.owns(socket) {
                    format!("{SOCKET_UNIT} is active and owns this socket (socket activation)")
                } else {
                    let paths: Vec<String> = listens.iter().map(|p| p.display().to_string()).collect();
                    format!("{SOCKET_UNIT} is active but listens on {}, not here", paths.join(", "))
                }
            }
            UnitState::Known { active_state, .. } => format!("{SOCKET_UNIT} is {active_state}"),
        }
    }
}

/// Asks `systemctl --user show codexd.socket` for its state and listening paths.
pub(crate) fn socket_unit() -> UnitState {
    match systemctl(&["show", SOCKET_UNIT, "--property=ActiveState", "--property=Listen"]) {
        Some(text) => parse_show(&text),
        None => UnitState::Unknown,
    }
}

/// Whether systemd runs the daemon on `socket`: `codexd.socket` owns the socket, or `pid` (the daemon that answers
/// there, if any) is `codexd.service`'s main pid. `codexctl restart` and `codexctl service install` decide so.
pub(crate) fn managed_by_systemd(socket: &Path, pid: Option<u32>) -> bool {
    socket_unit().owns(socket) || pid.is_some_and(|pid| service_main_pid() == Some(pid))
}

/// The main pid of `codexd.service` when it is active.
pub(crate) fn service_main_pid() -> Option<u32> {
    let text = systemctl(&["show", SERVICE_UNIT, "--property=MainPID", "--property=ActiveState"])?;
    let mut active = false;
    let mut pid = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("ActiveState", state)) => active = state == "active",
            Some(("MainPID", value)) => pid = value.trim().parse::<u32>().ok().filter(|p| *p != 0),
            _ => {}
        }
    }
    pid.filter(|_| active)
}

/// `systemctl --user restart codexd.service`; `Err` with what went wrong.
pub(crate) fn restart_service() -> Result<(), String> {
    match run(&["restart", SERVICE_UNIT]) {
        Some((true, _)) => Ok(()),
        Some((false, stderr)) => Err(format!("systemctl --user restart {SERVICE_UNIT} failed: {}", stderr.trim())),
        None => Err(format!("systemctl --user restart {SERVICE_UNIT} could not be run")),
    }
}

/// The `key=value` lines of `systemctl show`: `ActiveState`, and `Listen` as `PATH (Stream)`.
fn parse_show(text: &str) -> UnitState {
    let mut active_state = String::new();
    let mut listens = Vec::new();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("ActiveState", state)) => state.trim().clone_into(&mut active_state),
            Some(("Listen", value)) if !value.trim().is_empty() => {
                let path = value.rsplit_once(" (").map_or(value, |(path, _)| path);
                listens.push(PathBuf::from(path.trim()));
            }
            _ => {}
        }
    }
    if active_state.is_empty() { UnitState::Unknown } else { UnitState::Known { active_state, listens } }
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The stdout of a successful `systemctl --user ARGS`.
fn systemctl(args: &[&str]) -> Option<String> {
    match run(args)? {
        (true, stdout) => Some(stdout),
        (false, _) => None,
    }
}

/// Runs `systemctl --user ARGS` with a deadline: whether it succeeded, and its stdout (success) or stderr.
fn run(args: &[&str]) -> Option<(bool, String)> {
    let dir = tempfile_dir()?;
    let out_path = dir.join("out");
    let err_path = dir.join("err");
    let outcome = (|| {
        let mut child = Command::new("systemctl")
            .arg("--user")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).ok()?)
            .stderr(std::fs::File::create(&err_path).ok()?)
            .spawn()
            .ok()?;
        let deadline = Instant::now() + SYSTEMCTL_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().ok()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = std::fs::read_to_string(if status.success() { &out_path } else { &err_path }).unwrap_or_default();
        Some((status.success(), text))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// A fresh private directory for systemctl's output (files, so that a full pipe can never block it).
fn tempfile_dir() -> Option<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.subsec_nanos();
    let dir = std::env::temp_dir().join(format!("codexctl-systemctl-{}-{nanos}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).ok()?;
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_gives_the_state_and_the_listening_paths() {
        let state = parse_show("ActiveState=active\nListen=/run/user/1000/codexd/codexd.sock (Stream)\n");
        assert_eq!(
            state,
            UnitState::Known {
                active_state: "active".to_owned(),
                listens: vec![PathBuf::from("/run/user/1000/codexd/codexd.sock")]
            }
        );
        assert!(state.owns(Path::new("/run/user/1000/codexd/codexd.sock")));
        assert!(!state.owns(Path::new("/tmp/other.sock")));
        assert!(state.describe(Path::new("/tmp/other.sock")).contains("not here"));
    }

    #[test]
    fn an_inactive_or_unknown_unit_owns_nothing() {
        let inactive = parse_show("ActiveState=inactive\nListen=\n");
        assert_eq!(inactive, UnitState::Known { active_state: "inactive".to_owned(), listens: vec![] });
        assert!(!inactive.owns(Path::new("/run/user/1000/codexd/codexd.sock")));
        assert_eq!(inactive.describe(Path::new("/x")), "codexd.socket is inactive");
        assert_eq!(parse_show(""), UnitState::Unknown);
        assert!(!UnitState::Unknown.owns(Path::new("/x")));
    }
}
