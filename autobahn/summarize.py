#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite run and compare it with the committed expectations.

    python3 autobahn/summarize.py servers            # reports/servers/index.json
    python3 autobahn/summarize.py clients --update   # rewrite expected/clients.json

Exit status: 0 when every case is acceptable and the per-case results equal the
expected file; 1 otherwise; 2 when the report cannot be read.

Acceptable: OK and INFORMATIONAL everywhere, UNIMPLEMENTED only in 12.* and 13.*
(permessage-deflate) and only without --deflate (the testee was run without it), and the
closing behavior "FAILED BY CLIENT" (wstest had to drop the TCP connection itself;
Autobahn rates it "almost" OK). Everything else fails: FAILED, NON-STRICT, WRONG CODE,
UNCLEAN, UNIMPLEMENTED outside 12/13 or with --deflate, and anything unknown, in either
`behavior` or `behaviorClose`.
"""

import argparse
import json
import os
import sys
from collections import Counter, OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))

SECTIONS = OrderedDict(
    [
        ("1", "Framing"),
        ("2", "Pings/Pongs"),
        ("3", "Reserved Bits"),
        ("4", "Opcodes"),
        ("5", "Fragmentation"),
        ("6", "UTF-8 Handling"),
        ("7", "Close Handling"),
        ("9", "Limits/Performance"),
        ("10", "Misc"),
        ("12", "WebSocket Compression (different payloads)"),
        ("13", "WebSocket Compression (different parameters)"),
    ]
)
DEFLATE_SECTIONS = ("12", "13")

BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CLOSE_BEHAVIORS = ["OK", "INFORMATIONAL", "FAILED BY CLIENT", "WRONG CODE", "UNCLEAN", "FAILED"]
ALWAYS_FINE = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def section_of(case_id):
    return case_id.split(".", 1)[0]


def problems(case_id, res, deflate=False):
    """Why this case fails the run (empty list: acceptable). `deflate`: the testee offers or
    accepts permessage-deflate, so 12.* and 13.* must not be UNIMPLEMENTED."""
    out = []
    for field in ("behavior", "behaviorClose"):
        value = res.get(field)
        if value in ALWAYS_FINE:
            continue
        if field == "behaviorClose" and value == "FAILED BY CLIENT":
            continue
        if value == "UNIMPLEMENTED" and section_of(case_id) in DEFLATE_SECTIONS and not deflate:
            continue
        out.append("%s=%s" % (field, value))
    return out


def is_ok(res):
    return res.get("behavior") == "OK" and res.get("behaviorClose") == "OK"


def load_json(path):
    with open(path) as f:
        return json.load(f, object_pairs_hook=OrderedDict)


def write_expected(path, results):
    """One case per line, in case order, so that diffs of the file read well."""
    ids = sorted(results, key=case_key)
    lines = []
    for i, cid in enumerate(ids):
        r = results[cid]
        entry = json.dumps(
            OrderedDict([("behavior", r["behavior"]), ("behaviorClose", r["behaviorClose"])])
        )
        lines.append('  %s: %s%s' % (json.dumps(cid), entry, "," if i + 1 < len(ids) else ""))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("{\n" + "\n".join(lines) + "\n}\n")
    os.replace(tmp, path)


def fmt_row(cols, widths):
    return "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cols, widths))
    )


def print_tables(results):
    by_section = OrderedDict((s, []) for s in SECTIONS)
    for cid in sorted(results, key=case_key):
        by_section.setdefault(section_of(cid), []).append(cid)

    head = ["Section", "Cases"] + BEHAVIORS + ["other"]
    chead = ["Section", "Cases"] + CLOSE_BEHAVIORS + ["other"]
    rows, crows = [], []
    total, ctotal = Counter(), Counter()
    for sec, ids in by_section.items():
        if not ids:
            continue
        name = "%s %s" % (sec, SECTIONS.get(sec, "(unknown section)"))
        b = Counter(results[c]["behavior"] for c in ids)
        cb = Counter(results[c]["behaviorClose"] for c in ids)
        other = sum(n for k, n in b.items() if k not in BEHAVIORS)
        cother = sum(n for k, n in cb.items() if k not in CLOSE_BEHAVIORS)
        rows.append([name, len(ids)] + [b[k] for k in BEHAVIORS] + [other])
        crows.append([name, len(ids)] + [cb[k] for k in CLOSE_BEHAVIORS] + [cother])
        total.update(b)
        ctotal.update(cb)
    n = len(results)
    rows.append(["Total", n] + [total[k] for k in BEHAVIORS] + [n - sum(total[k] for k in BEHAVIORS)])
    crows.append(
        ["Total", n] + [ctotal[k] for k in CLOSE_BEHAVIORS] + [n - sum(ctotal[k] for k in CLOSE_BEHAVIORS)]
    )

    for title, hdr, body in (("behavior", head, rows), ("behaviorClose", chead, crows)):
        widths = [max(len(str(r[i])) for r in [hdr] + body) for i in range(len(hdr))]
        print("By section, %s:" % title)
        print("  " + fmt_row(hdr, widths))
        for i, r in enumerate(body):
            if i == len(body) - 1:
                print("  " + "  ".join("-" * w for w in widths))
            print("  " + fmt_row(r, widths))
        print()
    return total, ctotal


def print_not_ok(results, verbose):
    """Every case that is not OK/OK. Runs of UNIMPLEMENTED in 12.*/13.* collapse to one
    line per section unless --verbose (there are 216 of them without deflate)."""
    not_ok = [c for c in sorted(results, key=case_key) if not is_ok(results[c])]
    if not not_ok:
        print("Every case is OK.")
        return
    print("Cases not OK (%d):" % len(not_ok))
    collapsed = Counter()
    for cid in not_ok:
        r = results[cid]
        if (
            not verbose
            and section_of(cid) in DEFLATE_SECTIONS
            and r["behavior"] == "UNIMPLEMENTED"
            and not problems(cid, r)
        ):
            collapsed[section_of(cid)] += 1
            continue
        why = problems(cid, r)
        mark = "FAIL" if why else "ok  "
        print(
            "  %s %-9s behavior=%-14s behaviorClose=%-17s remoteCloseCode=%s"
            % (mark, cid, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode"))
        )
    for sec, count in sorted(collapsed.items(), key=lambda kv: int(kv[0])):
        print("  ok   %s.*      %d cases UNIMPLEMENTED (permessage-deflate not negotiated)" % (sec, count))
    print()


def compare(results, expected, subset):
    """Lines describing each case whose (behavior, behaviorClose) differs."""
    diffs = []
    for cid in sorted(set(results) | set(expected), key=case_key):
        got = results.get(cid)
        want = expected.get(cid)
        if got is None:
            if not subset:
                diffs.append("  %-9s expected %s / %s, missing from this run"
                             % (cid, want["behavior"], want["behaviorClose"]))
            continue
        g = (got["behavior"], got["behaviorClose"])
        if want is None:
            diffs.append("  %-9s new case: %s / %s" % (cid, g[0], g[1]))
            continue
        w = (want.get("behavior"), want.get("behaviorClose"))
        if g != w:
            diffs.append("  %-9s expected %s / %s, got %s / %s" % (cid, w[0], w[1], g[0], g[1]))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["servers", "clients"], help="which report: servers (fuzzingclient) or clients (fuzzingserver)")
    ap.add_argument("--agent", default="rfc6455", help="agent name in the report (default rfc6455)")
    ap.add_argument("--reports", default=os.path.join(HERE, "reports"), help="reports dir (default autobahn/reports)")
    ap.add_argument("--expected", help="expected results file (default autobahn/expected/KIND.json)")
    ap.add_argument("--update", action="store_true", help="rewrite the expected file from this run")
    ap.add_argument("--subset", action="store_true",
                    help="only some cases ran: compare those, ignore the missing ones (no --update)")
    ap.add_argument("--deflate", action="store_true",
                    help="the testee ran with permessage-deflate: UNIMPLEMENTED in 12.*/13.* fails too")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every not-OK case, even 12.*/13.* UNIMPLEMENTED")
    args = ap.parse_args()

    if args.update and args.subset:
        ap.error("--update with --subset would write a partial expected file")
    expected_path = args.expected or os.path.join(HERE, "expected", args.kind + ".json")
    index = os.path.join(args.reports, args.kind, "index.json")
    if not os.path.exists(index):
        hint = (" (did the client call /updateReports?agent=%s at the end?)" % args.agent
                if args.kind == "clients" else "")
        print("summarize: %s not found%s" % (index, hint), file=sys.stderr)
        return 2
    try:
        report = load_json(index)
    except ValueError as e:
        print("summarize: cannot parse %s: %s" % (index, e), file=sys.stderr)
        return 2
    if args.agent not in report:
        print("summarize: agent %r not in %s (agents: %s)"
              % (args.agent, index, ", ".join(report) or "none"), file=sys.stderr)
        return 2
    results = report[args.agent]

    print("Autobahn %s report for agent %s: %d cases (%s)" % (args.kind, args.agent, len(results), index))
    print()
    total, ctotal = print_tables(results)
    print_not_ok(results, args.verbose)

    bad = {cid: problems(cid, r, args.deflate) for cid, r in results.items()}
    bad = {cid: why for cid, why in bad.items() if why}
    print(
        "SUMMARY %s: %d cases: %s | close: %s | %d failing"
        % (
            args.kind,
            len(results),
            ", ".join("%d %s" % (total[k], k) for k in BEHAVIORS + sorted(set(total) - set(BEHAVIORS)) if total[k]),
            ", ".join("%d %s" % (ctotal[k], k) for k in CLOSE_BEHAVIORS + sorted(set(ctotal) - set(CLOSE_BEHAVIORS)) if ctotal[k]),
            len(bad),
        )
    )

    status = 0
    if bad:
        print("FAIL: %d case(s) with an unacceptable result: %s"
              % (len(bad), ", ".join(sorted(bad, key=case_key))))
        status = 1

    if args.update:
        write_expected(expected_path, results)
        print("Updated %s (%d cases)." % (expected_path, len(results)))
    elif not os.path.exists(expected_path):
        print("FAIL: no expected results at %s yet; after checking the run, create it with --update "
              "(AUTOBAHN_UPDATE=1 bash autobahn/run.sh ...)" % expected_path)
        status = 1
    else:
        expected = load_json(expected_path)
        diffs = compare(results, expected, args.subset)
        if diffs:
            print("FAIL: %d case(s) differ from %s:" % (len(diffs), expected_path))
            print("\n".join(diffs))
            print("If the change is intended, rerun with --update (AUTOBAHN_UPDATE=1) and commit the file.")
            status = 1
        else:
            what = "the cases that ran" if args.subset else "all %d cases" % len(expected)
            print("Expected results match (%s, %s)." % (what, expected_path))
    return status


if __name__ == "__main__":
    sys.exit(main())
