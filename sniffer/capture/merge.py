"""Several captures as one time-ordered stream.

Rotated captures mostly follow each other, so files are ordered by their first timestamp and
opened only when the stream reaches that time: a directory of a thousand hourly files keeps one
or two open, not a thousand. Overlapping files are merged packet by packet (ties go to the file
named first, like heapq.merge).
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterator

from sniffer.capture.pcap import Packet
from sniffer.stats import Stats

Reader = Callable[[str, Stats], Iterator[Packet]]


def merge_files(paths: list[str], stats: Stats, read_file: Reader) -> Iterator[Packet]:
    """Yield the packets of all `paths` in timestamp order."""
    # (first ts, index, path, an already-open iterator for stdin, which cannot be reopened)
    pending: list[tuple[float, int, str, Iterator[Packet] | None]] = []
    for i, path in enumerate(paths):
        keep = path == "-"  # stdin cannot be reopened: its iterator stays in use, counting for real
        peek_stats = stats if keep else Stats()
        it = read_file(path, peek_stats)
        first = next(it, None)
        if first is None:  # no packets: the file was read to its end, keep what it counted
            if not keep:
                stats.update(peek_stats)
            continue
        if keep:
            pending.append((first[0], i, path, _chain(first, it)))
        else:
            it.close()  # reopened when the stream reaches its first timestamp
            pending.append((first[0], i, path, None))
    pending.sort(key=lambda p: (p[0], p[1]))
    pending.reverse()  # pop() takes the earliest

    # heap of (ts, index, packet, iterator)
    heap: list[tuple[float, int, Packet, Iterator[Packet]]] = []
    while heap or pending:
        while pending and (not heap or pending[-1][0] <= heap[0][0]):
            _ts, i, path, it = pending.pop()
            it = it if it is not None else read_file(path, stats)
            pkt = next(it, None)
            if pkt is not None:
                heapq.heappush(heap, (pkt[0], i, pkt, it))
        if not heap:
            continue
        if len(heap) == 1:
            # Fast path: one file open; stream it until the next file's first packet is due.
            _ts, i, pkt, it = heap.pop()
            yield pkt
            limit = pending[-1][0] if pending else float("inf")
            for pkt in it:
                if pkt[0] >= limit:
                    heapq.heappush(heap, (pkt[0], i, pkt, it))
                    break
                yield pkt
            continue
        _ts, i, pkt, it = heap[0]
        yield pkt
        nxt = next(it, None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt[0], i, nxt, it))


def _chain(first: Packet, rest: Iterator[Packet]) -> Iterator[Packet]:
    yield first
    yield from rest
