#!/usr/bin/env python3
"""A small MCP server (stdio, one JSON-RPC message per line) for Tether's tests.

Tools:
  shout {text}          the text in capitals
  write_note {path, text}  writes text to path (relative to its cwd, or absolute)
  hang {}               never answers
  broken {}             answers with a result that is not a tool result
Every message it receives is appended to $NOTES_SERVER_LOG when set.
"""

import json
import os
import sys

LOG = os.environ.get("NOTES_SERVER_LOG")


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text(request_id, value, error=False):
    send({"jsonrpc": "2.0", "id": request_id,
          "result": {"content": [{"type": "text", "text": value}], "isError": error}})


TOOLS = [
    {"name": "shout", "description": "Says the text in capitals.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                     "required": ["text"]}},
    {"name": "write_note", "description": "Writes a note to a file.",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"},
                                                      "text": {"type": "string"}},
                     "required": ["path", "text"]}},
    {"name": "hang", "description": "Never answers.",
     "inputSchema": {"type": "object", "properties": {}}},
    {"name": "broken", "description": "Answers nonsense.",
     "inputSchema": {"type": "object", "properties": {}}},
]

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    message = json.loads(line)
    if LOG:
        with open(LOG, "a", encoding="utf-8") as file:
            file.write(json.dumps(message) + "\n")
    method = message.get("method")
    request_id = message.get("id")
    params = message.get("params") or {}
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": request_id, "result": {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "notes", "version": "1.0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name = params.get("name")
        arguments = params.get("arguments") or {}
        if name == "shout":
            text(request_id, arguments.get("text", "").upper())
        elif name == "write_note":
            try:
                with open(arguments["path"], "w", encoding="utf-8") as file:
                    file.write(arguments["text"])
                text(request_id, "wrote " + arguments["path"])
            except OSError as error:
                text(request_id, "cannot write: %s" % error, error=True)
        elif name == "hang":
            pass
        elif name == "broken":
            send({"jsonrpc": "2.0", "id": request_id, "result": {"content": "not a list"}})
        else:
            send({"jsonrpc": "2.0", "id": request_id,
                  "error": {"code": -32602, "message": "no tool " + str(name)}})
    elif request_id is not None and method is not None:
        send({"jsonrpc": "2.0", "id": request_id,
              "error": {"code": -32601, "message": "method not found"}})
