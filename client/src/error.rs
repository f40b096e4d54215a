//! [`ClientError`]: everything that can go wrong between a client and codexd.

use codexd_proto::ErrorObject;
use std::io;
use std::path::PathBuf;

/// Why a call to codexd failed. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected to: no daemon, wrong path, or no permission.
    #[error("cannot connect to codexd at {}: {source}", path.display())]
    Unreachable {
        /// The socket (or pipe) that was tried.
        path: PathBuf,
        /// Why the connect failed.
        source: io::Error,
    },
    /// The daemon closed the connection before the answer arrived.
    #[error("codexd closed the connection")]
    Disconnected,
    /// Reading from or writing to the connection failed (this includes read timeouts).
    #[error("i/o error on the codexd connection: {0}")]
    Io(#[from] io::Error),
    /// The daemon sent something that is not a valid reply.
    #[error("unexpected message from codexd: {0}")]
    Protocol(String),
    /// The daemon answered with a JSON-RPC error; read `code` and `reason()` to tell the cases apart.
    #[error("codexd refused the request: {} ({})", .0.message, .0.reason())]
    Daemon(ErrorObject),
    /// The deadline passed before `account/login/completed` arrived for the login; the connection is still usable
    /// and the login still runs (cancel it with `login_cancel`).
    #[error("login {login_id} did not complete before the deadline")]
    LoginTimedOut {
        /// The login that was awaited.
        login_id: String,
    },
    /// The daemon announced `daemon/shuttingDown` while the client waited; it closes the connection next.
    #[error("codexd is shutting down")]
    ShuttingDown,
}

impl ClientError {
    /// The JSON-RPC error, when the daemon answered with one.
    pub fn daemon_error(&self) -> Option<&ErrorObject> {
        match self {
            ClientError::Daemon(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the connection is unusable after this error (everything except a JSON-RPC error reply and a
    /// [`ClientError::LoginTimedOut`]).
    pub fn is_connection_error(&self) -> bool {
        !matches!(self, ClientError::Daemon(_) | ClientError::LoginTimedOut { .. })
    }

    /// Whether this is a read that gave up because of the read timeout ([`ClientError::Io`] of kind `WouldBlock` or
    /// `TimedOut`, which differ between platforms); the connection may still deliver the answer later.
    pub fn is_read_timeout(&self) -> bool {
        matches!(self, ClientError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }

    /// A protocol error for a reply that did not decode; the serde message is dropped when it might quote
    /// a value from the reply (which could be a token).
    pub(crate) fn bad_reply(what: &str, err: &serde_json::Error) -> Self {
        ClientError::Protocol(describe_json_error(what, err))
    }
}

/// `what` and the serde message, or only the position when the message quotes a value (which could be a token).
pub(crate) fn describe_json_error(what: &str, err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.contains('"') {
        format!("{what} (line {}, column {})", err.line(), err.column())
    } else {
        format!("{what}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_io_error_of_a_timeout_kind_is_a_read_timeout() {
        assert!(ClientError::Io(io::ErrorKind::WouldBlock.into()).is_read_timeout());
        assert!(ClientError::Io(io::ErrorKind::TimedOut.into()).is_read_timeout());
        assert!(!ClientError::Io(io::ErrorKind::ConnectionReset.into()).is_read_timeout());
        assert!(!ClientError::Disconnected.is_read_timeout());
    }
}
