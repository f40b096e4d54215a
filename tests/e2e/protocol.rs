//! The socket protocol: handshake, the answers to every method, framing and JSON-RPC errors, and the promise
//! that secrets never reach the logs.

use codexd_e2e::{
    AuthFixture, Conn, SECRET_MARK, TestDaemon, apikey_auth_json, chatgpt_auth_json, parse_rfc3339, wait_until,
    write_atomically,
};
use serde_json::{Value, json};
use std::io::Write as _;
use std::time::Duration;

fn home_string(daemon: &TestDaemon) -> String {
    daemon.home().canonicalize().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn initialize_answers_server_info_protocol_version_and_codex_home() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let result = conn.initialize();
    assert_eq!(result["serverInfo"], json!({"name": "codexd", "version": env!("CARGO_PKG_VERSION")}));
    assert_eq!(result["protocolVersion"], 1);
    assert_eq!(result["codexHome"], home_string(&daemon));
}

#[test]
fn requests_are_answered_without_initialize() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut conn = daemon.raw_conn();
    let status = conn.auth_status(true);
    assert_eq!(status["authMethod"], "chatgpt");
    assert_eq!(status["authToken"], fixture.access_token());
    assert_eq!(conn.call("account/read", json!({}))["account"]["type"], "chatgpt");
}

#[test]
fn requests_without_the_jsonrpc_field_get_replies_with_it() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    conn.send(&json!({"id": 7, "method": "getAuthStatus", "params": {"includeToken": false}}));
    let reply = conn.read_response(&json!(7));
    assert_eq!(reply["jsonrpc"], "2.0");
    assert_eq!(reply["result"]["authMethod"], Value::Null);

    conn.send(&json!({"id": "req-a", "method": "account/read"}));
    let reply = conn.read_response(&json!("req-a"));
    assert_eq!(reply["jsonrpc"], "2.0");
    assert_eq!(reply["result"], json!({"account": null, "requiresOpenaiAuth": true}));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-pipe"));
    let mut conn = daemon.raw_conn();
    let mut batch = Vec::new();
    for (id, method) in [(1, "getAuthStatus"), (2, "account/read"), (3, "daemon/status"), (4, "getAuthStatus")] {
        batch.extend(serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method})).unwrap());
        batch.push(b'\n');
    }
    conn.send_bytes(&batch).unwrap();
    let ids: Vec<Value> = (0..4).map(|_| conn.read_message().unwrap().expect("a reply")["id"].clone()).collect();
    assert_eq!(ids, [json!(1), json!(2), json!(3), json!(4)]);
}

#[test]
fn logged_out_status_and_account_are_null() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    assert_eq!(
        conn.auth_status(true),
        json!({"authMethod": null, "authToken": null, "requiresOpenaiAuth": true, "accountId": null,
               "planType": null, "expiresAt": null, "generation": 0})
    );
    assert_eq!(conn.call("account/read", json!({})), json!({"account": null, "requiresOpenaiAuth": true}));
}

#[test]
fn chatgpt_status_hides_the_token_unless_asked() {
    let fixture = AuthFixture { plan: "pro".into(), account_id: "acct-hide-1".into(), ..AuthFixture::default() };
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut conn = daemon.raw_conn();

    let without = conn.auth_status(false);
    assert_eq!(without["authMethod"], "chatgpt");
    assert_eq!(without["authToken"], Value::Null, "the token must not be sent without includeToken");
    assert_eq!(without["requiresOpenaiAuth"], true);
    assert_eq!(without["accountId"], "acct-hide-1");
    assert_eq!(without["planType"], "pro");
    assert_eq!(parse_rfc3339(without["expiresAt"].as_str().expect("expiresAt")), fixture.expires_at());
    assert_eq!(without["generation"], 0);
    assert!(without.get("authError").is_none_or(Value::is_null), "{without}");

    let with = conn.call("getAuthStatus", json!({"includeToken": true}));
    assert_eq!(with["authToken"], fixture.access_token());
    let mut rest = with.clone();
    rest["authToken"] = Value::Null;
    assert_eq!(rest, without, "includeToken changes nothing but authToken");

    let absent = conn.call("getAuthStatus", Value::Null);
    assert_eq!(absent["authToken"], Value::Null, "no params means no token");
}

#[test]
fn api_key_status_returns_the_key_and_no_account() {
    let key = "sk-test-SECRETMARK-apikey";
    let daemon = TestDaemon::with_auth(apikey_auth_json(key));
    let mut conn = daemon.raw_conn();
    let status = conn.auth_status(true);
    assert_eq!(status["authMethod"], "apikey");
    assert_eq!(status["authToken"], key);
    assert_eq!(status["accountId"], Value::Null);
    assert_eq!(status["planType"], Value::Null);
    assert_eq!(status["expiresAt"], Value::Null);
    assert_eq!(status["requiresOpenaiAuth"], true);
    assert_eq!(conn.auth_status(false)["authToken"], Value::Null);
    assert_eq!(
        conn.call("account/read", json!({})),
        json!({"account": {"type": "apiKey"}, "requiresOpenaiAuth": true})
    );
}

#[test]
fn account_read_names_the_chatgpt_account() {
    let fixture = AuthFixture {
        email: "grace@example.org".into(),
        plan: "team".into(),
        account_id: "acct-read-7".into(),
        ..AuthFixture::default()
    };
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let account = daemon.raw_conn().call("account/read", json!({}));
    assert_eq!(
        account,
        json!({"account": {"type": "chatgpt", "email": "grace@example.org", "planType": "team",
                           "accountId": "acct-read-7"},
               "requiresOpenaiAuth": true})
    );
}

#[test]
fn daemon_status_reports_identity_paths_counts_and_credentials() {
    let fixture = AuthFixture::default();
    let mut daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let _idle = daemon.raw_conn();
    let _subscriber = daemon.subscriber();
    let mut conn = daemon.raw_conn();
    // Earlier connections (the readiness probe) may still be winding down: ask until the counts settle.
    let mut status = Value::Null;
    wait_until(Duration::from_secs(5), "3 connections and 1 subscriber", || {
        status = conn.daemon_status();
        status["connections"] == 3 && status["subscribers"] == 1
    });
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["pid"], daemon.pid());
    assert!(status["uptimeSeconds"].as_u64().is_some_and(|s| s < 600), "{status}");
    assert_eq!(status["store"], "file");
    assert_eq!(status["codexHome"], home_string(&daemon));
    assert_eq!(status["socket"], daemon.socket().to_str().unwrap());
    assert_eq!(status["generation"], 0);
    assert_eq!(status["authMethod"], "chatgpt");
    let last_refresh = parse_rfc3339(status["lastRefresh"].as_str().expect("lastRefresh"));
    assert_eq!(last_refresh.timestamp(), parse_rfc3339(&fixture.last_refresh).timestamp(), "{status}");
    if let Some(next) = status["nextRefresh"].as_str() {
        parse_rfc3339(next);
    }
    assert_eq!(status["authError"], Value::Null);
    for key in ["version", "pid", "uptimeSeconds", "store", "codexHome", "socket", "connections", "subscribers"] {
        assert!(status.get(key).is_some(), "daemon/status lacks {key}: {status}");
    }
    for key in ["generation", "authMethod", "lastRefresh", "nextRefresh", "authError"] {
        assert!(status.get(key).is_some(), "daemon/status lacks {key}: {status}");
    }
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn login_params_are_checked_and_unknown_logins_are_not_found() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    for params in [json!({"type": "password"}), json!({"type": "apiKey"}), json!({"type": "apiKey", "apiKey": "  "})] {
        let error = conn.call_error("account/login/start", params.clone());
        assert_eq!(error["code"], -32602, "{params}: {error}");
    }
    assert_eq!(conn.call("account/login/cancel", json!({"loginId": "nope"})), json!({"status": "notFound"}));
    assert!(!daemon.auth_path().exists(), "a refused login must not store anything");
}

#[test]
fn a_forced_refresh_without_a_reachable_issuer_is_unavailable_and_the_token_stays() {
    // The kit points the daemon's issuer at a closed loopback port.
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::with_auth(chatgpt_auth_json(&fixture));
    let mut conn = daemon.raw_conn();
    let error = conn.call_error("getAuthStatus", json!({"includeToken": true, "refreshToken": true}));
    assert_eq!(error["code"], -32003, "{error}");
    assert_eq!(error["data"]["reason"], "refreshUnavailable", "{error}");
    assert_eq!(conn.auth_status(true)["authToken"], fixture.access_token().as_str());
}

#[test]
fn unknown_methods_get_method_not_found_and_the_connection_stays_usable() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let error = conn.call_error("account/frobnicate", json!({}));
    assert_eq!(error["code"], -32601, "{error}");
    assert_eq!(error["data"]["reason"], "methodNotFound", "{error}");
    assert_eq!(conn.auth_status(false)["generation"], 0);
}

#[test]
fn invalid_params_get_invalid_params() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let error = conn.call_error("getAuthStatus", json!({"includeToken": "yes please"}));
    assert_eq!(error["code"], -32602, "{error}");
    let error = conn.call_error("initialize", json!({"clientInfo": 3}));
    assert_eq!(error["code"], -32602, "{error}");
}

#[test]
fn malformed_lines_get_json_rpc_errors_and_the_connection_stays_usable() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let cases: [(&[u8], i64); 4] = [
        (b"{not json\n", -32700),
        (b"[1,2,3]\n", -32600),
        (b"{\"id\":5}\n", -32600),
        (b"{\"id\":6,\"method\":\"getAuthStatus\",\"jsonrpc\":\"1.0\"}\n", -32600),
    ];
    for (line, code) in cases {
        conn.send_bytes(line).unwrap();
        let reply = conn.read_message().unwrap().expect("an error reply");
        assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
        assert_eq!(reply["error"]["code"], code, "{}: {reply}", String::from_utf8_lossy(line));
    }
    assert_eq!(conn.auth_status(false)["requiresOpenaiAuth"], true);
}

#[test]
fn a_line_over_one_mebibyte_is_refused_and_the_connection_closed() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let mut line = br#"{"id":1,"method":"getAuthStatus","params":{"pad":""#.to_vec();
    line.resize(codexd_proto::MAX_FRAME_LEN + 64, b'x');
    line.extend_from_slice(b"\"}}\n");
    // The daemon may close before it has read everything; the write error does not matter.
    let _ = conn.send_bytes(&line);
    let messages = conn.read_to_end();
    assert_eq!(messages.len(), 1, "one error reply, then the end: {messages:?}");
    assert_eq!(messages[0]["error"]["code"], -32600, "{}", messages[0]);
    assert_eq!(messages[0]["error"]["data"]["reason"], "frameTooLarge", "{}", messages[0]);
    // The daemon itself is fine.
    assert_eq!(daemon.raw_conn().auth_status(false)["generation"], 0);
}

#[test]
fn a_line_just_under_the_limit_is_accepted() {
    let daemon = TestDaemon::start();
    let mut conn = daemon.raw_conn();
    let head = br#"{"id":1,"method":"getAuthStatus","params":{"pad":""#;
    let tail = br#""}}"#;
    let mut line = head.to_vec();
    line.resize(codexd_proto::MAX_FRAME_LEN - tail.len(), b'x');
    line.extend_from_slice(tail);
    assert_eq!(line.len(), codexd_proto::MAX_FRAME_LEN);
    line.push(b'\n');
    conn.send_bytes(&line).unwrap();
    let reply = conn.read_response(&json!(1));
    assert_eq!(reply["result"]["requiresOpenaiAuth"], true, "{reply}");
}

#[test]
fn a_client_may_send_a_request_in_pieces() {
    let daemon = TestDaemon::start();
    let mut stream = daemon.raw();
    let request = br#"{"jsonrpc":"2.0","id":42,"method":"daemon/status"}"#;
    for part in request.chunks(7) {
        stream.write_all(part).unwrap();
        stream.flush().unwrap();
    }
    stream.write_all(b"\n").unwrap();
    let mut conn_reader = std::io::BufReader::new(stream);
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut conn_reader, &mut reply).unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["id"], 42);
    assert_eq!(reply["result"]["pid"], daemon.pid());
}

#[test]
fn unusable_auth_json_is_reported_as_an_auth_error() {
    let daemon = TestDaemon::with_auth(b"{\"auth_mode\": \"chatgpt\", \"tokens\": {".to_vec());
    let mut conn = daemon.raw_conn();
    let status = conn.auth_status(true);
    assert_eq!(status["authMethod"], Value::Null, "{status}");
    assert_eq!(status["authToken"], Value::Null, "{status}");
    let problem = &status["authError"];
    assert!(problem["reason"].as_str().is_some_and(|r| !r.is_empty()), "{status}");
    assert!(problem["message"].as_str().is_some_and(|m| !m.is_empty()), "{status}");
    let daemon_status = conn.daemon_status();
    assert_eq!(daemon_status["authError"], *problem, "{daemon_status}");
    assert_eq!(daemon_status["authMethod"], Value::Null);
    assert_eq!(conn.call("account/read", json!({}))["account"], Value::Null);
}

#[test]
fn secrets_never_appear_in_the_logs_even_at_trace_level() {
    let fixture = AuthFixture { api_key: Some(format!("sk-proj-{SECRET_MARK}-key")), ..AuthFixture::default() };
    let daemon = TestDaemon::builder().log("trace").auth_json(chatgpt_auth_json(&fixture)).start();
    let mut subscriber = daemon.subscriber();
    let mut conn = daemon.raw_conn();
    assert_eq!(conn.auth_status(true)["authToken"], fixture.access_token());
    conn.call("account/read", json!({}));
    conn.daemon_status();
    write_atomically(daemon.home(), &chatgpt_auth_json(&fixture.with_tag("b")));
    assert_eq!(subscriber.next_account_updated()["reason"], "external");
    write_atomically(daemon.home(), &apikey_auth_json(&format!("sk-{SECRET_MARK}-other")));
    assert_eq!(subscriber.next_account_updated()["authMode"], "apikey");
    assert_eq!(conn.auth_status(true)["authToken"], format!("sk-{SECRET_MARK}-other"));
    conn.call("account/logout", json!({}));
    assert_eq!(subscriber.next_account_updated()["reason"], "logout");
    let logs = daemon.stderr();
    assert!(!logs.trim().is_empty(), "the daemon logged nothing at trace level");
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(SECRET_MARK)).collect();
    assert!(leaks.is_empty(), "secrets in the daemon's log:\n{}", leaks.join("\n"));
}

#[test]
fn a_closed_client_does_not_disturb_the_others() {
    let daemon = TestDaemon::start();
    {
        let mut quitter = daemon.raw_conn();
        quitter.send_bytes(br#"{"id":1,"method":"daemon/status"}"#).unwrap();
        // Gone mid-request, without a newline.
    }
    {
        let mut half = Conn::connect(daemon.socket()).unwrap();
        half.send_bytes(b"{\"id\":1,\"method\":\"daemon/status\"}\n").unwrap();
        half.stream().shutdown(std::net::Shutdown::Both).unwrap();
    }
    let mut conn = daemon.raw_conn();
    assert_eq!(conn.daemon_status()["pid"], daemon.pid());
}
