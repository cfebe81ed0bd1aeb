"""Shared pieces of the TCP-level detectors (tcp_rst, tcp_data, tcp_ttl, tcp_window).

Each detector keeps its own small per-connection state, keyed by the connection's uid and
dropped when the connection's record is finished. Within a connection a *side* is the sending
(address, port): not `is_orig`, which a "^h" role flip can swap mid-connection.
"""

from __future__ import annotations

from sniffer.detect import Alert
from sniffer.flows.conn import ntop

M32 = 0xFFFFFFFF
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

#: TTL (hop limit) tolerance within one direction of one connection: a route flap is +-1
TTL_TOLERANCE = 2
#: packets of one direction, agreeing within the tolerance, that establish its TTL profile
TTL_PROFILE_PACKETS = 3
#: consecutive packets at a new TTL after which the new value is taken as a route change
TTL_REBASE_PACKETS = 3


def seq_delta(a: int, b: int) -> int:
    """a - b as a signed 32-bit difference (sequence-space arithmetic)."""
    d = (a - b) & M32
    return d - 0x100000000 if d & 0x80000000 else d


def flag_str(flags: int) -> str:
    return "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"),
                                    (URG, "U")) if flags & bit) or "."


def sender(conn, is_orig: bool) -> tuple:
    """The sending side of this segment: stable across role flips."""
    return (conn.orig_h, conn.orig_p) if is_orig else (conn.resp_h, conn.resp_p)


def head(data: bytes, n: int = 32) -> str:
    """The first bytes of a payload, printable ASCII kept, the rest escaped."""
    return data[:n].decode("latin-1").encode("unicode_escape").decode("ascii")


class TTLProfile:
    """The TTL of one direction of one connection.

    The first TTL_PROFILE_PACKETS packets set it (if they disagree among themselves beyond the
    tolerance, the direction is never judged: prefer false negatives). Afterwards `check`
    returns the expected value for a packet that departs from it, else None. A departure that
    persists for TTL_REBASE_PACKETS packets is a route change: the profile moves to it.
    """

    __slots__ = ("ref", "n", "unstable", "alt", "alt_n")

    def __init__(self, ttl: int) -> None:
        self.ref = ttl
        self.n = 1
        self.unstable = False
        self.alt = -1
        self.alt_n = 0

    def established(self) -> bool:
        return not self.unstable and self.n >= TTL_PROFILE_PACKETS

    def check(self, ttl: int) -> int | None:
        if self.unstable:
            return None
        ref = self.ref
        if -TTL_TOLERANCE <= ttl - ref <= TTL_TOLERANCE:
            if self.n < TTL_PROFILE_PACKETS:
                self.n += 1
            self.alt_n = 0
            return None
        if self.n < TTL_PROFILE_PACKETS:
            self.unstable = True
            return None
        if self.alt_n and -TTL_TOLERANCE <= ttl - self.alt <= TTL_TOLERANCE:
            self.alt_n += 1
            if self.alt_n >= TTL_REBASE_PACKETS:
                self.ref = ttl
                self.alt_n = 0
        else:
            self.alt = ttl
            self.alt_n = 1
        return ref


def make_alert(ts: float, kind: str, severity: str, summary: str, evidence: dict, conn,
               is_orig: bool) -> Alert:
    """An alert about `conn`, with src/dst the sender and receiver of the offending segment."""
    from sniffer.flows.community_id import community_id

    if is_orig:
        src, sport, dst, dport = conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p
    else:
        src, sport, dst, dport = conn.resp_h, conn.resp_p, conn.orig_h, conn.orig_p
    evidence.setdefault("ts", ts)
    evidence.setdefault("direction", "orig" if is_orig else "resp")
    return Alert(
        ts=ts, kind=kind, severity=severity, summary=summary, evidence=evidence, uid=conn.uid,
        community_id=community_id(conn.orig_h, conn.resp_h, 6, conn.orig_p, conn.resp_p),
        proto="tcp", src=ntop(src), sport=sport, dst=ntop(dst), dport=dport,
    )


class PerConn:
    """Base of the TCP detectors: the engine's emit, the per-connection state and its cleanup.

    Alerts are emitted with the key (uid, sending side, signal), so the engine aggregates
    repeats of one signal on one side of a connection, never two different ones.
    """

    kind = ""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.conns: dict[str, object] = {}

    def sides(self, conn) -> dict:
        """This connection's per-side state, keyed by `sender(conn, is_orig)`; created empty."""
        st = self.conns.get(conn.uid)
        if st is None:
            st = self.conns[conn.uid] = {}
        return st

    @staticmethod
    def profiled(st: dict, key, ttl: int, make) -> tuple:
        """The sending side's state (made by `make(ttl)` when new) and the TTL its profile
        expected instead of `ttl`, or None when `ttl` fits (or the side is new)."""
        side = st.get(key)
        if side is None:
            side = st[key] = make(ttl)
            return side, None
        return side, side.ttl.check(ttl)

    def emit(self, alert: Alert, signal: str) -> None:
        self.engine.emit(alert, key=(alert.uid, alert.src, alert.sport, signal))

    def finished(self, record) -> None:
        self.conns.pop(record.uid, None)
