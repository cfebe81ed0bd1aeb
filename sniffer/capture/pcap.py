"""Classic pcap savefiles, read the way libpcap's sf-pcap.c reads them (Zeek reads through it).

Timestamps follow libpcap opened at microsecond precision, as Zeek opens files: nanosecond
files are truncated to whole microseconds, then ``ts = sec + usec / 1e6`` exactly as Zeek's
``Packet::Init`` computes it, so our floats are bit-identical to Zeek's.
"""

from __future__ import annotations

import struct
from typing import Callable, Iterator

from sniffer.capture.source import CHUNK, Source
from sniffer.errors import BadInputError
from sniffer.stats import Stats

Packet = tuple[float, int, bytes, int]

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
MAX_SNAPLEN = 262144  # libpcap MAXIMUM_SNAPLEN: longer records are corrupt, not packets
# libpcap max_snaplen_for_dlt(): the link types whose frames may be longer (D-Bus messages,
# Elektrobit EBHSCR, USBPcap); the LINKTYPE and DLT numbers are the same for these three.
_BIG_SNAPLEN = {231: 128 * 1024 * 1024, 279: 8 * 1024 * 1024, 249: 1024 * 1024}
_HEADER = 24
_LT_RESERVED1 = 0x03FF0000  # libpcap LT_RESERVED1(); bits 26-31 are FCS info, ignored


def max_snaplen_for_dlt(linktype: int) -> int:
    """The longest record libpcap accepts for `linktype`: longer is a damaged file, anywhere."""
    return _BIG_SNAPLEN.get(linktype, MAX_SNAPLEN)


def is_pcap(head: bytes) -> bool:
    """Whether the first 4 bytes are a classic pcap magic (either precision, either order)."""
    if len(head) < 4:
        return False
    return (struct.unpack_from("<I", head)[0] in (MAGIC_US, MAGIC_NS)
            or struct.unpack_from(">I", head)[0] in (MAGIC_US, MAGIC_NS))


def read_pcap(src: Source, stats: Stats) -> Iterator[Packet]:
    """Yield `(ts, linktype, data, wirelen)`; header problems raise BadInputError."""
    hdr = src.read_exact(_HEADER)
    name = src.name
    if len(hdr) < _HEADER:
        raise BadInputError(name, 0, f"truncated pcap file header ({len(hdr)} of {_HEADER} bytes)")
    e = "<" if struct.unpack_from("<I", hdr)[0] in (MAGIC_US, MAGIC_NS) else ">"
    magic, major, minor, _zone, _sigfigs, snaplen, ltfield = struct.unpack_from(e + "IHHiIII", hdr)
    if major != 2 or minor > 4:
        raise BadInputError(name, 4, f"unsupported pcap savefile version {major}.{minor}")
    if ltfield & _LT_RESERVED1:
        raise BadInputError(name, 20, "savefile linktype reserved field not zero "
                                      f"(0x{ltfield & _LT_RESERVED1:08x})")
    # libpcap pcap_adjust_snapshot(): 0 or oversized snaplen means "the maximum".
    linktype = ltfield & 0xFFFF
    limit = max_snaplen_for_dlt(linktype)
    snap = snaplen if 0 < snaplen <= limit else limit
    return _records(src, stats, _unpacker(e, minor), magic == MAGIC_NS, linktype, snap, limit)


def _unpacker(e: str, minor: int) -> Callable[[bytes, int], tuple[int, int, int, int]]:
    """Record-header unpacker; versions before 2.4 may have caplen and len swapped (libpcap)."""
    unpack = struct.Struct(e + "IIII").unpack_from
    if minor >= 4:
        return unpack
    if minor < 3:
        def swapped(b: bytes, o: int) -> tuple[int, int, int, int]:
            s, f, c, w = unpack(b, o)
            return s, f, w, c
        return swapped

    def maybe_swapped(b: bytes, o: int) -> tuple[int, int, int, int]:
        s, f, c, w = unpack(b, o)
        return (s, f, w, c) if c > w else (s, f, c, w)
    return maybe_swapped


def _records(src: Source, stats: Stats, unpack: Callable[[bytes, int], tuple[int, int, int, int]],
             ns: bool, linktype: int, snap: int, limit: int) -> Iterator[Packet]:
    """The hot loop: unpack record headers from big chunks, slice out the packet bytes.

    A caplen above `limit` is refused before anything else, as libpcap does: wherever the
    record stands, even if its claimed body would run past the end of the file, it is damage,
    not a capture cut short (only a record whose sane length runs past EOF is that).
    """
    read = src.read
    fmax = 1_000_000_000 if ns else 1_000_000
    buf = b""
    n = pos = 0
    want = CHUNK
    base = _HEADER  # offset of buf[0] in the (uncompressed) file
    while True:
        chunk = read(want)
        want = CHUNK
        if not chunk:
            if pos < n:  # a partial record header or body at EOF
                stats["truncated_final_record"] += 1
            return
        buf = buf[pos:] + chunk if pos < n else chunk
        base += pos
        pos = 0
        n = len(buf)
        while pos + 16 <= n:
            sec, frac, caplen, wirelen = unpack(buf, pos)
            start = pos + 16
            pos = start + caplen
            if pos > n or caplen > snap:
                pos = start - 16
                if caplen > limit:
                    raise BadInputError(src.name, base + pos, f"invalid packet capture length "
                                        f"{caplen}, bigger than maximum of {limit}")
                if start + caplen > n:
                    # a long record (D-Bus: up to 128 MiB) in few reads, not one per CHUNK
                    want = min(max(CHUNK, start + caplen - n), 16 * CHUNK)
                    break  # need the next chunk
                # libpcap reads the record but keeps only the first `snap` bytes
                pos = start + caplen
                yield _trimmed(stats, sec, frac, ns, linktype, buf[start:start + snap], wirelen)
                continue
            if caplen < wirelen:
                stats["snaplen_truncated"] += 1
            if frac >= fmax:  # sub-second overflow: Zeek's sec + usec/1e6 carries it over
                stats["invalid_timestamp"] += 1
            yield (sec + (frac // 1000 if ns else frac) / 1e6, linktype, buf[start:pos], wirelen)


def _trimmed(stats: Stats, sec: int, frac: int, ns: bool, linktype: int, data: bytes,
             wirelen: int) -> Packet:
    """The rare record with snaplen < caplen <= the maximum, cut to the snaplen like libpcap."""
    stats["caplen_over_snaplen"] += 1
    if len(data) < wirelen:
        stats["snaplen_truncated"] += 1
    if frac >= (1_000_000_000 if ns else 1_000_000):
        stats["invalid_timestamp"] += 1
    return (sec + (frac // 1000 if ns else frac) / 1e6, linktype, data, wirelen)
