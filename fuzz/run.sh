#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after another (never two at once).
#
#   fuzz/run.sh [SECONDS [TARGET...]]   # default 60 s, every target; works from any directory
#
# Prints one line per target with the executions run. Exits non-zero if any target finds a
# crash, a timeout or an out-of-memory; the input is copied to fuzz/regressions/<target>/,
# where `cargo test` (tests/fuzz_regressions.rs) replays it on stable: commit it with the fix.
set -u -o pipefail

secs="${1:-60}"
shift $(($# > 0 ? 1 : 0))
only=("$@")
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS [TARGET...]]" >&2
    exit 2
    ;;
esac

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cat >&2 <<'MSG'
run.sh: cargo-fuzz is not installed. Install it and a nightly toolchain with
    rustup toolchain install nightly
    cargo install cargo-fuzz
then run this script again.
MSG
    exit 2
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi

# target  -max_len  -malloc_limit_mb
# The connection targets use limits of at most 2 KiB, so any allocation near the malloc
# limit means a length was trusted before it was checked. inflate also holds zlib-rs
# compressors and inflaters (up to ~400 KiB per connection, several connections per input).
# tls_session moves up to 4 MB of application data through two sessions per input, in
# 20 KB sends and reads of up to 64 KiB.
targets=(
    "frame_header 64 256"
    "server_connection 4096 64"
    "client_connection 4096 64"
    "handshake_request 4098 64"
    "handshake_response 4098 64"
    "inflate 4096 256"
    "primitives 4096 64"
    "tls_session 4096 256"
)

names=()
for spec in "${targets[@]}"; do names+=("${spec%% *}"); done
for name in "${only[@]}"; do
    if [[ " ${names[*]} " != *" $name "* ]]; then
        echo "run.sh: no fuzz target named $name (there are: ${names[*]})" >&2
        exit 2
    fi
done

cd "$root" || exit 2
# The same flags for build and run, so `run` does not rebuild.
build_flags=(--fuzz-dir "$fuzz_dir" -O -a)

echo "building fuzz targets (nightly)..."
if ! cargo +nightly fuzz build "${build_flags[@]}"; then
    echo "run.sh: cargo +nightly fuzz build failed" >&2
    exit 2
fi

logs="$fuzz_dir/target/logs"
failed=0
for spec in "${targets[@]}"; do
    read -r target max_len malloc_mb <<<"$spec"
    if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $target "* ]]; then
        continue
    fi
    # New inputs go to a scratch corpus (first directory); the committed seeds are read only.
    work="$fuzz_dir/target/corpus/$target"
    seeds="$fuzz_dir/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    mkdir -p "$work" "$seeds" "$artifacts" "$logs"
    log="$logs/$target.log"
    before="$(ls -1 "$artifacts" 2>/dev/null | sort)"

    cargo +nightly fuzz run "${build_flags[@]}" "$target" "$work" "$seeds" -- \
        -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=1024 \
        -malloc_limit_mb="$malloc_mb" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    status=$?

    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    new="$(comm -13 <(echo "$before") <(ls -1 "$artifacts" 2>/dev/null | sort) | grep -v '^$' || true)"
    if [ "$status" -eq 0 ] && [ -z "$new" ]; then
        printf '%-20s ok      %12s execs in %ss\n' "$target" "${execs:-?}" "$secs"
        continue
    fi
    failed=1
    printf '%-20s FAILED  %12s execs (exit %s), log %s\n' "$target" "${execs:-?}" "$status" "$log"
    mkdir -p "$fuzz_dir/regressions/$target"
    for file in $new; do
        cp "$artifacts/$file" "$fuzz_dir/regressions/$target/$file"
        echo "    kept $file in fuzz/regressions/$target/ (replayed by cargo test; commit it)"
    done
    grep -m 5 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /'
done
exit "$failed"
