"""AYIYA ("anything in anything", SixXS) on UDP 5072 or found by its signature."""

from sniffer.tunnels import LINK_RAW, exact_ip, register_detector, register_udp


def _looks_like_ayiya(data: bytes) -> bool:
    return len(data) >= 3 and data[1] == 0x52 and data[2] == 0x11


@register_detector(_looks_like_ayiya)
@register_udp(5072)
def ayiya(data: bytes):
    if len(data) < 8:
        return "ayiya_truncated"
    hdr = 8 + (1 << (data[0] >> 4)) + (data[1] >> 4) * 4
    if len(data) < hdr:
        return "ayiya_truncated"
    if data[2] & 0x0F != 1:  # only "forward" carries a packet
        return None
    if data[3] not in (4, 41):
        return "ayiya_unknown_next_header"
    if len(data) == hdr:
        return "ayiya_empty_packet"
    return LINK_RAW, hdr, "AYIYA"
