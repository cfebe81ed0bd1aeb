"""Benchmark: is every short connection attributed to the right process? (issue 13)

Run as root, with the test extra installed (`pip install -e '.[test]'`): in two throw-away
network namespaces joined by a veth, `sniffer live --format json --alerts` watches A while real
servers and clients (each with a program name of its own) make, per run, 500 inbound and 500
outbound TCP connections, half closed by the client after one exchange and half by the server
right after its answer, and 200 UDP request/replies from fresh sockets (half inbound, half
outbound; connected and unconnected by turns), IPv4 and IPv6 alternating. Each connection's
record must say `attributed` and name exactly the right pid and program (A's server for
inbound, A's client for outbound), and no `ownerless-socket`, `unattributed-connection` or
`hidden-listener` alert may be raised.

Each run prints its totals (and a few failures, with their verdicts and evidence); the end, a
table per category and family over all runs. Exit status 1 if any run had a failure. The
workload and the checks are tests/attribkit.py's, which tests/test_attribution.py runs small
in CI. The namespaces are deleted after each run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANGES = {"runs": (1, 100), "tcp": (2, 5000), "udp": (2, 2000)}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2 (the project's rule)
        print(f"{self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def count(name: str):
    lo, hi = RANGES[name]

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{n} is out of range ({lo} to {hi})")
        return n
    return parse


def main() -> int:
    ap = Parser(prog="attrib_bench.py", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=count("runs"), default=10, metavar="N",
                    help="runs in a row (1 to 100; default 10)")
    ap.add_argument("--tcp", type=count("tcp"), default=500, metavar="N",
                    help="inbound TCP connections a run, and as many outbound (2 to 5000; "
                         "default 500)")
    ap.add_argument("--udp", type=count("udp"), default=200, metavar="N",
                    help="UDP request/replies a run, half each way (2 to 2000; default 200)")
    ap.add_argument("--keep", action="store_true",
                    help="keep each run's records and alerts (the directory is printed)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("attrib_bench.py: run as root: it creates network namespaces and a veth pair",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import attribkit
        from netnskit import can_run
    except ImportError as exc:
        print(f"attrib_bench.py: {exc}: install the test extra (pip install -e '.[test]')",
              file=sys.stderr)
        return 2
    if reason := can_run():
        print(f"attrib_bench.py: cannot run here: {reason}", file=sys.stderr)
        return 2

    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
          f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
          f"{platform.python_version()}: {args.runs} run(s) of {args.tcp} inbound + {args.tcp} "
          f"outbound TCP and {args.udp} UDP", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="snf-attrib-bench-"))
    runs = []
    try:
        for i in range(1, args.runs + 1):
            run = attribkit.run(tmp / f"run-{i}", tcp=args.tcp, udp=args.udp)
            runs.append(run)
            n = run.totals()
            print(f"run {i}/{args.runs}: {len(run.conns)} connections: {n['right']} right, "
                  f"{n['wrong']} wrong, {n['missing']} missing; {len(run.bad_alerts)} "
                  f"ownerless/unattributed/hidden-listener alerts ({run.seconds:.1f} s; "
                  f"{run.sniffer_summary.removeprefix('sniffer: ')})", flush=True)
            if not run.ok:
                print(run.examples(), flush=True)
    finally:
        if args.keep:
            print(f"records and alerts kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    overall = attribkit.Run([c for r in runs for c in r.conns],
                            [a for r in runs for a in r.bad_alerts])
    good = sum(r.ok for r in runs)
    print(f"\nall {len(runs)} run(s), per category and family:\n{overall.table()}")
    print(f"{good} of {len(runs)} run(s) with every connection attributed to the right pid and "
          f"program and none of those alerts")
    return 0 if good == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
