#!/usr/bin/env bash
# The load scenarios (a b c d idle, below) against `rfc6455 echo`, server pinned to core 0,
# load tool to core 1.
# Prints each run's summary plus the CPU seconds each process used during it (from
# /proc/PID/stat and /usr/bin/time), so a run where the load tool, not the server, saturates
# its core shows up. Usage: benches/load.sh [scenario...]   (default: a b c d idle)
#
# BIN picks the rfc6455 binary (default target/release/rfc6455), e.g. an older build for an A/B.
# SERVER_ARGS / TOOL_ARGS add options to the server / the load tool, e.g.
#   SERVER_ARGS="--tcp-congestion reno" benches/load.sh d
# Two more scenarios measure the floor under c (examples/tcp_floor.rs, built here):
#   floor     a plain TCP echo and client with c's traffic, no WebSocket at all
#   wsclient  rfc6455 echo driven by a client that costs only its syscalls
# and two the fan-out of one room, each against a server of its own (also on core 0):
#   broadcast `rfc6455 echo --broadcast --threads 1`: 1,000 connections, one publisher,
#             64 B, depth 1
#   broadcast10k   the same with 10,000 connections
#   broadcast16k   100 connections, 16 KiB binary messages
#   broadcast2     broadcast with `--threads 2` (both loops share core 0 with nothing else)
#   serve     the same through `rfc6455 serve --threads 1` and its JSON protocol (one room,
#             `load --serve`), its limits opened for a benchmark; serve's deliveries/s over
#             broadcast's is its fan-out cost: `benches/load.sh broadcast serve`
# and one that compares tokio WebSocket servers side by side in one run:
#   peers     examples/tokio_echo (rfc6455::tokio), benches/peers/tokio-tungstenite-echo and
#             benches/peers/fastwebsockets-echo (each a current-thread runtime, all built here
#             on demand with the same release profile, all on core 0 beside the mio echo),
#             scenario by scenario: PEER_SCENARIOS (default "a b c d idle") against each of
#             the four servers in turn, so a change in the machine's load hits all of them
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/rfc6455}
PORT=${PORT:-9001}
URL=ws://127.0.0.1:$PORT/
D=${D:-5}
W=${W:-1}
ulimit -n 20000

SERVER_ARGS=${SERVER_ARGS:-}
TOOL_ARGS=${TOOL_ARGS:-}
FLOOR=target/release/examples/tcp_floor
for tool in bc /usr/bin/time taskset; do
    command -v $tool >/dev/null || { echo "load.sh needs $tool (Debian: bc, time, util-linux)" >&2; exit 2; }
done
[ -x $BIN ] || { echo "load.sh: no $BIN; run cargo build --release first" >&2; exit 2; }
SERVER_LOG=$(mktemp)
taskset -c 0 $BIN echo --listen 127.0.0.1:$PORT --threads 1 --max-connections 20000 $SERVER_ARGS >/dev/null 2>"$SERVER_LOG" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -f "$SERVER_LOG"' EXIT
sleep 0.5
kill -0 $SERVER 2>/dev/null || { echo "load.sh: the echo server did not start:" >&2; cat "$SERVER_LOG" >&2; exit 2; }

# CPU seconds (utime + stime, USER_HZ=100) of process $1, the echo server by default.
cpu() { awk '{print ($14 + $15) / 100}' /proc/${1:-$SERVER}/stat; }

# Runs the load tool against $TARGET (default: the echo server at $URL, process $PID).
run() {
    local name=$1; shift
    local url=${TARGET:-$URL} pid=${PID:-$SERVER}
    echo "== $name: $BIN load $url $*"
    local before; before=$(cpu $pid)
    /usr/bin/time -f "load tool CPU: %U s user + %S s system over %e s" \
        taskset -c 1 $BIN load "$url" "$@" $TOOL_ARGS 2>&1 | grep -v '^ *[0-9.]*s ' || true
    echo "server CPU: $(echo "$(cpu $pid) - $before" | bc) s"
}

# Runs scenario $1 against a server of its own on core 0: `$BIN $2…` listening on port $3,
# WebSocket path $4; the rest are the load tool's arguments.
run_own() {
    local name=$1 server=$2 port=$3 path=$4; shift 4
    local log; log=$(mktemp)
    # shellcheck disable=SC2086
    taskset -c 0 $BIN $server --listen 127.0.0.1:$port $SERVER_ARGS >/dev/null 2>"$log" &
    local pid=$!
    sleep 0.5
    if ! kill -0 $pid 2>/dev/null; then
        echo "load.sh: $BIN $server did not start:" >&2; cat "$log" >&2; rm -f "$log"; exit 2
    fi
    echo "== server: $BIN $server --listen 127.0.0.1:$port $SERVER_ARGS"
    TARGET=ws://127.0.0.1:$port$path PID=$pid run "$name" "$@"
    kill $pid; wait $pid 2>/dev/null || true
    rm -f "$log"
}

# One room, 1,000 members, one sender: the fan-out scenarios.
FANOUT="--broadcast -c 1000 --publishers 1 -s 64 --depth 1"
BENCH_LIMITS="--rate 1000000/s --burst 1000000 --max-per-ip 100000"

# The load tool's arguments for scenario $1 against server process $2.
args_of() {
    case $1 in
    a) echo "-c 100 -s 20 --depth 1 -d $D --warmup $W" ;;
    b) echo "-c 100 -s 20 --depth 16 -d $D --warmup $W" ;;
    c) echo "-c 10 -s 16384 --binary -d $D --warmup $W" ;;
    d) echo "-c 1 -s 1048576 --binary -d $D --warmup $W" ;;
    idle) echo "--idle -c 10000 -d $D --warmup 3 --server-pid $2" ;;
    esac
}

# Builds the tokio echo servers and runs PEER_SCENARIOS against them and the mio echo.
peers() {
    cargo build --release --example tokio_echo
    local p
    for p in tokio-tungstenite-echo fastwebsockets-echo; do
        (cd benches/peers/$p && CARGO_TARGET_DIR="$PWD/../../../target/peers" cargo build --release)
    done
    local names=(rfc6455-mio rfc6455-tokio tokio-tungstenite fastwebsockets)
    local bins=("" target/release/examples/tokio_echo target/peers/release/tokio-tungstenite-echo
        target/peers/release/fastwebsockets-echo)
    local pids=("$SERVER") urls=("$URL") i
    for i in 1 2 3; do
        local port=$((PORT + 10 + i))
        taskset -c 0 "${bins[$i]}" 127.0.0.1:$port >/dev/null 2>&1 &
        pids+=($!)
        urls+=("ws://127.0.0.1:$port/")
    done
    # shellcheck disable=SC2064
    trap "kill ${pids[*]:1} 2>/dev/null || true; kill $SERVER 2>/dev/null || true; rm -f '$SERVER_LOG'" EXIT
    sleep 0.5
    for i in 1 2 3; do
        kill -0 "${pids[$i]}" 2>/dev/null || { echo "load.sh: ${bins[$i]} did not start" >&2; kill "${pids[@]:1}"; exit 2; }
    done
    local s
    for s in ${PEER_SCENARIOS:-a b c d idle}; do
        for i in 0 1 2 3; do
            echo "== peer ${names[$i]} (pid ${pids[$i]})"
            # shellcheck disable=SC2046
            TARGET=${urls[$i]} PID=${pids[$i]} run "$s ${names[$i]}" $(args_of "$s" "${pids[$i]}")
            sleep 1
        done
    done
    kill "${pids[@]:1}" 2>/dev/null || true
}

[ $# -gt 0 ] || set -- a b c d idle
for s in "$@"; do
    case $s in
    a) run a -c 100 -s 20 --depth 1 -d "$D" --warmup "$W" ;;
    b) run b -c 100 -s 20 --depth 16 -d "$D" --warmup "$W" ;;
    c) run c -c 10 -s 16384 --binary -d "$D" --warmup "$W" ;;
    d) run d -c 1 -s 1048576 --binary -d "$D" --warmup "$W" ;;
    idle) run idle --idle -c 10000 -d "$D" --warmup 3 --server-pid $SERVER ;;
    broadcast)
        # shellcheck disable=SC2086
        run_own broadcast "echo --broadcast --threads 1 --max-connections 20000" \
            $((PORT + 2)) / $FANOUT -d "$D" --warmup "$W" ;;
    broadcast10k)
        # shellcheck disable=SC2086
        run_own broadcast10k "echo --broadcast --threads 1 --max-connections 20000" \
            $((PORT + 2)) / --broadcast -c 10000 --publishers 1 -s 64 --depth 1 -d "$D" --warmup "$W" ;;
    broadcast16k)
        # shellcheck disable=SC2086
        run_own broadcast16k "echo --broadcast --threads 1 --max-connections 20000" \
            $((PORT + 2)) / --broadcast -c 100 --publishers 1 -s 16384 --binary --depth 1 -d "$D" --warmup "$W" ;;
    broadcast2)
        # shellcheck disable=SC2086
        run_own broadcast2 "echo --broadcast --threads 2 --max-connections 20000" \
            $((PORT + 2)) / $FANOUT -d "$D" --warmup "$W" ;;
    serve)
        # shellcheck disable=SC2086
        RUST_LOG=warn run_own serve "serve --threads 1 $BENCH_LIMITS" \
            $((PORT + 3)) /ws $FANOUT --serve lobby -d "$D" --warmup "$W" ;;
    peers) peers ;;
    floor | wsclient)
        cargo build --release --example tcp_floor 2>/dev/null || cargo build --release --example tcp_floor
        target=127.0.0.1:$PORT
        if [ "$s" = floor ]; then
            taskset -c 0 $FLOOR server 127.0.0.1:$((PORT + 1)) & floor=$!
            target=127.0.0.1:$((PORT + 1))
            sleep 0.3
        fi
        echo "== $s: $FLOOR ${s/floor/client} $target 10 16384 $D"
        pid=$SERVER
        if [ "$s" = floor ]; then pid=$floor; fi
        before=$(cpu $pid)
        /usr/bin/time -f "client CPU: %U s user + %S s system over %e s" \
            taskset -c 1 $FLOOR ${s/floor/client} $target 10 16384 "$D" 2>&1
        echo "server CPU: $(echo "$(cpu $pid) - $before" | bc) s"
        if [ "$s" = floor ]; then kill $floor; fi
        ;;
    *) echo "unknown scenario $s (a b c d idle floor wsclient broadcast broadcast10k broadcast16k broadcast2 serve peers)"; exit 2 ;;
    esac
done
