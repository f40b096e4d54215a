//! Secrets never leave through a side door: a daemon logging at `trace` goes through every path (ChatGPT, legacy
//! and API-key files, an external change, a corrupt file holding a key, logout, bad requests carrying
//! token-like strings, shutdown), and its whole stderr holds none of the secrets it saw; `codexctl status`
//! prints none; `codexctl token` prints the token on stdout only; error replies never quote one back.

use codexd_e2e::session::assert_no_secrets;
use codexd_e2e::{
    AuthFixture, Conn, SECRET_MARK, TestDaemon, apikey_auth_json, chatgpt_auth_json, fake_jwt,
    legacy_chatgpt_auth_json, write_atomically,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Every secret a test used, to search output for.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: impl Into<String>) {
        self.0.push(secret.into());
    }

    /// A JWT, and its payload segment on its own (a log of part of a token is a leak too).
    fn add_jwt(&mut self, jwt: &str) {
        let payload = jwt.split('.').nth(1).expect("a JWT has a payload segment");
        self.add(payload);
        self.add(jwt);
    }

    fn add_fixture(&mut self, f: &AuthFixture) {
        self.add_jwt(&f.access_token());
        self.add_jwt(&f.id_token());
        self.add(f.refresh_token());
        if let Some(key) = &f.api_key {
            self.add(key.clone());
        }
    }

    /// Panics naming the first secret (or [`SECRET_MARK`]) found in `text` and the line it is on.
    fn assert_absent(&self, text: &str, what: &str) {
        assert_no_secrets(text, &self.0, what);
    }
}

fn fixture(tag: &str, email: &str, account: &str, api_key: Option<String>) -> AuthFixture {
    AuthFixture { tag: tag.into(), email: email.into(), account_id: account.into(), api_key, ..AuthFixture::default() }
}

/// `codexctl token` prints exactly the token on stdout; `codexctl status [--json]` print no secret.
fn assert_codexctl_keeps_secrets(daemon: &TestDaemon, token: &str, secrets: &Secrets, phase: &str) {
    let out = daemon.codexctl(&["token"]);
    assert_eq!(out.status.code(), Some(0), "{phase}: codexctl token: {}", out.status);
    assert!(out.stdout == format!("{token}\n").as_bytes(), "{phase}: codexctl token did not print just the token");
    assert!(out.stderr.is_empty(), "{phase}: codexctl token wrote to stderr: {}", String::from_utf8_lossy(&out.stderr));
    for args in [&["status"][..], &["status", "--json"][..]] {
        let out = daemon.codexctl(args);
        assert_eq!(out.status.code(), Some(0), "{phase}: codexctl {args:?}: {}", out.status);
        assert!(!out.stdout.is_empty(), "{phase}: codexctl {args:?} printed nothing");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        secrets.assert_absent(&text, &format!("{phase}: codexctl {args:?}"));
    }
}

fn token(conn: &mut Conn) -> String {
    conn.auth_status(true)["authToken"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn no_secret_reaches_the_trace_log_or_codexctl_status() {
    let mut secrets = Secrets::default();
    let first = fixture("leakA", "ann@example.com", "acct-leak-a", Some(format!("sk-proj-{SECRET_MARK}-leak-a")));
    secrets.add_fixture(&first);
    let mut daemon = TestDaemon::builder().log("trace").auth_json(chatgpt_auth_json(&first)).start();
    let mut sub = daemon.subscriber();
    let mut conn = daemon.raw_conn();

    // A ChatGPT login: the token, the account, the daemon's status, codexctl.
    assert!(token(&mut conn) == first.access_token(), "the first login's token is not served");
    assert_eq!(conn.call("account/read", json!({}))["account"]["accountId"], "acct-leak-a");
    assert_eq!(conn.daemon_status()["authMethod"], "chatgpt");
    assert_codexctl_keeps_secrets(&daemon, &first.access_token(), &secrets, "ChatGPT login");

    // Another program logs in as someone else (a legacy file), then with an API key.
    let second = fixture("leakB", "bob@example.com", "acct-leak-b", None);
    secrets.add_fixture(&second);
    write_atomically(daemon.home(), &legacy_chatgpt_auth_json(&second));
    assert_eq!(sub.next_account_updated()["accountId"], "acct-leak-b");
    assert!(token(&mut conn) == second.access_token(), "the second login's token is not served");
    assert_eq!(conn.call("account/read", json!({}))["account"]["type"], "chatgpt");

    let key = format!("sk-{SECRET_MARK}-leak-apikey-0123456789");
    secrets.add(key.clone());
    write_atomically(daemon.home(), &apikey_auth_json(&key));
    assert_eq!(sub.next_account_updated()["authMode"], "apikey");
    assert_eq!(token(&mut conn), key);
    assert_codexctl_keeps_secrets(&daemon, &key, &secrets, "API key");

    // A corrupt file that holds a key: reported, never quoted.
    let broken_key = format!("sk-{SECRET_MARK}-leak-corrupt-abcdefghijklmnopqrstuvwxyz");
    secrets.add(broken_key[..broken_key.len() - 8].to_owned());
    let broken = apikey_auth_json(&broken_key);
    write_atomically(daemon.home(), &broken[..broken.len() - 10]);
    let update = sub.next_account_updated();
    assert_eq!(update["authError"]["reason"], "authFileCorrupt", "{update}");
    let status = conn.daemon_status();
    assert_eq!(status["authError"]["reason"], "authFileCorrupt", "{status}");
    let auth = conn.auth_status(true);
    assert_eq!(auth["authToken"], Value::Null, "{auth}");
    let out = daemon.codexctl(&["status"]);
    assert_eq!(out.status.code(), Some(1), "codexctl status with a corrupt file: {}", out.status);
    secrets.assert_absent(&String::from_utf8_lossy(&out.stdout), "codexctl status with a corrupt file");
    secrets.assert_absent(&String::from_utf8_lossy(&out.stderr), "codexctl status's stderr with a corrupt file");
    secrets.assert_absent(&format!("{update}{status}{auth}"), "the replies about the corrupt file");

    // A new login, then a logout through codexd.
    let third = fixture("leakC", "cy@example.com", "acct-leak-c", Some(format!("sk-proj-{SECRET_MARK}-leak-c")));
    secrets.add_fixture(&third);
    write_atomically(daemon.home(), &chatgpt_auth_json(&third));
    assert_eq!(sub.next_account_updated()["accountId"], "acct-leak-c");
    assert_eq!(conn.call("account/logout", Value::Null), json!({}));
    assert_eq!(sub.next_account_updated()["reason"], "logout");

    // Requests that carry token-like strings where they do not belong.
    let jwt_like = fake_jwt(&json!({"sub": format!("{SECRET_MARK}-jwt-in-params")}));
    secrets.add_jwt(&jwt_like);
    let key_like = format!("sk-{SECRET_MARK}-in-params-0123456789");
    secrets.add(key_like.clone());
    let bad_requests = [
        json!({"jsonrpc": "2.0", "id": 101, "method": "getAuthStatus", "params": {"includeToken": jwt_like}}),
        json!({"jsonrpc": "2.0", "id": 102, "method": "account/login/start",
               "params": {"type": "apiKey", "apiKey": key_like}}),
        json!({"jsonrpc": "2.0", "id": 103, "method": "account/nope", "params": {"token": jwt_like}}),
        json!({"jsonrpc": "1.0", "id": 104, "method": "getAuthStatus", "params": {"token": key_like}}),
        json!({"jsonrpc": "2.0", "id": 105, "method": "initialize",
               "params": {"clientInfo": {"name": "leak", "version": "0"}, "apiKey": key_like}}),
    ];
    for request in &bad_requests {
        conn.send(request);
        let reply = conn.read_response(&request["id"]);
        assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
    }
    conn.send_bytes(format!("{{\"id\":106,\"method\":\"getAuthStatus\",\"params\":{{\"t\":\"{key_like}\n").as_bytes())
        .expect("cannot write a broken line");
    let reply = conn.read_message().expect("no reply to a broken line").expect("closed instead of a reply");
    assert_eq!(reply["error"]["code"], -32700, "{reply}");

    // Shut down, then read everything the daemon wrote.
    assert_eq!(conn.call("daemon/shutdown", Value::Null), json!({}));
    let exit = daemon.wait_exit(Duration::from_secs(5));
    assert!(exit.success(), "codexd exited with {exit}");
    let stderr = daemon.stderr();
    assert!(stderr.contains("DEBUG"), "CODEXD_LOG=trace logged nothing at debug level:\n{stderr}");
    secrets.assert_absent(&stderr, "codexd's trace log");
}

#[test]
fn error_replies_never_quote_a_secret_sent_in_params() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let secret = format!("sk-{SECRET_MARK}-echo-0123456789");
    let cases = [
        ("getAuthStatus", json!({"includeToken": secret})),
        ("getAuthStatus", json!({"refreshToken": secret})),
        ("initialize", json!({"clientInfo": secret})),
        ("account/login/start", json!({"type": secret})),
        ("account/login/start", json!({"type": "apiKey", "apiKey": [secret]})),
        ("account/login/cancel", json!({"loginId": [secret]})),
    ];
    let mut quoted = Vec::new();
    for (method, params) in cases {
        let error = conn.call_error(method, params.clone());
        assert_eq!(error["code"], -32602, "{method} {params}: {error}");
        if error.to_string().contains(SECRET_MARK) {
            quoted.push(format!("{method} {params} -> {error}"));
        }
    }
    assert!(quoted.is_empty(), "error messages quote the secret sent in params:\n{}", quoted.join("\n"));
}
