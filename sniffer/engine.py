"""The seam between the per-packet path and everything else: frames in, events out.

One `Engine` owns decode (link layers, IP, fragments, tunnels), the flow table, its timers and
the building of records. `sniffer read`, `sniffer live` and the `--workers` shards only feed it
frames and take its events, in the order they happened:

* `Finished`  a finished connection record (`sniffer.flows.conn.Conn`, Zeek's conn.log row,
  not yet judged), with the key that orders it
* `sniffer.output.weird.Weird`  an anomaly, decode's and the flows' alike (with `weirds=True`)
* `NewConn`  a connection's first packet (with `notices=True`: `live` looks its socket up)

Everything else is the scripting layer's, in Python: the kernel view and its verdicts, the
detectors' policy, the outputs. This is the shape the compiled core keeps (docs/ARCHITECTURE
in ../shared describes the split): frames cross in batches, events come back in batches. The
detectors' per-packet hooks are the one coupling left: they observe packets inside the table
(`detectors`), until the core raises their facts as events too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sniffer.config import Settings
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

    def _finished(self, conn: Conn) -> None:
        table = self.table
        self.events.append(Finished(conn, table.frame, table.firing))

    def _new(self, conn) -> None:
        self.events.append(NewConn(conn, self.table.network_time, self.pkttype))


class CoreEngine:
    """The same seam over the compiled core (`sniffer._core.Engine`): decode, fragments,
    tunnels, the flow table, timers and records all run in Rust, fed frames in batches with
    the GIL released. Events are `Finished` (a `Conn` built from the core's record tuple) and,
    with `weirds=True`, `Weird`; `note(ev)` keeps an outside event in its place by first
    running the frames gathered before it.

    `shard`, ``(n, me)``, makes it shard `me` of `n` (`read --workers`, sniffer.workers: the
    core's owner function is the Python one's). No detectors or notices yet.
    """

    def __init__(self, settings: Settings, stats: Stats, *, weirds: bool = False,
                 shard: tuple[int, int] | None = None) -> None:
        from sniffer import _core
        self.core = _core.Engine(settings, rows=False, weirds=weirds, shard=shard)
        self.stats = stats
        self.weirds = weirds
        self.events: list = []
        self.pending: list[Frame] = []
        self.logged = None
        if weirds:
            if not isinstance(stats, LoggedStats):
                raise TypeError("weirds=True needs LoggedStats: the capture's anomalies come "
                                "from it")
            from sniffer.output.weird import Weird
            # The capture stage (reader) counts its anomalies in `stats` between frames:
            # each joins the stream after the frames read before it.
            stats.sink = lambda name, ts: self.note(Weird(ts, name, source="decode"))
            self.logged = stats

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

    def _run(self) -> None:
        if self.pending:
            batch = self.pending[:]
            self.pending.clear()
            self.core.feed(batch)
        self._collect()

    def _collect(self) -> None:
        events = self.events
        for conn, rest in self.core.take_records():
            c = Conn(*conn, *rest[:9], None, rest[9])
            events.append(Finished(c, rest[10], rest[11]))
        if self.weirds:
            from sniffer.output.weird import Weird
            for ts, name, source, uid, oh, op, rh, rp in self.core.take_weirds():
                events.append(Weird(ts, name, uid, oh, op, rh, rp, source=source))

    def note(self, event) -> None:
        self._run()
        self.events.append(event)

    def take(self) -> list:
        events = self.events[:]
        self.events.clear()
        return events

    def finish(self) -> None:
        self._run()
        self.core.finish()
        self._collect()
        stats = self.stats
        for key, n in self.core.counters().items():
            # (a plain dict update: the core reported these anomalies as events already)
            dict.__setitem__(stats, key, stats.get(key, 0) + n)
