-- :Tether review-diff in a real headless Neovim: a session's two-file diff reviewed with the
-- keymaps (gR on a new file, ]f, ga in your window, gr in the session's), what lands in your buffer, the
-- progress in the winbar, then a follow-up (the test checks what the agent was told).

local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish

-- The checkpoint to rewind to, by name, when the checkpoints picker asks; what to do with a
-- finding, when its actions are offered.
local rewind_to, finding_action
results.checkpoint_items = {}
vim.ui.select = function(items, opts, on_choice)
  if finding_action and opts.prompt == 'five is wrong' then
    results.finding_actions = items
    for index, item in ipairs(items) do
      if item == finding_action then
        return on_choice(item, index)
      end
    end
  end
  if opts.prompt:find('^Findings of ') then
    results.finding_items = vim.tbl_map(opts.format_item, items)
  end
  if rewind_to and opts.prompt:find('^Rewind ') then
    for index, item in ipairs(items) do
      table.insert(results.checkpoint_items, opts.format_item(item))
      if item.name == rewind_to then
        return on_choice(item, index)
      end
    end
  end
  on_choice(items[1], 1)
end
results.notified = {}
vim.notify = function(message)
  table.insert(results.notified, message)
end

--- The first session once it is waiting (polled through `list`), with its last seq above `after`.
local function waiting_session(tether, after)
  local found, asking = nil, false
  vim.wait(20000, function()
    if not asking then
      asking = true
      tether.request('list', {}, function(listed)
        asking = false
        for _, session in ipairs(listed.sessions or {}) do
          if session.status == 'waiting' and session.lastSeq > (after or 0) then
            found = session
          end
        end
      end)
    end
    return found ~= nil
  end, 50)
  return found
end

local function wait_progress(review, wanted)
  local ok = vim.wait(10000, function()
    return (review.progress() or ''):find(wanted, 1, true) ~= nil
  end, 20)
  return ok
end

harness.run(function()
  local tether, file_buf = harness.start_plugin()

  step('a session changes two files')
  tether.request('create', { prompt = 'change the numbers' })
  local session = waiting_session(tether)
  if not session then
    return fail('the session never waited')
  end

  step(':Tether review-diff')
  vim.cmd('Tether review-diff')
  local review = require('tether.review')
  if not wait_progress(review, '0 of 3 hunks reviewed') then
    return fail('no review opened')
  end
  local wins = vim.api.nvim_tabpage_list_wins(0)
  results.windows = #wins
  results.diff = vim.wo[wins[1]].diff and vim.wo[wins[2]].diff
  results.right_name = vim.api.nvim_buf_get_name(vim.api.nvim_win_get_buf(wins[2]))
  results.winbar = vim.wo[wins[1]].winbar

  step('gR rejects the new file, the first one')
  vim.api.nvim_set_current_win(wins[2])
  vim.cmd('normal gR')
  if not wait_progress(review, '1 of 3') then
    return fail('gR did nothing: ' .. tostring(review.progress()))
  end
  results.new_file_exists = vim.fn.filereadable(vim.env.TETHER_REPO .. '/new.txt') == 1

  step(']f, then ga on line 3 of your file')
  vim.cmd('normal ]f')
  results.second_file = vim.api.nvim_buf_get_name(vim.api.nvim_win_get_buf(wins[2]))
  vim.api.nvim_set_current_win(wins[1])
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  vim.cmd('normal ga')
  if not wait_progress(review, '2 of 3') then
    return fail('ga did nothing: ' .. tostring(review.progress()))
  end
  vim.wait(5000, function()
    return vim.api.nvim_buf_get_lines(file_buf, 2, 3, false)[1] == 'line three'
  end, 20)
  results.line_3 = vim.api.nvim_buf_get_lines(file_buf, 2, 3, false)[1]

  step('ga on a hunk whose lines you changed: a conflict, said, not applied')
  vim.api.nvim_buf_set_lines(file_buf, 14, 15, false, { 'line 15, mine' })
  vim.api.nvim_set_current_win(wins[2])
  vim.api.nvim_win_set_cursor(0, { 15, 0 })
  vim.cmd('normal ga')
  vim.wait(10000, function()
    for _, message in ipairs(results.notified) do
      if message:find('you changed the same lines', 1, true) then
        return true
      end
    end
    return false
  end, 20)
  results.progress_after_conflict = review.progress()

  step('gr on line 15 of the session\'s version')
  vim.cmd('normal gr')
  if not wait_progress(review, '3 of 3') then
    return fail('gr did nothing: ' .. tostring(review.progress()))
  end
  results.line_15 = vim.api.nvim_buf_get_lines(file_buf, 14, 15, false)[1]
  results.winbar_done = vim.wo[wins[1]].winbar

  step('save, and a follow-up')
  vim.api.nvim_buf_call(file_buf, function()
    vim.cmd('write')
  end)
  -- From the session as it is now: the applies above added notes since `session` was read,
  -- so its old lastSeq could pass for the follow-up's end before that even starts.
  local before_thanks = waiting_session(tether)
  tether.request('send', { id = session.id, text = 'thanks' })
  if not waiting_session(tether, before_thanks.lastSeq + 3) then
    return fail('the follow-up never finished')
  end

  step('gc in the transcript: rewind to the start, then undo it')
  local new_file = session.worktree .. '/new.txt'
  local transcript = tether.open_transcript(session)
  rewind_to = 'start'
  vim.api.nvim_set_current_buf(transcript)
  vim.cmd('normal gc')
  -- The rewind's answer (its checkpoint is recorded by then), not just its files.
  vim.wait(10000, function()
    for _, message in ipairs(results.notified) do
      if message:find('is back at start', 1, true) then
        return true
      end
    end
    return false
  end, 20)
  results.rewound_removed_new_file = vim.fn.filereadable(new_file) == 0
  rewind_to = 'before-rewind-1'
  vim.cmd('Tether checkpoints')
  vim.wait(10000, function()
    return vim.fn.filereadable(new_file) == 1
  end, 20)
  results.undo_restored_new_file = vim.fn.filereadable(new_file) == 1

  step(':Tether findings: Fix, then Dismiss')
  tether.request('findings', {
    id = session.id,
    source = 'review',
    findings = {
      {
        id = 'f1',
        file = 'numbers.txt',
        startLine = 5,
        endLine = 5,
        severity = 'high',
        category = 'bug',
        title = 'five is wrong',
        body = 'it should be 5',
      },
    },
  })
  vim.wait(2000, function()
    return false
  end, 100)
  local before = waiting_session(tether)
  finding_action = 'Fix'
  vim.cmd('Tether findings')
  if not waiting_session(tether, before.lastSeq + 3) then
    return fail('the fix never finished')
  end
  local quickfix = vim.fn.getqflist({ title = 1, items = 1 })
  results.quickfix_title = quickfix.title
  results.quickfix_text = quickfix.items[1] and quickfix.items[1].text
  results.quickfix_line = quickfix.items[1] and quickfix.items[1].lnum
  finding_action = 'Dismiss'
  vim.cmd('Tether findings')
  local open, asking = nil, false
  vim.wait(10000, function()
    if not asking then
      asking = true
      tether.request('findings', { id = session.id }, function(listed)
        asking = false
        open = #(listed.findings or {})
      end)
    end
    return open == 0
  end, 100)
  results.open_after_dismiss = open
  finish(true)
end)
