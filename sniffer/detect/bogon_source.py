"""bogon-source: a source address that can never come from the wire (RFC 6890, RFC 4291).

Flagged (by source, one alert per address, repeats counted):

=====================  ========  ===================================================
0.0.0.0/8              medium    except DHCP/BOOTP (UDP 68 -> 67) and IGMP (RFC 3376)
127.0.0.0/8, ::1       high      not on loopback captures, nor 127/8 -> 127/8
224.0.0.0/4, ff00::/8  medium    multicast is never a source
240.0.0.0/4            medium    reserved, and the limited broadcast 255.255.255.255
::                     medium    except ICMPv6 ND/MLD during address configuration (DAD)
::ffff:0:0/96          medium    an IPv4-mapped address in an actual IPv6 header
=====================  ========  ===================================================

Deliberately not flagged: documentation, benchmarking, private and CGN ranges (labs, CI and
internal networks use them, see SPOOF.md 2.8) and link-local addresses.
Cheap test: the first byte of the source address.
"""

from __future__ import annotations

from sniffer.detect import Alert
from sniffer.detect.engine import flow_ports

_V4_FIRST = frozenset([0, 127] + list(range(224, 256)))
_V6_FIRST = frozenset({0x00, 0xFF})
_UNSPEC6 = bytes(16)
_LOOP6 = bytes(15) + b"\x01"
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
# ICMPv6 sent from :: while an address is configured: RS, NS (DAD), MLD reports (v1, v2), done.
_ICMP6_UNSPEC_OK = frozenset({131, 132, 133, 135, 143})


def classify(src: bytes, dst: bytes, proto: int, l4: bytes, loopback: bool):
    """(range, rfc, severity) of a source that cannot come from the wire, or None."""
    if len(src) == 4:
        b = src[0]
        if b == 0:
            if proto == 17 and len(l4) >= 4 and l4[0:4] == b"\x00\x44\x00\x43":
                return None  # DHCP/BOOTP client without an address yet
            if proto == 2:
                return None  # IGMPv3 reports may come from 0.0.0.0 (RFC 3376 4.2.13)
            return "0.0.0.0/8", "RFC 6890 (this network)", "medium"
        if b == 127:
            if loopback or dst[0] == 127:
                return None
            return "127.0.0.0/8", "RFC 6890 (loopback)", "high"
        if b >= 240:
            if src == b"\xff\xff\xff\xff":
                return "255.255.255.255/32", "RFC 919 (limited broadcast)", "medium"
            return "240.0.0.0/4", "RFC 6890 (reserved)", "medium"
        return "224.0.0.0/4", "RFC 5771 (multicast)", "medium"
    if src[0] == 0xFF:
        return "ff00::/8", "RFC 4291 (multicast)", "medium"
    if src == _UNSPEC6:
        if proto == 0 or (proto == 58 and l4 and l4[0] in _ICMP6_UNSPEC_OK):
            return None
        return "::/128", "RFC 4291 (unspecified)", "medium"
    if src == _LOOP6:
        if loopback or dst == _LOOP6:
            return None
        return "::1/128", "RFC 4291 (loopback)", "high"
    if src[:12] == _MAPPED_PREFIX:
        return "::ffff:0:0/96", "RFC 4291 (IPv4-mapped)", "medium"
    return None


class Detector:
    kind = "bogon-source"

    def __init__(self, engine) -> None:
        self.engine = engine

    def packet(self, ts: float, pkt: tuple, encap) -> None:
        src = pkt[0]
        if src[0] not in (_V4_FIRST if len(src) == 4 else _V6_FIRST):
            return
        if len(src) == 16 and src[0] == 0 and src[1:10] != bytes(9):
            return  # 0::/8 other than ::, ::1, ::ffff:0:0/96 (e.g. 64:ff9b::/96) is fine
        dst, proto, l4 = pkt[1], pkt[2], pkt[4]
        hit = classify(src, dst, proto, l4, self.engine.loopback)
        if hit is None:
            return
        net, rfc, severity = hit
        sport, dport = flow_ports(proto, l4)
        evidence = {"range": net, "rfc": rfc, "ttl": pkt[6], "ip_proto": proto}
        if self.engine.pkttype is not None:
            evidence["pkttype"] = self.engine.pkttype
        if encap:
            evidence["tunnel"] = encap[-1][0]
        from sniffer.flows.conn import ntop
        self.engine.emit(Alert(ts, self.kind, severity,
                               f"source {ntop(src)} is in {net}, which never appears on the wire",
                               evidence), key=(src,), flow=(src, dst, proto, sport, dport))
