#!/usr/bin/env bash
# The main job: builds tether, makes a git repository from fixtures/sample-repo, and runs a
# real session on it with `tether run`, streaming to the terminal.
#
# With OPENAI_API_KEY or ANTHROPIC_API_KEY set (or a `default_provider` in
# ~/.config/tether/config.toml) the session uses that; otherwise the local model (scripts/local-model.sh) is installed on first
# use, cached, and started.
#
#   scripts/demo.sh ["your prompt"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# TETHER_BUILD_PROFILE=debug reuses the test build (CI does, to save a release build).
profile=${TETHER_BUILD_PROFILE:-release}
cargo build --profile "$( [ "$profile" = debug ] && echo dev || echo "$profile" )" --quiet \
    --manifest-path "$root/Cargo.toml" --bin tether
tether="$root/target/$profile/tether"

work=$(mktemp -d "${TMPDIR:-/tmp}/tether-demo.XXXXXX")
repo="$work/sample-repo"
cp -R "$root/fixtures/sample-repo" "$repo"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name="Tether demo" -c user.email="demo@tether.invalid" \
    commit -q -m "Sample repository"

user_config="${XDG_CONFIG_HOME:-$HOME/.config}/tether/config.toml"
if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${ANTHROPIC_API_KEY:-}" ] \
    && ! grep -qs '^default_provider' "$user_config"; then
    "$root/scripts/local-model.sh" start
    TETHER_LOCAL_MODEL_URL=$("$root/scripts/local-model.sh" url)
    export TETHER_LOCAL_MODEL_URL
fi

# Tools arrive with the agent engine; until then the model gets the code in the prompt.
default_prompt="Here is calc/ops.py from this repository:

$(cat "$repo/calc/ops.py")

Which function has a bug? Answer in two sentences."
prompt=${1:-$default_prompt}

echo "demo repository: $repo" >&2
exec "$tether" run --repo "$repo" "$prompt"
