"""backscatter: replies arriving for requests nobody here sent: someone spoofs these addresses.

Stray replies (Moore, Voelker & Savage 2001; SPOOF.md 2.5):

* a TCP connection whose first packet is a SYN-ACK, or a RST+ACK with sequence number 0 (the
  RST a closed port sends to a SYN), and in which the other side never sends anything and no
  data moves (decided when the connection ends: asymmetric routing and captures that began
  mid-handshake show the rest of the conversation, backscatter does not);
* an ICMP error (unreachable, time exceeded, parameter problem, source quench; and ICMPv6's)
  quoting a TCP or UDP packet from its destination for which no connection exists.

Replies in the first ``settings.backscatter_grace`` seconds of the capture are ignored (they may
answer requests sent before it began). One stray is noise; an alert is raised when
``settings.backscatter_threshold`` distinct strays reach one address (we, or someone, are being
spoofed) or come from one address (it is answering a spoofed flood) within
``settings.backscatter_window`` seconds.
"""

from __future__ import annotations

from collections import deque

from sniffer.detect import Alert

SYN, RST, ACK = 0x02, 0x04, 0x10
_ICMP4_ERRORS = frozenset({3, 4, 11, 12})
_ICMP6_ERRORS = frozenset({1, 2, 3, 4})
_MAX_KEYS = 65536
_SAMPLE = 10


class Detector:
    kind = "backscatter"

    def __init__(self, engine) -> None:
        self.engine = engine
        s = engine.settings
        self.threshold = getattr(s, "backscatter_threshold", 5)
        self.window = getattr(s, "backscatter_window", 60.0)
        self.grace = getattr(s, "backscatter_grace", 2.0)
        self.start: float | None = None
        self.candidates: dict = {}  # uid -> (ts, sender, target, what, ttl)
        self.to: dict = {}  # target -> deque of (ts, sender, what)
        self.by: dict = {}  # sender -> deque of (ts, target, what)

    # -- TCP: decided when the connection ends ------------------------------------------------
    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        if conn.orig_pkts + conn.resp_pkts != 1:
            return
        if flags & (SYN | ACK) == SYN | ACK and not flags & RST:
            what = "SYN-ACK"
        elif flags & RST and flags & ACK and seq == 0:
            what = "RST"
        else:
            return
        if self.start is None:
            self.start = ts
        if ts - self.start < self.grace:
            return
        sender, target = (conn.orig_h, conn.resp_h) if is_orig else (conn.resp_h, conn.orig_h)
        self.candidates[conn.uid] = (ts, sender, target, what, ttl)

    def packet(self, ts: float, pkt: tuple, encap) -> None:
        if self.start is None:
            self.start = ts
        proto = pkt[2]
        if proto != 1 and proto != 58:
            return
        l4 = pkt[4]
        if len(l4) < 8 or l4[0] not in (_ICMP4_ERRORS if proto == 1 else _ICMP6_ERRORS):
            return
        if ts - self.start < self.grace or self.engine.table is None:
            return
        quoted = _quoted(l4[8:], proto)
        if quoted is None:
            return
        qsrc, qdst, qproto, qsport, qdport = quoted
        if qsrc != pkt[1]:
            return  # not quoting a packet of the error's destination (NAT, tunnels): no claim
        if qsrc < qdst or (qsrc == qdst and qsport < qdport):
            key = (qsrc, qsport, qdst, qdport)
        else:
            key = (qdst, qdport, qsrc, qsport)
        if qproto == 17:
            key += (17,)
        if key in self.engine.table.conns:
            return
        what = f"ICMP{'v6' if proto == 58 else ''} type {l4[0]} code {l4[1]}"
        self._stray(ts, pkt[0], pkt[1], what, pkt[6], None)

    def finished(self, r) -> None:
        if not self.candidates:
            return
        c = self.candidates.pop(r.uid, None)
        if c is None:
            return
        ts, sender, target, what, ttl = c
        from sniffer.flows.conn import ntop
        target_sent = r.orig_pkts if r.orig_h == ntop(target) else r.resp_pkts
        if target_sent or (r.orig_bytes or 0) or (r.resp_bytes or 0):
            return
        self._stray(ts, sender, target, what, ttl, r)

    # -- counting -----------------------------------------------------------------------------
    def _stray(self, ts, sender, target, what, ttl, record) -> None:
        for index, key, other in ((self.to, target, sender), (self.by, sender, target)):
            q = index.get(key)
            if q is None:
                if len(index) >= _MAX_KEYS:
                    index.clear()
                q = index[key] = deque()
            q.append((ts, other, what))
            while q and q[0][0] < ts - self.window:
                q.popleft()
            if len(q) >= self.threshold:
                self._alert(ts, key, q, index is self.to, ttl, record)
                q.clear()

    def _alert(self, ts, addr, q, to_addr: bool, ttl, record) -> None:
        from sniffer.flows.conn import ntop
        a = ntop(addr)
        others = sorted({ntop(o) for _, o, _ in q})
        kinds = sorted({w for _, _, w in q})
        local = addr in self.engine.local
        if to_addr:
            summary = (f"{len(q)} unsolicited replies ({', '.join(kinds)}) reached {a}: "
                       f"someone is sending packets with {a} as their source")
        else:
            summary = (f"{a} sent {len(q)} replies ({', '.join(kinds)}) to requests that were "
                       "never seen: it is answering packets with spoofed sources")
        evidence = {"direction": "to" if to_addr else "from", "address": a,
                    "strays": len(q), "window_s": self.window, "threshold": self.threshold,
                    "first_ts": q[0][0], "reply_types": kinds,
                    "peers": others[:_SAMPLE], "distinct_peers": len(others), "last_ttl": ttl,
                    "local": local}
        al = Alert(ts, self.kind, "medium", summary, evidence)
        if to_addr:
            al.dst = a
        else:
            al.src = a
        if record is not None:
            al.proto = "tcp"
        self.engine.emit(al, key=("to" if to_addr else "from", addr))


def _quoted(body: bytes, proto: int):
    """The quoted packet's (src, dst, proto, sport, dport), TCP or UDP only, or None."""
    if proto == 1:
        if len(body) < 28 or body[0] >> 4 != 4:
            return None
        ihl = (body[0] & 15) * 4
        qproto = body[9]
        src, dst, p = body[12:16], body[16:20], ihl
    else:
        if len(body) < 48 or body[0] >> 4 != 6:
            return None
        qproto = body[6]  # extension headers are not walked: those quotes are left alone
        src, dst, p = body[8:24], body[24:40], 40
    if qproto not in (6, 17) or len(body) < p + 4:
        return None
    return src, dst, qproto, body[p] << 8 | body[p + 1], body[p + 2] << 8 | body[p + 3]
