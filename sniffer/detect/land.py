"""land: a packet whose source address is its destination address (CVE-1999-0016).

The classic LAND packet also has the source port equal to the destination port. Like Snort's
decoder (116:151, "BAD-TRAFFIC same SRC/DST") and the `sameip` rules of Snort and Suricata
(sid 527 / 2100527), the ports do not matter here: a host talks to its own address over its
loopback device, so any packet from an address to itself seen on another device is forged.
`evidence["same_port"]` says which kind it was (TCP and UDP).

Cheap test: the two raw addresses compare equal. Not raised on loopback captures, where
connections to self (and a simultaneous self-connect, same address and port) are legal, nor for
a loopback address (127/8, ::1) to itself: that is loopback traffic whatever link layer the
capture gives it (bogon-source leaves 127/8 -> 127/8 alone for the same reason).
"""

from __future__ import annotations

from sniffer.detect import Alert
from sniffer.detect.engine import flow_ports
from sniffer.flows.conn import PROTO_NAMES

_LOOP6 = bytes(15) + b"\x01"


class Detector:
    kind = "land"

    def __init__(self, engine) -> None:
        self.engine = engine

    def packet(self, ts: float, pkt: tuple, encap) -> None:
        src, dst = pkt[0], pkt[1]
        if src != dst or self.engine.loopback:
            return
        if src == _LOOP6 or (len(src) == 4 and src[0] == 127):
            return
        proto, l4 = pkt[2], pkt[4]
        name = PROTO_NAMES[proto].upper() if proto in PROTO_NAMES else f"IP protocol {proto}"
        evidence: dict = {"ttl": pkt[6], "ip_len": pkt[3]}
        sport, dport = flow_ports(proto, l4)
        summary = f"LAND: {name} packet from an address to itself"
        if proto in (6, 17) and len(l4) >= 4:
            evidence["same_port"] = sport == dport
            if proto == 6 and len(l4) >= 14:
                evidence["tcp_flags"] = l4[13]
            summary = (f"LAND: {name} packet from an address and port to itself"
                       if sport == dport else f"{summary} (port {sport} to {dport})")
        if encap:
            evidence["tunnel"] = encap[-1][0]
        self.engine.emit(Alert(ts, self.kind, "high", summary, evidence),
                         flow=(src, dst, proto, sport, dport))
