"""The detector engine: one observer for the flow table that fans out to the detector modules.

`Detectors(settings, local_addrs)` is attached as ``FlowTable.observer`` (and told of finished
records by the pipeline) only when a run asks for alerts, so plain runs pay nothing.

Writing a detector
------------------
A detector is a module ``sniffer/detect/<name>.py`` with a class ``Detector``::

    class Detector:
        kind = "land"                         # stable alert kind(s) it emits
        def __init__(self, engine): ...       # engine: settings, local, pkttype, loopback, emit
        def packet(self, ts, pkt, encap): ... # optional: every decoded IP packet
        def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl): ...  # optional
        def finished(self, record): ...       # optional: every finished sniffer.flows.conn.Conn
        def kernel(self, ts, event): ...      # optional: every kernel-view event (live, recordings)
        def tick(self, now): ...              # optional: live, every 50 ms (network time)
        def settle(self): ...                 # optional: the end of the run, before the last write

Only the hooks a detector defines are called. Hooks run per packet: do a cheap test first (a
byte compare, a flag mask) and nothing expensive unless it fires.

Registration is one line in ``DETECTORS`` (sniffer/detect/__init__.py): the module's dotted
name, e.g. ``"sniffer.detect.tcp_rst_injection",``.

What the engine gives a detector
--------------------------------
* ``engine.emit(alert, key=None)``: report an `Alert`. Alerts with the same kind and key (by
  default the uid, else the addresses/ports/proto) are aggregated: the first is kept and
  ``evidence["repeats"]`` counts the others (``evidence["last_ts"]`` the last one's time). At
  most ``settings.detect_max_alerts`` distinct alerts are held; the rest are counted in
  ``stats["alerts_dropped"]``. A packet-level alert without a uid gets the uid of the TCP or UDP
  connection its packet went to (looked up right after the flow table processed it).
* ``engine.held(kind, key)``: the alert of that kind and key raised and not yet written, or
  None: a detector may bring its evidence up to date until it is written (port-scan's count).
* ``engine.local``: the host's addresses as raw bytes (``--local-addr``, the recording's or the
  live kernel's address list); empty when unknown.
* ``engine.pkttype``: the Linux ``sll_pkttype`` of the current frame (0 host, 1 broadcast,
  2 multicast, 3 other host, 4 outgoing) or None when the direction is unknown.
* ``engine.loopback``: the current frame was captured on a loopback interface.
* ``engine.table``: the FlowTable, for read-only look-ups (``conns``), or None.
"""

from __future__ import annotations

import importlib
import socket
from collections import Counter

from sniffer.detect import DETECTORS, Alert
from sniffer.flows.community_id import community_id
from sniffer.flows.conn import flow_key, ntop, proto_name
_ZERO_MACS = bytes(12)
ARPHRD_LOOPBACK = 772
PACKET_OUTGOING = 4


def flow_ports(proto: int, l4: bytes) -> tuple[int, int]:
    """The ports of a TCP/UDP packet, the type and code of an ICMP one (as the flow table keys
    it), else (0, 0): the `flow` of a packet-level alert."""
    if proto in (6, 17) and len(l4) >= 4:
        return l4[0] << 8 | l4[1], l4[2] << 8 | l4[3]
    if proto in (1, 58) and len(l4) >= 2:
        return l4[0], l4[1]
    return 0, 0


def raw_addr(text: str | bytes) -> bytes:
    """A textual (or already raw) address as the raw bytes the decoder hands over."""
    if isinstance(text, bytes):
        return text
    text = text.strip()
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


class Detectors:
    """The flow table's observer: every registered detector, and the alerts they raised."""

    def __init__(self, settings, local_addrs=None, stats=None, modules=None) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else Counter()
        self.fixed_local = frozenset(raw_addr(a) for a in (local_addrs or ()))
        self.local: frozenset[bytes] = self.fixed_local
        self.pkttype: int | None = None  # set per frame by the capture loop, None: unknown
        self.loopback = False
        self.table = None
        self.alerts: list[Alert] = []
        self._index: dict[tuple, Alert] = {}  # (kind,) + key -> the alert repeats add to
        self._unwritten: list[tuple[Alert, tuple]] = []  # with their _index keys
        self.by_uid: dict[str, list[Alert]] = {}  # a connection's alerts, for detectors to consult
        self.file = None  # sniffer.output.alerts.AlertFile, with --alerts
        self.frame_no = 0  # frames seen so far: the current frame's number, from 1
        self._at_frame: int | None = None  # frame being processed, None outside packet hooks
        self._need_uid: list[tuple[Alert, tuple]] = []
        self.max_alerts = getattr(settings, "detect_max_alerts", 10000)
        self.detectors = []
        for name in (DETECTORS if modules is None else modules):
            mod = importlib.import_module(name)
            self.detectors.append(mod.Detector(self))
        self._packet = [d.packet for d in self.detectors if hasattr(d, "packet")]
        self._tcp = [d.tcp for d in self.detectors if hasattr(d, "tcp")]
        self._finished = [d.finished for d in self.detectors if hasattr(d, "finished")]
        self._kernel = [d.kernel for d in self.detectors if hasattr(d, "kernel")]
        self._tick = [d.tick for d in self.detectors if hasattr(d, "tick")]
        self._settle = [d.settle for d in self.detectors if hasattr(d, "settle")]

    # -- context the pipeline keeps current ---------------------------------------------------
    def set_local(self, addrs) -> None:
        """The host's addresses changed (a kernel `addresses` event); --local-addr stays."""
        new = set(self.fixed_local)
        for a in addrs:
            try:
                new.add(raw_addr(a))
            except (OSError, ValueError):
                pass
        self.local = frozenset(new)

    def kernel_event(self, ts: float, ev: dict) -> None:
        """A kernel view event (live, or replayed from a recording): addresses, snapshots,
        hidden-socket checks; detectors with a `kernel` hook see every one."""
        if ev.get("kind") == "addresses":
            self.set_local(ev.get("addresses", ()))
        for hook in self._kernel:
            hook(ts, ev)

    def frame(self, linktype: int, data: bytes, pkttype: int | None = None) -> None:
        """Before each captured frame: its direction and whether it came from a loopback device.

        Linux cooked captures carry both in their header; an Ethernet frame with both MAC
        addresses zero is Linux loopback; BSD loopback link types are loopback.
        """
        if linktype == 1:
            self.loopback = data[:12] == _ZERO_MACS
        elif linktype == 113 and len(data) >= 16:  # SLL: pkttype(2) hatype(2) ...
            pkttype = data[1]
            self.loopback = (data[2] << 8 | data[3]) == ARPHRD_LOOPBACK
        elif linktype == 276 and len(data) >= 20:  # SLL2: proto(2) rsv(2) ifindex(4) hatype(2) pkttype(1)
            pkttype = data[10]
            self.loopback = (data[8] << 8 | data[9]) == ARPHRD_LOOPBACK
        else:
            self.loopback = linktype in (0, 108)
        self.pkttype = pkttype
        self.frame_no += 1

    # -- the observer contract ----------------------------------------------------------------
    def packet(self, ts: float, pkt: tuple, encap) -> None:
        if self._need_uid:
            self._resolve_uids()
        self._at_frame = self.frame_no or None
        for fn in self._packet:
            fn(ts, pkt, encap)

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        self._at_frame = self.frame_no or None
        for fn in self._tcp:
            fn(ts, conn, is_orig, flags, seq, ack, win, payload, ttl)

    def finished(self, record) -> None:
        if self._need_uid:
            self._resolve_uids()
        self._at_frame = None  # a record ends on a timer or at the end, not by this frame
        for fn in self._finished:
            fn(record)

    # -- alerts -------------------------------------------------------------------------------
    def emit(self, alert: Alert, key: tuple | None = None, flow: tuple | None = None) -> None:
        """Report one alert; a repeat of (kind, key) only counts in the first one's evidence.

        `flow`, when given, is the packet's ``(src, dst, proto, sport, dport)`` in raw form: it
        fills the address fields and the Community ID, and the uid once the flow table knows
        the connection.
        """
        if flow is not None:
            src, dst, proto, sport, dport = flow
            alert.src, alert.dst = ntop(src), ntop(dst)
            alert.proto = proto_name(proto)  # as the connection's record names it
            if proto in (6, 17):
                alert.sport, alert.dport = sport, dport
            if alert.community_id is None:
                alert.community_id = community_id(src, dst, proto, sport, dport)
        if key is None:
            key = (alert.uid,) if alert.uid else (alert.src, alert.sport, alert.dst, alert.dport,
                                                  alert.proto)
        full = (alert.kind,) + key
        first = self._index.get(full)
        if first is not None:
            ev = first.evidence
            ev["repeats"] = ev.get("repeats", 0) + 1
            ev["last_ts"] = alert.ts
            if self._at_frame is not None:
                ev["last_packet"] = self._at_frame
            return
        if len(self.alerts) >= self.max_alerts:
            self.stats["alerts_dropped"] += 1
            return
        if self._at_frame is not None and "packet" not in alert.evidence:
            alert.evidence["packet"] = self._at_frame
        self._index[full] = alert
        self.alerts.append(alert)
        if alert.uid:
            self.by_uid.setdefault(alert.uid, []).append(alert)
        self._unwritten.append((alert, full))
        self.stats["alert:" + alert.kind] += 1
        if alert.uid is None and flow is not None and flow[2] in (6, 17):
            src, dst, proto, sport, dport = flow
            k = flow_key(src, sport, dst, dport)  # the flow table's key of this packet
            self._need_uid.append((alert, k + ((17,) if proto == 17 else ())))

    def _resolve_uids(self) -> None:
        conns = self.table.conns if self.table is not None else {}
        for alert, key in self._need_uid:
            conn = conns.get(key)
            if conn is not None:
                alert.uid = conn.uid
                self.by_uid.setdefault(conn.uid, []).append(alert)
        self._need_uid.clear()

    def flush(self) -> None:
        """End of input (before the flow table's flush): settle the uids still open."""
        if self._need_uid:
            self._resolve_uids()

    def held(self, kind: str, key: tuple) -> Alert | None:
        """The alert of (kind, key) raised and not yet written (repeats still add to it)."""
        return self._index.get((kind,) + key)

    # -- writing ------------------------------------------------------------------------------
    def write_settled(self, now: float, quiet: float = 2.0, hold: float = 60.0) -> None:
        """Write (with --alerts) the alerts that have settled by `now`: no repeat for `quiet`
        seconds, or first raised `hold` seconds ago. A later repeat of a written alert starts
        a new one, so a long flood is one line per `hold`, each with its own repeat count.
        Detectors with a `tick` hook see the time first (decisions that wait on time alone)."""
        for hook in self._tick:
            hook(now)
        if not self._unwritten:
            return
        done, keep = [], []
        for item in self._unwritten:
            a = item[0]
            last = a.evidence.get("last_ts", a.ts)
            (done if now - last >= quiet or now - a.ts >= hold else keep).append(item)
        if done:
            self._unwritten = keep
            self._write(done)

    def close(self) -> None:
        """The end of the run: detectors with a `settle` hook finish their alerts (final
        counts), then what is left is written and the file closed."""
        for hook in self._settle:
            hook()
        self._settle = []
        if self.file is None:
            return
        try:
            done, self._unwritten = self._unwritten, []
            self._write(done)
        finally:
            self.file.close()

    def _write(self, done: list[tuple[Alert, tuple]]) -> None:
        """Write `done` out; their repeats from now on start new alerts."""
        for _, full in done:
            self._index.pop(full, None)
        if self.file is not None:
            self.file.write([a for a, _ in done])


def from_args(args, settings, stats) -> Detectors | None:
    """The detectors a `read` or `live` command line asks for (`--alerts`, `--detect`), or None."""
    from sniffer.errors import UsageError

    if not (getattr(args, "alerts", None) or getattr(args, "detect", False)):
        return None
    local = []
    for text in getattr(args, "local_addr", None) or ():
        try:
            local.append(raw_addr(text))
        except (OSError, ValueError):
            raise UsageError(f"--local-addr: not an IP address: {text!r}") from None
    detectors = Detectors(settings, local, stats)
    if args.alerts:
        from sniffer.output.alerts import AlertFile
        detectors.file = AlertFile(args.alerts, getattr(args, "alerts_format", "json"))
    return detectors
