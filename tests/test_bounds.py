"""Every size that input controls is bounded: claimed lengths, fragments, history, alerts.

Each test writes a real hostile capture and runs the real `sniffer read` on it as a child
process, measuring its peak memory (ru_maxrss from wait4).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

from pcapkit import ETH, ROOT
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
MAX_RSS_MB = 80  # the interpreter and modules take ~25 MB; a 4 GB allocation would not fit


def record(ts: float, frame: bytes, caplen: int | None = None, wirelen: int | None = None) -> bytes:
    sec, usec = int(ts), int(round((ts - int(ts)) * 1e6))
    n = len(frame) if caplen is None else caplen
    return struct.pack("<IIII", sec, usec, n, len(frame) if wirelen is None else wirelen) + frame


# Runs sniffer from a small interpreter and reports its peak RSS: a child forked straight from
# pytest would count pytest's own memory in ru_maxrss (Linux keeps the pre-exec high-water mark).
MEASURE = """
import os, resource, subprocess, sys
r = subprocess.run(sys.argv[1:])
os.write(2, b"\\nRSS %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
"""


def sniffer(args, stdin: bytes | None = None) -> tuple[int, str, str, float]:
    """Run `sniffer` and return (exit status, stdout, stderr, its peak RSS in MB)."""
    p = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "sniffer",
                        *map(str, args)], cwd=ROOT, input=stdin, capture_output=True,
                       timeout=300)
    err, _, rss = p.stderr.decode().rpartition("\nRSS ")
    return p.returncode, p.stdout.decode(), err, int(rss) / 1024


def frame(**tcp) -> bytes:
    return bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="93.184.216.34") / TCP(**tcp))


def test_a_record_claiming_4_gb_is_refused_without_allocating_it(tmp_path):
    good = b"".join(record(1000 + i / 100, frame(sport=40000, dport=80, flags="S", seq=i))
                    for i in range(50))
    huge = struct.pack("<IIII", 1001, 0, 0xFFFFFFF0, 0xFFFFFFF0)
    cases = {
        "pcap-end.pcap": PCAP_HEADER + good + huge + b"\0" * 64,
        "pcap-mid.pcap": PCAP_HEADER + good + huge + good * 200,  # ~500 kB follow the claim
    }
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)
    epb = struct.pack("<IIIIIII", 6, 0xFFFFFFF0, 0, 0, 0, 0xFFFFFFF0, 0xFFFFFFF0)
    cases["pcapng.pcapng"] = shb + idb + epb + b"\0" * 4096
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for args, stdin in (([path], None), (["-"], data)):
            rc, out, err, rss = sniffer(["read", "--format", "zeek", *args], stdin)
            assert rc in (0, 2) and "Traceback" not in err, (name, rc, err)
            assert len(err.strip().splitlines()) <= 1, err
            assert rss < MAX_RSS_MB, (name, args, rss)
            if rc == 2:
                assert "offset" in err, err
            if name.startswith("pcap-"):  # the 50 SYNs before the claim are still reported
                assert "\tS0\t" in out or "\tS0" in out, out[-500:]


def test_fragment_buffers_are_capped(tmp_path):
    """30,000 first fragments that never complete: at most 16,384 wait, the rest are evicted
    oldest first and counted; memory stays bounded."""
    base = bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="93.184.216.34", flags="MF", id=0,
                                   proto=17) / (b"x" * 1000))
    recs = []
    for i in range(30_000):
        f = bytearray(base)
        ip = f[14:34]
        ip[4:6] = struct.pack(">H", i & 0xFFFF)
        ip[12:16] = bytes((10, (i >> 16) & 255, (i >> 8) & 255, i & 255))
        ip[10:12] = b"\0\0"
        s = sum(struct.unpack(">10H", bytes(ip)))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        ip[10:12] = struct.pack(">H", ~s & 0xFFFF)
        f[14:34] = ip
        recs.append(record(1000 + i / 10_000, bytes(f)))
    path = tmp_path / "frags.pcap"
    path.write_bytes(PCAP_HEADER + b"".join(recs))  # 31 MB of pending fragment payload
    weird = tmp_path / "weird.log"
    rc, out, err, rss = sniffer(["read", "--format", "zeek", "--weird-log", weird, path])
    assert rc == 0, err
    assert rss < MAX_RSS_MB, rss
    names = [ln.split("\t")[6] for ln in weird.read_text().splitlines() if not ln.startswith("#")]
    assert names, "no anomaly logged"
    out = subprocess.run([sys.executable, "-m", "sniffer", "read", "--format", "table", "-o",
                          tmp_path / "t.txt", path], cwd=ROOT, capture_output=True, text=True)
    summary = (tmp_path / "t.txt").read_text()
    assert "fragment_evicted" in summary or "fragment evicted" in summary, summary[-2000:]


def test_history_is_capped_by_zeek_repeat_scaling(tmp_path):
    """100,000 copies of one retransmitted segment: the history string stays a few letters."""
    syn = frame(sport=40000, dport=80, flags="S", seq=1000)
    synack = bytes(Ether(src=ETH["dst"], dst=ETH["src"]) / IP(src="93.184.216.34", dst="10.0.0.1")
                   / TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001))
    ack = frame(sport=40000, dport=80, flags="A", seq=1001, ack=5001)
    data = bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="93.184.216.34")
                 / TCP(sport=40000, dport=80, flags="PA", seq=1001, ack=5001) / (b"GET / " * 10))
    recs = [record(1000.0, syn), record(1000.01, synack), record(1000.02, ack)]
    recs += [record(1000.03 + i / 1e6, data) for i in range(100_000)]
    path = tmp_path / "rexmit.pcap"
    path.write_bytes(PCAP_HEADER + b"".join(recs))
    rc, out, err, rss = sniffer(["read", "--format", "json", path])
    assert rc == 0, err
    (conn,) = [json.loads(line) for line in out.splitlines()]
    assert conn["orig_pkts"] == 100_002
    assert conn["history"].startswith("ShAD") and len(conn["history"]) <= 12, conn["history"]
    assert conn["history"].count("T") == 5  # retransmissions counted at 1, 10, 100, 1000, 10000
    assert rss < MAX_RSS_MB, rss


def test_an_alert_storm_is_aggregated(tmp_path):
    """50,000 land packets (source = destination): one alert line with its repeats counted."""
    land = bytes(Ether(**ETH) / IP(src="10.0.0.5", dst="10.0.0.5")
                 / TCP(sport=139, dport=139, flags="S", seq=7))
    path = tmp_path / "land.pcap"
    path.write_bytes(PCAP_HEADER + b"".join(record(1000 + i / 1e5, land) for i in range(50_000)))
    alerts = tmp_path / "alerts.json"
    rc, out, err, rss = sniffer(["read", "--format", "zeek", "-o", os.devnull,
                                 "--alerts", alerts, path])
    assert rc == 0, err
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]
    land_alerts = [a for a in lines if a["kind"] == "land"]
    assert 1 <= len(land_alerts) <= 3, len(land_alerts)
    assert sum(1 + a["evidence"].get("repeats", 0) for a in land_alerts) == 50_000
    assert len(lines) < 10, [a["kind"] for a in lines]
    assert rss < MAX_RSS_MB, rss

