"""pcapng through the compiled core's block walk (`sniffer._core.PcapngWalker`).

The same packets, directions, custom records, stats and errors as
`sniffer.capture.pcapng.read_pcapng` (the reference, which `tests/test_core_pcapng.py` holds it
to). The core walks every block (sections, interfaces, the packet blocks) in bounded windows
with the GIL released and hands frames over in batches; only the rare blocks come back here,
in file order: Custom Blocks (decoded by the reference's own code, so sniffer's records reach
`on_custom` exactly as they would) and blocks of unknown types (a stats key). Plain files and
pipes only: no gzip.
"""

from __future__ import annotations

import struct
from typing import Iterator

from sniffer.capture.corepcap import _bad, _core
from sniffer.capture.pcap import Packet
from sniffer.capture.pcapng import OnCustom, _custom
from sniffer.interrupt import STOP, Interrupted
from sniffer.stats import Stats

#: frames per batch (see corepcap.BATCH)
BATCH = 4096
_W = _core.PcapngWalker
#: the reference's stats keys of a frame's flags, in the order it counts them
_FLAGS = ((_W.FLAG_OBSOLETE_PACKET_BLOCK, "pcapng_obsolete_packet_block"),
          (_W.FLAG_SPB_NO_TIMESTAMP, "pcapng_spb_no_timestamp"),
          (_W.FLAG_SNAPLEN_TRUNCATED, "snaplen_truncated"),
          (_W.FLAG_CAPLEN_OVER_SNAPLEN, "caplen_over_snaplen"))
_U32 = {False: struct.Struct("<I").unpack_from, True: struct.Struct(">I").unpack_from}


def _count(stats: Stats, f: int) -> None:
    for bit, key in _FLAGS:
        if f & bit:
            stats[key] += 1


def read_pcapng_path(path: str, stats: Stats, name: str | None = None,
                     on_custom: OnCustom | None = None,
                     directions: bool = False,
                     window: int = _core.DEFAULT_WINDOW) -> Iterator[Packet]:
    """Yield what `read_pcapng` yields for the pcapng at `path` (`name`: what errors show;
    `window`: the core's read size, a block longer than it is read whole).

    Stats are counted where the reference counts them: a frame's just before it is yielded, a
    rare block's before the frame that follows it, `truncated_final_record` at the end.
    """
    name = path if name is None else name
    try:
        walker = _W(path, window, customs=on_custom is not None, directions=directions)
    except (_core.CoreError, _core.PanicException) as e:
        raise _bad(name, e, 0) from None
    while True:
        if STOP.signum:  # between two batches no packet is half-processed
            raise Interrupted(STOP.signum)
        try:
            data, offsets, lengths, wirelens, times, flags, linktypes, dirs, rare = \
                walker.next_batch(BATCH)
        except (_core.CoreError, _core.PanicException) as e:
            raise _bad(name, e, walker.offset) from None
        if not offsets and not rare:
            break
        if rare:
            yield from _with_rare(data, offsets, lengths, wirelens, times, flags, linktypes,
                                  dirs, rare, stats, on_custom, directions)
        elif directions:
            for o, n, w, ts, f, lt, d in zip(offsets, lengths, wirelens, times, flags,
                                             linktypes, dirs):
                if f:
                    _count(stats, f)
                yield ts, lt, data[o:o + n], w, d
        elif not any(flags):
            for o, n, w, ts, lt in zip(offsets, lengths, wirelens, times, linktypes):
                yield ts, lt, data[o:o + n], w
        else:
            for o, n, w, ts, f, lt in zip(offsets, lengths, wirelens, times, flags, linktypes):
                if f:
                    _count(stats, f)
                yield ts, lt, data[o:o + n], w
    truncated = walker.notes().get("truncated_final_record")
    if truncated:
        stats["truncated_final_record"] += truncated


def _with_rare(data, offsets, lengths, wirelens, times, flags, linktypes, dirs, rare,
               stats: Stats, on_custom: OnCustom | None, directions: bool) -> Iterator[Packet]:
    """A batch with rare blocks: each handled before the frame it preceded in the file."""
    r = 0
    for i in range(len(offsets) + 1):
        while r < len(rare) and rare[r][0] == i:
            _rare(rare[r], stats, on_custom)
            r += 1
        if i == len(offsets):
            break
        f = flags[i]
        if f:
            _count(stats, f)
        o = offsets[i]
        frame = data[o:o + lengths[i]]
        if directions:
            yield times[i], linktypes[i], frame, wirelens[i], dirs[i]
        else:
            yield times[i], linktypes[i], frame, wirelens[i]


def _rare(item: tuple, stats: Stats, on_custom: OnCustom | None) -> None:
    _index, block, big_endian, last_ts = item
    if block is None:
        stats["pcapng_unknown_block"] += 1
    elif on_custom is not None:
        _custom(block, 0, len(block), _U32[big_endian], on_custom, stats, last_ts)
