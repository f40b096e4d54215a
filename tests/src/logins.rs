//! Helpers for the login tests: start a login over the socket, play the user's browser at the fake issuer
//! ([`click_through`]), wait for a notification by method with a deadline, read query strings, check the
//! `auth.json` a login wrote, and run a `codexd` that is expected to refuse to start.

use crate::bin::bin_path;
use crate::conn::{Conn, READ_TIMEOUT};
use crate::daemon::{TestDaemon, codexd_isolation_env, system_config_dir_in};
use crate::process::{clean_command, run_with_deadline};
use codexd_fake_issuer::{FakeIssuer, Options};
use serde_json::{Value, json};
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub use codexd_fake_issuer::browser::Visit;

/// How long a login may take to report its end once the browser is done (or its timeout has passed).
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(10);

/// The Codex CLI's refusal of an API-key login when the policy wants ChatGPT.
pub const API_DISABLED: &str = "API key login is disabled. Use ChatGPT login instead.";
/// The Codex CLI's refusal of a ChatGPT login when the policy wants an API key.
pub const CHATGPT_DISABLED: &str = "ChatGPT login is disabled. Use API key login instead.";
/// The Codex CLI's message when a stored ChatGPT login is removed because the policy wants an API key.
pub const API_REQUIRED: &str = "API key login is required, but ChatGPT is currently being used. Logging out.";
/// The Codex CLI's message when a stored API key is removed because the policy wants ChatGPT.
pub const CHATGPT_REQUIRED: &str = "ChatGPT login is required, but an API key is currently being used. Logging out.";

/// Asserts a JSON-RPC policy refusal (`-32002 policyRefused`) with `message`.
#[track_caller]
pub fn assert_policy_refused(error: &Value, message: &str) {
    assert_eq!(*error, json!({"code": -32002, "message": message, "data": {"reason": "policyRefused"}}));
}

/// A daemon pointed at `issuer`, and a subscriber to start logins on.
pub fn login_daemon(issuer: &FakeIssuer) -> (TestDaemon, Conn) {
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let subscriber = daemon.subscriber();
    (daemon, subscriber)
}

/// A fake issuer that hands out the device-code interval `"0"` (codexd then polls every 100 ms, its floor) and
/// approves a device login after `auto_approve_after` pending polls (`Some(0)`: at the first poll; `None`: only
/// when the test approves it).
pub fn device_issuer(auto_approve_after: Option<u32>) -> FakeIssuer {
    FakeIssuer::start_with(Options {
        device_interval_secs: 0,
        device_auto_approve_after: auto_approve_after,
        ..Options::default()
    })
    .expect("cannot start the fake issuer")
}

/// A browser login that `account/login/start {type:"chatgpt"}` started.
#[derive(Debug, Clone)]
pub struct BrowserLogin {
    /// `loginId`.
    pub login_id: String,
    /// `authUrl`: the issuer's authorize URL.
    pub auth_url: String,
}

impl BrowserLogin {
    /// The authorize URL's query parameters, decoded, in order.
    pub fn params(&self) -> Vec<(String, String)> {
        query_params(&self.auth_url)
    }

    /// One parameter of the authorize URL; panics when it is missing.
    pub fn param(&self, name: &str) -> String {
        param(&self.params(), name).unwrap_or_else(|| panic!("the authorize URL has no {name}: {}", self.auth_url))
    }

    /// The daemon's callback URL (`redirect_uri`).
    pub fn redirect_uri(&self) -> String {
        self.param("redirect_uri")
    }

    /// The port of the daemon's callback listener.
    pub fn callback_port(&self) -> u16 {
        let uri = self.redirect_uri();
        let rest = uri.strip_prefix("http://127.0.0.1:").unwrap_or_else(|| panic!("unexpected redirect_uri {uri}"));
        let port = rest.split('/').next().unwrap_or_default();
        port.parse().unwrap_or_else(|_| panic!("no port in redirect_uri {uri}"))
    }
}

/// A device-code login that `account/login/start {type:"chatgptDeviceCode"}` started.
#[derive(Debug, Clone)]
pub struct DeviceLogin {
    /// `loginId`.
    pub login_id: String,
    /// `verificationUrl`.
    pub verification_url: String,
    /// `userCode`.
    pub user_code: String,
}

fn string_field(result: &Value, name: &str) -> String {
    result[name].as_str().unwrap_or_else(|| panic!("no string {name} in {result}")).to_owned()
}

/// Starts a browser login on `conn` and checks the result's shape.
pub fn start_browser_login(conn: &mut Conn) -> BrowserLogin {
    let result = conn.call("account/login/start", json!({"type": "chatgpt"}));
    assert_eq!(result["type"], "chatgpt", "{result}");
    BrowserLogin { login_id: string_field(&result, "loginId"), auth_url: string_field(&result, "authUrl") }
}

/// Starts a device-code login on `conn` and checks the result's shape.
pub fn start_device_login(conn: &mut Conn) -> DeviceLogin {
    let result = conn.call("account/login/start", json!({"type": "chatgptDeviceCode"}));
    assert_eq!(result["type"], "chatgptDeviceCode", "{result}");
    DeviceLogin {
        login_id: string_field(&result, "loginId"),
        verification_url: string_field(&result, "verificationUrl"),
        user_code: string_field(&result, "userCode"),
    }
}

/// Plays the user's browser: opens `url` and follows the redirects (issuer, then the daemon's callback);
/// `ca_pem` is the fake issuer's CA when it serves HTTPS. Panics when a request fails outright.
pub fn visit(url: &str, ca_pem: Option<&str>) -> Visit {
    codexd_fake_issuer::browser::visit(url, ca_pem).unwrap_or_else(|e| panic!("the browser could not open {url}: {e}"))
}

/// Starts a browser login on `conn` and clicks through it at once; returns the login and where the browser ended.
pub fn click_through(conn: &mut Conn, ca_pem: Option<&str>) -> (BrowserLogin, Visit) {
    let login = start_browser_login(conn);
    let visit = visit(&login.auth_url, ca_pem);
    (login, visit)
}

/// Reads notifications on `conn` until one satisfies `done`, within `deadline`; returns every notification read,
/// the matching one last. Panics on a reply, the end of the stream, or when the deadline passes.
pub fn notifications_until(conn: &mut Conn, deadline: Duration, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        let next = if conn.pending_notifications() > 0 {
            conn.next_notification()
        } else {
            let left = end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            conn.set_read_timeout(Some(left));
            let read = conn.read_message();
            conn.set_read_timeout(Some(READ_TIMEOUT));
            match read {
                Ok(Some(message)) => {
                    assert!(crate::conn::is_notification(&message), "expected a notification, got a reply: {message}");
                    message
                }
                Ok(None) => panic!("codexd closed the connection; notifications so far: {seen:?}"),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    panic!("no matching notification within {deadline:?}; notifications so far: {seen:?}")
                }
                Err(e) => panic!("reading notifications failed ({e}); so far: {seen:?}"),
            }
        };
        let matched = done(&next);
        seen.push(next);
        if matched {
            return seen;
        }
    }
}

/// Waits for the next notification named `method` (others are skipped) and returns its params.
pub fn wait_for_notification(conn: &mut Conn, method: &str, deadline: Duration) -> Value {
    let seen = notifications_until(conn, deadline, |n| n["method"] == method);
    seen.last().expect("at least the matching notification")["params"].clone()
}

/// Waits for `account/login/completed` of `login_id` (`null` for API-key logins) and returns its params; every
/// notification before it is returned too, in order.
pub fn wait_login_completed(conn: &mut Conn, login_id: &Value, deadline: Duration) -> (Vec<Value>, Value) {
    let mut seen = notifications_until(conn, deadline, |n| {
        n["method"] == "account/login/completed" && &n["params"]["loginId"] == login_id
    });
    let completed = seen.pop().expect("the matching notification");
    assert_eq!(completed["jsonrpc"], "2.0", "{completed}");
    (seen, completed["params"].clone())
}

/// Waits for the completion of `login_id`, asserts it failed, and returns its error text.
pub fn wait_login_failed(conn: &mut Conn, login_id: &str) -> String {
    let (_, completed) = wait_login_completed(conn, &json!(login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], false, "the login was expected to fail: {completed}");
    completed["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a failed login without an error text: {completed}"))
        .to_owned()
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
pub fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| panic!("not UTF-8 after decoding {text:?}: {e}"))
}

/// The decoded query parameters of `url`, in order.
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    form_decode(query)
}

/// The first value of `name` in `params`.
pub fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Writes `$CODEX_HOME/config.toml` (the login policy is read at each login start).
pub fn write_config(home: &Path, toml: &str) {
    std::fs::write(home.join("config.toml"), toml).expect("cannot write config.toml");
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display())).permissions().mode()
        & 0o777
}

/// Reads `auth.json` at `path`, checks it is mode 0600 and laid out as the Codex CLI writes it (2-space pretty
/// JSON, no trailing newline), and returns it parsed (key order kept).
pub fn read_auth_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(mode(path), 0o600, "auth.json must be 0600");
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("auth.json is not JSON ({e}): {text}"));
    assert_eq!(serde_json::to_string_pretty(&doc).unwrap(), text, "auth.json is not laid out as the Codex CLI does");
    doc
}

/// The keys of a JSON object, in order.
pub fn keys(object: &Value) -> Vec<&str> {
    object.as_object().unwrap_or_else(|| panic!("not an object: {object}")).keys().map(String::as_str).collect()
}

/// The payload of a JWT (no signature check): the session kit's, re-exported for the login tests.
pub use crate::session::jwt_payload;

/// Whether `text` is unpadded base64url.
pub fn is_base64url(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `codexd` run that stopped by itself (see [`run_codexd_to_exit`]). Its directories live as long as it.
#[derive(Debug)]
pub struct ExitedRun {
    /// The exit status and what it printed.
    pub output: Output,
    /// Its `CODEX_HOME`.
    pub home: PathBuf,
    /// Its system config directory (`CODEXD_SYSTEM_CONFIG_DIR`), which exists.
    pub system_dir: PathBuf,
    /// The socket it was told to serve.
    pub socket: PathBuf,
    _scratch: TempDir,
}

/// Runs `codexd` with a clean environment, [`codexd_isolation_env`] and then `env`, on a fresh socket, `CODEX_HOME`
/// and system config directory (both made, then prepared by `prepare(home, system_dir)`), expecting it to stop
/// by itself (a startup error); kills it and panics if it is still running after 10 s.
pub fn run_codexd_to_exit(env: &[(&str, &str)], prepare: impl FnOnce(&Path, &Path)) -> ExitedRun {
    let scratch = tempfile::Builder::new().prefix("cxs").tempdir_in("/tmp").expect("cannot create a scratch dir");
    let home = scratch.path().join("home");
    let system_dir = system_config_dir_in(scratch.path());
    std::fs::create_dir(&home).expect("cannot create CODEX_HOME");
    std::fs::create_dir_all(&system_dir).expect("cannot create the system config dir");
    prepare(&home, &system_dir);
    let socket = scratch.path().join("s").join("codexd.sock");
    let mut cmd = clean_command(bin_path("codexd"), scratch.path());
    cmd.envs(codexd_isolation_env(scratch.path(), None)).arg("--socket").arg(&socket).arg("--codex-home").arg(&home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = run_with_deadline(cmd, Duration::from_secs(10));
    ExitedRun { output, home, system_dir, socket, _scratch: scratch }
}
