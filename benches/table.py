#!/usr/bin/env python3
"""Prints the codec bench results as a Markdown table.

Usage: python3 benches/table.py [criterion-dir ...]   (default: target/criterion)

With several directories (e.g. copies of target/criterion from repeated runs) each cell
shows the range "min–max" of the runs' medians. Throughput is payload bytes per second (header
bytes for header_parse). "ours/theirs" is tungstenite's time over ours (> 1: ours faster);
"ours/memcpy" is our time over memcpy's time (the goal: "within 2x of memcpy").
"""
import json, os, sys

roots = sys.argv[1:] or ["target/criterion"]
SIZES = {"16B": 16, "125B": 125, "1KiB": 1024, "64KiB": 65536, "1MiB": 1 << 20}
HEADERS = {"6B_len125": 6, "8B_len1KiB": 8, "14B_len1MiB": 14}
GROUPS = [("header_parse", HEADERS)] + [
    (g, SIZES) for g in ["mask", "utf8_ascii", "utf8_mixed", "recv_binary", "recv_text"]
]


def median_ns(root, group, who, case):
    path = os.path.join(root, group, who, case, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def rate(nbytes, ns):
    bps = nbytes / (ns * 1e-9)
    if bps >= 1 << 30:
        return bps / (1 << 30), "GiB/s"
    return bps / (1 << 20), "MiB/s"


def rng(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    return fmt(lo) if len(values) == 1 or fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def rates(nbytes, times):
    times = [t for t in times if t is not None]
    if not times:
        return ""
    unit = rate(nbytes, min(times))[1]
    scale = (1 << 30) if unit == "GiB/s" else (1 << 20)
    vals = [nbytes / (t * 1e-9) / scale for t in times]
    digits = 2 if unit == "GiB/s" else 0
    return rng(vals, lambda v: f"{v:.{digits}f}") + " " + unit


print("| group | case | rfc6455 | tungstenite | ours/theirs (speed) | memcpy | ours/memcpy (time) |")
print("|---|---|---|---|---|---|---|")
for group, cases in GROUPS:
    for case, n in cases.items():
        ours = [median_ns(r, group, "rfc6455", case) for r in roots]
        theirs = [median_ns(r, group, "tungstenite", case) for r in roots]
        mc = [median_ns(r, group, "memcpy", case) for r in roots]
        ratio = rng([t / o for o, t in zip(ours, theirs) if o and t], lambda v: f"{v:.2f}×")
        vs_mc = rng([o / m for o, m in zip(ours, mc) if o and m], lambda v: f"{v:.2f}×")
        o_cell = rates(n, ours)
        if group == "header_parse":
            o_cell += " (" + rng(ours, lambda v: f"{v:.1f}") + " ns)"
            t_cell = rates(n, theirs) + " (" + rng(theirs, lambda v: f"{v:.1f}") + " ns)"
        else:
            t_cell = rates(n, theirs)
        print(f"| {group} | {case} | {o_cell} | {t_cell} | {ratio} | {rates(n, mc)} | {vs_mc} |")
