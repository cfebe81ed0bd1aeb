"""Deterministic mutations of real captures, for the robustness tests (test_mutation_sweep.py).

`Capture.parse(data)` finds the records of a pcap or pcapng file (and the IP header of each
packet, where the link type says where it is); `mutate(capture, rng)` returns one mutant and
the name of the operator that made it. Operators: bit flips, truncation, the format's length
and count fields (pcap caplen/len/snaplen, pcapng block total length, section length, option
lengths, EPB lengths and interface ids), the packets' IP total length / IHL / fragment bits,
IPv6 payload length and next header, TCP data offset, UDP length, records duplicated and
reordered, timestamps running backwards or out of range, files concatenated.

No reader of the project is used here: the walk is independent, so it also works on the files
the project rejects (and simply finds fewer records).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
               b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
EPB, SPB, PB, IDB, SHB = 6, 3, 2, 1, 0x0A0D0D0A
#: link types worth switching a capture to: every one the decoder knows, and a few it does not
LINKTYPES = (0, 1, 9, 10, 12, 14, 50, 51, 101, 104, 105, 108, 113, 119, 127, 129, 141, 192,
             228, 229, 239, 276, 147, 65535)
U32_EDGES = (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 262144, 262145, 16 << 20)
U16_EDGES = (0, 1, 0x7FFF, 0xFFFF)


@dataclass
class Record:
    """One packet-bearing record (or, for pcapng, any block)."""

    start: int  # offset of the record (header) in the file
    end: int  # offset just after it
    kind: int  # pcap: 0; pcapng: the block type
    ts: int | None = None  # offset of the timestamp fields, if any
    data: int | None = None  # offset of the captured bytes, if a packet
    caplen: int = 0
    linktype: int | None = None


@dataclass
class Capture:
    """A parsed capture: its bytes, format, byte order and records."""

    raw: bytes
    fmt: str  # "pcap", "pcapng" or "other"
    e: str = "<"
    header: int = 0  # pcap: 24; pcapng: 0 (the SHB is a record)
    records: list[Record] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: bytes) -> Capture:
        if raw[:4] in PCAP_MAGICS:
            return _parse_pcap(raw)
        if raw[:4] == PCAPNG_SHB:
            return _parse_pcapng(raw)
        return cls(raw, "other")

    @property
    def packets(self) -> list[Record]:
        return [r for r in self.records if r.data is not None]


def _parse_pcap(raw: bytes) -> Capture:
    e = PCAP_MAGICS[raw[:4]]
    cap = Capture(raw, "pcap", e, 24)
    if len(raw) < 24:
        return cap
    linktype = struct.unpack_from(e + "I", raw, 20)[0] & 0xFFFF
    pos = 24
    while pos + 16 <= len(raw):
        caplen = struct.unpack_from(e + "I", raw, pos + 8)[0]
        if pos + 16 + caplen > len(raw):
            break
        cap.records.append(Record(pos, pos + 16 + caplen, 0, pos, pos + 16, caplen, linktype))
        pos += 16 + caplen
    return cap


def _parse_pcapng(raw: bytes) -> Capture:
    cap = Capture(raw, "pcapng")
    e = "<"
    ifaces: list[int] = []
    pos = 0
    while pos + 12 <= len(raw):
        if raw[pos:pos + 4] == PCAPNG_SHB:
            bom = raw[pos + 8:pos + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack_from(e + "II", raw, pos)
        if blen < 12 or blen & 3 or pos + blen > len(raw):
            break
        rec = Record(pos, pos + blen, btype)
        if btype == IDB and blen >= 20:
            ifaces.append(struct.unpack_from(e + "H", raw, pos + 8)[0])
        elif btype == EPB and blen >= 32:
            iface, _th, _tl, caplen = struct.unpack_from(e + "IIII", raw, pos + 8)
            rec.ts, rec.data, rec.caplen = pos + 12, pos + 28, min(caplen, blen - 32)
            rec.linktype = ifaces[iface] if iface < len(ifaces) else None
        elif btype == SPB and blen >= 16 and ifaces:
            rec.data, rec.caplen, rec.linktype = pos + 12, blen - 16, ifaces[0]
        cap.records.append(rec)
        cap.e = e
        pos += blen
    return cap


# --- where the IP and transport headers of a packet are ------------------------------------

_LINK_HDR = {113: 16, 276: 20, 0: 4, 108: 4, 12: 0, 14: 0, 101: 0, 228: 0, 229: 0}


def ip_offset(linktype: int | None, frame: bytes) -> int | None:
    """Offset of the IP header in `frame`, or None (unknown link type, not IP)."""
    if linktype == 1:
        off, n = 14, len(frame)
        if n < 14:
            return None
        et = int.from_bytes(frame[12:14], "big")
        while et in (0x8100, 0x88A8, 0x9100) and off + 4 <= n:
            et = int.from_bytes(frame[off + 2:off + 4], "big")
            off += 4
        return off if et in (0x0800, 0x86DD) else None
    off = _LINK_HDR.get(linktype) if linktype is not None else None
    if off is None:  # rarer link layers: the first plausible IPv4 header in the first bytes
        for i in range(min(len(frame) - 20, 64)):
            if frame[i] == 0x45 and frame[i + 9] in (1, 6, 17, 47, 58):
                return i
        return None
    return off if len(frame) > off and frame[off] >> 4 in (4, 6) else None


def l4_offset(frame: bytes, ip: int) -> tuple[int, int] | None:
    """(transport header offset, protocol) after the IP header at `ip`, if it is in the frame."""
    if len(frame) < ip + 20:
        return None
    if frame[ip] >> 4 == 4:
        return ip + ((frame[ip] & 15) << 2), frame[ip + 9]
    if len(frame) < ip + 40:
        return None
    return ip + 40, frame[ip + 6]


# --- the operators -------------------------------------------------------------------------

def _put(buf: bytearray, off: int, fmt: str, value: int) -> None:
    size = struct.calcsize(fmt)
    if 0 <= off and off + size <= len(buf):
        struct.pack_into(fmt, buf, off, value & ((1 << (8 * size)) - 1))


def _bitflip(cap: Capture, rng: random.Random) -> bytes:
    buf = bytearray(cap.raw)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _bitflip_head(cap: Capture, rng: random.Random) -> bytes:
    """Flips in the file header / first block, where one bit changes the most."""
    buf = bytearray(cap.raw)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(min(len(buf), 64))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _byte_noise(cap: Capture, rng: random.Random) -> bytes:
    """A run of random bytes over a random place."""
    buf = bytearray(cap.raw)
    at, n = rng.randrange(len(buf)), rng.randint(1, 64)
    buf[at:at + n] = rng.randbytes(min(n, len(buf) - at))
    return bytes(buf)


def _truncate(cap: Capture, rng: random.Random) -> bytes:
    return cap.raw[:rng.randrange(len(cap.raw))]


def _truncate_in_record(cap: Capture, rng: random.Random) -> bytes:
    """A cut inside a record's header or body (the 'truncated last record' case)."""
    if not cap.records:
        return _truncate(cap, rng)
    r = rng.choice(cap.records)
    return cap.raw[:rng.randrange(r.start, r.end)]


def _edge(rng: random.Random, edges: tuple[int, ...], current: int) -> int:
    return rng.choice(edges + (current + 1, current - 1, current * 2))


def _record_lengths(cap: Capture, rng: random.Random) -> bytes:
    """pcap caplen / len, pcapng block total length (header, trailer or both) set to edges."""
    if not cap.records:
        return _bitflip_head(cap, rng)
    buf = bytearray(cap.raw)
    e = cap.e
    for r in rng.sample(cap.records, min(len(cap.records), rng.choice((1, 1, 2, 5)))):
        if cap.fmt == "pcap":
            field_off = r.start + rng.choice((8, 12))
            cur = struct.unpack_from(e + "I", buf, field_off)[0]
            _put(buf, field_off, e + "I", _edge(rng, U32_EDGES, cur))
        else:
            cur = r.end - r.start
            value = _edge(rng, U32_EDGES + (12, 16, 28, 32), cur)
            where = rng.choice(("head", "trail", "both"))
            if where in ("head", "both"):
                _put(buf, r.start + 4, e + "I", value)
            if where in ("trail", "both"):
                _put(buf, r.end - 4, e + "I", value)
    return bytes(buf)


def _file_header(cap: Capture, rng: random.Random) -> bytes:
    """pcap snaplen / link type / version; pcapng section length, version, IDB link type and
    snaplen, EPB interface id."""
    buf = bytearray(cap.raw)
    e = cap.e
    if cap.fmt == "pcap":
        what = rng.choice(("snaplen", "linktype", "version", "magic"))
        if what == "snaplen":
            _put(buf, 16, e + "I", rng.choice(U32_EDGES))
        elif what == "linktype":
            _put(buf, 20, e + "I", rng.choice(LINKTYPES))
        elif what == "version":
            _put(buf, 4, e + "H", rng.choice((1, 2, 3)))
            _put(buf, 6, e + "H", rng.choice((0, 1, 3, 4, 5, 0xFFFF)))
        else:  # the other precision: microseconds <-> nanoseconds
            buf[0:4] = {b"\xd4\xc3\xb2\xa1": b"\x4d\x3c\xb2\xa1", b"\x4d\x3c\xb2\xa1":
                        b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4": b"\xa1\xb2\x3c\x4d",
                        b"\xa1\xb2\x3c\x4d": b"\xa1\xb2\xc3\xd4"}[bytes(buf[0:4])]
        return bytes(buf)
    if cap.fmt != "pcapng" or not cap.records:
        return _bitflip_head(cap, rng)
    shbs = [r for r in cap.records if r.kind == SHB]
    idbs = [r for r in cap.records if r.kind == IDB]
    epbs = [r for r in cap.records if r.kind == EPB]
    what = rng.choice(("section", "version", "idb_linktype", "idb_snaplen", "epb_iface",
                       "epb_caplen", "epb_wirelen"))
    if what in ("section", "version") and shbs:
        r = rng.choice(shbs)
        if what == "section":
            _put(buf, r.start + 16, e + "Q", rng.choice((0, 1, 12, 0x7FFFFFFFFFFFFFFF,
                                                         0xFFFFFFFFFFFFFFFF, 1 << 40)))
        else:
            _put(buf, r.start + 12, e + "H", rng.choice((0, 2, 0xFFFF)))
    elif what.startswith("idb") and idbs:
        r = rng.choice(idbs)
        if what == "idb_linktype":
            _put(buf, r.start + 8, e + "H", rng.choice(LINKTYPES))
        else:
            _put(buf, r.start + 12, e + "I", rng.choice(U32_EDGES))
    elif epbs:
        r = rng.choice(epbs)
        off = {"epb_iface": 8, "epb_caplen": 20, "epb_wirelen": 24}.get(what, 8)
        cur = struct.unpack_from(e + "I", buf, r.start + off)[0]
        _put(buf, r.start + off, e + "I", _edge(rng, U32_EDGES, cur))
    else:
        return _bitflip_head(cap, rng)
    return bytes(buf)


def _options(cap: Capture, rng: random.Random) -> bytes:
    """An option length (SHB, IDB or EPB options) set to 0 / the maximum / odd, or an IDB's
    if_tsresol / if_tsoffset value set to extremes."""
    if cap.fmt != "pcapng":
        return _record_lengths(cap, rng)
    found: list[tuple[int, int, int, int]] = []  # (option offset, code, length, block type)
    e = cap.e
    for r in cap.records:
        first = {SHB: 24, IDB: 16}.get(r.kind)
        if r.kind == EPB and r.data is not None:
            first = 28 + ((r.caplen + 3) & ~3)
        if first is None:
            continue
        o, end = r.start + first, r.end - 4
        while o + 4 <= end:
            code, olen = struct.unpack_from(e + "HH", cap.raw, o)
            found.append((o, code, olen, r.kind))
            if code == 0:
                break
            o += 4 + ((olen + 3) & ~3)
    if not found:
        return _record_lengths(cap, rng)
    buf = bytearray(cap.raw)
    o, code, olen, kind = rng.choice(found)
    if kind == IDB and code in (9, 14) and rng.random() < 0.5:
        if code == 9 and olen >= 1:  # if_tsresol
            buf[o + 4] = rng.choice((0, 3, 6, 9, 19, 20, 0x80, 0x80 | 63, 0x80 | 64, 0xFF))
        elif olen >= 8:  # if_tsoffset
            _put(buf, o + 4, e + "q", rng.choice((-(1 << 63), (1 << 63) - 1, -1, 1 << 40)))
        return bytes(buf)
    _put(buf, o + 2, e + "H", _edge(rng, U16_EDGES + (3, 8), olen))
    return bytes(buf)


def _packet_headers(cap: Capture, rng: random.Random) -> bytes:
    """IP / IPv6 / TCP / UDP length and count fields of some packets set to 0 or the maximum."""
    pkts = cap.packets
    if not pkts:
        return _bitflip(cap, rng)
    buf = bytearray(cap.raw)
    k = len(pkts) if rng.random() < 0.15 else rng.choice((1, 1, 3, 10))
    for r in rng.sample(pkts, min(k, len(pkts))):
        frame = cap.raw[r.data:r.data + r.caplen]
        ip = ip_offset(r.linktype, frame)
        if ip is None or ip + 20 > len(frame):
            continue
        a = r.data + ip
        v4 = frame[ip] >> 4 == 4
        choice = rng.choice(("ip_len", "ip_len", "ihl", "frag", "proto", "l4", "l4", "l4"))
        if choice == "ip_len":
            _put(buf, a + (2 if v4 else 4), "!H", _edge(rng, U16_EDGES + (20, 40),
                                                          int.from_bytes(frame[ip + 2:ip + 4],
                                                                         "big")))
        elif choice == "ihl" and v4:
            buf[a] = 0x40 | rng.choice((0, 1, 4, 6, 15))
        elif choice == "frag" and v4:
            _put(buf, a + 6, "!H", rng.choice((0x2000, 0x2001, 0x1FFF, 0x3FFF, 0x0001, 0x4000)))
        elif choice in ("frag", "ihl"):  # IPv6: an extension header where there is none
            buf[a + 6] = rng.choice((0, 43, 44, 50, 51, 59, 60, 135))
        elif choice == "proto":
            buf[a + (9 if v4 else 6)] = rng.choice((0, 1, 4, 6, 17, 41, 47, 58, 132, 255))
        else:
            l4 = l4_offset(frame, ip)
            if l4 is None:
                continue
            t, proto = l4
            t += r.data
            if proto == 6:
                if rng.random() < 0.7:  # data offset
                    _put(buf, t + 12, "B", rng.choice((0x00, 0x10, 0x40, 0xF0, 0xFF)))
                else:  # flags
                    _put(buf, t + 13, "B", rng.randrange(256))
            elif proto == 17:
                _put(buf, t + 4, "!H", rng.choice(U16_EDGES + (8, 7)))
            elif t + 1 < len(buf):  # ICMP and others: type/code
                buf[t] = rng.randrange(256)
                buf[t + 1] = rng.randrange(256)
    return bytes(buf)


def _rebuild(cap: Capture, order: list[Record]) -> bytes:
    """The file with its records in `order` (the bytes before the first record kept)."""
    if not cap.records:
        return cap.raw
    head = cap.raw[:cap.records[0].start]
    tail = cap.raw[cap.records[-1].end:]
    return head + b"".join(cap.raw[r.start:r.end] for r in order) + tail


def _movable(cap: Capture) -> tuple[list[Record], list[Record]]:
    """Records that may move (packets; all of them in pcap) and those that stay first."""
    if cap.fmt == "pcap":
        return [], list(cap.records)
    fixed = [r for r in cap.records if r.kind in (SHB, IDB)]
    return fixed, [r for r in cap.records if r.kind not in (SHB, IDB)]


def _duplicate(cap: Capture, rng: random.Random) -> bytes:
    """Some records repeated, once or many times, in place or elsewhere."""
    if not cap.records:
        return cap.raw + cap.raw[-rng.randint(1, 64):]
    order = list(cap.records)
    for _ in range(rng.randint(1, 5)):
        r = rng.choice(cap.records)
        times = rng.choice((1, 1, 2, 50))
        at = rng.randrange(len(order) + 1) if rng.random() < 0.5 else order.index(r)
        order[at:at] = [r] * times
    return _rebuild(cap, order)


def _reorder(cap: Capture, rng: random.Random) -> bytes:
    """Records shuffled (all, a window, or the whole file reversed); pcapng blocks too."""
    fixed, movable = _movable(cap)
    if len(movable) < 2:
        return _bitflip(cap, rng)
    how = rng.choice(("shuffle", "window", "reverse", "everything"))
    if how == "everything":  # IDBs and SHBs as well: packets before their interface
        order = list(cap.records)
        rng.shuffle(order)
        return _rebuild(cap, order)
    movable = list(movable)
    if how == "shuffle":
        rng.shuffle(movable)
    elif how == "reverse":
        movable.reverse()
    else:
        i = rng.randrange(len(movable) - 1)
        j = min(len(movable), i + rng.randint(2, 10))
        window = movable[i:j]
        rng.shuffle(window)
        movable[i:j] = window
    # pcapng: keep the header blocks in front, in their order
    return _rebuild(cap, sorted(fixed, key=lambda r: r.start) + movable)


def _timestamps(cap: Capture, rng: random.Random) -> bytes:
    """Timestamps running backwards, jumping, all equal, or at the edges of their range."""
    stamped = [r for r in cap.records if r.ts is not None]
    if not stamped:
        return _bitflip(cap, rng)
    buf = bytearray(cap.raw)
    e = cap.e
    how = rng.choice(("backwards", "backwards", "jump", "extreme", "same"))
    values = [struct.unpack_from(e + "II", cap.raw, r.ts) for r in stamped]
    if how == "backwards":
        values = values[::-1]
    elif how == "same":
        values = [values[0]] * len(values)
    for i, r in enumerate(stamped):
        hi, lo = values[i]
        if how == "jump" and rng.random() < 0.2:
            hi = (hi + rng.choice((-100000, -1, 1, 86400 * 365, 1 << 31))) & 0xFFFFFFFF
        elif how == "extreme" and rng.random() < 0.3:
            hi, lo = rng.choice(((0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (hi, 999_999_999),
                                 (hi, 1_000_000), (0x7FFFFFFF, 0)))
        struct.pack_into(e + "II", buf, r.ts, hi, lo)
    return bytes(buf)


def _concat(cap: Capture, rng: random.Random) -> bytes:
    """The file twice in a row (a second file header mid-stream; pcapng: a second section)."""
    return cap.raw + cap.raw[:rng.randrange(1, len(cap.raw) + 1)]


OPERATORS = {
    "bitflip": _bitflip, "bitflip_head": _bitflip_head, "byte_noise": _byte_noise,
    "truncate": _truncate, "truncate_in_record": _truncate_in_record,
    "record_lengths": _record_lengths, "file_header": _file_header, "options": _options,
    "packet_headers": _packet_headers, "duplicate": _duplicate, "reorder": _reorder,
    "timestamps": _timestamps, "concat": _concat,
}
# how often each is drawn: the structure-aware ones more than blind bit flips
_WEIGHTS = {"bitflip": 3, "bitflip_head": 2, "byte_noise": 1, "truncate": 2,
            "truncate_in_record": 2, "record_lengths": 3, "file_header": 2, "options": 2,
            "packet_headers": 4, "duplicate": 2, "reorder": 2, "timestamps": 2, "concat": 1}


def mutate(cap: Capture, rng: random.Random) -> tuple[str, bytes]:
    """One mutant of `cap`: (operator name, bytes); sometimes two operators stacked."""
    names = list(_WEIGHTS)
    name = rng.choices(names, weights=[_WEIGHTS[n] for n in names])[0]
    out = OPERATORS[name](cap, rng) if cap.raw else b""
    if rng.random() < 0.1 and out:  # a second mutation on top of the first
        second = rng.choice(("bitflip", "truncate", "packet_headers", "record_lengths"))
        out = OPERATORS[second](Capture.parse(out), rng)
        name = f"{name}+{second}"
    return name, out
