-- What every headless test script shares: results printed as JSON on the last line, a
-- failure that exits non-zero, a safety net so CI never hangs, and running `main` with a
-- traceback on error.
--
--   local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
--   local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish

local harness = { results = { steps = {} } }
local results = harness.results

function harness.finish(ok)
  io.stdout:write(vim.json.encode(results) .. '\n')
  vim.cmd(ok and 'qall!' or 'cquit! 1')
end

function harness.fail(message)
  results.error = message
  harness.finish(false)
end

function harness.step(name)
  table.insert(results.steps, name)
end

--- Runs `main`; an error fails the test with its traceback.
function harness.run(main)
  local ok, err = xpcall(main, debug.traceback)
  if not ok then
    harness.fail(err)
  end
end

--- Sets the plugin up as a user would (servers attach on FileType) and opens TETHER_FILE;
--- returns the plugin and the file's buffer once its server is up. `before_setup` runs just
--- before `setup`.
function harness.start_plugin(before_setup)
  vim.cmd('filetype on')
  vim.opt.runtimepath:prepend(assert(os.getenv('TETHER_PLUGIN')))
  if before_setup then
    before_setup()
  end
  local tether = require('tether')
  tether.setup({
    cmd = { assert(os.getenv('TETHER_BIN')), 'lsp' },
    settings = vim.json.decode(assert(os.getenv('TETHER_SETTINGS'))),
  })
  harness.step('open')
  vim.cmd('edit ' .. vim.fn.fnameescape(os.getenv('TETHER_REPO') .. '/' .. os.getenv('TETHER_FILE')))
  local file_buf = vim.api.nvim_get_current_buf()
  if not vim.wait(10000, function()
    local client = vim.lsp.get_clients({ name = 'tether', bufnr = file_buf })[1]
    return client ~= nil and client.initialized
  end) then
    harness.fail('the plugin did not start the server')
  end
  return tether, file_buf
end

--- A buffer's text.
function harness.text_of(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

vim.defer_fn(function()
  harness.fail('timed out at step ' .. tostring(results.steps[#results.steps]))
end, 60000)

return harness
