"""Differential test: the compiled core's TCP state machine against the Python one.

The Python `TCPConn` (sniffer/flows/tcp.py) is the reference. The core's (core/src/flows/tcp.rs,
reached through the test-only `sniffer._core._TcpConn`, not yet driven by the engine) must, after
every segment, hold the identical state (history, conn_state, sizes, missed bytes, both
endpoints' states, sequence bookkeeping and reassembler ranges, packet counters) and have made
the identical calls on its table (weirds, timers with their generation, inactivity timeouts,
"established", "remove").

Both are driven the way `FlowTable._tcp` drives a TCP connection: the creation-time flip
(`_tcp_flip`), the reuse check, the checksum (a bad one: `checksum_error` and nothing else),
the inlined `established` path or `process`, the per-side counters, and the table's timers
(inactivity, SYN expire, attempt, expire, delete) fired at each segment's time from the calls
the machines made. Inputs: every TCP segment of the Zeek and Suricata reference corpora and the
bundled captures, grouped per connection key in order, and hypothesis-generated segment sequences
(handshakes, data both ways, retransmissions, gaps, out of order, FIN/RST anywhere, SYN reuse,
sequence numbers near 2^32, zero windows, truncated payloads). Then the corpus once more through
the real engine (`Engine`, its `FlowTable`, tunnels opened), each TCP connection a `Shadowed`
TCPConn that mirrors every call the table makes on it into the core's machine.

Left to the table, so not compared: the addresses (the machine keeps only ports and a
`flipped` bit) and, inside the real table, the packet counters (the tests driving both alone
compare those).
"""

from __future__ import annotations

import heapq
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sharedkit
from sniffer import _core
from sniffer.capture import open_capture
from sniffer.config import Settings, parse_ports
from sniffer.decode import Decoder, l4_checksum_ok
from sniffer.errors import BadInputError
from sniffer.flows import tcp as T
from sniffer.flows.conn import flow_key
from sniffer.flows.table import HIST_X
from sniffer.stats import Stats

ROOT = Path(__file__).resolve().parents[1]
_TCP_HDR = struct.Struct("!HHIIBBHH")
#: the settings the machine reads
FIELDS = ("tcp_attempt_delay", "tcp_close_delay", "tcp_connection_linger", "tcp_session_timer",
          "tcp_inactivity_timeout", "report_gaps_for_partial")
ADDR_A, ADDR_B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"


class RecordingTable:
    """What `TCPConn` calls on its table, recorded as `_core._TcpConn.events()` reports it."""

    def __init__(self, cfg: Settings) -> None:
        self.settings = cfg
        self.events: list[tuple] = []

    def weird(self, name: str, conn=None, **_) -> None:
        self.events.append(("weird", name))

    def set_inactivity_timeout(self, conn, timeout: float) -> None:
        self.events.append(("inactivity", conn.last_time, timeout))

    def add_timer(self, when: float, conn, kind: int) -> None:
        self.events.append(("timer", when, kind, conn.timer_gen))

    def connection_established(self, conn) -> None:
        self.events.append(("established", conn.orig_p, conn.resp_p,
                            conn.orig.state == T.INACTIVE))

    def remove(self, conn) -> None:
        self.events.append(("remove",))


def _endpoint(e: T.Endpoint) -> dict:
    return {
        "is_orig": e.is_orig, "state": e.state, "prev_state": e.prev_state,
        "start_seq": e.start_seq, "last_seq": e.last_seq, "ack_seq": e.ack_seq,
        "seq_wraps": e.seq_wraps, "ack_wraps": e.ack_wraps, "FIN_cnt": e.FIN_cnt,
        "RST_cnt": e.RST_cnt, "FIN_seq": e.FIN_seq, "did_close": e.did_close,
        "hist_last_SYN": e.hist_last_SYN, "hist_last_FIN": e.hist_last_FIN,
        "hist_last_RST": e.hist_last_RST, "chk_cnt": e.chk_cnt, "rxmt_cnt": e.rxmt_cnt,
        "win0_cnt": e.win0_cnt, "gap_cnt": e.gap_cnt, "last_reassem": e.last_reassem,
        "trim_seq": e.trim_seq, "blocks": [tuple(b) for b in e.blocks], "skip": e.skip,
        "did_eof": e.did_eof,
    }


def py_state(c: T.TCPConn) -> dict:
    """The reference's state, keyed as `_TcpConn.state()`."""
    return {
        "history": c.history, "hist_seen": c.hist_seen, "conn_state": c.conn_state(),
        "sizes": c.sizes(), "missed_bytes": c.missed_bytes, "start_time": c.start_time,
        "last_time": c.last_time, "orig_p": c.orig_p, "resp_p": c.resp_p,
        "flipped": c.orig_h != ADDR_A, "orig_pkts": c.orig_pkts,
        "orig_ip_bytes": c.orig_ip_bytes, "resp_pkts": c.resp_pkts,
        "resp_ip_bytes": c.resp_ip_bytes, "is_active": c.is_active, "is_partial": c.is_partial,
        "first_packet_seen": c.first_packet_seen, "close_deferred": c.close_deferred,
        "deferred_gen_event": c.deferred_gen_event, "timer_gen": c.timer_gen,
        "orig": _endpoint(c.orig), "resp": _endpoint(c.resp),
    }


def rs_state(r) -> dict:
    s = dict(r.state())
    s["sizes"] = tuple(s["sizes"])
    for side in ("orig", "resp"):
        e = dict(s[side])
        e["blocks"] = [tuple(b) for b in e["blocks"]]
        s[side] = e
    return s


class Pair:
    """One connection in both machines, with the table's part around them (timers, counters)."""

    def __init__(self, cfg: Settings, ts: float, port_a: int, port_b: int, flip: bool) -> None:
        self.cfg = cfg
        self.table = RecordingTable(cfg)
        self.py = T.TCPConn(self.table, ("k",), ts, ADDR_A, port_a, ADDR_B, port_b, 1)
        self.rs = _core._TcpConn({f: getattr(cfg, f) for f in FIELDS}, ts, port_a, port_b)
        self.timers: list[tuple] = []
        self.tseq = 0
        self.inactivity = 0.0
        self.inact_gen = 0
        self.removed = False
        self.steps = 0
        if flip:
            self.py.flip_roles()
            self.rs.flip_roles()
        # FlowTable._new: the first inactivity timeout, and the SYN expire timer.
        self._inactivity(ts, cfg.udp_inactivity_timeout)
        self._push(ts + cfg.tcp_SYN_timeout, T.EXPIRE, 0)
        self.check("created")

    def _push(self, when: float, kind: int, gen: int) -> None:
        self.tseq += 1
        heapq.heappush(self.timers, (when, kind, gen, self.tseq))

    def _inactivity(self, last_time: float, timeout: float) -> None:
        if timeout == self.inactivity:
            return
        self.inact_gen += 1
        if timeout:
            self._push(last_time + timeout, T.INACTIVITY, self.inact_gen)
        self.inactivity = timeout

    def check(self, what: str) -> None:
        """Both machines hold the same state and made the same calls; apply the calls."""
        self.steps += 1
        py_events, self.table.events = self.table.events, []
        rs_events = [tuple(e) for e in self.rs.events()]
        assert rs_events == py_events, f"{what}: table calls differ"
        want = py_state(self.py)
        got = rs_state(self.rs)
        assert got == want, f"{what}: state differs: " + repr(
            {k: (want[k], got.get(k)) for k in want if want[k] != got.get(k)})
        for e in py_events:
            if e[0] == "inactivity":
                self._inactivity(e[1], e[2])
            elif e[0] == "timer":
                self._push(e[1], e[2], e[3])
            elif e[0] == "remove":
                self.removed = True

    def advance(self, t: float) -> None:
        """FlowTable.advance for this connection's timers due at `t`."""
        while self.timers and self.timers[0][0] <= t and not self.removed:
            _, kind, gen, _ = heapq.heappop(self.timers)
            if kind == T.INACTIVITY:
                if gen != self.inact_gen:
                    continue
                if self.py.last_time + self.inactivity <= t:
                    self.removed = True
                else:
                    self._push(self.py.last_time + self.inactivity, T.INACTIVITY, gen)
            elif gen != self.py.timer_gen:
                continue
            elif kind == T.EXPIRE:
                self.py.expire_timer(t)
                self.rs.expire_timer(t)
                self.check(f"expire timer at {t}")
            elif kind == T.ATTEMPT:
                self.py.attempt_timer(t)
                self.rs.attempt_timer(t)
                self.check(f"attempt timer at {t}")
            else:
                self.removed = True

    def segment(self, ts: float, from_a: bool, flags: int, seq: int, ack: int, win: int,
                length: int, caplen: int, ip_len: int, csum_ok: bool = True) -> None:
        """FlowTable._tcp from the checksum on, for a segment sent by side A or B."""
        py = self.py
        is_orig = (ADDR_A if from_a else ADDR_B) == py.orig_h
        assert is_orig == (from_a != self.rs.state()["flipped"])
        what = f"segment {self.steps} flags={flags:#x} seq={seq} ack={ack} len={length}"
        if not csum_ok:
            py.checksum_error(is_orig)
            self.rs.checksum_error(is_orig)
            self.check(what + " (bad checksum)")
            return
        rs_is_orig = is_orig  # the table decides from the addresses, before the machine runs
        ep = py.orig if is_orig else py.resp
        if (flags & 7 or py.first_packet_seen != 3 or not 3 <= ep.state <= 4
                or not 3 <= ep.peer.state <= 4
                or not py.established(ts, ep, ep.peer, flags, seq, ack, win, length, caplen)):
            py.process(ts, is_orig, flags, seq, ack, win, length, caplen)
            is_orig = (ADDR_A if from_a else ADDR_B) == py.orig_h
        rs_orig = self.rs.call("segment", (ts, rs_is_orig, flags, seq, ack, win, length,
                                           caplen))
        assert rs_orig == is_orig, f"{what}: counted for another side"
        if is_orig:
            py.orig_pkts += 1
            py.orig_ip_bytes += ip_len
        else:
            py.resp_pkts += 1
            py.resp_ip_bytes += ip_len
        self.rs.count(rs_orig, ip_len)
        self.check(what)

    @property
    def flipped(self) -> bool:
        return self.py.orig_h != ADDR_A


class Driver:
    """A table of `Pair`s by connection key, as `FlowTable._tcp` keeps TCP connections."""

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.pairs: dict[tuple, tuple[tuple, Pair]] = {}
        self.conns = 0

    def _flip(self, sport: int, dport: int, flags: int) -> bool:
        """FlowTable._tcp_flip."""
        if flags & T.SYN and not flags & T.ACK:
            return False
        likely = self.cfg.likely_server_ports
        if (sport, 6) in likely:
            if (dport, 6) in likely:
                return not flags & T.SYN and sport < dport
            return True
        return False

    def _new(self, key, ts, src, sport, dport, flags) -> Pair:
        pair = Pair(self.cfg, ts, sport, dport, self._flip(sport, dport, flags))
        self.pairs[key] = ((src, sport), pair)
        self.conns += 1
        return pair

    def packet(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int, flags: int,
               seq: int, ack: int, off: int, win: int, length: int, caplen: int, ip_len: int,
               csum_ok: bool = True) -> None:
        key = flow_key(src, sport, dst, dport)
        entry = self.pairs.get(key)
        pair = None
        if entry is not None:
            entry[1].advance(ts)
            if not entry[1].removed:
                pair = entry[1]
        if pair is None:
            pair = self._new(key, ts, src, sport, dport, flags)
        else:
            reuse = pair.py.is_reuse(flags, seq)
            assert pair.rs.is_reuse(flags, seq) == reuse, "is_reuse differs"
            if flags & T.SYN and off >= 0x50 and reuse:
                pair = self._new(key, ts, src, sport, dport, flags)
        a_end = self.pairs[key][0]
        pair.segment(ts, (src, sport) == a_end, flags, seq, ack, win, length, caplen, ip_len,
                     csum_ok)


# --- the corpus --------------------------------------------------------------------------------

def _args(trace: Path) -> list[str]:
    f = trace.parent / "args"
    return f.read_text().split() if f.is_file() else []


def _settings(trace: Path) -> Settings:
    """The settings of a corpus pair's `args` that reach the TCP path."""
    args = _args(trace)
    cfg = Settings()
    cfg.ignore_checksums = "-C" in args
    cfg.report_gaps_for_partial = "--report-gaps-for-partial" in args
    if "--likely-server-ports" in args:
        cfg.likely_server_ports = parse_ports(args[args.index("--likely-server-ports") + 1])
    return cfg


def _traces() -> list[Path]:
    found = (sorted(sharedkit.CORPUS.glob("zeek/*/trace.*"))
             + sorted(sharedkit.CORPUS.glob("suricata/*/*.pcap*"))
             + sorted((ROOT / "pcaps").glob("*.pcap*")))
    assert len(found) > 100, f"expected the Zeek and Suricata corpora under {sharedkit.CORPUS}"
    return found


def _tcp_segments(trace: Path, cfg: Settings):
    """Every TCP segment of `trace` (outer packets; tunnels are the table's), decoded by the
    Python decoder, as FlowTable._tcp sees it: header fields, lengths, checksum verdict."""
    dec = Decoder(cfg, Stats())
    try:
        for frame in open_capture([str(trace)], Stats()):
            ts = frame[0]
            pkt = dec.decode(*frame[:4])
            pkts = ([pkt] if pkt is not None else []) + list(dec.more)
            dec.more.clear()
            for src, dst, proto, ip_len, l4, l4_len, _ in pkts:
                l4 = bytes(l4)
                if proto != 6 or l4_len < 20 or len(l4) < 20:
                    continue
                sport, dport, seq, ack, off, flags, win, _ = _TCP_HDR.unpack_from(l4)
                hdr_len = (off >> 4) << 2
                bad_hdr = hdr_len < 20 or hdr_len > l4_len or hdr_len > len(l4)
                csum_ok = (cfg.ignore_checksums or len(l4) < l4_len or bad_hdr
                           or l4_checksum_ok(bytes(src), bytes(dst), 6, l4, l4_len))
                yield (ts, bytes(src), sport, bytes(dst), dport, flags, seq, ack, off, win,
                       l4_len - hdr_len, len(l4) - hdr_len, ip_len, csum_ok, bad_hdr)
    except BadInputError:
        return


def test_corpus_segments_match() -> None:
    """Every TCP connection of every corpus trace: the same state after every segment."""
    total = conns = 0
    for trace in _traces():
        cfg = _settings(trace)
        drv = Driver(cfg)
        for (ts, src, sport, dst, dport, flags, seq, ack, off, win, length, caplen, ip_len,
             csum_ok, bad_hdr) in _tcp_segments(trace, cfg):
            if bad_hdr:
                continue
            try:
                drv.packet(ts, src, sport, dst, dport, flags, seq, ack, off, win, length,
                           caplen, ip_len, csum_ok)
            except AssertionError as e:
                raise AssertionError(f"{trace}: packet at {ts}: {e}") from None
            total += 1
        conns += drv.conns
    assert total > 7000 and conns > 1000, (total, conns)


# --- generated sequences ------------------------------------------------------------------------

FLAG_CHOICES = [
    T.ACK, T.ACK, T.ACK | T.PSH, T.ACK | T.PSH, T.ACK, T.SYN, T.SYN | T.ACK, T.FIN | T.ACK,
    T.RST, T.RST | T.ACK, T.FIN, T.SYN | T.FIN, T.FIN | T.RST, 0, T.SYN | T.RST, T.ACK | T.URG,
]


@st.composite
def conversations(draw):
    """A connection's segments: mostly plausible (in order, acking the peer), with
    retransmissions, gaps, reordering, stray flags, ISNs near 2^32, zero windows and
    truncated payloads mixed in."""
    isn = [draw(st.sampled_from([0, 1, 0x7FFFFFF0, 0xFFFFFFFF, 0xFFFFF000]) |
                st.integers(0, 0xFFFFFFFF)) for _ in range(2)]
    nxt = list(isn)
    ts = 1000.0
    segs = []
    if draw(st.booleans()):
        # a three-way handshake first (sometimes with the SYN-ACK seen before the SYN)
        hs = [(0, T.SYN), (1, T.SYN | T.ACK), (0, T.ACK)]
        if draw(st.integers(0, 4)) == 0:
            hs[0], hs[1] = hs[1], hs[0]
        for side, flags in hs:
            seq = isn[side]
            ack = (isn[1 - side] + 1) & 0xFFFFFFFF if flags & T.ACK else 0
            ts += 0.01
            segs.append((ts, side, flags, seq, ack, 65535, 0, 0, True))
        nxt = [(isn[0] + 1) & 0xFFFFFFFF, (isn[1] + 1) & 0xFFFFFFFF]
    for _ in range(draw(st.integers(1, 40))):
        side = draw(st.integers(0, 1))
        flags = draw(st.sampled_from(FLAG_CHOICES) | st.integers(0, 0x3F))
        how = draw(st.sampled_from(["next", "next", "next", "rxmt", "gap", "back", "any"]))
        length = draw(st.sampled_from([0, 0, 1, 100, 1460]) | st.integers(0, 70000))
        if how == "next":
            seq = nxt[side]
        elif how == "rxmt":
            seq = (nxt[side] - draw(st.integers(1, 3000))) & 0xFFFFFFFF
        elif how == "gap":
            seq = (nxt[side] + draw(st.integers(1, 40000))) & 0xFFFFFFFF
        elif how == "back":
            seq = (isn[side] - draw(st.integers(0, 5))) & 0xFFFFFFFF
        else:
            seq = draw(st.integers(0, 0xFFFFFFFF))
        if flags & T.RST:
            length = draw(st.sampled_from([0, length]))
        seg = length + (1 if flags & T.SYN else 0) + (1 if flags & T.FIN else 0)
        if how in ("next", "gap"):
            nxt[side] = (seq + seg) & 0xFFFFFFFF
        ack_how = draw(st.sampled_from(["peer", "peer", "old", "any", "zero"]))
        ack = {"peer": nxt[1 - side], "old": (nxt[1 - side] - 1000) & 0xFFFFFFFF,
               "zero": 0}.get(ack_how)
        if ack is None:
            ack = draw(st.integers(0, 0xFFFFFFFF))
        win = draw(st.sampled_from([65535, 65535, 0, 512]))
        caplen = length if draw(st.integers(0, 9)) else draw(st.integers(0, length))
        ts += draw(st.sampled_from([0.0, 0.001, 0.5, 3.0, 7.0, 400.0]))
        csum_ok = draw(st.integers(0, 30)) != 0
        segs.append((ts, side, flags, seq, ack, win, length, caplen, csum_ok))
    return segs


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(conversations(), st.sampled_from([(1234, 80), (80, 1234), (22, 2222), (5000, 6000)]),
       st.booleans())
def test_generated_sequences_match(segs, ports, gaps_for_partial) -> None:
    """Generated segment sequences: the same state and table calls after every segment."""
    cfg = Settings()
    cfg.report_gaps_for_partial = gaps_for_partial
    drv = Driver(cfg)
    hosts = (ADDR_A, ADDR_B)
    for ts, side, flags, seq, ack, win, length, caplen, csum_ok in segs:
        sport, dport = ports if side == 0 else ports[::-1]
        drv.packet(ts, hosts[side], sport, hosts[1 - side], dport, flags, seq, ack, 0x50,
                   win, length, caplen, 40 + length, csum_ok)


# --- inside the real flow table -------------------------------------------------------------------

class _Forwarding(RecordingTable):
    """The real table, with the calls a connection's machine makes on it recorded."""

    def __init__(self, table) -> None:
        super().__init__(table.settings)
        self._table = table

    def weird(self, name: str, conn=None, **kw) -> None:
        super().weird(name, conn)
        self._table.weird(name, conn, **kw)

    def set_inactivity_timeout(self, conn, timeout: float) -> None:
        super().set_inactivity_timeout(conn, timeout)
        self._table.set_inactivity_timeout(conn, timeout)

    def add_timer(self, when: float, conn, kind: int) -> None:
        super().add_timer(when, conn, kind)
        self._table.add_timer(when, conn, kind)

    def connection_established(self, conn) -> None:
        super().connection_established(conn)
        self._table.connection_established(conn)

    def remove(self, conn) -> None:
        super().remove(conn)
        self._table.remove(conn)


#: what the table itself counts on the connection (compared by the tests above)
_TABLE_OWNED = ("flipped", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")


class Shadowed(T.TCPConn):
    """The Python TCPConn with the core's machine beside it: every call the table makes on
    the connection goes to both, and afterwards both agree (state and calls on the table)."""

    __slots__ = ("rs", "inside", "segments")

    def __init__(self, table, key, ts, src, sport, dst, dport, seq_no) -> None:
        super().__init__(_Forwarding(table), key, ts, src, sport, dst, dport, seq_no)
        cfg = table.settings
        self.rs = _core._TcpConn({f: getattr(cfg, f) for f in FIELDS}, ts, sport, dport)
        self.inside = False
        self.segments = 0

    def _sync(self) -> None:
        """Mirror what the table wrote on the connection since the last call: the tunnel's
        "X" (FlowTable.check_encap), at the same place in the history."""
        if self.hist_seen & HIST_X and not self.rs.state()["hist_seen"] & HIST_X:
            self.rs.check_history(HIST_X, "X")

    def _agree(self, what: str) -> None:
        py_events, self.table.events = self.table.events, []
        assert [tuple(e) for e in self.rs.events()] == py_events, f"{what}: table calls differ"
        want, got = py_state(self), rs_state(self.rs)
        for k in _TABLE_OWNED:
            del want[k], got[k]
        assert got == want, f"{what}: state differs: " + repr(
            {k: (want[k], got.get(k)) for k in want if want[k] != got.get(k)})

    def flip_roles(self) -> None:
        if not self.inside:
            self._sync()
        super().flip_roles()
        if not self.inside:  # the table's flip (a machine's own is mirrored by the machine)
            self.rs.flip_roles()
            self._agree("flip_roles")

    def checksum_error(self, is_orig: bool) -> None:
        self._sync()
        super().checksum_error(is_orig)
        self.rs.checksum_error(is_orig)
        self._agree("checksum_error")

    def is_reuse(self, flags: int, seq: int) -> bool:
        self._sync()
        reuse = super().is_reuse(flags, seq)
        assert self.rs.is_reuse(flags, seq) == reuse, "is_reuse differs"
        return reuse

    def process(self, ts, is_orig, flags, base_seq, ack_seq, window, length, caplen) -> None:
        self._sync()
        self.inside = True
        try:
            super().process(ts, is_orig, flags, base_seq, ack_seq, window, length, caplen)
        finally:
            self.inside = False
        self.rs.call("process", (ts, is_orig, flags, base_seq, ack_seq, window, length, caplen))
        self.segments += 1
        self._agree(f"process {flags:#x} {base_seq} {ack_seq} {length}")

    def established(self, ts, ep, peer, flags, base_seq, ack_seq, window, length,
                    caplen) -> bool:
        self._sync()
        is_orig = ep.is_orig
        self.inside = True
        try:
            done = super().established(ts, ep, peer, flags, base_seq, ack_seq, window,
                                       length, caplen)
        finally:
            self.inside = False
        got = self.rs.call("established", (ts, is_orig, flags, base_seq, ack_seq, window,
                                           length, caplen))
        assert got == done, "established() took another path"
        self.segments += done
        self._agree(f"established {flags:#x} {base_seq} {ack_seq} {length}")
        return done

    def attempt_timer(self, t: float) -> None:
        self._sync()
        super().attempt_timer(t)
        self.rs.attempt_timer(t)
        self._agree(f"attempt timer at {t}")

    def expire_timer(self, t: float) -> None:
        self._sync()
        super().expire_timer(t)
        self.rs.expire_timer(t)
        self._agree(f"expire timer at {t}")


def test_corpus_inside_the_flow_table(monkeypatch) -> None:
    """The corpus through the real engine (tunnels opened, the table's own timers, reuse and
    flips), every TCP connection shadowed by the core's machine."""
    from sniffer.engine import Engine

    made: list[Shadowed] = []

    class Counted(Shadowed):
        __slots__ = ()

        def __init__(self, *args) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(T, "TCPConn", Counted)
    for trace in _traces():
        engine = Engine(_settings(trace), Stats())
        try:
            engine.feed(open_capture([str(trace)], Stats()))
        except BadInputError:
            pass
        except AssertionError as e:
            raise AssertionError(f"{trace}: at {engine.network_time}: {e}") from None
        engine.finish()
    assert len(made) > 1000 and sum(c.segments for c in made) > 7000
