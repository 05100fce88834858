-- The Neovim plugin's tasks in a real headless Neovim: :Tether task new races two agents
-- (one pick per trial), the task buffer fills and keeps up with them, and :Tether task
-- promote applies the chosen trial to the open buffer.
--
-- Run by tests/e2e/neovim.rs (TETHER_BIN, TETHER_REPO, TETHER_FILE, TETHER_SETTINGS,
-- TETHER_PLUGIN); prints its results as JSON on the last line.

local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish
results.asked = {}
results.notified = {}

-- What the "user" types and picks.
local answers = {
  ['What should the trials do? '] = 'fix subtract',
  ['Why this one? (optional) '] = 'the shorter fix',
}
vim.ui.input = function(opts, on_confirm)
  table.insert(results.asked, opts.prompt)
  on_confirm(answers[opts.prompt] or '')
end
local wanted_trials = { 'alpha', 'beta' }
vim.ui.select = function(items, opts, on_choice)
  table.insert(results.asked, opts.prompt)
  local trial = opts.prompt:match('^Trial (%d+): which agent%?')
  if trial then
    local name = wanted_trials[tonumber(trial)]
    for index, item in ipairs(items) do
      if (name == nil and item == '(start)') or (type(item) == 'table' and item.name == name) then
        return on_choice(item, index)
      end
    end
    return fail('no ' .. tostring(name) .. ' among the agents offered')
  end
  if opts.prompt == 'Which trial?' then
    results.trials_offered = {}
    for _, item in ipairs(items) do
      table.insert(results.trials_offered, opts.format_item(item))
    end
    for index, item in ipairs(items) do
      if item.provider == 'beta' then
        return on_choice(item, index)
      end
    end
  end
  if opts.prompt == 'How?' then
    results.hows = {}
    for _, item in ipairs(items) do
      table.insert(results.hows, opts.format_item(item))
    end
  end
  on_choice(items[1], 1)
end
vim.notify = function(message)
  table.insert(results.notified, message)
end

local text_of = harness.text_of

local function main()
  local _, file_buf = harness.start_plugin()

  step('task new')
  vim.cmd('Tether task new')
  if not vim.wait(10000, function()
    return vim.api.nvim_buf_get_name(0):find('^tether%-task://') ~= nil
  end) then
    return fail('no task buffer')
  end
  local task_buf = vim.api.nvim_get_current_buf()
  results.task_buffer_name = vim.api.nvim_buf_get_name(task_buf)

  step('the task buffer keeps up')
  if not vim.wait(30000, function()
    local text = text_of(task_buf)
    return text:find('| 1 | alpha/alpha%-model | waiting |') ~= nil
      and text:find('| 2 | beta/beta%-model | waiting |') ~= nil
  end, 50) then
    results.task_text = text_of(task_buf)
    return fail('the task buffer never showed both trials done')
  end
  results.task_text = text_of(task_buf)

  step('promote')
  vim.cmd('buffer ' .. file_buf)
  vim.cmd('Tether task promote')
  if not vim.wait(15000, function()
    return text_of(file_buf):find('return b %- a') ~= nil
  end, 50) then
    results.file_lines = vim.api.nvim_buf_get_lines(file_buf, 0, -1, false)
    return fail('the promoted trial never reached the buffer')
  end
  results.file_lines = vim.api.nvim_buf_get_lines(file_buf, 0, -1, false)
  vim.wait(5000, function()
    for _, message in ipairs(results.notified) do
      if message:find('promoted', 1, true) then
        return true
      end
    end
    return false
  end)

  step('done')
  finish(true)
end

harness.run(main)
