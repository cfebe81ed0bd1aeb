#!/usr/bin/env python3
"""Run `sniffer read --format zeek` on Zeek corpus pairs and show how the produced conn.log
differs from the expected one (the same comparison as tests/test_zeek_corpus.py).

    python tests/zeek_report.py                     # all core pairs
    python tests/zeek_report.py --scope encap       # encapsulation pairs
    python tests/zeek_report.py --scope all -q      # one line per pair
    python tests/zeek_report.py wikipedia-bare pop3-rej --keep /tmp/out

Exit status: 0 if every pair run matches completely, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zeekcorpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="*", metavar="PAIR", help="pair names (default: every pair of --scope)")
    ap.add_argument("--scope", choices=("core", "encap", "all"), default="core", help="default: core")
    ap.add_argument("--include-excluded", action="store_true",
                    help="also run pairs marked `exclude:` in their notes (always run when named)")
    ap.add_argument("-q", "--quiet", action="store_true", help="only the per-pair matched/total lines")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="show at most N differing rows per pair")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="pairs run in parallel (default 1)")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep produced logs in DIR/<pair>/conn.log")
    ap.add_argument("--timeout", type=float, default=zeekcorpus.DEFAULT_TIMEOUT, help="seconds per engine run")
    opts = ap.parse_args(argv)

    all_pairs = {p.name: p for p in zeekcorpus.load_pairs("all")}
    if opts.pairs:
        unknown = [n for n in opts.pairs if n not in all_pairs]
        if unknown:
            ap.error(f"unknown pair(s): {', '.join(unknown)} (see {zeekcorpus.CORPUS / 'MANIFEST.tsv'})")
        selected = [all_pairs[n] for n in opts.pairs]
        excluded: list = []
        scope = "selection"
    else:
        in_scope = [p for p in all_pairs.values() if opts.scope == "all" or p.scope == opts.scope]
        selected = [p for p in in_scope if opts.include_excluded or not p.exclude]
        excluded = [p for p in in_scope if p.exclude and p not in selected]
        scope = opts.scope

    with tempfile.TemporaryDirectory(prefix="zeek_report.") as tmp:
        base = opts.keep if opts.keep else Path(tmp)

        def run(pair):
            return zeekcorpus.evaluate(pair, base / pair.name, timeout=opts.timeout)

        width = max((len(p.name) for p in selected), default=10)
        outcomes = []
        with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            for o in pool.map(run, selected):
                outcomes.append(o)
                label = {"match": "ok", "mismatch": "MISMATCH", "engine-error": "ENGINE ERROR",
                         "bad-output": "BAD OUTPUT"}[o.status]
                note = f"  [excluded: {o.pair.exclude}]" if o.pair.exclude else ""
                print(f"{o.pair.name:<{width}}  {o.matched:>5}/{o.total:<5} {label}  ({o.seconds:.1f}s){note}",
                      flush=True)
                if not opts.quiet and not o.ok:
                    detail = zeekcorpus.format_outcome(o, opts.limit).split("\n", 1)
                    if len(detail) > 1:
                        print("\n".join("    " + line for line in detail[1].splitlines()), flush=True)
        for p in excluded:
            print(f"{p.name:<{width}}  excluded: {p.exclude}")
        print(zeekcorpus.summary_line(scope, outcomes, excluded))
        if opts.keep:
            print(f"produced logs kept under {opts.keep}/<pair>/conn.log")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
