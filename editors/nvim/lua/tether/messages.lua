-- Changing a session's conversation from Neovim:
--   :Tether edit [text]   edits a message you sent; the session runs again from it, with its
--                         worktree put back to where it was then (what followed is kept in
--                         the transcript, folded under "Superseded by an edit")
--   :Tether unqueue       takes back a message that still waits for the agent
--   :Tether compact       summarizes the conversation; the summary replaces it in the
--                         model's context (the transcript keeps everything)

local M = {}

local function tether()
  return require("tether")
end

local function notify(...)
  tether().notify(...)
end

--- From a session's events: the user's messages that can still be edited (latest first) and
--- the ones still waiting to be delivered (oldest first), each `{ id, text }`.
function M.fold(events)
  local messages, queued, order = {}, {}, {}
  for _, record in ipairs(events or {}) do
    local event = record.event or {}
    local item = event.item or {}
    if event.kind == "item" and event.phase == "completed" and item.type == "message" and item.role == "user" then
      table.insert(messages, { id = item.id, text = item.text or "", current = true })
      queued[item.id] = nil
    elseif event.kind == "followUpQueued" then
      queued[event.itemId] = event.text or ""
      table.insert(order, event.itemId)
    elseif event.kind == "followUpWithdrawn" then
      queued[event.itemId] = nil
    elseif event.kind == "superseded" then
      for index, message in ipairs(messages) do
        if message.id == event.itemId then
          for later = index, #messages do
            messages[later].current = false
          end
          break
        end
      end
    end
  end
  local editable = {}
  for index = #messages, 1, -1 do
    if messages[index].current then
      table.insert(editable, { id = messages[index].id, text = messages[index].text })
    end
  end
  local waiting = {}
  for _, id in ipairs(order) do
    if queued[id] then
      table.insert(waiting, { id = id, text = queued[id] })
    end
  end
  return editable, waiting
end

local function first_line(message)
  local line = vim.split(message.text, "\n", { plain = true })[1] or ""
  return #line > 70 and (line:sub(1, 69) .. "…") or line
end

--- Asks which of `messages` (from `get`'s events), then runs `on_choice(message)`.
local function pick_message(session, which, prompt, on_choice)
  tether().request("get", { id = session.id }, function(result)
    local editable, waiting = M.fold(result.events)
    local messages = which == "queued" and waiting or editable
    if #messages == 0 then
      return notify(which == "queued" and "no message waits to be delivered" or "no message to edit")
    end
    vim.ui.select(messages, { prompt = prompt, format_item = first_line }, function(message)
      if message then
        on_choice(message)
      end
    end)
  end)
end

--- `:Tether edit [text]`.
function M.edit(args)
  tether().pick_session("Edit a message of", function(session)
    pick_message(session, "sent", "Edit which message?", function(message)
      local function run(text)
        if not text or vim.trim(text) == "" then
          return
        end
        tether().request("editMessage", { id = session.id, itemId = message.id, text = text }, function()
          notify(string.format("%s runs again from your edited message", session.name))
        end)
      end
      if args ~= "" then
        run(args)
      else
        vim.ui.input({ prompt = "Edited message: ", default = message.text }, run)
      end
    end)
  end, function(s)
    return s.status == "waiting" or s.status == "stopped" or s.status == "failed"
  end)
end

--- `:Tether unqueue`.
function M.unqueue()
  tether().pick_session("Take back a message of", function(session)
    pick_message(session, "queued", "Take back which message?", function(message)
      tether().request("deleteMessage", { id = session.id, itemId = message.id }, function()
        notify("taken back: " .. first_line(message))
      end)
    end)
  end, function(s)
    return s.status == "pending" or s.status == "creating" or s.status == "running"
  end)
end

--- `:Tether compact`.
function M.compact()
  tether().pick_session("Compact the conversation of", function(session)
    tether().request("compact", { id = session.id }, function()
      notify(string.format("%s is summarizing its conversation", session.name))
    end)
  end, function(s)
    return s.context ~= nil and (s.status == "waiting" or s.status == "stopped" or s.status == "failed")
  end)
end

return M
