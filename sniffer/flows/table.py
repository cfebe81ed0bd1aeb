"""The connection table: keys, creation and orientation, timers, UDP/ICMP/other-IP tracking.

One `FlowTable` receives every decoded packet in time order (`process`) and emits a finished
`Conn` record whenever Zeek would remove the connection: a timeout, a close, a reuse of the
5-tuple, or the end of input (`flush`). TCP's state machine lives in `tcp.py`.

Why hand-written: this is the per-packet path. Keys are plain tuples, per-connection state is
a slotted object, and timers are one heap with lazy cancellation (a generation number per
connection), so a packet costs a dict lookup and a few integer operations.
"""

from __future__ import annotations

import heapq
import struct
from collections import Counter
from collections.abc import Callable

from sniffer.config import Settings
from sniffer.decode.checksum import l4_checksum_ok
from sniffer.flows import tcp as T
from sniffer.flows.community_id import ICMP4_COUNTERPART, ICMP6_COUNTERPART, community_id
from sniffer.flows.conn import Conn, flow_key, ntop, proto_name
from sniffer.flows.uid import make_uid
from sniffer.netset import NetSet
from sniffer.output.weird import Weird
from sniffer.tunnels import IP_LEVEL, IP_PROTOS, MAX_DEPTH as MAX_TUNNEL_DEPTH, UDP_DETECTORS, UDP_PORTS

_TCP_HDR = struct.Struct("!HHIIBBHH")
_PORTS = struct.Struct("!HHHH")
_ICMP_HDR = struct.Struct("!BBH")

# ICMP request/reply types pair up into one connection (Zeek's ICMP4_counterpart and
# ICMP6_counterpart, the same pairs Community ID uses); every other type is one-way, and its
# "responder port" is the ICMP code.
_ICMP4_PAIRS = ICMP4_COUNTERPART
_ICMP6_PAIRS = ICMP6_COUNTERPART
_VXLAN_PORTS = frozenset({4789})
_BROADCAST4 = b"\xff\xff\xff\xff"
MAX_TUNNEL_CHANGES = 5  # Zeek's Tunnel::max_changes_per_connection
DNS_PORTS = (53, 137, 5353, 5355)  # Zeek's DNS::ports for UDP


def _never_answered(c) -> bool:
    """Eviction tier 1: a TCP attempt that has not completed its handshake."""
    return c.proto == 6 and c.orig.state <= T.SYN_ACK_SENT and c.resp.state <= T.SYN_ACK_SENT


def _closed(c) -> bool:
    """Eviction tier 2: TCP closed or reset on one side; UDP or ICMP with no reply yet."""
    if c.proto == 6:
        return c.orig.state >= T.CLOSED or c.resp.state >= T.CLOSED
    return not (c.orig_pkts and c.resp_pkts)


HIST_X = 0x400  # the history bit of "X" (Zeek's HIST_UNKNOWN_PKT), shared by every protocol


class SimpleConn:
    """A UDP, ICMP or other-IP connection: two packet/byte counters and two "active" flags."""

    __slots__ = (
        "key", "uid", "start_time", "last_time", "orig_h", "orig_p", "resp_h", "resp_p",
        "proto", "history", "hist_seen", "orig_pkts", "orig_ip_bytes", "resp_pkts",
        "resp_ip_bytes", "orig_size", "resp_size", "orig_active", "resp_active",
        "orig_chk", "orig_chk_thresh", "resp_chk", "resp_chk_thresh",
        "inactivity_timeout", "inact_gen", "removed", "seq_no", "encap", "tunnel_parents",
        "tunnel_changes", "violated", "timer_gen",
    )
    missed_bytes = 0

    def __init__(self, key: tuple, ts: float, src: bytes, sport: int, dst: bytes, dport: int,
                 proto: int, seq_no: int) -> None:
        self.key = key
        self.uid = ""
        self.start_time = self.last_time = ts
        self.orig_h, self.orig_p, self.resp_h, self.resp_p = src, sport, dst, dport
        self.proto = proto
        self.history = ""
        self.hist_seen = 0
        self.orig_pkts = self.orig_ip_bytes = self.resp_pkts = self.resp_ip_bytes = 0
        self.orig_size = self.resp_size = 0
        self.orig_active = self.resp_active = False
        self.orig_chk = self.resp_chk = 0
        self.orig_chk_thresh = self.resp_chk_thresh = 1
        self.inactivity_timeout = 0.0
        self.inact_gen = 0
        self.removed = False
        self.seq_no = seq_no
        self.encap = None
        self.tunnel_parents = None
        self.tunnel_changes = 0
        self.violated = None  # tunnel decapsulators that failed on this connection
        self.timer_gen = 0

    def flip_roles(self) -> None:
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        self.history += "^"

    def count(self, is_orig: bool, size: int, ip_len: int) -> None:
        """One valid packet: Zeek's endpoint size and ConnSize counters."""
        if is_orig:
            self.orig_active = True
            self.orig_size += size
            self.orig_pkts += 1
            self.orig_ip_bytes += ip_len
        else:
            self.resp_active = True
            self.resp_size += size
            self.resp_pkts += 1
            self.resp_ip_bytes += ip_len

    def conn_state(self) -> str:
        if self.proto != 17:
            return "OTH"
        if self.orig_active:
            return "SF" if self.resp_active else "S0"
        return "SHR" if self.resp_active else "OTH"

    def sizes(self) -> tuple[int, int]:
        return self.orig_size, self.resp_size


class FlowTable:
    """Every live connection, keyed by canonical 5-tuple; emits `Conn` records on removal."""

    def __init__(self, settings: Settings, stats, emit: Callable[[Conn], None],
                 decoder=None) -> None:
        self.settings = settings
        # The decoder, for the packets tunnels carry (None: tunnels are not opened).
        self.decode = decoder.decode if decoder is not None else None
        self.decoded_more = decoder.more if decoder is not None else []
        self.weird_sink: Callable | None = None  # receives `Weird` records when set
        self.on_new: Callable | None = None  # told of each new connection (live look-ups)
        self.observer = None  # sniffer.detect: sees every packet and TCP segment when set
        # IP-level tunnels (IP in IP, GRE): one encapsulation record per address pair.
        self.ip_tunnels: dict[tuple, list] = {}
        self.stats = stats
        self.emit = emit
        self.conns: dict[tuple, object] = {}
        self.timers: list = []
        self.timer_seq = 0
        # The reader sets `frame` to each frame's index in the input: with the order of
        # creations within a frame it makes a connection's serial number (its uid, its place
        # at the end of the input, the order of timers due at the same time), which depends
        # only on the input, so `--workers` shards give the records one worker gives.
        self.frame = 0
        # What is ending connections right now: (when, serial, kind) of the timer firing,
        # ("flush", serial) at the end of the input, None while a packet is processed.
        self.firing: tuple | None = None
        self._serial_frame = -1
        self._serial_k = 0
        self.network_time = 0.0
        self.likely = settings.likely_server_ports
        self.local = NetSet(settings.local_nets)
        self.no_csum_nets = (NetSet(settings.ignore_checksums_nets)
                             if settings.ignore_checksums_nets else None)
        self.check_csums = not settings.ignore_checksums
        self.max_flows = settings.max_flows
        # UDP ports where Zeek's DNS analyzer runs: its ports, when they are server ports
        # (the DNS scripts are what register them).
        self.dns_ports = frozenset(p for p in DNS_PORTS if (p, 17) in self.likely)

    def weird(self, name: str, conn=None, src: bytes | None = None, dst: bytes | None = None,
              addl: str | None = None) -> None:
        """Count an anomaly by Zeek's weird name, and log it when a weird.log is written.

        The connection it concerns (or, without one, the packet's addresses) goes with it.
        """
        self.stats["weird:" + name] += 1
        if self.weird_sink is not None:
            w = Weird(self.network_time, name, addl=addl, source="flows")
            if conn is not None:
                w.uid = conn.uid
                w.orig_h, w.orig_p = ntop(conn.orig_h), conn.orig_p
                w.resp_h, w.resp_p = ntop(conn.resp_h), conn.resp_p
            elif src is not None:
                w.orig_h, w.resp_h = ntop(src), ntop(dst)
            self.weird_sink(w)

    # -- timers -------------------------------------------------------------------------------
    def add_timer(self, when: float, conn, kind: int) -> None:
        gen = conn.inact_gen if kind == T.INACTIVITY else getattr(conn, "timer_gen", 0)
        self.timer_seq += 1
        timers = self.timers
        heapq.heappush(timers, (when, conn.seq_no, kind, gen, self.timer_seq, conn))
        if len(timers) > 4 * len(self.conns) + 4096:
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop the timers of removed connections. They wait in the heap until they are due,
        holding their connection; evictions end connections long before their timers, so
        without this a flood would keep every connection it ever made."""
        timers = self.timers
        timers[:] = [t for t in timers if not t[5].removed]
        heapq.heapify(timers)

    def set_inactivity_timeout(self, conn, timeout: float) -> None:
        if timeout == conn.inactivity_timeout:
            return
        conn.inact_gen += 1
        if timeout:
            self.add_timer(conn.last_time + timeout, conn, T.INACTIVITY)
        conn.inactivity_timeout = timeout

    def advance(self, t: float) -> None:
        """Fire every timer due at network time `t` (Zeek: before the packet is processed)."""
        timers = self.timers
        while timers and timers[0][0] <= t:
            when, serial, kind, gen, _, conn = heapq.heappop(timers)
            if conn.removed:
                continue
            self.firing = (when, serial, kind)
            if kind == T.INACTIVITY:
                if gen != conn.inact_gen:
                    continue
                if conn.last_time + conn.inactivity_timeout <= t:
                    self.remove(conn)
                else:
                    self.add_timer(conn.last_time + conn.inactivity_timeout, conn, T.INACTIVITY)
            elif gen != conn.timer_gen:
                continue
            elif kind == T.EXPIRE:
                conn.expire_timer(t)
            elif kind == T.ATTEMPT:
                conn.attempt_timer(t)
            elif kind == T.DNS_EXPIRE:
                # Zeek's DNS analyzer ends a UDP DNS "session" idle for its timeout (less a
                # second's grace for the usual single request and reply).
                if t - conn.last_time >= self.settings.dns_session_timeout - 1.0:
                    self.remove(conn)
                else:
                    self.add_timer(t + self.settings.dns_session_timeout, conn, T.DNS_EXPIRE)
            else:
                self.remove(conn)
        self.firing = None

    def tick(self, ts: float) -> None:
        """A frame was read at `ts`: network time moves on and due timers fire, whether or not
        the frame decodes (Zeek advances its clock per packet read, before analysis)."""
        if ts > self.network_time:
            self.network_time = ts
            if self.timers and self.timers[0][0] <= ts:
                self.advance(ts)

    def connection_established(self, conn: T.TCPConn) -> None:
        """Zeek's inactivity.zeek: 1 h timeout for ports like 21, 22, 23 once established."""
        port = conn.resp_p
        if conn.orig.state == T.INACTIVE:
            if (port, 6) not in self.likely and (conn.orig_p, 6) in self.likely:
                port = conn.orig_p
        if port in self.settings.long_timeout_ports:
            self.set_inactivity_timeout(conn, self.settings.long_inactivity_timeout)

    # -- lifecycle ----------------------------------------------------------------------------
    def _serial(self) -> int:
        """(frame index << 16) | the how-manieth creation within that frame (from 1)."""
        if self.frame != self._serial_frame:
            self._serial_frame, self._serial_k = self.frame, 0
        self._serial_k += 1
        return (self.frame << 16) | self._serial_k

    def _new(self, cls, key, ts, src, sport, dst, dport, proto, flip: bool, encap=None):
        serial = self._serial()
        if cls is T.TCPConn:
            conn = T.TCPConn(self, key, ts, src, sport, dst, dport, serial)
            timeout = self.settings.udp_inactivity_timeout
        else:
            conn = SimpleConn(key, ts, src, sport, dst, dport, proto, serial)
            timeout = (self.settings.udp_inactivity_timeout if proto == 17 else
                       self.settings.icmp_inactivity_timeout if proto in (1, 58) else
                       self.settings.unknown_ip_inactivity_timeout)
        conn.uid = make_uid(key, ts, serial)
        if encap is not None:
            conn.encap = encap
            conn.tunnel_parents = [encap[-1][1]]
        if flip and dst != _BROADCAST4:
            conn.flip_roles()
        self.set_inactivity_timeout(conn, timeout)
        if cls is T.TCPConn:
            self.add_timer(self.network_time + self.settings.tcp_SYN_timeout, conn, T.EXPIRE)
        elif proto == 17 and conn.resp_p in self.dns_ports:
            self.add_timer(self.network_time + self.settings.dns_session_timeout, conn,
                           T.DNS_EXPIRE)
        if self.max_flows and len(self.conns) >= self.max_flows:
            self._evict()
        self.conns[key] = conn
        if self.on_new is not None:
            self.on_new(conn)
        return conn

    def _evict(self) -> None:
        """The table is full (--max-flows): evict an eighth of it, so the scan is paid rarely.

        Victims, oldest first within each tier: TCP attempts that have not completed a
        handshake, those to the service most of them target first (a flood aims at one; a
        slow real handshake elsewhere is spared); then closed and reset connections waiting
        for their timers, and UDP with no reply; then, if those are too few, the longest
        idle. Each is logged as it stands, like a timeout, and counted in `flows_evicted`.
        Established connections survive a flood of new attempts.
        """
        want = max(1, self.max_flows // 8)
        attempts = []
        for c in self.conns.values():  # insertion order: oldest first
            if _never_answered(c):
                attempts.append(c)
                if len(attempts) >= 2 * want:
                    break
        targets = Counter((c.resp_h, c.resp_p) for c in attempts)
        heavy = {t for t, n in targets.items() if n * 8 >= len(attempts)}
        attempts.sort(key=lambda c: (c.resp_h, c.resp_p) not in heavy)  # stable: oldest first
        victims = attempts[:want]
        chosen = {id(c) for c in victims}
        if len(victims) < want:
            for c in self.conns.values():
                if _closed(c) and id(c) not in chosen:
                    victims.append(c)
                    chosen.add(id(c))
                    if len(victims) >= want:
                        break
        if len(victims) < want:
            victims += heapq.nsmallest(want - len(victims),
                                       (c for c in self.conns.values() if id(c) not in chosen),
                                       key=lambda c: c.last_time)
        for c in victims:
            self.remove(c)
        self.stats["flows_evicted"] += len(victims)
        self._compact_timers()

    def remove(self, conn) -> None:
        if conn.removed:
            return
        conn.removed = True
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        self.emit(self.record(conn))
        if conn.proto == 6:
            # The two endpoints point at each other: break the cycle, so the connection is
            # freed when its last timer goes, not by the cyclic collector (a flood makes
            # hundreds of thousands of them, and collecting them cost a third of the run).
            conn.orig.peer = conn.resp.peer = None

    def flush(self) -> None:
        """End of input: every remaining connection, in creation order, no timeouts applied."""
        for conn in sorted(self.conns.values(), key=lambda c: c.seq_no):
            conn.removed = True
            self.firing = ("flush", conn.seq_no)
            self.emit(self.record(conn))
        self.firing = None
        self.conns.clear()
        self.timers.clear()

    def record(self, c) -> Conn:
        orig_h, resp_h = ntop(c.orig_h), ntop(c.resp_h)
        proto = c.proto
        duration = c.last_time - c.start_time
        rec = Conn(
            ts=c.start_time, uid=c.uid, orig_h=orig_h, orig_p=c.orig_p, resp_h=resp_h,
            resp_p=c.resp_p, proto=proto_name(proto), ip_proto=proto,
            conn_state=c.conn_state(), local_orig=c.orig_h in self.local,
            local_resp=c.resp_h in self.local, missed_bytes=c.missed_bytes, history=c.history,
            orig_pkts=c.orig_pkts, orig_ip_bytes=c.orig_ip_bytes, resp_pkts=c.resp_pkts,
            resp_ip_bytes=c.resp_ip_bytes, tunnel_parents=c.tunnel_parents or [],
            community_id=community_id(c.orig_h, c.resp_h, proto, c.orig_p, c.resp_p),
        )
        if duration > 0:
            rec.duration = duration
            rec.orig_bytes, rec.resp_bytes = c.sizes()
        return rec

    # -- per packet ---------------------------------------------------------------------------
    def process(self, ts: float, pkt: tuple, encap: tuple | None = None) -> None:
        """One decoded IP packet: `(src, dst, proto, ip_len, l4, l4_len, ttl)`.

        `encap` is the stack of tunnels the packet arrived through, outermost first: tuples
        ``(tunnel_type, uid, orig_h, orig_p, resp_h, resp_p)``.
        """
        if ts > self.network_time:
            self.network_time = ts
            if self.timers and self.timers[0][0] <= ts:
                self.advance(ts)
        if self.observer is not None:
            self.observer.packet(ts, pkt, encap)
        proto = pkt[2]
        if proto == 6:
            self._tcp(ts, pkt, encap)
        elif proto == 17:
            self._udp(ts, pkt, encap)
        elif proto == 1 or proto == 58:
            self._icmp(ts, pkt, encap)
        elif proto in IP_PROTOS and self.decode is not None:
            self._ip_tunnel(ts, pkt, encap)
        else:
            self._other(ts, pkt, encap)

    # -- tunnels ------------------------------------------------------------------------------
    def check_encap(self, conn, encap) -> None:
        """Zeek's CheckEncapsulation: a connection seen through another tunnel than before.

        Each change adds the new innermost tunnel to ``tunnel_parents``, up to Zeek's
        Tunnel::max_changes_per_connection (5); past that the history gets an ``X`` instead.
        """
        old = conn.encap
        if old is not None and encap is not None:
            if old != encap:
                if conn.tunnel_changes < MAX_TUNNEL_CHANGES:
                    conn.tunnel_changes += 1
                    self._add_parent(conn, encap)
                elif not conn.hist_seen & HIST_X:
                    conn.hist_seen |= HIST_X
                    conn.history += "X"
                    self.weird("tunnel_max_changes_per_connection_exceeded", conn)
                conn.encap = encap
        elif old is not None:
            conn.encap = None
        elif encap is not None:
            self._add_parent(conn, encap)
            conn.encap = encap

    @staticmethod
    def _add_parent(conn, encap) -> None:
        uid = encap[-1][1]
        if conn.tunnel_parents is None:
            conn.tunnel_parents = [uid]
        elif uid not in conn.tunnel_parents:
            conn.tunnel_parents.append(uid)

    def _ip_tunnel(self, ts: float, pkt: tuple, encap) -> None:
        """IP in IP and GRE: no connection of their own; the inner packet goes on."""
        src, dst, proto, _, l4, l4_len, _ = pkt
        if encap is not None and len(encap) >= MAX_TUNNEL_DEPTH:
            self.weird("exceeded_tunnel_max_depth", src=src, dst=dst)
            return
        result = IP_PROTOS[proto](l4)
        if not isinstance(result, tuple):
            if result is not None:
                self.weird(result, src=src, dst=dst)
            return
        link, off, kind = result
        pair = (src, dst) if src < dst else (dst, src)
        entry = self.ip_tunnels.get(pair)
        if entry is None or ts - entry[1] >= self.settings.ip_tunnel_timeout:
            uid = make_uid(("tunnel",) + pair, ts, self._serial())
            entry = self.ip_tunnels[pair] = [(kind, uid, src, 0, dst, 0), ts]
        else:
            entry[1] = ts
        self._inner(ts, link, l4[off:], l4_len - off, (encap or ()) + (entry[0],))

    def _udp_tunnel(self, ts: float, conn, payload: bytes, claimed: int, encap) -> None:
        """After a UDP packet is counted: open the tunnel its responder port (or content) says."""
        decap = UDP_PORTS.get(conn.resp_p)
        if decap is None:
            for detect, fn in UDP_DETECTORS:
                if detect(payload):
                    decap = fn
                    break
            else:
                return
        if conn.violated is not None and decap in conn.violated:
            return
        if encap is not None and len(encap) >= MAX_TUNNEL_DEPTH:
            if not conn.hist_seen & HIST_X:
                conn.hist_seen |= HIST_X
                conn.history += "X"
            self.weird("exceeded_tunnel_max_depth", conn)
            return
        result = decap(payload)
        if not isinstance(result, tuple):
            if result is not None:
                self.weird(result, conn)
                if conn.violated is None:
                    conn.violated = set()
                conn.violated.add(decap)
            return
        link, off, kind = result
        if kind in IP_LEVEL:  # GRE over UDP: parented by the address pair, as GRE in IP
            pair = (conn.orig_h, conn.resp_h) if conn.orig_h < conn.resp_h else (conn.resp_h, conn.orig_h)
            entry = self.ip_tunnels.get(pair)
            if entry is None or ts - entry[1] >= self.settings.ip_tunnel_timeout:
                uid = make_uid(("tunnel",) + pair, ts, self._serial())
                entry = self.ip_tunnels[pair] = [(kind, uid, conn.orig_h, 0, conn.resp_h, 0), ts]
            else:
                entry[1] = ts
            ec = entry[0]
        else:
            ec = (kind, conn.uid, conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p)
        self._inner(ts, link, payload[off:], claimed - off, (encap or ()) + (ec,))

    def _inner(self, ts: float, link: int, data: bytes, wirelen: int, encap: tuple) -> None:
        self.stats["tunneled_packets"] += 1
        pkt = self.decode(ts, link, data, wirelen)
        if pkt is not None:
            more = self.decoded_more
            rest = more[:]
            more.clear()
            self.process(ts, pkt, encap)
            for p in rest:
                self.process(ts, p, encap)

    def _csum_ok(self, src: bytes, dst: bytes, proto: int, l4: bytes, l4_len: int) -> bool:
        if not self.check_csums or len(l4) < l4_len:
            return True
        if self.no_csum_nets is not None and src in self.no_csum_nets:
            return True
        return l4_checksum_ok(src, dst, proto, l4, l4_len)

    def _too_short(self, l4: bytes, l4_len: int, need: int) -> bool:
        """Zeek's CheckHeaderTrunc: no connection for a transport header that isn't there."""
        if l4_len < need:
            self.weird("truncated_header")
            return True
        if len(l4) < need:
            self.weird("internally_truncated_header")
            return True
        return False

    def _tcp(self, ts: float, pkt: tuple, encap) -> None:
        src, dst, _, ip_len, l4, l4_len, _ = pkt
        n = len(l4)
        if l4_len < 20 or n < 20:
            self.weird("truncated_header" if l4_len < 20 else "internally_truncated_header")
            return
        sport, dport, seq, ack, off, flags, win, _ = _TCP_HDR.unpack_from(l4)
        key = flow_key(src, sport, dst, dport)
        conn = self.conns.get(key)
        if conn is None:
            conn = self._new(T.TCPConn, key, ts, src, sport, dst, dport, 6,
                             self._tcp_flip(sport, dport, flags), encap)
        elif flags & 2 and off >= 0x50 and conn.is_reuse(flags, seq):
            self.remove(conn)
            conn = self._new(T.TCPConn, key, ts, src, sport, dst, dport, 6,
                             self._tcp_flip(sport, dport, flags), encap)
        elif encap is not None or conn.encap is not None:
            self.check_encap(conn, encap)
        is_orig = sport == conn.orig_p and src == conn.orig_h
        hdr_len = (off >> 4) << 2
        if hdr_len < 20 or hdr_len > l4_len or hdr_len > n:
            self.weird("bad_TCP_header_len" if hdr_len < 20 else "truncated_header", conn)
            return
        if (self.check_csums and n >= l4_len
                and not (self.no_csum_nets is not None and src in self.no_csum_nets)
                and not l4_checksum_ok(src, dst, 6, l4, l4_len)):
            self.weird("bad_TCP_checksum", conn)
            conn.checksum_error(is_orig)
            return
        # Both sides established (or picked up midstream: PARTIAL, which the state machine
        # treats alike) and no SYN/FIN/RST: the inlined common case, else the full state
        # machine (after which a "^h" flip may have made this packet the originator's: it is
        # counted for the sender as things stand after it).
        ep = conn.orig if is_orig else conn.resp
        if (flags & 7 or conn.first_packet_seen != 3 or not 3 <= ep.state <= 4
                or not 3 <= ep.peer.state <= 4
                or not conn.established(ts, ep, ep.peer, flags, seq, ack, win,
                                        l4_len - hdr_len, n - hdr_len)):
            conn.process(ts, is_orig, flags, seq, ack, win, l4_len - hdr_len, n - hdr_len)
            is_orig = sport == conn.orig_p and src == conn.orig_h
        if is_orig:
            conn.orig_pkts += 1
            conn.orig_ip_bytes += ip_len
        else:
            conn.resp_pkts += 1
            conn.resp_ip_bytes += ip_len
        if self.observer is not None:
            self.observer.tcp(ts, conn, is_orig, flags, seq, ack, win, l4[hdr_len:], pkt[6])

    def _tcp_flip(self, sport: int, dport: int, flags: int) -> bool:
        """Zeek's TCPAnalyzer::WantConnection: guess the server of a connection seen midway."""
        if flags & T.SYN and not flags & T.ACK:
            return False
        likely = self.likely
        if (sport, 6) in likely:
            if (dport, 6) in likely:
                return not flags & T.SYN and sport < dport
            return True
        return False

    def _udp(self, ts: float, pkt: tuple, encap) -> None:
        src, dst, _, ip_len, l4, l4_len, _ = pkt
        if self._too_short(l4, l4_len, 8):
            return
        sport, dport, ulen, csum = _PORTS.unpack_from(l4)
        key = flow_key(src, sport, dst, dport) + (17,)
        conn = self.conns.get(key)
        if conn is None:
            likely = self.likely
            flip = (sport, 17) in likely and (dport, 17) not in likely
            conn = self._new(SimpleConn, key, ts, src, sport, dst, dport, 17, flip, encap)
        elif encap is not None or conn.encap is not None:
            self.check_encap(conn, encap)
        is_orig = src == conn.orig_h and sport == conn.orig_p
        if (self.check_csums and len(l4) >= l4_len
                and not (self.no_csum_nets is not None and src in self.no_csum_nets)):
            validate = True
            if (csum == 0 and dport in _VXLAN_PORTS and l4_len > 8 + 8 + 14
                    and len(l4) > 8 and l4[8] & 0x08):
                validate = False
            if validate and (csum or len(src) == 16) and not l4_checksum_ok(src, dst, 17, l4, l4_len):
                self.weird("bad_UDP_checksum", conn)
                if is_orig:
                    conn.orig_chk += 1
                    if conn.orig_chk == conn.orig_chk_thresh:
                        conn.history += "C"
                        conn.orig_chk_thresh *= 10
                else:
                    conn.resp_chk += 1
                    if conn.resp_chk == conn.resp_chk_thresh:
                        conn.history += "c"
                        conn.resp_chk_thresh *= 10
                return
        conn.last_time = ts
        size = ulen - 8 if ulen > 8 else 0
        bit = 1 if is_orig else 2
        if not conn.hist_seen & bit:
            conn.hist_seen |= bit
            conn.history += "D" if is_orig else "d"
        conn.count(is_orig, size, ip_len)
        if self.decode is not None and len(l4) > 8:
            self._udp_tunnel(ts, conn, l4[8:], l4_len - 8, encap)

    def _icmp(self, ts: float, pkt: tuple, encap) -> None:
        src, dst, proto, ip_len, l4, l4_len, _ = pkt
        if self._too_short(l4, l4_len, 8):
            return
        icmp_type, code, _ = _ICMP_HDR.unpack_from(l4)
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        counterpart = pairs.get(icmp_type)
        if counterpart is None:  # one-way message: the key keeps its direction
            key = (src, icmp_type, dst, code, proto, 1)
            dport = code
        else:
            dport = counterpart
            key = ((src, icmp_type, dst, dport, proto) if (src, icmp_type) < (dst, dport)
                   else (dst, dport, src, icmp_type, proto))
        conn = self.conns.get(key)
        if conn is None:
            conn = self._new(SimpleConn, key, ts, src, icmp_type, dst, dport, proto, False, encap)
        elif encap is not None or conn.encap is not None:
            self.check_encap(conn, encap)
        is_orig = src == conn.orig_h and icmp_type == conn.orig_p
        if not self._csum_ok(src, dst, proto, l4, l4_len):
            self.weird("bad_ICMP_checksum", conn)
            return
        conn.last_time = ts
        conn.count(is_orig, l4_len - 8, ip_len)

    def _other(self, ts: float, pkt: tuple, encap) -> None:
        src, dst, proto, ip_len = pkt[0], pkt[1], pkt[2], pkt[3]
        key = (src, 0, dst, 0, proto) if src < dst else (dst, 0, src, 0, proto)
        conn = self.conns.get(key)
        if conn is None:
            conn = self._new(SimpleConn, key, ts, src, 0, dst, 0, proto, False, encap)
        elif encap is not None or conn.encap is not None:
            self.check_encap(conn, encap)
        conn.last_time = ts
        conn.count(src == conn.orig_h, 0, ip_len)
