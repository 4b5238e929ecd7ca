#!/usr/bin/env bash
# The browser tests of `rfc6455 serve`: headless Chromium (chat.mjs, playwright-core) and headless
# Firefox (firefox.mjs, puppeteer-core over WebDriver BiDi) drive the page against the real server.
#
#   bash tests/browser/run.sh                       # builds target/debug/rfc6455 first
#   RFC6455_BIN=target/release/rfc6455 bash tests/browser/run.sh
#
# Idempotent: installs Debian's chromium and firefox-esr only when /usr/bin/chromium or
# /usr/bin/firefox-esr is missing, runs `npm ci` only when node_modules is missing or older than
# the lockfile. Runs both scripts whatever the first does and exits non-zero if either fails;
# each prints its own `N passed, M failed`, and the last line is the total of both in the same
# form. Screenshots land in tests/browser/out/. chat.mjs also runs serve over https:// and wss://
# with a test CA it makes with the openssl CLI (installed here when missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

if [[ ! -x /usr/bin/chromium ]]; then
    echo "# installing chromium (Debian's package)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if [[ ! -x /usr/bin/firefox-esr ]]; then
    echo "# installing firefox-esr (Debian's package)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y firefox-esr
fi

if ! command -v openssl >/dev/null; then
    echo "# installing openssl (Debian's package)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssl
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

# Runs one script, shows its output as it comes, and adds its `N passed, M failed` to the total;
# a script that fails without that line (it crashed) counts as one failure.
PASSED=0
FAILED=0
STATUS=0
run_script() {
    local script=$1 log rc line
    log=$(mktemp)
    set +e
    node "$HERE/$script" | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
    rm -f "$log"
    if [[ -n "$line" ]]; then
        PASSED=$((PASSED + ${line%% *}))
        line=${line#*, }
        FAILED=$((FAILED + ${line%% *}))
    fi
    if [[ $rc -ne 0 ]]; then
        STATUS=1
        [[ -n "$line" ]] || { FAILED=$((FAILED + 1)); echo "# $script exited with status $rc without a summary"; }
    fi
}

echo "# chat.mjs: Chromium"
run_script chat.mjs
echo "# firefox.mjs: Firefox"
run_script firefox.mjs
echo "# total of chat.mjs and firefox.mjs:"
echo "$PASSED passed, $FAILED failed"
exit $STATUS
