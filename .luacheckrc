-- luacheck for the Neovim plugin and its tests (.ci/run runs it). `vim` is a global the
-- plugin writes fields of (vim.bo[buf].modifiable, …), as Neovim's own config does.
std = "luajit"
globals = { "vim" }
max_line_length = 120
