/**
 * Wire types of the codexd protocol (version 1), as `docs/PROTOCOL.md` in the codexd repository defines them.
 * Field names are the wire's own (camelCase JSON); every result type lists what the daemon sends today, and a
 * newer daemon may add fields.
 *
 * @packageDocumentation
 */

/** The protocol version this package speaks, sent in `initialize`. */
export const PROTOCOL_VERSION = 1;

/** Method names, as sent on the wire. */
export const Method = {
  initialize: "initialize",
  getAuthStatus: "getAuthStatus",
  accountRead: "account/read",
  loginStart: "account/login/start",
  loginCancel: "account/login/cancel",
  logout: "account/logout",
  daemonStatus: "daemon/status",
  daemonShutdown: "daemon/shutdown",
} as const;

/** Notification names, as sent on the wire. */
export const Notification = {
  accountUpdated: "account/updated",
  loginCompleted: "account/login/completed",
  shuttingDown: "daemon/shuttingDown",
} as const;

/** Who the client is, sent in `initialize` (`clientInfo`). */
export interface ClientInfo {
  name: string;
  version: string;
}

/** Result of `initialize`. */
export interface InitializeResult {
  serverInfo: { name: string; version: string };
  protocolVersion: number;
  /** The daemon's `CODEX_HOME`. */
  codexHome: string;
}

/** How the stored credentials authenticate: `null` when nothing usable is stored. */
export type AuthMethod = "chatgpt" | "apikey";

/**
 * Why stored credentials cannot be used: `authFileCorrupt`, `authFileUnreadable`, or `refreshFailed` (the
 * issuer refused the refresh token for good; `issuerCode` is its code, e.g. `refresh_token_reused`).
 */
export interface AuthError {
  reason: "authFileCorrupt" | "authFileUnreadable" | "refreshFailed" | (string & {});
  /** A sentence for people; never contains a secret. */
  message: string;
  issuerCode?: string | null;
}

/**
 * Result of `getAuthStatus` without the token: this package never hands out an object that holds a token
 * (`token()` and `refresh()` return the bare string), so `authToken` is always `null` here.
 */
export interface AuthStatus {
  authMethod: AuthMethod | null;
  authToken: null;
  requiresOpenaiAuth: boolean;
  /** ChatGPT workspace id (send it as the `ChatGPT-Account-ID` header); `null` for API keys. */
  accountId: string | null;
  planType: string | null;
  /** Expiry of the access token, RFC 3339 UTC, when the token is a readable JWT. */
  expiresAt: string | null;
  /** Credential generation: grows by one on every change of the credentials while one daemon runs. */
  generation: number;
  /** Present only when something is stored but cannot be used. */
  authError?: AuthError | null;
}

/** The account behind the credentials (`account/read`). */
export type Account =
  | { type: "apiKey" }
  | { type: "chatgpt"; email: string | null; planType: string | null; accountId: string | null };

/** Result of `account/read`. */
export interface AccountReadResult {
  account: Account | null;
  requiresOpenaiAuth: boolean;
}

/** Params of `account/login/start`. */
export type LoginStartParams =
  | { type: "apiKey"; apiKey: string }
  | { type: "chatgpt" }
  | { type: "chatgptDeviceCode" };

/** Result of `account/login/start`. */
export type LoginStartResult =
  | { type: "apiKey" }
  /** Open `authUrl` in a browser on this machine. */
  | { type: "chatgpt"; loginId: string; authUrl: string }
  /** Show both: the user opens `verificationUrl` on any device and types `userCode`. */
  | { type: "chatgptDeviceCode"; loginId: string; verificationUrl: string; userCode: string };

/** Result of `account/login/cancel`. */
export type LoginCancelStatus = "canceled" | "notFound";

/** Result of `daemon/status`. */
export interface DaemonStatus {
  version: string;
  pid: number;
  uptimeSeconds: number;
  /** Which credential store the daemon uses, e.g. `file`. */
  store: string;
  codexHome: string;
  socket: string;
  /** Open connections, this one included. */
  connections: number;
  /** Connections that called `initialize`. */
  subscribers: number;
  generation: number;
  authMethod: AuthMethod | null;
  /** The store's `last_refresh`, RFC 3339. */
  lastRefresh: string | null;
  /** When codexd plans to refresh next; `null` for API keys, when logged out, and after a refresh failed for good. */
  nextRefresh: string | null;
  authError: AuthError | null;
}

/** Why the credentials changed (`account/updated`'s `reason`). */
export type AccountUpdatedReason =
  | "login"
  | "logout"
  | "refresh"
  | "external"
  | "policy"
  | "refreshFailed"
  | (string & {});

/** Params of the `account/updated` notification (the `accountUpdated` event). */
export interface AccountUpdated {
  /** `null` when nothing usable is stored any more: show a "Sign in" action. */
  authMode: AuthMethod | null;
  planType: string | null;
  accountId: string | null;
  generation: number;
  reason: AccountUpdatedReason;
  authError?: AuthError | null;
}

/** Params of the `account/login/completed` notification (the `loginCompleted` event). */
export interface LoginCompleted {
  /** `null` for API-key logins. */
  loginId: string | null;
  success: boolean;
  /** A sentence for people when `success` is `false`. */
  error: string | null;
}

/** A JSON-RPC error object as the daemon sends it. */
export interface WireError {
  code: number;
  message: string;
  data?: { reason?: string; [key: string]: unknown } | null;
}
