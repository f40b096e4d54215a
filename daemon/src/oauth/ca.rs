//! The HTTP client for every call to the issuer: rustls, a timeout, no redirects, and the custom CA bundle
//! chosen as the Codex CLI chooses it (`CODEX_CA_CERTIFICATE`, else `SSL_CERT_FILE`; empty means unset).

use std::path::PathBuf;
use std::time::Duration;

/// The variables that select a CA bundle, in the order they are consulted.
pub const CA_ENV_VARS: [&str; 2] = ["CODEX_CA_CERTIFICATE", "SSL_CERT_FILE"];

/// Extra trusted roots from a PEM file.
#[derive(Clone)]
pub struct CaBundle {
    /// The file.
    pub path: PathBuf,
    /// The variable that named it.
    pub source_env: &'static str,
    certificates: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("source_env", &self.source_env)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// A CA bundle that cannot be used; the daemon refuses to start with it, as the Codex CLI does.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file could not be read.
    #[error(
        "Failed to read CA certificate file {} selected by {env}: {source}. If you set CODEX_CA_CERTIFICATE or \
         SSL_CERT_FILE, ensure it points to a PEM file containing one or more CERTIFICATE blocks, or unset it to use \
         system roots.",
        .path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The variable that named it.
        env: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no usable certificate.
    #[error(
        "Failed to load CA certificates from {} selected by {env}: {detail}. If you set CODEX_CA_CERTIFICATE or \
         SSL_CERT_FILE, ensure it points to a PEM file containing one or more CERTIFICATE blocks, or unset it to use \
         system roots.",
        .path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The variable that named it.
        env: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The TLS stack could not be set up.
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
}

impl CaBundle {
    /// The bundle the environment selects, if any: `CODEX_CA_CERTIFICATE`, else `SSL_CERT_FILE`, an empty value
    /// counting as unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Option<CaBundle>, CaError> {
        let Some((env, path)) = CA_ENV_VARS
            .iter()
            .find_map(|&name| lookup(name).filter(|v| !v.is_empty()).map(|v| (name, PathBuf::from(v))))
        else {
            return Ok(None);
        };
        let pem = std::fs::read(&path).map_err(|source| CaError::Read { path: path.clone(), env, source })?;
        // OpenSSL's `TRUSTED CERTIFICATE` blocks carry the same DER first; read them as plain certificates.
        let pem = String::from_utf8_lossy(&pem).replace("TRUSTED CERTIFICATE-----", "CERTIFICATE-----");
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| CaError::Parse {
            path: path.clone(),
            env,
            detail: e.to_string(),
        })?;
        if certificates.is_empty() {
            return Err(CaError::Parse { path, env, detail: "no certificates found in PEM file".to_owned() });
        }
        Ok(Some(CaBundle { path, source_env: env, certificates }))
    }

    /// How many certificates the bundle adds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// Whether the bundle is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

/// Installs rustls's ring provider for the process (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client for the issuer: every request times out after `timeout`, redirects are never followed (token
/// endpoints must not send credentials elsewhere), and `ca` adds roots on top of the system's.
pub fn http_client(ca: Option<&CaBundle>, timeout: Duration) -> Result<reqwest::Client, CaError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("codexd/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca {
        tracing::info!(source_env = ca.source_env, ca_path = %ca.path.display(), certificates = ca.len(), "adding the custom CA bundle to the system roots");
        builder = builder.tls_certs_merge(ca.certificates.iter().cloned());
    }
    builder.build().map_err(|e| CaError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn no_variable_means_system_roots() {
        assert!(CaBundle::from_env(lookup(&[])).unwrap().is_none());
        assert!(CaBundle::from_env(lookup(&[("CODEX_CA_CERTIFICATE", ""), ("SSL_CERT_FILE", "")])).unwrap().is_none());
    }

    #[test]
    fn an_empty_codex_variable_falls_through_to_ssl_cert_file() {
        let err = CaBundle::from_env(lookup(&[("CODEX_CA_CERTIFICATE", ""), ("SSL_CERT_FILE", "/nonexistent/ca.pem")]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("Failed to read CA certificate file /nonexistent/ca.pem selected by SSL_CERT_FILE"),
            "{text}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_named_with_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let path_text = path.to_str().unwrap();
        let err =
            CaBundle::from_env(lookup(&[("CODEX_CA_CERTIFICATE", path_text), ("SSL_CERT_FILE", "/x")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("selected by CODEX_CA_CERTIFICATE: no certificates found in PEM file"), "{text}");
    }
}
