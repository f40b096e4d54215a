// @ts-check
"use strict";
const assert = require("node:assert/strict");
const util = require("node:util");
const { test } = require("node:test");
const { worldTest, waitForEvent, rejection, assertSameSecret } = require("./harness.js");

/**
 * Every way a client or an error gets printed or serialised.
 * @param {unknown} value
 */
function renderings(value) {
  const out = [
    String(value),
    util.inspect(value),
    util.inspect(value, { showHidden: true, depth: Infinity, getters: true }),
    util.inspect(value, { showHidden: true, depth: Infinity, customInspect: false }),
    util.format("%o %O %s %j", value, value, value, value),
  ];
  try {
    out.push(JSON.stringify(value) ?? "");
  } catch (e) {
    out.push(String(e));
  }
  if (value instanceof Error) {
    out.push(value.message, value.stack ?? "");
  }
  return out.join("\n");
}

/**
 * @param {string} what
 * @param {unknown} value
 * @param {string[]} secrets
 */
function assertNoSecret(what, value, secrets) {
  const text = renderings(value);
  for (const secret of secrets) {
    // A fragment is enough to leak: look for a 16-character slice from the middle too.
    const middle = secret.slice(Math.floor(secret.length / 2) - 8, Math.floor(secret.length / 2) + 8);
    assert.ok(!text.includes(secret), `${what} shows a secret`);
    assert.ok(!text.includes(middle), `${what} shows part of a secret`);
  }
}

test("the leak check itself catches a token in plain sight, in an error and in part", () => {
  const secret = "eyJhbGciOiJSUzI1NiJ9.payload-payload-payload.signature";
  assert.throws(() => assertNoSecret("an object", { nested: { deep: { token: secret } } }, [secret]));
  assert.throws(() => assertNoSecret("an error", new Error(`bad token ${secret}`), [secret]));
  assert.throws(() => assertNoSecret("a fragment", secret.slice(10, 40), [secret]));
  assertNoSecret("nothing", { token: "***" }, [secret]);
});

worldTest("no token or API key in errors, toString, JSON or util.inspect output", {}, async (world) => {
  const client = await world.connectedClient({ requestTimeoutMs: 300 });
  const chatgptToken = await client.token();
  const apiKey = "sk-test-secret-api-key-do-not-print-4242";
  const secrets = [chatgptToken, apiKey];
  assert.equal(client.toJSON().tokenCached, true);
  assertNoSecret("a client holding a ChatGPT token", client, secrets);

  /** @type {[string, unknown][]} */
  const errors = [];

  // A call that times out (the issuer hangs the refresh).
  await world.issuerControl("POST", "/_fake/script", { endpoint: "refresh", fault: { kind: "hang" }, always: true });
  const timeout = await rejection(client.refresh());
  assert.equal(timeout.reason, "timeout");
  errors.push(["timeout", timeout]);
  await world.issuerControl("POST", "/_fake/clear");

  // An API-key login, then the key is in the cache.
  const stored = waitForEvent(client, "accountUpdated", { filter: (u) => u.reason === "login" });
  await client.loginStart({ type: "apiKey", apiKey });
  await stored;
  assertSameSecret(await client.token(), apiKey, "token() after the API-key login");
  assertNoSecret("a client holding an API key", client, secrets);

  // A request too long to send, with the key inside.
  const huge = await rejection(client.loginStart({ type: "apiKey", apiKey: `${apiKey}${"x".repeat(1024 * 1024)}` }));
  assert.equal(huge.reason, "frameTooLarge");
  errors.push(["frameTooLarge", huge]);

  // A daemon error on a call that carried the key.
  const refused = await rejection(client.request("account/login/start", { type: "apiKey", apiKey: [apiKey] }));
  assert.equal(refused.reason, "invalidParams");
  errors.push(["invalidParams", refused]);

  await client.logout();
  const notLoggedIn = await rejection(client.token());
  assert.equal(notLoggedIn.reason, "notLoggedIn");
  errors.push(["notLoggedIn", notLoggedIn]);

  const disconnected = waitForEvent(client, "disconnected");
  await world.daemon.stop();
  await disconnected;
  errors.push(["unreachable", await rejection(client.token())]);
  await client.close();
  errors.push(["closed", await rejection(client.refresh())]);

  for (const [what, error] of errors) {
    assertNoSecret(`the ${what} error`, error, secrets);
  }
  assertNoSecret("a closed client", client, secrets);
});
