#!/usr/bin/env python3
"""A small MCP server (stdio, one JSON-RPC message per line) for Tether's tests.

Tools:
  shout {text}          the text in capitals
  write_note {path, text}  writes text to path (relative to its cwd, or absolute)
  hang {}               never answers
  broken {}             answers with a result that is not a tool result
Every message it receives is appended to $NOTES_SERVER_LOG when set.

With `--http PORTFILE` it serves streamable HTTP on 127.0.0.1 instead (POST /mcp, a JSON
answer per request), writing its port to PORTFILE.
"""

import json
import os
import sys

LOG = os.environ.get("NOTES_SERVER_LOG")


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


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

def handle(message, send):
    """Answers one JSON-RPC message through `send` (nothing for a notification)."""
    if LOG:
        with open(LOG, "a", encoding="utf-8") as file:
            file.write(json.dumps(message) + "\n")
    method = message.get("method")
    request_id = message.get("id")
    params = message.get("params") or {}

    def text(value, error=False):
        send({"jsonrpc": "2.0", "id": request_id,
              "result": {"content": [{"type": "text", "text": value}], "isError": error}})

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
            text(arguments.get("text", "").upper())
        elif name == "write_note":
            try:
                with open(arguments["path"], "w", encoding="utf-8") as file:
                    file.write(arguments["text"])
                text("wrote " + arguments["path"])
            except OSError as error:
                text("cannot write: %s" % error, error=True)
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


def serve_stdio():
    for line in sys.stdin:
        line = line.strip()
        if line:
            handle(json.loads(line), send)


def serve_http(portfile):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            answers = []
            handle(json.loads(body), answers.append)
            if not answers:
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            data = json.dumps(answers[0]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.send_response(405)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_DELETE(self):
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile, "w", encoding="utf-8") as file:
        file.write(str(server.server_address[1]))
    server.serve_forever()


if len(sys.argv) > 2 and sys.argv[1] == "--http":
    serve_http(sys.argv[2])
else:
    serve_stdio()
