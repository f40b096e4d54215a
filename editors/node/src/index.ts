/**
 * Node.js client of codexd, the per-user credential daemon of the Codex CLI.
 *
 * - {@link CodexdClient}: a connection that stays up, caches the bearer token until the daemon says it changed,
 *   and turns the daemon's notifications into events.
 * - {@link resolveSocketPath}: where the daemon listens by default (the same rules as `codexctl`).
 * - {@link CodexdError}: the one error type; match on `reason` (and `code`).
 *
 * No runtime dependencies; it never logs, and never shows a token in an error, `toString()` or `util.inspect()`.
 *
 * @packageDocumentation
 */
export { CodexdClient, VERSION } from "./client";
export type {
  CodexdClientEvents,
  CodexdClientOptions,
  ConnectionState,
  DisconnectedEvent,
  ReconnectOptions,
  RequestOptions,
  WaitForLoginOptions,
} from "./client";
export { CodexdError, ErrorCode } from "./errors";
export type { CodexdErrorReason } from "./errors";
export { LineDecoder, LineTooLongError, MAX_LINE_BYTES } from "./lines";
export { resolveSocketPath, SOCKET_ENV, SOCKET_FILE_NAME } from "./paths";
export type { ResolveSocketPathOptions } from "./paths";
export { Method, Notification, PROTOCOL_VERSION } from "./protocol";
export type {
  Account,
  AccountReadResult,
  AccountUpdated,
  AccountUpdatedReason,
  AuthError,
  AuthMethod,
  AuthStatus,
  ClientInfo,
  DaemonStatus,
  InitializeResult,
  LoginCancelStatus,
  LoginCompleted,
  LoginStartParams,
  LoginStartResult,
  WireError,
} from "./protocol";
