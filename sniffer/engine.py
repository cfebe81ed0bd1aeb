"""The seam between the per-packet path and everything else: frames in, events out.

One engine owns decode (link layers, IP, fragments, tunnels), the flow table, its timers and
the building of records: `CoreEngine`, the compiled one (`sniffer._core`, Rust), or `Engine`,
the Python reference it is held to (tests/test_core_engine.py; `SNIFFER_ENGINE=python` runs
it). `sniffer read`, `sniffer live` and the `--workers` shards only feed it frames and take its
events, in the order they happened:

* `Finished`  a finished connection record (`sniffer.flows.conn.Conn`, Zeek's conn.log row,
  not yet judged), with the key that orders it
* `sniffer.output.weird.Weird`  an anomaly, decode's and the flows' alike (with `weirds=True`)
* `NewConn`  a connection's first packet (with `notices=True`: `live` looks its socket up)

Everything else is the scripting layer's, in Python: the kernel view and its verdicts, the
detectors' policy, the outputs (Zeek's split: docs/ARCHITECTURE in ../shared). Frames cross in
batches, events come back in batches; with detectors the core also reports each packet and TCP
segment, which reach their hooks in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sniffer.config import Settings
from sniffer.errors import SnifferError
from sniffer.flows.conn import Conn
from sniffer.stats import LoggedStats, Stats

Frame = tuple[float, int, bytes, int]  # (ts, linktype, data, wirelen)
DirectedFrame = tuple[float, int, bytes, int, "int | None"]  # ... and the direction (pkttype)
Owner = Callable[[int, bytes], int]  # `--workers`: the shard that owns a frame


@dataclass(slots=True)
class Finished:
    """A finished connection record, with what orders it among the others: the frame being
    processed when it ended, and what ended it (`firing`: None for that frame's packet, a
    timer's ``(when, serial, kind)``, or ``("flush", serial)`` at the end of the input). One
    process's order is (frame, timers due before the packet by time and serial, the packet's
    own), which `--workers` rebuilds from its shards' keys (sniffer.workers)."""

    conn: Conn
    frame: int
    firing: tuple | None


@dataclass(slots=True)
class NewConn:
    """The first packet of a connection; `pkttype` is its frame's direction (sll_pkttype) when
    the source knows it."""

    conn: object  # the live connection (sniffer.flows.table / tcp): read its addresses only
    ts: float
    pkttype: int | None


@dataclass(slots=True)
class KernelEvent:
    """A kernel event from a recording's custom block, in the engine's event stream (`note`),
    so that the records are judged on the kernel's view as it was when they ended."""

    ts: float
    event: dict


class Engine:
    """decode -> flows -> records, fed frames in time order (see the module docstring).

    `stats` counts what the engine saw (packets, bytes, every anomaly by name); with
    `weirds=True` (and `stats` a LoggedStats) each anomaly also becomes a `Weird` event,
    decode's and the capture's included. `shard`,
    ``(owner, me)``, makes this engine one `--workers` shard: frames another shard owns only
    move the clock (and keep their place in the frame count, so uids do not depend on the
    sharding).
    """

    def __init__(self, settings: Settings, stats: Stats, *, detectors=None,
                 weirds: bool = False, notices: bool = False,
                 shard: tuple[Owner, int] | None = None) -> None:
        self.events: list = []
        if weirds:
            if not isinstance(stats, LoggedStats):
                raise TypeError("weirds=True needs LoggedStats: decode's anomalies come from it")
            from sniffer.output.weird import Weird
            append = self.events.append
            stats.sink = lambda name, ts: append(Weird(ts, name, source="decode"))
        # (imported here: a run on the compiled engine never loads the Python one)
        from sniffer.decode import Decoder
        from sniffer.flows.table import FlowTable
        self.stats = stats
        self.decoder = Decoder(settings, stats)
        self.table = FlowTable(settings, stats, self._finished, self.decoder)
        if weirds:
            self.table.weird_sink = self.events.append
        if notices:
            self.table.on_new = self._new
        self.detectors = detectors
        if detectors is not None:
            self.table.observer = detectors
            detectors.table = self.table
        self.owner, self.me = shard if shard is not None else (None, 0)
        self.frames = 0  # frames fed, other shards' included: the serial numbers' base
        self.foreign = 0  # of which another shard's
        self.wire_bytes = 0
        self.pkttype: int | None = None  # the direction of the frame being processed

    @property
    def network_time(self) -> float:
        return self.table.network_time

    def feed(self, frames: Iterable[Frame]) -> None:
        """Process `frames` in order. An error raised by the iterable (a damaged file, a stop
        signal) comes out after every frame before it was processed: the events stay."""
        table, decoder = self.table, self.decoder
        decode, more, process, tick = decoder.decode, decoder.more, table.process, table.tick
        owner, me = self.owner, self.me
        logged = self.stats if isinstance(self.stats, LoggedStats) else None
        n = self.frames
        try:
            for ts, linktype, data, wirelen in frames:
                n += 1
                table.frame = n
                if logged is not None:
                    logged.ts = ts  # anomalies logged meanwhile carry the packet's time
                if ts > table.network_time:
                    tick(ts)
                if owner is not None and owner(linktype, data) != me:
                    self.foreign += 1  # another shard's: only the clock moved
                    continue
                self.wire_bytes += wirelen
                pkt = decode(ts, linktype, data, wirelen)
                if pkt is not None:
                    if more:  # a frame with several packets: the first, then the others
                        rest = more[:]
                        more.clear()
                        process(ts, pkt)
                        for p in rest:
                            process(ts, p)
                    else:
                        process(ts, pkt)
        finally:
            self.frames = n

    def directed(self, frames: Iterable[DirectedFrame]) -> Iterator[Frame]:
        """Frames with their direction -> frames for `feed`: the detectors (and `NewConn`)
        learn each frame's direction (a pcapng EPB's flags, the ring's sll_pkttype) and device
        kind before its packets."""
        hook = self.detectors.frame if self.detectors is not None else None
        for ts, linktype, data, wirelen, pkttype in frames:
            self.pkttype = pkttype
            if hook is not None:
                hook(linktype, data, pkttype)
            yield ts, linktype, data, wirelen

    def note(self, event) -> None:
        """An event from outside the engine (a recording's kernel record, met between two
        frames) in its place in the stream."""
        self.events.append(event)

    def take(self) -> list:
        """The events since the last call, oldest first."""
        events = self.events[:]
        self.events.clear()
        return events

    def finish(self) -> None:
        """The end of the input: every open connection and fragment ends (events to take)."""
        stats = self.stats
        stats["packets"] += self.frames - self.foreign
        stats["bytes"] += self.wire_bytes
        self.frames = self.foreign = self.wire_bytes = 0
        self.decoder.flush()
        if self.detectors is not None:
            self.detectors.flush()
        self.table.flush()

    def open_connections(self, limit: int, closed) -> tuple[int, int, list[Conn]]:
        """(active, closing, the records so far of the `limit` busiest active connections):
        `live`'s dashboard (closing: conn_state in `closed`, over but not yet expired)."""
        import heapq
        active, closing = [], 0
        for c in self.table.conns.values():
            if c.conn_state() in closed:
                closing += 1
            else:
                active.append(c)
        busiest = heapq.nlargest(limit, active, key=lambda c: c.orig_ip_bytes + c.resp_ip_bytes)
        return len(active), closing, [self.table.record(c) for c in busiest]

    def _finished(self, conn: Conn) -> None:
        table = self.table
        self.events.append(Finished(conn, table.frame, table.firing))

    def _new(self, conn) -> None:
        self.events.append(NewConn(conn, self.table.network_time, self.pkttype))


class CoreEngine:
    """The same seam over the compiled core (`sniffer._core.Engine`): decode, fragments,
    tunnels, the flow table, timers and records all run in Rust, fed frames in batches with
    the GIL released. Events are `Finished` (a `Conn` built from the core's record tuple),
    `Weird` (with `weirds=True`) and `NewConn` (with `notices=True`); `note(ev)` keeps an
    outside event in its place by first running the frames gathered before it.

    With `detectors`, the core also reports every packet and TCP segment, and they reach the
    detectors' `packet` and `tcp` hooks in order, each frame's before the records it ended
    (as the Python engine calls them from inside its table); their look-ups of open
    connections (`detectors.table.conns`) ask the core. `shard`, ``(n, me)``, makes it shard
    `me` of `n` (`read --workers`, sniffer.workers: the core's owner function is the Python
    one's).
    """

    def __init__(self, settings: Settings, stats: Stats, *, detectors=None,
                 weirds: bool = False, notices: bool = False,
                 shard: tuple[int, int] | None = None, source: str = "input",
                 state: bytes | None = None) -> None:
        from sniffer import _core
        self._errors = (_core.CoreError, _core.PanicException)
        self.source = source  # what an internal error names (the files, the interface)
        kw = dict(weirds=weirds, shard=shard, notices=notices, facts=detectors is not None)
        self.core = (_core.Engine(settings, **kw) if state is None  # (state: from_state)
                     else _core.Engine.import_state(settings, state, **kw))
        self.stats = stats
        self.events: list = []
        self.pending: list[Frame] = []
        self.detectors = detectors
        if detectors is not None:
            detectors.table = _CoreTable(self.core)
        # The directions (sll_pkttype) of the frames not yet collected, from frame number
        # `dirs_base` on: a NewConn carries its frame's.
        self.dirs: list = []
        self.dirs_base = self.core.frames + 1
        self.logged = None
        self._weird = None
        if weirds:
            if not isinstance(stats, LoggedStats):
                raise TypeError("weirds=True needs LoggedStats: the capture's anomalies come "
                                "from it")
            from sniffer.output.weird import Weird
            self._weird = Weird
            # The capture stage (reader) counts its anomalies in `stats` between frames:
            # each joins the stream after the frames read before it.
            stats.sink = lambda name, ts: self.note(Weird(ts, name, source="decode"))
            self.logged = stats

    @classmethod
    def from_state(cls, settings: Settings, stats: Stats, data: bytes, **kw) -> CoreEngine:
        """An engine that takes over `data` (another's `export_state()`): fed the frames that
        followed, it gives what that one would have (issue 17 reads rotated files on several
        machines). `settings` and `shard` should be the exporter's. ValueError when `data` is
        not a state (or another shard's)."""
        return cls(settings, stats, state=data, **kw)

    def export_state(self) -> bytes:
        """The core's state after the frames fed so far (their events are taken here, in
        `take()`): the open connections, timers, pending fragments, clock and counters. Not in
        it: the detectors' state and what the reader counted in `stats` itself."""
        self._run()
        try:
            return self.core.export_state()
        except self._errors as e:
            raise self._bug(e) from None

    @property
    def network_time(self) -> float:
        return self.core.network_time

    @property
    def frames(self) -> int:
        return self.core.frames + len(self.pending)

    def feed(self, frames: Iterable[Frame]) -> None:
        """Process `frames` in order (a batch at a time). An error raised by the iterable
        comes out after every frame before it was processed."""
        pending = self.pending
        logged = self.logged
        try:
            for frame in frames:
                if logged is not None:
                    logged.ts = frame[0]
                pending.append(frame)
                if len(pending) >= 4096:
                    self._run()
        finally:
            self._run()

    def directed(self, frames: Iterable[DirectedFrame]) -> Iterator[Frame]:
        """Frames with their direction -> frames for `feed` (as Engine.directed): a NewConn
        carries its frame's direction, and the detectors see each frame's direction and
        device kind before its packets (so with detectors, frames go to the core one by
        one)."""
        hook = self.detectors.frame if self.detectors is not None else None
        dirs = self.dirs
        for ts, linktype, data, wirelen, pkttype in frames:
            if hook is not None:
                self._run()  # the frames before: their packets reach the detectors first
                hook(linktype, data, pkttype)
            dirs.append(pkttype)
            yield ts, linktype, data, wirelen

    def _run(self) -> None:
        if self.pending:
            batch = self.pending[:]
            self.pending.clear()
            try:
                self.core.feed(batch)
            except self._errors as e:
                raise self._bug(e) from None
        self._collect()

    def _bug(self, e: BaseException) -> SnifferError:
        """A panic in the core (a bug, caught at its boundary) as one line: the input and the
        frame it met."""
        message = e.args[1] if isinstance(e, self._errors[0]) and len(e.args) > 1 else str(e)
        return SnifferError(f"{self.source}: {message}")

    def _collect(self) -> None:
        events, detectors = self.events, self.detectors
        for ev in self.core.take_events():
            kind = ev[0]
            if kind == "F":
                events.append(Finished(_record(ev[1], ev[2]), ev[2][10], ev[2][11]))
            elif kind == "W":
                events.append(self._weird(ev[1], ev[2], ev[4], ev[5], ev[6], ev[7], ev[8],
                                          source=ev[3]))
            elif kind == "P":
                detectors.packet(ev[1], ev[2], ev[3])
            elif kind == "T":
                _, ts, c, is_orig, flags, seq, ack, win, payload, ttl = ev
                detectors.tcp(ts, SegmentConn(*c), is_orig, flags, seq, ack, win, payload, ttl)
            else:  # "N"
                _, ts, proto, oh, op, rh, rp, uid, frame = ev
                i = frame - self.dirs_base
                pkttype = self.dirs[i] if 0 <= i < len(self.dirs) else None
                events.append(NewConn(OpenedConn(proto, oh, op, rh, rp, uid), ts, pkttype))
        done = self.core.frames - self.dirs_base + 1  # frames run whose directions can go
        if done > 0 and self.dirs:
            del self.dirs[:done]
            self.dirs_base += done

    def note(self, event) -> None:
        self._run()
        self.events.append(event)

    def take(self) -> list:
        events = self.events[:]
        self.events.clear()
        return events

    def open_connections(self, limit: int, closed) -> tuple[int, int, list[Conn]]:
        """(active, closing, the records so far of the `limit` busiest active connections):
        `live`'s dashboard (closing: conn_state in `closed`, over but not yet expired)."""
        active, closing, items = self.core.open_connections(limit, list(closed))
        return active, closing, [_record(conn, rest) for _, conn, rest in items]

    def finish(self) -> None:
        self._run()
        if self.detectors is not None:
            self.detectors.flush()  # (before the table's flush, as the Python engine)
        try:
            self.core.finish()
        except self._errors as e:
            raise self._bug(e) from None
        self._collect()
        self.dirs.clear()
        self.dirs_base = 1
        stats = self.stats
        for key, n in self.core.counters().items():
            # (a plain dict update: the core reported these anomalies as events already)
            dict.__setitem__(stats, key, stats.get(key, 0) + n)


def _record(conn: tuple, rest: tuple) -> Conn:
    """A `Conn` from the core's record tuples (its first 12 fields, then the 10 after
    `service`, which the core leaves unset)."""
    return Conn(*conn, *rest[:9], None, rest[9])


@dataclass(slots=True)
class OpenedConn:
    """A new connection as `NewConn.conn` gives it from the core (raw addresses)."""

    proto: int
    orig_h: bytes
    orig_p: int
    resp_h: bytes
    resp_p: int
    uid: str


@dataclass(slots=True)
class SegmentConn:
    """The connection of a TCP segment, as it stands after it, for the detectors' `tcp` hook
    (what they read of the Python engine's TCPConn: raw addresses, the table's key)."""

    uid: str
    key: tuple
    orig_h: bytes
    orig_p: int
    resp_h: bytes
    resp_p: int
    orig_pkts: int
    resp_pkts: int


class _CoreConns:
    """`detectors.table.conns` over the core: `key in conns`, `conns.get(key).uid`."""

    def __init__(self, core) -> None:
        self.core = core

    def __contains__(self, key: tuple) -> bool:
        return self.core.uid_of(key) is not None

    def get(self, key: tuple, default=None):
        uid = self.core.uid_of(key)
        return default if uid is None else _Uid(uid)


@dataclass(slots=True)
class _Uid:
    uid: str


class _CoreTable:
    """What the detectors read of the table (`conns`), answered by the core."""

    def __init__(self, core) -> None:
        self.conns = _CoreConns(core)
