// @ts-check
"use strict";
const assert = require("node:assert/strict");
const { worldTest, waitForEvent, rejection, assertSameSecret, assertOtherSecret } = require("./harness.js");

worldTest(
  "a refresh by the daemon arrives as accountUpdated (refresh) and token() then returns the new token",
  { loggedIn: false },
  async (world) => {
    const client = await world.connectedClient();
    const notLoggedIn = await rejection(client.token());
    assert.equal(notLoggedIn.reason, "notLoggedIn");

    // A login whose access token lives 4 s, written as another program would: the daemon picks it up
    // (`external`) and refreshes it at half its lifetime. The refreshed token lives an hour, so exactly one
    // refresh follows.
    await world.issuerControl("POST", "/_fake/lifetime", { seconds: 4 });
    const minted = (await world.issuerControl("POST", "/_fake/mint")).json;
    await world.issuerControl("POST", "/_fake/lifetime", { seconds: 3600 });
    const external = waitForEvent(client, "accountUpdated", { filter: (u) => u.reason === "external" });
    world.writeAuthJson(minted.auth_json);
    const [update] = await external;
    assert.equal(update.authMode, "chatgpt");
    const first = await client.token();
    assertSameSecret(first, minted.access_token, "token() after the external login");

    const [refreshed] = await waitForEvent(client, "accountUpdated", { filter: (u) => u.reason === "refresh" });
    assert.equal(refreshed.authMode, "chatgpt");
    assert.ok(refreshed.generation > update.generation);
    const second = await client.token();
    assertOtherSecret(second, first, "the cache was dropped on accountUpdated");
    assertSameSecret(second, await world.codexctlToken(), "token() and codexctl token");
  },
);

worldTest("refresh() forces a refresh and returns the new token", {}, async (world) => {
  const client = await world.connectedClient();
  const before = await client.token();
  const notified = waitForEvent(client, "accountUpdated", { filter: (u) => u.reason === "refresh" });
  const after = await client.refresh();
  assertOtherSecret(after, before, "refresh() returned the old token");
  await notified;
  assertSameSecret(await client.token(), after, "token() after refresh()");
  assertSameSecret(await world.codexctlToken(), after, "codexctl token after refresh()");
});

worldTest("refresh() fails with refreshUnavailable while the issuer answers 500", {}, async (world) => {
  const client = await world.connectedClient();
  const before = await client.token();
  await world.issuerControl("POST", "/_fake/script", {
    endpoint: "refresh",
    fault: { kind: "status", status: 500 },
    always: true,
  });
  const err = await rejection(client.refresh());
  assert.equal(err.code, -32003);
  assert.equal(err.reason, "refreshUnavailable");
  assertSameSecret(await client.token(), before, "the current token is still served");
});

worldTest(
  "a refresh refused for good: accountUpdated (refreshFailed) and token() fails with the authError",
  {},
  async (world) => {
    const client = await world.connectedClient();
    await client.token();
    await world.issuerControl("POST", "/_fake/script", {
      endpoint: "refresh",
      fault: { kind: "refresh_error", status: 401, code: "refresh_token_reused" },
      always: true,
    });
    const notified = waitForEvent(client, "accountUpdated", { filter: (u) => u.reason === "refreshFailed" });
    const refused = await rejection(client.refresh());
    assert.equal(refused.code, -32001);
    assert.equal(refused.reason, "refreshFailed");
    assert.equal(refused.authError?.issuerCode, "refresh_token_reused");
    const [update] = await notified;
    assert.equal(update.authMode, null);
    const err = await rejection(client.token());
    assert.equal(err.code, -32001);
    assert.equal(err.reason, "refreshFailed");
    assert.ok(err.isNotLoggedIn);
  },
);
