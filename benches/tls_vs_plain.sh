#!/usr/bin/env bash
# TLS beside plain TCP in one run: one `rfc6455 echo --threads 1` pinned to core 0 listening
# both ways (--listen and --listen-tls), the load tool pinned to core 1, each scenario plain
# then TLS:
#   b c d    messages per second (LOAD.md's scenarios)
#   churn    new connections per second (`load --churn`: TCP, TLS, WebSocket handshakes, one
#            20-byte echo, close), TLS with session resumption and without (--no-resume)
#   idle     server memory per idle connection (`load --idle --server-pid`), each on a fresh
#            server so the figures do not include the other's leftovers
#
#   bash benches/tls_vs_plain.sh                 # everything, -d 3 --warmup 1 per run
#   D=1 W=0.5 bash benches/tls_vs_plain.sh churn # a quick look at one scenario
#
# Environment: D (seconds measured, default 3), W (warmup, default 1), C_CHURN (connections
# at once in churn, default 50), C_IDLE (idle connections, default 1000), BIN (default:
# target/release/rfc6455, built first). Certificates (a P-256 test CA and a leaf for
# localhost) are made with openssl in a temporary directory. Loopback only; every run is
# bounded and the servers are stopped whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${D:-3}
W=${W:-1}
C_CHURN=${C_CHURN:-50}
C_IDLE=${C_IDLE:-1000}
SCENARIOS=("${@:-b c d churn idle}")
read -r -a SCENARIOS <<<"${SCENARIOS[*]}"
if [[ -z ${BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --bin rfc6455 >&2)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rfc6455
fi
PLAIN=127.0.0.1:9401
TLS=127.0.0.1:9402

DIR=$(mktemp -d /tmp/tls-vs-plain.XXXXXX)
SERVER=
stop_server() {
    if [[ -n $SERVER ]]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        SERVER=
    fi
}
trap 'stop_server; rm -rf "$DIR"' EXIT

(
    cd "$DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=tls_vs_plain test CA" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout key.pem -out leaf.csr
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile leaf.ext -out cert.pem
) 2>/dev/null

start_server() {
    stop_server
    taskset -c 0 "$BIN" echo --listen "$PLAIN" --listen-tls "$TLS" --tls-cert "$DIR/cert.pem" \
        --tls-key "$DIR/key.pem" --threads 1 --max-connections 20000 >/dev/null 2>"$DIR/server.log" &
    SERVER=$!
    for _ in $(seq 50); do
        timeout 1 bash -c "exec 3<>/dev/tcp/${TLS%:*}/${TLS#*:}" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$DIR/server.log" >&2
    echo "the server did not start" >&2
    exit 1
}

# CPU seconds (utime + stime, USER_HZ=100) the server has used.
server_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$SERVER/stat"; }

# load NAME URL ARGS...: one bounded run of the load tool, its summary lines only, and the
# CPU seconds each side used in it (a side near its whole core for the run sets the pace).
load() {
    local name=$1 url=$2 before
    shift 2
    echo "== $name $url $*"
    before=$(server_cpu)
    timeout $((${D%.*} + ${W%.*} + 30)) /usr/bin/time -f "load tool CPU: %U s user + %S s system over %e s" \
        taskset -c 1 "$BIN" load "$url" --ca "$DIR/ca.pem" "$@" 2>&1 |
        grep -E '^(messages|new conns|latency|connections|errors|server|load tool CPU)|^ +[0-9]+ ×|e\.g\.' || true
    echo "server CPU: $(echo "$(server_cpu) - $before" | bc) s"
}

ulimit -n $((C_IDLE * 2 + 1000)) 2>/dev/null || true
for s in "${SCENARIOS[@]}"; do
    case $s in
    b) a=(-c 100 -s 20 --depth 16) ;;
    c) a=(-c 10 -s 16384 --binary) ;;
    d) a=(-c 1 -s 1048576 --binary) ;;
    churn) a=(--churn -c "$C_CHURN") ;;
    idle)
        start_server
        load "idle plain" "ws://localhost:${PLAIN#*:}/" --idle -c "$C_IDLE" -d "$D" --warmup "$W" --server-pid "$SERVER"
        start_server
        load "idle tls" "wss://localhost:${TLS#*:}/" --idle -c "$C_IDLE" -d "$D" --warmup "$W" --server-pid "$SERVER"
        stop_server
        continue
        ;;
    *)
        echo "unknown scenario $s (b c d churn idle)" >&2
        exit 2
        ;;
    esac
    start_server
    load "$s plain" "ws://localhost:${PLAIN#*:}/" "${a[@]}" -d "$D" --warmup "$W"
    load "$s tls" "wss://localhost:${TLS#*:}/" "${a[@]}" -d "$D" --warmup "$W"
    if [[ $s == churn ]]; then
        load "$s tls --no-resume" "wss://localhost:${TLS#*:}/" "${a[@]}" --no-resume -d "$D" --warmup "$W"
    fi
    grep VmRSS "/proc/$SERVER/status" || true
    stop_server
done
