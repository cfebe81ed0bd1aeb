"""Benchmark: `sniffer sockets -tanp` against `ss -tanp` on 10,000 TCP sockets in one namespace.

Run as root: creates a network namespace, a process in it holding 5,000 loopback connections
(10,000 sockets) plus a listener, then times both commands side by side (whole process, wall
clock, alternating, median of N runs), and prints a Markdown table. `--write` replaces the
sockets section of docs/performance.md with it. The namespace is deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOLDER = r"""
import resource, socket, sys, time
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
listener = socket.socket()
listener.bind(("127.0.0.1", 7000))
listener.listen(4096)
keep = []
for _ in range(n // 2):
    client = socket.create_connection(("127.0.0.1", 7000))
    server, _ = listener.accept()
    keep += [client, server]
print("ready", flush=True)
time.sleep(3600)
"""


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sockets", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = ap.parse_args()
    # The console script next to this interpreter (a version manager's shim would add its own
    # start-up time to every run).
    beside = Path(sys.executable).with_name("sniffer")
    sniffer = str(beside) if beside.exists() else shutil.which("sniffer")
    if not sniffer:
        sys.exit("install sniffer first (pip install .)")
    ns = f"snf-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    holder = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        holder = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOLDER,
                                   str(args.sockets)], stdout=subprocess.PIPE, text=True)
        if holder.stdout.readline().strip() != "ready":
            sys.exit("the socket holder did not start")
        cmds = {"ss -tanp": ["ss", "-N", ns, "-tanp"],
                "sniffer sockets -tanp": [sniffer, "sockets", "-tanp", "--netns", ns]}
        for cmd in cmds.values():  # warm the page cache and the dentry cache
            timed(cmd)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                times[name].append(timed(cmd))
        lines = subprocess.run(cmds["ss -tanp"], capture_output=True, text=True).stdout
        count = len(lines.splitlines()) - 1
    finally:
        if holder is not None:
            holder.kill()
        subprocess.run(["ip", "netns", "del", ns])
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["sniffer sockets -tanp"] / med["ss -tanp"]
    ss_version = subprocess.run(["ss", "--version"], capture_output=True, text=True).stdout.strip()
    table = [
        f"Measured {datetime.date.today()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}, {ss_version}. "
        f"{count} TCP sockets in one namespace; whole process, wall clock, median of "
        f"{args.runs} alternating runs, output to /dev/null.",
        "",
        "| command | median | min | max |",
        "|---|---|---|---|",
    ]
    for name, v in times.items():
        table.append(f"| `{name}` | {med[name] * 1000:.0f} ms | {min(v) * 1000:.0f} ms | "
                     f"{max(v) * 1000:.0f} ms |")
    table += ["", f"Ratio sniffer / ss: **{ratio:.2f}x** (goal: at most 2x)."]
    text = "\n".join(table)
    print(text)
    if args.write:
        path = ROOT / "docs" / "performance.md"
        body = path.read_text() if path.exists() else "# Performance\n"
        start, end = "<!-- sockets-bench -->", "<!-- /sockets-bench -->"
        block = f"{start}\n{text}\n{end}"
        if start in body:
            body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
        else:
            body = body.rstrip() + "\n\n## `sniffer sockets` against `ss`\n\n" + block + "\n"
        path.write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
