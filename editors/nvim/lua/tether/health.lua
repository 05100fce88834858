-- :checkhealth tether
local M = {}

function M.check()
  local health = vim.health
  health.start("tether")
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()))
  else
    health.error("Neovim 0.10 or newer is needed")
  end
  local cmd = require("tether").config.cmd
  local binary = cmd and cmd[1] or "tether"
  if vim.fn.executable(binary) == 1 then
    local version = vim.fn.system({ binary, "--version" })
    health.ok(vim.trim(version) .. " (" .. vim.fn.exepath(binary) .. ")")
  else
    health.error(binary .. " is not executable", { "install it: cargo install --path server", "or set cmd in setup()" })
  end
  local clients = vim.lsp.get_clients({ name = "tether" })
  if #clients > 0 then
    health.ok("the server is running (" .. #clients .. " client)")
  else
    health.info("no tether server in this session yet: open a file inside a git repository")
  end
end

return M
