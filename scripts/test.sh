#!/usr/bin/env bash
# Runs every test: unit, end-to-end over stdio, a real headless Neovim (installed by
# scripts/neovim.sh), the VS Code extension's unit tests (npm) and the packaged extension in a
# real VS Code (code-server and Chromium, installed by scripts/code-server.sh; as root it
# apt-installs what is missing), real ACP agents (installed by scripts/acp-agents.sh), and
# the smoke tests against the real local model (installed and started by
# scripts/local-model.sh; the first install builds llama.cpp, about 10 minutes on 2 cores,
# then it is cached).
#
#   TETHER_SKIP_LOCAL_MODEL=1 scripts/test.sh   skips the local-model smoke tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/neovim.sh install
TETHER_NVIM=$(scripts/neovim.sh path)
export TETHER_NVIM

scripts/code-server.sh install

# Real ACP agents (Claude Code's adapter, Qwen Code) from npm, for tests/e2e/real_agents.rs.
scripts/acp-agents.sh install
TETHER_ACP_AGENTS=$(scripts/acp-agents.sh path)
export TETHER_ACP_AGENTS

# The VS Code extension's own tests (its view model and forms), under node, then the .vsix
# that tests/e2e/vscode.rs installs into code-server.
(cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error && npm run --silent compile && npm test \
    && npm run --silent package)

if [ "${TETHER_SKIP_LOCAL_MODEL:-0}" = 1 ]; then
    echo "test.sh: TETHER_SKIP_LOCAL_MODEL=1: skipping the local-model smoke tests" >&2
    exec cargo test --workspace -- --include-ignored --skip local_model::
fi

scripts/local-model.sh start
TETHER_LOCAL_MODEL_URL=$(scripts/local-model.sh url)
export TETHER_LOCAL_MODEL_URL
cargo test --workspace -- --include-ignored
