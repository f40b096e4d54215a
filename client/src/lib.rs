//! Client library for codexd, the credential daemon for the OpenAI Codex CLI, and home of `codexctl`.
//!
//! codexd owns the Codex credentials (`$CODEX_HOME/auth.json` or the keyring), refreshes them, and serves them
//! over a local socket; this crate talks to it. The wire format is in [`proto`] (re-exported `codexd-proto`).
//!
//! # Finding the daemon
//! [`resolve_socket`] picks the socket: an explicit path (`--socket`), else `CODEXD_SOCKET`, else the default
//! `$XDG_RUNTIME_DIR/codexd/codexd.sock` (`${TMPDIR:-/tmp}/codexd-$UID/codexd.sock` without a runtime dir);
//! [`default_rule`] says which of those rules applies, and [`default_socket`] gives the default path whatever the
//! flag and the variable say (`codexctl where` prints both). The library never starts a daemon; `codexctl` does
//! (autostart) unless `--no-autostart` or `CODEXD_NO_AUTOSTART=1`.
//!
//! # Blocking: one token, no runtime
//! ```no_run
//! use codexd_client::{Client, resolve_socket};
//!
//! # fn main() -> Result<(), codexd_client::ClientError> {
//! let socket = resolve_socket(None);
//! let mut client = Client::connect(&socket.path)?;
//! let status = client.get_auth_status(true)?;
//! if let Some(token) = status.auth_token {
//!     // `token.expose()` is the bearer token; `Debug` prints `Secret(***)`.
//!     let _header = format!("Bearer {}", token.expose());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Async: concurrent calls and notifications
//! ```no_run
//! use codexd_client::{AsyncClient, Event, resolve_socket};
//!
//! # async fn demo() -> Result<(), codexd_client::ClientError> {
//! let mut client = AsyncClient::connect(&resolve_socket(None).path).await?;
//! client.initialize("my-plugin", "1.0").await?;
//! while let Some(event) = client.next_event().await {
//!     match event {
//!         Event::AccountUpdated(update) => {
//!             // Drop the cached token; ask again with `get_auth_status(true)`.
//!             let _ = update.generation;
//!         }
//!         Event::ShuttingDown => break,
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Logging in and refreshing
//! ```no_run
//! use codexd_client::{Client, ClientError, resolve_socket};
//! use codexd_client::proto::methods::{LoginStartParams, LoginStartResult};
//! use std::time::{Duration, Instant};
//!
//! # fn main() -> Result<(), codexd_client::ClientError> {
//! let mut client = Client::connect(&resolve_socket(None).path)?;
//! client.initialize("my-tool", "1.0")?; // the completion arrives as a notification
//! if let LoginStartResult::Chatgpt { login_id, auth_url } = client.login_start(&LoginStartParams::Chatgpt)? {
//!     println!("open {auth_url}");
//!     match client.wait_for_login(&login_id, Instant::now() + Duration::from_secs(900)) {
//!         Ok(done) => println!("success: {}, error: {:?}", done.success, done.error),
//!         Err(ClientError::LoginTimedOut { .. }) => drop(client.login_cancel(&login_id)?),
//!         Err(e) => return Err(e),
//!     }
//! }
//! let refreshed = client.refresh()?; // `authError.reason == "refreshFailed"` when the issuer refused
//! # let _ = refreshed;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//! Every call returns [`ClientError`]: [`ClientError::Unreachable`] when nothing listens on the socket,
//! [`ClientError::Disconnected`] when the daemon closed the connection, [`ClientError::Daemon`] with the
//! JSON-RPC error object (`code`, `data.reason`) when the daemon refused the request;
//! [`ClientError::LoginTimedOut`] and [`ClientError::ShuttingDown`] end a wait for a login.
//!
//! # Notifications
//! Only connections that called `initialize` receive them. The blocking [`Client`] queues those that arrive
//! during a call and returns them from [`Client::next_notification`]; the [`AsyncClient`] puts them on a
//! bounded channel. Every change bumps `generation`, so a missed notification shows on the next answer.

pub mod blocking;
pub mod error;
pub mod event;
pub mod nonblocking;
pub mod socket;
#[cfg(all(test, unix))]
mod test_support;
mod wire;

pub use blocking::Client;
pub use codexd_proto as proto;
pub use error::ClientError;
pub use event::Event;
pub use nonblocking::AsyncClient;
pub use socket::{DefaultRule, ResolvedSocket, SocketSource, default_rule, default_socket, resolve_socket};
