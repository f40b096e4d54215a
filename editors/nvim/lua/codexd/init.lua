-- codexd.nvim: the Codex login of codexd (the per-user credential daemon) inside Neovim.
--
-- One connection to codexd, subscribed with `initialize`, keeps the login state current from its notifications
-- (docs/PROTOCOL.md); `token()` asks for the bearer token on that connection and caches it until the next
-- `account/updated`, `daemon/shuttingDown`, disconnect or generation change. When codexd goes away the plugin
-- reconnects with backoff. The token is never printed, logged or put in an error message.

local client = require("codexd.client")
local ui = require("codexd.ui")

local uv = vim.uv or vim.loop
local value = client.value
local levels = vim.log.levels

local M = {}

M.version = "0.1.0"

--- Protocol version this plugin speaks (PROTOCOL.md).
M.protocol_version = 1

local defaults = {
  -- Socket path; nil resolves it as codexctl does (CODEXD_SOCKET, XDG_RUNTIME_DIR, TMPDIR).
  socket = nil,
  -- Statusline text: a template with {label} {status} {plan} {account} {expires} {generation}, or a function
  -- that receives state() and returns a string.
  statusline = "codex:{label}",
  -- How long token() and the commands wait for codexd, in milliseconds.
  timeout_ms = 5000,
  -- Reconnect delays after codexd went away or could not be reached: from min_ms doubling up to max_ms,
  -- each scaled by a random factor between 0.5 and 1.
  reconnect = { min_ms = 200, max_ms = 10000 },
  -- Show the sign-in code of :CodexdLogin in a floating window (it is always in a message as well).
  login_window = true,
  -- Called with the sign-in URL of `:CodexdLogin browser`, e.g. function(url) vim.fn.jobstart({"xdg-open", url}) end.
  open_url = nil,
  -- clientInfo.name sent with initialize.
  client_name = "codexd.nvim",
}

local config = vim.deepcopy(defaults)

-- Everything the plugin knows. `auth` is nil while the login state is unknown (not connected yet, or gone).
local S = {
  started = false,
  conn = nil, -- the current client connection (connecting or open), or nil
  subscribed = false, -- initialize answered on `conn`
  socket = nil,
  auth = nil, -- {authMethod, planType, accountId, expiresAt, generation, authError}
  server = nil, -- serverInfo from initialize
  codex_home = nil,
  protocol = nil,
  error = nil, -- why the last connection failed or ended
  last_reason = nil, -- reason of the last account/updated
  updates = 0, -- account/updated notifications received
  reasons = {}, -- reason -> count
  shutdowns = 0, -- daemon/shuttingDown notifications received
  connects = 0, -- successful initializations
  backoff = nil,
  timer = nil,
  login = nil, -- the login this plugin started: {kind, conn, id, url, code, panel}
  last_login = nil, -- {kind, success, error} of the last login this plugin started
  early = {}, -- account/login/completed seen before the loginId was known
  line = "codex:offline",
}

-- The cached bearer token: {token, generation, expires (epoch seconds or nil)}. Kept apart from S so that nothing
-- that copies or prints S can reach it.
local cache = nil

local function now_ms()
  return uv.hrtime() / 1e6
end

--- Parses an RFC 3339 timestamp to epoch seconds (nil when it cannot).
function M._parse_time(s)
  if type(s) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then
    return nil
  end
  rest = rest:gsub("^%.%d+", "")
  local offset = 0
  if rest ~= "Z" and rest ~= "z" and rest ~= "" then
    local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then
      return nil
    end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60
    if sign == "-" then
      offset = -offset
    end
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (H. Hinnant), proleptic Gregorian calendar
  if mo <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) - offset
end

local function drop_cache()
  cache = nil
end

local function conn_usable(conn)
  return conn ~= nil and conn == S.conn and conn.state == "open" and not conn.shutting_down
end

local function status_keyword()
  if not (S.subscribed and conn_usable(S.conn) and S.auth) then
    return "offline"
  end
  local a = S.auth
  local method = type(a.authMethod) == "string" and a.authMethod:lower() or nil
  if method == "chatgpt" then
    return "chatgpt"
  elseif method == "apikey" then
    return "apikey"
  elseif method ~= nil then
    return method
  end
  if type(a.authError) == "table" then
    if value(a.authError.reason) == "refreshFailed" then
      return "refresh-failed"
    end
    return "auth-error"
  end
  return "logged-out"
end

local function label_of(status, plan)
  if status == "chatgpt" and plan then
    return "chatgpt(" .. plan .. ")"
  end
  return status
end

--- A copy of what the plugin knows (never the token): connected, socket, status ("chatgpt", "apikey",
--- "logged-out", "refresh-failed", "auth-error", "offline"), label, authMethod, planType, accountId, expiresAt,
--- generation, authError, lastReason, updates, reasons, shutdowns, connects, error, server, codexHome, login,
--- lastLogin.
function M.state()
  local a = S.auth or {}
  local status = status_keyword()
  local login = nil
  if S.login then
    login = { kind = S.login.kind, id = S.login.id, url = S.login.url, code = S.login.code }
  end
  return vim.deepcopy({
    connected = S.subscribed and conn_usable(S.conn),
    socket = S.socket,
    status = status,
    label = label_of(status, a.planType),
    authMethod = a.authMethod,
    planType = a.planType,
    accountId = a.accountId,
    expiresAt = a.expiresAt,
    generation = a.generation,
    authError = a.authError,
    lastReason = S.last_reason,
    updates = S.updates,
    reasons = S.reasons,
    shutdowns = S.shutdowns,
    connects = S.connects,
    error = S.error,
    server = S.server,
    codexHome = S.codex_home,
    protocolVersion = S.protocol,
    login = login,
    lastLogin = S.last_login,
  })
end

local function render()
  local fmt = config.statusline
  local st = M.state()
  if type(fmt) == "function" then
    local ok, out = pcall(fmt, st)
    return ok and tostring(out) or "codex:?"
  end
  local fields = {
    label = st.label,
    status = st.status,
    plan = st.planType or "",
    account = st.accountId or "",
    expires = st.expiresAt or "",
    generation = st.generation and tostring(st.generation) or "",
  }
  return (tostring(fmt):gsub("{(%a+)}", function(key)
    return fields[key]
  end))
end

-- Recomputes the statusline text now; redraws status lines and fires `User CodexdChanged` on the next tick (once
-- for a burst of changes), so that it is safe from anywhere, statusline evaluation included.
local function changed()
  S.line = render()
  if S.redraw_pending then
    return
  end
  S.redraw_pending = true
  vim.schedule(function()
    S.redraw_pending = false
    pcall(vim.cmd, "redrawstatus!")
    pcall(vim.api.nvim_exec_autocmds, "User", { pattern = "CodexdChanged", modeline = false })
  end)
end

-- A message without its "codexd: " prefix, to nest it in another one.
local function bare(msg)
  return (tostring(msg):gsub("^codexd: ", ""))
end

local function describe(err)
  if type(err) ~= "table" then
    return "codexd: " .. tostring(err)
  end
  if err.code == "disconnected" then
    return "codexd: no answer from " .. tostring(S.socket) .. ": " .. tostring(err.message)
  end
  local msg = "codexd: " .. tostring(err.message)
  if err.reason then
    msg = msg .. " (" .. tostring(err.reason) .. ")"
  end
  return msg
end

local function apply_status(conn, res)
  if not conn_usable(conn) or type(res) ~= "table" then
    return
  end
  local gen = value(res.generation)
  if cache and cache.generation ~= gen then
    drop_cache()
  end
  S.auth = {
    authMethod = value(res.authMethod),
    planType = value(res.planType),
    accountId = value(res.accountId),
    expiresAt = value(res.expiresAt),
    generation = gen,
    authError = value(res.authError),
  }
  changed()
end

-- Ends the login this plugin is showing.
local function finish_login(params)
  local login = S.login
  if not login then
    return
  end
  S.login = nil
  ui.close_panel(login.panel)
  local success = value(params.success) == true
  local err = value(params.error)
  S.last_login = { kind = login.kind, success = success, error = err }
  if success then
    ui.notify("codexd: logged in (" .. M.state().label .. ")")
  else
    ui.notify("codexd: login failed: " .. tostring(err or "no reason given"), levels.WARN)
  end
end

local function on_login_completed(params)
  local id = value(params.loginId)
  local login = S.login
  if login and ((login.id ~= nil and id == login.id) or (login.kind == "apikey" and id == nil)) then
    finish_login(params)
  elseif id ~= nil then
    -- Perhaps ours, ahead of the reply that names it; keep the last few.
    S.early[#S.early + 1] = params
    if #S.early > 8 then
      table.remove(S.early, 1)
    end
  end
end

local function abandon_login(why)
  if S.login then
    finish_login({ success = false, error = why })
  end
end

local function on_notification(conn, method, params)
  if conn ~= S.conn then
    return
  end
  if method == "account/updated" then
    drop_cache()
    local reason = value(params.reason)
    S.updates = S.updates + 1
    S.last_reason = reason
    if reason then
      S.reasons[reason] = (S.reasons[reason] or 0) + 1
    end
    if not conn.shutting_down then
      S.auth = {
        authMethod = value(params.authMode),
        planType = value(params.planType),
        accountId = value(params.accountId),
        expiresAt = nil, -- not in the notification; getAuthStatus below fills it in
        generation = value(params.generation),
        authError = value(params.authError),
      }
      changed()
      conn:request("getAuthStatus", nil, function(err, res)
        if not err then
          apply_status(conn, res)
        end
      end)
    end
  elseif method == "account/login/completed" then
    on_login_completed(params)
  elseif method == "daemon/shuttingDown" then
    drop_cache()
    conn.shutting_down = true
    S.shutdowns = S.shutdowns + 1
    S.auth = nil
    S.error = "codexd is shutting down"
    abandon_login("codexd stopped before the login completed")
    changed()
  end
end

local function socket_path()
  if type(config.socket) == "string" and config.socket ~= "" then
    return config.socket
  end
  return client.default_socket()
end

local connect

local function schedule_reconnect()
  if not S.started then
    return
  end
  local rc = config.reconnect or defaults.reconnect
  local min_ms = rc.min_ms or defaults.reconnect.min_ms
  local max_ms = math.max(rc.max_ms or defaults.reconnect.max_ms, min_ms)
  S.backoff = S.backoff and math.min(S.backoff * 2, max_ms) or min_ms
  local delay = math.floor(S.backoff * (0.5 + math.random() * 0.5))
  if not S.timer then
    S.timer = uv.new_timer()
  end
  S.timer:stop()
  S.timer:start(delay, 0, vim.schedule_wrap(function()
    connect()
  end))
end

connect = function()
  if S.conn or not S.started then
    return
  end
  if S.timer then
    S.timer:stop()
  end
  local path = socket_path()
  S.socket = path
  local conn
  conn = client.connect(path, {
    on_open = function()
      if conn ~= S.conn then
        return
      end
      conn:request("initialize", {
        clientInfo = { name = config.client_name, version = M.version },
        protocolVersion = M.protocol_version,
      }, function(err, res)
        if not conn_usable(conn) then
          return
        end
        if err then
          S.error = "initialize failed: " .. bare(describe(err))
          conn:close(S.error)
          return
        end
        res = type(res) == "table" and res or {}
        S.subscribed = true
        S.backoff = nil
        S.error = nil
        S.connects = S.connects + 1
        S.server = value(res.serverInfo)
        S.codex_home = value(res.codexHome)
        S.protocol = value(res.protocolVersion)
        conn:request("getAuthStatus", nil, function(gerr, gres)
          if gerr then
            S.error = bare(describe(gerr))
            changed()
          else
            apply_status(conn, gres)
          end
        end)
      end)
    end,
    on_fail = function(message)
      if conn ~= S.conn then
        return
      end
      S.conn = nil
      local why = "cannot reach codexd at " .. path .. ": " .. tostring(message)
      if why ~= S.error then
        -- Every failed attempt would otherwise redraw and fire CodexdChanged.
        S.error = why
        changed()
      end
      schedule_reconnect()
    end,
    on_notification = function(method, params)
      on_notification(conn, method, params)
    end,
    on_close = function(message)
      if conn ~= S.conn then
        return
      end
      S.conn = nil
      S.subscribed = false
      S.auth = nil
      drop_cache()
      if not conn.shutting_down then
        S.error = "lost the connection to codexd at " .. path .. ": " .. tostring(message)
      end
      abandon_login("the connection to codexd ended before the login completed")
      changed()
      schedule_reconnect()
    end,
  })
  S.conn = conn
end

-- Makes sure a connection is open (connecting at once, without waiting for the backoff), waiting until
-- `deadline` (ms, from now_ms). Returns true, or false and why.
local function ensure_open(deadline)
  if conn_usable(S.conn) then
    return true
  end
  local function remaining()
    return math.max(0, math.floor(deadline - now_ms()))
  end
  local conn = S.conn
  if conn and conn.shutting_down then
    -- codexd said goodbye: wait for it to close the connection, then try once more (it may be restarting).
    vim.wait(remaining(), function()
      return S.conn ~= conn
    end, 5)
  end
  if not S.conn then
    connect()
  end
  conn = S.conn
  if not conn then
    return false, "codexd: not started"
  end
  if conn.shutting_down then
    return false, "codexd: codexd at " .. tostring(S.socket) .. " is shutting down"
  end
  vim.wait(remaining(), function()
    return S.conn ~= conn or conn.state == "open"
  end, 5)
  if conn_usable(conn) then
    return true
  end
  if conn.state == "connecting" then
    return false, "codexd: no connection to " .. tostring(S.socket) .. " within the deadline"
  end
  return false, "codexd: " .. tostring(S.error or ("cannot reach codexd at " .. tostring(S.socket)))
end

-- Sends `method` and waits for the answer until `deadline`. `on_result(conn, result)` runs in the reply's
-- turn, before any later notification. Returns result, or nil and a message.
local function call(method, params, deadline, on_result)
  local ok, why = ensure_open(deadline)
  if not ok then
    return nil, why
  end
  local conn = S.conn
  local done, failure, result = false, nil, nil
  conn:request(method, params, function(err, res)
    done, failure, result = true, err, res
    if not err and on_result then
      on_result(conn, res)
    end
  end)
  vim.wait(math.max(0, math.floor(deadline - now_ms())), function()
    return done
  end, 5)
  if not done then
    return nil, "codexd: no answer to " .. method .. " within the deadline"
  end
  if failure then
    return nil, describe(failure)
  end
  return result
end

local function deadline_from(opts)
  local timeout = (opts and opts.timeout_ms) or config.timeout_ms or defaults.timeout_ms
  return now_ms() + timeout
end

local function ensure_started()
  if not S.started then
    M.setup()
  end
end

local function cache_valid()
  if not cache or not conn_usable(S.conn) or not S.auth then
    return false
  end
  if cache.generation ~= S.auth.generation then
    return false
  end
  -- A token within 5 minutes of its expiry is asked for again: codexd then refreshes it (PROTOCOL.md).
  return cache.expires == nil or cache.expires - os.time() > 300
end

--- Sets the plugin up and connects. Calling it again applies new options (and reconnects if the socket changed).
function M.setup(opts)
  opts = opts or {}
  local expected = {
    socket = { "string" },
    statusline = { "string", "function" },
    timeout_ms = { "number" },
    reconnect = { "table" },
    login_window = { "boolean" },
    open_url = { "function" },
    client_name = { "string" },
  }
  for key, v in pairs(opts) do
    local types = expected[key]
    if not types then
      error("codexd.setup: unknown option " .. tostring(key), 2)
    end
    if not vim.tbl_contains(types, type(v)) then
      error("codexd.setup: " .. key .. " must be a " .. table.concat(types, " or ") .. ", not a " .. type(v), 2)
    end
  end
  config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts)
  S.started = true
  if S.conn and S.conn.path ~= socket_path() then
    local old = S.conn
    S.conn = nil
    S.subscribed = false
    S.auth = nil
    drop_cache()
    old:close("socket changed")
  end
  S.backoff = nil
  connect()
  changed()
end

--- Disconnects and stops reconnecting (setup() starts again).
function M.stop()
  S.started = false
  if S.timer then
    S.timer:stop()
  end
  local conn = S.conn
  S.conn = nil
  S.subscribed = false
  S.auth = nil
  drop_cache()
  abandon_login("stopped")
  if conn then
    conn:close("stopped")
  end
  S.error = "stopped"
  changed()
end

--- The bearer token (ChatGPT access token or API key), synchronously: nil and a message when not logged in,
--- unreachable, or no answer within `opts.timeout_ms` (default setup's timeout_ms). `opts.refresh = true` asks
--- codexd to refresh first (after the backend answered 401). Cached until account/updated, daemon/shuttingDown,
--- a disconnect or a generation change. Call it from the main loop, not from a libuv callback.
function M.token(opts)
  opts = opts or {}
  ensure_started()
  if vim.in_fast_event() then
    return nil, "codexd: token() cannot wait inside a libuv callback; call it through vim.schedule()"
  end
  if not opts.refresh and cache_valid() then
    return cache.token
  end
  local token = nil
  local params = { includeToken = true }
  if opts.refresh then
    params.refreshToken = true
  end
  local res, err = call("getAuthStatus", params, deadline_from(opts), function(conn, result)
    apply_status(conn, result)
    local t = type(result) == "table" and value(result.authToken) or nil
    if type(t) == "string" and t ~= "" and conn_usable(conn) then
      token = t
      cache = { token = t, generation = value(result.generation), expires = M._parse_time(value(result.expiresAt)) }
    end
  end)
  if not res then
    return nil, err
  end
  if token then
    return token
  end
  local auth_error = value(res.authError)
  if type(auth_error) == "table" and value(auth_error.message) then
    return nil, "codexd: " .. tostring(value(auth_error.message))
  end
  return nil, "codexd: not logged in (sign in with :CodexdLogin)"
end

--- The statusline text, e.g. "codex:chatgpt(plus)", "codex:apikey", "codex:logged-out", "codex:refresh-failed",
--- "codex:offline". Cheap: it returns what the last notification left.
function M.statusline()
  ensure_started()
  return S.line
end

local function describe_auth(st)
  if st.status == "offline" then
    return "offline: " .. tostring(st.error or "not connected") .. " (retrying)"
  end
  local parts = {}
  if st.status == "chatgpt" then
    parts[1] = "logged in with ChatGPT"
    local extra = {}
    if st.planType then
      extra[#extra + 1] = st.planType
    end
    if st.accountId then
      extra[#extra + 1] = "account " .. st.accountId
    end
    if #extra > 0 then
      parts[1] = parts[1] .. " (" .. table.concat(extra, ", ") .. ")"
    end
    if st.expiresAt then
      parts[#parts + 1] = "token expires " .. st.expiresAt
    end
  elseif st.status == "apikey" then
    parts[1] = "logged in with an API key"
  elseif st.status == "logged-out" then
    parts[1] = "not logged in (:CodexdLogin)"
  else
    local e = st.authError or {}
    parts[1] = "login unusable: " .. tostring(value(e.message) or st.status)
  end
  return table.concat(parts, ", ")
end

--- One line describing the login and the daemon, as :CodexdStatus echoes it.
function M.status_text(opts)
  ensure_started()
  local deadline = deadline_from(opts)
  if not conn_usable(S.conn) then
    ensure_open(deadline)
  end
  if S.subscribed and conn_usable(S.conn) and not S.auth then
    vim.wait(math.max(0, math.floor(deadline - now_ms())), function()
      return S.auth ~= nil or not conn_usable(S.conn)
    end, 5)
  end
  local st = M.state()
  local text = "codexd: " .. describe_auth(st)
  if st.status ~= "offline" then
    local daemon = call("daemon/status", nil, deadline)
    if type(daemon) == "table" then
      text = text
        .. string.format(
          "; generation %s; codexd %s (pid %s) on %s",
          tostring(value(daemon.generation)),
          tostring(value(daemon.version)),
          tostring(value(daemon.pid)),
          tostring(st.socket)
        )
      local next_refresh = value(daemon.nextRefresh)
      if next_refresh then
        text = text .. ", next refresh " .. tostring(next_refresh)
      end
    end
  end
  return text
end

--- :CodexdStatus
function M.show_status()
  ui.echo(M.status_text())
end

local function login_lines(login)
  if login.kind == "device" then
    return {
      " Sign in to Codex (codexd)",
      "",
      " 1. Open   " .. login.url,
      " 2. Enter  " .. login.code,
      "",
      " Waiting for the sign-in; q or :CodexdLogin cancel stops it",
    }
  end
  return {
    " Sign in to Codex in a browser on this machine (codexd)",
    "",
    " " .. login.url,
    "",
    " Waiting for the sign-in; q or :CodexdLogin cancel stops it",
  }
end

local function on_login_started(login, res)
  if S.login ~= login then
    return
  end
  if login.kind == "apikey" then
    return -- account/login/completed (loginId null) finishes it
  end
  login.id = value(res.loginId)
  if login.kind == "device" then
    login.url = value(res.verificationUrl)
    login.code = value(res.userCode)
    ui.notify("codexd: to sign in, open " .. tostring(login.url) .. " and enter the code " .. tostring(login.code))
  else
    login.url = value(res.authUrl)
    ui.notify("codexd: to sign in, open " .. tostring(login.url))
    if config.open_url then
      pcall(config.open_url, login.url)
    end
  end
  for i, params in ipairs(S.early) do
    if value(params.loginId) == login.id then
      table.remove(S.early, i)
      finish_login(params)
      return
    end
  end
  if config.login_window then
    login.panel = ui.open_panel(login_lines(login), function()
      M.cancel_login()
    end)
  end
end

--- Removes the last command-line history entry when it is a :Codexd command holding `typed` (say an API key typed
--- after :CodexdLogin), so that it is neither kept in the history nor written to the ShaDa file.
local function forget_typed(typed)
  local ok, last = pcall(vim.fn.histget, ":", -1)
  if ok and type(last) == "string" and last:find("Codexd", 1, true) and last:find(typed, 1, true) then
    pcall(vim.fn.histdel, ":", -1)
  end
end

--- Starts a login run by codexd: kind "device" (default: a code to enter on any device), "browser" (a URL to
--- open on this machine) or "apikey" (opts.api_key, else asked with inputsecret()); "cancel" cancels the login
--- in progress. Returns true when the request was sent. The outcome is reported by a message, and in
--- state().lastLogin.
function M.login(kind, opts)
  ensure_started()
  opts = opts or {}
  kind = vim.trim(kind or "")
  if kind == "" then
    kind = "device"
  end
  if kind == "cancel" then
    return M.cancel_login()
  end
  local params
  if kind == "device" then
    params = { type = "chatgptDeviceCode" }
  elseif kind == "browser" then
    params = { type = "chatgpt" }
  elseif kind == "apikey" then
    local key = opts.api_key
    if key == nil then
      local ok, typed = pcall(vim.fn.inputsecret, "OpenAI API key: ")
      key = ok and typed or ""
    end
    key = vim.trim(key)
    if key == "" then
      ui.notify("codexd: no API key given; nothing changed", levels.WARN)
      return false
    end
    params = { type = "apiKey", apiKey = key }
  else
    -- Never quote what was typed: `:CodexdLogin apikey sk-...` puts the key here, and messages are kept
    -- (:messages, the history of notification plugins, vim.notify overrides that log).
    forget_typed(kind)
    if kind:match("^apikey%s") then
      ui.notify(
        "codexd: :CodexdLogin apikey takes no argument; run it alone and type the key at the prompt (not shown)",
        levels.ERROR
      )
    else
      ui.notify("codexd: unknown login kind; use device, browser, apikey or cancel", levels.ERROR)
    end
    return false
  end
  local ok, why = ensure_open(deadline_from(opts))
  if not ok then
    ui.notify("codexd: cannot log in: " .. bare(why), levels.ERROR)
    return false
  end
  if S.login then
    -- codexd ends the older login with "replaced by a newer login"; this window is no longer about it.
    ui.close_panel(S.login.panel)
  end
  local login = { kind = kind, conn = S.conn }
  S.login = login
  S.conn:request("account/login/start", params, function(err, res)
    if err then
      if S.login == login then
        S.login = nil
        S.last_login = { kind = kind, success = false, error = bare(describe(err)) }
      end
      ui.notify("codexd: login could not start: " .. bare(describe(err)), levels.ERROR)
      return
    end
    on_login_started(login, type(res) == "table" and res or {})
  end)
  return true
end

--- Cancels the login this plugin started (:CodexdLogin cancel).
function M.cancel_login()
  local login = S.login
  if not login then
    ui.notify("codexd: no login in progress")
    return false
  end
  if not login.id or not conn_usable(login.conn) then
    abandon_login("login canceled")
    return true
  end
  login.conn:request("account/login/cancel", { loginId = login.id }, function(err, res)
    if err then
      ui.notify("codexd: cancel failed: " .. bare(describe(err)), levels.WARN)
    elseif type(res) == "table" and value(res.status) == "notFound" and S.login == login then
      abandon_login("login canceled (codexd no longer knew it)")
    end
    -- "canceled": account/login/completed {success: false} follows and closes the window.
  end)
  return true
end

--- Logs out everywhere (:CodexdLogout). Does not wait for codexd (it revokes the refresh token first, which may
--- take seconds): a message reports the outcome, and `opts.on_done(ok, err)` is called if given. Returns true when
--- the request was sent.
function M.logout(opts)
  ensure_started()
  opts = opts or {}
  local ok, why = ensure_open(deadline_from(opts))
  local function done(success, err)
    if success then
      ui.notify("codexd: logged out")
    else
      ui.notify("codexd: logout failed: " .. bare(err), levels.ERROR)
    end
    if opts.on_done then
      opts.on_done(success, err)
    end
  end
  if not ok then
    done(false, why)
    return false
  end
  S.conn:request("account/logout", nil, function(err)
    if err then
      done(false, describe(err))
    else
      done(true)
    end
  end)
  return true
end

--- The default socket path (for tests and :checkhealth-like use).
M.default_socket = client.default_socket

return M
