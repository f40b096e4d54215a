//! Custom CA bundles (`CODEX_CA_CERTIFICATE`, else `SSL_CERT_FILE`; empty = unset) against a fake issuer that
//! serves HTTPS with its own CA: refresh and browser login work with the bundle, fail without it, and a bundle
//! that cannot be used stops codexd at startup with a message naming the variable.

use codexd_e2e::logins::{LOGIN_DEADLINE, click_through, read_auth_json, run_codexd_to_exit, wait_login_completed};
use codexd_e2e::session::forced;
use codexd_e2e::{TestDaemon, TestDaemonBuilder};
use codexd_fake_issuer::{Account, CLIENT_ID, Endpoint, FakeIssuer, IssuedTokens, Options};
use serde_json::json;
use std::path::PathBuf;
use tempfile::TempDir;

/// A fake issuer on HTTPS, a login it minted, and its CA written to a file.
struct HttpsIssuer {
    issuer: FakeIssuer,
    tokens: IssuedTokens,
    /// The `auth.json` daemons start with.
    auth_json: String,
    _dir: TempDir,
    ca_path: PathBuf,
}

impl HttpsIssuer {
    fn start() -> HttpsIssuer {
        let issuer = FakeIssuer::start_with(Options { tls: true, ..Options::default() }).expect("fake issuer");
        assert!(issuer.url().starts_with("https://localhost:"), "{}", issuer.url());
        let dir = tempfile::Builder::new().prefix("cxca").tempdir_in("/tmp").unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, issuer.ca_pem().expect("a TLS issuer has a CA")).unwrap();
        let tokens = issuer.mint(&Account::default());
        let auth_json = tokens.auth_json(issuer.url());
        HttpsIssuer { issuer, tokens, auth_json, _dir: dir, ca_path }
    }

    /// A daemon logged in with the minted tokens, pointed at this issuer.
    fn daemon(&self) -> TestDaemonBuilder {
        TestDaemon::builder().issuer(self.issuer.url()).auth_json(self.auth_json.clone())
    }

    fn ca(&self) -> &str {
        self.ca_path.to_str().unwrap()
    }
}

/// A forced refresh succeeds over HTTPS: a new access token is served and stored, and one refresh was made.
fn assert_refreshes(https: &HttpsIssuer, daemon: &TestDaemon) {
    let mut conn = daemon.raw_conn();
    let status = conn.call("getAuthStatus", forced());
    let token = status["authToken"].as_str().unwrap_or_else(|| panic!("no token after the refresh: {status}"));
    assert_ne!(token, https.tokens.access_token, "the old token was served after a forced refresh");
    assert_eq!(https.issuer.count(Endpoint::Refresh), 1);
    let doc = read_auth_json(&daemon.auth_path());
    assert_eq!(doc["tokens"]["access_token"], token);
    assert!(https.issuer.is_current_refresh_token(doc["tokens"]["refresh_token"].as_str().unwrap()));
}

#[test]
fn with_codex_ca_certificate_a_refresh_over_https_succeeds() {
    let https = HttpsIssuer::start();
    let daemon = https.daemon().env("CODEX_CA_CERTIFICATE", https.ca()).start();
    assert_refreshes(&https, &daemon);
    assert!(daemon.stderr().contains("source_env=\"CODEX_CA_CERTIFICATE\""), "{}", daemon.stderr());
}

#[test]
fn without_the_ca_a_refresh_over_https_is_unavailable_and_the_old_token_stays() {
    let https = HttpsIssuer::start();
    let daemon = https.daemon().start();
    let mut conn = daemon.raw_conn();
    let error = conn.call_error("getAuthStatus", forced());
    assert_eq!((error["code"].clone(), error["data"]["reason"].clone()), (json!(-32003), json!("refreshUnavailable")));
    assert_eq!(https.issuer.count(Endpoint::Refresh), 0, "a request got through an untrusted TLS handshake");
    assert_eq!(conn.auth_status(true)["authToken"], https.tokens.access_token);
    assert_eq!(std::fs::read_to_string(daemon.auth_path()).unwrap(), https.auth_json, "auth.json changed");
}

#[test]
fn ssl_cert_file_is_used_when_codex_ca_certificate_is_empty() {
    let https = HttpsIssuer::start();
    let daemon = https.daemon().env("CODEX_CA_CERTIFICATE", "").env("SSL_CERT_FILE", https.ca()).start();
    assert_refreshes(&https, &daemon);
    assert!(daemon.stderr().contains("source_env=\"SSL_CERT_FILE\""), "{}", daemon.stderr());
}

#[test]
fn codex_ca_certificate_wins_over_ssl_cert_file() {
    // Were SSL_CERT_FILE consulted, its missing file would stop codexd at startup.
    let https = HttpsIssuer::start();
    let daemon =
        https.daemon().env("CODEX_CA_CERTIFICATE", https.ca()).env("SSL_CERT_FILE", "/nonexistent/ca.pem").start();
    assert_refreshes(&https, &daemon);
}

#[test]
fn a_browser_login_over_https_with_the_custom_ca() {
    let https = HttpsIssuer::start();
    let daemon = TestDaemon::builder().issuer(https.issuer.url()).env("CODEX_CA_CERTIFICATE", https.ca()).start();
    let mut sub = daemon.subscriber();
    let (login, page) = click_through(&mut sub, https.issuer.ca_pem());
    assert!(login.auth_url.starts_with(&format!("{}/oauth/authorize?", https.issuer.url())), "{}", login.auth_url);
    assert_eq!(page.status, 200, "{page:?}");
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    let doc = read_auth_json(&daemon.auth_path());
    assert_eq!(doc["tokens"]["oauth_provenance"], json!({"issuer": https.issuer.url(), "client_id": CLIENT_ID}));
    assert!(doc["OPENAI_API_KEY"].as_str().is_some_and(|k| k.starts_with("sk-fake-")), "{doc}");
}

/// Runs codexd with `env`, expects a startup failure, and returns its stderr.
fn startup_failure(env: &[(&str, &str)]) -> String {
    let out = run_codexd_to_exit(env, |_, _| {}).output;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "codexd started with {env:?}; stderr:\n{stderr}");
    assert!(out.status.code().is_some(), "codexd was killed by a signal: {:?}\n{stderr}", out.status);
    stderr
}

#[test]
fn an_unreadable_ca_bundle_stops_codexd_at_startup_naming_the_variable() {
    let stderr = startup_failure(&[("CODEX_CA_CERTIFICATE", "/nonexistent/ca.pem")]);
    assert!(
        stderr.contains("Failed to read CA certificate file /nonexistent/ca.pem selected by CODEX_CA_CERTIFICATE"),
        "{stderr}"
    );
    let stderr = startup_failure(&[("CODEX_CA_CERTIFICATE", ""), ("SSL_CERT_FILE", "/nonexistent/other.pem")]);
    assert!(
        stderr.contains("Failed to read CA certificate file /nonexistent/other.pem selected by SSL_CERT_FILE"),
        "{stderr}"
    );
}

#[test]
fn an_empty_ca_bundle_stops_codexd_at_startup_naming_the_variable() {
    let dir = tempfile::Builder::new().prefix("cxca").tempdir_in("/tmp").unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let path = empty.to_str().unwrap();
    let stderr = startup_failure(&[("CODEX_CA_CERTIFICATE", path)]);
    assert!(
        stderr.contains(&format!("Failed to load CA certificates from {path} selected by CODEX_CA_CERTIFICATE")),
        "{stderr}"
    );
    assert!(stderr.contains("no certificates found"), "{stderr}");
}
