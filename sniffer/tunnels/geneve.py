"""Geneve (RFC 8926) on UDP 6081: 8 bytes plus options, then the protocol its header names."""

from sniffer.tunnels import LINK_ETHERNET, LINK_RAW, register_udp

# Geneve's protocol type -> how the inner frame is decoded. Zeek maps 0x6558 to Ethernet and
# 0x0800 to IP; IPv6 (0x86DD) is decoded too, as the RFC intends.
_NEXT = {0x6558: LINK_ETHERNET, 0x0800: LINK_RAW, 0x86DD: LINK_RAW}


@register_udp(6081)
def geneve(data: bytes):
    if len(data) < 8:
        return "geneve_truncated"
    if data[0] >> 6:
        return "geneve_invalid_version"
    hdr = 8 + (data[0] & 0x3F) * 4
    if len(data) < hdr:
        return "geneve_option_truncated"
    if len(data) == hdr:
        return "geneve_empty_packet"
    link = _NEXT.get((data[2] << 8) | data[3])
    if link is None:
        return "geneve_unknown_protocol"
    return link, hdr, "GENEVE"
