-- Tether for Neovim: sessions of an AI coding agent, through the `tether` language server.
--
--   require("tether").setup({ cmd = { "tether", "lsp" }, settings = { ... } })
--
-- Commands: :Tether new|list|send|stop|resume|apply|export|review|loop|transcript (`:Tether send
-- --attach PATH text` attaches files: images, PDFs, text), and
-- :Tether task new|list|compare|promote|stop|delete (tasks.lua: several agents race a prompt),
-- :Tether feedback up|down [comment] (rates a session's latest reply),
-- :Tether edit [text], :Tether unqueue and :Tether compact (messages.lua: edit a sent message
-- and run again from it; take back one that waits; summarize the conversation)
-- Questions, plans and permissions are asked with vim.ui.select / vim.ui.input as they
-- arrive; progress comes through Neovim's own $/progress handling; findings are diagnostics
-- and every choice is also a code action.

local M = {}

local defaults = {
  -- How to start the server.
  cmd = { "tether", "lsp" },
  -- initializationOptions: tether's settings (see tether's README), e.g.
  -- { default_provider = "openai", session = { permission_mode = "ask" } }
  settings = nil,
  -- Ask questions, plans and permissions with vim.ui.select / vim.ui.input when they come.
  prompt_on_questions = true,
}

M.config = vim.deepcopy(defaults)

--- The plugin's version: the binary's must share its major and minor numbers.
M.version = "0.1.0"
M.install_hint = "cargo install --locked --path server (in tether's repository)"

--- Whether a binary of `version` speaks this plugin's protocol.
function M.compatible(version)
  local major, minor = M.version:match("^(%d+)%.(%d+)")
  local other_major, other_minor = tostring(version):match("^(%d+)%.(%d+)")
  return major ~= nil and major == other_major and minor == other_minor
end

-- Session id -> transcript buffer.
local transcripts = {}
-- Items already asked about, so a repeated event never asks twice.
local asked = {}

local function client()
  return vim.lsp.get_clients({ name = "tether" })[1]
end

local function notify(message, level)
  vim.notify("tether: " .. message, level or vim.log.levels.INFO)
end
M.notify = notify

--- `@` files and `/` commands that complete the last word of `text` (waits at most 1 s; for
--- command-line completion, which cannot wait for a callback).
function M.completions(text)
  local c = client()
  if not c then
    return {}
  end
  local request_sync = vim.fn.has("nvim-0.11") == 1 and function(...)
    return c:request_sync(...)
  end or c.request_sync
  local answer = request_sync("tether/session/completions", { text = text }, 1000, 0)
  if not answer or answer.err or not answer.result then
    return {}
  end
  local labels = {}
  for _, item in ipairs(answer.result.items or {}) do
    table.insert(labels, item.label)
  end
  return labels
end

--- Sends a tether/session/* request; calls `on_result(result)` on success.
function M.request(method, params, on_result)
  local c = client()
  if not c then
    notify("the tether server is not running in this buffer's project", vim.log.levels.ERROR)
    return
  end
  -- An empty Lua table would be sent as `[]`; the server wants an object.
  if params == nil or vim.tbl_isempty(params) then
    params = vim.empty_dict()
  end
  -- 0.11 made client methods take self (`client:request`); 0.10 has only `client.request`.
  local send = vim.fn.has("nvim-0.11") == 1 and function(...)
    return c:request(...)
  end or c.request
  -- A bare name is a session method; a full one (`tether/providers/list`) is sent as it is.
  local full = method:find("/", 1, true) and method or ("tether/session/" .. method)
  send(full, params, function(err, result)
    if err then
      notify(method .. ": " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    if on_result then
      on_result(result)
    end
  end)
end

--- Picks a session with vim.ui.select, then calls `on_choice(session)`.
function M.pick_session(prompt, on_choice, filter)
  M.request("list", {}, function(result)
    local sessions = vim.tbl_filter(filter or function()
      return true
    end, result.sessions or {})
    if #sessions == 0 then
      notify("no sessions")
      return
    end
    vim.ui.select(sessions, {
      prompt = prompt,
      format_item = function(s)
        local activity = s.activity and (" · " .. s.activity) or ""
        return string.format("%s [%s%s] %s", s.name, s.status, activity, s.title)
      end,
    }, function(session)
      if session then
        on_choice(session)
      end
    end)
  end)
end

-- Transcript buffers -------------------------------------------------------------------

--- Replaces a read-only buffer's text (when the buffer still exists).
function M.fill(buf, text)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(text or "", "\n"))
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
end

local function render_transcript(id)
  local buf = transcripts[id]
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    transcripts[id] = nil
    return
  end
  M.request("export", { id = id, format = "markdown" }, function(result)
    M.fill(buf, result.content)
  end)
end

local pending_render = {}

--- Renders soon (at most every 100 ms per session while events stream).
local function schedule_render(id)
  if pending_render[id] then
    return
  end
  pending_render[id] = true
  vim.defer_fn(function()
    pending_render[id] = nil
    render_transcript(id)
  end, 100)
end

--- Opens a session's live transcript in a buffer.
function M.open_transcript(session)
  local buf = transcripts[session.id]
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, "tether://" .. session.name)
    vim.bo[buf].filetype = "markdown"
    vim.bo[buf].bufhidden = "hide"
    vim.keymap.set("n", "gc", function()
      require("tether.checkpoints").pick(session)
    end, { buffer = buf, desc = "tether: the session's checkpoints (rewind, undo)" })
    transcripts[session.id] = buf
  end
  vim.api.nvim_set_current_buf(buf)
  render_transcript(session.id)
  return buf
end

-- Questions, plans and permissions -------------------------------------------------------

local function ask_questions(id, item)
  local answers = {}
  local function ask(index)
    local question = item.questions[index]
    if not question then
      M.request("answer", { id = id, questionId = item.id, answers = answers })
      return
    end
    local function take(answer)
      if answer == nil then
        return -- dismissed: answer later with a code action or the transcript
      end
      answers[index] = answer
      ask(index + 1)
    end
    if question.kind == "text" or not question.options or #question.options == 0 then
      vim.ui.input({ prompt = question.prompt .. " " }, take)
    elseif question.kind == "multi" then
      -- One pick at a time until "done".
      local chosen = {}
      local function more()
        local choices = vim.list_extend({ "(done)" }, question.options)
        vim.ui.select(choices, { prompt = question.prompt .. " (several)" }, function(choice)
          if choice == nil then
            return
          elseif choice == "(done)" then
            take(chosen)
          else
            table.insert(chosen, choice)
            more()
          end
        end)
      end
      more()
    else
      vim.ui.select(question.options, { prompt = question.prompt }, take)
    end
  end
  ask(1)
end

local function ask_plan(id, item)
  local titles = {}
  for _, phase in ipairs(item.phases or {}) do
    table.insert(titles, phase.title)
  end
  vim.ui.select({ "Approve plan", "Reject plan" }, {
    prompt = "Plan: " .. table.concat(titles, "; "),
  }, function(choice)
    if choice == "Approve plan" then
      M.request("decidePlan", { id = id, planId = item.id, approve = true })
    elseif choice == "Reject plan" then
      vim.ui.input({ prompt = "What should change? " }, function(feedback)
        M.request("decidePlan", { id = id, planId = item.id, approve = false, feedback = feedback })
      end)
    end
  end)
end

local function ask_permission(id, item)
  vim.ui.select(item.decisions or {}, {
    prompt = string.format("Allow %s (%s)?", item.tool, item.scope or ""),
  }, function(decision)
    if decision then
      M.request("answer", { id = id, questionId = item.id, answers = { decision } })
    end
  end)
end

--- Handles one tether/session/event notification.
function M.on_event(params)
  local id, event = params.sessionId, params.event
  if transcripts[id] then
    schedule_render(id)
  end
  if not M.config.prompt_on_questions or event.kind ~= "item" or event.phase ~= "started" then
    return
  end
  local item = event.item
  if asked[item.id] then
    return
  end
  local ask = ({ question = ask_questions, plan = ask_plan, permission = ask_permission })[item.type]
  if ask then
    asked[item.id] = true
    vim.schedule(function()
      ask(id, item)
    end)
  end
end

-- Commands ------------------------------------------------------------------------------

local commands = {}

--- The providers as the New Session picker shows them: the ones that can run first (the
--- default at the top), then the missing ones, which say how to get them.
function M.provider_choices(providers)
  local ordered = {}
  for _, pass in ipairs({ "default", "available", "missing" }) do
    for _, provider in ipairs(providers) do
      local group = not provider.available and "missing" or (provider.default and "default" or "available")
      if group == pass then
        table.insert(ordered, provider)
      end
    end
  end
  return ordered
end

--- One provider, as the picker shows it.
function M.describe_provider(provider)
  local what = provider.kind == "acp" and ("agent " .. (provider.command or "?"))
    or (provider.kind .. " " .. (provider.model or ""))
  local line = provider.name .. (provider.default and " (default)" or "") .. "  " .. what
  if provider.models and #provider.models > 0 then
    line = line .. "  models: " .. table.concat(provider.models, ", ")
  end
  if not provider.available then
    line = line .. "  [not available: " .. (provider.missing or "?") .. "]"
  end
  return line
end

function commands.new(args)
  local function start(prompt, provider)
    if prompt and prompt ~= "" then
      M.request("create", { prompt = prompt, provider = provider }, function(session)
        notify("session " .. session.name .. " started")
        M.open_transcript(session)
      end)
    end
  end
  if args ~= "" then
    return start(args)
  end
  -- Which agent first, then what it should do.
  M.request("tether/providers/list", {}, function(listed)
    local choices = M.provider_choices(listed.providers or {})
    vim.ui.select(choices, {
      prompt = "Which agent runs the session?",
      format_item = M.describe_provider,
    }, function(provider)
      if not provider then
        return
      end
      if not provider.available then
        return notify(provider.name .. ": " .. (provider.missing or "not available"), vim.log.levels.WARN)
      end
      vim.ui.input({ prompt = "What should the session do? " }, function(prompt)
        start(prompt, provider.name)
      end)
    end)
  end)
end

function commands.list()
  M.pick_session("Sessions", M.open_transcript)
end

commands.transcript = commands.list

--- `--attach PATH` options (any number, before the text) and the text after them.
function M.split_attach(args)
  local attachments = {}
  local rest = args
  while true do
    local path, after = rest:match("^%-%-attach%s+(%S+)%s*(.*)$")
    if not path then
      break
    end
    table.insert(attachments, { path = vim.fn.fnamemodify(vim.fn.expand(path), ":p") })
    rest = after
  end
  return rest, attachments
end

--- `:Tether send [--attach PATH]… [text]`.
function commands.send(args)
  local text_arg, attachments = M.split_attach(args)
  M.pick_session("Send to", function(session)
    local function send(text)
      if text and text ~= "" then
        M.request("send", {
          id = session.id,
          text = text,
          attachments = #attachments > 0 and attachments or nil,
        })
      end
    end
    if text_arg ~= "" then
      send(text_arg)
    else
      vim.ui.input({ prompt = "Message to " .. session.name .. ": " }, send)
    end
  end)
end

function commands.stop()
  M.pick_session("Stop", function(session)
    M.request("stop", { id = session.id })
  end, function(s)
    return s.status == "pending" or s.status == "creating" or s.status == "running"
  end)
end

function commands.resume()
  M.pick_session("Resume", function(session)
    M.request("resume", { id = session.id })
  end, function(s)
    return s.status == "stopped" or s.status == "failed"
  end)
end

function commands.apply()
  M.pick_session("Apply changes of", function(session)
    M.request("apply", { id = session.id }, function(result)
      notify(result.summary or "sent")
    end)
  end)
end

function commands.export()
  M.pick_session("Export", function(session)
    M.request("export", { id = session.id, format = "markdown" }, function(result)
      local buf = vim.api.nvim_create_buf(true, false)
      vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(result.content or "", "\n"))
      vim.bo[buf].filetype = "markdown"
      vim.api.nvim_set_current_buf(buf)
    end)
  end)
end

function commands.review()
  M.pick_session("Review", function(session)
    vim.ui.select({ "review", "verification" }, { prompt = "Run" }, function(kind)
      if kind then
        M.request("review", { id = session.id, kind = kind })
      end
    end)
  end)
end

function commands.loop(args)
  M.pick_session("Loop on", function(session)
    local function start(prompt)
      if not prompt or prompt == "" then
        return
      end
      vim.ui.input({ prompt = "Most iterations: ", default = "10" }, function(count)
        M.request("loop", {
          id = session.id,
          prompt = prompt,
          maxIterations = tonumber(count) or 10,
        })
      end)
    end
    if args ~= "" then
      start(args)
    else
      vim.ui.input({ prompt = "Loop prompt: " }, start)
    end
  end, function(s)
    return s.status == "waiting"
  end)
end

--- `:Tether feedback up|down [comment]`: rates a session's latest reply.
function commands.feedback(args)
  local rating, comment = args:match("^(%S+)%s*(.*)$")
  if rating ~= "up" and rating ~= "down" then
    return notify("usage: :Tether feedback up|down [comment]", vim.log.levels.WARN)
  end
  M.pick_session("Rate the latest reply of", function(session)
    M.request("feedback", {
      id = session.id,
      rating = rating,
      comment = comment ~= "" and comment or nil,
    }, function()
      notify(string.format("rated %s's reply %s", session.name, rating))
      if transcripts[session.id] then
        schedule_render(session.id)
      end
    end)
  end, function(s)
    return s.status ~= "pending" and s.status ~= "creating" and s.status ~= "running"
  end)
end

function commands.task(args)
  require("tether.tasks").command(args)
end

function commands.edit(args)
  require("tether.messages").edit(args)
end

function commands.unqueue()
  require("tether.messages").unqueue()
end

function commands.compact()
  require("tether.messages").compact()
end

function commands.doctor()
  vim.cmd("checkhealth tether")
end

commands["review-diff"] = function()
  require("tether.review").command()
end

function commands.checkpoints()
  require("tether.checkpoints").command()
end

function commands.findings()
  require("tether.findings").command()
end

function commands.git()
  require("tether.git").command()
end

--- `:Tether <subcommand> [text]`.
function M.command(opts)
  local name, rest = opts.args:match("^(%S+)%s*(.*)$")
  local run = commands[name or ""]
  if not run then
    notify("usage: :Tether " .. table.concat(vim.tbl_keys(commands), "|"), vim.log.levels.WARN)
    return
  end
  run(rest or "")
end

-- Setup ---------------------------------------------------------------------------------

local function server_config()
  return {
    name = "tether",
    cmd = M.config.cmd,
    root_markers = { ".git" },
    init_options = M.config.settings,
    capabilities = vim.tbl_deep_extend(
      "force",
      vim.lsp.protocol.make_client_capabilities(),
      { experimental = { tether = true } }
    ),
    handlers = {
      ["tether/session/event"] = function(_, params)
        M.on_event(params)
      end,
      ["tether/task/event"] = function(_, params)
        require("tether.tasks").on_event(params)
      end,
    },
  }
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  local config = server_config()
  if vim.lsp.config and vim.lsp.enable then
    -- Neovim 0.11+: every buffer of a git repository attaches.
    vim.lsp.config("tether", config)
    vim.lsp.enable("tether")
  else
    -- Neovim 0.10.
    vim.api.nvim_create_autocmd("FileType", {
      group = vim.api.nvim_create_augroup("tether", { clear = true }),
      callback = function(event)
        local root = vim.fs.root(event.buf, config.root_markers)
        if root then
          vim.lsp.start(vim.tbl_extend("force", config, { root_dir = root }), { bufnr = event.buf })
        end
      end,
    })
  end
  vim.api.nvim_create_user_command("Tether", M.command, {
    nargs = "+",
    desc = "tether sessions: new|list|send|stop|resume|apply|export|review|loop|transcript|task|"
      .. "feedback|edit|unqueue|compact|doctor|review-diff|checkpoints|findings|git",
    complete = function(lead, line)
      local args = line:match("^%s*Tether%s+send%s+(.*)$") or line:match("^%s*Tether%s+new%s+(.*)$")
      if args then
        if line:match("%-%-attach%s+%S*$") then
          return vim.fn.getcompletion(lead, "file")
        end
        local text = M.split_attach(args)
        if lead:sub(1, 1) == "@" or lead:sub(1, 1) == "/" then
          return M.completions(text)
        end
        return {}
      end
      local names = vim.tbl_filter(function(name)
        return name:find(lead, 1, true) == 1
      end, vim.tbl_keys(commands))
      table.sort(names)
      return names
    end,
  })
end

return M
