-- :Tether findings: a session's open findings (severity, file:line, title, from review or
-- verification), beside the diagnostics: put in the quickfix list, and picked with
-- vim.ui.select to Fix (the session is asked to fix it), Dismiss (its diagnostic goes) or
-- Open.
local M = {}

local function tether()
  return require("tether")
end

--- One finding as the picker and the quickfix list show it.
function M.describe(finding)
  local place = finding.file and string.format("%s:%d ", finding.file, finding.startLine) or ""
  return string.format("[%s] %s%s (%s)", finding.severity, place, finding.title, finding.source)
end

local function act(session, finding, action)
  if action == "Fix" then
    tether().request("fixFinding", { id = session.id, findingId = finding.id }, function()
      tether().notify("asked " .. session.name .. " to fix: " .. finding.title)
    end)
  elseif action == "Dismiss" then
    tether().request("dismissFinding", { id = session.id, findingId = finding.id }, function()
      tether().notify("dismissed: " .. finding.title)
    end)
  elseif action == "Open" and finding.file then
    vim.cmd("edit " .. vim.fn.fnameescape(session.repo .. "/" .. finding.file))
    vim.api.nvim_win_set_cursor(0, { math.max(1, finding.startLine), 0 })
  end
end

--- Lists `session`'s open findings (quickfix list too) and acts on the one picked.
function M.pick(session)
  tether().request("findings", { id = session.id }, function(result)
    local findings = result.findings or {}
    if #findings == 0 then
      return tether().notify(session.name .. " has no open findings")
    end
    local items = {}
    for _, finding in ipairs(findings) do
      table.insert(items, {
        filename = finding.file and (session.repo .. "/" .. finding.file) or nil,
        lnum = finding.startLine,
        end_lnum = finding.endLine,
        text = string.format("[%s] %s (%s)", finding.severity, finding.title, finding.source),
        type = (finding.severity == "critical" or finding.severity == "high") and "E" or "W",
      })
    end
    vim.fn.setqflist({}, " ", { title = "tether findings: " .. session.name, items = items })
    vim.ui.select(findings, { prompt = "Findings of " .. session.name, format_item = M.describe }, function(finding)
      if not finding then
        return
      end
      local actions = finding.file and { "Fix", "Dismiss", "Open" } or { "Fix", "Dismiss" }
      vim.ui.select(actions, { prompt = finding.title }, function(action)
        act(session, finding, action)
      end)
    end)
  end)
end

function M.command()
  tether().pick_session("Findings of", M.pick)
end

return M
