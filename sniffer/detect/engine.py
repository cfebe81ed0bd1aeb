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
* ``engine.local``: the host's addresses as raw bytes (``--local-addr``, the recording's or the
  live kernel's address list); empty when unknown.
* ``engine.pkttype``: the Linux ``sll_pkttype`` of the current frame (0 host, 1 broadcast,
  2 multicast, 3 other host, 4 outgoing) or None when the direction is unknown.
* ``engine.loopback``: the current frame was captured on a loopback interface.
* ``engine.table``: the FlowTable, for read-only look-ups (``conns``), or None.
"""

from __future__ import annotations

import importlib
import json
import math
import socket
from collections import Counter
from typing import TextIO

from sniffer.detect import DETECTORS, Alert
from sniffer.flows.community_id import community_id

_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
_ZERO_MACS = bytes(12)
ARPHRD_LOOPBACK = 772
PACKET_OUTGOING = 4


def ntop(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


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
        self._index: dict[tuple, Alert] = {}
        self._need_uid: list[tuple[Alert, tuple]] = []
        self.max_alerts = getattr(settings, "detect_max_alerts", 10000)
        self.detectors = []
        for name in (DETECTORS if modules is None else modules):
            mod = importlib.import_module(name)
            self.detectors.append(mod.Detector(self))
        self._packet = [d.packet for d in self.detectors if hasattr(d, "packet")]
        self._tcp = [d.tcp for d in self.detectors if hasattr(d, "tcp")]
        self._finished = [d.finished for d in self.detectors if hasattr(d, "finished")]

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

    def kernel_event(self, ev: dict) -> None:
        if ev.get("kind") == "addresses":
            self.set_local(ev.get("addresses", ()))

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

    # -- the observer contract ----------------------------------------------------------------
    def packet(self, ts: float, pkt: tuple, encap) -> None:
        if self._need_uid:
            self._resolve_uids()
        for fn in self._packet:
            fn(ts, pkt, encap)

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        for fn in self._tcp:
            fn(ts, conn, is_orig, flags, seq, ack, win, payload, ttl)

    def finished(self, record) -> None:
        if self._need_uid:
            self._resolve_uids()
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
            alert.proto = _PROTO_NAMES.get(proto, str(proto))
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
            return
        if len(self.alerts) >= self.max_alerts:
            self.stats["alerts_dropped"] += 1
            return
        self._index[full] = alert
        self.alerts.append(alert)
        self.stats["alert:" + alert.kind] += 1
        if alert.uid is None and flow is not None and flow[2] in (6, 17):
            src, dst, proto, sport, dport = flow
            k = (src, sport, dst, dport) if src < dst or (src == dst and sport < dport) \
                else (dst, dport, src, sport)
            self._need_uid.append((alert, k + ((17,) if proto == 17 else ())))

    def _resolve_uids(self) -> None:
        conns = self.table.conns if self.table is not None else {}
        for alert, key in self._need_uid:
            conn = conns.get(key)
            if conn is not None:
                alert.uid = conn.uid
        self._need_uid.clear()

    def flush(self) -> None:
        """End of input (before the flow table's flush): settle the uids still open."""
        if self._need_uid:
            self._resolve_uids()

    def sorted_alerts(self) -> list[Alert]:
        return sorted(self.alerts, key=lambda a: a.ts)


FIELDS = ("ts", "kind", "severity", "uid", "community_id", "proto", "src", "sport", "dst",
          "dport", "summary", "evidence")


def alert_dict(a: Alert) -> dict:
    obj = {name: getattr(a, name) for name in FIELDS}
    if not math.isfinite(a.ts):
        obj["ts"] = None
    return obj


def write_alerts(alerts, out: TextIO) -> None:
    """One JSON object per line, in time order."""
    for a in sorted(alerts, key=lambda a: a.ts):
        out.write(json.dumps(alert_dict(a), default=_jsonable, separators=(",", ":")) + "\n")


def _jsonable(v):
    if isinstance(v, bytes):
        return ntop(v) if len(v) in (4, 16) else v.hex()
    if isinstance(v, (set, frozenset, tuple)):
        return sorted(v) if isinstance(v, (set, frozenset)) else list(v)
    return str(v)


def from_args(args, settings, stats) -> Detectors | None:
    """The detectors a `read` or `live` command line asks for (`--alerts`, `--detect`), or None."""
    from sniffer.errors import SnifferError, UsageError

    if not (getattr(args, "alerts", None) or getattr(args, "detect", False)):
        return None
    local = []
    for text in getattr(args, "local_addr", None) or ():
        try:
            local.append(raw_addr(text))
        except (OSError, ValueError):
            raise UsageError(f"--local-addr: not an IP address: {text!r}") from None
    if args.alerts:
        import os
        parent = os.path.dirname(os.path.abspath(args.alerts))
        if not os.access(parent, os.W_OK) or os.path.isdir(args.alerts):
            raise SnifferError(f"{args.alerts}: cannot write here")
    return Detectors(settings, local, stats)


def save_alerts(detectors: Detectors | None, path: str | None, fmt: str = "json") -> None:
    """Write the alerts to `path` (when given): JSON lines, or Zeek's notice.log for "zeek"."""
    if detectors is None or not path:
        return
    from sniffer.errors import SnifferError
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            if fmt == "zeek":
                from sniffer.output.notice import write_notices
                write_notices(detectors.alerts, out, _jsonable)
            else:
                write_alerts(detectors.alerts, out)
    except OSError as exc:
        raise SnifferError(f"{path}: cannot write: {exc.strerror}") from None
