//! `codexctl`: the command line client of codexd. One file per subcommand; this one parses the command line,
//! runs the command and turns its outcome into one stderr line and a documented exit code.

mod autostart;
mod browser;
mod handshake;
mod interrupt;
mod location;
mod login;
mod logout;
mod refresh;
mod restart;
mod service;
mod socket_unit;
mod status;
mod stop;
mod store;
mod token;
mod watch;

use autostart::Autostart;
use clap::{Parser, Subcommand};
use codexd_client::proto::ErrorCode;
use codexd_client::{Client, ClientError, ResolvedSocket, SocketSource, resolve_socket};
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code: success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: not logged in, or the daemon refused the request.
pub(crate) const EXIT_REFUSED: u8 = 1;
/// Exit code: usage error (clap uses it for bad flags; commands for bad input such as an empty API key).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon could not be reached, or the connection dropped.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: interrupted with Ctrl-C (128 + SIGINT, as shells report it).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// How long one-shot commands wait for an answer before giving up.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(60);

const AFTER_HELP: &str = "\
Environment:
  CODEXD_SOCKET        socket of codexd (an empty value counts as unset; --socket wins); default
                       $XDG_RUNTIME_DIR/codexd/codexd.sock, or ${TMPDIR:-/tmp}/codexd-$UID/codexd.sock;
                       `codexctl where` shows which one is used and why
  CODEXD_NO_AUTOSTART  any value but empty or 0 (e.g. 1): never start codexd, as --no-autostart

Autostart:
  When nothing listens on the socket (no socket file, or a stale one), token, login, logout, refresh, watch,
  restart and store migrate start codexd in the background, as gpg-agent is started: the codexd next to
  codexctl (else the one in PATH), with --socket <that socket> and codexctl's environment (CODEX_HOME,
  CODEXD_ISSUER, ...), in a process group of its own, logging to codexd.log next to the socket. They wait up
  to 10 s for it to answer, then go on; two started at once end with one daemon. status, stop, where and
  service never start one.

Exit codes:
  0    success
  1    not logged in, or refused by the daemon
  2    usage error
  3    daemon unreachable (connect failed, autostart failed, or the connection dropped)
  130  interrupted with Ctrl-C while `login` waited (the login is canceled)";

const LOGIN_HELP: &str = "\
Without a flag: a browser login. codexctl prints the sign-in URL on stderr and opens it with $BROWSER if set
(a `:`-separated list of commands; %s stands for the URL), else xdg-open (Linux and BSD, only when DISPLAY or
WAYLAND_DISPLAY is set), open (macOS) or cmd /c start (Windows); --no-browser only prints it. Then it waits
for the sign-in to complete.

--device-auth: prints a page and a code to enter there from any device, then waits the same way.

--with-api-key: reads the key from stdin (all of it, surrounding whitespace trimmed; at a terminal, one line,
not echoed) and stores it at once, e.g. printenv OPENAI_API_KEY | codexctl login --with-api-key

While waiting, Ctrl-C cancels the login in codexd (a second Ctrl-C quits at once), and so does --timeout.
Messages go to stderr; nothing is written to stdout.

Exit codes:
  0    logged in
  1    the login failed, timed out (it is then canceled), or was refused (e.g. forced_login_method policy)
  2    usage error, or no API key on stdin
  3    daemon unreachable, or it stopped before the login completed
  130  interrupted with Ctrl-C (the login is canceled)";

const REFRESH_HELP: &str = "\
Asks codexd to refresh the ChatGPT tokens now (getAuthStatus with refreshToken), whatever their expiry, and
prints the new expiry on stderr. The token itself is never printed; use `codexctl token` for that.

Exit codes:
  0  refreshed (for an API key there is nothing to refresh)
  1  not logged in; the issuer refused the refresh (the message names its code, e.g. refresh_token_reused:
     sign in again with codexctl login); or the issuer could not be reached (the current token stays in use)
  2  usage error
  3  daemon unreachable";

const STATUS_HELP: &str = "\
Shows how you are logged in, the token expiry, the last refresh failure if the issuer refused one (reason
refreshFailed, with the issuer's code), and the daemon: version, store, socket, last and next refresh.
The store line gives cli_auth_credentials_store (file, keyring, auto or ephemeral) and, when that says more,
where the login is: `auto (in auth.json)`, `ephemeral (memory only: stopping codexd logs out)`. A warning line
follows when the keyring cannot be used (e.g. auto fell back to plaintext auth.json) or config.toml is invalid
(codexd keeps the last good configuration), and a policy line names the allowed login methods and ChatGPT
workspaces when managed policy restricts them. --json has them as daemon.store, storeLocation, storeProblem,
configProblem and loginPolicy (null when absent). Never prints a token. Never starts codexd either: with no
daemon it exits 3 (`codexctl where` says more).
When the daemon is older than codexctl, a line (and stderr) says so and names `codexctl restart`.

Exit codes:
  0  logged in
  1  not logged in (including after a refused refresh), or the daemon refused codexctl's protocol version
  2  usage error
  3  daemon unreachable (not running)";

const WHERE_HELP: &str = "\
Prints the socket codexctl would use and why: the --socket flag, CODEXD_SOCKET, or the default rule and the
variable that decided it (XDG_RUNTIME_DIR, else TMPDIR, else /tmp), with the default path when another one is
in use. Then what is there: serving (codexd <version>, pid N), not running, or a stale socket file; whether the
systemd user unit codexd.socket is active and owns the socket (asked with systemctl --user, when it can be);
whether autostart is on; and the log file of a daemon that codexctl starts. Useful when a tmux or GUI session
still holds an old environment. Never starts a daemon.

--json prints one object: socket, source (flag | env | default), defaultRule (XDG_RUNTIME_DIR | TMPDIR | /tmp),
defaultSocket, state (serving | notRunning | staleSocket | notASocket | noAnswer | unreachable), daemon
({version, pid, olderThanCodexctl} or null), error, systemd ({socketUnit, listens, ownsSocket}), autostart, log.

Exit codes:
  0  always (even when nothing serves there)
  2  usage error";

const RESTART_HELP: &str = "\
Replaces the running codexd with a fresh one, e.g. after an upgrade (codexctl says when the daemon is older than
itself). When systemd runs it (codexd.socket owns the socket, or codexd.service is the running daemon):
systemctl --user restart codexd.service. Otherwise codexctl asks it to shut down (subscribers are told, as with
stop), waits until its process is gone, and starts a new one as autostart does; with autostart off
(--no-autostart, CODEXD_NO_AUTOSTART) it prints the command to start one instead. When none was running, it
starts one.

Exit codes:
  0  a new daemon serves
  1  the old daemon did not stop in time, or the new one refused codexctl (protocol version)
  2  usage error
  3  no daemon serves afterwards (it did not start, or autostart is off)";

/// Command line client of codexd, the credential daemon for the OpenAI Codex CLI.
#[derive(Debug, Parser)]
#[command(name = "codexctl", version, after_help = AFTER_HELP)]
struct Cli {
    /// Socket of codexd [env: CODEXD_SOCKET]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Never start codexd when nothing answers on the socket [env: CODEXD_NO_AUTOSTART]
    #[arg(long, global = true)]
    no_autostart: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the bearer token (ChatGPT access token or API key) and a newline, nothing else
    Token,
    /// Show who is logged in, how, which store, the token expiry, refresh problems and the daemon's state
    #[command(after_help = STATUS_HELP)]
    Status(status::StatusArgs),
    /// Log in through codexd: in a browser, with a device code (--device-auth), or an API key from stdin
    #[command(after_help = LOGIN_HELP)]
    Login(login::LoginArgs),
    /// Log out everywhere (removes the stored credentials)
    Logout,
    /// Print each notification as one JSON line; exit 0 when the daemon shuts down
    Watch,
    /// Refresh the ChatGPT tokens now and print the new expiry
    #[command(after_help = REFRESH_HELP)]
    Refresh,
    /// Ask the daemon to shut down and wait until it has
    Stop,
    /// Print the socket codexctl would use, why (flag, environment, default rule), and what answers there
    #[command(after_help = WHERE_HELP)]
    Where(location::WhereArgs),
    /// Replace the running daemon with a fresh one (after an upgrade), through systemd when it runs codexd
    #[command(after_help = RESTART_HELP)]
    Restart,
    /// Install, remove or inspect codexd's user service (systemd on Linux, launchd on macOS)
    Service(service::ServiceArgs),
    /// Credential store: `store migrate --to keyring|file` moves the login there without logging out
    Store(store::StoreArgs),
}

impl Command {
    /// Whether the command starts codexd when nothing answers (the Autostart section of `--help`).
    fn starts_daemon(&self) -> bool {
        matches!(
            self,
            Command::Token
                | Command::Login(_)
                | Command::Logout
                | Command::Refresh
                | Command::Watch
                | Command::Restart
                | Command::Store(_)
        )
    }
}

/// A failure with its exit code and the message for stderr (`None`: the command already said everything).
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    /// A failure that prints `message` and exits with `code`.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: Some(message.into()) }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("failed"))
    }
}

impl std::error::Error for Failure {}

/// What every command needs: where the daemon is, and whether codexctl may start it.
pub(crate) struct Ctx {
    pub(crate) socket: ResolvedSocket,
    /// `--no-autostart` / `CODEXD_NO_AUTOSTART`.
    pub(crate) autostart: Autostart,
    /// Whether the running command starts a daemon when none answers (status, stop, where and service do not).
    pub(crate) starts_daemon: bool,
}

impl Ctx {
    /// Connects with the timeout of one-shot commands; never starts a daemon.
    pub(crate) fn connect(&self) -> Result<Client, ClientError> {
        let mut client = Client::connect(&self.socket.path)?;
        client.set_read_timeout(Some(CALL_TIMEOUT))?;
        Ok(client)
    }

    /// [`Ctx::reach`] with the timeout of one-shot commands.
    pub(crate) fn connect_or_start(&self) -> anyhow::Result<Client> {
        let mut client = self.reach()?;
        client.set_read_timeout(Some(CALL_TIMEOUT))?;
        Ok(client)
    }

    /// Connects (no read timeout); when nothing listens on the socket and autostart is on, starts codexd first and
    /// waits until it answers.
    pub(crate) fn reach(&self) -> anyhow::Result<Client> {
        match Client::connect(&self.socket.path) {
            Err(ClientError::Unreachable { source, .. })
                if self.autostart.is_on() && autostart::nothing_listens(&source) =>
            {
                autostart::start(&self.socket.path, true)?;
                Ok(Client::connect(&self.socket.path)?)
            }
            other => Ok(other?),
        }
    }

    /// A context for unit tests: autostart on, a command that starts the daemon.
    #[cfg(test)]
    pub(crate) fn for_tests(socket: ResolvedSocket) -> Self {
        Ctx { socket, autostart: Autostart::On, starts_daemon: true }
    }

    /// `at PATH`, naming `CODEXD_SOCKET` when the path came from it.
    pub(crate) fn at(&self) -> String {
        let path = self.socket.path.display();
        match self.socket.source {
            SocketSource::Env => format!("at {path} (from CODEXD_SOCKET)"),
            SocketSource::Flag | SocketSource::Default => format!("at {path}"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let autostart = Autostart::from_settings(cli.no_autostart, std::env::var_os(autostart::NO_AUTOSTART_ENV).as_ref());
    let starts_daemon = cli.command.starts_daemon();
    let ctx = Ctx { socket: resolve_socket(cli.socket), autostart, starts_daemon };
    let outcome = match cli.command {
        Command::Token => token::run(&ctx),
        Command::Status(args) => status::run(&ctx, &args),
        Command::Login(args) => login::run(&ctx, &args),
        Command::Logout => logout::run(&ctx),
        Command::Refresh => refresh::run(&ctx),
        Command::Watch => watch::run(&ctx),
        Command::Stop => stop::run(&ctx),
        Command::Where(args) => location::run(&ctx, &args),
        Command::Restart => restart::run(&ctx),
        Command::Service(args) => service::run(&ctx, &args),
        Command::Store(args) => store::run(&ctx, &args),
    };
    let (code, message) = match outcome {
        Ok(code) => (code, None),
        Err(err) => report(&err, &ctx),
    };
    if let Some(message) = message {
        let line = message.replace(['\n', '\r'], " ");
        let _ = writeln!(io::stderr().lock(), "codexctl: {line}");
    }
    ExitCode::from(code)
}

/// Parses `codexctl ARGS` (without the program name) as `main` does, for the unit tests of every command.
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("codexctl").chain(args.iter().copied()))
}

/// The exit code and stderr message for an error.
fn report(err: &anyhow::Error, ctx: &Ctx) -> (u8, Option<String>) {
    if let Some(failure) = err.downcast_ref::<Failure>() {
        return (failure.code, failure.message.clone());
    }
    if let Some(client_err) = err.downcast_ref::<ClientError>() {
        let (code, message) = describe(client_err, ctx);
        return (code, Some(message));
    }
    if let Some(io_err) = err.downcast_ref::<io::Error>()
        && io_err.kind() == io::ErrorKind::BrokenPipe
    {
        // Whoever read our stdout has gone (`codexctl watch | head -1`): nothing left to do.
        return (EXIT_OK, None);
    }
    (EXIT_REFUSED, Some(format!("{err:#}")))
}

/// The exit code and message for a client error, with what to do about it.
fn describe(err: &ClientError, ctx: &Ctx) -> (u8, String) {
    let at = ctx.at();
    match err {
        ClientError::Unreachable { source, .. } if autostart::nothing_listens(source) && !ctx.starts_daemon => (
            EXIT_UNREACHABLE,
            format!(
                "cannot reach codexd {at}: {source}; it is not running: start it with `codexd` (or `systemctl --user \
                 start codexd`), or run a command that needs it, such as `codexctl token`, which starts it"
            ),
        ),
        ClientError::Unreachable { source, .. } if autostart::nothing_listens(source) && !ctx.autostart.is_on() => (
            EXIT_UNREACHABLE,
            format!(
                "cannot reach codexd {at}: {source}; autostart is {}, so start it with `codexd` (or `systemctl \
                 --user start codexd`)",
                ctx.autostart.describe()
            ),
        ),
        ClientError::Unreachable { source, .. } => (
            EXIT_UNREACHABLE,
            format!("cannot reach codexd {at}: {source}; start it with `codexd` (or `systemctl --user start codexd`)"),
        ),
        ClientError::Disconnected => (
            EXIT_UNREACHABLE,
            format!(
                "codexd {at} closed the connection before answering; it may be stopping or have crashed, check its logs"
            ),
        ),
        err if err.is_read_timeout() => (
            EXIT_UNREACHABLE,
            format!("codexd {at} did not answer within {} s; check its logs", CALL_TIMEOUT.as_secs()),
        ),
        ClientError::Io(e) => (EXIT_UNREACHABLE, format!("lost the connection to codexd {at}: {e}")),
        ClientError::Protocol(message) => (
            EXIT_UNREACHABLE,
            format!(
                "codexd {at} sent a reply codexctl cannot read ({message}); are codexd and codexctl the same version?"
            ),
        ),
        ClientError::LoginTimedOut { .. } => {
            (EXIT_REFUSED, "the login did not complete in time; run codexctl login again".to_owned())
        }
        ClientError::ShuttingDown => (EXIT_UNREACHABLE, format!("codexd {at} is shutting down; start it again")),
        ClientError::Daemon(e) if e.kind() == ErrorCode::NotLoggedIn => {
            (EXIT_REFUSED, token::not_logged_in(Some(&e.message)))
        }
        // The policy's own text says what to do instead (e.g. "Use API key login instead."); so does a store that
        // could not be changed: it names the store and what failed (nothing was lost).
        ClientError::Daemon(e) if matches!(e.kind(), ErrorCode::PolicyRefused | ErrorCode::StoreError) => {
            (EXIT_REFUSED, e.message.clone())
        }
        ClientError::Daemon(e) => (EXIT_REFUSED, format!("codexd refused the request: {} ({})", e.message, e.reason())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use codexd_client::proto::ErrorObject;

    fn login_args(args: &[&str]) -> login::LoginArgs {
        match parse(args).unwrap().command {
            Command::Login(args) => args,
            other => panic!("not login: {other:?}"),
        }
    }

    fn ctx() -> Ctx {
        Ctx::for_tests(ResolvedSocket { path: "/run/codexd.sock".into(), source: SocketSource::Flag })
    }

    #[test]
    fn login_defaults_to_a_browser_login_with_a_900_s_timeout() {
        let args = login_args(&["login"]);
        assert!(!args.device_auth && !args.with_api_key && !args.no_browser);
        assert_eq!(args.timeout, 900);
        let args = login_args(&["login", "--device-auth", "--no-browser", "--timeout", "30"]);
        assert!(args.device_auth && args.no_browser && !args.with_api_key);
        assert_eq!(args.timeout, 30);
        assert!(login_args(&["--socket", "/s", "login", "--with-api-key"]).with_api_key);
    }

    #[test]
    fn login_flags_that_contradict_or_do_not_parse_are_usage_errors() {
        let conflict = parse(&["login", "--device-auth", "--with-api-key"]).unwrap_err();
        assert_eq!(conflict.kind(), ErrorKind::ArgumentConflict);
        for bad in [&["login", "--timeout", "0"][..], &["login", "--timeout", "soon"], &["login", "--timeout"]] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), i32::from(EXIT_USAGE), "{bad:?}: {err}");
        }
        assert_eq!(parse(&["refresh", "--json"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn refresh_parses_and_status_keeps_its_json_flag() {
        assert!(matches!(parse(&["refresh"]).unwrap().command, Command::Refresh));
        assert!(matches!(parse(&["status", "--json"]).unwrap().command, Command::Status(_)));
    }

    #[test]
    fn a_policy_refusal_is_exit_1_with_the_daemons_own_text() {
        let refused = ClientError::Daemon(ErrorObject::new(
            ErrorCode::PolicyRefused,
            "ChatGPT login is disabled. Use API key login instead.",
        ));
        assert_eq!(
            describe(&refused, &ctx()),
            (EXIT_REFUSED, "ChatGPT login is disabled. Use API key login instead.".to_owned())
        );
    }

    #[test]
    fn a_store_error_is_exit_1_with_the_daemons_own_text() {
        let failed = ClientError::Daemon(ErrorObject::new(
            ErrorCode::StoreError,
            "the keyring is locked; the login stays in auth.json and config.toml is unchanged",
        ));
        assert_eq!(
            describe(&failed, &ctx()),
            (
                EXIT_REFUSED,
                "the keyring is locked; the login stays in auth.json and config.toml is unchanged".to_owned()
            )
        );
    }

    #[test]
    fn store_migrate_parses_and_starts_the_daemon_like_logout() {
        assert!(matches!(parse(&["store", "migrate", "--to", "keyring"]).unwrap().command, Command::Store(_)));
        assert!(matches!(
            parse(&["--socket", "/s", "store", "migrate", "--to=file"]).unwrap().command,
            Command::Store(_)
        ));
        assert!(parse(&["store", "migrate", "--to", "file"]).unwrap().command.starts_daemon());
        assert!(!parse(&["status"]).unwrap().command.starts_daemon());
        assert!(AFTER_HELP.contains("restart and store migrate start codexd"));
    }

    #[test]
    fn a_shutdown_while_waiting_is_unreachable_and_a_timed_out_login_is_refused() {
        let (code, message) = describe(&ClientError::ShuttingDown, &ctx());
        assert_eq!(code, EXIT_UNREACHABLE);
        assert!(message.contains("/run/codexd.sock"), "{message}");
        let timed_out = ClientError::LoginTimedOut { login_id: "l1".to_owned() };
        assert_eq!(describe(&timed_out, &ctx()).0, EXIT_REFUSED);
    }

    #[test]
    fn where_restart_and_the_global_no_autostart_flag_parse() {
        assert!(matches!(parse(&["where"]).unwrap().command, Command::Where(_)));
        assert!(matches!(parse(&["where", "--json"]).unwrap().command, Command::Where(_)));
        assert!(matches!(parse(&["restart"]).unwrap().command, Command::Restart));
        assert!(parse(&["token", "--no-autostart"]).unwrap().no_autostart);
        assert!(parse(&["--no-autostart", "token"]).unwrap().no_autostart);
        assert!(!parse(&["token"]).unwrap().no_autostart);
        assert_eq!(parse(&["restart", "--json"]).unwrap_err().kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn nothing_listening_says_why_no_daemon_was_started() {
        let unreachable =
            |kind| ClientError::Unreachable { path: "/run/codexd.sock".into(), source: io::Error::from(kind) };
        let mut status = ctx();
        status.starts_daemon = false;
        let (code, message) = describe(&unreachable(io::ErrorKind::NotFound), &status);
        assert_eq!(code, EXIT_UNREACHABLE);
        assert!(message.contains("it is not running") && message.contains("codexctl token"), "{message}");
        let mut off = ctx();
        off.autostart = Autostart::OffByEnv;
        let (code, message) = describe(&unreachable(io::ErrorKind::ConnectionRefused), &off);
        assert_eq!(code, EXIT_UNREACHABLE);
        assert!(message.contains("autostart is off (CODEXD_NO_AUTOSTART)"), "{message}");
        let (_, message) = describe(&unreachable(io::ErrorKind::PermissionDenied), &off);
        assert!(!message.contains("autostart") && message.contains("start it with `codexd`"), "{message}");
    }

    #[test]
    fn a_failure_reports_its_own_code_and_message() {
        let err = anyhow::Error::from(Failure::new(EXIT_INTERRUPTED, "login canceled"));
        assert_eq!(report(&err, &ctx()), (EXIT_INTERRUPTED, Some("login canceled".to_owned())));
    }
}
