"""GRE (RFC 2784/2890) in IP protocol 47 or UDP 4754: plain GRE carrying IP, transparent
Ethernet bridging, ERSPAN types I to III, Aruba's 802.11 frames, and PPTP's enhanced GRE."""

from sniffer.tunnels import LINK_80211, LINK_ETHERNET, LINK_RAW, exact_ip, register_ip, register_udp


def _header_len(flags: int) -> int:
    n = 4
    if flags & 0x8000:  # checksum + reserved
        n += 4
    if flags & 0x2000:  # key
        n += 4
    if flags & 0x1000:  # sequence number
        n += 4
    if flags & 0x0080:  # acknowledgement (enhanced GRE)
        n += 4
    return n


def _is_aruba(proto: int) -> bool:
    return ((proto & 0x8200) == 0x8200 and not proto & 0x0F
            or (proto & 0x8300) == 0x8300 and not proto & 0x0F and proto <= 0x8370
            or proto == 0x9000)


@register_udp(4754)
@register_ip(47)
def gre(data: bytes):
    n = len(data)
    if n < 4:
        return "truncated_GRE"
    flags = (data[0] << 8) | data[1]
    proto = (data[2] << 8) | data[3]
    version = flags & 0x07
    hdr = _header_len(flags)
    link, extra = LINK_RAW, 0
    if version == 0:
        if proto == 0x6558:  # transparent Ethernet bridging
            if n <= hdr + 14:
                return "truncated_GRE"
            link = LINK_ETHERNET
        elif proto == 0x88BE:  # ERSPAN type I (no sequence) or II (8-byte header)
            if n <= hdr + 14:
                return "truncated_GRE"
            link = LINK_ETHERNET
            if flags & 0x1000:
                extra = 8
        elif proto == 0x22EB:  # ERSPAN type III: 12 bytes, 8 more with the optional header
            if n <= hdr + 14 + 12:
                return "truncated_GRE"
            link, extra = LINK_ETHERNET, 12
            if data[hdr + 11] & 0x01:
                if n <= hdr + 12 + 8 + 14:
                    return "truncated_GRE"
                extra += 8
        elif _is_aruba(proto):
            if n <= hdr:
                return "truncated_GRE"
            link = LINK_80211
    elif version == 1:
        if proto != 0x880B:
            return "egre_protocol_type"
    else:
        return "unknown_gre_version"
    if flags & 0x4000:
        return "gre_routing"
    if flags & 0x0078:
        return "unknown_gre_flags"
    if version == 1:  # PPTP: a PPP header (address, control, protocol) before the packet
        if n < hdr + 4:
            return "truncated_GRE"
        ppp = (data[hdr + 2] << 8) | data[hdr + 3]
        if ppp not in (0x0021, 0x0057):
            return "non_ip_packet_in_encap"
        off = hdr + 4
        return exact_ip(data, off, 4 if ppp == 0x0021 else 6) or (LINK_RAW, off, "GRE")
    if n < hdr + extra:
        return "truncated_GRE"
    return link, hdr + extra, "GRE"
