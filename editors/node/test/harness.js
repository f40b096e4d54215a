// @ts-check
// The test kit: starts the real fake issuer and the real codexd on a temporary CODEX_HOME and socket, with a
// cleared environment, and stops them with SIGTERM (SIGKILL after a deadline). No mocks, no sleeps as
// synchronisation: readiness is "the socket answers", and tests wait for events or poll with deadlines.
"use strict";

const assert = require("node:assert/strict");
const { spawn, execFile } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { test } = require("node:test");
const { CodexdClient } = require("../dist/index.js");

const TARGET = path.resolve(__dirname, "..", "..", "..", "target", "debug");

/** Paths of the binaries under test: env CODEXD_BIN, CODEXCTL_BIN, FAKE_ISSUER_BIN, else target/debug. */
const BIN = {
  codexd: process.env.CODEXD_BIN || path.join(TARGET, "codexd"),
  codexctl: process.env.CODEXCTL_BIN || path.join(TARGET, "codexctl"),
  fakeIssuer: process.env.FAKE_ISSUER_BIN || path.join(TARGET, "codexd-fake-issuer"),
};

for (const [name, file] of Object.entries(BIN)) {
  if (!fs.existsSync(file)) {
    throw new Error(
      `${name} binary not found at ${file}: build it with \`cargo build --workspace --bins\` in the repository root, ` +
        "or point CODEXD_BIN / CODEXCTL_BIN / FAKE_ISSUER_BIN at it",
    );
  }
}

/** How long a test waits for anything the daemon does on its own. */
const DEADLINE_MS = 15_000;

/**
 * Resolves with the arguments of the next `event` on `emitter` for which `filter` holds; rejects after
 * `timeoutMs` with a message naming the event.
 * @param {import("node:events").EventEmitter} emitter
 * @param {string} event
 * @param {{ timeoutMs?: number, filter?: (...args: any[]) => boolean }} [options]
 * @returns {Promise<any[]>}
 */
function waitForEvent(emitter, event, options = {}) {
  const timeoutMs = options.timeoutMs ?? DEADLINE_MS;
  const filter = options.filter ?? (() => true);
  return new Promise((resolve, reject) => {
    /** @param {any[]} args */
    const listener = (...args) => {
      if (filter(...args)) {
        clearTimeout(timer);
        emitter.off(event, listener);
        resolve(args);
      }
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no matching '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.on(event, listener);
  });
}

/**
 * Polls `check` until it returns a value other than `undefined`/`false`, or fails after `timeoutMs`.
 * @template T
 * @param {string} what
 * @param {() => Promise<T | undefined | false> | T | undefined | false} check T may be `true`
 * @param {number} [timeoutMs]
 * @returns {Promise<T>}
 */
async function pollUntil(what, check, timeoutMs = DEADLINE_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) {
        return /** @type {T} */ (value);
      }
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${last})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A child process whose stderr is kept for the failure report.
 */
class Child {
  /**
   * @param {string} name
   * @param {import("node:child_process").ChildProcessByStdio<null, import("node:stream").Readable, import("node:stream").Readable>} proc
   */
  constructor(name, proc) {
    this.name = name;
    this.proc = proc;
    this.stderr = "";
    /** @type {number | null} */
    this.exitCode = null;
    /** @type {string | null} */
    this.signal = null;
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        resolve(undefined);
      });
    });
    this.running = true;
    void this.exited.then(() => {
      this.running = false;
    });
  }

  /**
   * SIGTERM, then SIGKILL when it has not exited within `graceMs`.
   * @param {number} [graceMs]
   */
  async stop(graceMs = 5_000) {
    if (!this.running) {
      return;
    }
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill() {
    if (this.running) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }
}

/**
 * The fake issuer: `--port 0`; its URL is on the first line of its stdout.
 * @param {{ authJson?: string, lifetimeSecs?: number, deviceAutoApproveAfter?: number }} options
 */
async function startIssuer(options) {
  const args = ["--port", "0"];
  if (options.authJson) args.push("--auth-json", options.authJson);
  if (options.lifetimeSecs !== undefined) args.push("--access-token-lifetime-secs", String(options.lifetimeSecs));
  if (options.deviceAutoApproveAfter !== undefined) {
    args.push("--device-auto-approve-after", String(options.deviceAutoApproveAfter));
  }
  const proc = spawn(BIN.fakeIssuer, args, { env: cleanEnv(os.tmpdir()), stdio: ["ignore", "pipe", "pipe"] });
  const child = new Child("fake issuer", proc);
  proc.stdout.setEncoding("utf8");
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the fake issuer printed no URL within ${DEADLINE_MS} ms`)), DEADLINE_MS);
    /** @param {string} chunk */
    const onData = (chunk) => {
      out += chunk;
      const newline = out.indexOf("\n");
      if (newline !== -1) {
        clearTimeout(timer);
        proc.stdout.off("data", onData);
        proc.stdout.resume(); // keep draining
        const match = /https?:\/\/\S+/.exec(out.slice(0, newline));
        match ? resolve(match[0]) : reject(new Error(`no URL in the fake issuer's first line: ${out.slice(0, newline)}`));
      }
    };
    proc.stdout.on("data", onData);
    void child.exited.then(() => reject(new Error(`the fake issuer exited early: ${child.stderr}`)));
  });
  return { child, url: /** @type {string} */ (url) };
}

/**
 * A cleared environment: PATH, and HOME pointing at the test's own directory.
 * @param {string} home
 * @param {Record<string, string>} [extra]
 */
function cleanEnv(home, extra = {}) {
  // CODEXD_NO_AUTOSTART: a codexctl run while a test's daemon is down must not start a stray daemon.
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, CODEXD_NO_AUTOSTART: "1", ...extra };
}

/**
 * Resolves once something at `socketPath` answers `daemon/status` (a raw request, not the client under test).
 * @param {string} socketPath
 * @param {Child} daemon
 */
async function waitUntilServing(socketPath, daemon) {
  await pollUntil(`codexd serving ${socketPath}`, /** @returns {Promise<boolean>} */ () => {
    if (!daemon.running) {
      throw new Error(`codexd exited (${daemon.exitCode ?? daemon.signal}): ${daemon.stderr}`);
    }
    return new Promise((resolve) => {
      const socket = net.createConnection({ path: socketPath });
      let data = "";
      const done = (/** @type {boolean} */ ok) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1_000, () => done(false));
      socket.on("error", () => done(false));
      socket.on("connect", () => socket.write('{"jsonrpc":"2.0","id":1,"method":"daemon/status"}\n'));
      socket.on("data", (chunk) => {
        data += chunk.toString("utf8");
        if (data.includes("\n")) done(data.includes('"result"'));
      });
    });
  });
}

/**
 * One fake issuer, one CODEX_HOME, one socket, and the daemons serving it (one at a time).
 */
class World {
  /**
   * @param {{ loggedIn?: boolean, lifetimeSecs?: number, deviceAutoApproveAfter?: number,
   *           daemonEnv?: Record<string, string>, configToml?: string, startDaemon?: boolean }} [options]
   */
  static async start(options = {}) {
    const world = new World(options);
    try {
      await world.#init(options);
    } catch (e) {
      await world.dispose();
      throw e;
    }
    return world;
  }

  /** @param {{ daemonEnv?: Record<string, string> }} options */
  constructor(options) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "codexd-node-"));
    this.home = path.join(this.dir, "home");
    this.socket = path.join(this.dir, "run", "codexd.sock");
    fs.mkdirSync(this.home, { mode: 0o700 });
    this.daemonEnv = options.daemonEnv ?? {};
    /** @type {Child[]} */
    this.daemons = [];
    /** @type {Child | null} */
    this.issuer = null;
    this.issuerUrl = "";
    /** @type {import("../dist/index.js").CodexdClient[]} */
    this.clients = [];
  }

  /** @param {{ loggedIn?: boolean, lifetimeSecs?: number, deviceAutoApproveAfter?: number, configToml?: string, startDaemon?: boolean }} options */
  async #init(options) {
    if (options.configToml) {
      fs.writeFileSync(path.join(this.home, "config.toml"), options.configToml);
    }
    const { child, url } = await startIssuer({
      authJson: options.loggedIn === false ? undefined : path.join(this.home, "auth.json"),
      lifetimeSecs: options.lifetimeSecs,
      deviceAutoApproveAfter: options.deviceAutoApproveAfter,
    });
    this.issuer = child;
    this.issuerUrl = url;
    if (options.startDaemon !== false) {
      await this.startDaemon();
    }
  }

  /** The daemon serving now (the last one started). */
  get daemon() {
    return this.daemons[this.daemons.length - 1];
  }

  /** Starts a codexd on this world's socket and waits until it answers. */
  async startDaemon() {
    const env = cleanEnv(this.dir, { CODEXD_ISSUER: this.issuerUrl, CODEXD_LOGIN_PORTS: "0", ...this.daemonEnv });
    const proc = spawn(BIN.codexd, ["--socket", this.socket, "--codex-home", this.home], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc.stdout.resume();
    const daemon = new Child(`codexd #${this.daemons.length + 1}`, proc);
    this.daemons.push(daemon);
    await waitUntilServing(this.socket, daemon);
    return daemon;
  }

  /**
   * A client of this world's socket, closed by dispose(). Reconnects fast by default.
   * @param {import("../dist/index.js").CodexdClientOptions} [options]
   */
  client(options = {}) {
    const client = new CodexdClient({
      socketPath: this.socket,
      clientInfo: { name: "codexd-client-node-tests", version: "0" },
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      ...options,
    });
    this.clients.push(client);
    return client;
  }

  /** A client that has connected. @param {import("../dist/index.js").CodexdClientOptions} [options] */
  async connectedClient(options) {
    const client = this.client(options);
    await client.connect();
    return client;
  }

  /**
   * Runs codexctl against this world's socket with a cleared environment.
   * @param {string[]} args
   * @returns {Promise<{ code: number, stdout: string, stderr: string }>}
   */
  codexctl(args) {
    return new Promise((resolve) => {
      execFile(
        BIN.codexctl,
        ["--socket", this.socket, ...args],
        { env: cleanEnv(this.dir), timeout: DEADLINE_MS },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  /** What `codexctl token` prints, without the newline; fails unless it exits 0. */
  async codexctlToken() {
    const { code, stdout, stderr } = await this.codexctl(["token"]);
    if (code !== 0) {
      throw new Error(`codexctl token exited ${code}: ${stderr}`);
    }
    return stdout.replace(/\n$/, "");
  }

  /**
   * A call to the fake issuer's control API (`/_fake/...`) on loopback.
   * @param {string} method
   * @param {string} controlPath
   * @param {unknown} [body]
   */
  async issuerControl(method, controlPath, body) {
    const response = await fetch(`${this.issuerUrl}${controlPath}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    return { status: response.status, json };
  }

  /**
   * Replaces auth.json as another program would (write a temporary file, then rename).
   * @param {unknown} authJson the file's text, or a value to write as JSON
   */
  writeAuthJson(authJson) {
    const file = path.join(this.home, "auth.json");
    const tmp = `${file}.tmp-${process.pid}`;
    const text = typeof authJson === "string" ? authJson : JSON.stringify(authJson, null, 2);
    fs.writeFileSync(tmp, text, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  /** Everything the processes wrote to stderr (the daemon logs token fingerprints only). */
  logs() {
    const parts = [];
    for (const child of [this.issuer, ...this.daemons]) {
      if (child) parts.push(`--- ${child.name} stderr ---\n${child.stderr.trimEnd()}`);
    }
    return parts.join("\n");
  }

  /** Closes every client, stops every process (SIGTERM, then SIGKILL) and removes the directory. */
  async dispose() {
    await Promise.all(this.clients.map((c) => c.close()));
    await Promise.all(this.daemons.map((d) => d.stop()));
    if (this.issuer) await this.issuer.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A test with its own World, disposed at the end; on failure the processes' stderr is reported.
 * @param {string} name
 * @param {Parameters<typeof World.start>[0]} options
 * @param {(world: World, t: import("node:test").TestContext) => Promise<void>} body
 */
function worldTest(name, options, body) {
  test(name, { timeout: 45_000 }, async (t) => {
    const world = await World.start(options);
    // On a timeout the runner aborts t.signal: stop waiting, so that the processes are stopped below and the
    // test file ends instead of waiting on them.
    const aborted = new Promise((_resolve, reject) => {
      t.signal.addEventListener("abort", () => reject(new Error(`test aborted: ${t.signal.reason ?? "timeout"}`)), {
        once: true,
      });
    });
    aborted.catch(() => {});
    try {
      await Promise.race([body(world, t), aborted]);
    } catch (e) {
      for (const line of world.logs().split("\n")) t.diagnostic(line);
      throw e;
    } finally {
      await world.dispose();
    }
  });
}

/**
 * How a secret appears in a failure message: its type (and a string's length), never its value.
 * @param {unknown} value
 */
function describeSecret(value) {
  if (value === null) return "null";
  return typeof value === "string" ? `a string of ${value.length} chars` : typeof value;
}

/**
 * Asserts that `actual` is the secret `expected` (a token or API key, or null for none) without showing either:
 * the failure names only their types and lengths.
 * @param {unknown} actual
 * @param {unknown} expected
 * @param {string} what
 */
function assertSameSecret(actual, expected, what) {
  assert.ok(
    actual === expected,
    `${what}: the secrets differ (got ${describeSecret(actual)}, want ${describeSecret(expected)})`,
  );
}

/**
 * Asserts that `actual` is not the secret `other`, without showing either.
 * @param {unknown} actual
 * @param {unknown} other
 * @param {string} what
 */
function assertOtherSecret(actual, other, what) {
  assert.ok(actual !== other, `${what}: the same secret (${describeSecret(actual)}) both times`);
}

/**
 * Resolves with the error `promise` rejects with; fails when it resolves.
 * @param {Promise<unknown>} promise
 * @returns {Promise<import("../dist/index.js").CodexdError>}
 */
async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return /** @type {any} */ (e);
  }
  throw new Error("expected a rejection, got a value");
}

module.exports = {
  BIN,
  DEADLINE_MS,
  World,
  worldTest,
  waitForEvent,
  pollUntil,
  rejection,
  startIssuer,
  assertSameSecret,
  assertOtherSecret,
};
