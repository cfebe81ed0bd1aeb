"""Capture stage: pcap / pcapng files (plain or gzip, or `-` for stdin) to packet tuples.

`open_capture(paths, stats)` yields `(ts, linktype, data, wirelen)` per packet, one
time-ordered stream over all paths (see docs/design.md). Errors are `BadInputError`, raised
from the iterator; packets yielded before an error stay valid.
"""

from __future__ import annotations

from typing import Iterator

from sniffer.capture.merge import merge_files
from sniffer.capture.pcap import Packet, is_pcap, read_pcap
from sniffer.capture.pcapng import is_pcapng, read_pcapng
from sniffer.capture.source import open_source
from sniffer.errors import BadInputError
from sniffer.stats import Stats

__all__ = ["Packet", "open_capture", "read_file"]


def open_capture(paths: list[str], stats: Stats) -> Iterator[Packet]:
    """One time-ordered stream of `(ts, linktype, data, wirelen)` over `paths`."""
    if len(paths) == 1:
        return read_file(paths[0], stats)  # no merge overhead
    return merge_files(list(paths), stats, read_file)


def read_file(path: str, stats: Stats) -> Iterator[Packet]:
    """The packets of one capture in file order; the file is opened on the first `next()`."""
    src = open_source(path, stats)
    try:
        head = src.peek(4)
        if is_pcap(head):
            reader = read_pcap
        elif is_pcapng(head):
            reader = read_pcapng
        else:
            raise BadInputError(src.name, 0, f"not a pcap or pcapng capture (magic 0x{head.hex()})")
        yield from reader(src, stats)
    finally:
        src.close()
