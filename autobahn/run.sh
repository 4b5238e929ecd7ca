#!/usr/bin/env bash
# Run the Autobahn|Testsuite against rfc6455 and check the results.
#
#   bash autobahn/run.sh server   # wstest fuzzingclient  -> our server (`rfc6455 echo`)
#   bash autobahn/run.sh client   # wstest fuzzingserver  -> our client (examples/autobahn_client)
#   bash autobahn/run.sh all      # both, one after the other
#   bash autobahn/run.sh server-tls    # fuzzingclient over wss:// -> `rfc6455 echo --tls-cert`
#                                      # (a certificate made with openssl), expected/servers.json
#   bash autobahn/run.sh tokio-server  # fuzzingclient -> examples/tokio_echo --deflate
#                                      # (rfc6455::tokio), expected/servers-tokio.json
#   bash autobahn/run.sh tokio-client  # fuzzingserver -> examples/tokio_client --autobahn
#                                      # (offers deflate), expected/clients-tokio.json
#   bash autobahn/run.sh install  # only install wstest (each mode does it first anyway)
#
# Environment (all optional):
#   RFC6455_CACHE           cache dir for the wstest virtualenv (default ~/.cache/rfc6455)
#   AUTOBAHN_PORT           port wstest / our server listen on (default 9001)
#   AUTOBAHN_CASES          comma-separated case patterns, e.g. '1.*,2.*,7.*' (default: all);
#                           only the cases that ran are compared with the expected file
#   AUTOBAHN_DEFLATE=1      add --deflate to the default server command; compared with
#                           expected/servers-deflate.json instead of expected/servers.json
#                           (the default client command always runs with --deflate)
#   AUTOBAHN_SERVER_CMD     server to test instead of `target/release/rfc6455 echo ...`
#                           (no cargo build then); must listen on 127.0.0.1:$AUTOBAHN_PORT
#   AUTOBAHN_CLIENT_CMD     client to test instead of `target/release/examples/autobahn_client
#                           ws://127.0.0.1:$AUTOBAHN_PORT rfc6455 --deflate` (no cargo build then)
#   AUTOBAHN_EXPECTED_DIR   where the expected results live (default autobahn/expected)
#   AUTOBAHN_UPDATE=1       rewrite the expected file from this run (summarize.py --update)
#   AUTOBAHN_TIMEOUT        seconds for one mode, build included (default 900; 1800 for the
#                           modes with permessage-deflate: client, and AUTOBAHN_DEFLATE=1)
#   AUTOBAHN_INSTALL_TIMEOUT  seconds for installing wstest when missing (default 1200)
#   AUTOBAHN_START_TIMEOUT  seconds to wait for a listener to accept (default 120)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

usage() {
    echo "usage: $0 server|server-tls|client|all|tokio-server|tokio-client|install" >&2
    exit 2
}

# run_child CMD...: run CMD in the background, pass INT/TERM on to it, return its status.
# (A foreground child would keep running if this shell were killed while waiting.)
run_child() {
    local child rc
    "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
    while :; do
        rc=0
        wait "$child" || rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    trap - INT TERM
    return "$rc"
}

MODE=${1:-}
case "$MODE" in
server | server-tls | client | install | tokio-server | tokio-client) ;;
all)
    rc=0
    run_child bash "$0" server || rc=$?
    if ((rc == 130 || rc == 143)); then exit "$rc"; fi # interrupted: stop here
    run_child bash "$0" client || rc=$?
    exit "$rc"
    ;;
*) usage ;;
esac

# Installing wstest (slow only the first time: it downloads) runs under its own timeout,
# then the whole mode under one timeout. timeout(1) runs the inner script in a process
# group of its own and signals that whole group on expiry or on INT/TERM (run_child passes
# them on), so nothing is left behind: not cargo, pip, wstest or the server.
if [[ -z ${AUTOBAHN_INNER:-} ]]; then
    INSTALL_TIMEOUT=${AUTOBAHN_INSTALL_TIMEOUT:-1200}
    # The deflate modes (client mode, AUTOBAHN_DEFLATE=1 servers) run 12.* and 13.*, which
    # are slow on wstest's side: twice the time.
    default_timeout=900
    if [[ $MODE == client || $MODE == tokio-* || ${AUTOBAHN_DEFLATE:-0} == 1 ]]; then
        default_timeout=1800
    fi
    TOTAL_TIMEOUT=${AUTOBAHN_TIMEOUT:-$default_timeout}
    rc=0
    AUTOBAHN_INNER=1 run_child timeout -k 30 "$INSTALL_TIMEOUT" bash "$0" install || rc=$?
    if ((rc == 124)); then
        echo "autobahn: installing wstest timed out after ${INSTALL_TIMEOUT}s (AUTOBAHN_INSTALL_TIMEOUT)" >&2
    fi
    if ((rc != 0)) || [[ $MODE == install ]]; then exit "$rc"; fi
    AUTOBAHN_INNER=1 run_child timeout -k 30 "$TOTAL_TIMEOUT" bash "$0" "$MODE" || rc=$?
    if ((rc == 124)); then
        echo "autobahn: $MODE mode timed out after ${TOTAL_TIMEOUT}s (AUTOBAHN_TIMEOUT)" >&2
    fi
    exit "$rc"
fi

HOST=127.0.0.1
PORT=${AUTOBAHN_PORT:-9001}
START_TIMEOUT=${AUTOBAHN_START_TIMEOUT:-120}
CACHE=${RFC6455_CACHE:-$HOME/.cache/rfc6455}
VENV=$CACHE/wstest-venv
WSTEST=$VENV/bin/wstest
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REPORTS=$HERE/reports
EXPECTED_DIR=${AUTOBAHN_EXPECTED_DIR:-$HERE/expected}

log() { printf 'autobahn: %s\n' "$*"; }
die() {
    printf 'autobahn: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- process bookkeeping

PIDS=()

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

# Another process on the port would answer in our place: refuse to start.
ensure_port_free() {
    if port_open; then
        die "something already listens on $HOST:$PORT; stop it or set AUTOBAHN_PORT"
    fi
}

# wait_for_port PID NAME LOGFILE: until $HOST:$PORT accepts, while PID lives.
wait_for_port() {
    local pid=$1 name=$2 logfile=$3 deadline=$((SECONDS + START_TIMEOUT))
    until port_open; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            die "$name exited before listening on $HOST:$PORT (log: $logfile)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$logfile" >&2 || true
            die "$name did not accept on $HOST:$PORT within ${START_TIMEOUT}s (log: $logfile)"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- wstest

# The marker is written once wstest imports; checking it is instant, while importing
# Twisted can take many seconds on a busy machine.
ensure_wstest() {
    local marker=$VENV/.rfc6455-wstest-ok
    if [[ -x $WSTEST && -f $marker ]]; then
        return 0
    fi
    if [[ -x $WSTEST ]] && "$VENV/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
        touch "$marker"
        return 0
    fi
    log "installing wstest into $VENV"
    local pyenv_root py27
    if command -v pyenv >/dev/null 2>&1; then
        pyenv_root=$(pyenv root)
    else
        pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    fi
    py27=$pyenv_root/versions/2.7.18/bin/python
    [[ -x $py27 ]] || die "wstest needs Python 2.7.18 from pyenv, not found at $py27 (pyenv install 2.7.18)"
    if ! "$py27" -c 'import virtualenv' 2>/dev/null; then
        "$py27" -m pip install --quiet --disable-pip-version-check 'virtualenv<20.22'
    fi
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    "$py27" -m virtualenv --quiet "$VENV"
    if ! "$VENV/bin/pip" install --progress-bar off --disable-pip-version-check autobahntestsuite; then
        rm -rf "$VENV"
        die "pip install autobahntestsuite failed"
    fi
    "$VENV/bin/python" -c 'import autobahntestsuite' || {
        rm -rf "$VENV"
        die "autobahntestsuite installed but does not import"
    }
    touch "$marker"
    log "wstest installed: $WSTEST"
}

# write_spec SRC [SCHEME]: print the spec to use, applying AUTOBAHN_PORT / AUTOBAHN_CASES and
# the URL scheme (ws by default, wss for server-tls) to a copy.
write_spec() {
    local src=$1 scheme=${2:-ws} dst
    if [[ $PORT == 9001 && -z ${AUTOBAHN_CASES:-} && $scheme == ws ]]; then
        echo "$src"
        return
    fi
    dst=$REPORTS/$(basename "$src" .json).effective.json
    python3 - "$src" "$dst" "$PORT" "${AUTOBAHN_CASES:-}" "$scheme" <<'EOF'
import json, sys
src, dst, port, cases, scheme = sys.argv[1:]
spec = json.load(open(src))
url = "%s://127.0.0.1:%s" % (scheme, port)
if "servers" in spec:
    for s in spec["servers"]:
        s["url"] = url
else:
    spec["url"] = url
if cases:
    spec["cases"] = [c.strip() for c in cases.split(",") if c.strip()]
json.dump(spec, open(dst, "w"), indent=2)
EOF
    echo "$dst"
}

# summarize KIND EXPECTED [--deflate]
summarize() {
    local kind=$1 expected=$2
    local args=("$kind" --reports "$REPORTS" --expected "$expected" "${@:3}")
    [[ -n ${AUTOBAHN_CASES:-} ]] && args+=(--subset)
    [[ ${AUTOBAHN_UPDATE:-0} == 1 ]] && args+=(--update)
    python3 "$HERE/summarize.py" "${args[@]}"
}

# ---------------------------------------------------------------- modes

# server-tls: a self-signed certificate for 127.0.0.1 in reports/tls/ (made once; wstest does
# not verify the server's certificate, it only needs TLS: pyOpenSSL and service_identity come
# with autobahntestsuite's dependencies, pyOpenSSL 19.1.0 and service-identity 18.1.0 on
# Python 2.7.18).
make_cert() {
    local dir=$REPORTS/tls
    [[ -s $dir/cert.pem && -s $dir/key.pem ]] && return 0
    command -v openssl >/dev/null 2>&1 || die "server-tls needs the openssl command"
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || die "openssl could not make a certificate"
}

run_server_mode() {
    local cmd spec rc=0 server_pid wstest_pid server_log=$REPORTS/server.log
    local wstest_log=$REPORTS/wstest-fuzzingclient.log expected=$EXPECTED_DIR/servers.json
    local deflate=() scheme=ws
    if [[ $MODE == server-tls ]]; then
        scheme=wss
        make_cert
    fi
    if [[ -n ${AUTOBAHN_SERVER_CMD:-} ]]; then
        cmd=$AUTOBAHN_SERVER_CMD
    elif [[ $MODE == tokio-server ]]; then
        log "cargo build --release --example tokio_echo"
        (cd "$ROOT" && cargo build --release --example tokio_echo)
        cmd="$TARGET_DIR/release/examples/tokio_echo $HOST:$PORT --deflate"
        expected=$EXPECTED_DIR/servers-tokio.json
        deflate=(--deflate)
    else
        log "cargo build --release --bin rfc6455"
        (cd "$ROOT" && cargo build --release --bin rfc6455)
        cmd="$TARGET_DIR/release/rfc6455 echo --listen $HOST:$PORT"
        if [[ $MODE == server-tls ]]; then
            cmd+=" --tls-cert $REPORTS/tls/cert.pem --tls-key $REPORTS/tls/key.pem"
        fi
        if [[ ${AUTOBAHN_DEFLATE:-0} == 1 ]]; then
            cmd+=" --deflate"
            expected=$EXPECTED_DIR/servers-deflate.json
            deflate=(--deflate)
        fi
    fi

    rm -rf "$REPORTS/servers"
    spec=$(write_spec "$HERE/fuzzingclient.json" "$scheme")

    ensure_port_free # again: the build may have taken a while
    log "starting server: $cmd"
    bash -c "exec $cmd" >"$server_log" 2>&1 &
    server_pid=$!
    PIDS+=("$server_pid")
    wait_for_port "$server_pid" "server" "$server_log"

    log "wstest -m fuzzingclient -s $(basename "$spec") (log: $wstest_log)"
    local t0=$SECONDS
    (cd "$HERE" && exec "$WSTEST" -m fuzzingclient -s "$spec") >"$wstest_log" 2>&1 &
    wstest_pid=$!
    PIDS+=("$wstest_pid")
    wait "$wstest_pid" || rc=$?
    log "wstest finished in $((SECONDS - t0))s (exit $rc)"

    local crashed=0
    if ! kill -0 "$server_pid" 2>/dev/null; then
        crashed=1
        local status=0
        wait "$server_pid" 2>/dev/null || status=$?
        log "server exited during the run (status $status)"
        tail -n 30 "$server_log" >&2 || true
    fi
    cleanup
    if ((rc != 0)); then
        tail -n 30 "$wstest_log" >&2 || true
        die "wstest fuzzingclient failed (exit $rc)"
    fi
    if grep -q "^Connection to .* failed" "$wstest_log"; then
        grep "^Connection to .* failed" "$wstest_log" >&2
    fi

    rc=0
    summarize servers "$expected" "${deflate[@]}" || rc=$?
    ((crashed == 0)) || die "the server died during the run (log: $server_log)"
    return "$rc"
}

run_client_mode() {
    local cmd spec rc=0 wstest_pid client_pid client_log=$REPORTS/client.log
    local wstest_log=$REPORTS/wstest-fuzzingserver.log deflate=()
    local expected=$EXPECTED_DIR/clients.json
    if [[ -n ${AUTOBAHN_CLIENT_CMD:-} ]]; then
        cmd=$AUTOBAHN_CLIENT_CMD
    elif [[ $MODE == tokio-client ]]; then
        log "cargo build --release --example tokio_client"
        (cd "$ROOT" && cargo build --release --example tokio_client)
        # Offers permessage-deflate on every case, as the blocking client does.
        cmd="$TARGET_DIR/release/examples/tokio_client ws://$HOST:$PORT --autobahn rfc6455"
        expected=$EXPECTED_DIR/clients-tokio.json
        deflate=(--deflate)
    else
        log "cargo build --release --example autobahn_client"
        (cd "$ROOT" && cargo build --release --example autobahn_client)
        # --deflate offers permessage-deflate, so 12.* and 13.* test the client too.
        cmd="$TARGET_DIR/release/examples/autobahn_client ws://$HOST:$PORT rfc6455 --deflate"
        deflate=(--deflate)
    fi

    rm -rf "$REPORTS/clients"
    spec=$(write_spec "$HERE/fuzzingserver.json")

    ensure_port_free # again: the build may have taken a while
    # -u 0: no embedded web server (it would take port 8080).
    log "starting wstest -m fuzzingserver -s $(basename "$spec") (log: $wstest_log)"
    (cd "$HERE" && exec "$WSTEST" -m fuzzingserver -u 0 -s "$spec") >"$wstest_log" 2>&1 &
    wstest_pid=$!
    PIDS+=("$wstest_pid")
    wait_for_port "$wstest_pid" "wstest fuzzingserver" "$wstest_log"

    log "running client: $cmd (log: $client_log)"
    local t0=$SECONDS
    bash -c "exec $cmd" >"$client_log" 2>&1 &
    client_pid=$!
    PIDS+=("$client_pid")
    wait "$client_pid" || rc=$?
    log "client finished in $((SECONDS - t0))s (exit $rc)"
    cleanup
    if ((rc != 0)); then
        tail -n 30 "$client_log" >&2 || true
        log "client exited with status $rc"
    fi

    local src=0
    summarize clients "$expected" "${deflate[@]}" || src=$?
    ((rc == 0)) || die "the client failed (exit $rc, log: $client_log)"
    return "$src"
}

# ---------------------------------------------------------------- main

if [[ $MODE == install ]]; then
    ensure_wstest
    exit 0
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed for summarize.py"
if [[ ${AUTOBAHN_UPDATE:-0} == 1 && -n ${AUTOBAHN_CASES:-} ]]; then
    die "AUTOBAHN_UPDATE=1 needs the full suite; unset AUTOBAHN_CASES"
fi
mkdir -p "$REPORTS"
ensure_port_free
ensure_wstest

case "$MODE" in
server | server-tls | tokio-server) run_server_mode ;;
client | tokio-client) run_client_mode ;;
esac
