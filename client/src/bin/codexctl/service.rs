//! `codexctl service install | uninstall | status`: codexd as a user service, with systemd's user instance on
//! Linux (`systemd/codexd.socket` + `systemd/codexd.service`) and launchd on macOS
//! (`launchd/dev.codexd.codexd.plist`). The files are the repository's own, embedded at build time, with their
//! placeholders filled in: the absolute path of the installed `codexd`, and on macOS the home directory and socket.
//!
//! What is done is first computed as a [`Plan`] (pure, unit-tested for both service managers), then carried out,
//! or only printed with `--dry-run`. When the service manager cannot be reached (no `systemctl`, no user bus, no
//! `launchctl`), the files are still written and the commands that would enable and start codexd are printed for
//! the user to run in their login session; that is not a failure (exit 0, with a note on stderr).

use crate::autostart::{self, Autostart, shell_quote};
use crate::socket_unit::{self, SERVICE_UNIT, SOCKET_UNIT};
use crate::{Ctx, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Failure, restart};
use anyhow::Context as _;
use clap::Subcommand;
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The socket unit as shipped (`systemd/codexd.socket`).
const SOCKET_TEMPLATE: &str = include_str!("../../../../systemd/codexd.socket");
/// The service unit as shipped (`systemd/codexd.service`); `ExecStart=@CODEXD@` gets the codexd path.
const SERVICE_TEMPLATE: &str = include_str!("../../../../systemd/codexd.service");
/// The LaunchAgent as shipped (`launchd/dev.codexd.codexd.plist`).
const PLIST_TEMPLATE: &str = include_str!("../../../../launchd/dev.codexd.codexd.plist");

/// The launchd label, also the plist's file name without `.plist`.
const LABEL: &str = "dev.codexd.codexd";
/// The line of the service template that names the binary.
const EXEC_START_PLACEHOLDER: &str = "ExecStart=@CODEXD@";
/// Placeholders of the plist: each stands alone in a `<string>` element.
const PLIST_CODEXD: &str = "<string>@CODEXD@</string>";
const PLIST_SOCKET: &str = "<string>@CODEXD_SOCKET@</string>";
const PLIST_HOME: &str = "<string>@HOME@/";
/// The daemon binary's name.
const CODEXD: &str = "codexd";

const SERVICE_HELP: &str = "\
install writes the unit files of codexd's systemd user service (codexd.socket and codexd.service in
$XDG_CONFIG_HOME/systemd/user, default ~/.config/systemd/user) or, on macOS, the LaunchAgent
~/Library/LaunchAgents/dev.codexd.codexd.plist, naming the absolute path of codexd: the one next to this codexctl,
else the first in PATH. Then it runs `systemctl --user daemon-reload` and `systemctl --user enable --now
codexd.socket` (macOS: `launchctl bootstrap gui/$UID <plist>`). A codexd that already serves the service's
socket without the service manager (autostarted, or started by hand) is asked to shut down first, so that the
service can own the socket. Running it again rewrites the files (a changed file is replaced and a running codexd
restarted) and succeeds. When systemctl or launchctl cannot be used here (not
installed, no user session bus), the files are written and the commands to run are printed on stdout.

uninstall stops and disables the service and removes the files; status says whether they are installed, which
codexd they run, and what the service manager says about them. --dry-run prints what would be done, and does
nothing. See docs/SERVICE.md.

Exit codes:
  0  done (also: nothing to do, or the service manager was not reachable and the commands were printed);
     status: the files are installed
  1  failed (a file could not be written, systemctl or launchctl refused, codexd not found);
     status: the files are not (all) installed
  2  usage error, or a platform without systemd or launchd";

/// Arguments of `codexctl service`.
#[derive(Debug, clap::Args)]
#[command(after_help = SERVICE_HELP)]
pub(crate) struct ServiceArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Write the unit files (macOS: the LaunchAgent) for the installed codexd, then enable and start it
    Install(DryRun),
    /// Stop and disable the service, and remove its files
    Uninstall(DryRun),
    /// Show whether the service files are installed, which codexd they run, and whether it is active
    Status,
}

#[derive(Debug, clap::Args)]
struct DryRun {
    /// Print what would be written and run, and do nothing
    #[arg(long)]
    dry_run: bool,
}

/// The service manager that runs user services on this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    /// systemd's user instance (`systemctl --user`).
    Systemd,
    /// launchd's per-user GUI domain (`launchctl ... gui/$UID`).
    Launchd,
}

impl Manager {
    /// The manager of this platform, if codexctl knows one.
    fn current() -> Option<Manager> {
        if cfg!(target_os = "macos") {
            Some(Manager::Launchd)
        } else if cfg!(target_os = "linux") {
            Some(Manager::Systemd)
        } else {
            None
        }
    }

    /// The name used in messages.
    fn name(self) -> &'static str {
        match self {
            Manager::Systemd => "the systemd user manager",
            Manager::Launchd => "launchd",
        }
    }

    /// The short name: `systemd`, `launchd`.
    fn short_name(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::Launchd => "launchd",
        }
    }
}

/// Runs `codexctl service ...`.
pub(crate) fn run(ctx: &Ctx, args: &ServiceArgs) -> anyhow::Result<u8> {
    let Some(manager) = Manager::current() else {
        return Err(Failure::new(
            EXIT_USAGE,
            "codexctl service supports systemd (Linux) and launchd (macOS); run codexd under your service manager \
             by hand (see docs/SERVICE.md)",
        )
        .into());
    };
    let env = HostEnv::read(manager, ctx)?;
    match &args.action {
        Action::Install(flags) => {
            let codexd = find_codexd()?;
            // One `launchctl print` tells whether the agent is loaded (for the plan) and its pid (for the takeover).
            let agent = loaded_agent(manager, &env);
            let plan = install_plan(manager, &env, &codexd, agent.is_some())?;
            carry_out(&plan, flags.dry_run, agent.as_deref().and_then(parse_launchd_pid))
        }
        Action::Uninstall(flags) => {
            carry_out(&uninstall_plan(manager, &env, loaded_agent(manager, &env).is_some()), flags.dry_run, None)
        }
        Action::Status => status(manager, &env),
    }
}

/// What a plan needs to know about the user and the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEnv {
    /// The home directory (`HOME`).
    home: PathBuf,
    /// Where the files go: `$XDG_CONFIG_HOME/systemd/user` (default `~/.config/systemd/user`), or
    /// `~/Library/LaunchAgents`.
    unit_dir: PathBuf,
    /// The user id (launchd's domain is `gui/<uid>`).
    uid: u32,
    /// The socket this codexctl uses: written into the plist, compared with the unit's on Linux.
    socket: PathBuf,
    /// Whether `socket` came from `--socket` or `CODEXD_SOCKET` rather than the default rule.
    socket_is_explicit: bool,
    /// `XDG_RUNTIME_DIR` (systemd's `%t`), when set.
    runtime_dir: Option<PathBuf>,
    /// `CODEX_HOME`, when set: the service does not see this shell's environment.
    codex_home: Option<PathBuf>,
}

impl HostEnv {
    fn read(manager: Manager, ctx: &Ctx) -> anyhow::Result<HostEnv> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = var("HOME").filter(|h| h.is_absolute()).ok_or_else(|| {
            Failure::new(EXIT_REFUSED, "HOME is not set to an absolute path; codexctl service needs it")
        })?;
        let config_home = var("XDG_CONFIG_HOME").filter(|p| p.is_absolute());
        Ok(HostEnv {
            unit_dir: unit_dir(manager, &home, config_home.as_deref()),
            home,
            uid: current_uid(),
            socket: ctx.socket.path.clone(),
            socket_is_explicit: !matches!(ctx.socket.source, codexd_client::SocketSource::Default),
            runtime_dir: var("XDG_RUNTIME_DIR"),
            codex_home: var("CODEX_HOME"),
        })
    }
}

#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

/// The directory of the unit files: systemd's user configuration directory (a relative `XDG_CONFIG_HOME` is
/// ignored, as the XDG spec says), or the user's LaunchAgents.
fn unit_dir(manager: Manager, home: &Path, config_home: Option<&Path>) -> PathBuf {
    match manager {
        Manager::Systemd => config_home.map_or_else(|| home.join(".config"), Path::to_path_buf).join("systemd/user"),
        Manager::Launchd => home.join("Library/LaunchAgents"),
    }
}

/// A file of the service and what it should contain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitFile {
    path: PathBuf,
    content: String,
}

/// A command line (program and arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cmd(Vec<String>);

impl Cmd {
    fn new(words: &[&str]) -> Cmd {
        Cmd(words.iter().map(|w| (*w).to_owned()).collect())
    }

    fn with(mut self, word: impl Into<String>) -> Cmd {
        self.0.push(word.into());
        self
    }

    /// The command line ready to run, stdin from /dev/null.
    fn command(&self) -> Command {
        let mut words = self.0.iter();
        let mut command = Command::new(words.next().map_or("", String::as_str));
        command.args(words).stdin(Stdio::null());
        command
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.0.iter().map(|w| shell_quote(w)).collect();
        f.write_str(&words.join(" "))
    }
}

/// What `install` or `uninstall` does, in order: `write` files, then `commands` (the first one also tells whether
/// the service manager can be reached at all), then `remove` files, then `after_remove` commands. When the manager
/// cannot be reached, the files are still written or removed and `fallback` is printed for the user to run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    manager: Manager,
    /// `install` (files written) or `uninstall` (files removed).
    install: bool,
    write: Vec<UnitFile>,
    commands: Vec<Cmd>,
    remove: Vec<PathBuf>,
    after_remove: Vec<Cmd>,
    fallback: Vec<Cmd>,
    /// Notes for stderr (e.g. an explicit socket the service does not serve).
    notes: Vec<String>,
    /// The last line on success.
    done: String,
    /// `install`: a codexd that serves the service's socket outside the service manager is stopped first.
    takeover: Option<Takeover>,
}

/// A codexd that answers on the socket the service will listen on, but that the service manager does not run (one
/// that codexctl autostarted, or one started by hand), is asked to shut down before command `before` (the one that
/// starts the service) runs, and awaited until it is gone. Left running, it would keep `<socket>.lock` while
/// systemd replaces its socket: the socket-activated codexd would then fail "already serving" until systemd gives up
/// (start-limit-hit) and leaves `codexd.socket` failed; launchd's would fail and be restarted every 10 s.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Takeover {
    /// The service's socket: systemd's `%t/codexd/codexd.sock`, the plist's socket.
    socket: PathBuf,
    /// The index in `commands` before which it is done.
    before: usize,
}

/// How a file on disk compares with what the plan writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    Missing,
    Same,
    Different,
}

fn file_state(file: &UnitFile) -> FileState {
    match std::fs::read(&file.path) {
        Ok(bytes) if bytes == file.content.as_bytes() => FileState::Same,
        Ok(_) => FileState::Different,
        Err(_) => FileState::Missing,
    }
}

/// `gui/<uid>/dev.codexd.codexd`: the agent in launchd's per-user GUI domain.
fn launchd_target(uid: u32) -> String {
    format!("gui/{uid}/{LABEL}")
}

/// `launchctl print gui/<uid>/dev.codexd.codexd`.
fn launchctl_print_cmd(uid: u32) -> Cmd {
    Cmd::new(&["launchctl", "print"]).with(launchd_target(uid))
}

/// What `launchctl print` says about the agent: its output when launchd has loaded it, `None` when it has not
/// (launchctl fails), `Err` when launchctl cannot be run.
fn launchctl_print(uid: u32) -> io::Result<Option<String>> {
    let output = launchctl_print_cmd(uid).command().stderr(Stdio::null()).output()?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// The `launchctl print` output of the agent when launchd has loaded it; `None` with systemd, without launchctl,
/// or when it is not loaded.
fn loaded_agent(manager: Manager, env: &HostEnv) -> Option<String> {
    if manager != Manager::Launchd {
        return None;
    }
    launchctl_print(env.uid).ok().flatten()
}

/// The plan of `install`: the rendered files, and the commands that enable and start the service. Reads the files
/// already installed (to restart a running codexd when they change); `loaded`: whether launchd has loaded the agent
/// ([`loaded_agent`]).
fn install_plan(manager: Manager, env: &HostEnv, codexd: &Path, loaded: bool) -> anyhow::Result<Plan> {
    let write = rendered_files(manager, env, codexd)?;
    let changed = write.iter().any(|f| file_state(f) == FileState::Different);
    let mut notes = Vec::new();
    if let Some(home) = &env.codex_home
        && *home != env.home.join(".codex")
    {
        let how = match manager {
            Manager::Systemd => format!(
                "add it with `systemctl --user edit codexd` ([Service] Environment=CODEX_HOME={}) or \
                 `systemctl --user set-environment CODEX_HOME={}`",
                home.display(),
                home.display()
            ),
            Manager::Launchd => format!("add CODEX_HOME to EnvironmentVariables in {}", write[0].path.display()),
        };
        notes.push(format!(
            "CODEX_HOME={} is set here, but the service does not see this shell's environment and uses ~/.codex; {how}",
            home.display()
        ));
    }
    let (commands, fallback, done, takeover) = match manager {
        Manager::Systemd => {
            let mut commands = vec![
                Cmd::new(&["systemctl", "--user", "daemon-reload"]),
                Cmd::new(&["systemctl", "--user", "enable", "--now", SOCKET_UNIT]),
            ];
            let fallback = commands.clone();
            // Before `enable --now`: once daemon-reload has shown that the user manager answers.
            let takeover = systemd_socket(env).map(|socket| Takeover { socket, before: 1 });
            if changed {
                // A codexd running with the old unit (say, an old binary path) is replaced; the socket stays.
                commands.push(Cmd::new(&["systemctl", "--user", "try-restart", SERVICE_UNIT]));
            }
            if let Some(note) = socket_mismatch(env) {
                notes.push(note);
            }
            let done = format!(
                "codexd is installed as a systemd user service: {SOCKET_UNIT} listens on {} and starts {} on first use",
                systemd_socket_path(env),
                codexd.display()
            );
            (commands, fallback, done, takeover)
        }
        Manager::Launchd => {
            let domain = format!("gui/{}", env.uid);
            let service = launchd_target(env.uid);
            let plist = write[0].path.display().to_string();
            let load = vec![
                Cmd::new(&["launchctl", "enable"]).with(service.clone()),
                Cmd::new(&["launchctl", "bootstrap"]).with(domain).with(plist),
            ];
            let commands = match (loaded, changed) {
                // Loaded as it is: start it if it is not running (a no-op when it runs).
                (true, false) => vec![Cmd::new(&["launchctl", "kickstart"]).with(service.clone())],
                // launchd keeps the plist it loaded: unload it first (RunAtLoad starts the new one).
                (true, true) => std::iter::once(Cmd::new(&["launchctl", "bootout"]).with(service.clone()))
                    .chain(load.clone())
                    .collect(),
                (false, _) => load.clone(),
            };
            let done = format!(
                "codexd is installed as a LaunchAgent ({LABEL}): it runs {} at login and serves {}; logs in {}",
                codexd.display(),
                env.socket.display(),
                env.home.join("Library/Logs/codexd.log").display()
            );
            // Before the command that starts the agent: `bootstrap` (RunAtLoad), or `kickstart`.
            let before = commands.len() - 1;
            let takeover = Some(Takeover { socket: env.socket.clone(), before });
            (commands, load, done, takeover)
        }
    };
    Ok(Plan {
        manager,
        install: true,
        write,
        commands,
        remove: Vec::new(),
        after_remove: Vec::new(),
        fallback,
        notes,
        done,
        takeover,
    })
}

/// The plan of `uninstall`: stop and disable, remove the files (and the enablement links systemctl would have
/// removed, in case it cannot be run), reload. `loaded`: whether launchd has loaded the agent ([`loaded_agent`]).
fn uninstall_plan(manager: Manager, env: &HostEnv, loaded: bool) -> Plan {
    let (commands, remove, after_remove, fallback) = match manager {
        Manager::Systemd => {
            let mut remove = unit_paths(manager, env);
            remove.extend([
                env.unit_dir.join("sockets.target.wants").join(SOCKET_UNIT),
                env.unit_dir.join("default.target.wants").join(SERVICE_UNIT),
            ]);
            // With nothing installed, systemd has nothing of ours to disable.
            let installed = remove.iter().any(|p| p.symlink_metadata().is_ok());
            let disable = Cmd::new(&["systemctl", "--user", "disable", "--now", SOCKET_UNIT, SERVICE_UNIT]);
            (
                if installed { vec![disable] } else { Vec::new() },
                remove,
                vec![Cmd::new(&["systemctl", "--user", "daemon-reload"])],
                // With the files gone, a user manager elsewhere can still stop what it runs.
                vec![
                    Cmd::new(&["systemctl", "--user", "stop", SOCKET_UNIT, SERVICE_UNIT]),
                    Cmd::new(&["systemctl", "--user", "daemon-reload"]),
                ],
            )
        }
        Manager::Launchd => {
            let bootout = Cmd::new(&["launchctl", "bootout"]).with(launchd_target(env.uid));
            let commands = if loaded { vec![bootout.clone()] } else { Vec::new() };
            (commands, unit_paths(manager, env), Vec::new(), vec![bootout])
        }
    };
    Plan {
        manager,
        install: false,
        write: Vec::new(),
        commands,
        remove,
        after_remove,
        fallback,
        notes: Vec::new(),
        done: "codexd's service files are removed".to_owned(),
        takeover: None,
    }
}

/// The socket of the systemd units, `%t/codexd/codexd.sock`, when this shell knows `%t` (`XDG_RUNTIME_DIR`): the
/// default socket of that runtime directory.
fn systemd_socket(env: &HostEnv) -> Option<PathBuf> {
    let dir = env.runtime_dir.as_deref()?;
    Some(codexd_client::proto::paths::default_unix_socket_path(Some(dir.as_os_str()), None, env.uid))
}

/// `%t/codexd/codexd.sock` as this shell sees it.
fn systemd_socket_path(env: &HostEnv) -> String {
    systemd_socket(env)
        .map_or_else(|| "$XDG_RUNTIME_DIR/codexd/codexd.sock".to_owned(), |socket| socket.display().to_string())
}

/// A note when this codexctl talks to another socket than the one the unit listens on.
fn socket_mismatch(env: &HostEnv) -> Option<String> {
    let unit_socket = systemd_socket_path(env);
    (env.socket_is_explicit && Path::new(&unit_socket) != env.socket).then(|| {
        format!(
            "the service listens on {unit_socket}, but this codexctl uses {} (--socket or CODEXD_SOCKET); unset it \
             to reach the service",
            env.socket.display()
        )
    })
}

/// The service's files: `codexd.socket` and `codexd.service`, or the LaunchAgent's plist.
fn unit_paths(manager: Manager, env: &HostEnv) -> Vec<PathBuf> {
    match manager {
        Manager::Systemd => vec![env.unit_dir.join(SOCKET_UNIT), env.unit_dir.join(SERVICE_UNIT)],
        Manager::Launchd => vec![env.unit_dir.join(format!("{LABEL}.plist"))],
    }
}

/// The files with their placeholders filled in, in the order of [`unit_paths`].
fn rendered_files(manager: Manager, env: &HostEnv, codexd: &Path) -> Result<Vec<UnitFile>, RenderError> {
    let contents = match manager {
        Manager::Systemd => vec![SOCKET_TEMPLATE.to_owned(), render_service(codexd)?],
        Manager::Launchd => vec![render_plist(codexd, &env.home, &env.socket)?],
    };
    Ok(unit_paths(manager, env).into_iter().zip(contents).map(|(path, content)| UnitFile { path, content }).collect())
}

/// A path that cannot be written into a unit file or plist.
#[derive(Debug, thiserror::Error)]
enum RenderError {
    #[error("{0} is not valid UTF-8, which unit files and property lists cannot name")]
    NotUtf8(PathBuf),
    #[error("{0:?} contains a control character (a newline?), which unit files and property lists cannot name")]
    Control(String),
}

fn utf8(path: &Path) -> Result<&str, RenderError> {
    let text = path.to_str().ok_or_else(|| RenderError::NotUtf8(path.to_path_buf()))?;
    if text.chars().any(char::is_control) {
        return Err(RenderError::Control(text.to_owned()));
    }
    Ok(text)
}

/// The service unit with `ExecStart=` naming `codexd`.
fn render_service(codexd: &Path) -> Result<String, RenderError> {
    let exec = format!("ExecStart={}", systemd_exec_word(utf8(codexd)?));
    Ok(SERVICE_TEMPLATE.replacen(EXEC_START_PLACEHOLDER, &exec, 1))
}

/// A path as one word of a systemd command line: `%` and `$` escaped (specifiers, variables), and quoted when it
/// holds spaces, quotes or backslashes.
fn systemd_exec_word(path: &str) -> String {
    let escaped = path.replace('%', "%%").replace('$', "$$");
    if escaped.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';')) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// The path `ExecStart=` runs, undoing [`systemd_exec_word`] (and skipping systemd's `-@:+!` prefixes).
fn parse_exec_start(unit: &str) -> Option<String> {
    let value = unit.lines().find_map(|l| l.trim().strip_prefix("ExecStart="))?.trim();
    let value = value.trim_start_matches(['-', '@', ':', '+', '!']);
    let word = if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        value.split_whitespace().next()?.to_owned()
    };
    Some(word.replace("%%", "%").replace("$$", "$"))
}

/// The plist with the codexd path, the home directory (logs) and the socket filled in.
fn render_plist(codexd: &Path, home: &Path, socket: &Path) -> Result<String, RenderError> {
    let codexd = xml_escape(utf8(codexd)?);
    let home = xml_escape(utf8(home)?.trim_end_matches('/'));
    let socket = xml_escape(utf8(socket)?);
    Ok(PLIST_TEMPLATE
        .replace(PLIST_CODEXD, &format!("<string>{codexd}</string>"))
        .replace(PLIST_SOCKET, &format!("<string>{socket}</string>"))
        .replace(PLIST_HOME, &format!("<string>{home}/")))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// The program the plist runs: the first `<string>` after `<key>ProgramArguments</key>`.
fn parse_program(plist: &str) -> Option<String> {
    let after = &plist[plist.find("<key>ProgramArguments</key>")?..];
    let start = after.find("<string>")? + "<string>".len();
    let end = start + after[start..].find("</string>")?;
    Some(xml_unescape(&after[start..end]))
}

/// The `codexd` to run: next to this codexctl (as invoked, so that a symlinked install keeps its stable path),
/// else the first executable `codexd` in PATH.
fn find_codexd() -> anyhow::Result<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut looked = Vec::new();
    if let Some(dir) = invoked_dir(&path_var) {
        let candidate = dir.join(CODEXD);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    if let Some(found) = search_path(&path_var, OsStr::new(CODEXD)) {
        return Ok(found);
    }
    looked.push("PATH".to_owned());
    Err(Failure::new(
        EXIT_REFUSED,
        format!(
            "cannot find codexd (looked in {}); install it (e.g. cargo install --path daemon) next to codexctl or \
             in PATH, then run codexctl service install again",
            looked.join(" and ")
        ),
    )
    .into())
}

/// The directory of this codexctl as the user invoked it: from `argv[0]` when it names a path, else from PATH; the
/// resolved executable's directory when neither works.
fn invoked_dir(path_var: &OsStr) -> Option<PathBuf> {
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let invoked = argv0
        .and_then(|a| if a.components().count() > 1 { absolute(&a) } else { search_path(path_var, a.as_os_str()) });
    invoked.or_else(|| std::env::current_exe().ok())?.parent().map(Path::to_path_buf)
}

fn absolute(path: &Path) -> Option<PathBuf> {
    if path.is_absolute() { Some(path.to_path_buf()) } else { std::env::current_dir().ok().map(|d| d.join(path)) }
}

/// The first executable `name` in the directories of `path_var`, made absolute.
fn search_path(path_var: &OsStr, name: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .and_then(|found| absolute(&found))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Carries out `plan`, or prints it (`dry_run`). `agent_pid`: the pid of the LaunchAgent's codexd as `launchctl
/// print` gave it before the plan was made, if it runs.
fn carry_out(plan: &Plan, dry_run: bool, mut agent_pid: Option<u32>) -> anyhow::Result<u8> {
    let mut out = io::stdout().lock();
    if dry_run {
        writeln!(out, "{}", describe_plan(plan))?;
        return Ok(EXIT_OK);
    }
    let removable: Vec<&PathBuf> = plan.remove.iter().filter(|p| p.symlink_metadata().is_ok()).collect();
    if !plan.install && removable.is_empty() && plan.commands.is_empty() {
        writeln!(out, "codexd's service files are not installed in {}; nothing to do", unit_dir_of(plan).display())?;
        return Ok(EXIT_OK);
    }
    for note in &plan.notes {
        note_line(note);
    }
    for file in &plan.write {
        let state = file_state(file);
        if state != FileState::Same {
            write_file(&file.path, &file.content)?;
        }
        writeln!(out, "{} {}", verb(state), file.path.display())?;
    }
    let mut unreachable = None;
    for (i, cmd) in plan.commands.iter().enumerate() {
        if let Some(takeover) = plan.takeover.as_ref().filter(|t| t.before == i) {
            out.flush()?;
            stop_unmanaged(plan.manager, takeover, agent_pid)?;
        }
        writeln!(out, "$ {cmd}")?;
        out.flush()?;
        match run_command(cmd) {
            // The agent is unloaded: launchd no longer runs a codexd for it.
            Ran::Ok if is_bootout(plan.manager, cmd) => agent_pid = None,
            Ran::Ok => {}
            // launchd: unloading a plist that is no longer loaded is fine.
            Ran::Failed(_) if is_bootout(plan.manager, cmd) => {}
            Ran::Failed(why) | Ran::NotFound(why) if i == 0 => {
                unreachable = Some(why);
                break;
            }
            Ran::NotFound(why) | Ran::Failed(why) => {
                return Err(Failure::new(EXIT_REFUSED, format!("`{cmd}` failed: {why}")).into());
            }
        }
    }
    for path in &removable {
        // `systemctl disable` may have removed the links already.
        match std::fs::remove_file(path) {
            Ok(()) => writeln!(out, "removed {}", path.display())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot remove {}", path.display()))),
        }
    }
    if let Some(why) = unreachable {
        let (files, what) = if plan.install {
            ("written", "enable and start codexd")
        } else {
            ("removed", "stop codexd where it still runs")
        };
        note_line(&format!(
            "cannot use {} here ({why}); the files are {files}: run these commands in your login session to {what}:",
            plan.manager.name(),
        ));
        for cmd in &plan.fallback {
            writeln!(out, "{cmd}")?;
        }
        return Ok(EXIT_OK);
    }
    if !removable.is_empty() {
        for cmd in &plan.after_remove {
            writeln!(out, "$ {cmd}")?;
            if let Ran::Failed(why) | Ran::NotFound(why) = run_command(cmd) {
                return Err(Failure::new(EXIT_REFUSED, format!("`{cmd}` failed: {why}")).into());
            }
        }
    }
    writeln!(out, "{}", plan.done)?;
    Ok(EXIT_OK)
}

/// [`Takeover`]: stops the codexd that answers on the service's socket unless the service manager runs it (then
/// a changed unit is handled by `try-restart`, a changed plist by `bootout`), and says so on stderr. `agent_pid`:
/// the pid launchd runs the LaunchAgent's codexd as, if it does.
fn stop_unmanaged(manager: Manager, takeover: &Takeover, agent_pid: Option<u32>) -> anyhow::Result<()> {
    let socket = &takeover.socket;
    let Some(status) = autostart::probe(socket) else { return Ok(()) };
    let run_by_manager = match manager {
        // As `codexctl restart` decides: systemd's socket unit listens there, or the service's main pid answers.
        Manager::Systemd => socket_unit::managed_by_systemd(socket, Some(status.pid)),
        Manager::Launchd => agent_pid == Some(status.pid),
    };
    if run_by_manager {
        return Ok(());
    }
    let ctx = Ctx {
        socket: codexd_client::ResolvedSocket { path: socket.clone(), source: codexd_client::SocketSource::Flag },
        autostart: Autostart::OffByFlag,
        starts_daemon: false,
    };
    let client = match ctx.connect() {
        Ok(client) => client,
        // Gone meanwhile.
        Err(codexd_client::ClientError::Unreachable { source, .. }) if autostart::nothing_listens(&source) => {
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    restart::stop_and_wait(&ctx, client, &status)?;
    note_line(&format!(
        "stopped the codexd that was running (pid {}) so that {} can own the socket",
        status.pid,
        manager.short_name()
    ));
    Ok(())
}

/// The pid of the LaunchAgent's codexd: the `pid = N` line of `launchctl print`, present while it runs.
fn parse_launchd_pid(text: &str) -> Option<u32> {
    text.lines().find_map(|l| l.trim().strip_prefix("pid = ")).and_then(|pid| pid.trim().parse().ok())
}

fn unit_dir_of(plan: &Plan) -> PathBuf {
    plan.write
        .iter()
        .map(|f| &f.path)
        .chain(&plan.remove)
        .next()
        .and_then(|p| p.parent())
        .map_or_else(PathBuf::new, Path::to_path_buf)
}

fn verb(state: FileState) -> &'static str {
    match state {
        FileState::Missing => "wrote",
        FileState::Different => "replaced",
        FileState::Same => "unchanged",
    }
}

/// `launchctl bootout`: unloads the agent (and stops its codexd). Its failure means "already so" (no longer loaded).
fn is_bootout(manager: Manager, cmd: &Cmd) -> bool {
    manager == Manager::Launchd && cmd.0.get(1).is_some_and(|w| w == "bootout")
}

/// `--dry-run`: the plan in words.
fn describe_plan(plan: &Plan) -> String {
    let mut s = String::new();
    for file in &plan.write {
        let state = match file_state(file) {
            FileState::Missing => "new",
            FileState::Same => "unchanged",
            FileState::Different => "replacing the installed one",
        };
        let _ = writeln!(s, "would write {} ({state})", file.path.display());
    }
    for (i, cmd) in plan.commands.iter().enumerate() {
        if let Some(takeover) = plan.takeover.as_ref().filter(|t| t.before == i) {
            let _ = writeln!(
                s,
                "would stop a codexd that serves {} outside {}, if one runs",
                takeover.socket.display(),
                plan.manager.short_name()
            );
        }
        let _ = writeln!(s, "would run: {cmd}");
    }
    for path in &plan.remove {
        if path.symlink_metadata().is_ok() {
            let _ = writeln!(s, "would remove {}", path.display());
        }
    }
    for cmd in &plan.after_remove {
        let _ = writeln!(s, "would run: {cmd}");
    }
    for note in &plan.notes {
        let _ = writeln!(s, "note: {note}");
    }
    s.pop();
    s
}

fn note_line(note: &str) {
    let _ = writeln!(io::stderr().lock(), "codexctl: {note}");
}

/// Writes `content` to `path` atomically (a temporary file beside it, then a rename), mode 0644.
fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("a unit file path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".codexctl-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        std::fs::write(&tmp, content)?;
        #[cfg(unix)]
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// How a command went.
enum Ran {
    Ok,
    /// It ran and failed: its stderr (first line), or its exit status.
    Failed(String),
    /// It could not be started (not installed).
    NotFound(String),
}

fn run_command(cmd: &Cmd) -> Ran {
    let Some(program) = cmd.0.first() else { return Ran::Ok };
    let output = match cmd.command().output() {
        Ok(output) => output,
        Err(e) => return Ran::NotFound(format!("cannot run {program}: {e}")),
    };
    // systemctl's own messages ("Created symlink ...") are worth showing; they are not ours to reformat.
    let mut err = io::stderr().lock();
    let _ = err.write_all(&output.stdout);
    if output.status.success() {
        let _ = err.write_all(&output.stderr);
        return Ran::Ok;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    Ran::Failed(first.map_or_else(|| format!("{program} exited with {}", output.status), str::to_owned))
}

/// `codexctl service status`.
fn status(manager: Manager, env: &HostEnv) -> anyhow::Result<u8> {
    let mut s = String::new();
    let files = unit_paths(manager, env);
    let expected = find_codexd().ok().and_then(|codexd| rendered_files(manager, env, &codexd).ok());
    let mut all_installed = true;
    let what = match manager {
        Manager::Systemd => "systemd user units",
        Manager::Launchd => "LaunchAgent",
    };
    let _ = writeln!(s, "{what} in {}:", env.unit_dir.display());
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Ok(content) = std::fs::read_to_string(path) else {
            all_installed = false;
            let _ = writeln!(s, "  {name:<18} not installed");
            continue;
        };
        let mut line = format!("  {name:<18} installed");
        let program = match manager {
            Manager::Systemd if name == SERVICE_UNIT => parse_exec_start(&content),
            Manager::Systemd => None,
            Manager::Launchd => parse_program(&content),
        };
        if let Some(program) = program {
            let missing = if is_executable(Path::new(&program)) { "" } else { " (missing!)" };
            let _ = write!(line, ", runs {program}{missing}");
        }
        let current = expected.as_ref().and_then(|files| files.iter().find(|f| f.path == *path));
        if current.is_some_and(|f| f.content != content) {
            line.push_str("; differs from what `codexctl service install` writes now (run it to update)");
        }
        let _ = writeln!(s, "{line}");
    }
    match manager {
        Manager::Systemd => {
            let cmd = Cmd::new(&["systemctl", "--user", "is-active", SOCKET_UNIT, SERVICE_UNIT]);
            let states = cmd.command().output().ok().and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                (lines.len() == 2).then_some(lines)
            });
            match states {
                Some(states) => {
                    let _ = writeln!(s, "{cmd}: {SOCKET_UNIT} {}, {SERVICE_UNIT} {}", states[0], states[1]);
                }
                None => {
                    let _ = writeln!(s, "{cmd}: systemd not available (no systemctl or no user manager here)");
                }
            }
        }
        Manager::Launchd => {
            let cmd = launchctl_print_cmd(env.uid);
            let state = match launchctl_print(env.uid) {
                Ok(Some(text)) => {
                    let state = text.lines().find_map(|l| l.trim().strip_prefix("state = ")).unwrap_or("unknown");
                    format!("loaded, state {state}")
                }
                Ok(None) => "not loaded".to_owned(),
                Err(_) => "launchd not available".to_owned(),
            };
            let _ = writeln!(s, "{cmd}: {state}");
        }
    }
    io::stdout().lock().write_all(s.as_bytes())?;
    Ok(if all_installed { EXIT_OK } else { EXIT_REFUSED })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(manager: Manager) -> HostEnv {
        let home = PathBuf::from("/home/ann");
        HostEnv {
            unit_dir: unit_dir(manager, &home, None),
            home,
            uid: 1000,
            socket: PathBuf::from("/var/folders/xy/T/codexd-1000/codexd.sock"),
            socket_is_explicit: false,
            runtime_dir: Some(PathBuf::from("/run/user/1000")),
            codex_home: None,
        }
    }

    #[test]
    fn the_templates_carry_each_placeholder_once() {
        assert_eq!(SERVICE_TEMPLATE.matches(EXEC_START_PLACEHOLDER).count(), 1);
        assert_eq!(SERVICE_TEMPLATE.lines().filter(|l| l.starts_with("ExecStart=")).count(), 1);
        assert!(!SOCKET_TEMPLATE.lines().any(|l| !l.starts_with('#') && l.contains('@')));
        assert_eq!(PLIST_TEMPLATE.matches(PLIST_CODEXD).count(), 1);
        assert_eq!(PLIST_TEMPLATE.matches(PLIST_SOCKET).count(), 1);
        assert_eq!(PLIST_TEMPLATE.matches(PLIST_HOME).count(), 2);
        assert!(PLIST_TEMPLATE.contains(&format!("<string>{LABEL}</string>")));
    }

    #[test]
    fn the_service_names_the_absolute_codexd_path_and_keeps_everything_else() {
        let unit = render_service(Path::new("/opt/codexd/bin/codexd")).unwrap();
        assert!(unit.lines().any(|l| l == "ExecStart=/opt/codexd/bin/codexd"), "{unit}");
        assert!(!unit.lines().any(|l| !l.starts_with('#') && l.contains("@CODEXD@")));
        assert_eq!(unit.replace("ExecStart=/opt/codexd/bin/codexd", EXEC_START_PLACEHOLDER), SERVICE_TEMPLATE);
        assert_eq!(parse_exec_start(&unit).as_deref(), Some("/opt/codexd/bin/codexd"));
    }

    #[test]
    fn odd_paths_are_escaped_for_systemd_and_read_back() {
        for path in ["/home/a b/bin/codexd", "/opt/100%/codexd", "/opt/$HOME/codexd", "/x/\"q\"/codexd", r"/x\y/codexd"]
        {
            let unit = render_service(Path::new(path)).unwrap();
            let line = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
            assert_eq!(parse_exec_start(&unit).as_deref(), Some(path), "{line}");
        }
        assert_eq!(systemd_exec_word("/home/a b/codexd"), "\"/home/a b/codexd\"");
        assert_eq!(systemd_exec_word("/opt/100%/codexd"), "/opt/100%%/codexd");
        assert_eq!(systemd_exec_word("/opt/$X/codexd"), "/opt/$$X/codexd");
        assert!(matches!(render_service(Path::new("/a\nb/codexd")), Err(RenderError::Control(_))));
    }

    #[test]
    fn the_plist_names_the_binary_socket_and_log_with_xml_escapes() {
        let plist = render_plist(
            Path::new("/Users/a&b/bin/codexd"),
            Path::new("/Users/a&b/"),
            Path::new("/var/folders/xy/T/codexd-501/codexd.sock"),
        )
        .unwrap();
        assert!(plist.contains("<string>/Users/a&amp;b/bin/codexd</string>"), "{plist}");
        assert!(plist.contains("<string>/var/folders/xy/T/codexd-501/codexd.sock</string>"));
        assert_eq!(plist.matches("<string>/Users/a&amp;b/Library/Logs/codexd.log</string>").count(), 2);
        assert!(!plist.contains("<string>@"), "a placeholder is left: {plist}");
        assert_eq!(parse_program(&plist).as_deref(), Some("/Users/a&b/bin/codexd"));
    }

    #[test]
    fn systemd_units_go_to_the_xdg_config_home_when_it_is_absolute() {
        let home = Path::new("/home/ann");
        assert_eq!(unit_dir(Manager::Systemd, home, None), PathBuf::from("/home/ann/.config/systemd/user"));
        assert_eq!(unit_dir(Manager::Systemd, home, Some(Path::new("/cfg"))), PathBuf::from("/cfg/systemd/user"));
        assert_eq!(unit_dir(Manager::Launchd, home, None), PathBuf::from("/home/ann/Library/LaunchAgents"));
    }

    #[test]
    fn a_systemd_install_writes_both_units_then_reloads_and_enables_the_socket() {
        let mut env = env(Manager::Systemd);
        env.unit_dir = PathBuf::from("/nonexistent/codexctl-test/systemd/user");
        let plan = install_plan(Manager::Systemd, &env, Path::new("/usr/local/bin/codexd"), false).unwrap();
        let paths: Vec<&Path> = plan.write.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                Path::new("/nonexistent/codexctl-test/systemd/user/codexd.socket"),
                Path::new("/nonexistent/codexctl-test/systemd/user/codexd.service")
            ]
        );
        let commands: Vec<String> = plan.commands.iter().map(ToString::to_string).collect();
        assert_eq!(commands, ["systemctl --user daemon-reload", "systemctl --user enable --now codexd.socket"]);
        assert!(plan.notes.is_empty());
        assert!(plan.done.contains("/run/user/1000/codexd/codexd.sock"), "{}", plan.done);
        // A codexd serving %t/codexd/codexd.sock outside systemd is stopped before `enable --now`.
        let takeover = Takeover { socket: PathBuf::from("/run/user/1000/codexd/codexd.sock"), before: 1 };
        assert_eq!(plan.takeover, Some(takeover));
        assert!(describe_plan(&plan).contains(
            "would stop a codexd that serves /run/user/1000/codexd/codexd.sock outside systemd, if one runs\nwould \
             run: systemctl --user enable --now codexd.socket"
        ));
        // Without XDG_RUNTIME_DIR, systemctl --user has no bus to talk to, and %t is not known here.
        env.runtime_dir = None;
        let plan = install_plan(Manager::Systemd, &env, Path::new("/usr/local/bin/codexd"), false).unwrap();
        assert_eq!(plan.takeover, None);
    }

    #[test]
    fn a_launchd_install_bootstraps_the_agent_in_the_gui_domain() {
        let mut env = env(Manager::Launchd);
        env.unit_dir = PathBuf::from("/nonexistent/codexctl-test/LaunchAgents");
        let plan = install_plan(Manager::Launchd, &env, Path::new("/opt/homebrew/bin/codexd"), false).unwrap();
        assert_eq!(plan.write.len(), 1);
        assert_eq!(
            plan.write[0].path,
            PathBuf::from("/nonexistent/codexctl-test/LaunchAgents/dev.codexd.codexd.plist")
        );
        assert!(plan.write[0].content.contains("<string>/var/folders/xy/T/codexd-1000/codexd.sock</string>"));
        let commands: Vec<String> = plan.commands.iter().map(ToString::to_string).collect();
        assert_eq!(
            commands,
            [
                "launchctl enable gui/1000/dev.codexd.codexd",
                "launchctl bootstrap gui/1000 /nonexistent/codexctl-test/LaunchAgents/dev.codexd.codexd.plist",
            ]
        );
        assert_eq!(plan.fallback, plan.commands);
        let socket = PathBuf::from("/var/folders/xy/T/codexd-1000/codexd.sock");
        assert_eq!(plan.takeover, Some(Takeover { socket: socket.clone(), before: 1 }), "before bootstrap");
        // Already loaded as it is: only make sure it runs.
        let loaded = install_plan(Manager::Launchd, &env, Path::new("/opt/homebrew/bin/codexd"), true).unwrap();
        assert_eq!(loaded.commands[0].to_string(), "launchctl kickstart gui/1000/dev.codexd.codexd");
        assert_eq!(loaded.commands.len(), 1);
        assert_eq!(loaded.takeover, Some(Takeover { socket, before: 0 }), "before kickstart");
        assert_eq!(parse_launchd_pid("gui/501/dev.codexd.codexd = {\n\tstate = running\n\tpid = 4242\n}"), Some(4242));
        assert_eq!(parse_launchd_pid("\tstate = not running\n"), None);
    }

    #[test]
    fn uninstall_disables_then_removes_the_files_and_links() {
        let dir = std::env::temp_dir().join(format!("codexctl-service-test-{}", std::process::id()));
        let mut env = env(Manager::Systemd);
        env.unit_dir = dir.join("systemd/user");
        let nothing = uninstall_plan(Manager::Systemd, &env, false);
        assert!(nothing.commands.is_empty(), "nothing installed, nothing to disable: {:?}", nothing.commands);
        std::fs::create_dir_all(&env.unit_dir).unwrap();
        std::fs::write(env.unit_dir.join(SERVICE_UNIT), SERVICE_TEMPLATE).unwrap();
        let plan = uninstall_plan(Manager::Systemd, &env, false);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(plan.commands[0].to_string(), "systemctl --user disable --now codexd.socket codexd.service");
        assert!(plan.remove.contains(&env.unit_dir.join("codexd.service")));
        assert!(plan.remove.contains(&env.unit_dir.join("sockets.target.wants/codexd.socket")));
        assert_eq!(plan.after_remove[0].to_string(), "systemctl --user daemon-reload");
        assert_eq!(plan.fallback[0].to_string(), "systemctl --user stop codexd.socket codexd.service");
        let plan = uninstall_plan(Manager::Launchd, &env, true);
        assert_eq!(plan.commands[0].to_string(), "launchctl bootout gui/1000/dev.codexd.codexd");
        assert!(uninstall_plan(Manager::Launchd, &env, false).commands.is_empty());
    }

    #[test]
    fn an_explicit_socket_or_codex_home_the_service_will_not_use_gets_a_note() {
        let mut env = env(Manager::Systemd);
        env.unit_dir = PathBuf::from("/nonexistent/codexctl-test/systemd/user");
        env.socket = PathBuf::from("/tmp/mine.sock");
        env.socket_is_explicit = true;
        env.codex_home = Some(PathBuf::from("/work/codex-home"));
        let plan = install_plan(Manager::Systemd, &env, Path::new("/usr/bin/codexd"), false).unwrap();
        assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
        assert!(plan.notes.iter().any(|n| n.contains("/tmp/mine.sock")));
        assert!(plan.notes.iter().any(|n| n.contains("Environment=CODEX_HOME=/work/codex-home")));
    }
}
