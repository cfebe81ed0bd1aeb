"""port-scan: one source whose failed attempts reach many ports of a host, or many hosts.

Counted from finished connection records, like Zeek's scan policy: an attempt *failed* when the
originator sent a SYN, never completed the handshake (no "A": so health checks that connect
and reset are not probes), no data moved either way, and the connection never settled (S0, REJ,
RSTO, RSTOS0, RSTR, RSTRH, SH, SHR: unanswered, refused, or a half-open probe reset by the
scanner). A busy client's successful connections never count, so browsing many sites is not a
scan. Thresholds: ``settings.port_scan_ports`` distinct ports on one host, or
``settings.port_scan_hosts`` distinct hosts, within ``settings.port_scan_window`` seconds.

UDP (nmap -sU) counts for ports of one host only: an attempt failed when the originator's
datagrams got no UDP answer (S0; a closed port's ICMP unreachable, when the target sends one, is
a connection of its own). Traceroute's probes to its default ports (33434-33534) are left out,
and so are many hosts (peer-to-peer UDP, DHT, contacts hundreds of silent peers).
"""

from __future__ import annotations

from sniffer.detect import Alert

_FAILED = frozenset({"S0", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "SH", "SHR"})
_TRACEROUTE = range(33434, 33535)
_MAX_SOURCES = 65536
_SAMPLE = 20


class _Source:
    __slots__ = ("first", "last", "hosts", "ports", "alerted")

    def __init__(self, ts: float) -> None:
        self.first = self.last = ts
        self.hosts: dict = {}  # host -> first ts
        self.ports: dict = {}  # host -> {port: first ts}
        self.alerted: set = set()


class Detector:
    kind = "port-scan"

    def __init__(self, engine) -> None:
        self.engine = engine
        s = engine.settings
        self.max_ports = getattr(s, "port_scan_ports", 15)
        self.max_hosts = getattr(s, "port_scan_hosts", 25)
        self.window = getattr(s, "port_scan_window", 300.0)
        self.sources: dict = {}

    def finished(self, r) -> None:
        if r.proto == "tcp":
            if r.conn_state not in _FAILED:
                return
            h = r.history
            if "S" not in h or "A" in h or "D" in h or "d" in h:  # "A": the handshake completed
                return
        elif r.proto == "udp":
            if r.conn_state != "S0" or r.resp_pkts or r.resp_p in _TRACEROUTE:
                return
        else:
            return
        ts, src = r.ts, (r.orig_h, r.proto)
        s = self.sources.get(src)
        if s is None or ts - s.first > self.window:
            if s is None and len(self.sources) >= _MAX_SOURCES:
                self.sources.clear()
            s = self.sources[src] = _Source(ts)
        s.last = max(s.last, ts)
        s.hosts.setdefault(r.resp_h, ts)
        ports = s.ports.setdefault(r.resp_h, {})
        ports.setdefault(r.resp_p, ts)
        if len(ports) >= self.max_ports and ("ports", r.resp_h) not in s.alerted:
            s.alerted.add(("ports", r.resp_h))
            self._alert(r, s, "ports", sorted(ports)[:_SAMPLE], len(ports))
        if r.proto == "tcp" and len(s.hosts) >= self.max_hosts and "hosts" not in s.alerted:
            s.alerted.add("hosts")
            self._alert(r, s, "hosts", sorted(s.hosts)[:_SAMPLE], len(s.hosts))

    def _alert(self, r, s: _Source, what: str, sample: list, n: int) -> None:
        if what == "ports":
            summary = (f"{r.orig_h} probed {n} {r.proto.upper()} ports of {r.resp_h} without "
                       f"{'a connection' if r.proto == 'tcp' else 'an answer'}")
            key = (r.orig_h, r.resp_h, r.proto)
        else:
            summary = f"{r.orig_h} probed {n} hosts without a connection"
            key = (r.orig_h, "hosts")
        evidence = {"scan": "vertical" if what == "ports" else "horizontal", "scanner": r.orig_h,
                    "distinct": n, "threshold": self.max_ports if what == "ports" else self.max_hosts,
                    "window_s": self.window, "first_ts": s.first,
                    ("sample_ports" if what == "ports" else "sample_hosts"): sample}
        a = Alert(r.ts, self.kind, "medium" if what == "ports" else "low", summary, evidence,
                  uid=r.uid, community_id=r.community_id, proto=r.proto, src=r.orig_h,
                  sport=r.orig_p, dst=r.resp_h, dport=r.resp_p)
        self.engine.emit(a, key=key)
