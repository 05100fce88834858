-- README.md's lazy.nvim spec, as lazy.nvim would use it: the Lua block after the
-- `<!-- lazy.nvim spec -->` marker is evaluated, its `config` called with the plugin's folder
-- (the repository, where lazy.nvim clones it). Nothing is downloaded: the block is what is
-- tested, with this checkout as the clone.

local harness = dofile(vim.env.TETHER_NVIM_TESTS .. '/harness.lua')
local results, step, fail, finish = harness.results, harness.step, harness.fail, harness.finish

harness.run(function()
  step('read the spec from README.md')
  local root = vim.fs.normalize(vim.env.TETHER_PLUGIN .. '/../..')
  local readme = table.concat(vim.fn.readfile(root .. '/README.md'), '\n')
  local after = readme:match('<!%-%- lazy%.nvim spec %-%->(.*)$')
  if not after then
    return fail('README.md has no <!-- lazy.nvim spec --> marker')
  end
  local block = after:match('```lua\n(.-)\n%s*```')
  if not block then
    return fail('no lua block after the marker')
  end
  local chunk, err = load('return ' .. block, 'lazy spec')
  if not chunk then
    return fail('the spec is not Lua: ' .. tostring(err))
  end
  local spec = chunk()
  results.url = spec.url
  results.build = spec.build
  results.name = spec.name

  step('config, with the repository as the plugin folder')
  spec.config({ dir = root, name = spec.name })
  results.command = vim.fn.exists(':Tether')
  results.loaded = package.loaded.tether ~= nil
  results.health = vim.api.nvim_get_runtime_file('lua/tether/health.lua', false)[1] ~= nil
  results.completion = vim.fn.getcompletion('Tether doc', 'cmdline')
  finish(true)
end)
