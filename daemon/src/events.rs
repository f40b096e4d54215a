//! The broadcast of notifications: each one is encoded once and fanned out to every subscribed connection.

use codexd_proto::Notification;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// One encoded notification line, shared by every subscriber.
pub type EncodedLine = Arc<[u8]>;

/// Notifications a subscriber may fall behind by before it is disconnected (it would otherwise miss a logout).
pub const SUBSCRIBER_BACKLOG: usize = 256;

/// The sending side of the notification broadcast.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<EncodedLine>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A broadcast with [`SUBSCRIBER_BACKLOG`] slots.
    pub fn new() -> Self {
        Self { tx: broadcast::channel(SUBSCRIBER_BACKLOG).0 }
    }

    /// Sends a notification to every current subscriber; nobody listening is not an error.
    pub fn publish<T: Serialize>(&self, method: &str, params: &T) {
        match encode(method, params) {
            Ok(line) => {
                let _ = self.tx.send(line);
            }
            Err(e) => tracing::error!(method, error = %e, "could not encode a notification"),
        }
    }

    /// A new subscription: it receives what is published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EncodedLine> {
        self.tx.subscribe()
    }
}

/// Encodes a notification as one line.
pub fn encode<T: Serialize>(method: &str, params: &T) -> serde_json::Result<EncodedLine> {
    let notification = Notification::new(method, params)?;
    Ok(codexd_proto::frame::encode(&notification)?.into())
}
