//! The `codexd` binary: flags and environment to a `Config`, logging, signals, then `codexd::run`.

use clap::Parser;
use codexd::config::{self, Config, ConfigError, DEFAULT_ISSUER};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Command line of `codexd`.
#[derive(Debug, Parser)]
#[command(
    name = "codexd",
    version,
    about = "The Codex credential daemon: one owner for the Codex login, served over a local socket",
    after_help = "\
Environment:
  CODEX_HOME                 credential home, as the Codex CLI (default ~/.codex)
  CODEXD_SOCKET              socket path (default $XDG_RUNTIME_DIR/codexd/codexd.sock,
                             else ${TMPDIR:-/tmp}/codexd-$UID/codexd.sock)
  CODEXD_ISSUER              issuer base URL for logins (default https://auth.openai.com)
  CODEXD_LOG                 log filter, e.g. debug or codexd=trace (default info); logs go to stderr
  CODEXD_WRITE_TIMEOUT_MS    how long one write to a client may block before that client is dropped (default 5000)

Stop it with SIGTERM, SIGINT or `codexctl stop`: every subscriber is told (daemon/shuttingDown), the socket is
removed, and codexd exits 0."
)]
struct Args {
    /// Socket path to serve [env: CODEXD_SOCKET]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Credential home [env: CODEX_HOME]
    #[arg(long, value_name = "DIR")]
    codex_home: Option<PathBuf>,
    /// Issuer base URL for logins [env: CODEXD_ISSUER]
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    raise_open_file_limit();
    let config = match resolve(args) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let (listener, _socket_guard) = codexd::ipc::listener::bind(&config.socket)?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    codexd::run(config, listener, shutdown).await?;
    tracing::info!("codexd stopped");
    Ok(())
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("codexd: {error}");
    ExitCode::FAILURE
}

fn env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn resolve(args: Args) -> Result<Config, ConfigError> {
    let explicit_home = args.codex_home.or_else(|| env("CODEX_HOME").map(PathBuf::from));
    let codex_home = config::resolve_codex_home(explicit_home.as_deref(), std::env::home_dir().as_deref())?;
    let socket = match args.socket.or_else(|| env(codexd_proto::paths::SOCKET_ENV).map(PathBuf::from)) {
        Some(socket) => socket,
        None => default_socket(),
    };
    let issuer = args
        .issuer
        .or_else(|| env("CODEXD_ISSUER").and_then(|v| v.into_string().ok()))
        .unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
    let client_write_timeout = env("CODEXD_WRITE_TIMEOUT_MS")
        .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
        .map_or(config::DEFAULT_CLIENT_WRITE_TIMEOUT, Duration::from_millis);
    Ok(Config { socket, codex_home, issuer, client_write_timeout })
}

/// The same default as every client's (`codexd_proto::paths`).
fn default_socket() -> PathBuf {
    #[cfg(unix)]
    let uid = rustix::process::getuid().as_raw();
    #[cfg(not(unix))]
    let uid = 0;
    codexd_proto::paths::default_socket_path(|name| std::env::var_os(name), uid)
}

/// Every connection is a file descriptor: lift the soft limit to the hard one, as servers do.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            limit.current = limit.maximum;
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                tracing::debug!(error = %e, "could not raise the open-file limit");
            }
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODEXD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

fn spawn_signal_handler(shutdown: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!("{name} received: shutting down");
            shutdown.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received: shutting down");
            shutdown.cancel();
        }
    });
    Ok(())
}
