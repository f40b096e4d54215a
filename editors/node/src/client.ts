import { EventEmitter } from "node:events";
import { inspect } from "node:util";
import { Connection, openSocket } from "./connection";
import { CodexdError, ErrorCode } from "./errors";
import { resolveSocketPath } from "./paths";
import {
  Method,
  Notification,
  PROTOCOL_VERSION,
  type Account,
  type AccountReadResult,
  type AccountUpdated,
  type AuthError,
  type AuthStatus,
  type ClientInfo,
  type DaemonStatus,
  type InitializeResult,
  type LoginCancelStatus,
  type LoginCompleted,
  type LoginStartParams,
  type LoginStartResult,
} from "./protocol";

/** This package's version, sent as `clientInfo.version` unless {@link CodexdClientOptions.clientInfo} says otherwise. */
export const VERSION = "0.1.0";

/** Backoff between reconnect attempts: `min(maxDelayMs, initialDelayMs * 2^n)`, each scaled by a random factor in [0.5, 1]. */
export interface ReconnectOptions {
  /** First delay after the connection is lost (default 100 ms). */
  initialDelayMs?: number;
  /** Cap of the delay (default 5,000 ms). */
  maxDelayMs?: number;
}

/** Options of {@link CodexdClient}. Every field is optional. */
export interface CodexdClientOptions {
  /** Socket (or named pipe) of the daemon; default {@link resolveSocketPath}`()`. */
  socketPath?: string;
  /** Sent in `initialize`; default `{name: "codexd-client-node", version: VERSION}`. Name your extension here. */
  clientInfo?: ClientInfo;
  /**
   * How long a call waits for its answer (default 60,000 ms). The daemon may take a while on purpose: a token
   * that has already expired waits for its refresh (up to `CODEXD_HTTP_TIMEOUT_MS`, 30 s by default, plus lock
   * waits), a logout may wait for the Codex CLI's lock (about 12 s) and the revoke (10 s).
   */
  requestTimeoutMs?: number;
  /** How long one connection attempt (connect plus `initialize`) may take (default 5,000 ms). */
  connectTimeoutMs?: number;
  /**
   * Reconnect after the daemon goes away (default `true`, with the default {@link ReconnectOptions}); `false`
   * leaves the client disconnected until {@link CodexdClient.connect} is called again.
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * How long a call made while the client is disconnected waits for the reconnect before it fails with
   * reason `unreachable`. Default 0: fail at once, so that a user action never hangs on a daemon that is
   * not there. A call made while a connection attempt is in progress always waits for that attempt.
   */
  reconnectWaitMs?: number;
}

/** Where the client is. */
export type ConnectionState = "idle" | "connecting" | "connected" | "disconnected" | "closed";

/** Payload of the `disconnected` event. */
export interface DisconnectedEvent {
  /** Why the connection ended (reason `unreachable` when the daemon closed it or went away, `closed` after {@link CodexdClient.close}, `protocolError`). */
  error: CodexdError;
  /** Whether the client is going to reconnect on its own. */
  willReconnect: boolean;
}

/** Options of {@link CodexdClient.waitForLogin}. */
export interface WaitForLoginOptions {
  /** Give up (reason `loginTimedOut`) after this long; default: wait until the login completes (the daemon ends
   * every login by itself: 10 minutes for a browser login, 15 for a device code) or the connection ends. */
  timeoutMs?: number;
}

/** Per-call options of {@link CodexdClient.request}. */
export interface RequestOptions {
  /** Overrides {@link CodexdClientOptions.requestTimeoutMs} for this call. */
  timeoutMs?: number;
}

/** The events of {@link CodexdClient} and their arguments. */
export interface CodexdClientEvents {
  /** `account/updated`: the credentials changed (login, logout, refresh, external, policy, refreshFailed).
   * The token cache is already empty when this runs. `authMode: null` means signed out. */
  accountUpdated: [update: AccountUpdated];
  /** `account/login/completed`: a login started by any client finished (check `success`). */
  loginCompleted: [completed: LoginCompleted];
  /** `daemon/shuttingDown`: the daemon is stopping; the token cache is already empty. A `disconnected` event
   * follows, then (with reconnect on) a `connected` event when a daemon serves the socket again. */
  shuttingDown: [];
  /** A connection was made and `initialize` answered (the first time, and after every reconnect). State
   * learnt before it is stale: ask again (`status()`, `token()`). */
  connected: [info: InitializeResult];
  /** The connection ended. */
  disconnected: [event: DisconnectedEvent];
  /** The daemon sent something that is not the protocol (a line that is not JSON, over 1 MiB, or neither a
   * reply nor a notification), which no call is waiting for. A malformed line also drops the connection
   * (`disconnected` follows, then a reconnect). Emitted only while an `error` listener is attached, so an
   * application without one is not brought down by it. */
  error: [error: CodexdError];
}

type EventName = keyof CodexdClientEvents;
type Listener<E extends EventName> = (...args: CodexdClientEvents[E]) => void;

// Typed overloads of EventEmitter's methods for CodexdClient's events.
export interface CodexdClient {
  on<E extends EventName>(event: E, listener: Listener<E>): this;
  once<E extends EventName>(event: E, listener: Listener<E>): this;
  off<E extends EventName>(event: E, listener: Listener<E>): this;
  addListener<E extends EventName>(event: E, listener: Listener<E>): this;
  removeListener<E extends EventName>(event: E, listener: Listener<E>): this;
  prependListener<E extends EventName>(event: E, listener: Listener<E>): this;
  prependOnceListener<E extends EventName>(event: E, listener: Listener<E>): this;
  emit<E extends EventName>(event: E, ...args: CodexdClientEvents[E]): boolean;
}

interface CachedToken {
  token: string;
  generation: number;
  /** Epoch milliseconds after which the cache is bypassed; `Infinity` when the expiry is unknown. */
  expiresAtMs: number;
}

interface ConnectionWaiter {
  /** Fail when the attempt in progress fails, instead of waiting for later ones. */
  failOnAttemptFailure: boolean;
  resolve(): void;
  reject(error: CodexdError): void;
}

interface LoginWaiter {
  loginId: string | null;
  resolve(completed: LoginCompleted): void;
  reject(error: CodexdError): void;
}

/** How many `account/login/completed` notifications are kept for a {@link CodexdClient.waitForLogin} that comes late. */
const RECENT_LOGINS = 32;

const DEFAULTS = {
  requestTimeoutMs: 60_000,
  connectTimeoutMs: 5_000,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
};

/**
 * A connection to codexd that stays up: it subscribes (`initialize`), caches the bearer token until the daemon
 * says it changed, turns notifications into events, and reconnects with backoff after the daemon restarts.
 *
 * ```ts
 * const client = new CodexdClient({ clientInfo: { name: "my-extension", version: "1.0.0" } });
 * client.on("accountUpdated", (u) => { if (u.authMode === null) showSignIn(); });
 * await client.connect();
 * const token = await client.token(); // before each backend request; never store it
 * ```
 *
 * The client never logs, and no error message, `toString()`, `JSON.stringify()` or `util.inspect()` output of
 * it shows a token or an API key.
 */
export class CodexdClient extends EventEmitter {
  /** The socket (or named pipe) this client connects to. */
  readonly socketPath: string;

  readonly #clientInfo: ClientInfo;
  readonly #requestTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #reconnect: Required<ReconnectOptions> | null;
  readonly #reconnectWaitMs: number;

  #state: ConnectionState = "idle";
  #conn: Connection | null = null;
  /** The connection of the attempt in progress, until `initialize` has answered. */
  #opening: Connection | null = null;
  #attempt: Promise<InitializeResult> | null = null;
  #initResult: InitializeResult | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #failedAttempts = 0;
  readonly #connectionWaiters = new Set<ConnectionWaiter>();
  readonly #loginWaiters = new Set<LoginWaiter>();
  readonly #recentLogins = new Map<string | null, LoginCompleted>();

  #cache: CachedToken | null = null;
  /** Bumped whenever cached tokens become invalid; an answer asked for in an older epoch is not cached. */
  #epoch = 0;
  #tokenFlight: { epoch: number; promise: Promise<string> } | null = null;

  constructor(options: CodexdClientOptions = {}) {
    super();
    this.socketPath = options.socketPath ?? resolveSocketPath();
    this.#clientInfo = options.clientInfo ?? { name: "codexd-client-node", version: VERSION };
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const reconnect = options.reconnect ?? true;
    this.#reconnect =
      reconnect === false
        ? null
        : {
            initialDelayMs: (reconnect === true ? undefined : reconnect.initialDelayMs) ?? DEFAULTS.initialDelayMs,
            maxDelayMs: (reconnect === true ? undefined : reconnect.maxDelayMs) ?? DEFAULTS.maxDelayMs,
          };
    this.#reconnectWaitMs = options.reconnectWaitMs ?? 0;
  }

  /** Where the client is: `idle` (before {@link connect}), `connecting`, `connected`, `disconnected`
   * (waiting to reconnect, or for {@link connect} when reconnect is off), `closed` (after {@link close}). */
  get state(): ConnectionState {
    return this.#state;
  }

  /** What the daemon answered to the last `initialize`, `null` before the first connection. */
  get serverInfo(): InitializeResult | null {
    return this.#initResult;
  }

  /**
   * Connects and subscribes (`initialize` with `clientInfo`); resolves with the daemon's answer. Fails with
   * reason `unreachable` when the daemon cannot be reached within `connectTimeoutMs`.
   *
   * From the first call on, the client keeps the connection up until {@link close}: with reconnect on, a failed
   * first attempt is retried in the background too, and `connected` is emitted when it succeeds. Calling it
   * while connected returns the last answer; while disconnected, it tries at once.
   */
  connect(): Promise<InitializeResult> {
    switch (this.#state) {
      case "closed":
        return Promise.reject(new CodexdError("the client is closed", { reason: "closed" }));
      case "connected":
        return Promise.resolve(this.#initResult as InitializeResult);
      case "connecting":
        return this.#attempt as Promise<InitializeResult>;
      default:
        this.#clearReconnectTimer();
        return this.#startAttempt();
    }
  }

  /**
   * The bearer token (the ChatGPT access token or the API key). Call it before each backend request and do not
   * keep the result: it is cached here, and served from the cache until the daemon reports a change
   * (`account/updated`), stops (`daemon/shuttingDown`), the client reconnects, an answer carries another
   * `generation`, or the token's `expiresAt` passes.
   *
   * Fails with code `-32001` when there is no usable login: reason `notLoggedIn`, or the stored login's
   * problem (`refreshFailed`, `authFileCorrupt`, `authFileUnreadable`, with {@link CodexdError.authError}).
   */
  token(): Promise<string> {
    const cached = this.#cache;
    if (cached !== null && Date.now() < cached.expiresAtMs) {
      return Promise.resolve(cached.token);
    }
    const flight = this.#tokenFlight;
    if (flight !== null && flight.epoch === this.#epoch) {
      return flight.promise;
    }
    const epoch = this.#epoch;
    const promise = this.#fetchToken(Method.getAuthStatus, { includeToken: true }, epoch);
    this.#tokenFlight = { epoch, promise };
    const clear = (): void => {
      if (this.#tokenFlight?.promise === promise) {
        this.#tokenFlight = null;
      }
    };
    promise.then(clear, clear);
    return promise;
  }

  /**
   * Refreshes the ChatGPT tokens now (`getAuthStatus {includeToken, refreshToken}`), e.g. after the backend
   * answered 401, and returns the new token (an API key is returned as it is). Fails like {@link token}; when
   * the issuer refused the refresh for good the reason is `refreshFailed`; when it could not be reached, the
   * daemon's `-32003 refreshUnavailable` (the current token is still served by {@link token}).
   */
  refresh(): Promise<string> {
    return this.#fetchToken(Method.getAuthStatus, { includeToken: true, refreshToken: true }, this.#epoch);
  }

  /** Who is logged in and how (`getAuthStatus` without the token). */
  async status(): Promise<AuthStatus> {
    const result = asObject(await this.request(Method.getAuthStatus, { includeToken: false }), Method.getAuthStatus);
    const status = { ...result, authToken: null } as AuthStatus;
    this.#observeGeneration(status.generation);
    return status;
  }

  /** The account behind the credentials (`account/read`), `null` when not logged in. */
  async account(): Promise<Account | null> {
    const result = asObject(await this.request(Method.accountRead, {}), Method.accountRead) as unknown as AccountReadResult;
    return result.account ?? null;
  }

  /** Logs out everywhere (`account/logout`): every subscriber receives `accountUpdated` with reason `logout`. */
  async logout(): Promise<void> {
    await this.request(Method.logout);
    this.#dropTokens();
  }

  /**
   * Starts a login run by the daemon (`account/login/start`). An API key is stored at once; a ChatGPT login
   * returns a `loginId` with the `authUrl` to open, or the `verificationUrl` and `userCode` to show. Its end
   * arrives as `loginCompleted` (see {@link waitForLogin}).
   */
  async loginStart(params: LoginStartParams): Promise<LoginStartResult> {
    if (params.type === "apiKey") {
      // API-key logins all complete with `loginId: null`: forget the previous one so that
      // `waitForLogin(null)` waits for this one.
      this.#recentLogins.delete(null);
    }
    return asObject(await this.request(Method.loginStart, params), Method.loginStart) as unknown as LoginStartResult;
  }

  /** Cancels a login in progress (`account/login/cancel`): `canceled`, or `notFound` when it already ended. */
  async loginCancel(loginId: string): Promise<LoginCancelStatus> {
    const result = asObject(await this.request(Method.loginCancel, { loginId }), Method.loginCancel);
    return result.status as LoginCancelStatus;
  }

  /**
   * Waits for `account/login/completed` of `loginId` (`null` for an API-key login) and resolves with it, also
   * when it failed: check `success`. A completion that arrived shortly before the call counts. Fails with
   * reason `loginTimedOut` after `timeoutMs` (the login goes on: {@link loginCancel} stops it), `shuttingDown`
   * when the daemon stops, `unreachable` when the connection ends (or is down when called), `closed` on {@link close}.
   */
  waitForLogin(loginId: string | null, options: WaitForLoginOptions = {}): Promise<LoginCompleted> {
    const done = this.#recentLogins.get(loginId);
    if (done !== undefined) {
      return Promise.resolve(done);
    }
    const unavailable = this.#unavailableError("waitForLogin");
    if (unavailable !== null) {
      return Promise.reject(unavailable);
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: LoginWaiter = {
        loginId,
        resolve: (completed) => {
          clearTimeout(timer);
          this.#loginWaiters.delete(waiter);
          resolve(completed);
        },
        reject: (error) => {
          clearTimeout(timer);
          this.#loginWaiters.delete(waiter);
          reject(error);
        },
      };
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            waiter.reject(
              new CodexdError(`login ${loginId ?? "(API key)"} did not complete within ${options.timeoutMs} ms`, {
                reason: "loginTimedOut",
              }),
            ),
          options.timeoutMs,
        );
      }
      this.#loginWaiters.add(waiter);
    });
  }

  /** The daemon's own state (`daemon/status`). */
  async daemonStatus(): Promise<DaemonStatus> {
    const status = asObject(await this.request(Method.daemonStatus), Method.daemonStatus) as unknown as DaemonStatus;
    this.#observeGeneration(status.generation);
    return status;
  }

  /** Asks the daemon to shut down (`daemon/shutdown`); `shuttingDown` and `disconnected` follow. */
  async daemonShutdown(): Promise<void> {
    await this.request(Method.daemonShutdown);
  }

  /**
   * Sends any request and resolves with its `result` (for methods this package does not wrap yet). The
   * typed methods above are this plus the token cache and generation bookkeeping.
   */
  async request(method: string, params?: object, options: RequestOptions = {}): Promise<unknown> {
    const conn = await this.#connection(method);
    return conn.request(method, params, options.timeoutMs ?? this.#requestTimeoutMs);
  }

  /**
   * Closes the connection and stops reconnecting; calls still waiting fail with reason `closed`. The client
   * cannot be used afterwards. Resolves once the socket is closed.
   */
  async close(): Promise<void> {
    if (this.#state === "closed") {
      return;
    }
    const wasConnected = this.#state === "connected";
    this.#state = "closed";
    this.#clearReconnectTimer();
    this.#dropTokens();
    const error = new CodexdError("the client was closed", { reason: "closed" });
    for (const waiter of [...this.#connectionWaiters]) {
      waiter.reject(error);
    }
    for (const waiter of [...this.#loginWaiters]) {
      waiter.reject(error);
    }
    const conns = [this.#conn, this.#opening];
    this.#conn = null;
    for (const conn of conns) {
      if (conn !== null) {
        await conn.close(error);
      }
    }
    if (wasConnected) {
      this.#emit("disconnected", { error, willReconnect: false });
    }
  }

  /** A one-line description without secrets. */
  override toString(): string {
    return `CodexdClient(${this.socketPath}, ${this.#state})`;
  }

  /** What `JSON.stringify` shows: the socket and the state, never a token. */
  toJSON(): { socketPath: string; state: ConnectionState; tokenCached: boolean } {
    return { socketPath: this.socketPath, state: this.#state, tokenCached: this.#cache !== null };
  }

  /** What `util.inspect` and `console.log` show: the socket and the state, never a token. */
  [inspect.custom](): string {
    return `CodexdClient ${inspect(this.toJSON())}`;
  }

  // ---- connection management ------------------------------------------------------------------------------

  #startAttempt(): Promise<InitializeResult> {
    this.#state = "connecting";
    const attempt = this.#connectOnce();
    this.#attempt = attempt;
    attempt.then(
      () => {
        this.#attempt = null;
      },
      (error: CodexdError) => {
        this.#attempt = null;
        if (this.#state === "closed") {
          return;
        }
        this.#state = "disconnected";
        for (const waiter of [...this.#connectionWaiters]) {
          if (waiter.failOnAttemptFailure) {
            waiter.reject(error);
          }
        }
        this.#scheduleReconnect();
      },
    );
    return attempt;
  }

  async #connectOnce(): Promise<InitializeResult> {
    const socket = await openSocket(this.socketPath, this.#connectTimeoutMs);
    const conn: Connection = new Connection(socket, {
      onNotification: (method, params) => {
        if (this.#conn === conn) {
          this.#onNotification(method, params);
        }
      },
      onProtocolError: (error) => this.#emit("error", error),
      onClose: (error) => this.#onConnectionClosed(conn, error),
    });
    if (this.#state === "closed") {
      await conn.close(new CodexdError("the client was closed", { reason: "closed" }));
      throw new CodexdError("the client was closed", { reason: "closed" });
    }
    let result: InitializeResult;
    this.#opening = conn;
    try {
      const params = { clientInfo: this.#clientInfo, protocolVersion: PROTOCOL_VERSION };
      result = asObject(
        await conn.request(Method.initialize, params, this.#connectTimeoutMs),
        Method.initialize,
      ) as unknown as InitializeResult;
    } catch (error) {
      await conn.close(error as CodexdError);
      throw error;
    } finally {
      this.#opening = null;
    }
    // `close()` may have run while `initialize` was on its way: the state is then "closed".
    if ((this.#state as ConnectionState) === "closed") {
      await conn.close(new CodexdError("the client was closed", { reason: "closed" }));
      throw new CodexdError("the client was closed", { reason: "closed" });
    }
    if (conn.closed) {
      throw new CodexdError(`codexd at ${this.socketPath} closed the connection after initialize`, {
        reason: "unreachable",
      });
    }
    this.#conn = conn;
    this.#state = "connected";
    this.#failedAttempts = 0;
    this.#initResult = result;
    // A new connection may be a new daemon whose generation counts from 0 again.
    this.#dropTokens();
    for (const waiter of [...this.#connectionWaiters]) {
      waiter.resolve();
    }
    this.#emit("connected", result);
    return result;
  }

  #onConnectionClosed(conn: Connection, error: CodexdError): void {
    if (this.#conn !== conn) {
      return; // an attempt that failed, or a connection replaced meanwhile: its owner already knows
    }
    this.#conn = null;
    this.#dropTokens();
    const unreachable = new CodexdError(`codexd went away: ${error.message}`, { reason: "unreachable", cause: error });
    for (const waiter of [...this.#loginWaiters]) {
      waiter.reject(unreachable);
    }
    if (this.#state !== "connected") {
      return;
    }
    if (error.reason === "protocolError") {
      this.#emit("error", error);
    }
    this.#state = "disconnected";
    this.#emit("disconnected", { error, willReconnect: this.#reconnect !== null });
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#reconnect === null || this.#state !== "disconnected" || this.#reconnectTimer !== null) {
      if (this.#reconnect === null) {
        // No reconnect: calls waiting for one would wait in vain.
        const error = new CodexdError(`cannot reach codexd at ${this.socketPath} (reconnect is off)`, {
          reason: "unreachable",
        });
        for (const waiter of [...this.#connectionWaiters]) {
          waiter.reject(error);
        }
      }
      return;
    }
    const { initialDelayMs, maxDelayMs } = this.#reconnect;
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(this.#failedAttempts, 30));
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    this.#failedAttempts += 1;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === "disconnected") {
        this.#startAttempt().catch(() => {
          // #startAttempt already scheduled the next try.
        });
      }
    }, delay);
    // A client waiting to reconnect does not keep the process alive by itself.
    this.#reconnectTimer.unref();
  }

  #clearReconnectTimer(): void {
    if (this.#reconnectTimer !== null) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
  }

  /** The connection to send `method` on, waiting for a connection attempt (or a reconnect) as documented. */
  async #connection(method: string): Promise<Connection> {
    const unavailable = this.#unavailableError(method);
    if (unavailable !== null) {
      throw unavailable;
    }
    if (this.#state === "connected" && this.#conn !== null) {
      return this.#conn;
    }
    const waitMs =
      this.#reconnect !== null && this.#reconnectWaitMs > 0
        ? this.#reconnectWaitMs
        : this.#state === "connecting"
          ? this.#connectTimeoutMs * 2
          : 0;
    if (waitMs === 0) {
      throw this.#unreachable(method);
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#connectionWaiters.delete(waiter);
        reject(this.#unreachable(method, ` (waited ${waitMs} ms for a reconnect)`));
      }, waitMs);
      const waiter: ConnectionWaiter = {
        failOnAttemptFailure: this.#reconnectWaitMs === 0,
        resolve: () => {
          clearTimeout(timer);
          this.#connectionWaiters.delete(waiter);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          this.#connectionWaiters.delete(waiter);
          reject(
            new CodexdError(`${method}: ${error.message}`, {
              code: error.code,
              reason: error.reason,
              method,
              cause: error,
            }),
          );
        },
      };
      this.#connectionWaiters.add(waiter);
    });
    if (this.#conn === null) {
      throw this.#unreachable(method);
    }
    return this.#conn;
  }

  /** The error for a call made now, when the state alone rules it out; `null` when it may go ahead (or wait). */
  #unavailableError(method: string): CodexdError | null {
    if (this.#state === "closed") {
      return new CodexdError(`${method}: the client is closed`, { reason: "closed", method });
    }
    if (this.#state === "idle") {
      return new CodexdError(`${method}: call connect() first`, { reason: "notConnected", method });
    }
    if (method === "waitForLogin" && this.#state !== "connected") {
      // A login does not survive its daemon: one started before the connection ended never completes here.
      return this.#unreachable(method);
    }
    return null;
  }

  #unreachable(method: string, detail = ""): CodexdError {
    return new CodexdError(`${method}: cannot reach codexd at ${this.socketPath}${detail}`, {
      reason: "unreachable",
      method,
    });
  }

  // ---- notifications and the token cache --------------------------------------------------------------------

  #onNotification(method: string, params: unknown): void {
    switch (method) {
      case Notification.accountUpdated: {
        const update = (isObject(params) ? params : {}) as unknown as AccountUpdated;
        this.#dropTokens();
        this.#emit("accountUpdated", update);
        break;
      }
      case Notification.loginCompleted: {
        const completed = (isObject(params) ? params : {}) as unknown as LoginCompleted;
        const loginId = completed.loginId ?? null;
        this.#recentLogins.delete(loginId);
        this.#recentLogins.set(loginId, completed);
        if (this.#recentLogins.size > RECENT_LOGINS) {
          const oldest = this.#recentLogins.keys().next().value as string | null;
          this.#recentLogins.delete(oldest);
        }
        for (const waiter of [...this.#loginWaiters]) {
          if (waiter.loginId === loginId) {
            waiter.resolve(completed);
          }
        }
        this.#emit("loginCompleted", completed);
        break;
      }
      case Notification.shuttingDown: {
        this.#dropTokens();
        const error = new CodexdError("codexd is shutting down", { code: ErrorCode.shuttingDown, reason: "shuttingDown" });
        for (const waiter of [...this.#loginWaiters]) {
          waiter.reject(error);
        }
        this.#emit("shuttingDown");
        break;
      }
      default:
        // A notification from a newer daemon: ignored.
        break;
    }
  }

  async #fetchToken(method: string, params: object, epoch: number): Promise<string> {
    const result = asObject(await this.request(method, params), method);
    const generation = typeof result.generation === "number" ? result.generation : NaN;
    this.#observeGeneration(generation);
    const token = result.authToken;
    if (typeof token !== "string" || token === "") {
      const authError = isObject(result.authError) ? (result.authError as unknown as AuthError) : undefined;
      const reason = authError?.reason ?? "notLoggedIn";
      const message = authError?.message ?? "not logged in: sign in with loginStart() or `codexctl login`";
      throw new CodexdError(message, { code: ErrorCode.notLoggedIn, reason, method, authError });
    }
    if (epoch === this.#epoch && this.#state === "connected" && Number.isFinite(generation)) {
      const expiresAtMs = typeof result.expiresAt === "string" ? Date.parse(result.expiresAt) : NaN;
      this.#cache = { token, generation, expiresAtMs: Number.isNaN(expiresAtMs) ? Infinity : expiresAtMs };
    }
    return token;
  }

  /** An answer carried `generation`: a cached token of another generation missed a notification. */
  #observeGeneration(generation: number): void {
    if (this.#cache !== null && this.#cache.generation !== generation) {
      this.#dropTokens();
    }
  }

  #dropTokens(): void {
    this.#cache = null;
    this.#epoch += 1;
  }

  /** Emits without letting a listener's exception break the client: it is rethrown on its own tick. */
  #emit<E extends EventName>(event: E, ...args: CodexdClientEvents[E]): void {
    if (event === "error" && this.listenerCount("error") === 0) {
      return;
    }
    try {
      this.emit(event, ...args);
    } catch (e) {
      process.nextTick(() => {
        throw e;
      });
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asObject(value: unknown, method: string): Record<string, unknown> {
  if (!isObject(value)) {
    throw new CodexdError(`${method}: codexd answered with something that is not an object`, {
      reason: "protocolError",
      method,
    });
  }
  return value;
}
