-- Tasks for Neovim: several agents race one prompt, each trial a session of its own; a task
-- buffer shows them side by side (tether/task/compare's document) and keeps up as they work.
--
--   :Tether task new [prompt]   pick the trials' agents (one pick per trial), then the prompt
--   :Tether task list           open a task's buffer
--   :Tether task compare        the same, for the task you pick
--   :Tether task promote        pick a task, a finished trial and how: apply, merge or pr
--   :Tether task stop|delete

local M = {}

-- Task id -> its buffer.
local buffers = {}
local pending_render = {}

local function tether()
  return require("tether")
end

local function notify(message, level)
  vim.notify("tether: " .. message, level or vim.log.levels.INFO)
end

--- Renders a task's buffer from tether/task/compare's document.
local function render(id)
  local buf = buffers[id]
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    buffers[id] = nil
    return
  end
  tether().request("tether/task/compare", { id = id }, function(result)
    tether().fill(buf, result.document)
  end)
end

--- Opens (or shows again) the buffer of a task.
function M.open(task)
  local buf = buffers[task.id]
  if not buf or not vim.api.nvim_buf_is_valid(buf) then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, "tether-task://" .. task.name)
    vim.bo[buf].filetype = "markdown"
    vim.bo[buf].bufhidden = "hide"
    buffers[task.id] = buf
  end
  vim.api.nvim_set_current_buf(buf)
  render(task.id)
  return buf
end

--- Handles one tether/task/event notification: the task's buffer follows it.
function M.on_event(params)
  local id = params.taskId
  if not buffers[id] or pending_render[id] then
    return
  end
  pending_render[id] = true
  vim.defer_fn(function()
    pending_render[id] = nil
    render(id)
  end, 100)
end

--- One trial, as pickers show it.
function M.describe_trial(trial)
  local findings = trial.findings or {}
  return string.format(
    "trial %d  %s/%s  [%s]  %d files +%d -%d  findings %d/%d/%d/%d  verification %s  tests %s",
    trial.index,
    trial.provider,
    trial.model,
    trial.status,
    trial.filesChanged or 0,
    trial.additions or 0,
    trial.deletions or 0,
    findings.critical or 0,
    findings.high or 0,
    findings.medium or 0,
    findings.low or 0,
    trial.verification or "-",
    trial.hooksPassed == nil and "-" or (trial.hooksPassed and "passed" or "failed")
  )
end

--- Whether a trial can be promoted now.
function M.promotable(trial)
  return not trial.gone and (trial.status == "waiting" or trial.status == "stopped" or trial.status == "completed")
end

local function pick_task(prompt, on_choice)
  tether().request("tether/task/list", {}, function(result)
    local tasks = result.tasks or {}
    if #tasks == 0 then
      return notify("no tasks")
    end
    vim.ui.select(tasks, {
      prompt = prompt,
      format_item = function(task)
        return string.format("%s [%s] %d trials  %s", task.name, task.status, #task.trials, task.title)
      end,
    }, function(task)
      if task then
        on_choice(task)
      end
    end)
  end)
end

--- Picks the trials' providers: one pick per trial, until "(start)".
local function pick_trials(on_done)
  tether().request("tether/providers/list", {}, function(listed)
    local providers = vim.tbl_filter(function(provider)
      return provider.available
    end, tether().provider_choices(listed.providers or {}))
    local trials = {}
    local function more()
      local choices = { "(start)" }
      vim.list_extend(choices, providers)
      vim.ui.select(choices, {
        prompt = string.format("Trial %d: which agent? (%d chosen)", #trials + 1, #trials),
        format_item = function(choice)
          return type(choice) == "string" and choice or tether().describe_provider(choice)
        end,
      }, function(choice)
        if choice == nil then
          return
        elseif choice == "(start)" then
          if #trials == 0 then
            return notify("a task needs at least one trial", vim.log.levels.WARN)
          end
          on_done(trials)
        else
          table.insert(trials, { provider = choice.name })
          if #trials == 8 then
            return on_done(trials)
          end
          more()
        end
      end)
    end
    more()
  end)
end

local commands = {}

function commands.new(args)
  pick_trials(function(trials)
    local function start(prompt)
      if not prompt or prompt == "" then
        return
      end
      tether().request("tether/task/create", { prompt = prompt, trials = trials }, function(task)
        notify(string.format("task %s started: %d trials", task.name, #task.trials))
        M.open(task)
      end)
    end
    if args ~= "" then
      start(args)
    else
      vim.ui.input({ prompt = "What should the trials do? " }, start)
    end
  end)
end

function commands.list()
  pick_task("Tasks", M.open)
end

commands.compare = commands.list

function commands.promote()
  pick_task("Promote a trial of", function(task)
    local trials = vim.tbl_filter(M.promotable, task.trials)
    if #trials == 0 then
      return notify("no trial of " .. task.name .. " has finished", vim.log.levels.WARN)
    end
    vim.ui.select(trials, { prompt = "Which trial?", format_item = M.describe_trial }, function(trial)
      if not trial then
        return
      end
      local hows = { "apply", "merge", "pr" }
      vim.ui.select(hows, {
        prompt = "How?",
        format_item = function(how)
          return ({
            apply = "apply to my files",
            merge = "merge into " .. task.baseBranch,
            pr = "open a pull request",
          })[how]
        end,
      }, function(how)
        if not how then
          return
        end
        vim.ui.input({ prompt = "Why this one? (optional) " }, function(reason)
          tether().request("tether/task/promote", {
            id = task.id,
            sessionId = trial.sessionId,
            how = how,
            reason = reason ~= "" and reason or nil,
          }, function(result)
            local said = result.pullRequest or (result.apply and result.apply.summary) or result.commit or ""
            notify(string.format("trial %d of %s promoted (%s) %s", trial.index, task.name, how, said))
            if buffers[task.id] then
              render(task.id)
            end
          end)
        end)
      end)
    end)
  end)
end

function commands.stop()
  pick_task("Stop", function(task)
    tether().request("tether/task/stop", { id = task.id })
  end)
end

function commands.delete()
  pick_task("Delete (its trials too)", function(task)
    tether().request("tether/task/delete", { id = task.id }, function()
      local buf = buffers[task.id]
      buffers[task.id] = nil
      if buf and vim.api.nvim_buf_is_valid(buf) then
        vim.api.nvim_buf_delete(buf, { force = true })
      end
    end)
  end)
end

M.commands = commands

--- `:Tether task <subcommand> [text]`.
function M.command(args)
  local name, rest = args:match("^(%S+)%s*(.*)$")
  local run = commands[name or ""]
  if not run then
    return notify("usage: :Tether task " .. table.concat(vim.tbl_keys(commands), "|"), vim.log.levels.WARN)
  end
  run(rest or "")
end

return M
