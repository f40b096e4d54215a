//! [`Conn`]: a raw JSON-lines connection to codexd over a std `UnixStream`, independent of the client
//! library, so the tests check the wire itself.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a read waits before a test fails: long enough for a loaded machine, short enough to fail fast.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to codexd. Requests get increasing integer ids; notifications that arrive while a reply is
/// awaited are queued and handed out by [`Conn::next_notification`] in order.
#[derive(Debug)]
pub struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    partial: Vec<u8>,
    next_id: i64,
    queued: VecDeque<Value>,
}

impl Conn {
    /// Connects to the socket at `path`, with a read timeout of [`READ_TIMEOUT`].
    pub fn connect(path: &Path) -> io::Result<Conn> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader, partial: Vec::new(), next_id: 1, queued: VecDeque::new() })
    }

    /// The underlying stream, e.g. to shut down one direction.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Changes the read timeout (`None` blocks forever; avoid that in tests).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.stream.set_read_timeout(timeout).expect("set_read_timeout failed");
    }

    /// Writes `bytes` as they are (add the `\n` yourself).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes one JSON value as a line.
    pub fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).expect("JSON encodes");
        line.push(b'\n');
        self.send_bytes(&line).expect("write to codexd failed");
    }

    /// A fresh request id.
    pub fn fresh_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Reads the next message off the wire (ignoring the notification queue). `Ok(None)` at end of stream;
    /// an error of kind `WouldBlock`/`TimedOut` when nothing arrived within the read timeout. Panics on a line
    /// that is not JSON.
    pub fn read_message(&mut self) -> io::Result<Option<Value>> {
        loop {
            if let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                let text = String::from_utf8(line).expect("codexd sent a line that is not UTF-8");
                let value = serde_json::from_str(text.trim_end())
                    .unwrap_or_else(|e| panic!("codexd sent a line that is not JSON ({e}): {text:?}"));
                return Ok(Some(value));
            }
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                assert!(
                    self.partial.is_empty(),
                    "codexd closed the connection after an unterminated line: {:?}",
                    String::from_utf8_lossy(&self.partial)
                );
                return Ok(None);
            }
            let n = chunk.len();
            self.partial.extend_from_slice(chunk);
            self.reader.consume(n);
        }
    }

    /// Reads messages until the reply with `id`, queueing notifications; panics on a timeout, end of stream,
    /// or a reply to another id.
    pub fn read_response(&mut self, id: &Value) -> Value {
        loop {
            match self.read_message() {
                Ok(Some(message)) if is_notification(&message) => self.queued.push_back(message),
                Ok(Some(message)) => {
                    assert_eq!(&message["id"], id, "reply to an unexpected id: {message}");
                    return message;
                }
                Ok(None) => panic!("codexd closed the connection before answering request {id}"),
                Err(e) => panic!("no answer from codexd to request {id}: {e}"),
            }
        }
    }

    /// Sends a request (params omitted when `Value::Null`) and returns the whole response object.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.fresh_id();
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send(&message);
        self.read_response(&json!(id))
    }

    /// Calls `method` and returns its `result`; panics when codexd answers with an error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert_eq!(response["jsonrpc"], "2.0", "reply without \"jsonrpc\":\"2.0\": {response}");
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// Calls `method` and returns its `error` object; panics when codexd answers with a result.
    pub fn call_error(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        match response.get("error") {
            Some(error) => error.clone(),
            None => panic!("{method} was expected to fail: {response}"),
        }
    }

    /// Sends `initialize` (subscribing this connection to notifications) and returns its result.
    pub fn initialize(&mut self) -> Value {
        self.call("initialize", json!({"clientInfo": {"name": "codexd-e2e", "version": "0.0.0"}}))
    }

    /// `getAuthStatus` with or without the token.
    pub fn auth_status(&mut self, include_token: bool) -> Value {
        self.call("getAuthStatus", json!({"includeToken": include_token}))
    }

    /// `daemon/status`.
    pub fn daemon_status(&mut self) -> Value {
        self.call("daemon/status", Value::Null)
    }

    /// The next notification (queued first, then off the wire); panics on a reply, end of stream, or when none
    /// arrives within the read timeout.
    pub fn next_notification(&mut self) -> Value {
        if let Some(queued) = self.queued.pop_front() {
            return queued;
        }
        match self.read_message() {
            Ok(Some(message)) if is_notification(&message) => message,
            Ok(Some(message)) => panic!("expected a notification, got a reply: {message}"),
            Ok(None) => panic!("codexd closed the connection while a notification was expected"),
            Err(e) => panic!("no notification from codexd: {e}"),
        }
    }

    /// The next notification, which must be `account/updated`; returns its params.
    pub fn next_account_updated(&mut self) -> Value {
        let n = self.next_notification();
        assert_eq!(n["method"], "account/updated", "unexpected notification: {n}");
        assert_eq!(n["jsonrpc"], "2.0", "notification without \"jsonrpc\":\"2.0\": {n}");
        n["params"].clone()
    }

    /// Asserts that no message arrives within `quiet` (a negative check, not a synchronisation: follow it
    /// with an event that must be the next one).
    pub fn assert_silent_for(&mut self, quiet: Duration) {
        assert!(self.queued.is_empty(), "unexpected notification: {:?}", self.queued.front());
        self.set_read_timeout(Some(quiet));
        let read = self.read_message();
        self.set_read_timeout(Some(READ_TIMEOUT));
        match read {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            other => panic!("expected silence for {quiet:?}, got {other:?}"),
        }
    }

    /// How many notifications were received during calls and not yet handed out.
    pub fn pending_notifications(&self) -> usize {
        self.queued.len()
    }

    /// Reads until end of stream and returns every message received on the way (queued ones first);
    /// panics if the connection stays open past the read timeout.
    pub fn read_to_end(&mut self) -> Vec<Value> {
        let mut messages: Vec<Value> = self.queued.drain(..).collect();
        loop {
            match self.read_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => return messages,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return messages,
                Err(e) => panic!("codexd did not close the connection (got so far: {messages:?}): {e}"),
            }
        }
    }
}

/// Whether a message from codexd is a notification (a `method` and no `id`).
pub fn is_notification(message: &Value) -> bool {
    message.get("method").is_some() && message.get("id").is_none()
}
