-- codexd.ui: messages and the floating window that shows a sign-in code. Main loop only.

local api = vim.api

local M = {}

--- Shows `msg` through vim.notify (kept in :messages). Never pass a token here.
function M.notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO)
end

--- Echoes `msg` and keeps it in :messages.
function M.echo(msg)
  api.nvim_echo({ { msg } }, true, {})
end

local function display_width(s)
  return vim.fn.strdisplaywidth(s)
end

--- Opens a floating window in the top-right corner showing `lines`, without taking the focus. `on_cancel` runs
--- when the user presses q or <Esc> inside it. Returns a handle for close(), or nil when no window could be opened
--- (the caller has already sent the same text as a message).
function M.open_panel(lines, on_cancel)
  local ok, handle = pcall(function()
    local buf = api.nvim_create_buf(false, true)
    api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    vim.bo[buf].modifiable = false
    vim.bo[buf].bufhidden = "wipe"
    vim.bo[buf].filetype = "codexd"

    local max_width = math.max(20, vim.o.columns - 6)
    local width = 0
    for _, line in ipairs(lines) do
      width = math.max(width, display_width(line))
    end
    width = math.min(width + 1, max_width)
    local height = 0
    for _, line in ipairs(lines) do
      height = height + math.max(1, math.ceil(display_width(line) / width))
    end
    height = math.min(height, math.max(1, vim.o.lines - 4))

    local win = api.nvim_open_win(buf, false, {
      relative = "editor",
      anchor = "NE",
      row = 1,
      col = vim.o.columns - 1,
      width = width,
      height = height,
      style = "minimal",
      border = "rounded",
      focusable = true,
      noautocmd = true,
    })
    vim.wo[win].wrap = true

    if on_cancel then
      for _, lhs in ipairs({ "q", "<Esc>" }) do
        api.nvim_buf_set_keymap(buf, "n", lhs, "", {
          nowait = true,
          noremap = true,
          silent = true,
          callback = on_cancel,
        })
      end
    end
    return { win = win, buf = buf }
  end)
  if ok then
    return handle
  end
  return nil
end

--- Closes a panel opened by open_panel (nil and already closed panels are fine).
function M.close_panel(handle)
  if handle and handle.win and api.nvim_win_is_valid(handle.win) then
    pcall(api.nvim_win_close, handle.win, true)
  end
end

return M
