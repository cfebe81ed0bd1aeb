"""MPLS label stacks (Zeek: packet_analysis/protocol/mpls).

Labels are skipped up to the bottom-of-stack bit; RFC 3032 does not say what follows, and Zeek
hands it to its IP analyzer, where the version nibble decides (so no pseudowire / Ethernet over
MPLS). Zeek registers 0x8847 only (after Ethernet, VLAN, PPP 0x0281); 0x8848 (multicast) is
decoded the same way here.
"""

from __future__ import annotations

from sniffer.decode.links import ETH_IPV4, LinkAnomaly, register_ethertype


@register_ethertype(0x8847, 0x8848)
def mpls(data: bytes, off: int) -> tuple[int, int]:
    n = len(data)
    while True:
        if n - off <= 4:  # Zeek wants more than the label itself
            raise LinkAnomaly("truncated_link_header")
        off += 4
        if data[off - 2] & 1:  # S bit: bottom of stack
            return ETH_IPV4, off  # "IP": the version nibble decides
