import * as net from "node:net";
import { CodexdError } from "./errors";
import { LineDecoder, LineTooLongError, MAX_LINE_BYTES } from "./lines";
import type { WireError } from "./protocol";

/** What a {@link Connection} tells its owner. */
export interface ConnectionHandlers {
  /** A notification arrived (a message with `method` and no `id`). */
  onNotification(method: string, params: unknown): void;
  /** Something arrived that is not the protocol but did not end the connection. */
  onProtocolError(error: CodexdError): void;
  /** The connection ended; `error` says why. Called once, after every pending call was failed with it. */
  onClose(error: CodexdError): void;
}

interface Pending {
  method: string;
  resolve(result: unknown): void;
  reject(error: CodexdError): void;
  timer: NodeJS.Timeout;
}

/**
 * Opens the socket (or named pipe) at `path`. Fails with reason `unreachable` when nothing listens there
 * (`ENOENT`, `ECONNREFUSED`, ...) or when the connection is not made within `timeoutMs`.
 */
export function openSocket(path: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path });
    const fail = (error: CodexdError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(new CodexdError(`cannot reach codexd at ${path}: no connection within ${timeoutMs} ms`, { reason: "unreachable" })),
      timeoutMs,
    );
    socket.once("error", (cause: NodeJS.ErrnoException) => {
      const what = cause.code ?? cause.message;
      fail(new CodexdError(`cannot reach codexd at ${path}: ${what}`, { reason: "unreachable", cause }));
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

/**
 * One connection to the daemon: writes request lines, reads reply and notification lines (at most
 * {@link MAX_LINE_BYTES} each), hands each reply to the call waiting for its id, and fails every waiting call
 * when the connection ends. It never keeps a request's params (which may hold an API key) after writing them.
 */
export class Connection {
  readonly #socket: net.Socket;
  readonly #handlers: ConnectionHandlers;
  readonly #pending = new Map<number, Pending>();
  readonly #decoder = new LineDecoder();
  #nextId = 1;
  #closeError: CodexdError | undefined;
  #closed = false;
  readonly #closedPromise: Promise<void>;

  constructor(socket: net.Socket, handlers: ConnectionHandlers) {
    this.#socket = socket;
    this.#handlers = handlers;
    this.#closedPromise = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (cause: NodeJS.ErrnoException) => {
      this.#closeError ??= new CodexdError(`the connection to codexd failed: ${cause.code ?? cause.message}`, {
        reason: "unreachable",
        cause,
      });
    });
    socket.on("close", () => this.#onClose());
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Calls waiting for their reply. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Sends one request and waits for its reply (at most `timeoutMs`). */
  request(method: string, params: object | undefined, timeoutMs: number): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(this.#failure(method, this.#closeError));
    }
    const id = this.#nextId++;
    const message: Record<string, unknown> = { jsonrpc: "2.0", id, method };
    if (params !== undefined) {
      message.params = params;
    }
    const line = JSON.stringify(message);
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      return Promise.reject(
        new CodexdError(`${method}: the request is longer than ${MAX_LINE_BYTES} bytes; not sent`, {
          code: -32600,
          reason: "frameTooLarge",
          method,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) {
          reject(new CodexdError(`${method}: no answer from codexd within ${timeoutMs} ms`, { reason: "timeout", method }));
        }
      }, timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#socket.write(`${line}\n`);
    });
  }

  /** Ends the connection; pending calls fail with `error`. Resolves once the socket has closed. */
  close(error: CodexdError): Promise<void> {
    this.#closeError ??= error;
    this.#socket.destroy();
    return this.#closedPromise;
  }

  #onData(chunk: Buffer): void {
    let lines: string[];
    try {
      lines = this.#decoder.push(chunk);
    } catch (e) {
      const length = e instanceof LineTooLongError ? e.length : 0;
      void this.close(
        new CodexdError(`codexd sent a line longer than ${MAX_LINE_BYTES} bytes (${length} bytes); connection dropped`, {
          reason: "protocolError",
        }),
      );
      return;
    }
    for (const line of lines) {
      if (this.#closed || this.#closeError) {
        return;
      }
      this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      // Never quote the line: it may hold a token.
      void this.close(
        new CodexdError(`codexd sent a line that is not JSON (${line.length} characters); connection dropped`, {
          reason: "protocolError",
        }),
      );
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      void this.close(
        new CodexdError("codexd sent a line that is not a JSON object; connection dropped", { reason: "protocolError" }),
      );
      return;
    }
    const m = message as Record<string, unknown>;
    if (typeof m.method === "string" && !("id" in m)) {
      this.#handlers.onNotification(m.method, m.params);
      return;
    }
    if ("result" in m || "error" in m) {
      this.#onReply(m);
      return;
    }
    this.#handlers.onProtocolError(
      new CodexdError("codexd sent a message that is neither a reply nor a notification; ignored", {
        reason: "protocolError",
      }),
    );
  }

  #onReply(m: Record<string, unknown>): void {
    let id: number | undefined;
    if (typeof m.id === "number") {
      id = m.id;
    } else if (m.id === null && this.#pending.size === 1) {
      // The daemon could not read a request (parse error, frame too large): with one call waiting, it is that one.
      id = this.#pending.keys().next().value;
    }
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (id === undefined || pending === undefined) {
      // A reply to a call that timed out, or to nothing we know.
      if (m.id === null && "error" in m) {
        this.#handlers.onProtocolError(CodexdError.fromWire(undefined, m.error as WireError));
      }
      return;
    }
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if ("error" in m && m.error !== undefined && m.error !== null) {
      pending.reject(CodexdError.fromWire(pending.method, m.error as WireError));
    } else {
      pending.resolve(m.result);
    }
  }

  #onClose(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    const error =
      this.#closeError ?? new CodexdError("the connection to codexd closed", { reason: "unreachable" });
    this.#closeError = error;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(this.#failure(p.method, error));
    }
    this.#handlers.onClose(error);
  }

  /** The error a call on `method` fails with after the connection ended because of `error`. */
  #failure(method: string, error: CodexdError | undefined): CodexdError {
    const why = error?.message ?? "the connection to codexd closed";
    return new CodexdError(`${method}: ${why}`, {
      code: error?.code ?? null,
      reason: error?.reason ?? "unreachable",
      method,
      cause: error,
    });
  }
}
