-- :checkhealth tether: Neovim, the binary (and whether its version is the plugin's), the
-- server, then `tether doctor`'s report (git, the kernel sandbox, settings, providers, the
-- daemon, the state folder) with how to fix what fails.
local M = {}

local function doctor(health, binary)
  local root = vim.fs.root(0, ".git") or vim.fn.getcwd()
  local ok, process = pcall(vim.system, { binary, "doctor", "--json", "--repo", root }, { text = true })
  if not ok then
    return health.error("tether doctor could not run: " .. tostring(process))
  end
  local done = process:wait(20000)
  local decoded, report = pcall(vim.json.decode, done.stdout or "")
  if not decoded or type(report) ~= "table" or type(report.checks) ~= "table" then
    return health.error(
      "tether doctor gave no report (exit " .. tostring(done.code) .. "): " .. vim.trim(done.stderr or ""),
      { "run `tether doctor` in a terminal" }
    )
  end
  health.start("tether doctor")
  local report_fns = { ok = health.ok, info = health.info, warn = health.warn, fail = health.error }
  for _, check in ipairs(report.checks) do
    local say = report_fns[check.status] or health.info
    local line = check.name .. ": " .. (check.detail or "")
    if check.fix and check.status ~= "ok" then
      say(line, { check.fix })
    else
      say(line)
    end
  end
end

function M.check()
  local health = vim.health
  local tether = require("tether")
  health.start("tether")
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. tostring(vim.version()))
  else
    health.error("Neovim 0.10 or newer is needed")
  end
  local cmd = tether.config.cmd
  local binary = cmd and cmd[1] or "tether"
  if vim.fn.executable(binary) ~= 1 then
    health.error(binary .. " is not executable", { tether.install_hint, "or set cmd in setup()" })
    return
  end
  local version = vim.trim(vim.fn.system({ binary, "--version" }))
  local found = version:match("^tether (%S+)")
  if found and tether.compatible(found) then
    health.ok(version .. " (" .. vim.fn.exepath(binary) .. ")")
  else
    health.error(
      (found and ("tether " .. found) or ("`" .. binary .. " --version` said: " .. version))
        .. " at "
        .. vim.fn.exepath(binary)
        .. "; this plugin is "
        .. tether.version,
      { "update both from the same checkout: " .. tether.install_hint }
    )
  end
  local clients = vim.lsp.get_clients({ name = "tether" })
  if #clients > 0 then
    health.ok("the server is running (" .. #clients .. " client)")
  else
    health.info("no tether server in this session yet: open a file inside a git repository")
  end
  doctor(health, binary)
end

return M
