"""GTPv1-U (3GPP TS 29.281) on UDP 2152 and 2123: G-PDU messages carry an IP packet."""

from sniffer.tunnels import LINK_RAW, exact_ip, register_udp


@register_udp(2152, 2123)
def gtp(data: bytes):
    if len(data) < 8:
        return "gtp_truncated"
    flags, msg = data[0], data[1]
    if flags >> 5 != 1:
        return "GTPv1 bad Version"
    if not flags & 0x10:  # protocol type GTP' (charging): not ours
        return None
    if msg != 255:  # signalling (echo, PDP context): no packet inside
        return None
    off = 8
    if flags & 0x07:  # E, S or PN: sequence, N-PDU and next-extension fields
        if len(data) < 12:
            return "gtp_truncated"
        off = 12
        next_ext = data[11] if flags & 0x04 else 0
        while next_ext:
            if len(data) < off + 1:
                return "gtp_truncated"
            ext_len = data[off] * 4
            if ext_len == 0 or len(data) < off + ext_len:
                return "gtp_truncated"
            next_ext = data[off + ext_len - 1]
            off += ext_len
    if len(data) - off < 20:
        return "Truncated GTPv1"
    if data[off] >> 4 not in (4, 6):
        return "non-IP packet in GTPv1"
    bad = exact_ip(data, off)
    if bad:
        return "GTPv1 payload length" if bad == "inner_IP_payload_length_mismatch" else "Truncated GTPv1"
    return LINK_RAW, off, "GTPv1"
