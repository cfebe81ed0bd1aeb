"""The differential harness of the two engines: the Python reference (`sniffer.engine.Engine`)
and the compiled core (`sniffer.engine.CoreEngine`, `sniffer._core.Engine`).

`compare(frames, settings)` runs both on the same frames and returns the differences: the
finished records (every field, with the frame and the firing that order them), the weirds
(decode's, the capture's and the flows', in order) and the stats. `traffic(rng, n)` makes `n`
frames of plausible, often hostile traffic (tests/test_core_engine.py feeds it from hypothesis;
bench/core_diff_soak.py from a clock, for the long run).
"""

from __future__ import annotations

import random
import struct
from dataclasses import astuple

from sniffer.config import Settings
from sniffer.decode.checksum import ones_sum
from sniffer.engine import CoreEngine, Engine, Finished
from sniffer.flows.conn import Conn
from sniffer.stats import LoggedStats

__all__ = ["Conn", "Traffic", "astuple", "compare", "compare_file", "differences", "run",
           "run_file", "traffic"]

Frame = tuple[float, int, bytes, int]


def run(cls, frames: list[Frame], settings: Settings, weirds: bool = True):
    """One engine over `frames` (fed in batches of varying size, as `read` does): (records,
    weirds, stats)."""
    stats = LoggedStats()
    engine = cls(settings, stats, weirds=weirds)
    out: list = []
    i = 0
    for size in (1, 7, 512):  # batch boundaries must not matter
        engine.feed(frames[i:i + size])
        out += engine.take()
        i += size
    engine.feed(frames[i:])
    out += engine.take()
    engine.finish()
    out += engine.take()
    recs = [(astuple(e.conn), e.frame, e.firing) for e in out if type(e) is Finished]
    wrd = [astuple(e) for e in out if type(e) is not Finished]
    return recs, wrd, {k: v for k, v in stats.items() if v}


def run_file(cls, path, settings: Settings):
    """One engine over a capture file: (records, weirds, stats, the input error or None)."""
    from sniffer.capture import open_capture
    from sniffer.errors import BadInputError

    stats = LoggedStats()
    engine = cls(settings, stats, weirds=True)
    error = None
    out: list = []
    try:
        engine.feed(open_capture([str(path)], stats))
    except BadInputError as e:
        error = str(e)
    out += engine.take()
    engine.finish()
    out += engine.take()
    recs = [(astuple(e.conn), e.frame, e.firing) for e in out if type(e) is Finished]
    wrd = [astuple(e) for e in out if type(e) is not Finished]
    return recs, wrd, {k: v for k, v in stats.items() if v}, error


def compare(frames: list[Frame], settings: Settings | None = None) -> list[str]:
    """The differences between the engines on `frames` (empty: identical)."""
    settings = settings or Settings()
    return differences(run(Engine, frames, settings), run(CoreEngine, frames, settings))


def compare_file(path, settings: Settings | None = None) -> list[str]:
    """The differences between the engines on a capture file (empty: identical)."""
    settings = settings or Settings()
    py, core = run_file(Engine, path, settings), run_file(CoreEngine, path, settings)
    problems = differences(py[:3], core[:3])
    if py[3] != core[3]:
        problems.append(f"input error: python {py[3]!r}, core {core[3]!r}")
    return problems


def differences(py: tuple, core: tuple) -> list[str]:
    """What differs between two (records, weirds, stats) results."""
    problems = []
    for what, a, b in zip(("record", "weird"), py[:2], core[:2]):
        if a != b:
            for i, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    problems.append(f"{what} {i}: python {x}\n        core   {y}")
                    break
            if len(a) != len(b):
                problems.append(f"{len(a)} {what}s from python, {len(b)} from the core")
    if py[2] != core[2]:
        keys = sorted(set(py[2]) | set(core[2]))
        problems.append("stats: " + ", ".join(f"{k}={py[2].get(k)}/{core[2].get(k)}"
                                               for k in keys if py[2].get(k) != core[2].get(k)))
    return problems


# --- generated traffic ---------------------------------------------------------------------

def _csum(data: bytes) -> int:
    return (~ones_sum(data) & 0xFFFF) or 0xFFFF


def _l4(src: bytes, dst: bytes, proto: int, seg: bytearray, at: int, rng: random.Random) -> None:
    """Fill the checksum at `at` (right nearly always: a wrong one now and then)."""
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg)) if len(src) == 4 else \
        src + dst + struct.pack("!IxxxB", len(seg), proto)
    struct.pack_into("!H", seg, at, 0)
    c = _csum(pseudo + bytes(seg)) if proto != 1 else _csum(bytes(seg))
    if rng.random() < 0.03:
        c ^= 0x1234
    struct.pack_into("!H", seg, at, c)


def _ip(src: bytes, dst: bytes, proto: int, payload: bytes, rng: random.Random,
        ttl: int = 64) -> bytes:
    if len(src) == 16:
        return struct.pack("!IHBB", 0x60000000, len(payload), proto, ttl) + src + dst + payload
    ident = rng.randrange(65536)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, ttl,
                                proto, 0, src, dst))
    struct.pack_into("!H", hdr, 10, _csum(bytes(hdr)))
    return bytes(hdr) + payload


def _fragments(ipv4: bytes, rng: random.Random) -> list[bytes]:
    """An IPv4 packet cut into fragments (8-byte multiples), sometimes out of order."""
    hdr, body = bytearray(ipv4[:20]), ipv4[20:]
    cut = max(8, (len(body) // 2) // 8 * 8)
    parts = []
    for off, chunk, more in ((0, body[:cut], 1), (cut, body[cut:], 0)):
        h = bytearray(hdr)
        struct.pack_into("!H", h, 2, 20 + len(chunk))
        struct.pack_into("!H", h, 6, (more << 13) | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        struct.pack_into("!H", h, 10, _csum(bytes(h)))
        parts.append(bytes(h) + chunk)
    if rng.random() < 0.3:
        parts.reverse()
    return parts


class Traffic:
    """A handful of hosts and conversations between them; `frame()` the next packet."""

    PORTS = (80, 443, 22, 21, 53, 123, 5353, 4789, 2152, 3544, 6081, 5072, 4754, 12345, 40000)

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ts = 1_600_000_000.0 + rng.random()
        v6 = rng.random() < 0.3
        self.hosts = [bytes([0x20, 1, 0xd, 0xb8] + [0] * 11 + [i]) if v6 else bytes([10, 0, 0, i])
                      for i in range(1, 2 + rng.randrange(4))]
        self.flows: list[list] = []  # [src, dst, sport, dport, seq_a, seq_b, stage]

    def _flow(self) -> list:
        rng = self.rng
        if not self.flows or rng.random() < 0.15:
            a, b = rng.choice(self.hosts), rng.choice(self.hosts)
            self.flows.append([a, b, rng.choice((1024 + rng.randrange(60000), *self.PORTS)),
                               rng.choice(self.PORTS), rng.randrange(1 << 32),
                               rng.randrange(1 << 32), 0])
        return rng.choice(self.flows)

    def frame(self) -> list[Frame]:
        rng = self.rng
        r = rng.random()
        self.ts += rng.choice((0.0, 1e-6, 0.001, 0.3, 2.0, 7.0, 61.0, 400.0)) * (r < 0.98)
        if rng.random() < 0.01:
            self.ts -= 1.0  # time going backwards now and then
        a, b, sport, dport, seq_a, seq_b, stage = f = self._flow()
        f[6] += 1
        # Mostly a conversation (handshake, data both ways, a close), sometimes anything.
        scripted = rng.random() < 0.8
        forward = stage != 1 if scripted and stage < 3 else rng.random() < 0.6
        src, dst = (a, b) if forward else (b, a)
        sp, dp = (sport, dport) if forward else (dport, sport)
        kind = rng.random()
        if kind < 0.6 or (scripted and dport in (80, 443, 22, 21, 12345)):
            flags = rng.choice((0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x19, 0x01, 0x03,
                                0x10, 0x18, 0x10))
            if scripted:
                flags = (0x02, 0x12, 0x10)[stage] if stage < 3 else \
                    0x11 if stage > 12 else rng.choice((0x10, 0x18, 0x18))
            n = rng.choice((0, 0, 1, 10, 100, 1400)) if not flags & 0x07 else 0
            seq = seq_a if forward else seq_b
            if rng.random() < 0.1:
                seq = (seq + rng.choice((-1, 1, 1000, -1000, 1 << 31))) % (1 << 32)
            ack = seq_b if forward else seq_a
            seg = bytearray(struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 0x50, flags,
                                        rng.choice((0, 65535, 512)), 0, 0) + bytes(n))
            _l4(src, dst, 6, seg, 16, rng)
            adv = n + (1 if flags & 0x03 else 0)
            if forward:
                f[4] = (seq + adv) % (1 << 32)
            else:
                f[5] = (seq + adv) % (1 << 32)
            proto, l4 = 6, bytes(seg)
        elif kind < 0.85:
            payload = self._udp_payload(dp)
            seg = bytearray(struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload)
            _l4(src, dst, 17, seg, 6, rng)
            proto, l4 = 17, bytes(seg)
        elif kind < 0.95:
            icmp_type = rng.choice((8, 0, 3, 11, 13, 14, 128, 129, 1, 135))
            proto = 58 if len(src) == 16 else 1
            seg = bytearray(struct.pack("!BBHHH", icmp_type, rng.randrange(4), 0, 1, 2)
                            + bytes(rng.randrange(40)))
            _l4(src, dst, proto, seg, 2, rng)
            l4 = bytes(seg)
        else:
            proto = rng.choice((47, 4, 41, 132, 99))
            l4 = bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
            if proto in (4, 41) and rng.random() < 0.7:
                inner_v6 = proto == 41
                isrc = bytes(16) if inner_v6 else bytes([192, 168, 1, 1])
                idst = (bytes(15) + b"\x02") if inner_v6 else bytes([192, 168, 1, 2])
                l4 = _ip(isrc, idst, 17, struct.pack("!HHHH", 1, 2, 8, 0), rng)
        ip = _ip(src, dst, proto, l4, rng, ttl=rng.choice((64, 64, 63, 1, 255)))
        frames = [ip]
        if len(src) == 4 and len(ip) > 60 and rng.random() < 0.05:
            frames = _fragments(ip, rng)
        out = []
        for pkt in frames:
            cut = len(pkt)
            if rng.random() < 0.03:
                cut = rng.randrange(len(pkt) + 1)  # snaplen-cut or damaged
            if rng.random() < 0.5:
                et = b"\x86\xdd" if len(src) == 16 else b"\x08\x00"
                vlan = b"\x81\x00\x00\x05" if rng.random() < 0.1 else b""
                data = b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b" + vlan + et + pkt[:cut]
                out.append((self.ts, 1, data, len(data) + len(pkt) - cut))
            else:
                out.append((self.ts, 101, pkt[:cut], len(pkt)))
        return out

    def _udp_payload(self, dport: int) -> bytes:
        rng = self.rng
        if dport == 4789 and rng.random() < 0.8:  # VXLAN carrying a small Ethernet/IPv4/UDP frame
            inner = _ip(bytes([172, 16, 0, 1]), bytes([172, 16, 0, 2]), 17,
                        struct.pack("!HHHH", 5000, 53, 8, 0), rng)
            return struct.pack("!BxxxI", 0x08, 1 << 8) + bytes(12) + b"\x08\x00" + inner
        if dport == 2152 and rng.random() < 0.8:  # GTP-U G-PDU with an inner IPv4 packet
            inner = _ip(bytes([100, 64, 0, 1]), bytes([8, 8, 8, 8]), 17,
                        struct.pack("!HHHH", 5000, 53, 8, 0), rng)
            return struct.pack("!BBHI", 0x30, 255, len(inner), 1) + inner
        return bytes(rng.randrange(256) for _ in range(rng.choice((0, 4, 12, 48))))


def traffic(rng: random.Random, n: int) -> list[Frame]:
    """`n` frames (or a few more: fragments) of generated traffic."""
    t = Traffic(rng)
    frames: list[Frame] = []
    while len(frames) < n:
        frames += t.frame()
    return frames
