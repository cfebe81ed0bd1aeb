"""land: a TCP or UDP packet whose source is its destination, address and port (CVE-1999-0016).

Cheap test: the two raw addresses compare equal. Not raised on loopback captures, where a
simultaneous self-connect (same address and port) is legal.
"""

from __future__ import annotations

from sniffer.detect import Alert


class Detector:
    kind = "land"

    def __init__(self, engine) -> None:
        self.engine = engine

    def packet(self, ts: float, pkt: tuple, encap) -> None:
        src, dst, proto = pkt[0], pkt[1], pkt[2]
        if src != dst or (proto != 6 and proto != 17):
            return
        l4 = pkt[4]
        if len(l4) < 4 or self.engine.loopback:
            return
        sport = l4[0] << 8 | l4[1]
        dport = l4[2] << 8 | l4[3]
        if sport != dport:
            return
        name = "TCP" if proto == 6 else "UDP"
        evidence = {"ttl": pkt[6], "ip_len": pkt[3]}
        if proto == 6 and len(l4) >= 14:
            evidence["tcp_flags"] = l4[13]
        if encap:
            evidence["tunnel"] = encap[-1][0]
        self.engine.emit(Alert(ts, self.kind, "high",
                               f"LAND: {name} packet from an address and port to itself",
                               evidence), flow=(src, dst, proto, sport, dport))
