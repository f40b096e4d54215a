//! `codexctl`: the command line client of codexd. One file per subcommand; this one parses the command line,
//! runs the command and turns its outcome into one stderr line and a documented exit code.

mod browser;
mod interrupt;
mod login;
mod logout;
mod refresh;
mod status;
mod stop;
mod token;
mod watch;

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
  CODEXD_SOCKET  socket of codexd (an empty value counts as unset; --socket wins); default
                 $XDG_RUNTIME_DIR/codexd/codexd.sock, or ${TMPDIR:-/tmp}/codexd-$UID/codexd.sock

Exit codes:
  0    success
  1    not logged in, or refused by the daemon
  2    usage error
  3    daemon unreachable (connect failed, or the connection dropped)
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
Never prints a token.

Exit codes:
  0  logged in
  1  not logged in (including after a refused refresh)
  2  usage error
  3  daemon unreachable";

/// Command line client of codexd, the credential daemon for the OpenAI Codex CLI.
#[derive(Debug, Parser)]
#[command(name = "codexctl", version, after_help = AFTER_HELP)]
struct Cli {
    /// Socket of codexd [env: CODEXD_SOCKET]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
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

/// What every command needs: where the daemon is.
pub(crate) struct Ctx {
    pub(crate) socket: ResolvedSocket,
}

impl Ctx {
    /// Connects with the timeout of one-shot commands.
    pub(crate) fn connect(&self) -> Result<Client, ClientError> {
        let mut client = Client::connect(&self.socket.path)?;
        client.set_read_timeout(Some(CALL_TIMEOUT))?;
        Ok(client)
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
    let ctx = Ctx { socket: resolve_socket(cli.socket) };
    let outcome = match cli.command {
        Command::Token => token::run(&ctx),
        Command::Status(args) => status::run(&ctx, &args),
        Command::Login(args) => login::run(&ctx, &args),
        Command::Logout => logout::run(&ctx),
        Command::Refresh => refresh::run(&ctx),
        Command::Watch => watch::run(&ctx),
        Command::Stop => stop::run(&ctx),
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
        ClientError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => (
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
        // The policy's own text says what to do instead (e.g. "Use API key login instead.").
        ClientError::Daemon(e) if e.kind() == ErrorCode::PolicyRefused => (EXIT_REFUSED, e.message.clone()),
        ClientError::Daemon(e) => (EXIT_REFUSED, format!("codexd refused the request: {} ({})", e.message, e.reason())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use codexd_client::proto::ErrorObject;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("codexctl").chain(args.iter().copied()))
    }

    fn login_args(args: &[&str]) -> login::LoginArgs {
        match parse(args).unwrap().command {
            Command::Login(args) => args,
            other => panic!("not login: {other:?}"),
        }
    }

    fn ctx() -> Ctx {
        Ctx { socket: ResolvedSocket { path: "/run/codexd.sock".into(), source: SocketSource::Flag } }
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
    fn a_shutdown_while_waiting_is_unreachable_and_a_timed_out_login_is_refused() {
        let (code, message) = describe(&ClientError::ShuttingDown, &ctx());
        assert_eq!(code, EXIT_UNREACHABLE);
        assert!(message.contains("/run/codexd.sock"), "{message}");
        let timed_out = ClientError::LoginTimedOut { login_id: "l1".to_owned() };
        assert_eq!(describe(&timed_out, &ctx()).0, EXIT_REFUSED);
    }

    #[test]
    fn a_failure_reports_its_own_code_and_message() {
        let err = anyhow::Error::from(Failure::new(EXIT_INTERRUPTED, "login canceled"));
        assert_eq!(report(&err, &ctx()), (EXIT_INTERRUPTED, Some("login canceled".to_owned())));
    }
}
