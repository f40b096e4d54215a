//! The daemon's configuration, resolved from flags and environment before anything starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default issuer for logins and refresh.
pub const DEFAULT_ISSUER: &str = "https://auth.openai.com";

/// Default bound on one write to a client before that client is dropped.
pub const DEFAULT_CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything `run` needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The socket the daemon serves.
    pub socket: PathBuf,
    /// The credential home (canonical path), as the Codex CLI's `CODEX_HOME`.
    pub codex_home: PathBuf,
    /// Issuer base URL for logins.
    pub issuer: String,
    /// How long one write to a client may block before the client is dropped.
    pub client_write_timeout: Duration,
    /// How often the socket file is touched and checked to still be this daemon's (`CODEXD_SOCKET_CHECK_MS`).
    pub socket_check_interval: Duration,
    /// How codexd talks to the issuer: refresh, logins, logout.
    pub session: SessionConfig,
    /// Where managed config is read (`CODEXD_SYSTEM_CONFIG_DIR`, default `/etc/codex`).
    pub system_config_dir: PathBuf,
    /// Bound on every keyring call (`CODEXD_KEYRING_TIMEOUT_MS`).
    pub keyring_timeout: Duration,
    /// How often the keyring is read for changes other programs made (`CODEXD_KEYRING_POLL_MS`); doubled after
    /// each failure, up to [`MAX_KEYRING_POLL_INTERVAL`].
    pub keyring_poll_interval: Duration,
}

/// Default keyring poll: every 5 s (one D-Bus lookup).
pub const DEFAULT_KEYRING_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The keyring poll backs off to at most this while the keyring fails (no unlock prompt every few seconds).
pub const MAX_KEYRING_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// Settings of the refresh and login machinery (each has an environment variable, see `codexd --help`).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where each issuer call goes.
    pub endpoints: crate::oauth::Endpoints,
    /// Extra trusted roots for every HTTPS call.
    pub ca_bundle: Option<crate::oauth::ca::CaBundle>,
    /// Bound on every HTTP call to the issuer.
    pub http_timeout: Duration,
    /// Refresh when the access token has at most this long left (clamped to half its lifetime).
    pub refresh_margin: Duration,
    /// First retry delay after a transient refresh failure.
    pub backoff_min: Duration,
    /// Largest retry delay after transient refresh failures.
    pub backoff_max: Duration,
    /// Browser-login callback ports, tried in order; `0` means any free port.
    pub login_ports: Vec<u16>,
    /// A browser login not completed within this ends unsuccessfully.
    pub login_timeout: Duration,
    /// Device-code polling gives up after this.
    pub device_code_timeout: Duration,
    /// The `originator` sent with refreshes (`CODEX_INTERNAL_ORIGINATOR_OVERRIDE`, as the Codex CLI).
    pub originator: String,
}

/// Default refresh margin: refresh with 10 minutes left, well before the Codex CLI's 5-minute threshold.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(600);
/// Default bound on one HTTP call.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The Codex CLI's callback port and its fallback.
pub const DEFAULT_LOGIN_PORTS: [u16; 2] = [1455, 1457];
/// Default bound on a browser login.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// The Codex CLI's device-code limit: 15 minutes.
pub const DEFAULT_DEVICE_CODE_TIMEOUT: Duration = Duration::from_secs(900);

impl SessionConfig {
    /// The defaults for `issuer`, without a CA bundle or overrides.
    pub fn new(issuer: &str) -> Self {
        Self {
            endpoints: crate::oauth::Endpoints::new(issuer),
            ca_bundle: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            login_ports: DEFAULT_LOGIN_PORTS.to_vec(),
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            device_code_timeout: DEFAULT_DEVICE_CODE_TIMEOUT,
            originator: crate::oauth::ORIGINATOR.to_owned(),
        }
    }
}

/// A configuration the daemon cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `CODEX_HOME` (or `--codex-home`) names a missing path, which the Codex CLI refuses too.
    #[error("CODEX_HOME points to {path:?}, but that path does not exist")]
    CodexHomeMissing {
        /// The path given.
        path: PathBuf,
    },
    /// Neither `CODEX_HOME` nor `HOME` is set.
    #[error("cannot find the credential home: set CODEX_HOME or HOME")]
    NoHome,
    /// The custom CA bundle cannot be used.
    #[error(transparent)]
    CaBundle(#[from] crate::oauth::ca::CaError),
    /// A setting has a value codexd cannot use.
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        /// The variable or flag.
        name: &'static str,
        /// What it was set to.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// The credential home exists but cannot be used.
    #[error("cannot use the credential home {path:?}: {source}")]
    CodexHome {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Finds the credential home as the Codex CLI does: an explicit path must exist; the default `~/.codex` is
/// created (mode 0700) when missing. Returns the canonical path, which also keys the keyring entry.
pub fn resolve_codex_home(explicit: Option<&Path>, home: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let path = match explicit {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError::CodexHomeMissing { path: path.to_owned() });
            }
            path.to_owned()
        }
        None => {
            let path = home.ok_or(ConfigError::NoHome)?.join(".codex");
            create_private_dir(&path).map_err(|source| ConfigError::CodexHome { path: path.clone(), source })?;
            path
        }
    };
    let canonical = path.canonicalize().map_err(|source| ConfigError::CodexHome { path: path.clone(), source })?;
    if !canonical.is_dir() {
        return Err(ConfigError::CodexHome {
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            path: canonical,
        });
    }
    Ok(canonical)
}

/// Creates a directory (and its parents) readable by its owner only.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_home_must_exist_and_default_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        assert!(matches!(resolve_codex_home(Some(&missing), None), Err(ConfigError::CodexHomeMissing { .. })));
        let created = resolve_codex_home(None, Some(tmp.path())).unwrap();
        assert_eq!(created, tmp.path().canonicalize().unwrap().join(".codex"));
        assert!(created.is_dir());
        assert!(matches!(resolve_codex_home(None, None), Err(ConfigError::NoHome)));
    }
}
