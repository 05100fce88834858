-- :Tether git in a real headless Neovim: the status buffer and its keys — s on a file, cc
-- (refused with nothing staged, then a commit), P (then refused: someone else pushed), m —
-- against a bare remote.

local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish

vim.ui.select = function(items, _, on_choice)
  on_choice(items[1], 1)
end
local commit_message = 'add a'
vim.ui.input = function(_, on_confirm)
  on_confirm(commit_message)
end
results.notified = {}
vim.notify = function(message)
  table.insert(results.notified, message)
end

local text_of = harness.text_of

harness.run(function()
  local tether = harness.start_plugin()

  step('a session changes two files')
  tether.request('create', { prompt = 'add a' })
  local session, asking = nil, false
  vim.wait(20000, function()
    if not asking then
      asking = true
      tether.request('list', {}, function(listed)
        asking = false
        for _, s in ipairs(listed.sessions or {}) do
          if s.status == 'waiting' then
            session = s
          end
        end
      end)
    end
    return session ~= nil
  end, 50)
  if not session then
    return fail('the session never waited')
  end

  step(':Tether git')
  vim.cmd('Tether git')
  vim.wait(10000, function()
    return vim.api.nvim_buf_get_name(0):find('^tether%-git://') ~= nil
  end, 20)
  local buf = vim.api.nvim_get_current_buf()
  local function until_shown(wanted)
    return vim.wait(10000, function()
      return text_of(buf):find(wanted, 1, true) ~= nil
    end, 20)
  end
  if not until_shown('Changes (2)') then
    return fail('no status: ' .. text_of(buf))
  end
  results.name = vim.api.nvim_buf_get_name(buf)
  results.before = text_of(buf)

  step('s on a.txt')
  for number, line in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if line:find('a.txt', 1, true) then
      vim.api.nvim_win_set_cursor(0, { number, 0 })
    end
  end
  vim.cmd('normal s')
  if not until_shown('Staged (1)') then
    return fail('s staged nothing: ' .. text_of(buf))
  end
  results.staged = text_of(buf)

  step('cc commits')
  vim.cmd('normal cc')
  if not until_shown('commit: done') then
    return fail('cc committed nothing: ' .. text_of(buf))
  end
  results.committed = text_of(buf)

  step('cc again: refused, nothing staged')
  vim.cmd('normal cc')
  if not until_shown('Refused: ') then
    return fail('no refusal: ' .. text_of(buf))
  end
  results.refused = text_of(buf)

  step('P pushes, m merges into the base')
  vim.cmd('normal P')
  if not until_shown('up to date') then
    return fail('P pushed nothing: ' .. text_of(buf))
  end
  results.pushed = text_of(buf)

  step('someone else pushes to the branch: P is refused, saying why')
  local other = vim.fn.tempname()
  local function git(...)
    local command = { 'git', '-c', 'user.name=Other', '-c', 'user.email=other@example.invalid', ... }
    local output = vim.fn.system(command)
    if vim.v.shell_error ~= 0 then
      error(table.concat(command, ' ') .. ': ' .. output)
    end
  end
  git('clone', '-q', '--branch', 'tether/add-a', vim.env.TETHER_REMOTE, other)
  vim.fn.writefile({ 'theirs' }, other .. '/theirs.txt')
  git('-C', other, 'add', 'theirs.txt')
  git('-C', other, 'commit', '-q', '-m', 'theirs')
  git('-C', other, 'push', '-q', 'origin', 'tether/add-a')
  vim.cmd('normal P')
  if not until_shown('fast-forward') then
    return fail('P was not refused: ' .. text_of(buf))
  end
  results.push_refused = text_of(buf)
  vim.cmd('normal m')
  if not until_shown('mergeToBase: done') then
    return fail('m merged nothing: ' .. text_of(buf))
  end
  results.merged = text_of(buf)
  finish(true)
end)
