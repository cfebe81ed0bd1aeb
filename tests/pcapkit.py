"""Test helpers: craft packets with scapy, write a real capture, run the real `sniffer read`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP, ICMP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from sharedkit import CORPUS, ROOT  # noqa: F401  (re-exported for the tests)

A, B = "10.0.0.1", "93.184.216.34"
# Explicit MAC addresses: scapy would otherwise look up the next hop's (ARP on the host network).
ETH = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


class Session:
    """Builds the packets of one conversation with a running clock and sequence numbers."""

    def __init__(self, client=A, server=B, cport=40000, sport=80, t0=1000.0,
                 isn_c=1000, isn_s=5000, v6=False) -> None:
        self.c, self.s, self.cp, self.sp = client, server, cport, sport
        self.t = t0
        self.seq = {True: isn_c, False: isn_s}
        self.pkts: list = []
        self.v6 = v6

    def send(self, from_client: bool, flags: str, payload: bytes = b"", *, dt: float = 0.01,
             seq: int | None = None, ack: int | None = None, window: int = 8192,
             advance: bool = True, ttl: int = 64, **ipkw):
        self.t += dt
        src, dst = (self.c, self.s) if from_client else (self.s, self.c)
        sp, dp = (self.cp, self.sp) if from_client else (self.sp, self.cp)
        s = self.seq[from_client] if seq is None else seq
        a = self.seq[not from_client] if ack is None else ack
        ip = IPv6(src=src, dst=dst, hlim=ttl) if self.v6 else IP(src=src, dst=dst, ttl=ttl, **ipkw)
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=s & 0xFFFFFFFF,
                  ack=(a & 0xFFFFFFFF) if "A" in flags else 0, window=window)
        p = Ether(**ETH) / ip / tcp / payload
        p.time = self.t
        self.pkts.append(p)
        if advance and seq is None:
            self.seq[from_client] += len(payload) + ("S" in flags) + ("F" in flags)
        return p

    def handshake(self):
        self.send(True, "S")
        self.send(False, "SA")
        self.send(True, "A")
        return self


def udp(src, dst, sport, dport, payload=b"x", t=1000.0, **kw):
    p = Ether(**ETH) / IP(src=src, dst=dst, **kw) / UDP(sport=sport, dport=dport) / payload
    p.time = t
    return p


def icmp(src, dst, t=1000.0, **kw):
    p = Ether(**ETH) / IP(src=src, dst=dst) / ICMP(**kw) / (b"x" * 56)
    p.time = t
    return p


def write(tmp_path: Path, pkts, name="t.pcap") -> Path:
    path = tmp_path / name
    wrpcap(str(path), pkts)
    return path


def run(args, *, check=True, stdin=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "sniffer", *map(str, args)], cwd=ROOT,
                          capture_output=True, input=stdin, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"sniffer exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def conns(tmp_path: Path, pkts, *args) -> list[dict]:
    """Write `pkts` to a pcap, run `sniffer read --format json` on it, return the records."""
    path = write(tmp_path, pkts)
    out = run(["read", path, "--format", "json", *args]).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]
