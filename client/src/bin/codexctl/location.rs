//! `codexctl where`: the socket codexctl would use, why, and what answers there. For sessions (tmux, a GUI
//! login) whose environment no longer matches the running daemon. Never starts a daemon.

use crate::autostart::{self, Autostart};
use crate::socket_unit::{self, UnitState};
use crate::{Ctx, EXIT_OK, handshake};
use codexd_client::proto::methods::DaemonStatusResult;
use codexd_client::{Client, DefaultRule, SocketSource, default_rule, default_socket};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `where` waits for `daemon/status`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Flags of `codexctl where`.
#[derive(Debug, clap::Args)]
pub(crate) struct WhereArgs {
    /// Print one JSON object instead of the text
    #[arg(long)]
    json: bool,
}

/// What answers on the socket.
#[derive(Debug)]
enum State {
    Serving(Box<DaemonStatusResult>),
    NotRunning,
    Stale,
    NotASocket,
    /// Connected, but `daemon/status` failed.
    NoAnswer(String),
    /// The connect failed for another reason (permission, path too long, ...).
    Unreachable(String),
}

impl State {
    /// [`State::probe`] bounded as a whole, connect included: a `connect(2)` to a listener whose backlog is full
    /// (a stopped or hung daemon) waits until it accepts, which may be never, and no read timeout bounds that. The
    /// probe runs on a thread of its own, left behind if it does not finish (it ends with the process).
    fn probe_within(socket: &Path, limit: Duration) -> State {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let path = socket.to_owned();
        let spawned = std::thread::Builder::new().name("codexctl-where".to_owned()).spawn(move || {
            let _ = tx.send(State::probe(&path));
        });
        if spawned.is_err() {
            return State::probe(socket);
        }
        rx.recv_timeout(limit).unwrap_or_else(|_| {
            State::NoAnswer(format!(
                "nothing answered within {} s: the connection was not accepted (a daemon that is stopped or hung, \
                 with its backlog full)",
                limit.as_secs()
            ))
        })
    }

    fn probe(socket: &Path) -> State {
        let mut client = match Client::connect(socket) {
            Ok(client) => client,
            Err(codexd_client::ClientError::Unreachable { source, .. }) => {
                return match source.kind() {
                    io::ErrorKind::NotFound => State::NotRunning,
                    io::ErrorKind::ConnectionRefused if is_socket(socket) == Some(false) => State::NotASocket,
                    io::ErrorKind::ConnectionRefused => State::Stale,
                    _ => State::Unreachable(source.to_string()),
                };
            }
            Err(e) => return State::Unreachable(e.to_string()),
        };
        if let Err(e) = client.set_read_timeout(Some(PROBE_TIMEOUT)) {
            return State::NoAnswer(e.to_string());
        }
        match client.daemon_status() {
            Ok(status) => State::Serving(Box::new(status)),
            Err(e) => State::NoAnswer(e.to_string()),
        }
    }

    /// The `state` value of `--json`.
    fn key(&self) -> &'static str {
        match self {
            State::Serving(_) => "serving",
            State::NotRunning => "notRunning",
            State::Stale => "staleSocket",
            State::NotASocket => "notASocket",
            State::NoAnswer(_) => "noAnswer",
            State::Unreachable(_) => "unreachable",
        }
    }

    fn describe(&self) -> String {
        match self {
            State::Serving(status) => format!("serving (codexd {}, pid {})", status.version, status.pid),
            State::NotRunning => "not running (no socket file)".to_owned(),
            State::Stale => "stale socket file (nothing listens; the next codexd removes it)".to_owned(),
            State::NotASocket => "not a socket (another file has this path)".to_owned(),
            State::NoAnswer(e) => format!("accepts connections but does not answer daemon/status: {e}"),
            State::Unreachable(e) => format!("cannot connect: {e}"),
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            State::NoAnswer(e) | State::Unreachable(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(unix)]
fn is_socket(path: &Path) -> Option<bool> {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).ok().map(|m| m.file_type().is_socket())
}

#[cfg(not(unix))]
fn is_socket(_path: &Path) -> Option<bool> {
    None
}

/// Prints where the socket is and why; always exit 0.
pub(crate) fn run(ctx: &Ctx, args: &WhereArgs) -> anyhow::Result<u8> {
    let socket = &ctx.socket.path;
    let state = State::probe_within(socket, PROBE_TIMEOUT + Duration::from_secs(1));
    let unit = socket_unit::socket_unit();
    let report = Report { ctx, rule: default_rule(), default: default_socket(), state, unit };
    let text = if args.json { report.json_line()? } else { report.text() };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(EXIT_OK)
}

/// Everything `where` found out.
struct Report<'a> {
    ctx: &'a Ctx,
    rule: DefaultRule,
    default: PathBuf,
    state: State,
    unit: UnitState,
}

impl Report<'_> {
    /// Why this path: the flag, the variable, or the default rule with the variable that decided it.
    fn reason(&self) -> String {
        match self.ctx.socket.source {
            SocketSource::Flag => "the --socket flag".to_owned(),
            SocketSource::Env => "the CODEXD_SOCKET environment variable".to_owned(),
            SocketSource::Default => {
                let value = self
                    .rule
                    .variable()
                    .and_then(|name| std::env::var_os(name).map(|v| format!("; {name}={}", v.to_string_lossy())));
                format!("the default rule {}{}", self.rule, value.unwrap_or_default())
            }
        }
    }

    fn text(&self) -> String {
        let socket = &self.ctx.socket.path;
        let mut s = String::new();
        let mut line = |name: &str, value: &str| {
            let _ = writeln!(s, "{:<11} {value}", format!("{name}:"));
        };
        line("socket", &socket.display().to_string());
        line("chosen by", &self.reason());
        if self.ctx.socket.source != SocketSource::Default {
            line("default", &format!("{}, from the rule {}", self.default.display(), self.rule));
        }
        line("state", &self.state.describe());
        if let State::Serving(status) = &self.state
            && let Some(warning) = handshake::older_daemon(self.ctx, &status.version)
        {
            line("upgrade", &warning);
        }
        line("systemd", &self.unit.describe(socket));
        line("autostart", &self.autostart());
        line("log", &format!("{} (of a daemon codexctl started)", autostart::log_path(socket).display()));
        s
    }

    fn autostart(&self) -> String {
        match self.ctx.autostart {
            Autostart::On => "on: a command that needs codexd starts it when nothing answers here".to_owned(),
            off => format!("{}; start it with: {}", off.describe(), autostart::manual_command(&self.ctx.socket.path)),
        }
    }

    fn json_line(&self) -> serde_json::Result<String> {
        let socket = &self.ctx.socket.path;
        let source = match self.ctx.socket.source {
            SocketSource::Flag => "flag",
            SocketSource::Env => "env",
            SocketSource::Default => "default",
        };
        let rule = match self.rule {
            DefaultRule::RuntimeDir => "XDG_RUNTIME_DIR",
            DefaultRule::TmpDir => "TMPDIR",
            DefaultRule::Tmp => "/tmp",
            DefaultRule::Pipe => "pipe",
        };
        let daemon = match &self.state {
            State::Serving(status) => json!({
                "version": status.version,
                "pid": status.pid,
                "olderThanCodexctl": handshake::older_daemon(self.ctx, &status.version).is_some(),
            }),
            _ => Value::Null,
        };
        let systemd = match &self.unit {
            UnitState::Unknown => json!({"socketUnit": null, "listens": [], "ownsSocket": false}),
            UnitState::Known { active_state, listens } => json!({
                "socketUnit": active_state,
                "listens": listens,
                "ownsSocket": self.unit.owns(socket),
            }),
        };
        let value = json!({
            "socket": socket,
            "source": source,
            "defaultRule": rule,
            "defaultSocket": self.default,
            "state": self.state.key(),
            "daemon": daemon,
            "error": self.state.error(),
            "systemd": systemd,
            "autostart": self.ctx.autostart.is_on(),
            "log": autostart::log_path(socket),
        });
        let mut line = serde_json::to_string(&value)?;
        line.push('\n');
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codexd_client::ResolvedSocket;

    fn report(source: SocketSource, state: State, unit: UnitState) -> (Ctx, DefaultRule, State, UnitState) {
        let ctx = Ctx::for_tests(ResolvedSocket { path: "/run/u/codexd/codexd.sock".into(), source });
        (ctx, DefaultRule::Tmp, state, unit)
    }

    fn status(version: &str, pid: u32) -> DaemonStatusResult {
        serde_json::from_value(json!({
            "version": version, "pid": pid, "uptimeSeconds": 1, "store": "file", "codexHome": "/h",
            "socket": "/run/u/codexd/codexd.sock", "connections": 1, "subscribers": 0, "generation": 0,
            "authMethod": null, "lastRefresh": null, "nextRefresh": null, "authError": null
        }))
        .unwrap()
    }

    #[test]
    fn the_text_names_the_source_the_state_and_the_default() {
        let (ctx, rule, state, unit) =
            report(SocketSource::Env, State::Serving(Box::new(status("0.0.1", 77))), UnitState::Unknown);
        let r = Report { ctx: &ctx, rule, default: "/tmp/codexd-1/codexd.sock".into(), state, unit };
        let text = r.text();
        for part in [
            "socket:     /run/u/codexd/codexd.sock\n",
            "chosen by:  the CODEXD_SOCKET environment variable\n",
            "default:    /tmp/codexd-1/codexd.sock, from the rule /tmp/codexd-$UID/codexd.sock, as XDG_RUNTIME_DIR and \
             TMPDIR are unset\n",
            "state:      serving (codexd 0.0.1, pid 77)\n",
            "upgrade:    codexd 0.0.1 is older than codexctl",
            "systemd:    not asked",
            "autostart:  on",
            "log:        /run/u/codexd/codexd.log",
        ] {
            assert!(text.contains(part), "{part:?} missing in\n{text}");
        }
    }

    #[test]
    fn the_json_has_stable_keys() {
        let unit = UnitState::Known {
            active_state: "active".to_owned(),
            listens: vec![PathBuf::from("/run/u/codexd/codexd.sock")],
        };
        let (ctx, rule, state, unit) = report(SocketSource::Flag, State::Stale, unit);
        let r = Report { ctx: &ctx, rule, default: "/d.sock".into(), state, unit };
        let line = r.json_line().unwrap();
        assert!(line.ends_with('\n') && line.lines().count() == 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["source"], "flag");
        assert_eq!(v["state"], "staleSocket");
        assert_eq!(v["daemon"], Value::Null);
        assert_eq!(v["defaultRule"], "/tmp");
        assert_eq!(v["systemd"]["ownsSocket"], true);
        assert_eq!(v["log"], "/run/u/codexd/codexd.log");
    }
}
