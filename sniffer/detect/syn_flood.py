"""syn-flood: many failed connection attempts to one address and port within a window.

An attempt is a connection whose originator's first packet is a SYN. It *completes* with the
originator's ACK after the SYN and is *refused* by a RST from the responder (a closed port
holds no half-open state): neither ever counts. It *failed* (was left half-open) when

* ``settings.tcp_attempt_delay`` seconds (5, Zeek's definition of a failed attempt) passed
  after its SYN with neither, and the originator never retransmitted the SYN: flood tools send
  each SYN once, while a real stack whose SYN a full listen queue dropped retries it (with the
  same ISN) and then usually completes;
* or its connection record ended with neither (a retried attempt that gave up; any attempt
  still open at the end of the input).

So handshakes that complete never count, however long they waited: a burst of real clients
overflowing a listen queue (Zeek's echo-connections trace: 500 connections, all SF, 158 of
them retried) is not a flood. When more than ``settings.syn_flood_half_open`` failed attempts
to one (address, port) began within ``settings.syn_flood_window`` seconds, one alert is
raised, dated by the SYN of the attempt that crossed the threshold; it re-arms once the count
falls to half the threshold (later episodes count as repeats of the first alert).
Cheap test: a SYN that opens a connection, an ACK or RST on a pending one, one comparison of
the oldest pending attempt's time per segment.

A second signal is the hping-style flood on one 4-tuple: more than
``settings.syn_flood_isns`` SYNs with distinct initial sequence numbers before the handshake
completes (Suricata's ``3whs_syn_flood``, whose ``stream.max-syn-queued`` default is also 10).
A retransmitted SYN repeats its ISN, so retries never count.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from sniffer.detect import Alert

SYN, RST, ACK = 0x02, 0x04, 0x10
_MAX_TARGETS = 65536
_SAMPLE = 10
_NEVER = float("inf")
_BUCKETS = 50  # the window is counted in this many slices: memory stays flat under a flood


class _Target:
    """Failed attempts to one (address, port), counted per slice of the window."""

    __slots__ = ("buckets", "count", "alerted", "sources")

    def __init__(self) -> None:
        self.buckets: deque = deque()  # [slice number, failed attempts], oldest first
        self.count = 0
        self.alerted = False
        self.sources: set = set()

    def add(self, b: int) -> None:
        """One more failed attempt that began in slice `b`; drop the slices out of the window."""
        q = self.buckets
        if not q or b > q[-1][0]:
            q.append([b, 1])
        elif b == q[-1][0]:
            q[-1][1] += 1
        elif b <= q[-1][0] - _BUCKETS:
            return  # decided late (its record ended) and already out of the window
        else:
            for i in range(len(q) - 1, -1, -1):
                if q[i][0] <= b:
                    if q[i][0] == b:
                        q[i][1] += 1
                    else:
                        q.insert(i + 1, [b, 1])
                    break
            else:
                q.appendleft([b, 1])
        self.count += 1
        horizon = q[-1][0] - _BUCKETS
        while q[0][0] <= horizon:
            self.count -= q.popleft()[1]


class Detector:
    kind = "syn-flood"

    def __init__(self, engine) -> None:
        self.engine = engine
        s = engine.settings
        self.threshold = getattr(s, "syn_flood_half_open", 100)
        self.window = getattr(s, "syn_flood_window", 10.0)
        self.max_isns = getattr(s, "syn_flood_isns", 10)
        self.delay = getattr(s, "tcp_attempt_delay", 5.0)
        self.slice = self.window / _BUCKETS
        # uid -> (target, SYN ts, SYN frame, originator), in SYN order: not yet answered
        self.pending: OrderedDict = OrderedDict()
        self.retried: dict = {}  # the same, for attempts whose SYN was retransmitted
        self.next_due = _NEVER  # no pending attempt can fail before this (network) time
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
        if ts >= self.next_due:
            self.tick(ts)
        pending = self.pending
        if flags & (SYN | ACK) == SYN:
            if not is_orig:
                return
            self._isn(ts, conn, seq)
            uid = conn.uid
            if conn.orig_pkts == 1:  # the attempt's first SYN
                pending[uid] = ((conn.resp_h, conn.resp_p), ts, self.engine.frame_no,
                                conn.orig_h)
                if len(pending) == 1:
                    self.next_due = ts + self.delay
            elif uid in pending:  # retransmitted: a real stack trying; its record decides
                self.retried[uid] = pending.pop(uid)
        elif flags & ACK and is_orig or flags & RST and not is_orig:
            # the handshake completed, or the responder refused: not half-open
            uid = conn.uid
            if pending.pop(uid, None) is not None or self.retried.pop(uid, None) is not None:
                self.isns.pop(conn.key, None)

    def tick(self, now: float) -> None:
        """Network time is `now`: attempts unanswered for the attempt delay, never retried,
        have failed."""
        pending, delay = self.pending, self.delay
        self.next_due = _NEVER
        while pending:
            uid = next(iter(pending))
            if now - pending[uid][1] < delay:
                self.next_due = pending[uid][1] + delay
                break
            self._failed(pending.pop(uid))

    def finished(self, r) -> None:
        if r.proto != "tcp":
            return
        a = self.pending.pop(r.uid, None) or self.retried.pop(r.uid, None)
        if a is not None and r.conn_state != "REJ":
            self._failed(a)  # its record ended and the handshake never completed

    def _failed(self, attempt: tuple) -> None:
        tkey, ts, frame, src = attempt
        t = self.targets.get(tkey)
        if t is None:
            if len(self.targets) >= _MAX_TARGETS:
                self.targets.clear()
            t = self.targets[tkey] = _Target()
        t.add(int(ts // self.slice))
        if len(t.sources) < 1000:
            t.sources.add(src)
        if t.count > self.threshold and not t.alerted:
            t.alerted = True
            self._alert(ts, frame, tkey, t)
        elif t.alerted and t.count <= self.threshold // 2:
            t.alerted = False

    def _alert(self, ts: float, frame: int, tkey: tuple, t: _Target) -> None:
        from sniffer.flows.conn import ntop
        dst, dport = tkey
        evidence = {"target": ntop(dst), "target_port": dport, "half_open": t.count,
                    "window_s": self.window, "threshold": self.threshold,
                    "distinct_sources": len(t.sources),
                    "sample_sources": sorted(ntop(a) for a in list(t.sources)[:_SAMPLE])}
        if frame:
            evidence["packet"] = frame  # the SYN of the attempt that crossed the threshold
        a = Alert(ts, self.kind, "medium",
                  f"{t.count} connection attempts to {ntop(dst)}:{dport} left half-open "
                  f"within {self.window:g} s", evidence)
        a.dst, a.dport, a.proto = ntop(dst), dport, "tcp"
        self.engine.emit(a, key=(dst, dport))
