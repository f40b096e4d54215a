// @ts-check
"use strict";
const assert = require("node:assert/strict");
const { worldTest, assertSameSecret } = require("./harness.js");
const { CodexdClient } = require("../dist/index.js");

worldTest("token() returns what `codexctl token` prints, and serves it from the cache", {}, async (world) => {
  let getAuthStatusCalls = 0;
  class CountingClient extends CodexdClient {
    /** @param {string} method @param {object} [params] @param {import("../dist/index.js").RequestOptions} [options] */
    request(method, params, options) {
      if (method === "getAuthStatus") getAuthStatusCalls += 1;
      return super.request(method, params, options);
    }
  }
  const client = new CountingClient({ socketPath: world.socket });
  world.clients.push(client);
  const info = await client.connect();
  assert.equal(info.serverInfo.name, "codexd");
  assert.equal(info.protocolVersion, 1);
  assert.equal(info.codexHome, world.home);
  assert.equal(client.state, "connected");

  const expected = await world.codexctlToken();
  assert.ok(expected.length > 20);
  const [a, b] = await Promise.all([client.token(), client.token()]);
  assertSameSecret(a, expected, "the first concurrent token()");
  assertSameSecret(b, expected, "the second concurrent token()");
  assertSameSecret(await client.token(), expected, "a later token()");
  assert.equal(getAuthStatusCalls, 1, "concurrent and later calls share one request, then the cache");

  const status = await client.status();
  assert.equal(status.authMethod, "chatgpt");
  assertSameSecret(status.authToken, null, "status() never carries the token");
  assert.equal(typeof status.generation, "number");
  assertSameSecret(await client.token(), expected, "token() after status()");
  assert.equal(getAuthStatusCalls, 2, "status() is one more getAuthStatus; the same generation keeps the cache");

  const account = await client.account();
  assert.equal(account?.type, "chatgpt");
  const daemon = await client.daemonStatus();
  assert.equal(daemon.socket, world.socket);
  assert.equal(daemon.subscribers, 1);
  assert.equal(daemon.pid, world.daemon.proc.pid);
});

worldTest("a call made while connect() is on its way waits for it", {}, async (world) => {
  const client = world.client();
  const connecting = client.connect();
  assert.equal(client.state, "connecting");
  assertSameSecret(await client.token(), await world.codexctlToken(), "token() and codexctl token");
  await connecting;
});

worldTest("pipelined calls each get their own reply", {}, async (world) => {
  const client = await world.connectedClient();
  const calls = [];
  for (let i = 0; i < 60; i++) {
    calls.push(i % 3 === 0 ? client.daemonStatus() : i % 3 === 1 ? client.account() : client.status());
  }
  const results = await Promise.all(calls);
  results.forEach((r, i) => {
    const kind = i % 3 === 0 ? "pid" : i % 3 === 1 ? "type" : "authMethod";
    assert.ok(r && kind in r, `call ${i} got the answer of another call`);
  });
});

worldTest("a daemon error reaches the caller as a CodexdError with code and reason", {}, async (world) => {
  const client = await world.connectedClient();
  const err = await client.request("no/such/method").then(
    () => assert.fail("resolved"),
    (e) => e,
  );
  assert.equal(err.name, "CodexdError");
  assert.equal(err.code, -32601);
  assert.equal(err.reason, "methodNotFound");
  assert.equal(err.method, "no/such/method");
  const bad = await client.loginStart({ type: "apiKey", apiKey: "" }).then(
    () => assert.fail("resolved"),
    (e) => e,
  );
  assert.equal(bad.code, -32602);
  assert.equal(bad.reason, "invalidParams");
  assert.equal(await client.loginCancel("no-such-login"), "notFound");
});
