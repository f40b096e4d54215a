// @ts-check
"use strict";
const assert = require("node:assert/strict");
const { worldTest, waitForEvent, rejection, assertSameSecret } = require("./harness.js");

worldTest("a logout reaches every subscriber, and token() then fails with notLoggedIn", {}, async (world) => {
  const a = await world.connectedClient();
  const b = await world.connectedClient();
  const token = await world.codexctlToken();
  assertSameSecret(await a.token(), token, "a's token()");
  assertSameSecret(await b.token(), token, "b's token()");

  const onA = waitForEvent(a, "accountUpdated", { filter: (u) => u.reason === "logout" });
  const onB = waitForEvent(b, "accountUpdated", { filter: (u) => u.reason === "logout" });
  await a.logout();
  const [[updateA], [updateB]] = await Promise.all([onA, onB]);
  for (const update of [updateA, updateB]) {
    assert.equal(update.authMode, null);
    assert.equal(update.accountId, null);
  }
  assert.equal(updateA.generation, updateB.generation);

  for (const client of [a, b]) {
    const err = await rejection(client.token());
    assert.equal(err.name, "CodexdError");
    assert.equal(err.code, -32001);
    assert.equal(err.reason, "notLoggedIn");
    assert.ok(err.isNotLoggedIn);
  }
  assert.equal(await a.account(), null);
  assert.equal((await b.status()).authMethod, null);
  const ctl = await world.codexctl(["token"]);
  assert.equal(ctl.code, 1, "codexctl agrees: not logged in");
});
