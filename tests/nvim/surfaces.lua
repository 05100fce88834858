-- A real Neovim, headless, driving tether through standard LSP alone: a session's changes
-- land in an unsaved buffer as a workspace edit (and undo), findings show up in
-- vim.diagnostic, code actions are listed and executed.
--
-- Run by tests/e2e/neovim.rs, which sets TETHER_BIN, TETHER_REPO, TETHER_FILE and
-- TETHER_SETTINGS and checks the JSON this prints as its last line.

local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish

-- A headless Neovim must never block on a prompt.
vim.ui.select = function(items, _, on_choice)
  on_choice(items[1], 1)
end
vim.ui.input = function(_, on_confirm)
  on_confirm('')
end

local function buffer_lines(buf)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function main()
  local repo = assert(os.getenv('TETHER_REPO'))
  local file = repo .. '/' .. assert(os.getenv('TETHER_FILE'))
  local settings = vim.json.decode(assert(os.getenv('TETHER_SETTINGS')))

  step('open')
  vim.cmd('edit ' .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start({
    name = 'tether',
    cmd = { assert(os.getenv('TETHER_BIN')), 'lsp' },
    root_dir = repo,
    init_options = settings,
    flags = { debounce_text_changes = 0 },
  }, { bufnr = buf })
  if not client_id then
    return fail('vim.lsp.start returned nil')
  end
  local client = vim.lsp.get_client_by_id(client_id)
  if not vim.wait(10000, function()
    return client.initialized
  end) then
    return fail('not initialized')
  end
  results.position_encoding = client.offset_encoding

  local function command(name, argument)
    local response, err = client:request_sync(
      'workspace/executeCommand',
      { command = name, arguments = { argument } },
      10000,
      buf
    )
    if err then
      error(name .. ': ' .. tostring(err))
    end
    if response and response.err then
      error(name .. ': ' .. vim.inspect(response.err))
    end
    return response and response.result
  end

  -- The user has unsaved work in the buffer before the session's changes arrive.
  step('unsaved edit')
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { '# mine, not saved' })
  -- What a user's pause in typing does: close the undo block.
  vim.cmd('let &undolevels = &undolevels')

  step('create')
  local session = command('tether.create', { prompt = 'fix subtract', name = 'nvim-fix' })
  results.session_id = session.id
  step('wait for the turn')
  local settled = vim.wait(20000, function()
    local got = command('tether.get', { id = session.id, since = 1000000 })
    return got.session.status == 'waiting'
  end, 100)
  if not settled then
    return fail('the session never settled')
  end

  step('apply')
  results.apply = command('tether.apply', { id = session.id })
  vim.wait(10000, function()
    return table.concat(buffer_lines(buf), '\n'):find('a %- b') ~= nil
  end)
  results.applied_lines = buffer_lines(buf)
  results.modified = vim.bo[buf].modified
  vim.cmd('silent undo')
  results.after_undo = buffer_lines(buf)
  vim.cmd('silent redo')

  step('findings')
  command('tether.findings', {
    id = session.id,
    findings = {
      {
        id = 'f1',
        file = os.getenv('TETHER_FILE'),
        startLine = 2,
        endLine = 2,
        severity = 'high',
        category = 'bug',
        title = 'add is untested',
      },
    },
  })
  if not vim.wait(10000, function()
    return #vim.diagnostic.get(buf) > 0
  end) then
    return fail('no diagnostics arrived')
  end
  local diagnostic = vim.diagnostic.get(buf)[1]
  results.diagnostic = {
    lnum = diagnostic.lnum,
    severity = diagnostic.severity,
    source = diagnostic.source,
    code = diagnostic.code,
    message = diagnostic.message,
  }

  step('code actions')
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = {
      start = { line = diagnostic.lnum, character = 0 },
      ['end'] = { line = diagnostic.lnum, character = 0 },
    },
    context = { diagnostics = {} },
  }
  local responses = vim.lsp.buf_request_sync(buf, 'textDocument/codeAction', params, 10000)
  local actions = responses and responses[client_id] and responses[client_id].result or {}
  results.action_titles = {}
  local dismiss
  for _, action in ipairs(actions) do
    table.insert(results.action_titles, action.title)
    if action.title:find('Dismiss') then
      dismiss = action
    end
  end
  if not dismiss then
    return fail('no Dismiss action')
  end

  step('dismiss')
  client:exec_cmd(dismiss.command, { bufnr = buf })
  results.cleared = vim.wait(10000, function()
    return #vim.diagnostic.get(buf) == 0
  end)

  step('done')
  client:stop()
  finish(true)
end

harness.run(main)
