//! The `codexd` binary: flags and environment to a `Config`, logging, signals, then `codexd::run`.

use clap::Parser;
use codexd::config::{self, Config, ConfigError, DEFAULT_ISSUER};
use codexd::ipc::listener::Inherited;
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
  CODEXD_SOCKET_CHECK_MS     how often codexd touches its socket (so runtime-dir cleaners keep it) and checks it
                             is still its own; a socket removed or replaced (a newer codexd) stops codexd
                             gracefully (default 60000)
  CODEX_REFRESH_TOKEN_URL_OVERRIDE, CODEX_REVOKE_TOKEN_URL_OVERRIDE
                             refresh and revoke endpoints, as the Codex CLI (refresh otherwise goes to the issuer
                             recorded in auth.json, else the issuer above)
  CODEX_CA_CERTIFICATE       PEM bundle of extra trusted roots for every HTTPS call; else SSL_CERT_FILE;
                             an empty value counts as unset; an unusable bundle stops codexd at startup
  CODEXD_REFRESH_MARGIN_SECS refresh when the access token has this long left (default 600; at most half
                             the token's lifetime), so Codex CLIs (5-minute threshold) never refresh themselves
  CODEXD_REFRESH_BACKOFF_MIN_MS, CODEXD_REFRESH_BACKOFF_MAX_MS
                             retry delays after a failed refresh that may pass (default 1000 and 300000)
  CODEXD_HTTP_TIMEOUT_MS     bound on every call to the issuer (default 30000; revoke at most 10000)
  CODEXD_LOGIN_PORTS         browser-login callback ports, tried in order (default 1455,1457; 0 = any free port)
  CODEXD_LOGIN_TIMEOUT_SECS  a browser login not completed by then fails (default 600)
  CODEXD_DEVICE_CODE_TIMEOUT_SECS
                             device-code polling gives up after this (default 900)
  CODEXD_SYSTEM_CONFIG_DIR   managed config: requirements.toml, managed_config.toml, config.toml (default
                             /etc/codex); read with $CODEX_HOME/config.toml, as the Codex CLI does
  CODEXD_KEYRING_TIMEOUT_MS  bound on every OS keyring call (default 10000); a keyring that does not answer
                             (an unlock prompt) never stops codexd serving the credentials it holds
  CODEXD_KEYRING_POLL_MS     how often the keyring is read for changes by other programs (default 5000;
                             backs off to 5 minutes while it fails)

Credential store: cli_auth_credentials_store in config.toml (file, keyring, auto or ephemeral), as the Codex
CLI. config.toml and the managed files are watched: a change of store or policy takes effect at once; a file
that cannot be used is reported (codexctl status) and the last good configuration kept. At startup it stops
codexd (exit 1) with the file and the key. In ephemeral mode stopping codexd is a logout (the refresh token is
revoked).

Under systemd, codexd serves the socket passed by codexd.socket (LISTEN_FDS, socket activation) instead of
binding one, and reports READY=1 and STOPPING=1 (NOTIFY_SOCKET, Type=notify).

Stop it with SIGTERM, SIGINT or `codexctl stop`: every subscriber is told (daemon/shuttingDown), a refresh on
the wire is finished, the socket is removed (unless systemd passed it), and codexd exits 0. It exits 1 when it
cannot start (a missing CODEX_HOME, an unusable CA bundle, setting or config file, the socket in use) and 2 on a usage
error."
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
    // Before anything opens a descriptor: drop what the parent left open (keeping systemd's sockets), and take
    // the passed socket before the runtime creates descriptors of its own.
    #[cfg(target_os = "linux")]
    codexd::ipc::activation::close_inherited_descriptors(codexd::ipc::activation::passed_socket_count());
    #[cfg(target_os = "linux")]
    let inherited = codexd::ipc::activation::take_listen_fd();
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
    #[cfg(target_os = "linux")]
    let inherited = match inherited {
        Ok(inherited) => inherited,
        Err(e) => return fail(&e),
    };
    #[cfg(not(target_os = "linux"))]
    let inherited = None;
    match runtime.block_on(serve(config, inherited)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    }
}

async fn serve(mut config: Config, inherited: Option<Inherited>) -> Result<(), Box<dyn std::error::Error>> {
    let (listener, socket_guard) = codexd::ipc::listener::listen(&config.socket, inherited)?;
    // An adopted socket may live elsewhere than configured: report the one served.
    socket_guard.path().clone_into(&mut config.socket);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    #[cfg(unix)]
    if let Some(id) = socket_guard.id() {
        let path = socket_guard.path().to_owned();
        codexd::ipc::keeper::spawn_socket_keeper(path, id, config.socket_check_interval, shutdown.clone());
    }
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
    let socket_check_interval =
        env_duration("CODEXD_SOCKET_CHECK_MS", MS_UP_TO_A_DAY)?.unwrap_or(codexd::ipc::keeper::DEFAULT_CHECK_INTERVAL);
    let session = resolve_session(&issuer)?;
    let system_config_dir = env("CODEXD_SYSTEM_CONFIG_DIR")
        .map_or_else(|| PathBuf::from(codexd::settings::DEFAULT_SYSTEM_CONFIG_DIR), PathBuf::from);
    let keyring_timeout = env_duration("CODEXD_KEYRING_TIMEOUT_MS", MS_UP_TO_TEN_MINUTES)?
        .unwrap_or(codexd::store::keyring::DEFAULT_TIMEOUT);
    let keyring_poll_interval =
        env_duration("CODEXD_KEYRING_POLL_MS", MS_UP_TO_A_DAY)?.unwrap_or(config::DEFAULT_KEYRING_POLL_INTERVAL);
    Ok(Config {
        socket,
        codex_home,
        issuer,
        client_write_timeout,
        socket_check_interval,
        session,
        system_config_dir,
        keyring_timeout,
        keyring_poll_interval,
    })
}

fn env_string(name: &str) -> Option<String> {
    env(name).and_then(|v| v.into_string().ok())
}

/// A number-valued variable of at most `max`; anything else is an error naming the variable.
fn env_number(name: &'static str, max: u64, expected: &'static str) -> Result<Option<u64>, ConfigError> {
    env_string(name)
        .map(|v| match v.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ConfigError::Invalid { name, value: v, expected }),
        })
        .transpose()
}

const DAY_SECS: u64 = 86_400;

/// The range and unit of a duration-valued variable.
#[derive(Clone, Copy)]
struct DurationRange {
    max: u64,
    expected: &'static str,
    unit: fn(u64) -> Duration,
}

const MS_UP_TO_A_DAY: DurationRange = DurationRange {
    max: DAY_SECS * 1000,
    expected: "milliseconds, 1 to 86400000 (a day)",
    unit: Duration::from_millis,
};
const MS_UP_TO_TEN_MINUTES: DurationRange =
    DurationRange { max: 600_000, expected: "milliseconds, 1 to 600000 (10 minutes)", unit: Duration::from_millis };
const SECS_UP_TO_A_DAY: DurationRange =
    DurationRange { max: DAY_SECS, expected: "seconds, 1 to 86400 (a day)", unit: Duration::from_secs };

/// A duration-valued variable in `range` (0 counts as 1); anything else is an error naming the variable.
fn env_duration(name: &'static str, range: DurationRange) -> Result<Option<Duration>, ConfigError> {
    Ok(env_number(name, range.max, range.expected)?.map(|n| (range.unit)(n.max(1))))
}

fn resolve_session(issuer: &str) -> Result<config::SessionConfig, ConfigError> {
    let mut session = config::SessionConfig::new(issuer);
    session.endpoints.refresh_override = env_string("CODEX_REFRESH_TOKEN_URL_OVERRIDE");
    session.endpoints.revoke_override = env_string("CODEX_REVOKE_TOKEN_URL_OVERRIDE");
    session.ca_bundle = codexd::oauth::ca::CaBundle::from_env(|name| std::env::var_os(name))?;
    if let Some(originator) = env_string("CODEX_INTERNAL_ORIGINATOR_OVERRIDE") {
        session.originator = originator;
    }
    if let Some(secs) = env_number("CODEXD_REFRESH_MARGIN_SECS", DAY_SECS, "seconds, at most 86400 (a day)")? {
        session.refresh_margin = Duration::from_secs(secs);
    }
    if let Some(min) = env_duration("CODEXD_REFRESH_BACKOFF_MIN_MS", MS_UP_TO_A_DAY)? {
        session.backoff_min = min;
    }
    if let Some(max) = env_duration("CODEXD_REFRESH_BACKOFF_MAX_MS", MS_UP_TO_A_DAY)? {
        session.backoff_max = max;
    }
    session.backoff_max = session.backoff_max.max(session.backoff_min);
    if let Some(timeout) = env_duration("CODEXD_HTTP_TIMEOUT_MS", MS_UP_TO_TEN_MINUTES)? {
        session.http_timeout = timeout;
    }
    if let Some(timeout) = env_duration("CODEXD_LOGIN_TIMEOUT_SECS", SECS_UP_TO_A_DAY)? {
        session.login_timeout = timeout;
    }
    if let Some(timeout) = env_duration("CODEXD_DEVICE_CODE_TIMEOUT_SECS", SECS_UP_TO_A_DAY)? {
        session.device_code_timeout = timeout;
    }
    if let Some(ports) = env_string("CODEXD_LOGIN_PORTS") {
        let parsed: Result<Vec<u16>, _> = ports.split(',').map(|p| p.trim().parse::<u16>()).collect();
        session.login_ports = match parsed {
            Ok(list) if !list.is_empty() => list,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "CODEXD_LOGIN_PORTS",
                    value: ports,
                    expected: "a comma-separated list of ports, e.g. 1455,1457",
                });
            }
        };
    }
    Ok(session)
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
