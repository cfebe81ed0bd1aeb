"""Capture stage: pcap / pcapng files (plain or gzip, or `-` for stdin) to packet tuples.

`open_capture(paths, stats)` yields `(ts, linktype, data, wirelen)` per packet, one
time-ordered stream over all paths (see docs/design.md). Errors are `BadInputError`, raised
from the iterator; packets yielded before an error stay valid.

`open_capture(paths, stats, on_custom)` also hands sniffer's own pcapng Custom Blocks (the
records `sniffer live -w` writes next to the packets) to `on_custom(ts, payload)`, each one
before the packet that follows it in its file.

With `directions=True` every tuple has a fifth item: the frame's direction as a Linux
``sll_pkttype`` (0 to this host, 1 broadcast, 2 multicast, 3 another host, 4 outgoing) from a
pcapng EPB's flags option, or None where the file does not say (classic pcap, no flags). The
detectors want it; the plain pipeline does not pay for it.
"""

from __future__ import annotations

import functools
from typing import Iterator

from sniffer.capture.merge import merge_files
from sniffer.capture.pcap import Packet, is_pcap, read_pcap
from sniffer.capture.pcapng import OnCustom, is_pcapng, read_pcapng
from sniffer.capture.source import open_source
from sniffer.errors import BadInputError
from sniffer.stats import Stats

__all__ = ["OnCustom", "Packet", "open_capture", "read_file"]


def open_capture(paths: list[str], stats: Stats, on_custom: OnCustom | None = None,
                 directions: bool = False) -> Iterator[Packet]:
    """One time-ordered stream of `(ts, linktype, data, wirelen)` over `paths`.

    `on_custom(ts, payload)`, when given, receives sniffer's custom records (pcapng only), in
    file order relative to the packets: a record is delivered before the next packet of its
    file is yielded; records after a file's last packet right after that packet.
    """
    reader = functools.partial(read_file, directions=True) if directions else read_file
    if on_custom is not None:
        if len(paths) == 1:
            return reader(paths[0], stats, on_custom)
        return _merge_with_custom(list(paths), stats, on_custom, reader)
    if len(paths) == 1:
        return reader(paths[0], stats)  # no merge overhead
    return merge_files(list(paths), stats, reader)


def read_file(path: str, stats: Stats, on_custom: OnCustom | None = None,
              directions: bool = False) -> Iterator[Packet]:
    """The packets of one capture in file order; the file is opened on the first `next()`."""
    src = open_source(path, stats)
    try:
        head = src.peek(4)
        if is_pcap(head):
            # A plain file: the compiled core walks it (the same frames, stats and errors as
            # read_pcap, tests/test_core_pcap.py), reading the file itself.
            walk = _core_pcap() if src.size is not None else None
            if walk is not None:
                src.close()
                frames = walk(path, stats, src.name)
            else:
                frames = read_pcap(src, stats)
            if directions:  # classic pcap has no direction
                for ts, linktype, data, wirelen in frames:
                    yield ts, linktype, data, wirelen, None
            else:
                yield from frames
        elif is_pcapng(head):
            # A plain file: the core walks its blocks too (tests/test_core_pcapng.py).
            walk_ng = _core_pcapng() if src.size is not None else None
            if walk_ng is not None:
                src.close()
                yield from walk_ng(path, stats, src.name, on_custom, directions)
            else:
                yield from read_pcapng(src, stats, on_custom, directions)
        else:
            raise BadInputError(src.name, 0, f"not a pcap or pcapng capture (magic 0x{head.hex()})")
    finally:
        src.close()


@functools.cache
def _core_pcap():
    """The compiled core's pcap walk (sniffer.capture.corepcap.read_pcap_path), or None when
    the core is not built (a source tree run without installing): read_pcap then."""
    try:
        from sniffer.capture.corepcap import read_pcap_path
    except ImportError:
        return None
    return read_pcap_path


@functools.cache
def _core_pcapng():
    """The compiled core's pcapng walk (sniffer.capture.corepcapng.read_pcapng_path), or
    None when the core is not built: read_pcapng then."""
    try:
        from sniffer.capture.corepcapng import read_pcapng_path
    except ImportError:
        return None
    return read_pcapng_path


def _merge_with_custom(paths: list[str], stats: Stats, on_custom: OnCustom,
                       reader=read_file) -> Iterator[Packet]:
    """`merge_files`, with each file's custom records riding along with its next packet.

    The merge reads ahead (and peeks at, then reopens, every file), so records cannot be
    delivered while a file is read: each file's stream becomes `(ts, packet, records)` items,
    and the records are delivered when their packet leaves the merge. Records after a file's
    last packet form an item of their own (`packet` None) at that packet's time.
    """
    def tagged(path: str, st: Stats):
        pending: list[tuple[float, dict]] = []
        last = None
        for pkt in reader(path, st, lambda ts, rec: pending.append((ts, rec))):
            last = pkt[0]
            if pending:
                yield (last, pkt, tuple(pending))
                pending.clear()
            else:
                yield (last, pkt, ())
        if pending:
            yield (pending[0][0] if last is None else last, None, tuple(pending))

    for _ts, pkt, records in merge_files(paths, stats, tagged):  # type: ignore[arg-type]
        for ts, rec in records:
            on_custom(ts, rec)
        if pkt is not None:
            yield pkt
