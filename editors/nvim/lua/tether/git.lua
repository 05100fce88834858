-- :Tether git: a session's branch in a status buffer, in the spirit of fugitive's:
--
--   tether/fix → main: 1 ahead, 0 behind · origin/tether/fix: up to date
--
--   Staged (1)
--   M calc/ops.py
--
--   Changes (1)
--   U calc/extra.py
--
-- On a file: s stages, u unstages, X discards (asks first). Anywhere: S stages all, U
-- unstages all, cc commits (asks for the message), P pushes, p pulls, m merges into the
-- base, b pulls the base in, R refreshes. Every key is one `tether/session/git`; a refusal
-- (nothing staged, a conflict naming its files) is said, and nothing changes.
local M = {}

local function tether()
  return require("tether")
end

-- Buffer -> { session, paths = { [line] = path } }.
local buffers = {}

local function letter(file, side)
  if file.index == "?" or file.worktree == "?" then
    return "U"
  end
  local code = side == "staged" and file.index or file.worktree
  return vim.trim(code) ~= "" and code or "·"
end

--- The buffer's lines for `status` (and the refusal `said`, if any), and which line is
--- which file.
function M.render(status, said)
  local base = string.format(
    "%s → %s: %d ahead, %d behind",
    status.branch,
    status.baseBranch,
    status.aheadOfBase,
    status.behindBase
  )
  local upstream = "not pushed yet"
  local up = status.upstream
  if up then
    upstream = (up.ahead == 0 and up.behind == 0) and (up.name .. ": up to date")
      or string.format("%s: %d to push, %d to pull", up.name, up.ahead, up.behind)
  end
  local lines = { base .. " · " .. upstream }
  if said then
    table.insert(lines, said)
  end
  table.insert(lines, "s stage · u unstage · X discard · S/U all · cc commit · P push · p pull · m merge · b pull base")
  local staged, unstaged = {}, {}
  for _, file in ipairs(status.files or {}) do
    local untracked = file.index == "?" or file.worktree == "?"
    if not untracked and vim.trim(file.index) ~= "" then
      table.insert(staged, file)
    end
    if untracked or vim.trim(file.worktree) ~= "" then
      table.insert(unstaged, file)
    end
  end
  local paths = {}
  for _, section in ipairs({ { "Staged", staged, "staged" }, { "Changes", unstaged, "unstaged" } }) do
    table.insert(lines, "")
    table.insert(lines, string.format("%s (%d)", section[1], #section[2]))
    for _, file in ipairs(section[2]) do
      table.insert(lines, letter(file, section[3]) .. " " .. file.path)
      paths[#lines] = file.path
    end
  end
  return lines, paths
end

local function draw(buf, status, said)
  local lines, paths = M.render(status, said)
  tether().fill(buf, table.concat(lines, "\n"))
  buffers[buf].paths = paths
  buffers[buf].status = status
end

--- Runs `params.op` on the buffer's session and redraws.
local function run(buf, params)
  local state = buffers[buf]
  params.id = state.session.id
  local c = vim.lsp.get_clients({ name = "tether" })[1]
  if not c then
    return tether().notify("the tether server is not running", vim.log.levels.ERROR)
  end
  local send = vim.fn.has("nvim-0.11") == 1 and function(...)
    return c:request(...)
  end or c.request
  send("tether/session/git", params, function(err, result)
    if not vim.api.nvim_buf_is_valid(buf) then
      return
    end
    if err then
      local said = "Refused: " .. (err.message or vim.inspect(err))
      tether().notify("git " .. params.op .. ": " .. (err.message or "failed"), vim.log.levels.ERROR)
      if state.status then
        draw(buf, state.status, said)
      end
      return
    end
    local said = nil
    if params.op ~= "status" then
      said = params.op .. ": done" .. (result.commit and (" (" .. result.commit:sub(1, 10) .. ")") or "")
    end
    draw(buf, result.status, said)
  end)
end
M.run = run

local function file_here(buf)
  return buffers[buf].paths[vim.api.nvim_win_get_cursor(0)[1]]
end

local function map(buf)
  local function set(lhs, fn, desc)
    vim.keymap.set("n", lhs, fn, { buffer = buf, desc = "tether git: " .. desc, nowait = true })
  end
  local function on_file(op)
    return function()
      local path = file_here(buf)
      if not path then
        return tether().notify("no file on this line", vim.log.levels.WARN)
      end
      if op == "discard" and vim.fn.confirm("Discard the changes to " .. path .. "?", "&Discard\n&Keep", 2) ~= 1 then
        return
      end
      run(buf, { op = op, paths = { path } })
    end
  end
  set("s", on_file("stage"), "stage the file")
  set("u", on_file("unstage"), "unstage the file")
  set("X", on_file("discard"), "discard the file's changes")
  set("S", function()
    run(buf, { op = "stage" })
  end, "stage all")
  set("U", function()
    run(buf, { op = "unstage" })
  end, "unstage all")
  set("cc", function()
    vim.ui.input({ prompt = "Commit message: " }, function(message)
      if message and message ~= "" then
        run(buf, { op = "commit", message = message })
      end
    end)
  end, "commit")
  set("P", function()
    run(buf, { op = "push" })
  end, "push")
  set("p", function()
    run(buf, { op = "pull" })
  end, "pull")
  set("m", function()
    run(buf, { op = "mergeToBase" })
  end, "merge into the base")
  set("b", function()
    run(buf, { op = "pullFromBase" })
  end, "pull the base in")
  set("R", function()
    run(buf, { op = "status" })
  end, "refresh")
end

--- Opens (or shows) `session`'s git status buffer.
function M.open(session)
  local name = "tether-git://" .. session.name
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.bo[buf].bufhidden = "hide"
    map(buf)
  end
  buffers[buf] = buffers[buf] or {}
  buffers[buf].session = session
  vim.api.nvim_set_current_buf(buf)
  run(buf, { op = "status" })
  return buf
end

function M.command()
  tether().pick_session("Git of", M.open)
end

return M
