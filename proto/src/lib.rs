//! Wire types and framing of the codexd socket protocol. Serde only: no sockets, files or runtime.
//!
//! This is a summary for client authors; `docs/PROTOCOL.md` is the full contract, with an example exchange for
//! every method and notification.
//!
//! # Transport
//! A Unix stream socket (default `$XDG_RUNTIME_DIR/codexd/codexd.sock`, see [`paths`]) in a 0700 directory,
//! mode 0600; connections from another uid are refused. On Windows, the named pipe `\\.\pipe\codexd-<user>`.
//!
//! # Framing
//! One JSON object per line: UTF-8, terminated by `\n`, at most [`frame::MAX_FRAME_LEN`] (1 MiB) a line. A
//! longer line is answered with error `-32600` (`data.reason = "frameTooLarge"`) and the connection is closed.
//!
//! # Messages
//! JSON-RPC 2.0 ([`jsonrpc`]). Replies always carry `"jsonrpc":"2.0"`; requests may omit it, as the Codex
//! app-server's clients do. Requests are answered in the order they arrive on a connection.
//!
//! ```text
//! -> {"jsonrpc":"2.0","id":1,"method":"getAuthStatus","params":{"includeToken":true}}
//! <- {"jsonrpc":"2.0","id":1,"result":{"authMethod":"chatgpt","authToken":"eyJ...","requiresOpenaiAuth":true,
//!     "accountId":"acct-1","planType":"plus","expiresAt":"2026-11-29T06:00:00Z","generation":3}}
//! ```
//!
//! Methods ([`methods::method`]): `initialize`, `getAuthStatus`, `account/read`, `account/login/start`,
//! `account/login/cancel`, `account/logout`, `daemon/status`, `daemon/shutdown`, and `store/migrate {to}`, which
//! moves the login to the `keyring` or `file` store without logging out. `initialize` with a
//! `protocolVersion` newer than [`methods::PROTOCOL_VERSION`] is refused with `-32600`
//! (`data.reason = "protocolVersionUnsupported"`).
//!
//! `getAuthStatus {refreshToken:true}` refreshes first. A refresh refused for good is not an error: the result
//! has no token and an `authError` with the issuer's code; a refresh that may succeed later is `-32003`
//! (`data.reason = "refreshUnavailable"`):
//!
//! ```text
//! -> {"jsonrpc":"2.0","id":2,"method":"getAuthStatus","params":{"includeToken":true,"refreshToken":true}}
//! <- {"jsonrpc":"2.0","id":2,"result":{"authMethod":null,"authToken":null,"requiresOpenaiAuth":true,
//!     "accountId":null,"planType":null,"expiresAt":null,"generation":7,"authError":{"reason":"refreshFailed",
//!     "message":"Your access token could not be refreshed because ...","issuerCode":"refresh_token_reused"}}}
//! ```
//!
//! Logins: `account/login/start {type:"chatgpt"}` answers `{loginId, authUrl}`, `{type:"chatgptDeviceCode"}`
//! answers `{loginId, verificationUrl, userCode}`, `{type:"apiKey", apiKey}` stores the key; the outcome arrives
//! as `account/login/completed {loginId, success, error}` after `account/updated {reason:"login"}`.
//!
//! Notifications ([`methods::notification`]), sent to every connection that called `initialize`:
//! `account/updated` (`reason`: `login`, `logout`, `refresh`, `external`, `policy`, `refreshFailed`),
//! `account/login/completed`, and `daemon/shuttingDown`, the last message before the daemon closes the
//! connection: drop every cached token.
//!
//! # Generation
//! Every change of the credentials adds one to `generation`, reported by `getAuthStatus`, `daemon/status` and
//! `account/updated`: a client that missed a notification sees the number move on its next call. The counter
//! starts at 0 each time the daemon starts.
//!
//! # Errors
//! JSON-RPC codes `-32700`, `-32600`, `-32601`, `-32602`, `-32603`, and codexd's own `-32001..=-32007` (see
//! [`jsonrpc::ErrorCode`]), each with a stable `data.reason` string.

pub mod frame;
pub mod jsonrpc;
pub mod methods;
pub mod paths;
pub mod secret;

pub use frame::{FrameDecoder, FrameError, MAX_FRAME_LEN};
pub use jsonrpc::{
    ErrorCode, ErrorData, ErrorObject, Notification, Outcome, RejectedRequest, Request, RequestId, Response,
    ResultReply, ServerMessage,
};
pub use secret::Secret;
