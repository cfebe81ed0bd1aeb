"""pcapng files, read like libpcap's sf-pcapng.c but without its one-link-type limit.

Each section (SHB) has its own byte order and its own interfaces, each interface its own link
type, `if_tsresol` and `if_tsoffset`. Timestamps are reduced to whole microseconds the way
libpcap does for Zeek (``sec = t // units + offset``, ``usec = frac * 10**6 // units``), then
``ts = sec + usec / 1e6``, Zeek's formula.

A block length (or a packet's captured length) libpcap would refuse is an error wherever it
stands; only a block of a sane length that runs past the end of the input is the truncated last
block, counted as ``truncated_final_record``.

Custom Blocks are skipped, except sniffer's own (its PEN, JSON records that `sniffer live -w`
writes next to the packets, see sniffer/output/pcapng.py), which go to an `on_custom` callback.
"""

from __future__ import annotations

import json
import struct
from typing import Callable, Iterator

from sniffer.capture.custom import timestamp, well_formed
from sniffer.capture.pcap import Packet, max_snaplen_for_dlt
from sniffer.capture.source import CHUNK, Source
from sniffer.errors import BadInputError
from sniffer.stats import Stats

SHB = 0x0A0D0D0A
IDB, PB, SPB, NRB, ISB, EPB, DSB = 1, 2, 3, 4, 5, 6, 0x0A
# Known blocks that carry nothing we need (name resolution, statistics, obsolete IRIG/ARINC,
# systemd journal, decryption secrets, custom blocks, Apple process info): skipped silently.
_IGNORED = frozenset({NRB, ISB, 7, 8, 9, DSB, 0x0BAD, 0x40000BAD, 0x80000001})
CUSTOM_BLOCKS = frozenset({0x0BAD, 0x40000BAD})  # copyable, not-to-be-copied
#: Private Enterprise Numbers whose Custom Blocks are sniffer's own records (see
#: sniffer/output/pcapng.py for the choice); the first is the one written.
SNIFFER_PENS = (32473,)
_BOM = 0x1A2B3C4D
MAX_BLOCK = 16 * 1024 * 1024  # libpcap INITIAL_MAX_BLOCKSIZE: longer blocks are corrupt
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14

# (linktype, adjusted snaplen, timestamp units per second, timestamp offset in seconds)
Iface = tuple[int, int, int, int]
#: Receives sniffer's custom records: `(ts, payload)`; see `read_pcapng`.
OnCustom = Callable[[float, dict], None]


def max_block_for(linktype: int) -> int:
    """The longest block libpcap accepts once an interface of `linktype` is known.

    libpcap's MAX_BLOCKSIZE_FOR_SNAPLEN (block header, EPB fields, the link type's maximum
    snaplen, 128 KiB of options, trailer), raised to INITIAL_MAX_BLOCKSIZE: only D-Bus goes
    above 16 MiB.
    """
    return max(MAX_BLOCK, 8 + 20 + max_snaplen_for_dlt(linktype) + 131072 + 4)


def is_pcapng(head: bytes) -> bool:
    """Whether the first 4 bytes are a Section Header Block type (same in both byte orders)."""
    return head[:4] == b"\x0a\x0d\x0d\x0a"


def read_pcapng(src: Source, stats: Stats, on_custom: OnCustom | None = None,
                directions: bool = False) -> Iterator[Packet]:
    """Yield `(ts, linktype, data, wirelen)` from EPB/SPB/PB blocks of every section.

    With `on_custom`, sniffer's own Custom Blocks (our PEN, a JSON object with ``"sniffer"``
    and ``"kind"``) are decoded and passed as `on_custom(ts, payload)` in file order: a block
    before a packet is delivered before that packet is yielded. `ts` is the payload's ``ts``
    (the stream's last packet time if it has none or an unusable one); `payload` is the whole
    decoded object. Custom Blocks of other PENs count as ``pcapng_custom_block_other``;
    undecodable ones, and records whose fields have the wrong types (sniffer.capture.custom),
    as ``pcapng_custom_block_bad``. Without `on_custom` every Custom Block is skipped silently.
    With `directions`, each tuple gets a fifth item: the EPB's direction (`epb_direction`).
    """
    name = src.name
    read = src.read
    buf = b""
    n = pos = 0
    base = 0  # offset of buf[0] in the (uncompressed) file
    e = "<"
    hdr = struct.Struct("<II").unpack_from
    u32 = struct.Struct("<I").unpack_from
    epb = struct.Struct("<IIIII").unpack_from
    ifaces: list[Iface] = []
    max_block = MAX_BLOCK  # raised by an interface whose link type allows longer frames
    last_ts = 0.0
    want = CHUNK
    while True:
        chunk = read(want)
        want = CHUNK
        if not chunk:
            if pos < n:  # a partial block at EOF
                stats["truncated_final_record"] += 1
            return
        buf = buf[pos:] + chunk if pos < n else chunk
        base += pos
        pos = 0
        n = len(buf)
        while pos + 12 <= n:
            btype, blen = hdr(buf, pos)
            end = pos + blen
            if btype == EPB and 32 <= blen <= max_block and not blen & 3:
                # The hot path: an Enhanced Packet Block.
                if end > n:
                    want = min(max(CHUNK, end - n), 16 * CHUNK)  # a long block: few reads
                    break  # need the next chunk
                if u32(buf, end - 4)[0] != blen:
                    raise _trailer_mismatch(name, base + pos, blen, u32(buf, end - 4)[0])
                iface, th, tl, caplen, wirelen = epb(buf, pos + 8)
                try:
                    linktype, snap, units, offset = ifaces[iface]
                except IndexError:
                    raise _no_idb(name, base + pos, iface) from None
                if caplen > blen - 32:
                    raise _caplen_past_block(name, base + pos, caplen, blen)
                if caplen > snap and caplen > max_snaplen_for_dlt(linktype):
                    raise _caplen_over_max(name, base + pos, caplen, linktype)
                start = pos + 28
                pos = end
                if units == 1_000_000:
                    sec, usec = divmod((th << 32) | tl, 1_000_000)
                else:
                    sec, frac = divmod((th << 32) | tl, units)
                    usec = frac * 1_000_000 // units
                last_ts = (sec + offset) + usec / 1e6
                if caplen < wirelen:
                    stats["snaplen_truncated"] += 1
                if caplen > snap:
                    stats["caplen_over_snaplen"] += 1
                if directions:
                    yield (last_ts, linktype, buf[start:start + caplen], wirelen,
                           epb_direction(buf, start + ((caplen + 3) & ~3), end - 4, e))
                else:
                    yield (last_ts, linktype, buf[start:start + caplen], wirelen)
                continue
            if btype == SHB:
                bom = buf[pos + 8:pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    e = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    e = ">"
                else:
                    raise BadInputError(name, base + pos, "section header has a bad byte-order "
                                                          f"magic 0x{bom.hex()}")
                hdr = struct.Struct(e + "II").unpack_from
                u32 = struct.Struct(e + "I").unpack_from
                epb = struct.Struct(e + "IIIII").unpack_from
                blen = hdr(buf, pos)[1]
                end = pos + blen
            if blen & 3 or blen < 12 or blen > max_block:
                # Refused wherever the block stands, like libpcap: a length it would never
                # accept is damage even if the block would also run past the end of the file.
                raise _bad_length(name, base + pos, blen, max_block)
            if end > n:
                want = min(max(CHUNK, end - n), 16 * CHUNK)
                break  # need the next chunk
            if u32(buf, end - 4)[0] != blen:
                raise _trailer_mismatch(name, base + pos, blen, u32(buf, end - 4)[0])
            if btype == EPB:
                raise _short(name, base + pos, "enhanced packet", blen)
            if btype == SPB:
                if blen < 16:
                    raise _short(name, base + pos, "simple packet", blen)
                if not ifaces:
                    raise _no_idb(name, base + pos, 0)
                linktype, snap, _units, _offset = ifaces[0]
                wirelen = u32(buf, pos + 8)[0]
                caplen = min(wirelen, snap, blen - 16)
                data = buf[pos + 12:pos + 12 + caplen]
                pos = end
                # An SPB has no timestamp (libpcap gives 0): keep the stream's clock instead.
                stats["pcapng_spb_no_timestamp"] += 1
                if caplen < wirelen:
                    stats["snaplen_truncated"] += 1
                yield (last_ts, linktype, data, wirelen, None) if directions else \
                    (last_ts, linktype, data, wirelen)
            elif btype == IDB:
                ifaces.append(_parse_idb(buf, pos, blen, e, name, base + pos))
                max_block = max(max_block, max_block_for(ifaces[-1][0]))
                pos = end
            elif btype == PB:
                if blen < 32:
                    raise _short(name, base + pos, "packet", blen)
                iface, _drops, th, tl, caplen, wirelen = struct.unpack_from(e + "HHIIII", buf,
                                                                            pos + 8)
                if iface >= len(ifaces):
                    raise _no_idb(name, base + pos, iface)
                linktype, snap, units, offset = ifaces[iface]
                if caplen > blen - 32:
                    raise _caplen_past_block(name, base + pos, caplen, blen)
                if caplen > snap and caplen > max_snaplen_for_dlt(linktype):
                    raise _caplen_over_max(name, base + pos, caplen, linktype)
                data = buf[pos + 28:pos + 28 + caplen]
                sec, frac = divmod((th << 32) | tl, units)
                last_ts = (sec + offset) + (frac * 1_000_000 // units) / 1e6
                pos = end
                stats["pcapng_obsolete_packet_block"] += 1
                if caplen < wirelen:
                    stats["snaplen_truncated"] += 1
                if caplen > snap:
                    stats["caplen_over_snaplen"] += 1
                yield (last_ts, linktype, data, wirelen, None) if directions else \
                    (last_ts, linktype, data, wirelen)
            elif btype == SHB:
                if blen < 28:
                    raise _short(name, base + pos, "section header", blen)
                major, minor = struct.unpack_from(e + "HH", buf, pos + 12)
                if major != 1:
                    raise BadInputError(name, base + pos,
                                        f"unsupported pcapng savefile version {major}.{minor}")
                ifaces = []  # interface ids restart in every section
                pos = end
            else:
                if on_custom is not None and btype in CUSTOM_BLOCKS:
                    _custom(buf, pos, end, u32, on_custom, stats, last_ts)
                elif btype not in _IGNORED:
                    stats["pcapng_unknown_block"] += 1
                pos = end


# epb_flags reception types (bits 2-4) -> sll_pkttype: unicast, multicast, broadcast, promiscuous
_RECEPTION = {0: 0, 1: 0, 2: 2, 3: 1, 4: 3}


def epb_direction(buf: bytes, pos: int, end: int, e: str) -> int | None:
    """The Linux sll_pkttype an EPB's options say (epb_flags, code 2), or None."""
    while pos + 4 <= end:
        code, olen = struct.unpack_from(e + "HH", buf, pos)
        if code == 0:
            break
        if code == 2 and olen == 4 and pos + 8 <= end:
            flags = struct.unpack_from(e + "I", buf, pos + 4)[0]
            if flags & 3 == 2:
                return 4  # outbound
            if flags & 3 == 1:
                return _RECEPTION.get((flags >> 2) & 7, 0)
            return None
        pos += 4 + ((olen + 3) & ~3)
    return None


def _custom(buf: bytes, pos: int, end: int, u32, on_custom: OnCustom, stats: Stats,
            last_ts: float) -> None:
    """Decode the Custom Block at buf[pos:end] and hand it to `on_custom` if it is ours."""
    if end - pos < 16:  # no room for the PEN
        stats["pcapng_custom_block_bad"] += 1
        return
    if u32(buf, pos + 8)[0] not in SNIFFER_PENS:
        stats["pcapng_custom_block_other"] += 1
        return
    # Our blocks carry no options: the data runs to the trailer, zero-padded (JSON never ends
    # in NUL, so stripping the padding is unambiguous).
    try:
        rec = json.loads(buf[pos + 12:end - 4].rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        rec = None
    # A damaged or hostile file can hold anything: only records shaped like the ones `sniffer
    # live -w` writes reach the correlator and detectors, which index and print their fields.
    if type(rec) is not dict or type(rec.get("sniffer")) is not int \
            or type(rec.get("kind")) is not str or not well_formed(rec):
        stats["pcapng_custom_block_bad"] += 1
        return
    ts = timestamp(rec.get("ts"))  # NaN, Infinity and 1e400 are JSON too
    on_custom(last_ts if ts is None else ts, rec)


def _bad_length(name: str, where: int, blen: int, max_block: int) -> BadInputError:
    """The error for a block length libpcap would refuse (not a multiple of 4, too short or
    too long)."""
    if blen & 3:
        return BadInputError(name, where, f"block length {blen} is not a multiple of 4")
    if blen < 12:
        return BadInputError(name, where, f"block length {blen} is less than 12")
    return BadInputError(name, where, f"block length {blen} is bigger than maximum {max_block}")


def _caplen_over_max(name: str, where: int, caplen: int, linktype: int) -> BadInputError:
    return BadInputError(name, where, f"invalid packet capture length {caplen}, bigger than "
                                      f"maximum of {max_snaplen_for_dlt(linktype)}")


def _short(name: str, where: int, what: str, blen: int) -> BadInputError:
    return BadInputError(name, where, f"{what} block length {blen} is too short")


def _trailer_mismatch(name: str, where: int, blen: int, trailer: int) -> BadInputError:
    return BadInputError(name, where, f"block total length in header {blen} and trailer "
                                      f"{trailer} don't match")


def _caplen_past_block(name: str, where: int, caplen: int, blen: int) -> BadInputError:
    return BadInputError(name, where, f"captured length {caplen} runs past the end of its "
                                      f"{blen}-byte block")


def _no_idb(name: str, where: int, iface: int) -> BadInputError:
    return BadInputError(name, where, f"a packet arrived on interface {iface}, but there's no "
                                      "Interface Description Block for that interface")


def _parse_idb(buf: bytes, pos: int, blen: int, e: str, name: str, where: int) -> Iface:
    """Link type, snaplen and the two timestamp options of an Interface Description Block."""
    if blen < 20:
        raise _short(name, where, "interface description", blen)
    linktype, _reserved, snaplen = struct.unpack_from(e + "HHI", buf, pos + 8)
    units, offset = 1_000_000, 0
    o, end = pos + 16, pos + blen - 4
    while o + 4 <= end:
        code, olen = struct.unpack_from(e + "HH", buf, o)
        if code == 0:
            break
        if o + 4 + olen > end:
            raise BadInputError(name, where, f"interface option {code} of length {olen} runs "
                                             "past the end of its block")
        if code == _OPT_TSRESOL:
            if olen != 1:
                raise BadInputError(name, where, f"if_tsresol option with length {olen} != 1")
            units = _tsresol_units(buf[o + 4], name, where)
        elif code == _OPT_TSOFFSET:
            if olen != 8:
                raise BadInputError(name, where, f"if_tsoffset option with length {olen} != 8")
            offset = struct.unpack_from(e + "q", buf, o + 4)[0]
        o += 4 + ((olen + 3) & ~3)
    limit = max_snaplen_for_dlt(linktype)
    snap = snaplen if 0 < snaplen <= limit else limit  # libpcap's adjustment
    return (linktype, snap, units, offset)


def _tsresol_units(v: int, name: str, where: int) -> int:
    """Timestamp units per second: 10**v, or 2**(v & 0x7f) when the top bit is set."""
    if v & 0x80:
        if v & 0x7F > 63:
            raise BadInputError(name, where, f"if_tsresol 2^-{v & 0x7F} is too high")
        return 1 << (v & 0x7F)
    if v > 19:
        raise BadInputError(name, where, f"if_tsresol 10^-{v} is too high")
    return 10 ** v
