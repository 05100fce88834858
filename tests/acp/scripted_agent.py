#!/usr/bin/env python3
"""A scripted ACP agent for Tether's tests: it speaks the Agent Client Protocol (JSON-RPC,
one message per line, over stdio) and plays the turns of a script, so the tests can drive
every path of Tether's ACP client, the faults included.

Environment:
  SCRIPTED_ACP_SCRIPT  a JSON file: {"turns": [[step, ...], ...], "load_session": bool}
  SCRIPTED_ACP_LOG     a file that gets one JSON line per message received and per event
  SCRIPTED_ACP_FAULT   exit_at_start | no_initialize | auth_required | garbage_then_exit

Steps (each a one-key object):
  {"say": text}                 an agent_message_chunk
  {"think": text}               an agent_thought_chunk
  {"write": [path, content]}    a tool call that writes through fs/write_text_file
  {"read": path}                a tool call that reads through fs/read_text_file; says it
  {"shell": command}            a tool call that runs `sh -c command` itself, in its cwd
  {"terminal": command}         a tool call that runs `sh -c command` in a client terminal
  {"permission": title}         asks session/request_permission; says the option chosen
  {"elicit": message}           asks elicitation/create for a "name" field; says the answer
  {"exit_plan": plan}           asks to leave plan mode (a switch_mode permission); says it
  {"plan": [entry, ...]}        a plan update
  {"cost": amount}              a usage_update with this running cost in USD
  {"sleep": seconds}            waits, ending the turn early if it is cancelled
  {"spawn_sleeper": pidfile}    starts `sleep 300` and writes its pid to pidfile
  {"flood": count}              count one-word message chunks
  {"reads": [path, count]}      count fs/read_text_file requests (for the benchmarks)
  {"writes": [path, count]}     count fs/write_text_file requests (for the benchmarks)
  {"garbage": text}             writes a line that is not JSON-RPC to stdout
  {"crash": code}               exits at once with this status
Paths are relative to the session's cwd; "ABS:" before one sends it as written. Each
prompt plays the next turn, counting the prompts in the log (so across restarts).
"""

import json
import os
import subprocess
import sys
import threading
import time

LOG = os.environ.get("SCRIPTED_ACP_LOG")
FAULT = os.environ.get("SCRIPTED_ACP_FAULT", "")
out_lock = threading.Lock()
pending = {}
pending_lock = threading.Lock()
next_id = [1000]
state = {"cancelled": False, "cwd": None, "session": None, "turn": 0}


def log(entry):
    if LOG:
        with open(LOG, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def send(message):
    with out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def respond(request_id, result=None, error=None):
    message = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        message["error"] = error
    else:
        message["result"] = result if result is not None else {}
    send(message)


def request(method, params):
    """Sends a request to the client and waits for its answer: (result, error)."""
    with pending_lock:
        next_id[0] += 1
        request_id = next_id[0]
        slot = {"event": threading.Event(), "message": None}
        pending[request_id] = slot
    send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    slot["event"].wait()
    message = slot["message"]
    return message.get("result"), message.get("error")


def update(update_kind, **fields):
    fields["sessionUpdate"] = update_kind
    send({
        "jsonrpc": "2.0",
        "method": "session/update",
        "params": {"sessionId": state["session"], "update": fields},
    })


def say(text):
    update("agent_message_chunk", content={"type": "text", "text": text})


def path_of(path):
    if path.startswith("ABS:"):
        return path[4:]
    return os.path.join(state["cwd"], path)


def tool(call_id, title, kind, raw_input=None):
    update("tool_call", toolCallId=call_id, title=title, kind=kind, status="in_progress",
           rawInput=raw_input or {})


def tool_done(call_id, text, status="completed", content=None):
    blocks = content or [{"type": "content", "content": {"type": "text", "text": text}}]
    update("tool_call_update", toolCallId=call_id, status=status, content=blocks)


def play(step, index):
    call_id = "call-%d-%d" % (state["turn"], index)
    (kind, value), = step.items()
    if kind == "say":
        say(value)
    elif kind == "think":
        update("agent_thought_chunk", content={"type": "text", "text": value})
    elif kind == "write":
        path, content = value
        tool(call_id, "Write " + path, "edit", {"path": path})
        _, error = request("fs/write_text_file", {
            "sessionId": state["session"], "path": path_of(path), "content": content})
        if error:
            tool_done(call_id, "refused: " + json.dumps(error), "failed")
            say("The write was refused: %s. " % json.dumps(error))
        else:
            tool_done(call_id, "wrote " + path, content=[{
                "type": "diff", "path": path_of(path), "oldText": None, "newText": content}])
    elif kind == "read":
        tool(call_id, "Read " + value, "read", {"path": value})
        result, error = request("fs/read_text_file", {
            "sessionId": state["session"], "path": path_of(value)})
        if error:
            tool_done(call_id, "refused", "failed")
            say("The read was refused: %s. " % json.dumps(error))
        else:
            tool_done(call_id, result["content"])
            say("The file says: %s " % result["content"].strip())
    elif kind == "shell":
        tool(call_id, value, "execute", {"command": value})
        done = subprocess.run(["sh", "-c", value], cwd=state["cwd"], capture_output=True,
                              text=True)
        tool_done(call_id, done.stdout + done.stderr,
                  "completed" if done.returncode == 0 else "failed")
    elif kind == "terminal":
        tool(call_id, value, "execute", {"command": value})
        created, error = request("terminal/create", {
            "sessionId": state["session"], "command": "sh", "args": ["-c", value]})
        if error:
            tool_done(call_id, "refused: " + json.dumps(error), "failed")
            say("The terminal was refused: %s. " % json.dumps(error))
            return
        terminal = created["terminalId"]
        exited, _ = request("terminal/wait_for_exit", {
            "sessionId": state["session"], "terminalId": terminal})
        output, _ = request("terminal/output", {
            "sessionId": state["session"], "terminalId": terminal})
        request("terminal/release", {"sessionId": state["session"], "terminalId": terminal})
        tool_done(call_id, output["output"], content=[
            {"type": "terminal", "terminalId": terminal}])
        say("The command printed %s and exited %s. " % (
            output["output"].strip(), json.dumps(exited.get("exitCode"))))
    elif kind == "permission":
        tool(call_id, value, "execute", {"command": value})
        result, error = request("session/request_permission", {
            "sessionId": state["session"],
            "toolCall": {"toolCallId": call_id, "title": value, "kind": "execute",
                         "rawInput": {"command": value}},
            "options": [
                {"optionId": "yes", "name": "Allow", "kind": "allow_once"},
                {"optionId": "always", "name": "Always allow", "kind": "allow_always"},
                {"optionId": "no", "name": "Reject", "kind": "reject_once"},
            ],
        })
        outcome = (result or {}).get("outcome", {})
        chosen = outcome.get("optionId", outcome.get("outcome", "error"))
        tool_done(call_id, "permission: " + chosen,
                  "completed" if chosen in ("yes", "always") else "failed")
        say("Permission outcome: %s. " % chosen)
    elif kind == "exit_plan":
        result, error = request("session/request_permission", {
            "sessionId": state["session"],
            "toolCall": {"toolCallId": call_id, "title": "Ready to code?", "kind": "switch_mode",
                         "rawInput": {"plan": value}},
            "options": [
                {"optionId": "go", "name": "Yes, go", "kind": "allow_once"},
                {"optionId": "keep", "name": "No, keep planning", "kind": "reject_once"},
            ],
        })
        outcome = (result or {}).get("outcome", {})
        say("Plan outcome: %s. " % outcome.get("optionId", outcome.get("outcome", "error")))
    elif kind == "elicit":
        result, error = request("elicitation/create", {
            "sessionId": state["session"], "mode": "form", "message": value,
            "requestedSchema": {"type": "object", "properties": {
                "name": {"type": "string", "title": "Your name"}}, "required": ["name"]},
        })
        say("Elicitation: %s. " % json.dumps(result if result is not None else error))
    elif kind == "plan":
        update("plan", entries=[{"content": entry, "priority": "medium",
                                 "status": "pending"} for entry in value])
    elif kind == "cost":
        update("usage_update", used=1000, size=200000,
               cost={"amount": value, "currency": "USD"})
    elif kind == "sleep":
        deadline = time.time() + value
        while time.time() < deadline and not state["cancelled"]:
            time.sleep(0.02)
    elif kind == "spawn_sleeper":
        sleeper = subprocess.Popen(["sleep", "300"], cwd=state["cwd"])
        with open(value, "w", encoding="utf-8") as file:
            file.write(str(sleeper.pid))
        tool(call_id, "sleep 300", "execute", {"command": "sleep 300"})
    elif kind == "flood":
        for number in range(value):
            say("w%d " % number)
    elif kind == "reads":
        path, count = value
        for _ in range(count):
            request("fs/read_text_file", {"sessionId": state["session"], "path": path_of(path)})
    elif kind == "writes":
        path, count = value
        for number in range(count):
            request("fs/write_text_file", {"sessionId": state["session"],
                                           "path": path_of(path), "content": "%d\n" % number})
    elif kind == "garbage":
        with out_lock:
            sys.stdout.write(value + "\n")
            sys.stdout.flush()
    elif kind == "crash":
        sys.stderr.write("scripted agent: crashing on purpose\n")
        sys.stderr.flush()
        os._exit(value)


def prompts_so_far():
    """How many prompts the agents of this script were sent before: each plays the next
    turn, across restarts."""
    if not LOG or not os.path.exists(LOG):
        return 0
    with open(LOG, encoding="utf-8") as file:
        return sum(1 for line in file if '"event": "prompt"' in line) - 1


def model_options(current):
    return [{"id": "model", "name": "Model", "category": "model", "type": "select",
             "currentValue": current,
             "options": [{"value": "fast", "name": "Fast"}, {"value": "smart", "name": "Smart"}]}]


def run_prompt(request_id, params, script):
    state["turn"] = max(prompts_so_far(), 0)
    turns = script.get("turns", [])
    steps = turns[state["turn"]] if state["turn"] < len(turns) else [{"say": "(no more script)"}]
    state["cancelled"] = False
    for index, step in enumerate(steps):
        if state["cancelled"]:
            break
        play(step, index)
    respond(request_id, {"stopReason": "cancelled" if state["cancelled"] else "end_turn"})


def main():
    if FAULT == "exit_at_start":
        sys.stderr.write("scripted agent: cannot start, no config\n")
        sys.stderr.flush()
        sys.exit(3)
    script_path = os.environ.get("SCRIPTED_ACP_SCRIPT")
    script = {}
    if script_path:
        with open(script_path, encoding="utf-8") as file:
            script = json.load(file)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        message = json.loads(line)
        log({"received": message})
        method = message.get("method")
        if method is None:
            with pending_lock:
                slot = pending.pop(message.get("id"), None)
            if slot:
                slot["message"] = message
                slot["event"].set()
            continue
        request_id = message.get("id")
        params = message.get("params") or {}
        if method == "initialize":
            if FAULT == "no_initialize":
                continue
            if FAULT == "garbage_then_exit":
                sys.stdout.write("Welcome to the agent! Loading plugins...\n")
                sys.stdout.flush()
                sys.stderr.write("fatal: plugin failed\n")
                sys.stderr.flush()
                sys.exit(7)
            respond(request_id, {
                "protocolVersion": 1,
                "agentCapabilities": {
                    "loadSession": bool(script.get("load_session")),
                    "promptCapabilities": {"image": bool(script.get("images")),
                                           "embeddedContext": bool(script.get("images"))},
                },
                "authMethods": [{"id": "login", "name": "Log in with the agent",
                                 "description": "run `scripted-agent login`"}],
                "agentInfo": {"name": "scripted", "version": "1.0"},
            })
        elif method == "session/new":
            if FAULT == "auth_required":
                respond(request_id, error={"code": -32000, "message": "Authentication required"})
                continue
            state["cwd"] = params["cwd"]
            state["session"] = "scripted-%d" % os.getpid()
            log({"event": "new", "cwd": params["cwd"], "mcpServers": params.get("mcpServers")})
            respond(request_id, {"sessionId": state["session"], "modes": {
                "currentModeId": "normal",
                "availableModes": [{"id": "normal", "name": "Normal"},
                                   {"id": "careful", "name": "Careful"}]},
                "configOptions": model_options("fast")})
            update("available_commands_update", availableCommands=[
                {"name": "review", "description": "Review the changes"}])
        elif method == "session/load":
            state["cwd"] = params["cwd"]
            state["session"] = params["sessionId"]
            log({"event": "load", "sessionId": params["sessionId"]})
            # A loaded session replays its history: the client must not show it again.
            update("user_message_chunk", content={"type": "text", "text": "(replayed)"})
            say("(replayed answer)")
            respond(request_id, None)
        elif method == "session/prompt":
            log({"event": "prompt", "prompt": params.get("prompt")})
            threading.Thread(target=run_prompt, args=(request_id, params, script),
                             daemon=True).start()
        elif method == "session/set_config_option":
            log({"event": "config", "configId": params.get("configId"),
                 "value": params.get("value")})
            respond(request_id, {"configOptions": model_options(params.get("value"))})
        elif method == "session/set_mode":
            log({"event": "mode", "modeId": params.get("modeId")})
            respond(request_id, {})
        elif method == "session/cancel":
            log({"event": "cancel"})
            state["cancelled"] = True
        elif request_id is not None:
            respond(request_id, error={"code": -32601, "message": "method not found"})


if __name__ == "__main__":
    main()
