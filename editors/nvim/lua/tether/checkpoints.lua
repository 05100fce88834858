-- :Tether checkpoints (and `gc` in a transcript buffer): a session's checkpoints, newest
-- first — each turn that changed files with its files and counts and when, the start, and
-- what each rewind left — picked with vim.ui.select to rewind there. A rewind's own
-- checkpoint ("before the rewind to turn-1") undoes it.
local M = {}

local function tether()
  return require("tether")
end

--- One checkpoint as the picker shows it.
function M.describe(checkpoint)
  local what
  if checkpoint.turn then
    what = "turn " .. checkpoint.turn
  elseif checkpoint.name == "start" then
    what = "start"
  else
    what = "before the rewind to " .. (checkpoint.undoes or "?") .. " (undoes it)"
  end
  local added, deleted, paths = 0, 0, {}
  for _, file in ipairs(checkpoint.files or {}) do
    added = added + file.additions
    deleted = deleted + file.deletions
    table.insert(paths, file.path)
  end
  local files = #paths == 1 and "1 file" or (#paths .. " files")
  local when = os.date("%H:%M:%S", checkpoint.at / 1000)
  local line = string.format("%s · %s +%d −%d · %s", what, files, added, deleted, when)
  if #paths > 0 then
    line = line .. " · " .. table.concat(paths, ", ")
  end
  return line
end

--- Picks one of `session`'s checkpoints and rewinds to it.
function M.pick(session)
  tether().request("checkpoints", { id = session.id }, function(result)
    local newest_first = {}
    for index = #(result.checkpoints or {}), 1, -1 do
      table.insert(newest_first, result.checkpoints[index])
    end
    if #newest_first == 0 then
      return tether().notify(session.name .. " has no checkpoints yet")
    end
    vim.ui.select(newest_first, {
      prompt = "Rewind " .. session.name .. " to",
      format_item = M.describe,
    }, function(checkpoint)
      if not checkpoint then
        return
      end
      tether().request("rewind", { id = session.id, checkpoint = checkpoint.name }, function(rewound)
        tether().notify(
          string.format(
            "%s is back at %s; what it was is kept as %s (:Tether checkpoints undoes it)",
            session.name,
            checkpoint.name,
            rewound.undo
          )
        )
      end)
    end)
  end)
end

function M.command()
  tether().pick_session("Checkpoints of", M.pick, function(s)
    return s.status ~= "pending" and s.status ~= "creating"
  end)
end

return M
