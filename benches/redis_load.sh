#!/usr/bin/env bash
# `rfc6455 serve` with and without --redis under `rfc6455 load --broadcast --serve`: one room,
# C members (1,000), one sender, 64 B messages. Three setups, each twice (full speed with
# --depth 16, then a fixed --rate for latency):
#   local   one node, no Redis (the room's seq and fan-out in one process)
#   redis1  one node with --redis (what Redis alone costs)
#   redis2  two nodes with --redis, the members spread over both (what a second node costs)
# Each node runs one loop thread; Redis and the tool share the machine with them.
# Usage: benches/redis_load.sh [setup...]   (needs redis-server and a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/rfc6455
C=${C:-1000}
D=${D:-5}
RATE=${RATE:-200}
ulimit -n 20000
[ -x $BIN ] || { echo "no $BIN; run cargo build --release first" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "needs redis-server" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
REDIS=$!
PIDS=()
trap 'kill ${PIDS[@]:-} $REDIS 2>/dev/null || true' EXIT
sleep 0.5
SERVE="--threads 1 --rate 1000000/s --burst 1000000 --max-per-ip 20000 --max-connections 20000"

node() { # node PORT [args...]: starts a node, its pid in PIDS
    local port=$1; shift
    $BIN serve --listen 127.0.0.1:"$port" $SERVE "$@" >/dev/null 2>&1 &
    PIDS+=($!)
}

run() { # run LABEL load-args...
    local label=$1; shift
    echo "== $label"
    $BIN load "$@" --broadcast --serve bench -c "$C" -s 64 -d "$D" --warmup 1 2>&1 |
        grep -E '^(deliveries|published|integrity|latency|errors)'
}

[ $# -gt 0 ] || set -- local redis1 redis2
for setup in "$@"; do
    P1=$(free_port); P2=$(free_port)
    redis-cli -p "$RPORT" flushall >/dev/null
    case $setup in
    local) node "$P1"; ALSO=() ;;
    redis1) node "$P1" --redis redis://127.0.0.1:"$RPORT"; ALSO=() ;;
    redis2)
        node "$P1" --redis redis://127.0.0.1:"$RPORT"
        node "$P2" --redis redis://127.0.0.1:"$RPORT"
        ALSO=(--also "ws://127.0.0.1:$P2/ws")
        ;;
    *) echo "unknown setup $setup (local redis1 redis2)"; exit 2 ;;
    esac
    sleep 0.5
    run "$setup: full speed (--depth 16)" "ws://127.0.0.1:$P1/ws" "${ALSO[@]}" --depth 16
    run "$setup: $RATE msg/s" "ws://127.0.0.1:$P1/ws" "${ALSO[@]}" --rate "$RATE"
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
    PIDS=()
done
