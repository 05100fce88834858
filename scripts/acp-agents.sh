#!/usr/bin/env bash
# Real ACP agents for the end-to-end tests, from npm, pinned, in ~/.cache/tether/acp-agents:
# Claude Code's ACP adapter (@agentclientprotocol/claude-agent-acp, with its bundled Claude
# Code) and Qwen Code (@qwen-code/qwen-code, which speaks ACP with --acp and talks to any
# OpenAI-compatible server). Both ask for Node 22 and run on Node 20.
#
#   scripts/acp-agents.sh install   installs them once (about 20 s), then they are cached
#   scripts/acp-agents.sh path      prints the folder holding their programs
set -euo pipefail
prefix="${TETHER_CACHE:-$HOME/.cache/tether}/acp-agents"
readonly CLAUDE_ACP="@agentclientprotocol/claude-agent-acp@0.101.0"
readonly QWEN="@qwen-code/qwen-code@0.24.4"
stamp="$prefix/.installed-$(echo "$CLAUDE_ACP $QWEN" | tr '@/ ' '__-')"

case "${1:-}" in
    install)
        if [ -f "$stamp" ] && [ -x "$prefix/node_modules/.bin/claude-agent-acp" ] \
            && [ -x "$prefix/node_modules/.bin/qwen" ]; then
            exit 0
        fi
        mkdir -p "$prefix"
        npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
            --engine-strict=false "$CLAUDE_ACP" "$QWEN"
        touch "$stamp"
        ;;
    path)
        echo "$prefix/node_modules/.bin"
        ;;
    *)
        echo "usage: $0 install|path" >&2
        exit 2
        ;;
esac
