//! Fault injection against the real daemon: malformed and oversized input, clients that go silent mid-line, and
//! the helpers the other `faults_*` modules share (`/proc` probes, reading a reply or a closed connection,
//! polling `daemon/status` for a connection count).
//!
//! Every test here checks two things: the faulty client gets the documented answer (or is dropped), and the
//! daemon goes on serving everybody else.

use codexd_e2e::{Conn, TestDaemon, apikey_auth_json};
use serde_json::{Value, json};
use std::io::{self, Read as _};
use std::time::{Duration, Instant};

/// A deadline for things that should happen at once (a connection counted or forgotten, a log line written).
pub(crate) const SOON: Duration = Duration::from_secs(5);

/// The frame limit of the protocol: 1 MiB, newline excluded.
const FRAME_LIMIT: usize = 1024 * 1024;

/// The resident set size of process `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("no VmRSS line in /proc/<pid>/status");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bad VmRSS line: {line}"))
}

/// How many file descriptors process `pid` has open.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}")).count()
}

/// `connections` of `daemon/status`, asked on `conn` (which is one of them).
pub(crate) fn connections(conn: &mut Conn) -> u64 {
    conn.daemon_status()["connections"].as_u64().expect("daemon/status without a numeric `connections`")
}

/// Polls `daemon/status` on `conn` until it counts exactly `expected` connections.
pub(crate) fn wait_for_connections(conn: &mut Conn, expected: u64, what: &str) {
    let end = Instant::now() + SOON;
    loop {
        let last = connections(conn);
        if last == expected {
            return;
        }
        assert!(Instant::now() < end, "{what}: daemon/status still counts {last} connections, expected {expected}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The next message on `conn`, or `None` when the daemon closed the connection (end of stream or reset).
/// Panics when nothing arrives within the read timeout.
pub(crate) fn next_message_or_closed(conn: &mut Conn) -> Option<Value> {
    match conn.read_message() {
        Ok(message) => message,
        Err(e) if is_reset(&e) => None,
        Err(e) => panic!("neither a message nor the end of the connection: {e}"),
    }
}

/// Whether `e` says the peer is gone (`EPIPE`, `ECONNRESET`, ...).
pub(crate) fn is_reset(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
}

/// Checks an error reply: `"jsonrpc":"2.0"`, the id, the code, `data.reason`, a message, and no result.
fn assert_error_reply(reply: &Value, id: &Value, code: i64, reason: &str, case: &str) {
    assert_eq!(reply["jsonrpc"], "2.0", "{case}: reply without \"jsonrpc\":\"2.0\": {reply}");
    assert_eq!(&reply["id"], id, "{case}: wrong id in {reply}");
    assert!(reply.get("result").is_none(), "{case}: an error reply must not carry a result: {reply}");
    let error = &reply["error"];
    assert_eq!(error["code"], code, "{case}: wrong code in {reply}");
    assert_eq!(error["data"]["reason"], reason, "{case}: wrong data.reason in {reply}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: no message in {reply}");
}

/// One line that is not a good request, and the error it must get.
struct BadLine {
    case: &'static str,
    bytes: Vec<u8>,
    code: i64,
    reason: &'static str,
    id: Value,
}

fn bad(case: &'static str, bytes: &[u8], code: i64, reason: &'static str, id: Value) -> BadLine {
    BadLine { case, bytes: bytes.to_vec(), code, reason, id }
}

fn bad_lines() -> Vec<BadLine> {
    const PARSE: i64 = -32700;
    const INVALID: i64 = -32600;
    const METHOD: i64 = -32601;
    const PARAMS: i64 = -32602;
    vec![
        bad(
            "unterminated object",
            br#"{"jsonrpc":"2.0","id":1,"method":"daemon/status""#,
            PARSE,
            "parseError",
            Value::Null,
        ),
        bad("truncated after a key", br#"{"jsonrpc":"2.0","id":2,"method":"#, PARSE, "parseError", Value::Null),
        bad("not JSON at all", b"hello codexd", PARSE, "parseError", Value::Null),
        bad(
            "a batch array",
            br#"[{"jsonrpc":"2.0","id":3,"method":"daemon/status"}]"#,
            INVALID,
            "invalidRequest",
            Value::Null,
        ),
        bad("an empty array", b"[]", INVALID, "invalidRequest", Value::Null),
        bad("a number", b"42", INVALID, "invalidRequest", Value::Null),
        bad("a string", br#""getAuthStatus""#, INVALID, "invalidRequest", Value::Null),
        bad("null", b"null", INVALID, "invalidRequest", Value::Null),
        bad(
            "includeToken of the wrong type",
            br#"{"jsonrpc":"2.0","id":4,"method":"getAuthStatus","params":{"includeToken":"yes"}}"#,
            PARAMS,
            "invalidParams",
            json!(4),
        ),
        bad(
            "refreshToken of the wrong type",
            br#"{"jsonrpc":"2.0","id":"rt","method":"getAuthStatus","params":{"refreshToken":1}}"#,
            PARAMS,
            "invalidParams",
            json!("rt"),
        ),
        bad(
            "initialize without clientInfo",
            br#"{"jsonrpc":"2.0","id":"init-bare","method":"initialize","params":{}}"#,
            PARAMS,
            "invalidParams",
            json!("init-bare"),
        ),
        bad(
            "initialize with clientInfo of the wrong type",
            br#"{"jsonrpc":"2.0","id":6,"method":"initialize","params":{"clientInfo":"e2e"}}"#,
            PARAMS,
            "invalidParams",
            json!(6),
        ),
        bad(
            "an unknown method",
            br#"{"jsonrpc":"2.0","id":7,"method":"account/teleport","params":{}}"#,
            METHOD,
            "methodNotFound",
            json!(7),
        ),
        bad(
            "invalid UTF-8 inside a string",
            b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"daemon/status\",\"params\":{\"x\":\"\xff\xfe\"}}",
            PARSE,
            "parseError",
            Value::Null,
        ),
        bad("bytes that are not UTF-8", b"\xc3\x28\xa0\xa1\xff", PARSE, "parseError", Value::Null),
        bad(
            "jsonrpc 1.0",
            br#"{"jsonrpc":"1.0","id":9,"method":"daemon/status"}"#,
            INVALID,
            "invalidRequest",
            json!(9),
        ),
        bad(
            "jsonrpc as a number",
            br#"{"jsonrpc":2.0,"id":10,"method":"daemon/status"}"#,
            INVALID,
            "invalidRequest",
            json!(10),
        ),
        bad("no method", br#"{"jsonrpc":"2.0","id":11}"#, INVALID, "invalidRequest", json!(11)),
        bad(
            "a method that is not a string",
            br#"{"jsonrpc":"2.0","id":12,"method":5}"#,
            INVALID,
            "invalidRequest",
            json!(12),
        ),
        bad(
            "an id that is an object",
            br#"{"jsonrpc":"2.0","id":{"n":13},"method":"daemon/status"}"#,
            INVALID,
            "invalidRequest",
            Value::Null,
        ),
    ]
}

#[test]
fn every_malformed_line_gets_its_error_code_and_the_connection_keeps_serving() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-faults-malformed"));
    let mut conn = daemon.raw_conn();
    for line in bad_lines() {
        let mut bytes = line.bytes.clone();
        bytes.push(b'\n');
        conn.send_bytes(&bytes).unwrap_or_else(|e| panic!("{}: cannot write the line: {e}", line.case));
        let reply = next_message_or_closed(&mut conn)
            .unwrap_or_else(|| panic!("{}: codexd closed the connection instead of answering", line.case));
        assert_error_reply(&reply, &line.id, line.code, line.reason, line.case);
        // The same connection still answers a good request.
        let status = conn.call("getAuthStatus", json!({"includeToken": true}));
        assert_eq!(status["authToken"], "sk-e2e-faults-malformed", "{}: then getAuthStatus gave {status}", line.case);
    }
    // And the whole sequence pipelined in one write gets its answers in order.
    let mut batch = Vec::new();
    for line in bad_lines() {
        batch.extend_from_slice(&line.bytes);
        batch.push(b'\n');
    }
    conn.send_bytes(&batch).expect("cannot write the pipelined lines");
    for line in bad_lines() {
        let reply = next_message_or_closed(&mut conn).unwrap_or_else(|| panic!("{}: connection closed", line.case));
        assert_error_reply(&reply, &line.id, line.code, line.reason, &format!("pipelined {}", line.case));
    }
    assert_eq!(conn.daemon_status()["connections"], 1);
}

/// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":{"pad":"xxx…"}}` of exactly `len` bytes.
fn padded_request(len: usize, id: u64, method: &str) -> Vec<u8> {
    let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{"pad":""#);
    let tail = r#""}}"#;
    let pad = len.checked_sub(head.len() + tail.len()).expect("len too small");
    let mut line = Vec::with_capacity(len + 1);
    line.extend_from_slice(head.as_bytes());
    line.resize(head.len() + pad, b'x');
    line.extend_from_slice(tail.as_bytes());
    assert_eq!(line.len(), len);
    line
}

/// Reads the `frameTooLarge` reply and then the end of the connection.
fn assert_frame_too_large_then_closed(conn: &mut Conn, case: &str) {
    let reply =
        next_message_or_closed(conn).unwrap_or_else(|| panic!("{case}: closed without the frameTooLarge reply"));
    assert_error_reply(&reply, &Value::Null, -32600, "frameTooLarge", case);
    if let Some(more) = next_message_or_closed(conn) {
        panic!("{case}: the connection stayed open after frameTooLarge and sent {more}");
    }
}

#[test]
fn a_two_mib_line_gets_frame_too_large_and_is_closed_while_others_are_served() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-faults-frame"));
    let mut other = daemon.raw_conn();
    assert_eq!(other.auth_status(true)["authToken"], "sk-e2e-faults-frame");

    let mut big = daemon.raw_conn();
    let mut line = padded_request(2 * FRAME_LIMIT, 1, "getAuthStatus");
    line.push(b'\n');
    let mut writer = big.stream().try_clone().expect("cannot clone the stream");
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &line));
    // Meanwhile, the other client is served.
    let mut served_meanwhile = 0;
    while !sender.is_finished() && served_meanwhile < 1000 {
        assert_eq!(other.auth_status(true)["authToken"], "sk-e2e-faults-frame");
        served_meanwhile += 1;
    }
    match sender.join().expect("the writer thread panicked") {
        Ok(()) => {}
        // The daemon may close before it has read the whole line.
        Err(e) if is_reset(&e) => {}
        Err(e) => panic!("writing the 2 MiB line failed: {e}"),
    }
    assert_frame_too_large_then_closed(&mut big, "2 MiB line");

    assert_eq!(other.auth_status(true)["authToken"], "sk-e2e-faults-frame");
    wait_for_connections(&mut other, 1, "after the 2 MiB line");
}

#[test]
fn a_line_of_exactly_one_mib_is_parsed_and_one_byte_more_is_too_large() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-faults-1mib"));
    let mut conn = daemon.raw_conn();

    let mut line = padded_request(FRAME_LIMIT, 41, "getAuthStatus");
    line.push(b'\n');
    conn.send_bytes(&line).expect("cannot write the 1 MiB line");
    let reply = conn.read_response(&json!(41));
    assert_eq!(reply["result"]["authMethod"], "apikey", "a 1 MiB getAuthStatus got {reply}");

    let mut line = padded_request(FRAME_LIMIT, 42, "account/teleport");
    line.push(b'\n');
    conn.send_bytes(&line).expect("cannot write the 1 MiB line");
    let reply = conn.read_response(&json!(42));
    assert_error_reply(&reply, &json!(42), -32601, "methodNotFound", "1 MiB unknown method");

    // With `\r\n` the line is still 1 MiB.
    let mut line = padded_request(FRAME_LIMIT, 43, "daemon/status");
    line.extend_from_slice(b"\r\n");
    conn.send_bytes(&line).expect("cannot write the 1 MiB line");
    let reply = conn.read_response(&json!(43));
    assert_eq!(reply["result"]["connections"], 1, "a 1 MiB daemon/status ending in \\r\\n got {reply}");

    let mut line = padded_request(FRAME_LIMIT + 1, 44, "getAuthStatus");
    line.push(b'\n');
    match conn.send_bytes(&line) {
        Ok(()) => {}
        Err(e) if is_reset(&e) => {}
        Err(e) => panic!("writing the 1 MiB + 1 line failed: {e}"),
    }
    assert_frame_too_large_then_closed(&mut conn, "1 MiB + 1 byte line");
    assert_eq!(daemon.raw_conn().auth_status(true)["authToken"], "sk-e2e-faults-1mib");
}

#[test]
fn silent_and_half_line_clients_do_not_block_others_or_shutdown() {
    let mut daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-faults-silent"));
    let mut silent = daemon.raw();
    let mut half = daemon.raw_conn();
    half.send_bytes(br#"{"jsonrpc":"2.0","id":1,"method":"getAuthSt"#).expect("cannot write half a line");
    let mut silent_subscriber = daemon.subscriber();
    let mut half_subscriber = daemon.subscriber();
    half_subscriber.send_bytes(br#"{"jsonrpc":"2.0","id":99,"met"#).expect("cannot write half a line");

    let mut other = daemon.raw_conn();
    wait_for_connections(&mut other, 5, "silent clients are counted");
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(other.auth_status(true)["authToken"], "sk-e2e-faults-silent");
        assert!(started.elapsed() < Duration::from_secs(1), "getAuthStatus took {:?}", started.elapsed());
    }
    assert_eq!(daemon.codexctl(&["token"]).stdout, b"sk-e2e-faults-silent\n");

    let started = Instant::now();
    assert_eq!(other.call("daemon/shutdown", Value::Null), json!({}));
    let status = daemon.wait_exit(Duration::from_secs(3));
    assert!(status.success(), "codexd exited with {status} after daemon/shutdown");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(!daemon.socket().exists(), "the socket was not removed");

    // Subscribers got the goodbye; plain connections were just closed; the half line was never answered.
    for (name, sub) in [("silent subscriber", &mut silent_subscriber), ("half-line subscriber", &mut half_subscriber)] {
        let messages = sub.read_to_end();
        let last = messages.last().unwrap_or_else(|| panic!("{name}: no daemon/shuttingDown"));
        assert_eq!(last["method"], "daemon/shuttingDown", "{name}: {messages:?}");
        assert!(messages.iter().all(|m| m.get("id").is_none()), "{name}: a reply to half a line: {messages:?}");
    }
    assert_eq!(half.read_to_end(), Vec::<Value>::new(), "half-line client");
    let mut rest = Vec::new();
    match silent.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "silent client received {:?}", String::from_utf8_lossy(&rest)),
        Err(e) if is_reset(&e) => {}
        Err(e) => panic!("silent client: the daemon did not close the connection: {e}"),
    }
}
