"""FDDI, LINKTYPE 10 (Zeek: packet_analysis/protocol/fddi).

As Zeek does, the 13-byte FDDI header and an 8-byte LLC/SNAP header are skipped and IP is
assumed (the version nibble decides); the SNAP ethertype is not looked at.
"""

from __future__ import annotations

from sniffer.decode.links import ETH_IPV4, LinkAnomaly, register_linktype

_HDR = 13 + 8  # frame control, destination, source; LLC/SNAP


@register_linktype(10)
def fddi(data: bytes) -> tuple[int, int]:
    if len(data) <= _HDR:
        raise LinkAnomaly("FDDI_analyzer_failed")
    return ETH_IPV4, _HDR
