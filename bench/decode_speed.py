"""Micro-benchmark (not a test): Decoder.decode over ~100k crafted Ethernet/IPv4/TCP frames.

    python bench/decode_speed.py [N]

Prints packets/s for the common path (header checksum checked) and with -C.
"""

from __future__ import annotations

import sys
import time

from scapy.all import IP, TCP, Ether, raw

from sniffer.config import Settings
from sniffer.decode import Decoder
from sniffer.stats import Stats


def frames(n: int) -> list[bytes]:
    base = [
        raw(
            Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb")
            / IP(src=f"10.0.{i // 256}.{i % 256}", dst="192.0.2.80", id=i, ttl=64)
            / TCP(sport=10000 + i, dport=443, flags="PA", seq=i)
            / (b"x" * (i % 1400))
        )
        for i in range(1000)
    ]
    return [base[i % len(base)] for i in range(n)]


def run(data: list[bytes], settings: Settings, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        dec = Decoder(settings, Stats())
        decode = dec.decode
        t0 = time.perf_counter()
        for f in data:
            decode(0.0, 1, f, len(f))
        best = min(best, time.perf_counter() - t0)
    assert dec.decode(0.0, 1, data[0], len(data[0])) is not None
    return len(data) / best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = frames(n)
    print(f"{n} Ethernet/IPv4/TCP frames, best of 5 rounds")
    print(f"  checksums checked : {run(data, Settings()):>12,.0f} packets/s")
    print(f"  -C (ignored)      : {run(data, Settings(ignore_checksums=True)):>12,.0f} packets/s")


if __name__ == "__main__":
    main()
