#!/usr/bin/env bash
# Plain vs TLS, same server process (one loop thread pinned to core 0), load pinned to core 1.
set -u
BIN=/work/wttls/target/release/rfc6455
DIR=${DIR:-/tmp/tlsbench}
cd $DIR  # holds ca.pem, cert.pem, key.pem (a test CA and a leaf for localhost)
# certificates: ca.pem, cert.pem, key.pem made beforehand
taskset -c 0 $BIN echo --listen 127.0.0.1:9401 --listen-tls 127.0.0.1:9402 --tls-cert cert.pem --tls-key key.pem --threads 1 --max-connections 20000 >/dev/null 2>server.log &
S=$!
sleep 0.5
run() { name=$1; url=$2; shift 2
  echo "== $name $url"
  taskset -c 1 $BIN load "$url" --ca ca.pem "$@" 2>&1 | grep -E "msg/s|errors|p50|latency" | grep -v '^ *[0-9.]*s ' | tail -4
}
for s in b c d; do
  case $s in
    b) a=(-c 100 -s 20 --depth 16);;
    c) a=(-c 10 -s 16384 --binary);;
    d) a=(-c 1 -s 1048576 --binary);;
  esac
  run "$s plain" ws://localhost:9401/ "${a[@]}" -d ${D:-3} --warmup 1
  run "$s tls" wss://localhost:9402/ "${a[@]}" -d ${D:-3} --warmup 1
done
grep VmRSS /proc/$S/status
kill $S
