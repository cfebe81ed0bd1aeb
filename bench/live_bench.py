"""Benchmark: the live capture (sniffer/capture/live.py) against tcpdump, dropping packets or not.

Run as root; needs `ip` (iproute2), `tcpdump` and `tcpreplay` (Debian/Ubuntu:
`apt-get install tcpdump tcpreplay`). It creates two namespaces joined by a veth pair (vA in
one, vB in the other, 10.99.0.1/.2), writes a deterministic 200,000-packet capture (TCP and UDP,
small and large, between those addresses), and replays it into vB with tcpreplay from the
second namespace while a reader in the first captures on vA:

- tcpdump `-w /dev/null` (its default 2 MiB buffer, and `-B 32768`, the ring size sniffer uses);
- a reader counting what `LiveCapture("vA")` yields (READER below: the place to put the real
  `sniffer live` once its loop is the thing to measure);

each with tcpreplay `--topspeed` and with `--pps=100000`. Reported: packets sent, the replay rate
tcpreplay measured, packets captured and the kernel's drop count (tcpdump's "dropped by
kernel"; PACKET_STATISTICS for the reader). The LiveCapture reader must drop nothing at
100,000 packets/s, or the script exits 1. The frames are addressed to a MAC that is not vA's, so
the namespace's IP stack discards them right after the capture instead of answering them:
capture is what is measured. `--write` puts the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import array
import datetime
import os
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
A4, B4 = bytes([10, 99, 0, 1]), bytes([10, 99, 0, 2])
DST_MAC, SRC_MAC = bytes.fromhex("02005e100001"), bytes.fromhex("02005e100002")
READER = r"""
import json, sys, threading, time
from sniffer.capture.live import LiveCapture
cap = LiveCapture("vA", buffer_size=int(sys.argv[1]))
count = 0
def quiesce():  # end of stdin: stop once nothing has arrived for 300 ms
    sys.stdin.read()
    seen = -1
    while seen != count:
        seen = count
        time.sleep(0.3)
    cap.stop()
threading.Thread(target=quiesce, daemon=True).start()
print("ready", flush=True)
cpu = time.process_time()
for _ in cap:
    count += 1
cpu = time.process_time() - cpu
print(json.dumps({"captured": count, "cpu": cpu, **cap.kernel_stats()}), flush=True)
cap.close()
"""


# ---------------------------------------------------------------------- the capture file

def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(array.array("H", data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF  # in host order, like the array: pack it with "=H"


_SEQ: dict[tuple[int, bool], int] = {}  # per flow and direction: the next sequence number


def _frame(rng: random.Random, i: int) -> bytes:
    """One of: TCP data (large), TCP ACK (small), UDP small (DNS-like), UDP large (media).

    TCP segments continue 64 sessions picked up midstream, each direction with its own
    running sequence number and acknowledging the other's, as a real capture shows them.
    """
    kind = rng.choices(("tcp_data", "tcp_ack", "udp_small", "udp_large"), (4, 3, 2, 1))[0]
    flow = rng.randrange(64)
    forward = rng.random() < 0.6
    src, dst = (B4, A4) if forward else (A4, B4)
    sport, dport = (40000 + flow, 443) if forward else (443, 40000 + flow)
    if kind.startswith("tcp"):
        size = rng.randrange(1000, 1461) if kind == "tcp_data" else 0
        payload = bytes([i & 0xFF]) * size
        seq = _SEQ.setdefault((flow, forward), 1000 + 7919 * flow)
        ack = _SEQ.setdefault((flow, not forward), 1000 + 7919 * flow)
        _SEQ[(flow, forward)] = (seq + size) & 0xFFFFFFFF
        l4 = struct.pack(">HHIIBBHHH", sport, dport, seq, ack,
                         5 << 4, 0x18 if size else 0x10, 502, 0, 0) + payload
        proto, coff = 6, 16
    else:
        sport, dport = (50000 + flow, 53 if kind == "udp_small" else 5004)
        size = rng.randrange(30, 120) if kind == "udp_small" else rng.randrange(1000, 1300)
        l4 = struct.pack(">HHHH", sport, dport, 8 + size, 0) + bytes([i & 0xFF]) * size
        proto, coff = 17, 6
    pseudo = src + dst + struct.pack(">BBH", 0, proto, len(l4))
    l4 = l4[:coff] + struct.pack("=H", _csum(pseudo + l4)) + l4[coff + 2:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), i & 0xFFFF, 0x4000, 64, proto, 0,
                     src, dst)
    ip = ip[:10] + struct.pack("=H", _csum(ip)) + ip[12:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + ip + l4


def write_pcap(path: Path, count: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    _SEQ.clear()
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        t = 1_700_000_000.0
        for i in range(count):
            frame = _frame(rng, i)
            t += 1e-5
            sec = int(t)
            f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)


# ---------------------------------------------------------------------- one run

def _netns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def replay(nsb: str, pcap: Path, speed: list[str]) -> tuple[int, float]:
    out = subprocess.run(_netns(nsb, "tcpreplay", *speed, "-i", "vB", str(pcap)),
                         capture_output=True, text=True, check=True).stdout
    sent = int(re.search(r"Actual: (\d+) packets", out).group(1))
    pps = float(re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out).group(1))
    return sent, pps


def run_tcpdump(nsa: str, nsb: str, pcap: Path, speed: list[str], extra: list[str]) -> dict:
    proc = subprocess.Popen(_netns(nsa, "tcpdump", "-i", "vA", "-n", "-w", "/dev/null", *extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        sys.exit(f"tcpdump did not start: {line}")
    sent, pps = replay(nsb, pcap, speed)
    time.sleep(1.5)  # libpcap's ring hands a partly filled block over after 1 s
    with open(f"/proc/{proc.pid}/stat") as f:  # `ip netns exec` execs tcpdump: same pid
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    num = {m.group(2): int(m.group(1)) for m in re.finditer(r"(\d+) packets? ([a-z ]+)", err)}
    return {"sent": sent, "pps": pps, "captured": num["captured"],
            "dropped": num["dropped by kernel"], "cpu": cpu}


def run_reader(nsa: str, nsb: str, pcap: Path, speed: list[str], ring_mib: int = 32) -> dict:
    proc = subprocess.Popen(_netns(nsa, sys.executable, "-c", READER, str(ring_mib << 20)),
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        sys.exit("the LiveCapture reader did not start")
    sent, pps = replay(nsb, pcap, speed)
    out = proc.communicate("", timeout=60)[0]
    import json
    res = json.loads(out.strip().splitlines()[-1])
    if res["received"] != res["captured"] + res["dropped"]:
        print(f"note: kernel received {res['received']}, captured {res['captured']} + dropped "
              f"{res['dropped']}", file=sys.stderr)
    return {"sent": sent, "pps": pps, "captured": res["captured"], "dropped": res["dropped"],
            "cpu": res["cpu"]}


def run_sniffer(nsa: str, nsb: str, pcap: Path, speed: list[str]) -> dict:
    """The whole `sniffer live` (capture, engine, kernel cross-reference), records discarded."""
    proc = subprocess.Popen(_netns(nsa, sys.executable, "-m", "sniffer", "live", "-i", "vA",
                                   "--format", "json", "-o", "/dev/null"),
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(2.0)  # start-up: imports, the first kernel snapshot
    sent, pps = replay(nsb, pcap, speed)
    time.sleep(2.0)  # let it drain its ring
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    m = re.search(r"(\d+) packets captured on \S+, (\d+) (?:dropped by the kernel|kernel drops)",
                  err)
    if m is None:
        sys.exit(f"sniffer live did not report: {err[-500:]}")
    return {"sent": sent, "pps": pps, "captured": int(m.group(1)), "dropped": int(m.group(2)),
            "cpu": cpu}


# ---------------------------------------------------------------------- main

def need() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces and a veth pair")
    missing = [t for t in ("ip", "tcpdump", "tcpreplay") if shutil.which(t) is None]
    if missing:
        pkgs = {"ip": "iproute2", "tcpdump": "tcpdump", "tcpreplay": "tcpreplay"}
        sys.exit(f"missing {', '.join(missing)}: apt-get install "
                 f"{' '.join(pkgs[m] for m in missing)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3, help="runs of each case (median reported)")
    ap.add_argument("--pps", type=int, default=100_000, help="the paced replay rate")
    ap.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = ap.parse_args()
    need()
    tag = uuid.uuid4().hex[:6]
    nsa, nsb = f"snf-lbA-{tag}", f"snf-lbB-{tag}"
    tmp = Path(tempfile.mkdtemp(prefix="snf-live-bench-"))
    pcap = tmp / "mix.pcap"
    t = time.perf_counter()
    write_pcap(pcap, args.packets)
    print(f"wrote {args.packets} packets ({pcap.stat().st_size >> 20} MiB) in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    top, paced = ["--topspeed"], [f"--pps={args.pps}"]
    cases = [
        ("tcpdump (2 MiB buffer)", "top speed", lambda: run_tcpdump(nsa, nsb, pcap, top, [])),
        ("tcpdump -B 32768", "top speed",
         lambda: run_tcpdump(nsa, nsb, pcap, top, ["-B", "32768"])),
        ("LiveCapture (32 MiB ring)", "top speed", lambda: run_reader(nsa, nsb, pcap, top)),
        ("LiveCapture (2 MiB ring)", "top speed", lambda: run_reader(nsa, nsb, pcap, top, 2)),
        ("tcpdump (2 MiB buffer)", f"{args.pps:,} pps",
         lambda: run_tcpdump(nsa, nsb, pcap, paced, [])),
        ("LiveCapture (32 MiB ring)", f"{args.pps:,} pps",
         lambda: run_reader(nsa, nsb, pcap, paced)),
        ("sniffer live", "top speed", lambda: run_sniffer(nsa, nsb, pcap, top)),
        ("sniffer live", f"{args.pps:,} pps", lambda: run_sniffer(nsa, nsb, pcap, paced)),
    ]
    if os.environ.get("SNIFFER_BENCH_ONLY"):
        cases = [c for c in cases if c[0].startswith(os.environ["SNIFFER_BENCH_ONLY"])]
    results: dict[tuple[str, str], list[dict]] = {(c[0], c[1]): [] for c in cases}
    try:
        subprocess.run(["ip", "netns", "add", nsa], check=True)
        subprocess.run(["ip", "netns", "add", nsb], check=True)
        subprocess.run(["ip", "link", "add", "vA", "netns", nsa, "type", "veth", "peer", "name",
                        "vB", "netns", nsb], check=True)
        for ns, dev, addr in ((nsa, "vA", "10.99.0.1/24"), (nsb, "vB", "10.99.0.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        time.sleep(0.5)
        for _ in range(args.runs):  # interleaved, so a slow minute hurts every case alike
            for name, speed, fn in cases:
                results[(name, speed)].append(fn())
    finally:
        subprocess.run(["ip", "netns", "del", nsa])
        subprocess.run(["ip", "netns", "del", nsb])
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        f"Measured {datetime.date.today()} on {platform.machine()}, {os.cpu_count()} CPUs, Linux "
        f"{platform.release()}, Python {platform.python_version()}, {_version('tcpdump')}, "
        f"{_version('tcpreplay')}. A veth pair between two namespaces; tcpreplay sends "
        f"{args.packets:,} packets (64 TCP sessions picked up midstream and UDP, 60 % large) into one end, the reader captures "
        f"on the other. Median of {args.runs} interleaved runs (range of drops in brackets); "
        f"reader CPU is its user + system time per packet captured.",
        "",
        "| reader | replay | replay rate (pkt/s) | sent | captured | dropped by kernel "
        "| reader CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    fail = False
    for (name, speed), runs in results.items():
        med = sorted(runs, key=lambda r: r["dropped"])[len(runs) // 2]
        drops = [r["dropped"] for r in runs]
        spread = f" ({min(drops):,}-{max(drops):,})" if min(drops) != max(drops) else ""
        rows.append(f"| {name} | {speed} | {statistics.median(r['pps'] for r in runs):,.0f} | "
                    f"{med['sent']:,} | {med['captured']:,} | {med['dropped']:,}{spread} | "
                    f"{statistics.median(r['cpu'] / max(r['captured'], 1) for r in runs) * 1e6:.2f}"
                    f" µs/pkt |")
        if name.startswith(("LiveCapture", "sniffer")) and speed != "top speed" and max(drops):
            fail = True
    def cpu(case: tuple[str, str]) -> float:
        if not results.get(case):
            return float("nan")
        return statistics.median(r["cpu"] / max(r["captured"], 1) for r in results[case]) * 1e6

    def drop_pct(case: tuple[str, str]) -> float:
        if not results.get(case):
            return float("nan")
        return 100 * statistics.median(r["dropped"] / r["sent"] for r in results[case])

    rows += ["", f"The reader walking the ring in Python costs about "
             f"{cpu(('LiveCapture (32 MiB ring)', 'top speed')):.1f} µs of CPU a packet "
             f"(tcpdump about {cpu(('tcpdump -B 32768', 'top speed')):.1f} µs, measured in 10 ms "
             f"clock ticks, so coarse), so it needs a deeper ring to ride out a burst: with "
             f"tcpdump's 2 MiB it dropped {drop_pct(('LiveCapture (2 MiB ring)', 'top speed')):.1f} % "
             f"at top speed (median), with its default 32 MiB "
             f"{drop_pct(('LiveCapture (32 MiB ring)', 'top speed')):.1f} %. The whole `sniffer "
             f"live` pipeline (decode, flows, kernel look-ups) costs several times more a packet "
             f"than this bare reader."]
    text = "\n".join(rows)
    print(text)
    if args.write:
        _write(text)
    if fail:
        print(f"FAIL: LiveCapture dropped packets at {args.pps} pps", file=sys.stderr)
    return 1 if fail else 0


def _version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True)
    first = (out.stdout or out.stderr).splitlines()[0]
    return re.sub(r"\s*\(.*", "", first.replace(" version:", "").replace(" version", ""))


def _write(text: str) -> None:
    path = ROOT / "docs" / "performance.md"
    body = path.read_text() if path.exists() else "# Performance\n"
    start, end = "<!-- live-bench -->", "<!-- /live-bench -->"
    block = f"{start}\n{text}\n{end}"
    if start in body and end in body:
        body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        body = (body.rstrip() + "\n\n## Live capture against tcpdump\n\n"
                "`python bench/live_bench.py --write` (as root) rewrites the table below.\n\n"
                + block + "\n")
    path.write_text(body)


if __name__ == "__main__":
    sys.exit(main())
