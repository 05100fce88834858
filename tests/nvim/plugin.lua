-- The Neovim plugin (editors/nvim) in a real headless Neovim: :Tether new starts a session,
-- its transcript buffer fills live, the agent's question is answered and its plan approved
-- through vim.ui.select, and :Tether apply puts the changes into the open buffer.
--
-- Run by tests/e2e/neovim.rs (TETHER_BIN, TETHER_REPO, TETHER_FILE, TETHER_SETTINGS,
-- TETHER_PLUGIN); prints its results as JSON on the last line.

local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish
results.asked = {}

-- What the "user" types and picks.
vim.ui.input = function(opts, on_confirm)
  table.insert(results.asked, opts.prompt)
  on_confirm('fix subtract, and ask me which way first')
end
vim.ui.select = function(items, opts, on_choice)
  table.insert(results.asked, opts.prompt)
  if opts.prompt == 'Which agent runs the session?' then
    -- The agent picker: what it offers, as the user sees it; the first (the default) is picked.
    results.agents = {}
    for _, item in ipairs(items) do
      table.insert(results.agents, opts.format_item(item))
    end
    return on_choice(items[1], 1)
  end
  for index, item in ipairs(items) do
    if item == 'right' then
      return on_choice(item, index)
    end
  end
  on_choice(items[1], 1)
end

results.notified = {}
vim.notify = function(message)
  table.insert(results.notified, message)
end

local text_of = harness.text_of

local function main()
  -- As in a user's Neovim (-u NONE leaves it off): servers attach on FileType.
  local _, file_buf = harness.start_plugin(function()
    if os.getenv('TETHER_NVIM_AS_0_10') == '1' then
      -- Neovim 0.10 has neither: the plugin must start the server itself on FileType.
      vim.lsp.config = nil
      vim.lsp.enable = nil
      results.started_by = 'vim.lsp.start'
    end
    -- The turn's progress, as Neovim's own $/progress handling passes it on.
    results.progress = {}
    vim.api.nvim_create_autocmd('LspProgress', {
      callback = function(event)
        local value = event.data.params.value
        table.insert(results.progress, { kind = value.kind, title = value.title, message = value.message })
      end,
    })
  end)

  step('new')
  vim.cmd('Tether new')
  if not vim.wait(10000, function()
    return vim.api.nvim_buf_get_name(0):find('^tether://') ~= nil
  end) then
    return fail('no transcript buffer')
  end
  local transcript = vim.api.nvim_get_current_buf()
  results.transcript_name = vim.api.nvim_buf_get_name(transcript)

  step('transcript fills, the question is answered')
  if not vim.wait(20000, function()
    return text_of(transcript):find('went right') ~= nil
  end, 50) then
    results.transcript = text_of(transcript)
    return fail('the transcript never showed the answer')
  end
  results.transcript = text_of(transcript)

  step('apply')
  vim.cmd('buffer ' .. file_buf)
  vim.cmd('Tether apply')
  vim.wait(10000, function()
    return text_of(file_buf):find('a %- b') ~= nil
  end)
  results.file_lines = vim.api.nvim_buf_get_lines(file_buf, 0, -1, false)
  results.modified = vim.bo[file_buf].modified

  step('feedback')
  vim.cmd('Tether feedback up works well')
  results.feedback_shown = vim.wait(10000, function()
    return text_of(transcript):find('Your feedback: 👍 up — works well', 1, true) ~= nil
  end, 50)

  step('edit the first message, then take back a message sent meanwhile')
  vim.cmd('Tether edit fix subtract again, no questions')
  results.superseded_shown = vim.wait(10000, function()
    return text_of(transcript):find('Superseded by an edit', 1, true) ~= nil
  end, 50)
  -- The edited message delivered (the agent is now at work on it): what is sent next waits.
  vim.wait(10000, function()
    return text_of(transcript):find('## User\n\nfix subtract again', 1, true) ~= nil
  end, 50)
  vim.cmd('Tether send please also rename it')
  results.queued_shown = vim.wait(10000, function()
    return text_of(transcript):find('please also rename it', 1, true) ~= nil
  end, 50)
  vim.cmd('Tether unqueue')
  results.taken_back = vim.wait(10000, function()
    for _, message in ipairs(results.notified) do
      if message:find('taken back: please also rename it', 1, true) then
        return true
      end
    end
    return false
  end, 50)
  results.edited_reply = vim.wait(15000, function()
    return text_of(transcript):find('edited from nvim', 1, true) ~= nil
  end, 50)
  results.after_edit = text_of(transcript)

  step('the context in the transcript, and compacting it')
  results.context_shown = text_of(transcript):find('- Context: ', 1, true) ~= nil
  results.cost_shown = text_of(transcript):find('tokens in, ', 1, true) ~= nil
  vim.cmd('Tether compact')
  results.summary_shown = vim.wait(10000, function()
    return text_of(transcript):find('## Summary', 1, true) ~= nil
  end, 50)

  step('complete files and commands on the command line')
  results.cmdline_files = vim.fn.getcompletion('Tether send look at @calc', 'cmdline')
  results.cmdline_commands = vim.fn.getcompletion('Tether send /rev', 'cmdline')
  results.cmdline_subcommands = vim.fn.getcompletion('Tether re', 'cmdline')

  step('send with an attached file')
  vim.cmd('Tether send --attach ' .. vim.fn.fnameescape(vim.env.TETHER_FILE) .. ' what is in this file?')
  results.attachment_shown = vim.wait(10000, function()
    return text_of(transcript):find('- Attached: `calc.py` (text/plain', 1, true) ~= nil
  end, 50)
  results.attached_reply = vim.wait(10000, function()
    return text_of(transcript):find('a calculator', 1, true) ~= nil
  end, 50)

  step('health')
  vim.cmd('checkhealth tether')
  results.health = text_of(vim.api.nvim_get_current_buf())

  step('done')
  finish(true)
end

harness.run(main)
