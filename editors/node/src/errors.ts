import type { AuthError, WireError } from "./protocol";

/**
 * Why a call failed: the daemon's `data.reason` for errors it answered, an {@link AuthError} reason for a
 * token that cannot be served, or one of the client's own reasons.
 *
 * Daemon reasons (see the protocol's error table): `parseError`, `invalidRequest`, `frameTooLarge`,
 * `methodNotFound`, `invalidParams`, `internalError`, `notLoggedIn`, `policyRefused`, `refreshUnavailable`,
 * `shuttingDown`, `loginInProgress`, `notImplemented`, `storeError`.
 *
 * Token reasons (code `-32001`): `notLoggedIn`, `refreshFailed`, `authFileCorrupt`, `authFileUnreadable`.
 *
 * Client reasons (code `null`):
 * - `unreachable`: the daemon cannot be reached (not running, wrong socket, connection refused), or the
 *   connection dropped before the answer arrived.
 * - `timeout`: no answer within the request timeout; the connection stays open.
 * - `notConnected`: called before {@link CodexdClient.connect}.
 * - `closed`: called after {@link CodexdClient.close}, or the client was closed while the call waited.
 * - `protocolError`: the daemon sent something that is not the protocol (a line over 1 MiB, not JSON, an
 *   unexpected result shape); the connection is dropped and re-established.
 * - `loginTimedOut`: {@link CodexdClient.waitForLogin} gave up; the login itself goes on.
 */
export type CodexdErrorReason =
  | "parseError"
  | "invalidRequest"
  | "frameTooLarge"
  | "methodNotFound"
  | "invalidParams"
  | "internalError"
  | "notLoggedIn"
  | "policyRefused"
  | "refreshUnavailable"
  | "shuttingDown"
  | "loginInProgress"
  | "notImplemented"
  | "storeError"
  | "refreshFailed"
  | "authFileCorrupt"
  | "authFileUnreadable"
  | "unreachable"
  | "timeout"
  | "notConnected"
  | "closed"
  | "protocolError"
  | "loginTimedOut"
  | (string & {});

/** JSON-RPC error codes the daemon uses (the protocol's error table). */
export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  notLoggedIn: -32001,
  policyRefused: -32002,
  refreshUnavailable: -32003,
  shuttingDown: -32004,
  loginInProgress: -32005,
  notImplemented: -32006,
  storeError: -32007,
} as const;

const REASON_BY_CODE: Record<number, string> = Object.fromEntries(
  Object.entries(ErrorCode).map(([reason, code]) => [code, reason]),
);

/**
 * The one error type of this package. Match on {@link CodexdError.reason} (and {@link CodexdError.code} for
 * daemon errors); `message` is for people.
 *
 * It never holds a token or an API key: messages come from the daemon (which never puts a secret in them) or
 * name only the method, the socket path and the reason.
 */
export class CodexdError extends Error {
  /** The JSON-RPC error code when the daemon refused the call (`-32001` also for a token that cannot be
   * served); `null` for failures on the client's side (`unreachable`, `timeout`, ...). */
  readonly code: number | null;
  /** Why: see {@link CodexdErrorReason}. */
  readonly reason: CodexdErrorReason;
  /** The method of the call that failed, when there is one. */
  readonly method: string | undefined;
  /** For token errors: why the stored credentials cannot be used, as the daemon said. */
  readonly authError: AuthError | undefined;
  /** The error object's `data` as the daemon sent it. */
  readonly data: unknown;

  constructor(
    message: string,
    options: {
      code?: number | null;
      reason: CodexdErrorReason;
      method?: string;
      authError?: AuthError;
      data?: unknown;
      cause?: unknown;
    },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CodexdError";
    this.code = options.code ?? null;
    this.reason = options.reason;
    this.method = options.method;
    this.authError = options.authError;
    this.data = options.data;
  }

  /** True when the daemon is not there (not running, stopped, or the connection dropped). */
  get isUnreachable(): boolean {
    return this.reason === "unreachable";
  }

  /** True when there are no usable credentials: the user must sign in (again). */
  get isNotLoggedIn(): boolean {
    return this.code === ErrorCode.notLoggedIn;
  }

  /** Builds the error for a JSON-RPC error the daemon answered. */
  static fromWire(method: string | undefined, error: WireError): CodexdError {
    const code = typeof error.code === "number" ? error.code : ErrorCode.internalError;
    const data = error.data ?? undefined;
    const reason =
      data && typeof data === "object" && typeof data.reason === "string"
        ? data.reason
        : (REASON_BY_CODE[code] ?? "internalError");
    const text = typeof error.message === "string" ? error.message : "error without a message";
    return new CodexdError(method ? `${method}: ${text}` : text, { code, reason, method, data });
  }
}
