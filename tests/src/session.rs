//! Refresh sessions: a [`FakeIssuer`] on loopback, a [`TestDaemon`] pointed at it with small backoff and HTTP
//! timeouts, `auth.json` files made from the issuer's own logins (expired, near expiry, edited), and the tools
//! the refresh tests share (many concurrent requests, a direct redemption at the issuer, a log search for
//! secrets).

use crate::conn::Conn;
use crate::daemon::{TestDaemon, TestDaemonBuilder};
use crate::fixtures::{SECRET_MARK, fake_jwt_signed, write_atomically};
use codexd_fake_issuer::{Endpoint, FakeIssuer, IssuedTokens, Options};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// `CODEXD_REFRESH_BACKOFF_MIN_MS` of a session: retries after a transient failure come after 25-50 ms, then
/// 50-100 ms, ...
pub const BACKOFF_MIN_MS: u64 = 50;
/// `CODEXD_REFRESH_BACKOFF_MAX_MS` of a session.
pub const BACKOFF_MAX_MS: u64 = 400;
/// `CODEXD_HTTP_TIMEOUT_MS` of a session: long enough for a loaded machine, short enough for hang tests.
pub const HTTP_TIMEOUT_MS: u64 = 1000;

/// A fake issuer whose access tokens live `lifetime` (whole seconds in `exp`).
pub fn start_issuer(lifetime: Duration) -> FakeIssuer {
    FakeIssuer::start_with(Options { access_token_lifetime: lifetime, ..Options::default() })
        .unwrap_or_else(|e| panic!("fake issuer: cannot start on 127.0.0.1: {e}"))
}

/// A daemon builder pointed at `issuer`, with the session's backoff and HTTP timeout (override them with a later
/// [`TestDaemonBuilder::env`]).
pub fn daemon_for(issuer: &FakeIssuer) -> TestDaemonBuilder {
    TestDaemon::builder()
        .issuer(issuer.url())
        .env("CODEXD_REFRESH_BACKOFF_MIN_MS", BACKOFF_MIN_MS.to_string())
        .env("CODEXD_REFRESH_BACKOFF_MAX_MS", BACKOFF_MAX_MS.to_string())
        .env("CODEXD_HTTP_TIMEOUT_MS", HTTP_TIMEOUT_MS.to_string())
}

/// A logged-in refresh session: the issuer, one of its logins, and a daemon serving that login.
#[derive(Debug)]
pub struct Session {
    /// The daemon (declared first: it is stopped before the issuer goes away).
    pub daemon: TestDaemon,
    /// The fake issuer every refresh goes to.
    pub issuer: FakeIssuer,
    /// The login stored in `auth.json` when the daemon started.
    pub login: IssuedTokens,
    /// The bytes of that `auth.json`.
    pub auth_json: Vec<u8>,
}

impl Session {
    /// An issuer with access tokens of `lifetime`, and a daemon logged in with a fresh login minted by it.
    pub fn start(lifetime: Duration) -> Session {
        Session::start_with(lifetime, |_, auth| auth, |builder| builder)
    }

    /// Like [`Session::start`], with `prepare` run before the daemon starts (it may script faults, and returns the
    /// minted `auth.json` as it should be stored, e.g. through [`expire`] or [`aging`]) and the daemon builder passed through
    /// `configure`.
    pub fn start_with(
        lifetime: Duration,
        prepare: impl FnOnce(&FakeIssuer, Vec<u8>) -> Vec<u8>,
        configure: impl FnOnce(TestDaemonBuilder) -> TestDaemonBuilder,
    ) -> Session {
        let issuer = start_issuer(lifetime);
        let login = issuer.mint(&codexd_fake_issuer::Account::default());
        let auth_json = prepare(&issuer, login.auth_json(issuer.url()).into_bytes());
        let daemon = configure(daemon_for(&issuer)).auth_json(auth_json.clone()).start();
        Session { daemon, issuer, login, auth_json }
    }

    /// Like [`Session::start_with`], but the daemon starts logged out and a subscriber connects first; then the
    /// `auth.json` is written as another program would (temp file and rename), and the subscriber has received
    /// its `account/updated{reason:"external"}`. Nothing the daemon does with that login can be missed.
    pub fn start_external(
        lifetime: Duration,
        prepare: impl FnOnce(&FakeIssuer, Vec<u8>) -> Vec<u8>,
        configure: impl FnOnce(TestDaemonBuilder) -> TestDaemonBuilder,
    ) -> (Session, Conn) {
        let issuer = start_issuer(lifetime);
        let login = issuer.mint(&codexd_fake_issuer::Account::default());
        let auth_json = prepare(&issuer, login.auth_json(issuer.url()).into_bytes());
        let daemon = configure(daemon_for(&issuer)).start();
        let mut subscriber = daemon.subscriber();
        write_atomically(daemon.home(), &auth_json);
        let update = subscriber.next_account_updated();
        assert_eq!(
            (update["reason"].as_str(), update["authMode"].as_str()),
            (Some("external"), Some("chatgpt")),
            "{update}"
        );
        (Session { daemon, issuer, login, auth_json }, subscriber)
    }

    /// The refresh tokens presented at the issuer's refresh endpoint, in order.
    pub fn presented_refresh_tokens(&self) -> Vec<String> {
        presented_refresh_tokens(&self.issuer)
    }

    /// Requests at the refresh endpoint so far.
    pub fn refreshes(&self) -> usize {
        self.issuer.count(Endpoint::Refresh)
    }
}

/// The refresh tokens presented at `issuer`'s refresh endpoint, in order.
pub fn presented_refresh_tokens(issuer: &FakeIssuer) -> Vec<String> {
    issuer.requests_to(Endpoint::Refresh).iter().map(|r| r.param("refresh_token").unwrap_or_default()).collect()
}

/// Asserts that no refresh token was ever presented twice at `issuer` (the message names the position only, never
/// a token); returns the refresh tokens presented, in order.
#[track_caller]
pub fn assert_presented_distinct(issuer: &FakeIssuer) -> Vec<String> {
    let presented = presented_refresh_tokens(issuer);
    for (i, token) in presented.iter().enumerate() {
        assert!(!presented[..i].contains(token), "refresh token #{i} was presented twice");
    }
    presented
}

/// `getAuthStatus {includeToken: true, refreshToken: true}`: a forced refresh.
pub fn forced() -> Value {
    json!({"includeToken": true, "refreshToken": true})
}

/// A daemon whose HTTP timeout (10 s) outlasts the issuer delays the refresh tests script (the session default is
/// [`HTTP_TIMEOUT_MS`]).
pub fn patient(builder: TestDaemonBuilder) -> TestDaemonBuilder {
    builder.env("CODEXD_HTTP_TIMEOUT_MS", "10000")
}

/// The current Unix time in seconds.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The payload of a JWT; panics when `token` is not one.
pub fn jwt_payload(token: &str) -> Value {
    codexd_fake_issuer::jwt::decode_payload(token).unwrap_or_else(|| panic!("not a JWT: {token:?}"))
}

/// The `exp` claim of a JWT (Unix seconds).
pub fn jwt_exp(token: &str) -> i64 {
    jwt_payload(token)["exp"].as_i64().unwrap_or_else(|| panic!("a JWT without a numeric exp: {token:?}"))
}

/// Edits an `auth.json` document (key order is kept) and writes it back as the Codex CLI does: 2-space pretty
/// JSON, no trailing newline.
pub fn edit_auth_json(auth_json: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(auth_json).expect("auth.json is JSON");
    edit(&mut doc);
    serde_json::to_vec_pretty(&doc).expect("JSON encodes")
}

/// `auth.json` with its access token rewritten to have `exp` (Unix seconds), `iat` one hour before it, and a
/// signature carrying [`SECRET_MARK`]; every other field stays.
pub fn with_access_exp(auth_json: &[u8], exp: i64) -> Vec<u8> {
    edit_auth_json(auth_json, |doc| {
        let token = doc["tokens"]["access_token"].as_str().expect("tokens.access_token").to_owned();
        let mut payload = jwt_payload(&token);
        payload["exp"] = json!(exp);
        payload["iat"] = json!(exp - 3600);
        payload["nbf"] = json!(exp - 3600);
        doc["tokens"]["access_token"] = json!(fake_jwt_signed(&payload, &format!("{SECRET_MARK}-access-rewritten")));
    })
}

/// `auth.json` with `last_refresh` set to Unix time `at` (RFC 3339 with nanoseconds, as the Codex CLI writes).
pub fn with_last_refresh(auth_json: &[u8], at: i64) -> Vec<u8> {
    let at = chrono::DateTime::from_timestamp(at, 0).expect("valid time");
    edit_auth_json(auth_json, |doc| {
        doc["last_refresh"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    })
}

/// `auth.json` whose access token expired a minute ago.
pub fn expire(auth_json: &[u8]) -> Vec<u8> {
    with_access_exp(auth_json, now_secs() - 60)
}

/// `auth.json` of a token issued an hour ago that has `left` seconds left: inside the daemon's 10-minute margin
/// (an hour-long lifetime does not clamp it), and inside the Codex CLI's 5-minute window when `left` < 300.
pub fn aging(auth_json: &[u8], left: i64) -> Vec<u8> {
    let now = now_secs();
    with_last_refresh(&with_access_exp(auth_json, now + left), now + left - 3600)
}

/// The access token in an `auth.json` (or in its compact keyring form).
pub fn access_token_of(auth_json: &[u8]) -> String {
    let doc: Value = serde_json::from_slice(auth_json).expect("auth.json is JSON");
    doc["tokens"]["access_token"].as_str().expect("tokens.access_token").to_owned()
}

/// The refresh token in an `auth.json` (or in its compact keyring form).
pub fn refresh_token_of(auth_json: &[u8]) -> String {
    let doc: Value = serde_json::from_slice(auth_json).expect("auth.json is JSON");
    doc["tokens"]["refresh_token"].as_str().expect("tokens.refresh_token").to_owned()
}

/// `auth.json` with the three tokens of an issuer answer ([`redeem`]'s body) and `last_refresh` now, as a Codex
/// CLI writes it after its own refresh; panics when the answer lacks one of the tokens.
pub fn with_issued(auth_json: &[u8], issued: &Value) -> Vec<u8> {
    edit_auth_json(auth_json, |doc| {
        for name in ["id_token", "access_token", "refresh_token"] {
            let token = issued[name].as_str().unwrap_or_else(|| panic!("no {name} in the issuer's answer"));
            doc["tokens"][name] = json!(token);
        }
        doc["last_refresh"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    })
}

/// The same login refreshed by another program (a Codex CLI): `auth_json`'s refresh token redeemed at `issuer`,
/// the new tokens in, and `last_refresh` now (see [`with_issued`]).
pub fn refreshed_elsewhere(issuer: &FakeIssuer, auth_json: &[u8]) -> Vec<u8> {
    let (status, answer) = redeem(issuer.url(), &refresh_token_of(auth_json));
    assert_eq!(status, 200, "the issuer refused the redemption: {answer}");
    with_issued(auth_json, &answer)
}

/// Redeems `refresh_token` at `issuer_url` directly, as another program would (HTTP/1.1 over a loopback TCP
/// stream, the Codex CLI's JSON body); returns the status and the JSON body.
pub fn redeem(issuer_url: &str, refresh_token: &str) -> (u16, Value) {
    let address = issuer_url.strip_prefix("http://").expect("a plain-HTTP loopback issuer");
    let body = json!({
        "client_id": codexd_fake_issuer::CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_reason": "forced",
        "refresh_token": refresh_token,
    })
    .to_string();
    let mut stream = TcpStream::connect(address).expect("cannot connect to the fake issuer");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("set_read_timeout failed");
    let request = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("cannot send to the fake issuer");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("cannot read the fake issuer's answer");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status line");
    let payload = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `wanted` (as far as the hard limit allows).
pub fn raise_fd_limit(wanted: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current < wanted) {
        let current = limit.maximum.map_or(wanted, |max| max.min(wanted));
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(current), maximum: limit.maximum });
    }
}

/// One reply of [`fan_out`], and when it arrived.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The whole JSON-RPC response.
    pub response: Value,
    /// When it was read.
    pub at: Instant,
}

/// The outcome of [`fan_out`].
#[derive(Debug)]
pub struct FanOut {
    /// One reply per connection, in connection order.
    pub replies: Vec<Reply>,
    /// When the last request had been written.
    pub all_sent: Instant,
    /// The same moment on the wall clock (to compare with [`codexd_fake_issuer::RecordedRequest::received_at`]).
    pub all_sent_wall: SystemTime,
}

/// Opens `n` connections to `socket`, then writes one `method` request with `params` on each (from `threads`
/// threads, all connections open before the first write), then reads every reply.
pub fn fan_out(socket: &Path, n: usize, threads: usize, method: &str, params: &Value) -> FanOut {
    raise_fd_limit(n as u64 + 256);
    let streams: Vec<UnixStream> = (0..n)
        .map(|i| {
            let stream = UnixStream::connect(socket).unwrap_or_else(|e| panic!("connection {i} refused: {e}"));
            stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set_read_timeout failed");
            stream
        })
        .collect();
    let request = {
        let mut line = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .expect("JSON encodes");
        line.push(b'\n');
        line
    };
    let per_thread = n.div_ceil(threads.max(1));
    let barrier = std::sync::Barrier::new(threads.max(1));
    let (replies, sent) = std::thread::scope(|scope| {
        let mut streams = streams.into_iter();
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let chunk: Vec<UnixStream> = streams.by_ref().take(per_thread).collect();
                let (request, barrier) = (&request, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for mut stream in &chunk {
                        stream.write_all(request).expect("cannot send a request");
                    }
                    let sent = (Instant::now(), SystemTime::now());
                    let replies: Vec<Reply> = chunk
                        .iter()
                        .map(|stream| {
                            let mut line = String::new();
                            BufReader::new(stream).read_line(&mut line).expect("no reply from codexd");
                            let response = serde_json::from_str(&line)
                                .unwrap_or_else(|e| panic!("codexd sent a line that is not JSON ({e}): {line:?}"));
                            Reply { response, at: Instant::now() }
                        })
                        .collect();
                    (replies, sent)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        let mut all_sent = None::<(Instant, SystemTime)>;
        for handle in handles {
            let (replies, sent) = handle.join().expect("a fan-out thread panicked");
            all.extend(replies);
            all_sent = Some(all_sent.map_or(sent, |s| (s.0.max(sent.0), s.1.max(sent.1))));
        }
        (all, all_sent.expect("at least one thread"))
    });
    FanOut { replies, all_sent: sent.0, all_sent_wall: sent.1 }
}

/// Every secret of an `auth.json` (the three tokens, each JWT's payload segment, the API key), to search logs for.
pub fn secrets_of(auth_json: &[u8]) -> Vec<String> {
    let doc: Value = serde_json::from_slice(auth_json).expect("auth.json is JSON");
    let mut secrets = Vec::new();
    for name in ["id_token", "access_token", "refresh_token"] {
        if let Some(token) = doc["tokens"][name].as_str() {
            if let Some(payload) = token.split('.').nth(1).filter(|_| token.split('.').count() == 3) {
                secrets.push(payload.to_owned());
            }
            secrets.push(token.to_owned());
        }
    }
    if let Some(key) = doc["OPENAI_API_KEY"].as_str() {
        secrets.push(key.to_owned());
    }
    secrets
}

/// Panics naming the first of `secrets` (or [`SECRET_MARK`]) found in `log`, and the line it is on.
pub fn assert_no_secrets(log: &str, secrets: &[String], what: &str) {
    for secret in secrets.iter().map(String::as_str).chain([SECRET_MARK]) {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("{what} contains the secret {secret:?} on this line:\n{line}");
        }
    }
}

/// Panics if the daemon's stderr (all its runs) holds any of `secrets` (or [`SECRET_MARK`]).
pub fn assert_stderr_clean(daemon: &TestDaemon, secrets: &[String]) {
    assert_no_secrets(&daemon.stderr(), secrets, "codexd's stderr");
}

/// Whether process `pid` has `path` open (one of `/proc/<pid>/fd/*` links to it): e.g. codexd waiting for
/// `auth.lock`, which it keeps open only while it holds or waits for the lock.
pub fn process_has_open(pid: u32, path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    entries.flatten().any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == path))
}
