// @ts-check
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { test } = require("node:test");
const { CodexdClient } = require("../dist/index.js");
const { assertSameSecret, pollUntil, rejection, waitForEvent, World } = require("./harness.js");

/** A socket path in a fresh directory where nothing listens. */
function nowhere() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "codexd-node-absent-"));
  return { dir, socket: path.join(dir, "codexd.sock") };
}

test("no daemon: connect() and token() fail with unreachable in bounded time", async () => {
  const { dir, socket } = nowhere();
  const client = new CodexdClient({ socketPath: socket, reconnect: false });
  try {
    const before = await rejection(client.token());
    assert.equal(before.reason, "notConnected");
    const started = Date.now();
    const err = await rejection(client.connect());
    assert.equal(err.name, "CodexdError");
    assert.equal(err.reason, "unreachable");
    assert.equal(err.code, null);
    assert.ok(err.isUnreachable);
    assert.ok(err.message.includes(socket), err.message);
    const tokenErr = await rejection(client.token());
    assert.equal(tokenErr.reason, "unreachable");
    assert.equal(tokenErr.method, "getAuthStatus");
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
    assert.equal(client.state, "disconnected");
  } finally {
    await client.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const closed = await rejection(client.token());
  assert.equal(closed.reason, "closed");
  assert.equal((await rejection(client.connect())).reason, "closed");
});

test("no daemon yet: the client keeps trying and connects once a daemon serves the socket", async () => {
  const world = await World.start({ startDaemon: false });
  try {
    const client = world.client();
    const err = await rejection(client.connect());
    assert.equal(err.reason, "unreachable");
    const connected = waitForEvent(client, "connected");
    await world.startDaemon();
    await connected;
    assertSameSecret(await client.token(), await world.codexctlToken(), "token() and codexctl token");
  } finally {
    await world.dispose();
  }
});

test("close() fails calls in flight with closed and stops reconnecting", async () => {
  const world = await World.start({ loggedIn: false, deviceAutoApproveAfter: 1_000_000 });
  try {
    const client = await world.connectedClient();
    const started = await client.loginStart({ type: "chatgptDeviceCode" });
    if (started.type !== "chatgptDeviceCode") return assert.fail(started.type);
    const waiting = rejection(client.waitForLogin(started.loginId));
    const disconnected = waitForEvent(client, "disconnected");
    await client.close();
    assert.equal((await waiting).reason, "closed");
    const [event] = await disconnected;
    assert.equal(event.willReconnect, false);
    assert.equal(client.state, "closed");
    await pollUntil("the daemon sees no subscriber", async () => {
      const { stdout } = await world.codexctl(["status", "--json"]);
      return JSON.parse(stdout).daemon?.subscribers === 0;
    });
  } finally {
    await world.dispose();
  }
});
