#!/usr/bin/env bash
# The browser test of `rfc6455 serve`: headless Chromium drives the page against the real server.
#
#   bash tests/browser/run.sh                       # builds target/debug/rfc6455 first
#   RFC6455_BIN=target/release/rfc6455 bash tests/browser/run.sh
#
# Idempotent: installs Debian's chromium only when /usr/bin/chromium is missing, runs `npm ci`
# only when node_modules is missing or older than the lockfile. Exits non-zero on any failure;
# the last line is the test's `N passed, M failed`. Screenshots land in tests/browser/out/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

if [[ ! -x /usr/bin/chromium ]]; then
    echo "# installing chromium (Debian's package)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "# installing node and npm (Debian's packages)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi

if [[ ! -d "$HERE/node_modules" || "$HERE/package-lock.json" -nt "$HERE/node_modules" ]]; then
    echo "# npm ci in tests/browser"
    (cd "$HERE" && npm ci --no-audit --no-fund)
    touch "$HERE/node_modules"
fi

if [[ -z "${RFC6455_BIN:-}" ]]; then
    echo "# cargo build --bin rfc6455"
    cargo build --bin rfc6455
    RFC6455_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rfc6455"
fi
export RFC6455_BIN

node "$HERE/chat.mjs"
