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

The alert follows the scan as it grows: raised when the threshold is crossed, then every
further port (or host) updates its count while it waits to be written, and counts as a repeat
(so `live` holds it while the scan goes on). While the run goes on the summary says "at least
N" (`evidence.final` false); at the end of the run the alerts not yet written get the final
count ("probed N", `final` true). In `live`, a port after the alert was written starts a new
alert with the count so far (see Detectors.write_settled).
"""

from __future__ import annotations

from sniffer.detect import Alert

_FAILED = frozenset({"S0", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "SH", "SHR"})
_TRACEROUTE = range(33434, 33535)
_MAX_SOURCES = 65536
_SAMPLE = 20


class _Source:
    __slots__ = ("first", "last", "hosts", "ports", "tries", "alerts")

    def __init__(self, ts: float) -> None:
        self.first = self.last = ts
        self.hosts: dict = {}  # host -> first ts
        self.ports: dict = {}  # host -> {port: first ts}
        self.tries: dict = {}  # host -> failed attempts (a scanner may probe a port twice)
        self.alerts: dict = {}  # ("ports", host) or "hosts" -> (its latest Alert, engine key)


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
        tries = s.tries[r.resp_h] = s.tries.get(r.resp_h, 0) + 1
        if len(ports) >= self.max_ports:
            self._report(r, s, ("ports", r.resp_h), ports, tries)
        if r.proto == "tcp" and len(s.hosts) >= self.max_hosts:
            self._report(r, s, "hosts", s.hosts, sum(s.tries.values()))

    def _report(self, r, s: _Source, what, seen: dict, tries: int) -> None:
        """The scan `what` reached len(seen) ports or hosts in `tries` failed attempts: raise
        it, or bring its counts up to date."""
        n = len(seen)
        held = s.alerts.get(what)
        if held is not None:
            a, key = held
            ev = a.evidence
            grew = ev["distinct"] != n
            if self.engine.held(self.kind, key) is a:  # not written yet: it grows in place
                ev["distinct"], ev["attempts"] = n, tries
                ev["sample_hosts" if what == "hosts" else "sample_ports"] = sorted(seen)[:_SAMPLE]
                a.summary = self._summary(a, final=False)
                if grew:  # a repeat: `live` holds the alert while the scan goes on
                    self.engine.emit(Alert(r.ts, self.kind, a.severity, a.summary), key=key)
                return
            if not grew:
                return  # written already, and this attempt added no port or host
        s.alerts[what] = self._alert(r, s, what, sorted(seen)[:_SAMPLE], n, tries)

    @staticmethod
    def _summary(a: Alert, final: bool) -> str:
        ev = a.evidence
        count = f"{ev['distinct']}" if final else f"at least {ev['distinct']}"
        tries = f" ({ev['attempts']} failed attempts)" if ev["attempts"] != ev["distinct"] else ""
        if ev["scan"] == "vertical":
            return (f"{a.src} probed {count} {a.proto.upper()} ports of {a.dst} without "
                    f"{'a connection' if a.proto == 'tcp' else 'an answer'}{tries}")
        return f"{a.src} probed {count} hosts without a connection{tries}"

    def settle(self) -> None:
        """The end of the run: the alerts not written yet carry the final counts."""
        for s in self.sources.values():
            for a, key in s.alerts.values():
                if self.engine.held(self.kind, key) is a:
                    a.evidence["final"] = True
                    a.summary = self._summary(a, final=True)

    def _alert(self, r, s: _Source, what, sample: list, n: int,
               tries: int) -> tuple[Alert, tuple]:
        vertical = what != "hosts"
        key = (r.orig_h, r.resp_h, r.proto) if vertical else (r.orig_h, "hosts")
        evidence = {"scan": "vertical" if vertical else "horizontal", "scanner": r.orig_h,
                    "distinct": n, "attempts": tries, "final": False,
                    "threshold": self.max_ports if vertical else self.max_hosts,
                    "window_s": self.window, "first_ts": s.first,
                    ("sample_ports" if vertical else "sample_hosts"): sample}
        a = Alert(r.ts, self.kind, "medium" if vertical else "low", "", evidence,
                  uid=r.uid, community_id=r.community_id, proto=r.proto, src=r.orig_h,
                  sport=r.orig_p, dst=r.resp_h, dport=r.resp_p)
        a.summary = self._summary(a, final=False)
        self.engine.emit(a, key=key)
        return a, key
