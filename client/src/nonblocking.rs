//! [`AsyncClient`]: a tokio client whose calls may run concurrently, with a stream of [`Event`]s.
//!
//! Two background tasks own the connection: a writer that sends whole request lines in order, and a reader
//! that hands each reply to the call waiting for its id and queues notifications. Calls are cancel-safe: a
//! call dropped before its reply arrives leaves the connection usable.

use crate::blocking::{initialize_params, refresh_params};
use crate::error::describe_json_error;
use crate::event::Event;
use crate::{ClientError, socket, wire};
use codexd_proto::methods::{
    AccountReadParams, AccountReadResult, CancelStatus, DaemonStatusResult, GetAuthStatusParams, GetAuthStatusResult,
    InitializeResult, LoginCancelParams, LoginCancelResult, LoginCompleted, LoginStartParams, LoginStartResult,
    StoreMigrateParams, StoreMigrateResult, method,
};
use codexd_proto::{FrameDecoder, Outcome, RequestId, ServerMessage};
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How many notifications wait for the application before newer ones are dropped (and counted in
/// [`AsyncClient::missed_events`]).
pub const EVENT_QUEUE_LEN: usize = 64;

/// Requests waiting for the writer task.
const WRITE_QUEUE_LEN: usize = 32;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

type Reply = Result<Outcome, ClientError>;

/// Why the connection ended, kept so that later calls fail the same way.
#[derive(Debug, Clone)]
enum Closed {
    Disconnected,
    Protocol(String),
}

impl Closed {
    fn to_error(&self) -> ClientError {
        match self {
            Closed::Disconnected => ClientError::Disconnected,
            Closed::Protocol(message) => ClientError::Protocol(message.clone()),
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    waiting: HashMap<i64, oneshot::Sender<Reply>>,
    closed: Option<Closed>,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    next_id: AtomicI64,
    missed_events: AtomicU64,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // The lock is never held across a panic-prone section; recover the data if it ever was.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the connection closed and fails every waiting call with `reason`.
    fn close(&self, reason: &Closed) {
        let waiting = {
            let mut pending = self.pending();
            pending.closed.get_or_insert_with(|| reason.clone());
            std::mem::take(&mut pending.waiting)
        };
        for reply_tx in waiting.into_values() {
            let _ = reply_tx.send(Err(reason.to_error()));
        }
    }

    fn closed_error(&self) -> ClientError {
        self.pending().closed.as_ref().map_or(ClientError::Disconnected, Closed::to_error)
    }
}

/// Removes a call's entry when the call finishes or is dropped.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: i64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending().waiting.remove(&self.id);
    }
}

/// An async connection to codexd. `call` takes `&self`, so several calls can be in flight at once (share the
/// client with `Arc` across tasks); notifications arrive on [`AsyncClient::notifications`]. Dropping the client
/// closes the connection.
#[derive(Debug)]
pub struct AsyncClient {
    shared: Arc<Shared>,
    write_tx: mpsc::Sender<Vec<u8>>,
    events_rx: mpsc::Receiver<Event>,
    /// Events read by [`AsyncClient::wait_for_login`] that were not the awaited one; `next_event` returns them first.
    set_aside: VecDeque<Event>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl AsyncClient {
    /// Connects to the socket (or pipe) at `path` and starts the reader and writer tasks; needs a tokio runtime.
    pub async fn connect(path: &Path) -> Result<AsyncClient, ClientError> {
        let unreachable = |source| ClientError::Unreachable { path: path.to_path_buf(), source };
        let name = socket::socket_name(path).map_err(unreachable)?;
        let stream = Arc::new(Stream::connect(name).await.map_err(unreachable)?);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            next_id: AtomicI64::new(1),
            missed_events: AtomicU64::new(0),
        });
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE_LEN);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE_LEN);
        let reader = tokio::spawn(run_reader(Arc::clone(&stream), Arc::clone(&shared), events_tx));
        let writer = tokio::spawn(run_writer(stream, Arc::clone(&shared), write_rx));
        Ok(AsyncClient { shared, write_tx, events_rx, set_aside: VecDeque::new(), reader, writer })
    }

    /// Sends one request and waits for its reply; `params: None` sends no params (write `None::<&()>`).
    /// Fails with [`ClientError::Disconnected`] when the connection ends first.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: Option<&P>,
    ) -> Result<R, ClientError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let line = wire::encode_request(id, method, params)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            if let Some(closed) = &pending.closed {
                return Err(closed.to_error());
            }
            pending.waiting.insert(id, reply_tx);
        }
        let _guard = PendingGuard { shared: &self.shared, id };
        if self.write_tx.send(line).await.is_err() {
            return Err(self.shared.closed_error());
        }
        let outcome = reply_rx.await.map_err(|_| self.shared.closed_error())??;
        wire::decode_outcome(method, outcome)
    }

    /// The notifications received after `initialize`, in order. The channel ends when the connection does. Those
    /// that [`AsyncClient::wait_for_login`] set aside are not on it: [`AsyncClient::next_event`] returns them.
    pub fn notifications(&mut self) -> &mut mpsc::Receiver<Event> {
        &mut self.events_rx
    }

    /// The next notification (first those [`AsyncClient::wait_for_login`] set aside), `None` once the connection
    /// has ended and every queued one was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        match self.set_aside.pop_front() {
            Some(event) => Some(event),
            None => self.events_rx.recv().await,
        }
    }

    /// Takes the notification channel, e.g. before sharing the client with `Arc`; afterwards
    /// [`AsyncClient::notifications`] yields nothing (events set aside by a wait stay with `next_event`).
    pub fn take_notifications(&mut self) -> mpsc::Receiver<Event> {
        let (_, closed_rx) = mpsc::channel(1);
        std::mem::replace(&mut self.events_rx, closed_rx)
    }

    /// Notifications dropped because the queue ([`EVENT_QUEUE_LEN`]) was full. Compare `generation` in the next
    /// answer to see what changed meanwhile.
    pub fn missed_events(&self) -> u64 {
        self.shared.missed_events.load(Ordering::Relaxed)
    }

    /// `initialize`: the handshake; from now on this connection receives notifications.
    pub async fn initialize(&self, name: &str, version: &str) -> Result<InitializeResult, ClientError> {
        self.call(method::INITIALIZE, Some(&initialize_params(name, version))).await
    }

    /// `getAuthStatus`: who is logged in; with `include_token`, the bearer token too.
    pub async fn get_auth_status(&self, include_token: bool) -> Result<GetAuthStatusResult, ClientError> {
        let params = GetAuthStatusParams { include_token: Some(include_token), refresh_token: None };
        self.call(method::GET_AUTH_STATUS, Some(&params)).await
    }

    /// `account/read`: the account behind the credentials.
    pub async fn account_read(&self) -> Result<AccountReadResult, ClientError> {
        self.call(method::ACCOUNT_READ, Some(&AccountReadParams::default())).await
    }

    /// `account/logout`: removes the credentials everywhere.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call::<(), IgnoredAny>(method::LOGOUT, None).await.map(drop)
    }

    /// `daemon/status`: the daemon's own state.
    pub async fn daemon_status(&self) -> Result<DaemonStatusResult, ClientError> {
        self.call::<(), _>(method::DAEMON_STATUS, None).await
    }

    /// `daemon/shutdown`: asks the daemon to shut down; it closes the connection soon after answering.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        self.call::<(), IgnoredAny>(method::DAEMON_SHUTDOWN, None).await.map(drop)
    }

    /// `store/migrate`: moves the stored login to the credential store `to` (`keyring` or `file`).
    pub async fn store_migrate(&self, to: &str) -> Result<StoreMigrateResult, ClientError> {
        self.call(method::STORE_MIGRATE, Some(&StoreMigrateParams { to: to.to_owned() })).await
    }

    /// `getAuthStatus {includeToken, refreshToken}`: forces a refresh of the ChatGPT tokens, then answers with the
    /// new token. A refresh the issuer refused for good comes back as a result with `authError.reason ==
    /// "refreshFailed"`; one that failed for now (issuer unreachable) as [`ClientError::Daemon`] with code `-32003`.
    pub async fn refresh(&self) -> Result<GetAuthStatusResult, ClientError> {
        self.call(method::GET_AUTH_STATUS, Some(&refresh_params())).await
    }

    /// `account/login/start`: stores an API key at once, or starts a browser or device-code login whose end
    /// arrives as `account/login/completed` (call [`AsyncClient::initialize`] first).
    pub async fn login_start(&self, params: &LoginStartParams) -> Result<LoginStartResult, ClientError> {
        self.call(method::LOGIN_START, Some(params)).await
    }

    /// `account/login/cancel`: stops a login in progress; [`CancelStatus::NotFound`] when it already ended.
    pub async fn login_cancel(&self, login_id: &str) -> Result<CancelStatus, ClientError> {
        let params = LoginCancelParams { login_id: login_id.to_owned() };
        self.call::<_, LoginCancelResult>(method::LOGIN_CANCEL, Some(&params)).await.map(|r| r.status)
    }

    /// Reads notifications until `account/login/completed` arrives for `login_id` (needs
    /// [`AsyncClient::initialize`]).
    ///
    /// Other events are set aside (up to [`EVENT_QUEUE_LEN`]; more count in [`AsyncClient::missed_events`]) and
    /// returned by [`AsyncClient::next_event`]. Fails with [`ClientError::LoginTimedOut`] at `deadline`,
    /// [`ClientError::ShuttingDown`] on `daemon/shuttingDown`, [`ClientError::Disconnected`] when the connection
    /// ends. Cancel-safe: dropping the future loses no event.
    pub async fn wait_for_login(&mut self, login_id: &str, deadline: Instant) -> Result<LoginCompleted, ClientError> {
        if let Some(at) = self.set_aside.iter().position(|e| e.login_completed(login_id).is_some())
            && let Some(completed) = self.set_aside.remove(at).and_then(|e| e.into_login_completed(login_id).ok())
        {
            return Ok(completed);
        }
        if self.set_aside.contains(&Event::ShuttingDown) {
            return Err(ClientError::ShuttingDown);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events_rx.recv()).await {
                Err(_elapsed) => return Err(ClientError::LoginTimedOut { login_id: login_id.to_owned() }),
                Ok(None) => return Err(self.shared.closed_error()),
                Ok(Some(event)) => event,
            };
            let event = match event.into_login_completed(login_id) {
                Ok(completed) => return Ok(completed),
                Err(other) => other,
            };
            let shutting_down = event == Event::ShuttingDown;
            if self.set_aside.len() < EVENT_QUEUE_LEN {
                self.set_aside.push_back(event);
            } else {
                self.shared.missed_events.fetch_add(1, Ordering::Relaxed);
            }
            if shutting_down {
                return Err(ClientError::ShuttingDown);
            }
        }
    }
}

impl Drop for AsyncClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Writes whole request lines in the order the calls queued them.
async fn run_writer(stream: Arc<Stream>, shared: Arc<Shared>, mut write_rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = write_rx.recv().await {
        if (&*stream).write_all(&line).await.is_err() {
            shared.close(&Closed::Disconnected);
            return;
        }
    }
}

/// Reads until the connection ends, routing replies by id and queueing notifications.
async fn run_reader(stream: Arc<Stream>, shared: Arc<Shared>, events_tx: mpsc::Sender<Event>) {
    let reason = read_messages(&stream, &shared, &events_tx).await;
    shared.close(&reason);
    // Dropping `events_tx` here ends the event stream.
}

async fn read_messages(stream: &Stream, shared: &Shared, events_tx: &mpsc::Sender<Event>) -> Closed {
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        while let Some(frame) = decoder.next_frame() {
            let message = match frame {
                Ok(frame) => ServerMessage::parse(&frame),
                Err(e) => return Closed::Protocol(e.to_string()),
            };
            match message {
                Ok(ServerMessage::Response(response)) => route_reply(shared, response.id.as_ref(), response.outcome),
                Ok(ServerMessage::Notification(n)) => match events_tx.try_send(Event::from_notification(n)) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.missed_events.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(e) => {
                    return Closed::Protocol(describe_json_error("a line that is not a JSON-RPC message", &e));
                }
            }
        }
        match (&*stream).read(&mut buf).await {
            Ok(0) => return Closed::Disconnected,
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Reset, broken pipe or any other failure: the connection is gone either way.
            Err(_) => return Closed::Disconnected,
        }
    }
}

/// Hands a reply to the call waiting for its id. A reply without an id (the daemon could not read the request)
/// goes to the only waiting call, if there is exactly one.
fn route_reply(shared: &Shared, id: Option<&RequestId>, outcome: Outcome) {
    let reply_tx = {
        let mut pending = shared.pending();
        match id {
            Some(RequestId::Number(id)) => pending.waiting.remove(id),
            None if pending.waiting.len() == 1 => {
                let only = pending.waiting.keys().next().copied();
                only.and_then(|id| pending.waiting.remove(&id))
            }
            _ => None,
        }
    };
    if let Some(reply_tx) = reply_tx {
        let _ = reply_tx.send(Ok(outcome));
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::test_support::FakeDaemon;
    use serde_json::{Value, json};

    fn updated(generation: u64) -> Value {
        json!({"jsonrpc":"2.0","method":"account/updated","params":
            {"authMode":null,"planType":null,"accountId":null,"generation":generation,"reason":"logout"}})
    }

    #[tokio::test]
    async fn concurrent_calls_get_their_own_replies_when_answered_out_of_order() {
        let daemon = FakeDaemon::start(|peer| {
            let a = peer.read_request();
            let b = peer.read_request();
            let id_of = |r: &Value, method: &str| (r["method"] == method).then(|| r["id"].clone());
            let status_id = id_of(&a, "daemon/status").or_else(|| id_of(&b, "daemon/status")).unwrap();
            let logout_id = id_of(&a, "account/logout").or_else(|| id_of(&b, "account/logout")).unwrap();
            peer.send(&json!({"jsonrpc":"2.0","id":logout_id,"result":{}}));
            peer.send(&updated(1));
            peer.send(&json!({"jsonrpc":"2.0","id":status_id,"result":{"version":"9.9.9","pid":7,
                "uptimeSeconds":1,"store":"file","codexHome":"/h","socket":"/s","connections":1,"subscribers":1,
                "generation":1,"authMethod":null,"lastRefresh":null,"nextRefresh":null,"authError":null}}));
        });
        let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
        let (status, logout) = tokio::join!(client.daemon_status(), client.logout());
        assert_eq!(status.unwrap().version, "9.9.9");
        logout.unwrap();
        let Some(Event::AccountUpdated(update)) = client.next_event().await else { panic!("event lost") };
        assert_eq!(update.generation, 1);
        assert_eq!(client.next_event().await, None, "the event stream ends with the connection");
        daemon.join();
    }

    #[tokio::test]
    async fn store_migrate_sends_the_target_store() {
        let daemon = FakeDaemon::start(|peer| {
            let request = peer.read_request();
            assert_eq!((&request["method"], &request["params"]), (&json!("store/migrate"), &json!({"to":"file"})));
            peer.send(&json!({"jsonrpc":"2.0","id":request["id"],"result":{"from":null,"to":"file","moved":false}}));
        });
        let client = AsyncClient::connect(&daemon.path).await.unwrap();
        let result = client.store_migrate("file").await.unwrap();
        assert_eq!((result.from, result.to.as_str(), result.moved, result.warning), (None, "file", false, None));
        daemon.join();
    }

    #[tokio::test]
    async fn pending_and_later_calls_fail_with_disconnected_when_the_daemon_goes_away() {
        let daemon = FakeDaemon::start(|peer| {
            peer.read_request();
            peer.send(&json!({"jsonrpc":"2.0","method":"daemon/shuttingDown","params":{}}));
        });
        let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
        assert!(matches!(client.get_auth_status(false).await, Err(ClientError::Disconnected)));
        assert_eq!(client.next_event().await, Some(Event::ShuttingDown));
        assert_eq!(client.next_event().await, None);
        assert!(matches!(client.account_read().await, Err(ClientError::Disconnected)));
        daemon.join();
    }

    #[tokio::test]
    async fn an_unread_event_queue_drops_and_counts_instead_of_stalling_replies() {
        let extra = 5;
        let daemon = FakeDaemon::start(move |peer| {
            let request = peer.read_request();
            for generation in 0..(EVENT_QUEUE_LEN + extra) as u64 {
                peer.send(&updated(generation));
            }
            peer.send(&json!({"jsonrpc":"2.0","id":request["id"],"result":{}}));
        });
        let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(client.missed_events(), extra as u64);
        let events = client.take_notifications();
        assert_eq!(events.len(), EVENT_QUEUE_LEN);
        assert!(client.notifications().recv().await.is_none(), "taken: nothing left here");
        daemon.join();
    }

    #[tokio::test]
    async fn an_error_reply_reaches_the_caller_as_the_daemon_error() {
        let daemon = FakeDaemon::start(|peer| {
            let request = peer.read_request();
            assert_eq!(request["params"], json!({"clientInfo":{"name":"t","version":"1"},"protocolVersion":1}));
            peer.send(&json!({"jsonrpc":"2.0","id":request["id"],"error":{"code":-32004,"message":"bye",
                "data":{"reason":"shuttingDown"}}}));
        });
        let client = AsyncClient::connect(&daemon.path).await.unwrap();
        let err = client.initialize("t", "1").await.unwrap_err();
        assert_eq!(err.daemon_error().map(|e| e.reason().to_owned()).as_deref(), Some("shuttingDown"));
        daemon.join();
    }

    fn completed(login_id: &str, success: bool) -> Value {
        json!({"jsonrpc":"2.0","method":"account/login/completed","params":
            {"loginId":login_id,"success":success,"error":null}})
    }

    #[tokio::test]
    async fn login_calls_send_the_contract_params_and_the_wait_sets_other_events_aside() {
        let daemon = FakeDaemon::start(|peer| {
            let start = peer.read_request();
            assert_eq!(start["params"], json!({"type":"chatgptDeviceCode"}));
            peer.send(&json!({"jsonrpc":"2.0","id":start["id"],"result":{"type":"chatgptDeviceCode","loginId":"d1",
                "verificationUrl":"http://127.0.0.1:9/codex/device","userCode":"ABCD-1234"}}));
            peer.send(&updated(1));
            peer.send(&completed("other", false));
            peer.send(&completed("d1", true));
            let cancel = peer.read_request();
            assert_eq!(cancel["params"], json!({"loginId":"d1"}));
            peer.send(&json!({"jsonrpc":"2.0","id":cancel["id"],"result":{"status":"canceled"}}));
            let refresh = peer.read_request();
            assert_eq!(refresh["params"], json!({"includeToken":true,"refreshToken":true}));
            peer.send(&json!({"jsonrpc":"2.0","id":refresh["id"],"error":{"code":-32003,"message":"issuer down",
                "data":{"reason":"refreshUnavailable"}}}));
        });
        let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
        let started = client.login_start(&LoginStartParams::ChatgptDeviceCode).await.unwrap();
        assert!(
            matches!(started, LoginStartResult::ChatgptDeviceCode { ref user_code, .. } if user_code == "ABCD-1234")
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let done = client.wait_for_login("d1", deadline).await.unwrap();
        assert!(done.success);
        assert_eq!(client.login_cancel("d1").await.unwrap(), CancelStatus::Canceled);
        let err = client.refresh().await.unwrap_err();
        assert_eq!(
            err.daemon_error().map(|e| (e.code, e.reason().to_owned())),
            Some((-32003, "refreshUnavailable".to_owned()))
        );
        assert!(matches!(client.next_event().await, Some(Event::AccountUpdated(_))), "set aside, in order");
        assert!(client.next_event().await.is_some_and(|e| e.login_completed("other").is_some()));
        assert_eq!(client.next_event().await, None);
        daemon.join();
    }

    #[tokio::test]
    async fn the_async_wait_times_out_then_ends_on_shutting_down() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let daemon = FakeDaemon::start(move |peer| {
            go_rx.recv().unwrap();
            peer.send(&json!({"jsonrpc":"2.0","method":"daemon/shuttingDown","params":{}}));
        });
        let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
        let soon = Instant::now() + std::time::Duration::from_millis(30);
        let err = client.wait_for_login("l", soon).await.unwrap_err();
        assert!(matches!(&err, ClientError::LoginTimedOut { login_id } if login_id == "l"), "{err:?}");
        go_tx.send(()).unwrap();
        let later = Instant::now() + std::time::Duration::from_secs(30);
        assert!(matches!(client.wait_for_login("l", later).await, Err(ClientError::ShuttingDown)));
        assert!(matches!(client.wait_for_login("l", later).await, Err(ClientError::ShuttingDown)), "kept aside");
        assert_eq!(client.next_event().await, Some(Event::ShuttingDown));
        assert!(matches!(client.wait_for_login("l", later).await, Err(ClientError::Disconnected)));
        daemon.join();
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_reply_leaves_the_connection_usable() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let daemon = FakeDaemon::start(move |peer| {
            let first = peer.read_request();
            go_rx.recv().unwrap();
            peer.send(&json!({"jsonrpc":"2.0","id":first["id"],"result":{}}));
            let second = peer.read_request();
            peer.send(&json!({"jsonrpc":"2.0","id":second["id"],"result":{"account":null,"requiresOpenaiAuth":true}}));
        });
        let client = AsyncClient::connect(&daemon.path).await.unwrap();
        let slow = tokio::time::timeout(std::time::Duration::from_millis(20), client.logout()).await;
        assert!(slow.is_err(), "the first call times out");
        go_tx.send(()).unwrap();
        assert_eq!(client.account_read().await.unwrap().account, None);
        assert!(client.shared.pending().waiting.is_empty(), "no entry left behind");
        daemon.join();
    }
}
