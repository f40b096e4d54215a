-- codexd.nvim commands. Nothing connects until a command, statusline() or token() is used, or setup() is called.

if vim.g.loaded_codexd then
  return
end
vim.g.loaded_codexd = 1

if vim.fn.has("nvim-0.7") == 0 then
  vim.api.nvim_echo({ { "codexd.nvim needs Neovim 0.7 or newer", "WarningMsg" } }, true, {})
  return
end

local function codexd()
  return require("codexd")
end

-- Commands without arguments still accept some, so that Neovim never echoes what was typed (it could be a key
-- typed in the wrong place); they are refused without quoting them.
local function no_args(name, run)
  return function(cmd)
    if cmd.args ~= "" then
      vim.api.nvim_echo({ { "codexd: :" .. name .. " takes no arguments", "ErrorMsg" } }, true, {})
      return
    end
    run()
  end
end

vim.api.nvim_create_user_command("CodexdStatus", no_args("CodexdStatus", function()
  codexd().show_status()
end), { nargs = "*", desc = "codexd: show the Codex login and the daemon" })

vim.api.nvim_create_user_command("CodexdLogin", function(cmd)
  codexd().login(cmd.args)
end, {
  nargs = "?",
  complete = function(arg_lead)
    return vim.tbl_filter(function(kind)
      return kind:sub(1, #arg_lead) == arg_lead
    end, { "device", "browser", "apikey", "cancel" })
  end,
  desc = "codexd: sign in to Codex (device code by default; browser, apikey; cancel)",
})

vim.api.nvim_create_user_command("CodexdLogout", no_args("CodexdLogout", function()
  codexd().logout()
end), { nargs = "*", desc = "codexd: log out of Codex everywhere" })
