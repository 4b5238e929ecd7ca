#!/usr/bin/env python3
"""Prints the codec bench results from target/criterion as a Markdown table.

Usage: python3 benches/table.py [target/criterion]
Each cell is the median throughput criterion estimated (payload bytes per second).
"""
import json, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
SIZES = ["16B", "125B", "1KiB", "64KiB", "1MiB"]
SIZE_BYTES = {"16B": 16, "125B": 125, "1KiB": 1024, "64KiB": 65536, "1MiB": 1 << 20}
HEADERS = {"6B_len125": 6, "8B_len1KiB": 8, "14B_len1MiB": 14}


def median_ns(group, who, case):
    path = os.path.join(root, group, who, case, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def rate(nbytes, ns):
    if ns is None:
        return "–"
    bps = nbytes / (ns * 1e-9)
    if bps >= 1 << 30:
        return f"{bps / (1 << 30):.2f} GiB/s"
    return f"{bps / (1 << 20):.0f} MiB/s"


print("| group | case | rfc6455 | tungstenite | ours/theirs speed | memcpy | ours/memcpy time |")
print("|---|---|---|---|---|---|---|")
for group, cases in [
    ("header_parse", list(HEADERS)),
    ("mask", SIZES),
    ("utf8_ascii", SIZES),
    ("utf8_mixed", SIZES),
    ("recv_binary", SIZES),
    ("recv_text", SIZES),
]:
    for case in cases:
        n = HEADERS.get(case) or SIZE_BYTES[case]
        ours = median_ns(group, "rfc6455", case)
        theirs = median_ns(group, "tungstenite", case)
        mc = median_ns(group, "memcpy", case)
        ratio = f"{theirs / ours:.2f}×" if ours and theirs else "–"
        vs_mc = f"{ours / mc:.2f}×" if ours and mc else ""
        extra = f" ({ours:.1f} ns vs {theirs:.1f} ns)" if group == "header_parse" and ours and theirs else ""
        print(f"| {group} | {case} | {rate(n, ours)}{extra} | {rate(n, theirs)} | {ratio} | "
              f"{rate(n, mc) if mc else ''} | {vs_mc} |")
