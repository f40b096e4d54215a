//! [`Client`]: a blocking client, one request at a time, no runtime and no thread.

use crate::event::Event;
use crate::{ClientError, socket, wire};
use codexd_proto::methods::{
    AccountReadParams, AccountReadResult, CancelStatus, ClientInfo, DaemonStatusResult, GetAuthStatusParams,
    GetAuthStatusResult, InitializeParams, InitializeResult, LoginCancelParams, LoginCancelResult, LoginCompleted,
    LoginStartParams, LoginStartResult, PROTOCOL_VERSION, StoreMigrateParams, StoreMigrateResult, method, notification,
};
use codexd_proto::{FrameDecoder, Notification, RequestId, ServerMessage};
use interprocess::local_socket::Stream;
use interprocess::local_socket::traits::Stream as _;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes read from the socket at a time; a typical reply fits in one read.
const READ_CHUNK: usize = 8 * 1024;

/// The shortest read timeout a wait sets (a zero timeout is an error on Unix).
const MIN_WAIT_SLICE: Duration = Duration::from_millis(1);

/// A blocking connection to codexd. Calls are sequential; notifications that arrive while a call waits for its
/// reply are queued and returned by [`Client::next_notification`].
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    decoder: FrameDecoder,
    next_id: i64,
    queued: VecDeque<Notification>,
    /// The timeout set with [`Client::set_read_timeout`], restored after a wait with a deadline.
    read_timeout: Option<Duration>,
}

impl Client {
    /// Connects to the socket (or pipe) at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let unreachable = |source| ClientError::Unreachable { path: path.to_path_buf(), source };
        let name = socket::socket_name(path).map_err(unreachable)?;
        let stream = Stream::connect(name).map_err(unreachable)?;
        Ok(Client { stream, decoder: FrameDecoder::new(), next_id: 1, queued: VecDeque::new(), read_timeout: None })
    }

    /// Bounds every following read: a read that waits longer fails with [`ClientError::Io`] (kind `WouldBlock`
    /// or `TimedOut`, depending on the platform). `None` waits forever, the default.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_recv_timeout(timeout).map_err(ClientError::Io)?;
        self.read_timeout = timeout;
        Ok(())
    }

    /// Sends one request and waits for its reply; `params: None` sends no params (write `None::<&()>`).
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: Option<&P>,
    ) -> Result<R, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = wire::encode_request(id, method, params)?;
        self.stream.write_all(&line).map_err(write_error)?;
        loop {
            match self.read_message()? {
                None => return Err(ClientError::Disconnected),
                Some(ServerMessage::Notification(n)) => self.queued.push_back(n),
                Some(ServerMessage::Response(r)) => match r.id {
                    Some(RequestId::Number(got)) if got == id => return wire::decode_outcome(method, r.outcome),
                    // A reply the daemon could not attach to a request (e.g. a frame it could not parse).
                    None => return wire::decode_outcome(method, r.outcome),
                    // A late reply to an earlier call that timed out.
                    Some(_) => {}
                },
            }
        }
    }

    /// The next notification: queued ones first, then a blocking read. `Ok(None)` when the daemon closed the
    /// connection cleanly. Only connections that called `initialize` receive notifications.
    pub fn next_notification(&mut self) -> Result<Option<Notification>, ClientError> {
        if let Some(n) = self.queued.pop_front() {
            return Ok(Some(n));
        }
        loop {
            match self.read_message()? {
                None => return Ok(None),
                Some(ServerMessage::Notification(n)) => return Ok(Some(n)),
                // Late replies to calls that timed out.
                Some(ServerMessage::Response(_)) => {}
            }
        }
    }

    /// [`Client::next_notification`], decoded as an [`Event`].
    pub fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        Ok(self.next_notification()?.map(Event::from_notification))
    }

    /// `initialize`: the handshake; from now on this connection receives notifications.
    pub fn initialize(&mut self, name: &str, version: &str) -> Result<InitializeResult, ClientError> {
        let params = initialize_params(name, version);
        self.call(method::INITIALIZE, Some(&params))
    }

    /// `getAuthStatus`: who is logged in; with `include_token`, the bearer token too.
    pub fn get_auth_status(&mut self, include_token: bool) -> Result<GetAuthStatusResult, ClientError> {
        let params = GetAuthStatusParams { include_token: Some(include_token), refresh_token: None };
        self.call(method::GET_AUTH_STATUS, Some(&params))
    }

    /// `account/read`: the account behind the credentials.
    pub fn account_read(&mut self) -> Result<AccountReadResult, ClientError> {
        self.call(method::ACCOUNT_READ, Some(&AccountReadParams::default()))
    }

    /// `account/logout`: removes the credentials everywhere.
    pub fn logout(&mut self) -> Result<(), ClientError> {
        self.call::<(), IgnoredAny>(method::LOGOUT, None).map(drop)
    }

    /// `daemon/status`: the daemon's own state.
    pub fn daemon_status(&mut self) -> Result<DaemonStatusResult, ClientError> {
        self.call::<(), _>(method::DAEMON_STATUS, None)
    }

    /// `daemon/shutdown`: asks the daemon to shut down; it closes the connection soon after answering.
    pub fn shutdown(&mut self) -> Result<(), ClientError> {
        self.call::<(), IgnoredAny>(method::DAEMON_SHUTDOWN, None).map(drop)
    }

    /// `store/migrate`: moves the stored login to the credential store `to` (`keyring` or `file`).
    pub fn store_migrate(&mut self, to: &str) -> Result<StoreMigrateResult, ClientError> {
        self.call(method::STORE_MIGRATE, Some(&StoreMigrateParams { to: to.to_owned() }))
    }

    /// `getAuthStatus {includeToken, refreshToken}`: forces a refresh of the ChatGPT tokens, then answers with the
    /// new token. A refresh the issuer refused for good comes back as a result with `authError.reason ==
    /// "refreshFailed"`; one that failed for now (issuer unreachable) as [`ClientError::Daemon`] with code `-32003`.
    pub fn refresh(&mut self) -> Result<GetAuthStatusResult, ClientError> {
        self.call(method::GET_AUTH_STATUS, Some(&refresh_params()))
    }

    /// `account/login/start`: stores an API key at once, or starts a browser or device-code login whose end
    /// arrives as `account/login/completed` (call [`Client::initialize`] first, then [`Client::wait_for_login`]).
    pub fn login_start(&mut self, params: &LoginStartParams) -> Result<LoginStartResult, ClientError> {
        self.call(method::LOGIN_START, Some(params))
    }

    /// `account/login/cancel`: stops a login in progress; [`CancelStatus::NotFound`] when it already ended.
    pub fn login_cancel(&mut self, login_id: &str) -> Result<CancelStatus, ClientError> {
        let params = LoginCancelParams { login_id: login_id.to_owned() };
        self.call::<_, LoginCancelResult>(method::LOGIN_CANCEL, Some(&params)).map(|r| r.status)
    }

    /// Reads notifications until `account/login/completed` arrives for `login_id` (needs [`Client::initialize`]).
    ///
    /// Other notifications stay queued for [`Client::next_notification`]. Fails with
    /// [`ClientError::LoginTimedOut`] at `deadline` (the connection stays usable, so a caller may wait again in
    /// slices), [`ClientError::ShuttingDown`] on `daemon/shuttingDown`, [`ClientError::Disconnected`] when the
    /// connection ends. The read timeout of [`Client::set_read_timeout`] is restored afterwards.
    pub fn wait_for_login(&mut self, login_id: &str, deadline: Instant) -> Result<LoginCompleted, ClientError> {
        if let Some(end) = self.take_queued_login_end(login_id) {
            return end;
        }
        let outcome = self.read_until_login_end(login_id, deadline);
        let restored = self.stream.set_recv_timeout(self.read_timeout).map_err(ClientError::Io);
        let completed = outcome?;
        restored?;
        Ok(completed)
    }

    /// A queued completion of `login_id` (removed from the queue), or a queued `daemon/shuttingDown` (kept).
    fn take_queued_login_end(&mut self, login_id: &str) -> Option<Result<LoginCompleted, ClientError>> {
        let (at, end) = self.queued.iter().enumerate().find_map(|(at, n)| Some((at, login_wait_end(n, login_id)?)))?;
        if end.is_ok() {
            self.queued.remove(at);
        }
        Some(end)
    }

    fn read_until_login_end(&mut self, login_id: &str, deadline: Instant) -> Result<LoginCompleted, ClientError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::LoginTimedOut { login_id: login_id.to_owned() });
            }
            self.stream.set_recv_timeout(Some(left.max(MIN_WAIT_SLICE))).map_err(ClientError::Io)?;
            match self.read_message() {
                Ok(None) => return Err(ClientError::Disconnected),
                Ok(Some(ServerMessage::Notification(n))) => match login_wait_end(&n, login_id) {
                    Some(Ok(completed)) => return Ok(completed),
                    Some(Err(e)) => {
                        // Keep `daemon/shuttingDown` for `next_notification`, as any other notification.
                        self.queued.push_back(n);
                        return Err(e);
                    }
                    None => self.queued.push_back(n),
                },
                // Late replies to calls that timed out.
                Ok(Some(ServerMessage::Response(_))) => {}
                // The loop checks the deadline; a partial line stays in the decoder.
                Err(e) if e.is_read_timeout() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next message, `None` on a clean end of stream.
    fn read_message(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
                return ServerMessage::parse(&frame)
                    .map(Some)
                    .map_err(|e| ClientError::bad_reply("a line that is not a JSON-RPC message", &e));
            }
            match self.stream.read(&mut buf) {
                Ok(0) if self.decoder.buffered() == 0 => return Ok(None),
                Ok(0) => return Err(ClientError::Disconnected),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_disconnect(&e) => return Err(ClientError::Disconnected),
                Err(e) => return Err(ClientError::Io(e)),
            }
        }
    }
}

/// The params of `initialize` for this protocol version.
pub(crate) fn initialize_params(name: &str, version: &str) -> InitializeParams {
    InitializeParams {
        client_info: ClientInfo { name: name.to_owned(), version: version.to_owned() },
        protocol_version: Some(PROTOCOL_VERSION),
    }
}

/// The params of the forced refresh: the token is asked for, so that the answer is the usual one.
pub(crate) fn refresh_params() -> GetAuthStatusParams {
    GetAuthStatusParams { include_token: Some(true), refresh_token: Some(true) }
}

/// How a notification ends a wait for `login_id`: its completion, `daemon/shuttingDown` as an error, or `None`.
fn login_wait_end(n: &Notification, login_id: &str) -> Option<Result<LoginCompleted, ClientError>> {
    match n.method.as_str() {
        notification::SHUTTING_DOWN => Some(Err(ClientError::ShuttingDown)),
        notification::LOGIN_COMPLETED => {
            Event::from_notification(n.clone()).into_login_completed(login_id).ok().map(Ok)
        }
        _ => None,
    }
}

/// Errors that mean the peer went away rather than that something else broke.
pub(crate) fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
}

fn write_error(e: io::Error) -> ClientError {
    if is_disconnect(&e) { ClientError::Disconnected } else { ClientError::Io(e) }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_support::{FakeDaemon, TempDir};
    use codexd_proto::methods::UpdateReason;
    use serde_json::json;
    use std::time::Instant;

    fn updated(generation: u64) -> serde_json::Value {
        json!({"jsonrpc":"2.0","method":"account/updated","params":
            {"authMode":"chatgpt","planType":"plus","accountId":"a","generation":generation,"reason":"refresh"}})
    }

    #[test]
    fn call_sends_one_jsonrpc_line_and_queues_notifications_that_arrive_first() {
        let daemon = FakeDaemon::start(|peer| {
            let request = peer.read_request();
            assert_eq!(
                request,
                json!({"jsonrpc":"2.0","id":1,"method":"getAuthStatus","params":{"includeToken":true}})
            );
            peer.send(&updated(4));
            peer.send(&json!({"jsonrpc":"2.0","id":1,"result":{"authMethod":"chatgpt","authToken":"tok",
                "requiresOpenaiAuth":true,"accountId":"a","planType":"plus","expiresAt":null,"generation":4}}));
            peer.send(&json!({"jsonrpc":"2.0","method":"daemon/shuttingDown","params":{}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let status = client.get_auth_status(true).unwrap();
        assert_eq!(status.auth_token.as_ref().map(codexd_proto::Secret::expose), Some("tok"));
        let Some(Event::AccountUpdated(update)) = client.next_event().unwrap() else { panic!("queued event lost") };
        assert_eq!((update.generation, update.reason), (4, UpdateReason::Refresh));
        assert_eq!(client.next_event().unwrap(), Some(Event::ShuttingDown));
        assert_eq!(client.next_notification().unwrap(), None, "clean end of stream");
        daemon.join();
    }

    #[test]
    fn error_replies_keep_the_error_object_and_ids_increase() {
        let daemon = FakeDaemon::start(|peer| {
            let first = peer.read_request();
            assert_eq!((first["id"].clone(), first.get("params")), (json!(1), None));
            peer.send(&json!({"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"not logged in",
                "data":{"reason":"notLoggedIn"}}}));
            let second = peer.read_request();
            assert_eq!((second["id"].clone(), second["method"].clone()), (json!(2), json!("account/logout")));
            peer.send(&json!({"jsonrpc":"2.0","id":2,"result":{}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let err = client.daemon_status().unwrap_err();
        let object = err.daemon_error().expect("a daemon error");
        assert_eq!((object.code, object.reason()), (-32001, "notLoggedIn"));
        assert!(!err.is_connection_error());
        client.logout().unwrap();
        daemon.join();
    }

    #[test]
    fn a_missing_socket_is_unreachable_and_names_the_path() {
        let dir = TempDir::new();
        let path = dir.0.join("nobody.sock");
        let err = Client::connect(&path).unwrap_err();
        assert!(matches!(&err, ClientError::Unreachable { path: p, .. } if *p == path), "{err:?}");
        assert!(err.to_string().contains("nobody.sock"));
    }

    #[test]
    fn a_connection_closed_before_the_reply_is_disconnected() {
        let daemon = FakeDaemon::start(|peer| {
            peer.read_request();
            peer.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,");
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        assert!(matches!(client.shutdown(), Err(ClientError::Disconnected)));
        daemon.join();
    }

    #[test]
    fn an_oversized_or_garbled_reply_is_a_protocol_error_without_its_content() {
        let daemon = FakeDaemon::start(|peer| {
            peer.read_request();
            peer.send_raw(b"{\"token\": \"sk-secret\" oops}\n");
            peer.read_request();
            peer.send_raw(&vec![b'x'; codexd_proto::MAX_FRAME_LEN + 2]);
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let err = client.account_read().unwrap_err();
        assert!(matches!(&err, ClientError::Protocol(m) if !m.contains("sk-secret")), "{err:?}");
        let err = client.account_read().unwrap_err();
        assert!(matches!(&err, ClientError::Protocol(m) if m.contains("longer than")), "{err:?}");
        drop(client);
        daemon.join();
    }

    fn completed(login_id: Option<&str>, success: bool) -> serde_json::Value {
        json!({"jsonrpc":"2.0","method":"account/login/completed","params":
            {"loginId":login_id,"success":success,"error":if success { None } else { Some("login canceled") }}})
    }

    #[test]
    fn login_start_cancel_and_refresh_send_the_contract_params() {
        let daemon = FakeDaemon::start(|peer| {
            let key = peer.read_request();
            assert_eq!(
                (&key["method"], &key["params"]),
                (&json!("account/login/start"), &json!({"type":"apiKey","apiKey":"sk-xyz"}))
            );
            peer.send(&json!({"jsonrpc":"2.0","id":key["id"],"result":{"type":"apiKey"}}));
            let browser = peer.read_request();
            assert_eq!(browser["params"], json!({"type":"chatgpt"}));
            peer.send(&json!({"jsonrpc":"2.0","id":browser["id"],"result":{"type":"chatgpt","loginId":"l1","authUrl":"http://127.0.0.1:9/a"}}));
            let cancel = peer.read_request();
            assert_eq!(
                (&cancel["method"], &cancel["params"]),
                (&json!("account/login/cancel"), &json!({"loginId":"l1"}))
            );
            peer.send(&json!({"jsonrpc":"2.0","id":cancel["id"],"result":{"status":"notFound"}}));
            let refresh = peer.read_request();
            assert_eq!(
                (&refresh["method"], &refresh["params"]),
                (&json!("getAuthStatus"), &json!({"includeToken":true,"refreshToken":true}))
            );
            peer.send(&json!({"jsonrpc":"2.0","id":refresh["id"],"result":{"authMethod":null,"authToken":null,
                "requiresOpenaiAuth":true,"accountId":null,"planType":null,"expiresAt":null,"generation":2,
                "authError":{"reason":"refreshFailed","message":"used","issuerCode":"refresh_token_reused"}}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let key = LoginStartParams::ApiKey { api_key: codexd_proto::Secret::new("sk-xyz") };
        assert_eq!(client.login_start(&key).unwrap(), LoginStartResult::ApiKey);
        let started = client.login_start(&LoginStartParams::Chatgpt).unwrap();
        assert!(matches!(started, LoginStartResult::Chatgpt { ref login_id, .. } if login_id == "l1"), "{started:?}");
        assert_eq!(client.login_cancel("l1").unwrap(), CancelStatus::NotFound);
        let refreshed = client.refresh().unwrap();
        let problem = refreshed.auth_error.expect("the refresh failure");
        assert_eq!(
            (problem.reason.as_str(), problem.issuer_code.as_deref()),
            ("refreshFailed", Some("refresh_token_reused"))
        );
        daemon.join();
    }

    #[test]
    fn store_migrate_sends_the_target_store_and_reads_the_move() {
        let daemon = FakeDaemon::start(|peer| {
            let request = peer.read_request();
            assert_eq!((&request["method"], &request["params"]), (&json!("store/migrate"), &json!({"to":"keyring"})));
            peer.send(&json!({"jsonrpc":"2.0","id":request["id"],"result":{"from":"file","to":"keyring","moved":true,
                "warning":"auth.json could not be removed"}}));
            let again = peer.read_request();
            peer.send(&json!({"jsonrpc":"2.0","id":again["id"],"error":{"code":-32007,
                "message":"the keyring is locked","data":{"reason":"storeError"}}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let moved = client.store_migrate("keyring").unwrap();
        assert_eq!((moved.from.as_deref(), moved.to.as_str(), moved.moved), (Some("file"), "keyring", true));
        assert_eq!(moved.warning.as_deref(), Some("auth.json could not be removed"));
        let err = client.store_migrate("keyring").unwrap_err();
        assert_eq!(err.daemon_error().map(codexd_proto::ErrorObject::reason), Some("storeError"));
        daemon.join();
    }

    #[test]
    fn wait_for_login_skips_other_logins_and_keeps_other_notifications_queued() {
        let daemon = FakeDaemon::start(|peer| {
            peer.send(&updated(1));
            peer.send(&completed(Some("older"), false));
            peer.send(&completed(None, true));
            peer.send(&completed(Some("mine"), true));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let done = client.wait_for_login("mine", Instant::now() + Duration::from_secs(30)).unwrap();
        assert_eq!((done.login_id.as_deref(), done.success), (Some("mine"), true));
        assert!(matches!(client.next_event().unwrap(), Some(Event::AccountUpdated(_))));
        let Some(Event::LoginCompleted(older)) = client.next_event().unwrap() else { panic!("the other login lost") };
        assert_eq!(older.login_id.as_deref(), Some("older"));
        assert!(matches!(client.next_event().unwrap(), Some(Event::LoginCompleted(c)) if c.login_id.is_none()));
        assert_eq!(client.next_event().unwrap(), None);
        daemon.join();
    }

    #[test]
    fn a_completion_that_arrives_before_the_start_reply_is_found_in_the_queue() {
        let daemon = FakeDaemon::start(|peer| {
            let start = peer.read_request();
            peer.send(&completed(Some("fast"), true));
            peer.send(&json!({"jsonrpc":"2.0","id":start["id"],"result":{"type":"chatgptDeviceCode","loginId":"fast",
                "verificationUrl":"http://127.0.0.1:9/codex/device","userCode":"ABCD-1234"}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        client.login_start(&LoginStartParams::ChatgptDeviceCode).unwrap();
        // A deadline already past: only the queue is looked at.
        let done = client.wait_for_login("fast", Instant::now()).unwrap();
        assert!(done.success);
        assert_eq!(client.next_notification().unwrap(), None, "taken off the queue");
        daemon.join();
    }

    #[test]
    fn wait_for_login_times_out_with_the_connection_still_usable() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let daemon = FakeDaemon::start(move |peer| {
            go_rx.recv().unwrap();
            // Half a line before the deadline, the rest after it.
            peer.send_raw(b"{\"jsonrpc\":\"2.0\",\"method\":\"account/login/completed\",");
            go_rx.recv().unwrap();
            peer.send_raw(b"\"params\":{\"loginId\":\"slow\",\"success\":false,\"error\":\"denied\"}}\n");
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let err = client.wait_for_login("slow", Instant::now() + Duration::from_millis(30)).unwrap_err();
        assert!(matches!(&err, ClientError::LoginTimedOut { login_id } if login_id == "slow"), "{err:?}");
        assert!(!err.is_connection_error());
        go_tx.send(()).unwrap();
        let err = client.wait_for_login("slow", Instant::now() + Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, ClientError::LoginTimedOut { .. }), "{err:?}");
        go_tx.send(()).unwrap();
        let done = client.wait_for_login("slow", Instant::now() + Duration::from_secs(30)).unwrap();
        assert_eq!((done.success, done.error.as_deref()), (false, Some("denied")));
        assert_eq!(client.read_timeout, None, "the caller's read timeout is back");
        daemon.join();
    }

    #[test]
    fn shutting_down_or_a_closed_connection_ends_the_wait() {
        let daemon = FakeDaemon::start(|peer| {
            peer.send(&json!({"jsonrpc":"2.0","method":"daemon/shuttingDown","params":{}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        assert!(matches!(client.wait_for_login("l", deadline), Err(ClientError::ShuttingDown)));
        assert!(matches!(client.wait_for_login("l", deadline), Err(ClientError::ShuttingDown)), "still queued");
        assert_eq!(client.next_event().unwrap(), Some(Event::ShuttingDown));
        assert!(matches!(client.wait_for_login("l", deadline), Err(ClientError::Disconnected)));
        daemon.join();
    }

    #[test]
    fn a_read_timeout_surfaces_as_io_and_a_late_reply_is_skipped() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let daemon = FakeDaemon::start(move |peer| {
            peer.read_request();
            go_rx.recv().unwrap();
            peer.send(&json!({"jsonrpc":"2.0","id":1,"result":{}}));
            peer.read_request();
            peer.send(&json!({"jsonrpc":"2.0","id":2,"result":{}}));
        });
        let mut client = Client::connect(&daemon.path).unwrap();
        client.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert!(matches!(client.logout(), Err(ClientError::Io(_))));
        go_tx.send(()).unwrap();
        client.set_read_timeout(None).unwrap();
        client.logout().unwrap();
        daemon.join();
    }
}
