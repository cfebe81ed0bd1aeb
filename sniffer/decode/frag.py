"""IP fragment reassembly with bounded memory, after Zeek's `FragReassembler` (src/Frag.cc).

One pending datagram per key (the decoder uses ``(src, dst, id, proto)`` for IPv4 and
``(src, dst, id)`` for IPv6, where the next-header value may differ between fragments). Semantics:

* **First wins:** bytes already received are never overwritten by a later overlapping fragment
  (Zeek's reassembler keeps the old block). An overlap with the same bytes counts
  ``fragment_overlap``, with different bytes ``fragment_inconsistency``.
* The fragment without MF fixes the size; a second, different "last" fragment or an MF fragment
  reaching past it counts ``fragment_size_inconsistency`` and the larger size wins (as Zeek).
* The datagram is complete when bytes 0..size are contiguous. It is returned once and forgotten;
  a late duplicate starts a new pending datagram, which times out.
* **Timeout:** a pending datagram expires ``timeout`` seconds (packet time) after its first
  fragment, as Zeek's timer does (``fragment_timeout``). ``timeout <= 0`` disables it.
* **Caps:** at most ``max_datagrams`` pending datagrams and ``max_bytes`` buffered bytes; the
  oldest pending datagram is evicted first (``fragment_evicted``). The decoder takes them from
  ``Settings.frag_max_datagrams`` and ``frag_max_bytes`` (``--frag-max-datagrams``,
  ``--frag-max-mib``).
* A fragment that would make the datagram longer than ``limit`` (the caller passes what keeps
  the IP length within 65535) is dropped (``fragment_too_large``).
"""

from __future__ import annotations

from typing import Any

from sniffer.config import FRAG_MAX_BYTES as DEFAULT_MAX_BYTES
from sniffer.config import FRAG_MAX_DATAGRAMS as DEFAULT_MAX_DATAGRAMS


class _Pending:
    __slots__ = ("created", "buf", "spans", "size", "meta")

    def __init__(self, created: float, meta: Any) -> None:
        self.created = created
        self.buf = bytearray()
        self.spans: list[list[int]] = []  # sorted, merged [start, end) ranges received
        self.size: int | None = None  # known once the last fragment (MF clear) is seen
        self.meta = meta


class FragReassembler:
    """``add(...)`` each fragment; it returns ``(payload, meta)`` once a datagram is complete."""

    def __init__(
        self,
        stats,
        timeout: float = 300.0,
        max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.stats = stats
        self.timeout = timeout
        self.max_datagrams = max(1, max_datagrams)
        self.max_bytes = max(65536, max_bytes)
        self._pending: dict[Any, _Pending] = {}  # insertion order == creation order
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def expire(self, ts: float) -> None:
        """Drop pending datagrams whose timeout has passed at packet time `ts`."""
        if self.timeout <= 0:
            return
        pending = self._pending
        deadline = ts - self.timeout
        while pending:
            key = next(iter(pending))
            d = pending[key]
            if d.created > deadline:
                break
            del pending[key]
            self._bytes -= len(d.buf)
            self.stats["fragment_timeout"] += 1

    def flush(self) -> int:
        """End of input: forget every pending datagram (counted ``fragment_incomplete``)."""
        n = len(self._pending)
        if n:
            self.stats["fragment_incomplete"] += n
        self._pending.clear()
        self._bytes = 0
        return n

    def _evict_oldest(self, keep: Any) -> bool:
        for key in self._pending:
            if key != keep:
                d = self._pending.pop(key)
                self._bytes -= len(d.buf)
                self.stats["fragment_evicted"] += 1
                return True
        return False

    def add(
        self,
        ts: float,
        key: Any,
        offset: int,
        more: bool,
        payload: bytes,
        meta: Any,
        limit: int = 65535,
    ) -> tuple[bytes, Any] | None:
        """Add one fragment: `offset` in bytes, `more` = MF flag, `payload` = its data.

        `meta` is kept from the offset-0 fragment (else from the first one seen) and returned
        with the datagram. `limit` is the largest allowed reassembled payload length.
        """
        stats = self.stats
        self.expire(ts)
        end = offset + len(payload)
        if end > limit:
            stats["fragment_too_large"] += 1
            return None
        pending = self._pending
        d = pending.get(key)
        if d is None:
            if len(pending) >= self.max_datagrams:
                self._evict_oldest(key)
            d = pending[key] = _Pending(ts, meta)
        elif offset == 0:
            d.meta = meta

        if not more:
            if d.size is None:
                d.size = end
            elif d.size != end:
                stats["fragment_size_inconsistency"] += 1
                if end > d.size:
                    d.size = end
        elif d.size is not None and end > d.size:
            stats["fragment_size_inconsistency"] += 1
            d.size = end

        # Insert the parts of [offset, end) not received yet (first wins).
        buf = d.buf
        grow = end - len(buf)
        if grow > 0:
            buf.extend(bytes(grow))
            self._bytes += grow
        pos = offset
        overlap = inconsistent = False
        for s, e in d.spans:
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:  # gap before this span
                buf[pos:s] = payload[pos - offset : s - offset]
            lo, hi = max(s, pos), min(e, end)
            if lo < hi:
                overlap = True
                if buf[lo:hi] != payload[lo - offset : hi - offset]:
                    inconsistent = True
            pos = max(pos, e)
            if pos >= end:
                break
        if pos < end:
            buf[pos:end] = payload[pos - offset :]
        if overlap:
            stats["fragment_inconsistency" if inconsistent else "fragment_overlap"] += 1
        spans = d.spans
        spans.append([offset, end])
        spans.sort()
        merged = [spans[0]]
        for s, e in spans[1:]:
            last = merged[-1]
            if s <= last[1]:
                if e > last[1]:
                    last[1] = e
            else:
                merged.append([s, e])
        d.spans = merged

        if self._bytes > self.max_bytes:
            while self._bytes > self.max_bytes and self._evict_oldest(key):
                pass

        size = d.size
        first = merged[0]
        if size is None or first[0] != 0 or first[1] < size:
            return None
        if first[1] != size or len(merged) > 1:
            # Contiguous data beyond the announced end (Zeek: analyse the contiguous part).
            stats["fragment_size_inconsistency"] += 1
        del pending[key]
        self._bytes -= len(buf)
        stats["fragments_reassembled"] += 1
        return bytes(buf[: first[1]]), d.meta
