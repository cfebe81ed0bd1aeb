"""VXLAN (RFC 7348) on UDP 4789: an 8-byte header, then an Ethernet frame."""

from sniffer.tunnels import LINK_ETHERNET, register_udp


@register_udp(4789)
def vxlan(data: bytes):
    if len(data) < 8:
        return "vxlan_truncated"
    if not data[0] & 0x08:
        return "vxlan_I_flag_not_set"
    if len(data) == 8:
        return "vxlan_empty_packet"
    return LINK_ETHERNET, 8, "VXLAN"
