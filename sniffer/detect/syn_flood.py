"""syn-flood: many half-open connection attempts to one address and port within a window.

A SYN opens an attempt; the originator's ACK completing the handshake, or a RST from the
responder (a closed port holds no half-open state), closes it. When more
than ``settings.syn_flood_half_open`` attempts to one (address, port) are still open within
``settings.syn_flood_window`` seconds, one alert is raised; it re-arms once the count falls
to half the threshold (later episodes count as repeats of the first alert).
Cheap test: a SYN without ACK that opens a connection, or an ACK on a pending one.

A second signal is the hping-style flood on one 4-tuple: more than
``settings.syn_flood_isns`` SYNs with distinct initial sequence numbers before the handshake
completes (Suricata's ``3whs_syn_flood``, whose ``stream.max-syn-queued`` default is also 10).
A retransmitted SYN repeats its ISN, so retries never count.
"""

from __future__ import annotations

from collections import deque

from sniffer.detect import Alert

SYN, RST, ACK = 0x02, 0x04, 0x10
_MAX_TARGETS = 65536
_SAMPLE = 10


class _Target:
    __slots__ = ("queue", "open", "alerted", "sources", "first")

    def __init__(self, ts: float) -> None:
        self.queue: deque = deque()  # (ts, conn key) in arrival order
        self.open = 0
        self.alerted = False
        self.sources: set = set()
        self.first = ts


class Detector:
    kind = "syn-flood"

    def __init__(self, engine) -> None:
        self.engine = engine
        s = engine.settings
        self.threshold = getattr(s, "syn_flood_half_open", 100)
        self.window = getattr(s, "syn_flood_window", 10.0)
        self.max_isns = getattr(s, "syn_flood_isns", 10)
        self.pending: dict = {}  # conn key -> (target, ts)
        self.targets: dict = {}
        self.isns: dict = {}  # 4-tuple -> {ISN: ts} of its unanswered SYNs

    def _isn(self, ts, conn, seq: int) -> None:
        """Count one more SYN on this 4-tuple; alert once when its distinct ISNs pass the limit.

        Keyed by the 4-tuple, not the uid: like Zeek, the flow table opens a new connection
        for a SYN with a new ISN, so each forged SYN is a connection of its own.
        """
        seen = self.isns.get(conn.key)
        if seen is None or ts - next(iter(seen.values())) > self.window:
            if len(self.isns) >= _MAX_TARGETS:
                self.isns.clear()
            seen = self.isns[conn.key] = {}
        if seq in seen or len(seen) > self.max_isns:
            return
        seen[seq] = ts
        if len(seen) > self.max_isns:
            from sniffer.detect.tcp_common import make_alert
            first = next(iter(seen.values()))
            self.engine.emit(make_alert(
                ts, self.kind, "medium",
                f"{len(seen)} SYNs with distinct sequence numbers on one 4-tuple "
                f"within {ts - first:.3f} s, no handshake",
                {"signal": "isn_flood", "distinct_isns": len(seen), "limit": self.max_isns,
                 "first_ts": first, "sample_isns": list(seen)[:_SAMPLE]},
                conn, True), key=(conn.key, "isn"))

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        if flags & (SYN | ACK) == SYN:
            if not is_orig:
                return
            self._isn(ts, conn, seq)
            if conn.key in self.pending:
                return
            tkey = (conn.resp_h, conn.resp_p)
            t = self.targets.get(tkey)
            if t is None:
                if len(self.targets) >= _MAX_TARGETS:
                    self._expire_all(ts)
                t = self.targets[tkey] = _Target(ts)
            self.pending[conn.key] = (tkey, ts)
            t.queue.append((ts, conn.key))
            t.open += 1
            if len(t.sources) < 1000:
                t.sources.add(conn.orig_h)
            self._expire(t, ts)
            if t.open > self.threshold and not t.alerted:
                t.alerted = True
                self._alert(ts, conn, t)
            elif t.alerted and t.open <= self.threshold // 2:
                t.alerted = False
        elif self.pending and (flags & ACK and is_orig or flags & RST and not is_orig):
            # the handshake completed, or the responder refused: no longer half-open
            p = self.pending.pop(conn.key, None)
            if p is not None:
                self.isns.pop(conn.key, None)
                t = self.targets.get(p[0])
                if t is not None:
                    t.open -= 1

    def _expire(self, t: _Target, now: float) -> None:
        q, pending, horizon = t.queue, self.pending, now - self.window
        while q and q[0][0] < horizon:
            ts, key = q.popleft()
            p = pending.get(key)
            if p is not None and p[1] == ts:
                del pending[key]
                t.open -= 1

    def _expire_all(self, now: float) -> None:
        for tkey, t in list(self.targets.items()):
            self._expire(t, now)
            if not t.queue:
                del self.targets[tkey]

    def _alert(self, ts: float, conn, t: _Target) -> None:
        from sniffer.detect.engine import ntop
        dst, dport = conn.resp_h, conn.resp_p
        evidence = {"target": ntop(dst), "target_port": dport, "half_open": t.open,
                    "window_s": self.window, "threshold": self.threshold,
                    "distinct_sources": len(t.sources),
                    "sample_sources": sorted(ntop(a) for a in list(t.sources)[:_SAMPLE])}
        a = Alert(ts, self.kind, "medium",
                  f"{t.open} half-open connection attempts to {ntop(dst)}:{dport} "
                  f"within {self.window:g} s", evidence)
        a.dst, a.dport, a.proto = ntop(dst), dport, "tcp"
        self.engine.emit(a, key=(dst, dport))
