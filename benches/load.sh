#!/usr/bin/env bash
# The scenarios of issue 8 against `rfc6455 echo`, server pinned to core 0, load tool to core 1.
# Prints each run's summary plus the CPU seconds each process used during it (from
# /proc/PID/stat and /usr/bin/time), so a run where the load tool, not the server, saturates
# its core shows up. Usage: benches/load.sh [scenario...]   (default: a b c d idle)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/rfc6455
PORT=${PORT:-9001}
URL=ws://127.0.0.1:$PORT/
D=${D:-5}
W=${W:-1}
ulimit -n 20000

taskset -c 0 $BIN echo --listen 127.0.0.1:$PORT --threads 1 --max-connections 20000 >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
sleep 0.5

cpu() { awk '{print ($14 + $15) / 100}' /proc/$SERVER/stat; }   # utime+stime, USER_HZ=100

run() {
    local name=$1; shift
    echo "== $name: $BIN load $URL $*"
    local before; before=$(cpu)
    /usr/bin/time -f "load tool CPU: %U s user + %S s system over %e s" \
        taskset -c 1 $BIN load "$URL" "$@" 2>&1 | grep -v '^ *[0-9.]*s '
    echo "server CPU: $(echo "$(cpu) - $before" | bc) s"
}

[ $# -gt 0 ] || set -- a b c d idle
for s in "$@"; do
    case $s in
    a) run a -c 100 -s 20 --depth 1 -d "$D" --warmup "$W" ;;
    b) run b -c 100 -s 20 --depth 16 -d "$D" --warmup "$W" ;;
    c) run c -c 10 -s 16384 --binary -d "$D" --warmup "$W" ;;
    d) run d -c 1 -s 1048576 --binary -d "$D" --warmup "$W" ;;
    idle) run idle --idle -c 10000 -d "$D" --warmup 3 --server-pid $SERVER ;;
    *) echo "unknown scenario $s (a b c d idle)"; exit 2 ;;
    esac
done
