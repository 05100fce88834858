-- :Tether review-diff: a session's changes file by file, each as a diff of your file (left)
-- and the session's version (right, a scratch buffer), hunk by hunk. In either window:
--   ga / gr   accept / reject the hunk under the cursor
--   gA / gR   accept / reject what is left of the file
--   g! / gX   accept / reject everything that is left
--   ]f / [f   the next / previous file
-- An accepted hunk is applied at once into your buffer (`u` undoes it there), through
-- `tether/session/apply {hunks: {file: [k]}, reject: {}}`; rejections are told to the agent
-- once every hunk of the file is decided. A hunk on lines you changed too is a conflict:
-- said, not applied. The winbar shows the progress ("3 of 7 hunks reviewed").
local M = {}

local function tether()
  return require("tether")
end

--- The hunks of a unified diff: index, header, and their line spans (from 0, end excluded)
--- in the base (`old_*`) and the session's version (`new_*`).
function M.parse_hunks(patch)
  local hunks = {}
  for line in (patch or ""):gmatch("[^\n]+") do
    local os_, ol, ns, nl = line:match("^@@ %-(%d+),?(%d*) %+(%d+),?(%d*) @@")
    if os_ then
      ol = ol == "" and 1 or tonumber(ol)
      nl = nl == "" and 1 or tonumber(nl)
      local function from(start, count)
        start = tonumber(start)
        return count == 0 and start or start - 1
      end
      table.insert(hunks, {
        index = #hunks,
        header = line,
        old_start = from(os_, ol),
        old_end = from(os_, ol) + ol,
        new_start = from(ns, nl),
        new_end = from(ns, nl) + nl,
      })
    end
  end
  return hunks
end

-- The review under way: { session, files = { {path, status, hunks, told} }, current }.
local review

local function progress()
  local all, decided = 0, 0
  for _, file in ipairs(review.files) do
    for _, hunk in ipairs(file.hunks) do
      all = all + 1
      if hunk.decision then
        decided = decided + 1
      end
    end
  end
  return string.format("%d of %d hunk%s reviewed", decided, all, all == 1 and "" or "s"), decided == all
end
M.progress = function()
  return review and progress() or nil
end

local function winbar()
  local text, done = progress()
  local file = review.files[review.current]
  local bar = string.format(
    "tether review %s · %s · %s%s",
    review.session.name,
    file and file.path or "",
    text,
    done and " · done" or " · ga/gr hunk · gA/gR file · g!/gX all · ]f/[f file"
  )
  for _, win in ipairs(review.windows or {}) do
    if vim.api.nvim_win_is_valid(win) then
      vim.wo[win].winbar = bar:gsub("%%", "%%%%")
    end
  end
end

local function find(path)
  for _, file in ipairs(review.files) do
    if file.path == path then
      return file
    end
  end
end

local function open_left(file)
  local indices = {}
  for _, hunk in ipairs(file.hunks) do
    if not hunk.decision then
      table.insert(indices, hunk.index)
    end
  end
  return indices
end

--- Decides `picks` ({ {path, indices} }) with one apply; the deferred rejections of a file
--- go with its last decision.
local function decide(picks, decision)
  local hunks, reject, sent = vim.empty_dict(), vim.empty_dict(), {}
  for _, pick in ipairs(picks) do
    local file = find(pick.path)
    local open = {}
    for _, index in ipairs(open_left(file)) do
      open[index] = true
    end
    local picked = vim.tbl_filter(function(index)
      return open[index]
    end, pick.indices)
    if #picked > 0 then
      local left = 0
      for index in pairs(open) do
        if not vim.tbl_contains(picked, index) then
          left = left + 1
        end
      end
      local told = {}
      for _, hunk in ipairs(file.hunks) do
        if hunk.decision == "rejected" or (decision == "rejected" and vim.tbl_contains(picked, hunk.index)) then
          table.insert(told, hunk.index)
        end
      end
      if decision == "accepted" then
        hunks[file.path] = picked
      end
      if left == 0 and #told > 0 and not file.told then
        reject[file.path] = told
      end
      if hunks[file.path] == nil and reject[file.path] == nil then
        -- A rejection kept until the file's last decision.
        for _, hunk in ipairs(file.hunks) do
          if vim.tbl_contains(picked, hunk.index) then
            hunk.decision = "rejected"
          end
        end
      else
        if hunks[file.path] == nil then
          hunks[file.path] = {}
        end
        table.insert(sent, { file = file, picked = picked, told = reject[file.path] ~= nil })
      end
    end
  end
  if #sent == 0 then
    winbar()
    return
  end
  local session = review.session
  tether().request("apply", { id = session.id, hunks = hunks, reject = reject }, function(result)
    local said = {}
    for _, entry in ipairs(sent) do
      local outcome
      for _, got in ipairs(result.files or {}) do
        if got.path == entry.file.path then
          outcome = got
        end
      end
      if entry.told then
        entry.file.told = true
      end
      local conflicts = {}
      for _, index in ipairs(outcome and outcome.conflicts or {}) do
        conflicts[index] = true
      end
      if outcome and outcome.skipped then
        table.insert(said, entry.file.path .. " not applied: " .. outcome.skipped)
      else
        for _, hunk in ipairs(entry.file.hunks) do
          if vim.tbl_contains(entry.picked, hunk.index) then
            if decision == "accepted" and conflicts[hunk.index] then
              hunk.conflict = true
              local conflict = "%s hunk #%d: you changed the same lines, so it was not applied"
              table.insert(said, string.format(conflict, entry.file.path, hunk.index))
            else
              hunk.decision = decision
            end
          end
        end
      end
    end
    if #said > 0 then
      tether().notify(table.concat(said, "; "), vim.log.levels.WARN)
    end
    winbar()
    local text, done = progress()
    if done then
      tether().notify(session.name .. " reviewed: " .. text)
    end
  end)
end

--- The hunk under the cursor: in the session's window by its lines, in yours by the base's.
local function hunk_here()
  local file = review.files[review.current]
  if not file then
    return
  end
  local line = vim.api.nvim_win_get_cursor(0)[1] - 1
  local session_side = vim.api.nvim_get_current_win() == review.windows[2]
  for _, hunk in ipairs(file.hunks) do
    local start = session_side and hunk.new_start or hunk.old_start
    local stop = session_side and hunk.new_end or hunk.old_end
    if line >= start and line < math.max(stop, start + 1) then
      return file, hunk
    end
  end
end

function M.hunk(decision)
  local file, hunk = hunk_here()
  if not hunk then
    return tether().notify("the cursor is on no hunk", vim.log.levels.WARN)
  end
  decide({ { path = file.path, indices = { hunk.index } } }, decision)
end

function M.file(decision)
  local file = review.files[review.current]
  decide({ { path = file.path, indices = open_left(file) } }, decision)
end

function M.all(decision)
  local picks = {}
  for _, file in ipairs(review.files) do
    table.insert(picks, { path = file.path, indices = open_left(file) })
  end
  decide(picks, decision)
end

local function map(buf)
  local function set(lhs, fn, desc)
    vim.keymap.set("n", lhs, fn, { buffer = buf, desc = "tether review: " .. desc, nowait = true })
  end
  set("ga", function()
    M.hunk("accepted")
  end, "accept the hunk")
  set("gr", function()
    M.hunk("rejected")
  end, "reject the hunk")
  set("gA", function()
    M.file("accepted")
  end, "accept the file")
  set("gR", function()
    M.file("rejected")
  end, "reject the file")
  set("g!", function()
    M.all("accepted")
  end, "accept everything left")
  set("gX", function()
    M.all("rejected")
  end, "reject everything left")
  set("]f", function()
    M.show(review.current % #review.files + 1)
  end, "next file")
  set("[f", function()
    M.show((review.current - 2) % #review.files + 1)
  end, "previous file")
end

--- Shows file `index`: yours on the left, the session's on the right, diffed.
function M.show(index)
  local file = review.files[index]
  review.current = index
  local left, right = review.windows[1], review.windows[2]
  vim.api.nvim_set_current_win(left)
  vim.cmd("diffoff!")
  vim.cmd("edit " .. vim.fn.fnameescape(review.session.repo .. "/" .. file.path))
  map(vim.api.nvim_get_current_buf())
  vim.cmd("diffthis")
  vim.api.nvim_set_current_win(right)
  local name = string.format("tether-review://%s/%s", review.session.name, file.path)
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  local theirs = review.session.worktree .. "/" .. file.path
  local lines = vim.fn.filereadable(theirs) == 1 and vim.fn.readfile(theirs) or {}
  tether().fill(buf, table.concat(lines, "\n"))
  vim.api.nvim_win_set_buf(right, buf)
  vim.bo[buf].filetype = vim.filetype.match({ filename = file.path }) or ""
  map(buf)
  vim.cmd("diffthis")
  winbar()
end

--- Starts reviewing `session`'s changes in a new tab page.
function M.start(session)
  tether().request("diff", { id = session.id }, function(diff)
    local files = {}
    for _, file in ipairs(diff.files or {}) do
      if not file.binary then
        table.insert(files, { path = file.path, status = file.status, hunks = M.parse_hunks(file.patch), told = false })
      end
    end
    if #files == 0 then
      return tether().notify(session.name .. " has changed nothing to review")
    end
    review = { session = session, files = files, current = 1 }
    vim.cmd("tabnew")
    local left = vim.api.nvim_get_current_win()
    vim.cmd("rightbelow vsplit")
    review.windows = { left, vim.api.nvim_get_current_win() }
    M.show(1)
  end)
end

function M.command()
  tether().pick_session("Review the changes of", M.start, function(s)
    return s.status ~= "pending" and s.status ~= "creating" and s.status ~= "running"
  end)
end

return M
