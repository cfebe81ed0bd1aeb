"""Deterministic generator of large, realistic synthetic pcap captures for the replay benchmark.

    python bench/gen_capture.py OUT.pcap --packets N [--seed S] [--kind mix|synflood]
                                [--flows SLOTS]

Output: a classic pcap (magic a1b2c3d4, microsecond timestamps, little-endian, snaplen 65535,
LINKTYPE_ETHERNET). Packets are written in time order in buffered chunks, and memory stays
bounded (one pending packet and a little state per flow slot, bounded caches: ~120 MB whatever
N). The same arguments give byte-identical files, and the first N packets of a run with
``--packets M`` (M > N) are byte-identical to a run with ``--packets N``: nothing depends on N,
the generator simply stops. So a 200k file is a byte prefix of the 1M file (``cmp`` says "EOF on
the 200k file"). t = 0 is 1700000000 (2023-11-14 22:13:20 UTC). The summary line counts the flows
started, warm-up included.

Why plain ``struct``: scapy builds a packet in ~100 µs, about 2 minutes per million packets. This
file packs headers with precompiled ``struct.Struct`` objects and computes every checksum with
modular arithmetic (a 32-bit field adds as one number modulo 0xFFFF, since 65536 = 1 mod 65535;
payload sums come from ``int.from_bytes(...) % 0xFFFF`` and are cached per payload slice), builds
no packet before t = 0, and keeps the cyclic GC out of the way: about 11 s per million packets in
CPython 3.11, the ~2 s warm-up included.

Traffic model, ``--kind mix`` (the default)
-------------------------------------------
SLOTS flow slots (default 10,000) are kept busy: when a flow ends, a new one starts in its slot
after an idle gap (exponential, mean 310 ms). Each slot starts its first flow in the first second
of the 3 s warm-up before t = 0 (so by t = 0 the slots are out of phase and the packet rate is
steady from the first packet); packets before t = 0 are dropped, so the capture starts mid-stream
and ends with flows cut off, like a real one. The vantage point is the local side: client
packets are seen when sent, server packets when they arrive, so a server's reaction comes one
RTT after the client packet it answers. About 300k packets/s (a million packets span ~3.2 s),
~730 file bytes/packet; packet shares TCP ~81 %, UDP ~14 %, ICMP + ICMPv6 ~4.5 %; 10 % of the
flows are IPv6; packets per connection: median 4, p90 ~24, max a few thousand (1M packets: ~54k
connections, 17k of them TCP). Clients are in 10.0.0.0/8 and 2001:db8:1::/48; servers in
public-looking ranges (93.184.0.0/16, 104.16.0.0/16, 151.101.0.0/16, ..., 2606:2800::/32,
2a00:1450::/32, ...). Local hosts have their own fixed MAC; everything remote comes from (or goes
to) the gateway's MAC.

* TCP (ports 443, 80, 22, 8080, 8443, 5432, 3306, 6379, 9200, 993, 587, 25, 5222; clients on
  ephemeral ports 32768-60999): Linux SYN options (MSS, SACK-permitted, timestamps, NOP, window
  scale), the timestamp option on every later segment, request/response exchanges segmented at the
  MSS (1448 bytes of payload over IPv4, 1428 over IPv6) in slow-start rounds (initial window 10,
  doubling per RTT, bounded by the receiver's growing window), pure ACKs every 2 segments (1 on
  some connections) and at the end of each round. About 30 % of established connections are
  lossy: a segment seen by the capture is lost downstream, the receiver sends a duplicate ACK
  with a SACK block for each later segment of the round, and the sender retransmits (fast
  retransmit after 3 duplicate ACKs, else after a timeout) and halves its window. Teardown:
  FIN/FIN/ACK (80 %, either side first), RST from either side (13 %), or left open. 3.5 % of the
  attempts are refused (SYN -> RST/ACK) and 2 % unanswered (SYN retried with the same ISN after
  1 s, 3 s, 7 s). Sequence and acknowledgment numbers are consistent (a reassembler accepts both
  streams; SYN and FIN count one; a retransmission carries the same bytes as the original).
  Per-port profiles: TLS handshakes (half of them resumed) and web objects (mostly small, a few
  bulk transfers of up to ~3 MB, a few thousand packets), SSH (server banner first, interactive
  keystrokes, occasional bulk copy), databases (short fast exchanges), mail (banner first).
* UDP: DNS on port 53 in real wire format (A and AAAA queries from one socket, EDNS OPT record,
  CNAME chains, NXDOMAIN, a few retries with the same ID); QUIC-like 443/udp flows (long-header
  Initial/Handshake datagrams of 1250/1252 bytes, then short-header packets, server bulk in
  slow-start rounds, client ACK packets); RTP-like voice calls (12-byte RTP header, 160-byte
  payload, every 20 ms in both directions); NTP client packets (48 bytes, port 123) and syslog
  (port 514), both one-way.
* ICMP: echo request/reply sequences (IPv4 and ICMPv6 echo; one host in 10 never answers); UDP
  datagrams to closed ports (53, 161, 443, 1900, 5353, random) answered by port unreachable
  (ICMP 3/3, ICMPv6 1/4); UDP traceroutes answered by time-exceeded (ICMP 11/0, ICMPv6 3/0) from
  each hop and port unreachable from the destination. Error messages quote the offending packet's
  IP header (with the TTL/hop limit it arrived with and a correct header checksum) and its first
  8 bytes, as RFC 792 asks. (tshark cannot verify the quoted UDP checksum of 8 bytes: it shows
  them as "Unverified", checksum status 2, not "Bad", status 0.)
* Every checksum is correct: IPv4 header, TCP and UDP over the IPv4/IPv6 pseudo-header, ICMP, and
  ICMPv6 over the IPv6 pseudo-header.

``--kind synflood``
-------------------
The mix above (same slots, same generator) as the background, plus, from t = 0, a SYN flood of
FLOOD_PER_SLOT x SLOTS SYNs/s (2.7M/s with the default 10,000 slots, ~89 % of the packets) to
TARGET = 93.184.216.34 port 443. Each flood SYN has a random spoofed IPv4 source (never in
10.0.0.0/8, other private ranges, 0/8, loopback, link-local, CGN, multicast or reserved space), a
random source port (1024-65535), ISN, IP ID and TTL, and Linux SYN options (MSS 1460, SACK
permitted, timestamps, NOP, window scale 7). The target answers none of them.

The real connections in it: from t = 0 on, half of the background's new IPv4 TCP connections to
port 443 go to TARGET instead (RTT 1-4 ms). Every one of them completes: handshake, a TLS-like
exchange and one request/response, then FIN/FIN/ACK; never refused, unanswered, reset or left
open (a lost segment, 30 % of them, only delays it). Each is over within ~100 ms of its SYN, so
every connection from a 10.0.0.0/8 client to 93.184.216.34:443 whose SYN is at least 100 ms
before the last packet of the file has conn_state SF. Flood sources are never in 10.0.0.0/8.
With the default slots a 200k-packet file spans only ~65 ms, too short for that rule to select
anything: ``--flows 1000`` keeps the 90/10 shares at a tenth of the rate (200k packets span
~0.66 s and hold ~100 real connections to the target). A reader that evicts half-open flows
under the flood's memory pressure may split a few of them.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import math
import random
import struct
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Optional

Rec = Optional[bytes]
Flow = Iterator[tuple[int, Rec]]  # (µs since t = 0, pcap record or None before t = 0)

T0 = 1_700_000_000  # epoch second of t = 0
WARMUP = 3_000_000  # µs before t = 0 during which slots start their first flow
M32 = 0xFFFFFFFF
MS = 1000  # µs

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
REC = struct.Struct("<IIII")
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")
TCP_TS = struct.Struct("!HHIIHHHHIII")  # 20-byte header + NOP NOP TS(tsval, tsecr)
TCP_BARE = struct.Struct("!HHIIHHHH")
UDP = struct.Struct("!HHHH")
ICMP = struct.Struct("!BBHI")
DNS_HDR = struct.Struct("!HHHHHH")
RTP = struct.Struct("!BBHII")

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
OFF_TS = 8 << 12  # data offset of a header with only the timestamp option (32 bytes)
NOPNOP_TS = 0x0101080A

TARGET = bytes((93, 184, 216, 34))
TARGET_PORT = 443
FLOOD_PER_SLOT = 270  # flood SYNs per second per flow slot: 9x the background's ~30 packets/s
GATEWAY_MAC = bytes.fromhex("001b21a4c3f0")
LOCAL6 = bytes.fromhex("20010db80001")  # 2001:db8:1::/48

# ------------------------------------------------------------------------------------------
# checksums and payload bytes


def wsum(b: bytes) -> int:
    """Ones'-complement sum of `b` (zero-padded to even length), as a residue mod 0xFFFF."""
    v = int.from_bytes(b, "big")
    return (v << 8 if len(b) & 1 else v) % 0xFFFF


class Rng(random.Random):
    """random.Random with cheaper randrange() and choice() (one random() call each, ~5x
    faster than the exact integer methods; plenty for shaping traffic)."""

    def randrange(self, start: int, stop: int | None = None,  # type: ignore[override]
                  step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + step * int(self.random() * ((stop - start) // step))

    def choice(self, seq: Sequence):  # type: ignore[override]
        return seq[int(self.random() * len(seq))]


BLOB_PERIOD = 1 << 15
BLOB = random.Random(0x5EED).randbytes(BLOB_PERIOD + 4096)  # payload bytes, fixed for all seeds
_pcache: dict[int, tuple[bytes, int]] = {}


def payload(start: int, n: int) -> tuple[bytes, int]:
    """`n` blob bytes at `start` (< BLOB_PERIOD) and their padded sum; cached (speed only)."""
    key = start << 12 | n
    hit = _pcache.get(key)
    if hit is None:
        b = BLOB[start:start + n]
        hit = (b, wsum(b))
        if len(_pcache) >= 50_000:
            _pcache.clear()
        _pcache[key] = hit
    return hit


# ------------------------------------------------------------------------------------------
# addressing


class Net:
    """Deterministic host pools, MAC addresses and TTLs."""

    OUIS = [bytes.fromhex(x) for x in ("3c22fb", "f48e38", "a4bb6d", "001b63", "8c8590",
                                       "dca632", "b827eb", "e45f01", "525400", "00155d")]
    SERVER4 = [(93, 184), (104, 16), (104, 18), (151, 101), (142, 250), (13, 107), (52, 84),
               (185, 199), (31, 13), (157, 240), (23, 215), (199, 232)]
    SERVER6 = ["26062800", "2a001450", "2a032880", "26064700", "2620011a", "2a04e4c0"]
    ROUTER4 = [(62, 115), (4, 68), (80, 81), (213, 248), (195, 66), (89, 149)]
    RESOLVERS4 = [bytes(x) for x in ((1, 1, 1, 1), (1, 0, 0, 1), (8, 8, 8, 8), (8, 8, 4, 4),
                                     (9, 9, 9, 9))]
    RESOLVERS6 = [bytes.fromhex(x) for x in ("26064700470000000000000000001111",
                                             "20014860486000000000000000008888")]

    def __init__(self, rng: random.Random) -> None:
        r = rng.randrange
        self.clients4 = [a for a in dict.fromkeys(
            bytes((10, r(256), r(256), r(2, 255))) for _ in range(3000)) if a[1:3] != b"\0\3"]
        self.clients6 = list(dict.fromkeys(
            LOCAL6 + r(1, 16).to_bytes(2, "big") + rng.randbytes(8) for _ in range(600)))
        self.servers4 = list(dict.fromkeys(
            bytes((*self.SERVER4[r(len(self.SERVER4))], r(256), r(1, 255))) for _ in range(4000)))
        self.servers6 = list(dict.fromkeys(
            bytes.fromhex(self.SERVER6[r(len(self.SERVER6))]) + rng.randbytes(12)
            for _ in range(800)))
        self.ntp4 = self.servers4[-8:]
        self.ntp6 = self.servers6[-4:]
        self.syslog4 = [bytes((10, 0, 3, 10)), bytes((10, 0, 3, 11))]
        self.syslog6 = [LOCAL6 + bytes(8) + b"\x05\x14"]
        self.rng = rng
        self._mac: dict[bytes, bytes] = {}
        self._sum: dict[bytes, int] = {}
        self._ttl: dict[bytes, int] = {}

    @staticmethod
    def local(a: bytes) -> bool:
        return a[0] == 10 if len(a) == 4 else a[:6] == LOCAL6

    def mac(self, a: bytes) -> bytes:
        m = self._mac.get(a)
        if m is None:
            if not self.local(a) or a == b"\x0a\x00\x00\x01" or a == LOCAL6 + bytes(9) + b"\x01":
                m = GATEWAY_MAC
            else:
                h = zlib.crc32(a)
                m = self.OUIS[h % len(self.OUIS)] + (h >> 4 & 0xFFFFFF).to_bytes(3, "big")
            self._mac[a] = m
        return m

    def asum(self, a: bytes) -> int:
        """The ones'-complement sum of an address (cached)."""
        v = self._sum.get(a)
        if v is None:
            v = self._sum[a] = wsum(a)
        return v

    def ttl(self, a: bytes) -> int:
        """TTL / hop limit of packets from `a` as seen here (local hosts: 64)."""
        t = self._ttl.get(a)
        if t is None:
            if self.local(a):
                t = 64
            else:
                h = zlib.crc32(a)
                t = (64, 64, 128, 255)[h & 3] - 4 - (h >> 2) % 22
            self._ttl[a] = t
        return t

    def client(self, v6: bool) -> bytes:
        pool = self.clients6 if v6 else self.clients4
        return pool[int(len(pool) * self.rng.random() ** 1.5)]

    def server(self, v6: bool) -> bytes:
        pool = self.servers6 if v6 else self.servers4
        return pool[int(len(pool) * self.rng.random() ** 3)]

    def router(self, dst: bytes, hop: int) -> bytes:
        """The address of hop `hop` (1 = our gateway) on the way to `dst`."""
        if len(dst) == 4:
            if hop == 1:
                return b"\x0a\x00\x00\x01"
            h = zlib.crc32(dst[:3] + bytes((hop,))) if hop > 4 else zlib.crc32(bytes((hop,)))
            net = self.ROUTER4[h % len(self.ROUTER4)]
            return bytes((*net, h >> 8 & 0xFF, (h >> 16) % 254 + 1))
        if hop == 1:
            return LOCAL6 + bytes(9) + b"\x01"
        h = zlib.crc32(dst[:8] + bytes((hop,))) if hop > 4 else zlib.crc32(bytes((hop,)))
        return bytes.fromhex("200107f8") + h.to_bytes(4, "big") + bytes(7) + bytes((hop,))


class Path:
    """One direction between two hosts for one protocol: Ethernet header and IP constants."""

    __slots__ = ("v6", "src", "dst", "eth", "ttl", "proto", "ipc", "ipid", "vtcfl", "pseudo")

    def __init__(self, net: Net, src: bytes, dst: bytes, proto: int, rng: random.Random,
                 ttl: int = 0) -> None:
        self.v6 = len(src) == 16
        self.src, self.dst, self.proto = src, dst, proto
        self.eth = net.mac(dst) + net.mac(src) + (b"\x86\xdd" if self.v6 else b"\x08\x00")
        self.ttl = ttl or net.ttl(src)
        a = net.asum(src) + net.asum(dst)
        self.pseudo = a + proto
        self.ipc = 0x4500 + 0x4000 + (self.ttl << 8 | proto) + a
        self.ipid = rng.getrandbits(16)
        self.vtcfl = 0x60000000 | rng.getrandbits(20)


def record(ts: int, *parts: bytes) -> bytes:
    """A pcap record of the frame made of `parts`, padded to Ethernet's 60-byte minimum."""
    frame = b"".join(parts)
    n = len(frame)
    if n < 60:
        frame += bytes(60 - n)
        n = 60
    return REC.pack(T0 + ts // 1_000_000, ts % 1_000_000, n, n) + frame


def frame(p: Path, ts: int, l4len: int, hdr: bytes, body: bytes = b"") -> bytes:
    """Record of Ethernet + IP header of `p` + transport `hdr` + `body` (l4len = both)."""
    if p.v6:
        ip = IP6.pack(p.vtcfl, l4len, p.proto, p.ttl, p.src, p.dst)
        n = 54 + l4len
    else:
        tot = 20 + l4len
        ipid = p.ipid
        p.ipid = ipid + 1 & 0xFFFF
        ip = IP4.pack(0x45, 0, tot, ipid, 0x4000, p.ttl, p.proto,
                      -(p.ipc + tot + ipid) % 0xFFFF, p.src, p.dst)
        n = 34 + l4len
    if n < 60:
        return record(ts, p.eth, ip, hdr, body)
    return b"".join((REC.pack(T0 + ts // 1_000_000, ts % 1_000_000, n, n), p.eth, ip, hdr, body))


def ip4_header(src: bytes, dst: bytes, proto: int, tot: int, ipid: int, ttl: int,
               df: bool = True) -> bytes:
    h = IP4.pack(0x45, 0, tot, ipid, 0x4000 if df else 0, ttl, proto, 0, src, dst)
    return h[:10] + (-wsum(h) % 0xFFFF).to_bytes(2, "big") + h[12:]


def udp_l4(p: Path, sport: int, dport: int, body: bytes, bsum: int = -1) -> bytes:
    """UDP header (checksum over the pseudo-header) followed by `body`."""
    ulen = 8 + len(body)
    if bsum < 0:
        bsum = wsum(body)
    c = -(p.pseudo + ulen + sport + dport + ulen + bsum) % 0xFFFF or 0xFFFF
    return UDP.pack(sport, dport, ulen, c)


def udp_rec(ts: int, p: Path, sport: int, dport: int, body: bytes, bsum: int = -1) -> bytes:
    return frame(p, ts, 8 + len(body), udp_l4(p, sport, dport, body, bsum), body)


def icmp_rec(p: Path, ts: int, typ: int, code: int, rest: int, body: bytes) -> bytes:
    """ICMP (IPv4) or ICMPv6 message; `rest` is the 32-bit second word of the header."""
    n = 8 + len(body)
    total = (typ << 8 | code) + rest + wsum(body)
    if p.v6:
        total += p.pseudo + n
    return frame(p, ts, n, ICMP.pack(typ, code, -total % 0xFFFF, rest), body)


# ------------------------------------------------------------------------------------------
# TCP


class Side:
    """One endpoint of a TCP connection; seq/ack numbers are kept relative to the ISNs."""

    __slots__ = ("path", "sport", "dport", "isn", "peer_isn", "pbase", "tsb", "peer_tsb", "lag",
                 "nxt", "mss", "ws", "win", "win_max", "react", "gap", "cwnd", "ssthresh",
                 "ae", "client", "last_end")

    def __init__(self, path: Path, sport: int, dport: int, client: bool, rng: random.Random,
                 react: int, gap: int, mss: int) -> None:
        self.path, self.sport, self.dport, self.client = path, sport, dport, client
        self.isn = rng.getrandbits(32)
        self.pbase = rng.randrange(BLOB_PERIOD // 8) * 8
        self.tsb = rng.getrandbits(32)
        self.peer_isn = self.peer_tsb = self.lag = 0
        self.nxt = 1  # next relative sequence number after the SYN
        self.mss = mss
        self.ws = 7 if client else rng.choice((7, 8, 9, 10))
        self.win = 64256 if client else 65280
        self.win_max = 6_291_456 if client else 3_145_728
        self.react, self.gap = react, gap
        self.cwnd, self.ssthresh = 10, 1 << 30
        self.ae = 2 if rng.random() < 0.9 else 1
        self.last_end = -(1 << 62)  # end of this side's last transfer (slow start after idle)

    def wfield(self) -> int:
        return self.win >> self.ws  # win_max >> 7 < 0xFFFF


# A TCP event: (ts, side, flags, rseq, rack, win, n, extra). rseq/rack are relative to the
# sender's/receiver's ISN, win is the window field, n the payload length; extra is None (the
# timestamp option only), "syn" (SYN options), "bare" (a RST answering a SYN: no options,
# sequence number 0) or ("sack", left, right) (a duplicate ACK with one SACK block).
Ev = tuple


def tcp_build(ts: int, e: Ev) -> bytes:
    """The pcap record of TCP event `e` at time `ts`."""
    _, sd, flags, rseq, rack, win, n, extra = e
    p = sd.path
    seq = (sd.isn + rseq) & M32 if extra != "bare" else 0  # a RST answering a SYN: seq 0
    ack = (sd.peer_isn + rack) & M32 if flags & ACK else 0
    if n:
        body, bsum = payload((sd.pbase + 8 * rseq) & (BLOB_PERIOD - 1), n)
    else:
        body, bsum = b"", 0
    if extra is None:
        tsval = (sd.tsb + ts // MS) & M32
        tsecr = (sd.peer_tsb + (ts - sd.lag) // MS) & M32
        l4len = 32 + n
        total = (p.pseudo + l4len + sd.sport + sd.dport + seq + ack + (OFF_TS | flags) + win
                 + 0x090B + tsval + tsecr + bsum)
        hdr = TCP_TS.pack(sd.sport, sd.dport, seq, ack, OFF_TS | flags, win, -total % 0xFFFF, 0,
                          NOPNOP_TS, tsval, tsecr)
        return frame(p, ts, l4len, hdr, body)
    if extra == "bare":
        opts = b""
    else:
        tsval = (sd.tsb + ts // MS) & M32
        if extra == "syn":
            tsecr = (sd.peer_tsb + (ts - sd.lag) // MS) & M32 if flags & ACK else 0
            opts = struct.pack("!BBHBBBBIIBBBB", 2, 4, sd.mss + 12,
                               4, 2, 8, 10, tsval, tsecr, 1, 3, 3, sd.ws)
        else:
            tsecr = (sd.peer_tsb + (ts - sd.lag) // MS) & M32
            left, right = extra[1], extra[2]
            opts = struct.pack("!IIIIII", NOPNOP_TS, tsval, tsecr, 0x0101050A,
                               (sd.peer_isn + left) & M32, (sd.peer_isn + right) & M32)
    hlen = 20 + len(opts)
    h = TCP_BARE.pack(sd.sport, sd.dport, seq, ack, (hlen << 10) | flags, win, 0, 0) + opts
    c = -(p.pseudo + hlen + n + wsum(h) + bsum) % 0xFFFF
    return frame(p, ts, hlen + n, h[:16] + c.to_bytes(2, "big") + h[18:], body)


class TcpConn:
    """The two sides of one TCP connection and the phases it goes through (see `tcp_flow`)."""

    def __init__(self, g: Gen, cli: bytes, srv: bytes, cport: int, sport: int,
                 rtt: int) -> None:
        rng = g.rng
        mss = 1428 if len(cli) == 16 else 1448  # payload per segment with the timestamp option
        bw = rng.choice((20e6, 50e6, 100e6, 100e6, 300e6, 1e9, 1e9))
        gap = max(1, int(1514 * 8 / bw * 1e6))
        cproc = rng.randrange(15, 200)
        self.c = Side(Path(g.net, cli, srv, 6, rng), cport, sport, True, rng, cproc, gap, mss)
        self.s = Side(Path(g.net, srv, cli, 6, rng), sport, cport, False, rng, rtt, gap, mss)
        self.c.peer_isn, self.s.peer_isn = self.s.isn, self.c.isn
        self.c.peer_tsb, self.s.peer_tsb = self.s.tsb, self.c.tsb
        self.c.lag, self.s.lag = 200, rtt
        self.rtt, self.rng = rtt, rng
        self.delack = int(rng.choice((0.2, 1, 4, 40)) * MS)

    def transfer(self, ev: list, snd: Side, nbytes: int, t: int, tail_delay: int | None,
                 loss_p: float) -> tuple[int, int]:
        """Append `nbytes` of data from `snd`, sent in slow-start rounds from `t`, and the
        receiver's ACKs: every `ae` segments and at the end of each round; the transfer's last
        segment is acknowledged after `tail_delay`, or not at all when None (the receiver's next
        segment carries the ACK). With probability `loss_p` per round (1.0: the first round,
        then 3 %) one segment is lost after the capture point: duplicate ACKs with SACK for each
        later segment of the round, then a retransmission (fast retransmit after 3 duplicate
        ACKs, else a timeout) and a halved window.
        Returns (time of the last data segment, time of the last event)."""
        rcv = self.s if snd.client else self.c
        if nbytes <= 0:
            return t, t
        rnd = self.rng.random
        append = ev.append
        mss, gap, ae = snd.mss, snd.gap, rcv.ae
        r_react, s_react, rws = rcv.react, snd.react, rcv.ws
        rack = rcv.nxt
        if t - snd.last_end > 200 * MS:
            snd.cwnd = 10  # slow start after idle
        end = t_data = t
        remaining = nbytes
        while remaining > 0:
            k = min(snd.cwnd, -(-remaining // mss), max(2, rcv.win // mss))
            final = remaining <= k * mss
            lost = int(rnd() * k) if loss_p and rnd() < loss_p else -1
            if loss_p >= 1.0:
                loss_p = 0.03  # a forced loss hits the first round only
            swin = snd.win >> snd.ws
            first_ack = -1
            unacked = 0
            dups: list[int] = []
            lost_seg = None
            tj = t
            for j in range(k):
                n = mss if remaining > mss else remaining
                remaining -= n
                sq = snd.nxt
                snd.nxt = sq + n
                last = j == k - 1
                append((tj, snd, ACK | PSH if last else ACK, sq, rack, swin, n, None))
                if lost >= 0 and j >= lost:
                    if j == lost:
                        lost_seg = (sq, n)
                    else:
                        ta = tj + r_react
                        if j == lost + 1:
                            sack_left = sq
                        append((ta, rcv, ACK, rcv.nxt, lost_seg[0], rcv.win >> rws, 0,
                                ("sack", sack_left, sq + n)))
                        dups.append(ta)
                else:
                    unacked += 1
                    if unacked >= ae or (last and (not final or tail_delay is not None)):
                        ta = tj + r_react
                        if last and final and unacked < ae:
                            ta += tail_delay or 0
                        win = rcv.win + 2 * unacked * mss
                        rcv.win = win = win if win < rcv.win_max else rcv.win_max
                        append((ta, rcv, ACK, rcv.nxt, sq + n, win >> rws, 0, None))
                        unacked = 0
                        if first_ack < 0:
                            first_ack = ta
                        if ta > end:
                            end = ta
                tj += gap
            t_last = t_data = tj - gap
            if t_last > end:
                end = t_last
            if lost_seg is not None:
                tr = (dups[2] + s_react if len(dups) >= 3
                      else t_last + r_react + s_react + max(self.rtt, 10 * MS))
                if tr < t_last + gap:
                    tr = t_last + gap
                append((tr, snd, ACK | PSH, lost_seg[0], rack, swin, lost_seg[1], None))
                rcv.win = min(rcv.win_max, rcv.win + 2 * k * mss)
                ta = tr + r_react
                if not final or lost < k - 1 or tail_delay is not None:
                    append((ta, rcv, ACK, rcv.nxt, snd.nxt, rcv.win >> rws, 0, None))
                    if ta > end:
                        end = ta
                snd.ssthresh = snd.cwnd = max(2, snd.cwnd // 2)
                if tr > end:
                    end = tr
                t_data = tr
                t = max(ta + s_react, tr + gap)
            else:
                if first_ack < 0:
                    first_ack = t_last + r_react
                t = max(first_ack + s_react, t_last + gap)
                snd.cwnd = min(512, snd.cwnd * 2 if snd.cwnd < snd.ssthresh else snd.cwnd + 1)
        snd.last_end = end
        return t_data, end


    def teardown(self, t: int, t_srv: int, fin: bool) -> list:
        """The closing events: FIN/FIN-ACK/ACK started by either side (80 %, always when
        `fin`), a RST from either side (13 %), or nothing (left open). `t` is when the client
        would act, `t_srv` when the server last sent (or later)."""
        rng, c, s = self.rng, self.c, self.s
        u = 0.0 if fin else rng.random()
        ev: list = []
        if u < 0.80:
            if rng.random() < 0.5:  # the client closes first
                ev += [(t, c, FIN | ACK, c.nxt, s.nxt, c.wfield(), 0, None),
                       (t + s.react, s, FIN | ACK, s.nxt, c.nxt + 1, s.wfield(), 0, None),
                       (t + s.react + c.react, c, ACK, c.nxt + 1, s.nxt + 1, c.wfield(), 0,
                        None)]
            else:  # the server closes first, after an idle time
                idle = rng.randrange(100, 3000) if fin else think(rng, 3, 1.5, 2000)
                tf = t_srv + idle
                ev += [(tf, s, FIN | ACK, s.nxt, c.nxt, s.wfield(), 0, None),
                       (tf + c.react, c, FIN | ACK, c.nxt, s.nxt + 1, c.wfield(), 0, None),
                       (tf + c.react + s.react, s, ACK, s.nxt + 1, c.nxt + 1, s.wfield(), 0,
                        None)]
            c.nxt += 1
            s.nxt += 1
        elif u < 0.93:  # a reset by the client (a browser dropping a connection) or the server
            if rng.random() < 0.6:
                ev.append((t, c, RST | ACK, c.nxt, s.nxt, c.wfield(), 0, None))
            else:
                ev.append((t_srv + think(rng, 5, 1.5, 2000), s, RST | ACK, s.nxt, c.nxt,
                           s.wfield(), 0, None))
        return ev


def ordered(ev: list, last: int, build) -> Iterator[tuple[int, Rec]]:
    """Yield events in time order (never before `last`), each built by `build(ts, event)`
    only from t = 0 on; returns the time of the last one."""
    ev.sort(key=_ts)
    for e in ev:
        ts = e[0]
        if ts < last:
            ts = last
        last = ts
        yield ts, (build(ts, e) if ts >= 0 else None)
    return last


def emit(ev: list, last: int) -> Iterator[tuple[int, Rec]]:
    """TCP events (see `tcp_build`) in time order."""
    return (yield from ordered(ev, last, tcp_build))


def _ts(e: tuple) -> int:
    return e[0]


# Server ports: (port, weight, profile). Profiles shape the request/response exchanges.
TCP_PORTS = [(443, 58, "tls"), (80, 9, "http"), (8080, 3, "http"), (8443, 3, "tls"),
             (22, 3, "ssh"), (5432, 4, "db"), (3306, 3, "db"), (6379, 3, "db"),
             (9200, 2, "http"), (993, 3, "mail"), (587, 2, "mail"), (25, 2, "mail"),
             (5222, 2, "mail")]


def web_object(rng: random.Random) -> int:
    """Size of a web response: mostly small, some medium, a few large and rare bulk."""
    u = rng.random()
    if u < 0.66:
        return int(rng.lognormvariate(math.log(700), 1.0)) + 40
    if u < 0.85:
        return int(rng.lognormvariate(math.log(16_000), 1.0))
    if u < 0.96:
        return min(int(rng.lognormvariate(math.log(70_000), 0.9)), 1_000_000)
    if u < 0.995:
        return int(rng.lognormvariate(math.log(300_000), 0.5))
    return rng.randrange(500_000, 3_000_000)


def think(rng: random.Random, median_ms: float, sigma: float, cap_ms: float) -> int:
    return int(min(cap_ms, rng.lognormvariate(math.log(median_ms), sigma)) * MS)


def plan(profile: str, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """The exchanges of one connection: (request bytes, response bytes, server think µs,
    client think µs before the next exchange). Request 0 means the server speaks first."""
    r = rng.randrange
    ex: list[tuple[int, int, int, int]] = []
    if profile in ("tls", "http"):
        if profile == "tls":
            hello = 517 if rng.random() < 0.6 else r(1700, 1900)
            if rng.random() < 0.5:  # session resumption: no certificate
                ex.append((hello, r(150, 400), r(200, 3000), r(100, 2000)))
            else:
                ex.append((hello, r(2600, 6500), r(200, 3000), r(100, 2000)))
            first = r(64, 130)
        else:
            first = 0
        n = 1 + min(40, int(rng.expovariate(1 / 0.5)))
        for i in range(n):
            ex.append((first + r(180, 900) if i == 0 else r(60, 800), web_object(rng),
                       think(rng, 2, 1.2, 300), think(rng, 25, 1.6, 3000)))
    elif profile == "ssh":
        ex += [(0, r(21, 42), r(200, 2000), r(100, 1000)),
               (r(1400, 1600), r(1000, 1200), r(200, 2000), r(100, 1000)),
               (r(40, 1200), r(500, 1700), r(500, 5000), r(100, 1000)),
               (r(80, 700), r(40, 600), r(500, 5000), think(rng, 200, 1.0, 2000))]
        if rng.random() < 0.12:  # scp / sftp copy one way or the other
            big = int(rng.lognormvariate(math.log(300_000), 1.2)) % 2_500_000 + 10_000
            ex.append((big, 36, 500, 1000) if rng.random() < 0.5 else (100, big, 500, 1000))
        else:
            for _ in range(r(3, 25)):
                ex.append((r(9, 25) * 4, r(9, 40) * 4, r(50, 400), think(rng, 180, 0.9, 2000)))
    elif profile == "db":
        for _ in range(min(r(1, 8), r(1, 30))):
            ex.append((r(40, 500), int(rng.lognormvariate(math.log(400), 1.3)) + 11,
                       r(100, 5000), think(rng, 2, 1.5, 400)))
    else:  # mail / xmpp: banner first, short command/response pairs, an occasional body
        ex.append((0, r(60, 130), r(500, 20000), r(100, 2000)))
        for _ in range(r(2, 7)):
            u = rng.random()
            q, resp = ((r(10, 60), r(20, 300)) if u < 0.8 else (r(2000, 40000), r(20, 80))
                       if u < 0.9 else (r(10, 60), r(2000, 30000)))
            ex.append((q, resp, r(200, 20000), think(rng, 20, 1.0, 1000)))
    return ex


def target_plan(rng: random.Random) -> list[tuple[int, int, int, int]]:
    """A short HTTPS connection to the SYN flood's target: TLS handshake and one request."""
    r = rng.randrange
    return [(517, r(2600, 6500), r(200, 1000), r(100, 1000)),
            (r(250, 900), r(500, 20_000), r(200, 2000), r(500, 5000))]


def tcp_flow(g: Gen, t: int, v6: bool) -> Flow:
    """One TCP connection attempt (see the module docstring)."""
    rng = g.rng
    u = rng.random()
    port, profile = g.tcp_port()
    cli = g.net.client(v6)
    to_target = g.synflood and not v6 and port == TARGET_PORT and t >= 0 and rng.random() < 0.5
    srv = TARGET if to_target else g.net.server(v6)
    key, cport = g.open(cli, srv, port, 6)
    rtt = int(rng.uniform(1, 4) * MS) if to_target else g.rtt(profile)
    conn = TcpConn(g, cli, srv, cport, port, rtt)
    c, s = conn.c, conn.s
    ev: list = [(t, c, SYN, 0, 0, 64240, 0, "syn")]
    if to_target:
        u = 1.0
    if u < 0.035:  # refused: the port is closed
        ev.append((t + rtt, s, RST | ACK, 0, 1, 0, 0, "bare"))
        yield from emit(ev, t)
        g.close(key)
        return
    if u < 0.055:  # unanswered: SYN retries with the same ISN after 1, 3, 7 s
        for k in range(rng.randrange(1, 4)):
            ev.append((t + ((2 << k) - 1) * 1_000_000, c, SYN, 0, 0, 64240, 0, "syn"))
        yield from emit(ev, t)
        g.close(key)
        return
    ev.append((t + rtt, s, SYN | ACK, 0, 1, 65160, 0, "syn"))
    t0, t = t, t + rtt + c.react
    ev.append((t, c, ACK, 1, 1, c.wfield(), 0, None))
    last = yield from emit(ev, t0)
    # a lossy flow (30 %) loses a segment in its first request (1 in 5) or response round,
    # then 3 % of its later rounds lose one too
    loss_q = loss_r = 0.0
    if rng.random() < 0.30:
        if rng.random() < 0.2:
            loss_q = 1.0
        else:
            loss_r = 1.0
    t_srv = t  # when the server last sent something (capture time)
    exchanges = target_plan(rng) if to_target else plan(profile, rng)
    for q, r, think_s, think_c in exchanges:
        ev = []
        if q:
            t_data, end = conn.transfer(ev, c, q, t, None if think_s < 20 * MS
                                        else min(conn.delack, think_s // 2), loss_q)
            loss_q = loss_q and 0.03
            t_resp = max(t_data + s.react + think_s, end)
        else:
            t_resp = t + s.react + think_s
        nxt_req = think_c + c.react
        t_data, end = conn.transfer(ev, s, r, t_resp, None if think_c < conn.delack
                                    else conn.delack, loss_r)
        loss_r = loss_r and 0.03
        t_srv = t_data
        t = max(t_data + nxt_req, end)
        last = yield from emit(ev, last)
    ev = conn.teardown(t, max(t_srv, last), to_target)
    if ev:
        yield from emit(ev, last)
    g.close(key)


# ------------------------------------------------------------------------------------------
# UDP


def _call(ts: int, e: tuple) -> Rec:
    return e[1](ts, *e[2:])


def run_events(ev: list, last: int) -> Iterator[tuple[int, Rec]]:
    """Yield (ts, record) for events (ts, builder, *args) in time order, built from t = 0 on."""
    return (yield from ordered(ev, last, _call))


DNS_WORDS = ("www", "api", "cdn", "static", "img", "mail", "login", "accounts", "update",
             "telemetry", "assets", "video", "push", "edge", "graph", "m", "auth", "docs",
             "news", "shop", "media", "ws", "gateway", "metrics", "files")
DNS_DOMAINS = ("example", "contoso", "fabrikam", "acme", "globex", "initech", "umbrella",
               "hooli", "piedpiper", "wayneent", "starkind", "tyrell", "cyberdyne", "soylent",
               "wonka", "gringotts", "oscorp", "aperture", "blackmesa", "vandelay")
DNS_TLDS = ("com", "com", "com", "net", "org", "io", "de", "co.uk", "fr", "jp", "nl")
OPT_RR = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


def dns_name(rng: random.Random) -> bytes:
    labels = [rng.choice(DNS_WORDS)]
    if rng.random() < 0.3:
        labels.append(f"{rng.choice(DNS_WORDS)}{rng.randrange(1, 40)}")
    labels.append(rng.choice(DNS_DOMAINS))
    labels += rng.choice(DNS_TLDS).split(".")
    return b"".join(bytes((len(x),)) + x.encode() for x in labels) + b"\x00"


def dns_query(qid: int, qname: bytes, qtype: int) -> bytes:
    return DNS_HDR.pack(qid, 0x0100, 1, 0, 0, 1) + qname + struct.pack("!HH", qtype, 1) + OPT_RR


def dns_response(seed: int, qid: int, qname: bytes, qtype: int, rcode: int,
                 cname: bytes | None) -> bytes:
    """A response in real wire format: optional CNAME, then 0-4 A/AAAA records (compressed
    names), the EDNS OPT record; TTL, count and addresses come from the bits of `seed`."""
    answers = []
    owner = 0xC00C
    if rcode == 0:
        ttl = (30, 60, 300, 3600)[seed & 3]
        if cname is not None:
            answers.append(struct.pack("!HHHIH", owner, 5, 1, ttl, len(cname)) + cname)
            owner = 0xC000 | (12 + len(qname) + 4 + 12)
        n = (1, 1, 2, 4)[seed >> 2 & 3] if qtype == 1 else (0, 1, 1, 2)[seed >> 2 & 3]
        for i in range(n):
            bits = seed >> (8 + 112 * i)
            if qtype == 1:
                net = Net.SERVER4[bits % len(Net.SERVER4)]
                rdata = bytes((*net, bits >> 4 & 0xFF, (bits >> 12 & 0xFF) % 254 + 1))
            else:
                rdata = (bytes.fromhex(Net.SERVER6[bits % len(Net.SERVER6)])
                         + (bits >> 4 & (1 << 96) - 1).to_bytes(12, "big"))
            answers.append(struct.pack("!HHHIH", owner, qtype, 1, ttl, len(rdata)) + rdata)
    return (DNS_HDR.pack(qid, 0x8180 | rcode, 1, len(answers), 0, 1) + qname
            + struct.pack("!HH", qtype, 1) + b"".join(answers) + OPT_RR)


def dns_query_rec(ts: int, p: Path, sport: int, qid: int, qname: bytes, qtype: int) -> bytes:
    return udp_rec(ts, p, sport, 53, dns_query(qid, qname, qtype))


def dns_response_rec(ts: int, p: Path, dport: int, seed: int, qid: int, qname: bytes,
                     qtype: int, rcode: int, cname: bytes | None) -> bytes:
    return udp_rec(ts, p, 53, dport, dns_response(seed, qid, qname, qtype, rcode, cname))


def dns_flow(g: Gen, t: int, v6: bool) -> Flow:
    """A and AAAA lookups from one socket to a resolver; some retried after a lost answer."""
    rng, net = g.rng, g.net
    cli = net.client(v6)
    res = rng.choice(net.RESOLVERS6 if v6 else net.RESOLVERS4)
    key, cport = g.open(cli, res, 53, 17)
    up, down = Path(net, cli, res, 17, rng), Path(net, res, cli, 17, rng)
    rtt = int(rng.choice((0.4, 3, 8, 15)) * MS * rng.uniform(0.7, 1.5))
    qname = dns_name(rng)
    cname = dns_name(rng) if rng.random() < 0.3 else None
    rcode = 3 if rng.random() < 0.05 else 0
    types = (1, 28) if rng.random() < 0.75 else (1,)
    ev: list = []
    tq = t
    for qtype in types:
        qid = rng.getrandbits(16)
        ta = tq
        if rng.random() < 0.04:  # the first answer is lost: retry with the same ID
            ev.append((ta, dns_query_rec, up, cport, qid, qname, qtype))
            ta += rng.choice((1, 2, 5)) * 1_000_000
        ev.append((ta, dns_query_rec, up, cport, qid, qname, qtype))
        ev.append((ta + rtt + rng.randrange(0, 400), dns_response_rec, down, cport,
                   rng.getrandbits(8 + 4 * 112), qid, qname, qtype, rcode, cname))
        tq += rng.randrange(20, 300)
    yield from run_events(ev, t)
    g.close(key)


def quic_header_long(typ: int, dcid: bytes, scid: bytes, n: int, pn: int) -> bytes:
    """Long header (Initial 0 / Handshake 2), even length: Initial pn 4 bytes with an empty
    token, Handshake pn 3 bytes; `n` is the protected payload length."""
    if typ == 0:
        return (bytes((0xC3,)) + b"\x00\x00\x00\x01\x08" + dcid + b"\x08" + scid + b"\x00"
                + struct.pack("!HI", 0x4000 | (n + 4), pn))
    return (bytes((0xE2,)) + b"\x00\x00\x00\x01\x08" + dcid + b"\x08" + scid
            + struct.pack("!H", 0x4000 | (n + 3)) + (pn & 0xFFFFFF).to_bytes(3, "big"))


def quic_rec(ts: int, p: Path, sport: int, dport: int, hdr: bytes, start: int, n: int) -> bytes:
    body, bsum = payload(start, n)
    ulen = 8 + len(hdr) + n
    total = p.pseudo + ulen + sport + dport + ulen + wsum(hdr) + bsum
    return frame(p, ts, ulen, UDP.pack(sport, dport, ulen, -total % 0xFFFF or 0xFFFF) + hdr, body)


def quic_flow(g: Gen, t: int, v6: bool) -> Flow:
    """A QUIC-like connection to 443/udp: Initial/Handshake, then request/response exchanges
    with short-header datagrams in slow-start rounds and client ACK packets."""
    rng, net = g.rng, g.net
    cli, srv = net.client(v6), net.server(v6)
    key, cport = g.open(cli, srv, 443, 17)
    up, down = Path(net, cli, srv, 17, rng), Path(net, srv, cli, 17, rng)
    rtt = g.rtt("tls")
    gap = rng.choice((12, 40, 120, 240))
    ocid, ccid, scid = rng.randbytes(8), rng.randbytes(8), rng.randbytes(8)
    base = rng.randrange(BLOB_PERIOD // 64) * 64
    pn = {True: 0, False: 0}
    full = 1252 if not v6 else 1232

    def dgram(ts: int, client: bool, hdr: bytes | None, n: int) -> tuple:
        k = pn[client]
        pn[client] = k + 1
        if hdr is None:  # short header: 0x40 | pn length 1, the peer's connection ID
            hdr = bytes((0x40,)) + (scid if client else ccid) + bytes((k & 0xFF,))
        start = (base + 64 * k + (0 if client else 4096)) % BLOB_PERIOD
        return (ts, quic_rec, up if client else down, cport if client else 443,
                443 if client else cport, hdr, start, n)

    ev = [dgram(t, True, quic_header_long(0, ocid, ccid, 1250 - 30, 0), 1250 - 30)]
    ts = t + rtt
    ev.append(dgram(ts, False, quic_header_long(0, ccid, scid, full - 30, 0), full - 30))
    ev.append(dgram(ts + gap, False, quic_header_long(2, ccid, scid, full - 28, 1), full - 28))
    n = rng.randrange(300, 900)
    ev.append(dgram(ts + 2 * gap, False, quic_header_long(2, ccid, scid, n, 2), n))
    ts += 2 * gap + 200
    ev.append(dgram(ts, True, quic_header_long(0, scid, ccid, 1250 - 30, 1), 1250 - 30))
    ev.append(dgram(ts + 30, True, quic_header_long(2, scid, ccid, 60, 2), 60))
    ts += 60
    last = yield from run_events(ev, t)
    cwnd = 10
    for _ in range(1 + min(20, int(rng.expovariate(1 / 0.7)))):
        ev = [dgram(ts, True, None, rng.randrange(40, 400))]
        left = -(-web_object(rng) // (full - 10))
        t0 = ts + rtt + rng.randrange(200, 3000)
        while left > 0:
            k = min(cwnd, left)
            left -= k
            for j in range(k):
                tj = t0 + j * gap
                ev.append(dgram(tj, False, None, full - 10 if left or j < k - 1
                                else rng.randrange(200, full - 10)))
                if j & 1 or j == k - 1:
                    ev.append(dgram(tj + 150, True, None, rng.randrange(30, 45)))
            t0 = max(t0 + rtt, t0 + k * gap + 200)
            cwnd = min(cwnd * 2, 400)
        ts = t0 + think(rng, 30, 1.5, 3000)
        last = yield from run_events(ev, last)
    if rng.random() < 0.3:  # CONNECTION_CLOSE from the client
        yield from run_events([dgram(max(ts, last), True, None, rng.randrange(20, 40))], last)
    g.close(key)


def rtp_rec(ts: int, p: Path, sport: int, dport: int, pt: int, seq: int, stamp: int,
            ssrc: int, start: int) -> bytes:
    hdr = RTP.pack(0x80, pt, seq & 0xFFFF, stamp & M32, ssrc)
    body, bsum = payload(start, 160)
    ulen = 8 + 12 + 160
    total = (p.pseudo + ulen + sport + dport + ulen + (0x80 << 8 | pt) + (seq & 0xFFFF)
             + (stamp & M32) + ssrc + bsum)
    return frame(p, ts, ulen, UDP.pack(sport, dport, ulen, -total % 0xFFFF or 0xFFFF) + hdr, body)


def rtp_flow(g: Gen, t: int, v6: bool) -> Flow:
    """A voice call: 12-byte RTP header + 160-byte G.711 payload every 20 ms, both ways."""
    rng, net = g.rng, g.net
    cli, srv = net.client(v6), net.server(v6)
    sport = rng.randrange(8192, 16384) * 2
    key, cport = g.open(cli, srv, sport, 17, even=True)
    up, down = Path(net, cli, srv, 17, rng), Path(net, srv, cli, 17, rng)
    n = int(rng.uniform(2, 25) * 50)
    pt = rng.choice((0, 8))
    streams = []
    for client, delay in ((True, 0), (False, g.rtt("tls") // 2 + rng.randrange(0, 20 * MS))):
        streams.append([t + delay, client, rng.getrandbits(16), rng.getrandbits(32),
                        rng.getrandbits(32), rng.randrange(BLOB_PERIOD // 32) * 32, 0])
    last = t
    while streams:
        st = min(streams, key=_ts)  # by nominal send time; the far side arrives with jitter
        due, client, seq, stamp, ssrc, base, i = st
        ts = due if client else due + rng.randrange(0, 1500)
        if ts < last:
            ts = last
        last = ts
        yield ts, (rtp_rec(ts, up if client else down, cport if client else sport,
                           sport if client else cport, pt | (0x80 if i == 0 else 0), seq,
                           stamp, ssrc, (base + 160 * i) % BLOB_PERIOD) if ts >= 0 else None)
        st[0] += 20 * MS
        st[2], st[3], st[6] = seq + 1, stamp + 160, i + 1
        if i + 1 >= n:
            streams.remove(st)
    g.close(key)


def one_way(g: Gen, v6: bool, servers4, servers6, port: int):
    """A client and one of the servers for a one-way UDP flow: (client, key, port, path)."""
    cli = g.net.client(v6)
    srv = g.rng.choice(servers6 if v6 else servers4)
    key, cport = g.open(cli, srv, port, 17)
    return cli, key, cport, Path(g.net, cli, srv, 17, g.rng)


def ntp_rec(ts: int, p: Path, sport: int) -> bytes:
    sec = T0 + ts // 1_000_000 + 2_208_988_800
    frac = (ts % 1_000_000) * (1 << 32) // 1_000_000
    body = struct.pack("!BBBbII4sQQQII", 0x23, 0, 6, -23, 0, 0, b"\0\0\0\0", 0, 0, 0, sec, frac)
    return udp_rec(ts, p, sport, 123, body)


def ntp_flow(g: Gen, t: int, v6: bool) -> Flow:
    """NTP client packets (48 bytes) to port 123, one-way."""
    rng = g.rng
    cli, key, cport, up = one_way(g, v6, g.net.ntp4, g.net.ntp6, 123)
    ev = [(t + i * rng.randrange(500, 2000) * MS, ntp_rec, up, cport)
          for i in range(rng.choice((1, 1, 1, 2, 4)))]
    yield from run_events(ev, t)
    g.close(key)


SYSLOG_APPS = ("sshd", "kernel", "systemd", "cron", "nginx", "postfix/smtpd", "dhclient", "sudo")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def syslog_rec(ts: int, p: Path, sport: int, pri: int, host: str, app: str, pid: int,
               text: str) -> bytes:
    tm = time.gmtime(T0 + ts // 1_000_000)
    msg = (f"<{pri}>{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:"
           f"{tm.tm_sec:02d} {host} {app}[{pid}]: {text}").encode()
    return udp_rec(ts, p, sport, 514, msg)


def syslog_flow(g: Gen, t: int, v6: bool) -> Flow:
    """BSD syslog messages to a collector on port 514, one-way."""
    rng = g.rng
    cli, key, cport, up = one_way(g, v6, g.net.syslog4, g.net.syslog6, 514)
    host = f"host-{cli[-2]:02x}{cli[-1]:02x}"
    ev = []
    ts = t
    for _ in range(rng.randrange(1, 20)):
        app = rng.choice(SYSLOG_APPS)
        text = f"session {rng.getrandbits(24):06x} event {rng.randrange(1000)} " + \
            "x" * rng.randrange(0, 300)
        ev.append((ts, syslog_rec, up, cport, rng.choice((13, 30, 38, 86, 134)), host, app,
                   rng.randrange(100, 40000), text))
        ts += think(rng, 40, 1.2, 1000)
    yield from run_events(ev, t)
    g.close(key)


# ------------------------------------------------------------------------------------------
# ICMP


def ping_body(ts: int) -> bytes:
    """Linux ping's 56 bytes: a struct timeval (little-endian) and the 0x10.. pattern."""
    return struct.pack("<qq", T0 + ts // 1_000_000, ts % 1_000_000) + PING_PATTERN


PING_PATTERN = bytes(range(0x10, 0x38))


def ping_rec(ts: int, p: Path, typ: int, ident: int, seq: int, sent: int) -> bytes:
    return icmp_rec(p, ts, typ, 0, ident << 16 | seq, ping_body(sent))


def ping_flow(g: Gen, t: int, v6: bool) -> Flow:
    """An echo request/reply sequence (ICMP or ICMPv6); some hosts never answer."""
    rng, net = g.rng, g.net
    cli, srv = net.client(v6), net.server(v6)
    up, down = Path(net, cli, srv, 58 if v6 else 1, rng), Path(net, srv, cli, 58 if v6 else 1, rng)
    req, rep = (128, 129) if v6 else (8, 0)
    ident = rng.getrandbits(16)
    rtt = g.rtt("tls")
    interval = int(rng.choice((1000, 200, 200, 100, 20, 10)) * MS)
    count = rng.randrange(3, 11)
    answered = rng.random() < 0.9
    ev = []
    for i in range(count):
        ts = t + i * interval
        ev.append((ts, ping_rec, up, req, ident, i + 1, ts))
        if answered:
            ev.append((ts + rtt + rng.randrange(0, 300), ping_rec, down, rep, ident, i + 1, ts))
    yield from run_events(ev, t)


def probe_and_quote(p: Path, ts: int, sport: int, dport: int, body: bytes,
                    hlim_sent: int, hlim_arrived: int) -> tuple[bytes | None, bytes]:
    """A UDP datagram from path `p` sent with TTL/hop limit `hlim_sent`, and the bytes an ICMP
    error about it quotes: its IP header as it arrived, then its first 8 bytes."""
    udp = udp_l4(p, sport, dport, body)
    n = 8 + len(body)
    if p.v6:
        quote = IP6.pack(p.vtcfl, n, 17, hlim_arrived, p.src, p.dst) + udp
        ip = IP6.pack(p.vtcfl, n, 17, hlim_sent, p.src, p.dst)
    else:
        ipid = p.ipid
        p.ipid = ipid + 1 & 0xFFFF
        quote = ip4_header(p.src, p.dst, 17, 20 + n, ipid, hlim_arrived, False) + udp
        ip = ip4_header(p.src, p.dst, 17, 20 + n, ipid, hlim_sent, False)
    rec = record(ts, p.eth, ip, udp, body) if ts >= 0 else None
    return rec, quote


def unreach_flow(g: Gen, t: int, v6: bool) -> Flow:
    """UDP datagrams to a closed port, each answered by an ICMP port unreachable."""
    rng, net = g.rng, g.net
    cli, srv = net.client(v6), net.server(v6)
    dport = rng.choice((53, 161, 443, 1900, 5353, rng.randrange(1024, 65536)))
    key, cport = g.open(cli, srv, dport, 17)
    up = Path(net, cli, srv, 17, rng)
    err = Path(net, srv, cli, 58 if v6 else 1, rng)
    hops = 64 - net.ttl(srv) if net.ttl(srv) < 64 else 12
    rtt = g.rtt("tls")
    if dport in (53, 5353):
        body = dns_query(rng.getrandbits(16), dns_name(rng), 1)
    elif dport == 443:
        body = rng.randbytes(1200)
    else:
        body = rng.randbytes(rng.randrange(20, 120))
    last = t
    for i in range(rng.randrange(1, 4)):
        ts = max(last, t + i * 1_000_000)
        rec, quote = probe_and_quote(up, ts, cport, dport, body, 64, max(1, 64 - hops))
        yield ts, rec
        ta = ts + rtt
        yield ta, (icmp_rec(err, ta, 1, 4, 0, quote) if v6 else
                   icmp_rec(err, ta, 3, 3, 0, quote)) if ta >= 0 else None
        last = ta
    g.close(key)


def trace_flow(g: Gen, t: int, v6: bool) -> Flow:
    """A UDP traceroute: 3 probes per hop to ports 33434+, time-exceeded from each router
    (some silent), port unreachable from the destination."""
    rng, net = g.rng, g.net
    cli, dst = net.client(v6), net.server(v6)
    hops = min(16, max(3, 64 - net.ttl(dst) if net.ttl(dst) < 64 else 12))
    key, cport = g.open(cli, dst, 33434, 17)
    up = Path(net, cli, dst, 17, rng)
    rtt = g.rtt("tls")
    body = bytes(range(0x40, 0x60))
    ts = t
    idx = 0
    for hop in range(1, hops + 1):
        src = dst if hop == hops else net.router(dst, hop)
        silent = hop not in (1, hops) and rng.random() < 0.1
        err = Path(net, src, cli, 58 if v6 else 1, rng,
                   ttl=net.ttl(dst) if hop == hops else (64 if v6 else 256) - hop)
        hop_rtt = max(200, rtt * hop // hops + rng.randrange(0, 2000))
        for _ in range(3):
            rec, quote = probe_and_quote(up, ts, cport, 33434 + idx, body, hop, 1)
            idx += 1
            yield ts, rec
            if silent:
                ts += 250 * MS
                continue
            ta = ts + hop_rtt
            if hop == hops:
                typ, code = (1, 4) if v6 else (3, 3)
            else:
                typ, code = (3, 0) if v6 else (11, 0)
            yield ta, icmp_rec(err, ta, typ, code, 0, quote) if ta >= 0 else None
            ts = ta + rng.randrange(20, 200)
    g.close(key)


# ------------------------------------------------------------------------------------------
# SYN flood


FLOOD = struct.Struct("!BBHHHBBH4s4sHHIIHHHHBBHBBBBIIBBBB")  # IPv4 + TCP SYN + 20 option bytes
FLOOD_OPTS = 0x0204 + 1460 + 0x0402 + 0x080A + 0x0103 + 0x0307
UPSTREAM_MAC = bytes.fromhex("00005e0001c8")


def flood_flow(g: Gen, t: int, pps: float) -> Flow:
    """SYNs at `pps` per second (Poisson) from random spoofed IPv4 sources to
    TARGET:TARGET_PORT, unanswered, forever."""
    rng = g.rng
    rand, bits, expo = rng.random, rng.getrandbits, rng.expovariate
    eth = g.net.mac(TARGET) + UPSTREAM_MAC + b"\x08\x00"
    dsum = wsum(TARGET)
    rate = pps / 1e6
    tf = float(t)
    while True:
        tf += expo(rate)
        ts = int(tf)
        while True:
            src = bits(32)
            a = src >> 24
            if not (a in (0, 10, 127) or a >= 224 or (a == 192 and src >> 16 & 0xFF == 168)
                    or (a == 172 and 16 <= src >> 16 & 0xFF < 32)
                    or (a == 100 and 64 <= src >> 16 & 0xFF < 128)
                    or (a == 169 and src >> 16 & 0xFF == 254)):
                break
        sport, isn, ipid, tsval = bits(16) | 1024, bits(32), bits(16), bits(32)
        ttl = 40 + int(rand() * 200)
        win = (64240, 29200, 65535, 14600)[bits(2)]
        ssum = src + dsum
        ipsum = -(0x4500 + 60 + ipid + 0x4000 + (ttl << 8 | 6) + ssum) % 0xFFFF
        tcpsum = -(ssum + 6 + 40 + sport + TARGET_PORT + isn + (10 << 12 | SYN) + win
                   + FLOOD_OPTS + tsval) % 0xFFFF
        g.flood_syns += 1
        yield ts, REC.pack(T0 + ts // 1_000_000, ts % 1_000_000, 74, 74) + eth + FLOOD.pack(
            0x45, 0, 60, ipid, 0x4000, ttl, 6, ipsum, src.to_bytes(4, "big"), TARGET, sport,
            TARGET_PORT, isn, 0, 10 << 12 | SYN, win, tcpsum, 0, 2, 4, 1460, 4, 2, 8, 10, tsval,
            0, 1, 3, 3, 7)


# ------------------------------------------------------------------------------------------
# the generator


KINDS = [(tcp_flow, 0.32), (dns_flow, 0.46), (quic_flow, 0.011), (rtp_flow, 0.0002),
         (ntp_flow, 0.03), (syslog_flow, 0.015), (ping_flow, 0.07), (unreach_flow, 0.02),
         (trace_flow, 0.0012)]
GAP_MEAN = 310 * MS  # mean idle time of a slot between two flows


class Gen:
    """Flow factory and shared state: the RNG, the hosts, the 5-tuples in use."""

    def __init__(self, seed: int, synflood: bool) -> None:
        self.rng = Rng(seed)
        self.net = Net(self.rng)
        self.synflood = synflood
        self.active: set[tuple] = set()
        self.flows = 0
        self.flood_syns = 0
        total = sum(w for _, w in KINDS)
        acc = 0.0
        self.cum = []
        for fn, w in KINDS:
            acc += w / total
            self.cum.append((acc, fn))
        tw = sum(w for _, w, _ in TCP_PORTS)
        acc = 0.0
        self.tcp_cum = []
        for port, w, prof in TCP_PORTS:
            acc += w / tw
            self.tcp_cum.append((acc, port, prof))

    def new_flow(self, t: int) -> Flow:
        """A new flow starting at `t`: its kind by KINDS weights, IPv6 one time in ten."""
        self.flows += 1
        u = self.rng.random()
        v6 = self.rng.random() < 0.10
        for acc, fn in self.cum:
            if u < acc:
                return fn(self, t, v6)
        return self.cum[-1][1](self, t, v6)

    def tcp_port(self) -> tuple[int, str]:
        """A server port and its profile, by TCP_PORTS weights."""
        u = self.rng.random()
        for acc, port, prof in self.tcp_cum:
            if u < acc:
                return port, prof
        return self.tcp_cum[-1][1:]

    def rtt(self, profile: str) -> int:
        """A round-trip time in µs: databases are near, the rest lognormal around 25 ms."""
        if profile == "db":
            return int(self.rng.uniform(0.3, 6) * MS)
        return int(min(350, max(1.0, self.rng.lognormvariate(math.log(25), 0.8))) * MS)

    def open(self, cli: bytes, srv: bytes, sport: int, proto: int,
             even: bool = False) -> tuple[tuple, int]:
        """An unused client port for (cli, srv, sport, proto); the tuple is held until close."""
        r = self.rng.randrange
        while True:
            cport = r(16384, 32767, 2) if even else r(32768, 61000)
            key = (cli, cport, srv, sport, proto)
            if key not in self.active:
                self.active.add(key)
                return key, cport

    def close(self, key: tuple) -> None:
        self.active.discard(key)


def warm_up(g: Gen, t: int) -> tuple[int, Rec, Flow]:
    """Run one slot from its first flow start `t` (< 0) to its first packet at or after t = 0:
    the flows of the warm-up and their packets before t = 0 (never built, dropped)."""
    while True:
        flow = g.new_flow(t)
        for ts, rec in flow:
            if ts >= 0:
                return ts, rec, flow
            t = ts
        t += int(g.rng.expovariate(1 / GAP_MEAN))


def generate(out: BinaryIO, packets: int, seed: int, kind: str,
             slots: int) -> tuple[int, int, int, Gen]:
    """Write `packets` records to `out`; returns (packets, bytes, span in µs, the generator).

    The warm-up runs slot by slot (packets before t = 0 are dropped, so their global order does
    not matter); from t = 0 on a heap of each slot's next packet merges the slots in time order
    (ties broken by insertion order), which keeps the output deterministic and N-independent."""
    g = Gen(seed, kind == "synflood")
    rng = g.rng
    heap: list = []
    tie = 0
    for _ in range(slots):
        ts, rec, flow = warm_up(g, -WARMUP + int(rng.random() * WARMUP / 3))
        heap.append((ts, tie, rec, flow))
        tie += 1
    if kind == "synflood":
        flow = flood_flow(g, 0, FLOOD_PER_SLOT * slots)
        ts, rec = next(flow)
        heap.append((ts, tie, rec, flow))
        tie += 1
    heapq.heapify(heap)
    out.write(PCAP_HEADER)
    size = len(PCAP_HEADER)
    buf: list[bytes] = []
    written = 0
    first = heap[0][0] if heap else 0
    last = first
    replace = heapq.heapreplace
    expo = rng.expovariate
    gap_rate = 1 / GAP_MEAN
    while written < packets:
        ts, _, rec, flow = heap[0]
        buf.append(rec)
        written += 1
        last = ts
        if len(buf) >= 2048:
            chunk = b"".join(buf)
            out.write(chunk)
            size += len(chunk)
            buf.clear()
        item = next(flow, None)
        if item is None:
            flow = g.new_flow(ts + int(expo(gap_rate)))
            item = next(flow)
        tie += 1
        replace(heap, (item[0], tie, item[1], flow))
    chunk = b"".join(buf)
    out.write(chunk)
    size += len(chunk)
    return written, size, last - first, g


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the pcap file to write")
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets to write")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--kind", choices=("mix", "synflood"), default="mix",
                    help="the realistic mix (default) or a SYN flood over a mix background")
    ap.add_argument("--flows", type=int, default=10_000, metavar="SLOTS",
                    help="concurrent flow slots (default 10000)")
    args = ap.parse_args(argv)
    if args.packets < 0 or args.flows < 1:
        ap.error("--packets must be >= 0 and --flows >= 1")
    t = time.perf_counter()
    # Millions of short-lived tuples and no reference cycles: the cyclic GC would only cost time
    # (about a quarter of it); collect rarely instead.
    gc.set_threshold(200_000, 50, 1000)
    with open(args.out, "wb") as f:
        n, size, span, g = generate(f, args.packets, args.seed, args.kind, args.flows)
    extra = f", {g.flood_syns:,} flood SYNs" if args.kind == "synflood" else ""
    print(f"{args.out}: {n:,} packets, {size:,} bytes ({size / max(n, 1):.0f}/packet), "
          f"{g.flows:,} flows started{extra}, span {span / 1e6:.2f} s, "
          f"{time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
