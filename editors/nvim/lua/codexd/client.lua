-- codexd.client: one connection to codexd over its Unix socket (a named pipe on Windows), speaking JSON-RPC 2.0
-- with one JSON object per line (docs/PROTOCOL.md, "Framing" and "Messages").
--
-- Everything the caller hands in as a callback runs on the main loop (through vim.schedule), never inside a
-- libuv callback, so callbacks may use the whole Neovim API. Messages are dispatched in the order they arrived.
-- This module never logs or prints anything: a reply may hold a token.

local uv = vim.uv or vim.loop

local M = {}

--- Longest line codexd sends or accepts, newline excluded (PROTOCOL.md, "Framing").
M.MAX_LINE = 1048576

local encode = (vim.json and vim.json.encode) or function(v)
  return vim.fn.json_encode(v)
end
local decode = (vim.json and vim.json.decode) or function(s)
  return vim.fn.json_decode(s)
end

--- JSON null decodes to vim.NIL; this turns it (and nothing else) into nil.
function M.value(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- The default socket, as codexctl resolves it (proto/src/paths.rs): CODEXD_SOCKET if set and non-empty, else
--- $XDG_RUNTIME_DIR/codexd/codexd.sock, else ${TMPDIR:-/tmp}/codexd-$UID/codexd.sock; on Windows the named
--- pipe \\.\pipe\codexd-<USERNAME>. `getenv` and `uid` default to the process's; empty values count as unset.
function M.default_socket(getenv, uid, windows)
  getenv = getenv or os.getenv
  local function var(name)
    local v = getenv(name)
    if v ~= nil and v ~= "" then
      return v
    end
    return nil
  end
  local explicit = var("CODEXD_SOCKET")
  if explicit then
    return explicit
  end
  if windows == nil then
    windows = vim.fn.has("win32") == 1
  end
  if windows then
    return [[\\.\pipe\codexd-]] .. (var("USERNAME") or "user")
  end
  local runtime = var("XDG_RUNTIME_DIR")
  if runtime then
    return runtime .. "/codexd/codexd.sock"
  end
  return (var("TMPDIR") or "/tmp") .. "/codexd-" .. tostring(uid or uv.getuid()) .. "/codexd.sock"
end

local Conn = {}
Conn.__index = Conn

--- Opens a connection to `path`. `handlers`:
---   on_open(conn)                  the socket is connected
---   on_fail(message)               it could not be (the connection is then closed; no on_close follows)
---   on_notification(method, params)
---   on_close(message)              the connection ended after on_open (EOF, error, or close())
--- Returns the connection at once; its `state` is "connecting", "open" or "closed".
function M.connect(path, handlers)
  local self = setmetatable({
    path = path,
    handlers = handlers,
    pending = {},
    next_id = 1,
    buf = "",
    state = "connecting",
  }, Conn)
  local pipe = uv.new_pipe(false)
  self.pipe = pipe
  local ok, req, err = pcall(pipe.connect, pipe, path, function(cerr)
    if self.state ~= "connecting" then
      return
    end
    if cerr then
      self:_teardown()
      self:_emit("on_fail", cerr)
      return
    end
    self.state = "open"
    pipe:read_start(function(rerr, chunk)
      self:_on_read(rerr, chunk)
    end)
    self:_emit("on_open", self)
  end)
  if not ok or req == nil then
    -- Thrown (ok false, the message in req), or returned as nil, err: no callback will come.
    self:_teardown()
    self:_emit("on_fail", tostring(ok and err or req))
  end
  return self
end

function Conn:_emit(name, ...)
  local handler = self.handlers[name]
  if handler then
    local args = { n = select("#", ...), ... }
    vim.schedule(function()
      handler(unpack(args, 1, args.n))
    end)
  end
end

-- Closes the handle without telling anyone.
function Conn:_teardown()
  self.state = "closed"
  if self.pipe and not self.pipe:is_closing() then
    pcall(self.pipe.read_stop, self.pipe)
    self.pipe:close()
  end
end

-- Ends an open connection: every pending request fails with `message`, then on_close(message).
function Conn:_finish(message)
  if self.state == "closed" then
    return
  end
  local was_open = self.state == "open"
  self:_teardown()
  local pending = self.pending
  self.pending = {}
  vim.schedule(function()
    local ids = vim.tbl_keys(pending)
    table.sort(ids)
    for _, id in ipairs(ids) do
      pending[id]({ code = "disconnected", reason = "disconnected", message = message })
    end
  end)
  if was_open then
    self:_emit("on_close", message)
  else
    self:_emit("on_fail", message)
  end
end

--- Closes the connection; pending requests fail and on_close runs with `message`.
function Conn:close(message)
  self:_finish(message or "closed")
end

function Conn:_on_read(err, chunk)
  if err then
    self:_finish("connection to codexd failed: " .. tostring(err))
    return
  end
  if chunk == nil then
    self:_finish("codexd closed the connection")
    return
  end
  self.buf = self.buf .. chunk
  while self.state == "open" do
    local nl = self.buf:find("\n", 1, true)
    if not nl then
      break
    end
    local line = self.buf:sub(1, nl - 1)
    self.buf = self.buf:sub(nl + 1)
    if line:sub(-1) == "\r" then
      line = line:sub(1, -2)
    end
    if line ~= "" then
      self:_on_line(line)
    end
  end
  if #self.buf > M.MAX_LINE then
    self:_finish("codexd sent a line over 1 MiB")
  end
end

function Conn:_on_line(line)
  local ok, msg = pcall(decode, line)
  if not ok or type(msg) ~= "table" then
    -- Not JSON: skip it (and never echo it: it may hold a token).
    return
  end
  local method = M.value(msg.method)
  local id = M.value(msg.id)
  if method ~= nil and id == nil then
    local params = M.value(msg.params)
    if type(params) ~= "table" then
      params = {}
    end
    self:_emit("on_notification", method, params)
    return
  end
  if id == nil then
    -- An error about a line codexd could not read (id null); the request it belonged to cannot be told.
    return
  end
  local callback = self.pending[id]
  if not callback then
    return
  end
  self.pending[id] = nil
  local rpc_error = M.value(msg.error)
  if rpc_error ~= nil then
    local data = type(rpc_error) == "table" and M.value(rpc_error.data) or nil
    local failure = {
      code = type(rpc_error) == "table" and rpc_error.code or nil,
      message = type(rpc_error) == "table" and tostring(rpc_error.message) or "malformed error",
      reason = type(data) == "table" and M.value(data.reason) or nil,
    }
    vim.schedule(function()
      callback(failure)
    end)
  else
    local result = M.value(msg.result)
    vim.schedule(function()
      callback(nil, result)
    end)
  end
end

--- Sends a request; `callback(err, result)` runs on the main loop. `err` is {code, reason, message}: the JSON-RPC
--- error, or code "disconnected" when the connection is not open or ends first. `params` nil sends none.
--- Returns the request id, or nil when nothing was sent.
function Conn:request(method, params, callback)
  callback = callback or function() end
  if self.state ~= "open" then
    vim.schedule(function()
      callback({ code = "disconnected", reason = "disconnected", message = "not connected to codexd" })
    end)
    return nil
  end
  local id = self.next_id
  self.next_id = id + 1
  local msg = { jsonrpc = "2.0", id = id, method = method }
  if params ~= nil then
    -- An empty Lua table would encode as [] (positional params, refused with -32602): send {}.
    msg.params = next(params) == nil and vim.empty_dict() or params
  end
  self.pending[id] = callback
  local ok, err = pcall(self.pipe.write, self.pipe, encode(msg) .. "\n", function(werr)
    if werr then
      self:_finish("writing to codexd failed: " .. tostring(werr))
    end
  end)
  if not ok then
    self:_finish("writing to codexd failed: " .. tostring(err))
  end
  return id
end

return M
