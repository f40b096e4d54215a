// @ts-check
// Pure logic, no daemon: socket path resolution, line framing, error mapping, packaging facts.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { test } = require("node:test");
const {
  CodexdError,
  LineDecoder,
  LineTooLongError,
  MAX_LINE_BYTES,
  resolveSocketPath,
  VERSION,
} = require("../dist/index.js");

test("resolveSocketPath follows codexctl's rules: CODEXD_SOCKET, XDG_RUNTIME_DIR, TMPDIR, /tmp", () => {
  const unix = { platform: /** @type {NodeJS.Platform} */ ("linux"), uid: 1000 };
  assert.equal(resolveSocketPath({ CODEXD_SOCKET: "/s.sock", XDG_RUNTIME_DIR: "/run/user/1000" }, unix), "/s.sock");
  assert.equal(
    resolveSocketPath({ CODEXD_SOCKET: "", XDG_RUNTIME_DIR: "/run/user/1000", TMPDIR: "/var/tmp" }, unix),
    "/run/user/1000/codexd/codexd.sock",
    "an empty CODEXD_SOCKET counts as unset",
  );
  assert.equal(resolveSocketPath({ TMPDIR: "/var/tmp" }, unix), "/var/tmp/codexd-1000/codexd.sock");
  assert.equal(resolveSocketPath({ XDG_RUNTIME_DIR: "", TMPDIR: "" }, unix), "/tmp/codexd-1000/codexd.sock");
  assert.equal(resolveSocketPath({}, { platform: "darwin", uid: 501 }), "/tmp/codexd-501/codexd.sock");
  const win = { platform: /** @type {NodeJS.Platform} */ ("win32") };
  assert.equal(resolveSocketPath({ USERNAME: "ann" }, win), "\\\\.\\pipe\\codexd-ann");
  assert.equal(resolveSocketPath({ USERNAME: "" }, win), "\\\\.\\pipe\\codexd-user");
  assert.equal(resolveSocketPath({ CODEXD_SOCKET: "\\\\.\\pipe\\mine", USERNAME: "ann" }, win), "\\\\.\\pipe\\mine");
});

test("resolveSocketPath defaults to this process's environment and uid", () => {
  if (process.platform === "win32") return;
  const env = { ...process.env, CODEXD_SOCKET: "", XDG_RUNTIME_DIR: "", TMPDIR: "" };
  const uid = /** @type {() => number} */ (process.getuid)();
  assert.equal(resolveSocketPath(env), `/tmp/codexd-${uid}/codexd.sock`);
});

test("LineDecoder joins lines split across reads, drops \\r and empty lines, keeps UTF-8 intact", () => {
  const decoder = new LineDecoder();
  const text = Buffer.from('{"a":"é€😀"}\r\n\n{"b":2}\n{"c"', "utf8");
  const lines = [];
  for (let i = 0; i < text.length; i++) {
    lines.push(...decoder.push(text.subarray(i, i + 1)));
  }
  assert.deepEqual(lines, ['{"a":"é€😀"}', '{"b":2}']);
  assert.equal(decoder.buffered, 4);
  assert.deepEqual(decoder.push(Buffer.from(":3}\n")), ['{"c":3}']);
  assert.deepEqual(decoder.push(Buffer.from("x\ny\nz")), ["x", "y"]);
});

test("LineDecoder accepts a line of exactly 1 MiB and refuses one byte more", () => {
  const max = "a".repeat(MAX_LINE_BYTES);
  assert.deepEqual(new LineDecoder().push(Buffer.from(`${max}\n`)), [max]);
  assert.deepEqual(new LineDecoder().push(Buffer.from(`${max}\r\n`)), [max], "the \\r is not counted");
  assert.throws(() => new LineDecoder().push(Buffer.from(`${max}b\n`)), LineTooLongError);
  // Without a newline, it gives up as soon as the line cannot fit any more.
  const decoder = new LineDecoder();
  assert.deepEqual(decoder.push(Buffer.from(max)), []);
  assert.deepEqual(decoder.push(Buffer.from("\r")), []);
  assert.throws(() => decoder.push(Buffer.from("c")), LineTooLongError);
});

test("CodexdError.fromWire keeps code, data.reason and the message; the code names a missing reason", () => {
  const e = CodexdError.fromWire("getAuthStatus", {
    code: -32001,
    message: "not logged in",
    data: { reason: "notLoggedIn" },
  });
  assert.ok(e instanceof Error);
  assert.equal(e.name, "CodexdError");
  assert.equal(e.code, -32001);
  assert.equal(e.reason, "notLoggedIn");
  assert.equal(e.method, "getAuthStatus");
  assert.equal(e.message, "getAuthStatus: not logged in");
  assert.ok(e.isNotLoggedIn);
  assert.equal(CodexdError.fromWire(undefined, { code: -32004, message: "bye" }).reason, "shuttingDown");
  assert.equal(CodexdError.fromWire(undefined, { code: -1, message: "?" }).reason, "internalError");
});

test("the package: VERSION matches package.json, no runtime dependencies, and dist never logs", () => {
  const root = path.join(__dirname, "..");
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  assert.equal(VERSION, pkg.version);
  assert.equal(pkg.dependencies, undefined);
  assert.deepEqual(Object.keys(pkg.devDependencies).sort(), ["@types/node", "typescript"]);
  for (const file of fs.readdirSync(path.join(root, "dist"))) {
    if (!file.endsWith(".js")) continue;
    const source = fs
      .readFileSync(path.join(root, "dist", file), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "");
    assert.ok(!/\bconsole\./.test(source), `${file} uses console`);
    for (const [, module] of source.matchAll(/require\("([^"]+)"\)/g)) {
      assert.ok(module.startsWith("node:") || module.startsWith("./"), `${file} requires ${module}`);
    }
  }
});
