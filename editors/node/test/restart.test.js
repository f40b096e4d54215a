// @ts-check
"use strict";
const assert = require("node:assert/strict");
const { worldTest, waitForEvent, rejection, assertSameSecret } = require("./harness.js");

worldTest(
  "daemon stop and restart: shuttingDown, the cache dropped, reconnect to the new daemon, token() again",
  {},
  async (world) => {
    const client = await world.connectedClient();
    const firstPid = (await client.daemonStatus()).pid;
    const token = await client.token();
    assert.equal(client.toJSON().tokenCached, true);
    /** @type {string[]} */
    const seen = [];
    client.on("shuttingDown", () => seen.push(`shuttingDown cached=${client.toJSON().tokenCached}`));
    client.on("disconnected", (e) => seen.push(`disconnected ${e.error.reason} willReconnect=${e.willReconnect}`));
    client.on("connected", () => seen.push("connected"));

    const shuttingDown = waitForEvent(client, "shuttingDown");
    const disconnected = waitForEvent(client, "disconnected");
    await world.daemon.stop();
    await shuttingDown;
    await disconnected;
    assert.equal(world.daemon.exitCode, 0);
    assert.equal(client.state, "disconnected");

    // While no daemon serves the socket, calls fail at once.
    const started = Date.now();
    const err = await rejection(client.token());
    assert.equal(err.reason, "unreachable");
    assert.ok(Date.now() - started < 1_000, "failed fast");

    const reconnected = waitForEvent(client, "connected");
    await world.startDaemon();
    const [info] = await reconnected;
    assert.equal(info.serverInfo.name, "codexd");
    assert.equal(client.state, "connected");
    assert.notEqual((await client.daemonStatus()).pid, firstPid, "a new daemon");
    assertSameSecret(await client.token(), await world.codexctlToken(), "token() and codexctl token");
    assertSameSecret(await client.token(), token, "the same login, served by the new daemon");
    assert.deepEqual(seen.slice(0, 3), [
      "shuttingDown cached=false",
      "disconnected unreachable willReconnect=true",
      "connected",
    ]);
  },
);

worldTest("daemonShutdown() over the socket: the client sees shuttingDown, then reconnects", {}, async (world) => {
  const client = await world.connectedClient();
  const shuttingDown = waitForEvent(client, "shuttingDown");
  await client.daemonShutdown();
  await shuttingDown;
  await world.daemon.exited;
  const reconnected = waitForEvent(client, "connected");
  await world.startDaemon();
  await reconnected;
  assertSameSecret(await client.token(), await world.codexctlToken(), "token() and codexctl token");
});

worldTest("with reconnectWaitMs, a call made while disconnected waits for the restart", {}, async (world) => {
  const client = await world.connectedClient({ reconnectWaitMs: 20_000 });
  const disconnected = waitForEvent(client, "disconnected");
  await world.daemon.stop();
  await disconnected;
  const pending = client.token();
  await world.startDaemon();
  assertSameSecret(await pending, await world.codexctlToken(), "the waiting token() and codexctl token");
});

worldTest("a daemon killed without a word: disconnected, then back after a restart", {}, async (world) => {
  const client = await world.connectedClient();
  await client.token();
  let shutdownSeen = false;
  client.on("shuttingDown", () => {
    shutdownSeen = true;
  });
  const disconnected = waitForEvent(client, "disconnected");
  await world.daemon.kill();
  const [event] = await disconnected;
  assert.equal(event.error.reason, "unreachable");
  assert.equal(shutdownSeen, false);
  assert.equal(client.toJSON().tokenCached, false, "dropped on disconnect");
  // The stale socket file is still there: connecting is refused, not "no such file".
  const err = await rejection(client.connect());
  assert.equal(err.reason, "unreachable");
  const reconnected = waitForEvent(client, "connected");
  await world.startDaemon();
  await reconnected;
  assertSameSecret(await client.token(), await world.codexctlToken(), "token() and codexctl token");
});
