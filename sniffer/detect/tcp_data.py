"""`data-injection`: two copies of the same TCP bytes that differ, or data with a foreign TTL.

QUANTUM-style race injection (SPOOF.md section 2.10; Fox-IT's "Deep dive into QUANTUM INSERT",
Zeek's `rexmit_inconsistency`, Suricata's `reassembly_overlap_different_data`): an on-path
injector answers first, the genuine copy follows at the same sequence numbers, and the two carry
different bytes. The receiver keeps the first, so either copy may be the forged one: both are
reported, with their TTLs.

Per direction a bounded window of recent payload bytes is kept (WINDOW bytes, as a list of
segments keyed by unwrapped relative sequence number). In-order data is only appended; only a
segment that reaches below the highest byte seen (a retransmission or an overlap) is compared.
Excluded: keep-alives (one garbage octet at snd_una-1, RFC 1122 4.2.3.6) and RST payloads (not
stream data). A data segment whose TTL departs from its direction's profile is also reported.
"""

from __future__ import annotations

from collections import deque

from sniffer.detect.tcp_common import (
    RST, SYN, PerConn, TTLProfile, head, make_alert, sender, seq_delta)

WINDOW = 65536  # payload bytes kept per direction
MAX_SEGMENTS = 256  # segments kept per direction


class _Side:
    __slots__ = ("ttl", "high", "segs", "size", "alerted")

    def __init__(self, ttl: int) -> None:
        self.ttl = TTLProfile(ttl)
        self.high: int | None = None  # unwrapped: one past the highest payload byte seen
        self.segs: deque = deque()  # (pos, bytes, ts, ttl), in arrival order
        self.size = 0
        self.alerted: set = set()


class DataInjection(PerConn):
    kind = "data-injection"
    window = WINDOW

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        st = self.sides(conn)
        key = sender(conn, is_orig)
        side, expected = self.profiled(st, key, ttl, _Side)
        if not payload or flags & RST:
            return
        n = len(payload)
        start = (seq + 1) & 0xFFFFFFFF if flags & SYN else seq
        high = side.high
        if high is None:
            pos = (1 << 40) | start  # far from 0, so early retransmissions stay positive
        else:
            pos = high + seq_delta(start, high & 0xFFFFFFFF)

        if expected is not None and "ttl" not in side.alerted:
            side.alerted.add("ttl")
            self.emit(make_alert(
                ts, self.kind, "medium",
                f"data segment ({n} bytes) with TTL {ttl}, its direction's is {expected}",
                {"detector": "data_ttl", "ttl": ttl, "expected_ttl": expected, "seq": seq,
                 "ack": ack, "len": n, "head": head(payload)},
                conn, is_orig), "data_ttl")

        store = True
        if high is not None and pos < high:
            if n == 1 and pos == high - 1:
                return  # keep-alive with its garbage octet
            store = self._compare(ts, conn, is_orig, side, pos, payload, seq, ttl)
        if store:
            segs = side.segs
            segs.append((pos, payload, ts, ttl))
            side.size += n
            while side.size > self.window or len(segs) > MAX_SEGMENTS:
                side.size -= len(segs.popleft()[1])
        end = pos + n
        if high is None or end > high:
            side.high = end

    def _compare(self, ts, conn, is_orig, side, pos, payload, seq, ttl) -> bool:
        """Compare an overlapping segment with the bytes kept; True if it adds unseen bytes."""
        end = pos + len(payload)
        covered = 0
        for spos, sdata, sts, sttl in side.segs:
            send = spos + len(sdata)
            lo = pos if pos > spos else spos
            hi = end if end < send else send
            if lo >= hi:
                continue
            covered += hi - lo
            mine = payload[lo - pos:hi - pos]
            theirs = sdata[lo - spos:hi - spos]
            if mine != theirs:
                if "overlap" not in side.alerted:
                    side.alerted.add("overlap")
                    i = next(k for k in range(len(mine)) if mine[k] != theirs[k])
                    ttl_differs = abs(ttl - sttl) > 2
                    self.emit(make_alert(
                        ts, self.kind, "high",
                        f"two copies of {hi - lo} bytes at seq {seq} differ "
                        f"(TTL {sttl} then {ttl})",
                        {"detector": "overlap_diff",
                         "first": {"ts": sts, "ttl": sttl, "head": head(theirs[i:])},
                         "second": {"ts": ts, "ttl": ttl, "seq": seq, "len": len(payload),
                                    "head": head(mine[i:])},
                         "overlap_len": hi - lo, "first_diff_offset": lo - pos + i,
                         "ttl_differs": ttl_differs,
                         "dt_ms": round((ts - sts) * 1000, 3)},
                        conn, is_orig), "overlap_diff")
                return False
        return covered < len(payload)


Detector = DataInjection
