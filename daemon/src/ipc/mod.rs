//! The socket server: accepts connections from this user only and runs one task per connection.

#[cfg(target_os = "linux")]
pub mod activation;
pub mod connection;
pub mod dispatch;
pub mod keeper;
pub mod listener;

use crate::daemon::Daemon;
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// How long a request in progress may still take once shutdown starts: the longest store operation (the auth
/// file's lock waits, 10 s + 2 s) with a margin. The goodbye write adds the client write timeout.
const REQUEST_GRACE: Duration = Duration::from_secs(15);

/// Accepts connections until shutdown, then waits (bounded) for every connection to finish. Tells the service
/// manager when it starts accepting (`READY=1`) and when shutdown begins (`STOPPING=1`).
pub async fn serve(listener: Listener, daemon: Arc<Daemon>) {
    let tracker = TaskTracker::new();
    let shutdown = daemon.shutdown_token().clone();
    crate::service::notify_ready(&daemon.config().socket);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(stream) => {
                let Some(peer) = admit(&stream) else { continue };
                let daemon = daemon.clone();
                tracker.spawn(async move { connection::serve(&daemon, stream, peer).await });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    crate::service::notify_stopping();
    drop(listener);
    tracker.close();
    tracing::info!(connections = tracker.len(), "shutting down: telling subscribers");
    let drain = REQUEST_GRACE + daemon.config().client_write_timeout * 2;
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(remaining = tracker.len(), "some connections did not finish in time");
    }
}

/// Checks the peer's uid; returns a label for the log, or `None` (and logs) when the peer is refused.
#[cfg(unix)]
fn admit(stream: &Stream) -> Option<String> {
    use interprocess::local_socket::traits::StreamCommon;
    let own = rustix::process::geteuid().as_raw();
    match stream.peer_creds() {
        Ok(creds) if creds.euid() == Some(own) => {
            Some(creds.pid().map_or_else(|| "pid ?".to_owned(), |pid| format!("pid {pid}")))
        }
        Ok(creds) => {
            let show = |v: Option<String>| v.unwrap_or_else(|| "?".to_owned());
            let (uid, pid) = (show(creds.euid().map(|u| u.to_string())), show(creds.pid().map(|p| p.to_string())));
            tracing::warn!("refused a connection from another user (uid {uid}, pid {pid})");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused a connection whose peer credentials cannot be read");
            None
        }
    }
}

/// Windows: the pipe's default access applies; peer checks are not implemented (untested platform).
#[cfg(not(unix))]
fn admit(stream: &Stream) -> Option<String> {
    use interprocess::local_socket::traits::StreamCommon;
    Some(stream.peer_creds().ok().and_then(|c| c.pid()).map_or_else(|| "pid ?".to_owned(), |p| format!("pid {p}")))
}
