-- The plugin's test cases, run by test/run.sh: one case per Neovim process, named by CODEXD_TEST_CASE, against the
-- codexd and fake issuer the runner started (CODEXD_TEST_SOCKET, CODEXD_TEST_ISSUER, CODEXD_TEST_HOME).
-- Synchronisation is vim.wait(deadline, predicate) only. The case writes "ok" or the failure to DIR/result, every
-- token it saw to DIR/secrets (the runner checks Neovim's output holds none), and exits non-zero on failure.
-- Failure messages never show a token: eq_secret reports lengths only.

local uv = vim.uv or vim.loop

local DIR = os.getenv("CODEXD_TEST_DIR")
local SOCK = os.getenv("CODEXD_TEST_SOCKET")
local HOME = os.getenv("CODEXD_TEST_HOME")
local ISSUER = os.getenv("CODEXD_TEST_ISSUER")
local CODEXD_BIN = os.getenv("CODEXD_BIN")
local CODEXCTL_BIN = os.getenv("CODEXCTL_BIN")
local CASE = os.getenv("CODEXD_TEST_CASE")

-- Fast reconnects keep the cases short; the defaults are 200 ms doubling to 10 s.
local FAST = { min_ms = 50, max_ms = 400 }

local secrets = {}

local function append(path, text)
  local f = assert(io.open(path, "a"))
  f:write(text)
  f:close()
end

-- Records a secret (token or API key) so that the runner and the final check can look for it.
local function remember(...)
  for i = 1, select("#", ...) do
    local s = select(i, ...)
    if type(s) == "string" and #s >= 8 and not secrets[s] then
      secrets[s] = true
      append(DIR .. "/secrets", s .. "\n")
    end
  end
end

local function show(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  return vim.inspect(v)
end

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: expected %s, got %s", what, show(want), show(got)), 2)
  end
end

local function eq_secret(got, want, what)
  if got ~= want then
    error(
      string.format(
        "%s: the secrets differ (got %s of %d chars, want %s of %d chars)",
        what,
        type(got),
        type(got) == "string" and #got or 0,
        type(want),
        type(want) == "string" and #want or 0
      ),
      2
    )
  end
end

local function truthy(v, what)
  if not v then
    error(what, 2)
  end
  return v
end

local function contains(haystack, needle, what)
  if type(haystack) ~= "string" or not haystack:find(needle, 1, true) then
    error(string.format("%s: %s not found in %s", what, show(needle), show(haystack)), 2)
  end
end

local function eventually(ms, predicate, what)
  local ok = vim.wait(ms, function()
    local good, res = pcall(predicate)
    return good and res
  end, 10)
  if not ok then
    if type(what) == "function" then
      what = what()
    end
    error(string.format("timed out after %d ms waiting for %s", ms, what), 2)
  end
end

local function now_ms()
  return uv.hrtime() / 1e6
end

-- Runs a command (a list, no shell); returns stdout, stderr, exit code. Waits at most 20 s.
local function run(cmd, stdin)
  local out, err = {}, {}
  local job = vim.fn.jobstart(cmd, {
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = function(_, data)
      out = data
    end,
    on_stderr = function(_, data)
      err = data
    end,
  })
  assert(job > 0, "cannot run " .. cmd[1])
  if stdin then
    vim.fn.chansend(job, stdin)
  end
  vim.fn.chanclose(job, "stdin")
  local rc = vim.fn.jobwait({ job }, 20000)[1]
  -- jobwait returns before the buffered output callbacks ran; let them.
  vim.wait(1000, function()
    return type(out) == "table" and #out > 0 and type(err) == "table" and #err > 0
  end, 5)
  return table.concat(out, "\n"), table.concat(err, "\n"), rc
end

local function ctl(...)
  local args = { CODEXCTL_BIN, "--socket", SOCK, ... }
  return run(args)
end

-- What `codexctl token` prints, without the newline.
local function ctl_token()
  local out, err, rc = ctl("token")
  eq(rc, 0, "codexctl token exit code (stderr: " .. err .. ")")
  local tok = out:gsub("\n$", "")
  remember(tok)
  return tok
end

-- Starts a codexd as the runner does (cleared environment) on `sock` and waits until it answers; its pid goes to
-- DIR/pids. The previous daemon may still hold the single-instance lock for a moment after its connections
-- closed (it is still exiting): a start refused that way is retried until the deadline. Returns job id and pid.
local function start_daemon(sock)
  sock = sock or SOCK
  local deadline = now_ms() + 5000
  while true do
    local exited = nil
    local job = vim.fn.jobstart({
      "sh",
      "-c",
      'log=$1; shift; exec "$@" >>"$log" 2>&1',
      "sh",
      DIR .. "/codexd-restarted.log",
      "env",
      "-i",
      "PATH=" .. os.getenv("PATH"),
      "HOME=" .. DIR,
      "CODEXD_ISSUER=" .. ISSUER,
      "CODEXD_LOGIN_PORTS=0",
      CODEXD_BIN,
      "--socket",
      sock,
      "--codex-home",
      HOME,
    }, {
      on_exit = function(_, code)
        exited = code
      end,
    })
    assert(job > 0, "cannot start codexd")
    local pid = vim.fn.jobpid(job)
    append(DIR .. "/pids", pid .. "\n")
    local answered = false
    vim.wait(math.max(0, deadline - now_ms()), function()
      if exited ~= nil then
        return true
      end
      local _, _, rc = run({ CODEXCTL_BIN, "--socket", sock, "status" })
      answered = rc == 0 or rc == 1
      return answered
    end, 20)
    if answered then
      return job, pid
    end
    if exited == nil or now_ms() > deadline then
      error("codexd did not start on " .. sock .. " (exit " .. tostring(exited) .. ")", 2)
    end
  end
end

-- A minimal HTTP/1.1 client for loopback URLs: returns status, headers (lower-case names), body.
local function http(method, url, body)
  local host, port, path = url:match("^http://([^:/]+):(%d+)(.*)$")
  assert(host, "not a loopback http URL: " .. url)
  if host == "localhost" then
    host = "127.0.0.1"
  end
  if path == "" then
    path = "/"
  end
  local tcp = uv.new_tcp()
  local chunks, done, failure = {}, false, nil
  tcp:connect(host, tonumber(port), function(cerr)
    if cerr then
      failure, done = cerr, true
      tcp:close()
      return
    end
    local req = method .. " " .. path .. " HTTP/1.1\r\nHost: " .. host .. ":" .. port .. "\r\nConnection: close\r\n"
    if body then
      req = req .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n"
    end
    tcp:write(req .. "\r\n" .. (body or ""))
    tcp:read_start(function(rerr, chunk)
      if rerr or not chunk then
        failure, done = rerr, true
        tcp:close()
      else
        chunks[#chunks + 1] = chunk
      end
    end)
  end)
  truthy(vim.wait(10000, function()
    return done
  end, 5), "no HTTP answer from " .. host .. ":" .. port)
  assert(not failure, "HTTP " .. method .. " failed: " .. tostring(failure))
  local raw = table.concat(chunks)
  local head, rest = raw:match("^(.-)\r\n\r\n(.*)$")
  head = head or raw
  local status = tonumber(head:match("^HTTP/%d%.%d (%d+)"))
  local headers = {}
  for name, val in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
    headers[name:lower()] = val
  end
  return status, headers, rest or ""
end

local function messages()
  return vim.api.nvim_exec("messages", true)
end

local function floats()
  local found = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      found[#found + 1] = win
    end
  end
  return found
end

local function float_text(win)
  local buf = vim.api.nvim_win_get_buf(win)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

local codexd = require("codexd")

local function line()
  return codexd.statusline()
end

local function setup_and_wait(label, opts)
  codexd.setup(vim.tbl_extend("force", { socket = SOCK, reconnect = FAST, timeout_ms = 3000 }, opts or {}))
  eventually(3000, function()
    return line() == label
  end, function()
    return "statusline " .. label .. " (it is " .. line() .. ", " .. tostring(codexd.state().error) .. ")"
  end)
end

local cases = {}

-- The default socket resolution matches proto/src/paths.rs; timestamps parse; no daemon involved.
function cases.socket_path()
  local ds = require("codexd.client").default_socket
  local function env(t)
    return function(name)
      return t[name]
    end
  end
  local runtime = "/run/user/7"
  eq(ds(env({ CODEXD_SOCKET = "/x/s.sock", XDG_RUNTIME_DIR = runtime }), 7, false), "/x/s.sock", "CODEXD_SOCKET first")
  eq(
    ds(env({ CODEXD_SOCKET = "", XDG_RUNTIME_DIR = runtime }), 7, false),
    runtime .. "/codexd/codexd.sock",
    "empty CODEXD_SOCKET is unset"
  )
  eq(ds(env({ XDG_RUNTIME_DIR = "", TMPDIR = "/var/tmp" }), 7, false), "/var/tmp/codexd-7/codexd.sock", "TMPDIR")
  eq(ds(env({ TMPDIR = "" }), 7, false), "/tmp/codexd-7/codexd.sock", "/tmp")
  eq(ds(env({ USERNAME = "ann" }), 7, true), [[\\.\pipe\codexd-ann]], "Windows pipe")
  eq(ds(env({}), 7, true), [[\\.\pipe\codexd-user]], "Windows pipe without USERNAME")
  eq(codexd.default_socket(), SOCK, "the process's CODEXD_SOCKET")

  eq(codexd._parse_time("1970-01-01T00:00:00Z"), 0, "epoch")
  eq(codexd._parse_time("2000-02-29T00:00:00.250Z"), 951782400, "leap day with fraction")
  eq(codexd._parse_time("2026-11-29T10:44:14Z"), 1795949054, "RFC 3339 UTC")
  eq(codexd._parse_time("2026-11-29T11:44:14+01:00"), 1795949054, "offset")
  eq(codexd._parse_time("not a time"), nil, "garbage")
end

-- The client's framing against a scripted server: replies split across reads, CRLF, a notification between
-- replies, an error reply, and pending requests failing when the server closes.
function cases.framing()
  local client = require("codexd.client")
  local path = DIR .. "/fake.sock"
  local server = uv.new_pipe(false)
  assert(server:bind(path))
  local peer
  local received = ""
  server:listen(8, function()
    peer = uv.new_pipe(false)
    server:accept(peer)
    peer:read_start(function(_, chunk)
      if chunk then
        received = received .. chunk
      end
    end)
  end)
  local events = {}
  local conn = client.connect(path, {
    on_open = function()
      events[#events + 1] = "open"
    end,
    on_notification = function(method, params)
      events[#events + 1] = method .. ":" .. tostring(params.reason)
    end,
    on_close = function(msg)
      events[#events + 1] = "close:" .. msg
    end,
  })
  eventually(2000, function()
    return events[1] == "open" and peer ~= nil
  end, "connection")
  local results = {}
  conn:request("getAuthStatus", {}, function(err, res)
    results[1] = { err = err, res = res }
  end)
  conn:request("daemon/status", nil, function(err, res)
    results[2] = { err = err, res = res }
  end)
  conn:request("account/logout", nil, function(err, res)
    results[3] = { err = err, res = res }
  end)
  eventually(2000, function()
    return select(2, received:gsub("\n", "")) == 3
  end, "three request lines")
  local lines = vim.split(received, "\n", { plain = true, trimempty = true })
  local first = vim.json.decode(lines[1])
  eq(first.jsonrpc, "2.0", "jsonrpc")
  eq(first.method, "getAuthStatus", "method")
  truthy(lines[1]:find('"params":{}', 1, true), "empty params are sent as an object: " .. lines[1])
  eq(vim.json.decode(lines[2]).params, nil, "no params")

  local script = '{"jsonrpc":"2.0","id":1,"result":{"authMethod":null,"generation":4}}\r\n'
    .. '{"jsonrpc":"2.0","method":"account/updated","params":{"authMode":null,"generation":5,"reason":"logout"}}\n'
    .. '{"jsonrpc":"2.0","id":2,"error":{"code":-32004,"message":"codexd is shutting down",'
    .. '"data":{"reason":"shuttingDown"}}}\n'
  for i = 1, #script, 7 do
    peer:write(script:sub(i, i + 6))
  end
  eventually(2000, function()
    return results[1] and results[2]
  end, "two replies")
  eq(results[1].err, nil, "first reply is a result")
  eq(results[1].res.generation, 4, "result split across reads")
  eq(client.value(results[1].res.authMethod), nil, "null")
  eq(events[2], "account/updated:logout", "notification between replies")
  eq(results[2].err.code, -32004, "error code")
  eq(results[2].err.reason, "shuttingDown", "error data.reason")
  peer:close()
  eventually(2000, function()
    return results[3] ~= nil and events[3] ~= nil
  end, "close")
  eq(results[3].err.code, "disconnected", "pending request fails on close")
  contains(events[3], "close:", "on_close")
  server:close()
end

-- token() returns what `codexctl token` prints; :CodexdStatus and the statusline describe the login.
function cases.token()
  vim.cmd("runtime plugin/codexd.lua")
  -- No socket option: CODEXD_SOCKET (set by the runner) names it, as for codexctl.
  codexd.setup({ reconnect = FAST, timeout_ms = 3000 })
  eq(codexd.state().socket, SOCK, "socket from CODEXD_SOCKET")
  eventually(3000, function()
    return line() == "codex:chatgpt(plus)"
  end, "statusline codex:chatgpt(plus)")
  local want = ctl_token()
  local tok, err = codexd.token()
  remember(tok)
  eq(err, nil, "token() error")
  eq_secret(tok, want, "token() and codexctl token")
  eq_secret(codexd.token(), want, "token() from the cache")

  local st = codexd.state()
  eq(st.status, "chatgpt", "status")
  eq(st.accountId, "acct-fake-0001", "accountId")
  eq(st.planType, "plus", "planType")
  eq(st.generation, 0, "generation")
  eq(st.connected, true, "connected")
  truthy(st.expiresAt, "expiresAt")
  eq(st.server.name, "codexd", "serverInfo")
  eq(st.protocolVersion, 1, "protocolVersion")

  -- In a real statusline expression.
  local evaluated = vim.api.nvim_eval_statusline("%{v:lua.require'codexd'.statusline()}", {}).str
  eq(evaluated, "codex:chatgpt(plus)", "v:lua statusline")

  vim.cmd("CodexdStatus")
  contains(messages(), "codexd: logged in with ChatGPT (plus, account acct-fake-0001)", ":CodexdStatus")
  contains(messages(), "codexd 0.", ":CodexdStatus names the daemon")

  -- Inside a libuv callback token() refuses instead of blocking.
  local fast_err
  local timer = uv.new_timer()
  timer:start(0, 0, function()
    local t, e = codexd.token()
    fast_err = (t == nil) and e or "returned a token"
    timer:close()
  end)
  eventually(2000, function()
    return fast_err ~= nil
  end, "token() in a fast event")
  contains(fast_err, "libuv callback", "token() in a fast event")

  -- A custom statusline template.
  codexd.setup({ socket = SOCK, reconnect = FAST, statusline = "[{status}|{plan}|{account}|{generation}]" })
  eq(line(), "[chatgpt|plus|acct-fake-0001|0]", "statusline template")
  codexd.setup({ socket = SOCK, reconnect = FAST, statusline = function(s)
    return "fn:" .. s.label
  end })
  eq(line(), "fn:chatgpt(plus)", "statusline function")
end

-- `codexctl logout` elsewhere: the statusline says logged-out within a deadline and token() has nothing.
function cases.logout()
  setup_and_wait("codex:chatgpt(plus)")
  remember(codexd.token())
  local seen = {}
  vim.api.nvim_create_autocmd("User", {
    pattern = "CodexdChanged",
    callback = function()
      seen[#seen + 1] = codexd.state().status
    end,
  })
  local _, err, rc = ctl("logout")
  eq(rc, 0, "codexctl logout (" .. err .. ")")
  local t0 = now_ms()
  eventually(2000, function()
    return line() == "codex:logged-out"
  end, "statusline codex:logged-out")
  io.stdout:write(string.format("logged-out after %.0f ms\n", now_ms() - t0))
  eq(codexd.state().lastReason, "logout", "account/updated reason")
  eventually(1000, function()
    return seen[#seen] == "logged-out"
  end, "User CodexdChanged")
  local tok, terr = codexd.token()
  eq_secret(tok, nil, "no token after logout")
  contains(terr, "not logged in", "token() error")
end

-- :CodexdLogout logs out everywhere.
function cases.logout_command()
  vim.cmd("runtime plugin/codexd.lua")
  setup_and_wait("codex:chatgpt(plus)")
  remember(codexd.token())
  vim.cmd("CodexdLogout")
  eventually(2000, function()
    return line() == "codex:logged-out"
  end, "statusline codex:logged-out")
  contains(messages(), "codexd: logged out", "message")
  local _, _, rc = ctl("token")
  eq(rc, 1, "codexctl token after :CodexdLogout")
end

-- `codexctl stop`: daemon/shuttingDown, the statusline says offline within a deadline, token() fails fast.
function cases.stop()
  vim.cmd("runtime plugin/codexd.lua")
  setup_and_wait("codex:chatgpt(plus)")
  remember(codexd.token())
  local _, err, rc = ctl("stop")
  eq(rc, 0, "codexctl stop (" .. err .. ")")
  eventually(2000, function()
    return line() == "codex:offline"
  end, "statusline codex:offline")
  eq(codexd.state().shutdowns, 1, "daemon/shuttingDown received")
  eq(codexd.state().connected, false, "connected")
  local t0 = now_ms()
  local tok, terr = codexd.token({ timeout_ms = 1000 })
  local took = now_ms() - t0
  eq_secret(tok, nil, "no token from a stopped daemon")
  -- "cannot reach codexd at SOCK: ENOENT..." once the socket is gone; while the stopping daemon still has it, the
  -- connection may be accepted and then reset ("no answer from SOCK: ...").
  contains(terr, SOCK, "token() error names the socket")
  truthy(took < 1500, "token() took " .. took .. " ms")
  vim.cmd("CodexdStatus")
  contains(messages(), "codexd: offline", ":CodexdStatus offline")
end

-- The daemon restarts on the same socket (after `codexctl stop`, then after SIGKILL): the plugin reconnects by
-- itself, and token() serves the new daemon's token.
function cases.reconnect()
  setup_and_wait("codex:chatgpt(plus)")
  remember(codexd.token())
  eq(codexd.state().connects, 1, "connects")
  local _, err, rc = ctl("stop")
  eq(rc, 0, "codexctl stop (" .. err .. ")")
  eventually(2000, function()
    return line() == "codex:offline"
  end, "statusline codex:offline after stop")

  local job, pid = start_daemon()
  eventually(5000, function()
    return line() == "codex:chatgpt(plus)"
  end, "statusline codex:chatgpt(plus) after the restart")
  eq(codexd.state().connects, 2, "connects after the restart")
  eq(codexd.state().generation, 0, "generation of the new daemon")
  local tok = codexd.token()
  remember(tok)
  eq_secret(tok, ctl_token(), "token() after the restart")

  -- Gone without a goodbye: EOF is enough.
  uv.kill(pid, "sigkill")
  eventually(2000, function()
    return line() == "codex:offline"
  end, "statusline codex:offline after SIGKILL")
  eq(vim.fn.jobwait({ job }, 2000)[1], 137, "the killed daemon's exit")
  eq(codexd.state().shutdowns, 1, "no daemon/shuttingDown from a killed daemon")
  start_daemon()
  eventually(5000, function()
    return line() == "codex:chatgpt(plus)"
  end, "statusline codex:chatgpt(plus) after the second restart")
  tok = codexd.token()
  remember(tok)
  eq_secret(tok, ctl_token(), "token() after the second restart")
end

-- No daemon at first: offline, token() fails within its deadline; codexd starts: the plugin finds it.
function cases.absent()
  codexd.setup({ socket = SOCK, reconnect = FAST })
  eq(line(), "codex:offline", "statusline without a daemon")
  local t0 = now_ms()
  local tok, err = codexd.token({ timeout_ms = 500 })
  eq_secret(tok, nil, "no token without a daemon")
  contains(err, "cannot reach codexd at " .. SOCK, "token() error")
  truthy(now_ms() - t0 < 1000, "token() waited too long")
  start_daemon()
  eventually(5000, function()
    return line() == "codex:chatgpt(plus)"
  end, "statusline codex:chatgpt(plus) once codexd runs")
  tok = codexd.token()
  remember(tok)
  eq_secret(tok, ctl_token(), "token()")
end

-- Access tokens that live 4 s: codexd refreshes, the plugin sees account/updated {reason: "refresh"}, and
-- token() returns the new token.
function cases.refresh()
  setup_and_wait("codex:chatgpt(plus)")
  local first = codexd.token()
  remember(first)
  truthy(first, "a first token")
  local gen = codexd.state().generation
  eventually(8000, function()
    return (codexd.state().reasons.refresh or 0) >= 1
  end, "account/updated reason refresh")
  truthy(codexd.state().generation > gen, "the generation moved")
  eq(line(), "codex:chatgpt(plus)", "statusline after a refresh")
  local second = codexd.token()
  remember(second)
  truthy(second and second ~= first, "token() returns a new token after the refresh")
  -- Refreshes keep coming every ~2 s; codexctl and token() agree whenever no refresh falls between them.
  eventually(6000, function()
    local a = ctl_token()
    local b = codexd.token()
    remember(b)
    return a == b
  end, "token() to equal codexctl token")
end

-- The issuer refuses a refresh for good: token({refresh = true}) has no token, the statusline says
-- refresh-failed.
function cases.refresh_failed()
  setup_and_wait("codex:chatgpt(plus)")
  remember(codexd.token())
  local status = http(
    "POST",
    ISSUER .. "/_fake/script",
    '{"endpoint":"refresh","fault":{"kind":"refresh_error","status":400,"code":"refresh_token_reused"},"always":true}'
  )
  eq(status, 200, "scripting the fake issuer")
  local tok, err = codexd.token({ refresh = true })
  eq_secret(tok, nil, "no token after a refused refresh")
  contains(err, "refresh", "token() error")
  eventually(3000, function()
    return line() == "codex:refresh-failed"
  end, "statusline codex:refresh-failed")
  -- The reply to the forced refresh may come before or after account/updated {reason: "refreshFailed"}.
  eventually(3000, function()
    return codexd.state().lastReason == "refreshFailed"
  end, "account/updated reason refreshFailed")
  local st = codexd.state()
  eq(st.authError.issuerCode, "refresh_token_reused", "issuerCode")
  eq(st.authError.reason, "refreshFailed", "authError.reason")
end

-- :CodexdLogin: the device code in a floating window and a message; the fake issuer approves after 2 polls; the
-- window closes, the statusline says chatgpt(plus), and token() serves the new login.
function cases.device_login()
  vim.cmd("runtime plugin/codexd.lua")
  setup_and_wait("codex:logged-out")
  vim.cmd("CodexdLogin")
  eventually(3000, function()
    return codexd.state().login.code ~= nil
  end, "a user code")
  local login = codexd.state().login
  contains(login.url, ISSUER, "verification URL on the issuer")
  local wins = floats()
  eq(#wins, 1, "one floating window")
  local win = wins[1]
  contains(float_text(win), login.code, "the code in the window")
  contains(float_text(win), login.url, "the URL in the window")
  contains(messages(), login.code, "the code in a message")
  eventually(15000, function()
    return codexd.state().lastLogin ~= nil
  end, "account/login/completed")
  eq(codexd.state().lastLogin.success, true, "login success")
  eq(line(), "codex:chatgpt(plus)", "statusline after the login")
  eq(vim.api.nvim_win_is_valid(win), false, "window closed")
  contains(messages(), "codexd: logged in (chatgpt(plus))", "success message")
  local tok = codexd.token()
  remember(tok)
  eq_secret(tok, ctl_token(), "token() after the login")
end

-- :CodexdLogin cancel, and q in the window, end a login that nobody approves.
function cases.login_cancel()
  vim.cmd("runtime plugin/codexd.lua")
  setup_and_wait("codex:logged-out")
  vim.cmd("CodexdLogin device")
  eventually(3000, function()
    return codexd.state().login.code ~= nil
  end, "a user code")
  local win = floats()[1]
  truthy(win, "a floating window")
  vim.cmd("CodexdLogin cancel")
  eventually(3000, function()
    return codexd.state().lastLogin ~= nil
  end, "account/login/completed")
  eq(codexd.state().lastLogin.success, false, "canceled login")
  contains(codexd.state().lastLogin.error, "cancel", "error")
  eq(vim.api.nvim_win_is_valid(win), false, "window closed")
  eq(line(), "codex:logged-out", "still logged out")
  contains(messages(), "codexd: login failed: login canceled", "message")

  -- Again, and q in the window cancels.
  vim.cmd("CodexdLogin")
  eventually(3000, function()
    return codexd.state().login and codexd.state().login.code ~= nil
  end, "a second user code")
  win = floats()[1]
  truthy(win, "a second floating window")
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_feedkeys("q", "x", false)
  eventually(3000, function()
    return codexd.state().login == nil
  end, "login ended by q")
  eq(codexd.state().lastLogin.success, false, "q cancels")
  eq(vim.api.nvim_win_is_valid(win), false, "window closed by q")
end

-- :CodexdLogin browser: the URL is shown; following it (the fake issuer redirects to codexd's callback on
-- 127.0.0.1) completes the login.
function cases.browser_login()
  vim.cmd("runtime plugin/codexd.lua")
  local opened
  setup_and_wait("codex:logged-out", {
    open_url = function(url)
      opened = url
    end,
  })
  vim.cmd("CodexdLogin browser")
  eventually(3000, function()
    return codexd.state().login.url ~= nil
  end, "an authorization URL")
  local url = codexd.state().login.url
  contains(url, ISSUER .. "/oauth/authorize?", "authUrl on the issuer")
  eq(opened, url, "open_url called with the URL")
  contains(messages(), url, "the URL in a message")
  local status, headers = http("GET", url)
  eq(status, 302, "the issuer redirects")
  contains(headers.location, "127.0.0.1", "redirect to codexd's callback")
  http("GET", headers.location)
  eventually(10000, function()
    return codexd.state().lastLogin ~= nil
  end, "account/login/completed")
  eq(codexd.state().lastLogin.success, true, "login success")
  eq(line(), "codex:chatgpt(plus)", "statusline after the login")
  eq(#floats(), 0, "window closed")
end

-- An API key login through the plugin: statusline apikey, token() is the key. A key typed after :CodexdLogin (or
-- any unknown kind) is never echoed, and leaves the command-line history.
function cases.apikey()
  setup_and_wait("codex:logged-out")
  vim.cmd("runtime plugin/codexd.lua")
  local typed = "sk-typed-" .. tostring(uv.hrtime())
  remember(typed)
  vim.fn.histadd(":", "CodexdLogin apikey " .. typed)
  -- (An ERROR notification raises inside vim.cmd when headless; the message is what counts.)
  local _, err = pcall(vim.cmd, "CodexdLogin apikey " .. typed)
  local seen = messages() .. "\n" .. tostring(err)
  contains(seen, "codexd: :CodexdLogin apikey takes no argument", "hint for a key after apikey")
  truthy(not seen:find(typed, 1, true), "the typed key is not echoed")
  truthy(not vim.fn.histget(":", -1):find(typed, 1, true), "the typed key left the history")
  vim.fn.histadd(":", "CodexdLogin " .. typed)
  _, err = pcall(vim.cmd, "CodexdLogin " .. typed)
  seen = messages() .. "\n" .. tostring(err)
  contains(seen, "codexd: unknown login kind; use device, browser, apikey or cancel", "unknown kind")
  truthy(not seen:find(typed, 1, true), "the unknown kind is not echoed")
  truthy(not vim.fn.histget(":", -1):find(typed, 1, true), "the unknown kind left the history")
  eq(line(), "codex:logged-out", "nothing was sent")
  local key = "sk-test-" .. tostring(uv.hrtime())
  remember(key)
  truthy(codexd.login("apikey", { api_key = "  " .. key .. "\n" }), "login request sent")
  eventually(3000, function()
    return line() == "codex:apikey"
  end, "statusline codex:apikey")
  eventually(2000, function()
    return codexd.state().lastLogin ~= nil
  end, "account/login/completed")
  eq(codexd.state().lastLogin.success, true, "login success")
  eq_secret(codexd.token(), key, "token() is the (trimmed) key")
  eq_secret(ctl_token(), key, "codexctl token")
end

-- Runs the case named by CODEXD_TEST_CASE and exits.
local function main()
  local case = cases[CASE]
  local ok, err
  if not case then
    ok, err = false, "no case named " .. tostring(CASE)
  else
    ok, err = xpcall(case, debug.traceback)
  end
  if ok then
    local msgs = messages()
    for s in pairs(secrets) do
      if msgs:find(s, 1, true) then
        ok, err = false, "a token appears in :messages"
      end
    end
  end
  local f = assert(io.open(DIR .. "/result", "w"))
  f:write(ok and "ok" or ("FAIL: " .. tostring(err) .. "\n"))
  f:close()
  if not ok then
    io.stderr:write(CASE .. ": " .. tostring(err) .. "\n")
    io.stderr:write(":messages:\n" .. messages() .. "\n")
  end
  codexd.stop()
  if ok then
    vim.cmd("qa!")
  else
    vim.cmd("cquit 1")
  end
end

main()
