"""local-source-from-wire: a packet arriving from outside whose source is one of our addresses.

Needs the host's addresses (``engine.local``: the live kernel's, a recording's, or
``--local-addr``) and the packet's direction:

* known direction (live capture, Linux cooked captures): the frame is not outgoing
  (``pkttype`` 0 host or 3 other host; broadcast and multicast are left out: our own
  broadcasts can come back through bridges and hairpins) and not on a loopback device;
* unknown direction (other capture files): only a packet whose TTL/hop limit shows that it
  crossed a router (not an initial 64, 128 or 255, and above 32 so traceroute's own probes do
  not count) is known not to be ours; severity then drops to medium.

A packet from our address to itself (LAND, same or different ports) raises this alert as well
as `land`: it needs the host's addresses and a direction, `land` neither.

Cheap test: one set membership of the raw source address (only when the set is not empty).
"""

from __future__ import annotations

from sniffer.detect import Alert
from sniffer.detect.engine import flow_ports

_INITIAL_TTLS = frozenset({64, 128, 255, 60, 30, 32})


class Detector:
    kind = "local-source-from-wire"

    def __init__(self, engine) -> None:
        self.engine = engine

    def packet(self, ts: float, pkt: tuple, encap) -> None:
        engine = self.engine
        if not engine.local or pkt[0] not in engine.local or engine.loopback or encap:
            return
        pkttype, ttl = engine.pkttype, pkt[6]
        if pkttype is None:
            if ttl <= 32 or ttl in _INITIAL_TTLS:
                return
            severity, how = "medium", "ttl"
        elif pkttype == 0 or pkttype == 3:
            severity, how = ("high" if pkttype == 0 else "medium"), "pkttype"
        else:
            return
        # src == dst (LAND, whatever the ports) is a forged local source too: `land` reports
        # the shape of the packet, this alert the use of our address.
        src, dst, proto, l4 = pkt[0], pkt[1], pkt[2], pkt[4]
        if len(src) == 16 and src[0] == 0xFE and src[1] & 0xC0 == 0x80:
            severity = "low"  # a link-local twin: more likely a duplicate address than spoofing
        sport, dport = flow_ports(proto, l4)
        from sniffer.flows.conn import ntop
        evidence = {"local_addr": ntop(src), "ttl": ttl, "direction_from": how,
                    "pkttype": pkttype, "ip_proto": proto}
        engine.emit(Alert(ts, self.kind, severity,
                          f"a packet from outside carries this host's address {ntop(src)} "
                          "as its source", evidence),
                    key=(src, dst), flow=(src, dst, proto, sport, dport))
