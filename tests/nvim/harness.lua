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

vim.defer_fn(function()
  harness.fail('timed out at step ' .. tostring(results.steps[#results.steps]))
end, 60000)

return harness
