//! `codexd-fake-issuer`: the fake Codex issuer as a standalone program, for manual runs and non-Rust clients.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use codexd_fake_issuer::{Account, FakeIssuer, Options};

/// A fake Codex issuer (auth.openai.com) on 127.0.0.1: logins, refresh rotation, device codes, revoke, faults.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "\
Point codexd at it, always with a throwaway CODEX_HOME (never your real one: a login there without
oauth_provenance would send its refresh token here, where GET /_fake/requests shows it to any local user):
  export CODEX_HOME=\"$(mktemp -d)\"
  CODEXD_ISSUER=<url printed on stdout> codexd ...
With --tls-dir DIR, also trust its CA:
  CODEX_CA_CERTIFICATE=DIR/ca.pem CODEXD_ISSUER=https://localhost:PORT codexd ...
Start logged in (the auth.json's oauth_provenance points at this issuer; the file is overwritten, so again
only in that throwaway CODEX_HOME):
  codexd-fake-issuer --auth-json \"$CODEX_HOME/auth.json\"

Script it over HTTP (same semantics as the Rust API):
  GET  /_fake/requests                 every request received (JSON array)
  POST /_fake/script   {\"endpoint\":\"refresh\",\"fault\":{\"kind\":\"status\",\"status\":500},\"always\":false}
  POST /_fake/clear                    clear faults, release hung requests
  POST /_fake/mint     [Account JSON]  {id_token, access_token, refresh_token, auth_json}
  POST /_fake/approve  {\"user_code\":\"ABCD-EFGH\"}
  POST /_fake/lifetime {\"seconds\":60}
Endpoints: authorize, code_exchange, token_exchange, refresh, device_user_code, device_token, revoke.
Fault kinds: status, hang, drop, delay{ms}, lose_response_after_rotate, refresh_error{status,code},
authorize_error{error}, wrong_state, slow_down{interval_secs?}, device_expired.

Runs until SIGINT or SIGTERM. Requests are logged to stderr (token fingerprints only)."
)]
struct Cli {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    access_token_lifetime_secs: u64,
    /// Device-code polling interval handed to clients, in seconds.
    #[arg(long, default_value_t = 1)]
    device_interval_secs: u64,
    /// Approve device logins by themselves after this many pending polls (0 = at the first poll).
    #[arg(long, default_value_t = 2)]
    device_auto_approve_after: u32,
    /// Serve HTTPS with a generated CA and write DIR/ca.pem (use it as CODEX_CA_CERTIFICATE).
    #[arg(long, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// Mint a login and write its auth.json here (mode 0600, replacing any file there), so a throwaway
    /// CODEX_HOME starts logged in.
    #[arg(long, value_name = "PATH")]
    auth_json: Option<PathBuf>,
}

fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    // The file may have existed with looser permissions.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let options = Options {
        access_token_lifetime: Duration::from_secs(cli.access_token_lifetime_secs),
        tls: cli.tls_dir.is_some(),
        port: cli.port,
        account: Account::default(),
        device_interval_secs: cli.device_interval_secs,
        device_auto_approve_after: Some(cli.device_auto_approve_after),
    };
    let issuer = FakeIssuer::start_with(options).context("cannot start on 127.0.0.1")?;
    issuer.set_stderr_log(true);
    if let (Some(dir), Some(pem)) = (&cli.tls_dir, issuer.ca_pem()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("ca.pem");
        std::fs::write(&path, pem).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &cli.auth_json {
        let tokens = issuer.mint(&Account::default());
        write_private(path, &tokens.auth_json(issuer.url()))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "codexd-fake-issuer listening on {}", issuer.url())?;
    stdout.flush()?;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    })?;
    drop(issuer);
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(&Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codexd-fake-issuer: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
