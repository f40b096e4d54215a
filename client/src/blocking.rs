//! [`Client`]: a blocking client, one request at a time, no runtime and no thread.

use crate::event::Event;
use crate::{ClientError, socket, wire};
use codexd_proto::methods::{
    AccountReadParams, AccountReadResult, ClientInfo, DaemonStatusResult, GetAuthStatusParams, GetAuthStatusResult,
    InitializeParams, InitializeResult, PROTOCOL_VERSION, method,
};
use codexd_proto::{FrameDecoder, Notification, RequestId, ServerMessage};
use interprocess::local_socket::Stream;
use interprocess::local_socket::traits::Stream as _;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

/// Bytes read from the socket at a time; a typical reply fits in one read.
const READ_CHUNK: usize = 8 * 1024;

/// A blocking connection to codexd. Calls are sequential; notifications that arrive while a call waits for its
/// reply are queued and returned by [`Client::next_notification`].
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    decoder: FrameDecoder,
    next_id: i64,
    queued: VecDeque<Notification>,
}

impl Client {
    /// Connects to the socket (or pipe) at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let unreachable = |source| ClientError::Unreachable { path: path.to_path_buf(), source };
        let name = socket::socket_name(path).map_err(unreachable)?;
        let stream = Stream::connect(name).map_err(unreachable)?;
        Ok(Client { stream, decoder: FrameDecoder::new(), next_id: 1, queued: VecDeque::new() })
    }

    /// Bounds every following read: a read that waits longer fails with [`ClientError::Io`] (kind `WouldBlock`
    /// or `TimedOut`, depending on the platform). `None` waits forever, the default.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_recv_timeout(timeout).map_err(ClientError::Io)
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
