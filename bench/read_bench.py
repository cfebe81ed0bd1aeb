"""Benchmark: `sniffer read` against tshark, tcptrace and scapy on the same synthetic captures.

    python bench/read_bench.py [--packets 1000000] [--runs 3] [--write]

Generates (once, cached in --dir) the captures with bench/gen_capture.py: the realistic mix at
200k and 1M packets and a 2M-packet SYN flood, then runs every tool on each: one warm-up each,
then --runs rounds, each round running every (capture, tool) pair once in turn, and takes the
medians (so the machine's drift weighs on every pair alike). Each run is one whole process,
measured with wait4(2): wall clock, CPU time (user + system) and peak RSS. Tools that are not
installed are skipped, and the table says so. `--write` puts the table, with the machine, the
versions and the date, into docs/performance.md between the read-bench markers.

What each tool does (all read the same file from the page cache):
* sniffer: `sniffer read FILE --format zeek -o /dev/null`, default settings (checksums checked,
  full Zeek-parity TCP tracking), as installed beside this interpreter or from the source tree;
* tshark: `tshark -r FILE -q -z conv,tcp -z conv,udp` (its conversation table);
* tcptrace: `tcptrace -n -l FILE` (TCP only, no reverse DNS);
* scapy: PcapReader with full dissection and a 5-tuple dict (a 200k-packet prefix only: at
  about 8k packets/s a million takes minutes; its rate is what matters);
* sniffer --workers 2: the same as sniffer, sharded over two processes (sniffer.workers);
* cflow (C yardstick): ../shared/tools/cflow.c built with gcc -O2 at start (decode, IPv4 and
  TCP/UDP checksums, a flow table; no timers, history or records): not a peer, the compiled
  floor the Rust core is measured against (issue 14: same-run ratios only).

Set SNIFFER_BENCH_SOURCE=1 to run the source tree instead of the installed console script.
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- read-bench -->", "<!-- /read-bench -->"

SCAPY_FLOWS = r"""
import sys
from scapy.all import IP, IPv6, TCP, UDP, PcapReader
flows = {}
for p in PcapReader(sys.argv[1]):
    ip = p.getlayer(IP) or p.getlayer(IPv6)
    if ip is None:
        continue
    l4 = p.getlayer(TCP) or p.getlayer(UDP)
    sport, dport = (l4.sport, l4.dport) if l4 is not None else (0, 0)
    a, b = (ip.src, sport), (ip.dst, dport)
    key = (min(a, b), max(a, b), ip.getfieldval("proto") if ip.version == 4 else ip.nh)
    flows[key] = flows.get(key, 0) + 1
print(len(flows))
"""


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    stderr: str = ""


def measure(cmd: list[str]) -> Run:
    """One whole process: wall clock, user+system CPU and peak RSS (wait4's rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()[-500:]}")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, err)


def sniffer_cmd() -> list[str]:
    beside = Path(sys.executable).with_name("sniffer")
    if beside.exists() and os.environ.get("SNIFFER_BENCH_SOURCE") != "1":
        return [str(beside)]
    return [sys.executable, "-m", "sniffer"]  # the source tree (cwd is the repo root)


def tools() -> dict[str, tuple[list[str] | None, str]]:
    """name -> (command prefix before the file, or None when missing; why missing)."""
    out: dict[str, tuple[list[str] | None, str]] = {}
    out["sniffer"] = (sniffer_cmd() + ["read", "--format", "zeek", "-o", "/dev/null"], "")
    out["sniffer --workers 2"] = (sniffer_cmd() + ["read", "--format", "zeek", "-o",
                                                   "/dev/null", "--workers", "2"], "")
    # the Python engine (the reference the compiled one replaced), on the small mix only
    out["sniffer (Python engine)"] = (["env", "SNIFFER_ENGINE=python"] + out["sniffer"][0], "")
    tshark = shutil.which("tshark")
    out["tshark"] = (([tshark, "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r"], "")
                     if tshark else (None, "not installed"))
    tcptrace = shutil.which("tcptrace")
    out["tcptrace"] = (([tcptrace, "-n", "-l"], "") if tcptrace else (None, "not installed"))
    out["cflow (C yardstick)"] = cflow()
    try:
        import scapy  # noqa: F401
        out["scapy"] = ([sys.executable, "-c", SCAPY_FLOWS], "")
    except ImportError:
        out["scapy"] = (None, "not installed")
    return out


def cflow() -> tuple[list[str] | None, str]:
    """The minimal C flow tracker of ../shared/tools/cflow.c (decode, checksums, a flow table,
    no timers or history: the compiled floor, not a peer), built with gcc -O2 into a temporary
    directory: the yardstick issue 14's figures are ratios to."""
    shared = Path(os.environ.get("SNIFFER_SHARED", ROOT.parent / "shared"))
    src, gcc = shared / "tools" / "cflow.c", shutil.which("gcc")
    if not src.exists() or gcc is None:
        return None, f"needs gcc and {src}"
    import tempfile
    exe = Path(tempfile.mkdtemp(prefix="sniffer-bench-")) / "cflow"
    built = subprocess.run([gcc, "-O2", "-o", str(exe), str(src)], capture_output=True,
                           text=True)
    if built.returncode != 0:
        return None, f"gcc failed: {built.stderr.strip()[:200]}"
    return [str(exe)], ""


def version(name: str) -> str:
    cmds = {"tshark": ["tshark", "--version"], "tcptrace": ["tcptrace", "-v"]}
    if name == "sniffer":
        from sniffer import __version__
        return f"sniffer {__version__}, Python {platform.python_version()}"
    if name.startswith("cflow"):
        return "cflow.c (gcc -O2)"
    if name == "scapy":
        try:
            import scapy
            return f"scapy {scapy.VERSION}"
        except ImportError:
            return "scapy"
    try:
        r = subprocess.run(cmds[name], capture_output=True, text=True, timeout=10)
        text = (r.stdout or r.stderr).strip().splitlines()
        return text[0] if text else name
    except (OSError, subprocess.TimeoutExpired):
        return name


def generate(path: Path, packets: int, kind: str) -> Path:
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(path),
                        "--packets", str(packets), "--kind", kind], check=True)
    return path


def count_packets(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(24)
        n, head = 0, f.read(16)
        while len(head) == 16:
            caplen = int.from_bytes(head[8:12], "little")
            f.seek(caplen, 1)
            n += 1
            head = f.read(16)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sniffer-bench"))
    ap.add_argument("--write", action="store_true", help="update docs/performance.md")
    ap.add_argument("--only", action="append", default=[], help="run only these tools")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    small = max(args.packets // 5, 1)
    files = {
        f"mix {small // 1000}k": generate(args.dir / f"mix_{small}.pcap", small, "mix"),
        f"mix {args.packets // 1000}k": generate(args.dir / f"mix_{args.packets}.pcap",
                                                 args.packets, "mix"),
        "10 packets": generate(args.dir / "mix_10.pcap", 10, "mix"),
        f"SYN flood {2 * args.packets // 1000}k": generate(
            args.dir / f"synflood_{2 * args.packets}.pcap", 2 * args.packets, "synflood"),
    }
    available = tools()
    if args.only:
        available = {k: v for k, v in available.items() if k in args.only}
    rows = []
    notes: list[str] = []  # what sniffer said (the flood's evictions)
    for name, (cmd, why) in available.items():
        if cmd is None:
            rows.append(("all", name, None, why))
    # Every (capture, tool) pair is a job; the runs go round the jobs in turn, so the machine's
    # drift (2-3x over minutes here) weighs on every job alike, and the ratios between
    # captures (the flood's against the mix's) are as fair as those between tools.
    jobs = []
    for label, path in files.items():
        npk = count_packets(path)
        for name, (cmd, why) in available.items():
            if cmd is None:
                continue
            if name in ("scapy", "sniffer (Python engine)") and npk > small:
                continue  # the slow ones: the small file only (their rate is what matters)
            if name == "tcptrace" and label.startswith("SYN"):
                continue
            full = cmd + [str(path)]
            if name.startswith("cflow"):  # its fixed table must hold every flow of the file
                full = cmd + ["--cap", "22" if label.startswith("SYN") else "18", str(path)]
            if label.startswith("10 packets") and not name.startswith("sniffer"):
                continue
            jobs.append((label, name, npk, full))
    runs: dict[tuple[str, str], list[Run]] = {(label, name): [] for label, name, _, _ in jobs}
    for label, name, _, full in jobs:
        if name == "scapy":  # about 25 s a run: one run, its rate is what matters
            runs[label, name].append(measure(full))
        else:
            measure(full)  # warm-up: page cache, imports
    for _ in range(args.runs):
        for label, name, _, full in jobs:
            if name != "scapy":
                runs[label, name].append(measure(full))
    for label, name, npk, _ in jobs:
        done = runs[label, name]
        wall = statistics.median(r.wall for r in done)
        cpu = statistics.median(r.cpu for r in done)
        rss = max(r.rss_mb for r in done)
        rows.append((label, name, (npk, wall, cpu, rss), ""))
        if name == "sniffer" and "flows_evicted" in done[-1].stderr:
            notes.append(f"- sniffer on the {label}: "
                         + done[-1].stderr.strip().splitlines()[0].removeprefix("sniffer: "))
        print(f"{label:>16} {name:>9}: {npk / wall / 1e3:8.0f} k pkt/s wall, "
              f"{npk / cpu / 1e3:8.0f} k pkt/s CPU, {rss:6.0f} MB", flush=True)
    table = render(rows, args.runs) + ratios(rows, args.packets) + "".join(
        n + "\n" for n in notes)
    print(table)
    if args.write:
        doc = DOC.read_text()
        head, rest = doc.split(START + "\n", 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(head + START + "\n" + table + END + tail)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


def ratios(rows, packets: int) -> str:
    """Issue 14's same-run ratios: the compiled engine's rate on the big mix against cflow
    and tcptrace, the SYN flood's against the mix, the old engine's, and the 10-packet time."""
    rate = {(label, name): m[0] / m[1] for label, name, m, _ in rows if m is not None}
    wall = {(label, name): m[1] for label, name, m, _ in rows if m is not None}
    mix, flood = f"mix {packets // 1000}k", f"SYN flood {2 * packets // 1000}k"
    small = f"mix {max(packets // 5, 1) // 1000}k"
    lines = ["", "Ratios (same run, packets per second of wall clock):", ""]

    def add(text: str, a: tuple, b: tuple) -> None:
        if a in rate and b in rate:
            lines.append(f"- {text}: {rate[a] / rate[b]:.2f}x")

    add(f"sniffer / cflow, {mix}", (mix, "sniffer"), (mix, "cflow (C yardstick)"))
    add(f"sniffer / tcptrace, {mix}", (mix, "sniffer"), (mix, "tcptrace"))
    add(f"sniffer {flood} / sniffer {mix}", (flood, "sniffer"), (mix, "sniffer"))
    add(f"sniffer / the Python engine, {small}", (small, "sniffer"),
        (small, "sniffer (Python engine)"))
    if ("10 packets", "sniffer") in wall:
        lines.append(f"- `sniffer read` of a 10-packet capture: "
                     f"{wall[('10 packets', 'sniffer')] * 1000:.0f} ms, whole process")
    return "\n".join(lines) + "\n"


def render(rows, runs: int) -> str:
    order = ["sniffer", "sniffer --workers 2", "sniffer (Python engine)", "cflow (C yardstick)",
             "tcptrace", "tshark", "scapy"]
    names = [n for n in sorted({r[1] for r in rows}, key=order.index)
             if n not in ("sniffer --workers 2", "sniffer (Python engine)")]
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
               f"Python {platform.python_version()}")
    lines = [f"Measured {datetime.date.today()} on {machine}. Versions: "
             + "; ".join(version(n) for n in names) + ".",
             f"Whole process (start-up included), median of {runs} rounds over every capture and "
             "tool after a warm-up (scapy: one run); "
             "rates are packets per second of wall clock and of CPU time (user + system); "
             "peak RSS from wait4(2).", "",
             "| capture | tool | packets | wall | packets/s (wall) | packets/s (CPU) | peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for label, name, m, why in rows:
        if m is None:
            lines.append(f"| {label} | {name} | | | skipped: {why} | | |")
            continue
        npk, wall, cpu, rss = m
        lines.append(f"| {label} | {name} | {npk:,} | {wall:.2f} s | {npk / wall / 1e3:,.0f} k "
                     f"| {npk / cpu / 1e3:,.0f} k | {rss:,.0f} MB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
