// @ts-check
"use strict";
const assert = require("node:assert/strict");
const { worldTest, waitForEvent, rejection, assertSameSecret } = require("./harness.js");

worldTest("an API-key login over loginStart is served by token() at once", { loggedIn: false }, async (world) => {
  const client = await world.connectedClient();
  const watcher = await world.connectedClient();
  const apiKey = "sk-test-node-client-0123456789";
  const updated = waitForEvent(watcher, "accountUpdated", { filter: (u) => u.reason === "login" });
  const started = await client.loginStart({ type: "apiKey", apiKey: `  ${apiKey}\n` });
  assert.deepEqual(started, { type: "apiKey" });
  const completed = await client.waitForLogin(null, { timeoutMs: 10_000 });
  assert.equal(completed.success, true);
  const [update] = await updated;
  assert.equal(update.authMode, "apikey");
  assertSameSecret(await client.token(), apiKey, "stored trimmed");
  assertSameSecret(await watcher.token(), apiKey, "the watcher's token()");
  assertSameSecret(await world.codexctlToken(), apiKey, "codexctl token");
  assert.deepEqual(await client.account(), { type: "apiKey" });
});

worldTest(
  "a device-code login approved at the issuer completes for every subscriber",
  // The issuer approves nothing by itself: the test approves through its control API, as a user would.
  { loggedIn: false, deviceAutoApproveAfter: 1_000_000 },
  async (world) => {
    const client = await world.connectedClient();
    const watcher = await world.connectedClient();
    const started = await client.loginStart({ type: "chatgptDeviceCode" });
    assert.equal(started.type, "chatgptDeviceCode");
    if (started.type !== "chatgptDeviceCode") return;
    assert.ok(started.loginId);
    assert.ok(started.verificationUrl.startsWith(world.issuerUrl), started.verificationUrl);
    assert.match(started.userCode, /\S/);

    const seenByWatcher = waitForEvent(watcher, "loginCompleted", { filter: (c) => c.loginId === started.loginId });
    const loginUpdate = waitForEvent(watcher, "accountUpdated", { filter: (u) => u.reason === "login" });
    const approved = await world.issuerControl("POST", "/_fake/approve", { user_code: started.userCode });
    assert.equal(approved.status, 200);
    const completed = await client.waitForLogin(started.loginId, { timeoutMs: 15_000 });
    assert.deepEqual(completed, { loginId: started.loginId, success: true, error: null });
    await seenByWatcher;
    const [update] = await loginUpdate;
    assert.equal(update.authMode, "chatgpt");

    const token = await client.token();
    assertSameSecret(token, await world.codexctlToken(), "token() and codexctl token");
    const account = await client.account();
    assert.equal(account?.type, "chatgpt");
    // The completion was kept: a late waitForLogin still resolves.
    assert.equal((await watcher.waitForLogin(started.loginId)).success, true);
  },
);

worldTest(
  "loginCancel ends a device-code login, and waitForLogin reports it; a short wait times out first",
  { loggedIn: false, deviceAutoApproveAfter: 1_000_000 },
  async (world) => {
    const client = await world.connectedClient();
    const started = await client.loginStart({ type: "chatgptDeviceCode" });
    if (started.type !== "chatgptDeviceCode") return assert.fail(`unexpected ${started.type}`);
    const early = await rejection(client.waitForLogin(started.loginId, { timeoutMs: 50 }));
    assert.equal(early.reason, "loginTimedOut");
    const waiting = client.waitForLogin(started.loginId, { timeoutMs: 15_000 });
    assert.equal(await client.loginCancel(started.loginId), "canceled");
    const completed = await waiting;
    assert.equal(completed.success, false);
    assert.match(completed.error ?? "", /cancel/);
    assert.equal(await client.loginCancel(started.loginId), "notFound");
    assert.equal((await rejection(client.token())).reason, "notLoggedIn");
  },
);

worldTest(
  "a login refused by policy fails with policyRefused",
  { loggedIn: false, configToml: 'forced_login_method = "chatgpt"\n' },
  async (world) => {
    const client = await world.connectedClient();
    const err = await rejection(client.loginStart({ type: "apiKey", apiKey: "sk-test-refused" }));
    assert.equal(err.code, -32002);
    assert.equal(err.reason, "policyRefused");
  },
);

worldTest(
  "a login in progress when the daemon stops ends the wait (failed completion or shuttingDown)",
  { loggedIn: false, deviceAutoApproveAfter: 1_000_000 },
  async (world) => {
    const client = await world.connectedClient();
    const started = await client.loginStart({ type: "chatgptDeviceCode" });
    if (started.type !== "chatgptDeviceCode") return assert.fail(started.type);
    // Settled into a value at once, so that a rejection is never left unhandled while the daemon stops.
    const waiting = client.waitForLogin(started.loginId).then(
      (completed) => ({ completed, error: undefined }),
      (error) => ({ completed: undefined, error }),
    );
    const disconnected = waitForEvent(client, "disconnected");
    await world.daemon.stop();
    const { completed, error } = await waiting;
    // The daemon ends the login ("codexd is shutting down") and says goodbye; which of the two reaches the
    // connection first is not specified, and the client handles both.
    if (completed) {
      assert.equal(completed.success, false);
      assert.match(completed.error ?? "", /shutting down/);
    } else {
      assert.equal(error.reason, "shuttingDown");
      assert.equal(error.code, -32004);
    }
    await disconnected;
    const other = await rejection(client.waitForLogin("another-login"));
    assert.equal(other.reason, "unreachable", "no daemon, no login to wait for");
  },
);
