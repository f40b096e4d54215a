//! `codexctl`: the command line client of codexd. One file per subcommand; this one parses the command line,
//! runs the command and turns its outcome into one stderr line and a documented exit code.

mod logout;
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
/// Exit code: the daemon could not be reached, or the connection dropped.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;

/// How long one-shot commands wait for an answer before giving up.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

const AFTER_HELP: &str = "\
Environment:
  CODEXD_SOCKET  socket of codexd (an empty value counts as unset; --socket wins); default
                 $XDG_RUNTIME_DIR/codexd/codexd.sock, or ${TMPDIR:-/tmp}/codexd-$UID/codexd.sock

Exit codes:
  0  success
  1  not logged in, or refused by the daemon
  2  usage error
  3  daemon unreachable (connect failed, or the connection dropped)";

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
    /// Show who is logged in, how, which store, the token expiry and the daemon's version
    Status(status::StatusArgs),
    /// Log out everywhere (removes the stored credentials)
    Logout,
    /// Print each notification as one JSON line; exit 0 when the daemon shuts down
    Watch,
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
        Command::Logout => logout::run(&ctx),
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
        ClientError::Daemon(e) if e.kind() == ErrorCode::NotLoggedIn => {
            (EXIT_REFUSED, token::not_logged_in(Some(&e.message)))
        }
        ClientError::Daemon(e) => (EXIT_REFUSED, format!("codexd refused the request: {} ({})", e.message, e.reason())),
    }
}
