//! One client connection: reads frames, answers requests in order, forwards notifications, and says goodbye
//! with `daemon/shuttingDown` when the daemon stops.

use super::dispatch::{self, Session};
use crate::daemon::Daemon;
use crate::events;
use codexd_proto::methods::{EmptyResult, notification};
use codexd_proto::{ErrorCode, ErrorObject, FrameDecoder, FrameError, Request, Response};
use interprocess::local_socket::tokio::Stream;
use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

/// Bytes read from the socket at a time; small, because a thousand idle subscribers each hold one buffer.
const READ_CHUNK: usize = 4096;

/// Why a connection ended, for the log.
enum End {
    ClientClosed,
    ReadFailed(io::Error),
    WriteFailed(io::Error),
    FrameTooLong,
    Lagged(u64),
    Shutdown,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed => f.write_str("client closed the connection"),
            End::ReadFailed(e) => write!(f, "read failed: {e}"),
            End::WriteFailed(e) => write!(f, "write failed: {e}"),
            End::FrameTooLong => f.write_str("request line too long"),
            End::Lagged(missed) => write!(f, "subscriber fell {missed} notifications behind"),
            End::Shutdown => f.write_str("daemon shutting down"),
        }
    }
}

/// Serves one connection until the client leaves, misbehaves, or the daemon shuts down.
pub async fn serve(daemon: &Daemon, stream: Stream, peer: String) {
    let _counted = daemon.count_connection();
    let end = converse(daemon, &stream, &peer).await;
    match &end {
        End::ClientClosed | End::Shutdown => tracing::debug!(%peer, %end, "connection closed"),
        _ => tracing::info!(%peer, %end, "connection dropped"),
    }
}

async fn converse(daemon: &Daemon, stream: &Stream, peer: &str) -> End {
    let mut reader = stream;
    let mut writer = stream;
    let write_timeout = daemon.config().client_write_timeout;
    let shutdown = daemon.shutdown_token();
    let mut decoder = FrameDecoder::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut session = Session::default();
    // One cancellation future for the connection's life, rather than a new waiter registered per request.
    let mut cancelled = std::pin::pin!(shutdown.cancelled());

    loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break,
            event = next_event(&mut session) => match event {
                Ok(line) => {
                    if let Err(e) = send(&mut writer, &line, write_timeout).await {
                        return End::WriteFailed(e);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(peer, missed, "dropping a subscriber that stopped reading its notifications");
                    return End::Lagged(missed);
                }
                Err(RecvError::Closed) => break,
            },
            read = reader.read(&mut chunk) => {
                let n = match read {
                    Ok(0) => return End::ClientClosed,
                    Ok(n) => n,
                    Err(e) => return End::ReadFailed(e),
                };
                decoder.push(&chunk[..n]);
                while let Some(frame) = decoder.next_frame() {
                    let reply = match frame {
                        Ok(frame) => match Request::parse(&frame) {
                            Ok(request) => dispatch::handle(daemon, request, &mut session).await,
                            Err(rejected) => codexd_proto::frame::encode(&Response::error(rejected.id, rejected.error)).ok(),
                        },
                        Err(FrameError::TooLong { limit }) => {
                            let error = ErrorObject::with_reason(
                                ErrorCode::InvalidRequest,
                                "frameTooLarge",
                                format!("request line longer than {limit} bytes; closing the connection"),
                            );
                            let _ = send_json(&mut writer, &Response::error(None, error), write_timeout).await;
                            return End::FrameTooLong;
                        }
                    };
                    if let Some(reply) = reply
                        && let Err(e) = send(&mut writer, &reply, write_timeout).await
                    {
                        return End::WriteFailed(e);
                    }
                }
            }
        }
    }

    // Shutting down: deliver what was already published, then the goodbye, to subscribers only.
    if let Some(subscription) = session.subscription.as_mut() {
        while let Ok(line) = subscription.events.try_recv() {
            if send(&mut writer, &line, write_timeout).await.is_err() {
                return End::Shutdown;
            }
        }
        if let Ok(line) = events::encode(notification::SHUTTING_DOWN, &EmptyResult {}) {
            let _ = send(&mut writer, &line, write_timeout).await;
        }
    }
    let _ = writer.flush().await;
    End::Shutdown
}

async fn next_event(session: &mut Session<'_>) -> Result<events::EncodedLine, RecvError> {
    match session.subscription.as_mut() {
        Some(subscription) => subscription.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_json(writer: &mut &Stream, message: &Response, timeout: Duration) -> io::Result<()> {
    let line = codexd_proto::frame::encode(message).map_err(io::Error::other)?;
    send(writer, &line, timeout).await
}

/// Writes one line, giving up after `timeout` so that a client that does not read cannot hold a task forever.
/// The timer is armed only when the socket buffer is full; the usual write completes at the first poll.
async fn send(writer: &mut &Stream, line: &[u8], timeout: Duration) -> io::Result<()> {
    let mut write = std::pin::pin!(writer.write_all(line));
    if let Poll::Ready(result) = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        return result;
    }
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("client did not read for {timeout:?}"))),
    }
}
