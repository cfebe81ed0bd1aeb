"""Teredo (RFC 4380) on UDP 3544 or found by its signature: IPv6 in UDP, with optional
authentication and origin-indication headers before it."""

import re

from sniffer.tunnels import LINK_RAW, exact_ip, register_detector, register_udp

# Zeek's detection pattern (from its old DPD signature): an IPv6 header whose source or
# destination is a Teredo address (2001:0000::/32).
_PATTERN = re.compile(rb"[\x60-\x6f].{7}\x20\x01\x00\x00.{28}|[\x60-\x6f].{23}\x20\x01\x00\x00.{12}",
                      re.DOTALL)


def _looks_like_teredo(data: bytes) -> bool:
    n = len(data)
    if n < 40 or (n > 8 and data[0] >> 4 != 6 and (data[0] != 0 or data[1] not in (0, 1))):
        return False
    if _PATTERN.match(data):
        return True
    off = 0
    if data[1] == 1:  # authentication header, then an origin indication
        off = 13 + data[2] + data[3]
        if n - off < 40 or n - off < 2:
            return False
        if data[off] or data[off + 1]:
            return False
    if data[off + 1] == 0 and data[off] == 0:
        off += 8
        return n - off >= 40 and data[off] >> 4 == 6
    return False


def _inner_offset(data: bytes) -> int | str:
    off, origin, auth = 0, False, False
    while True:
        if len(data) - off < 2:
            return "truncated_Teredo"
        tag = (data[off] << 8) | data[off + 1]
        if tag == 0:
            if origin:
                return "Bad Teredo encapsulation"
            if len(data) - off < 8:
                return "truncated_Teredo_origin_indication"
            origin = True
            off += 8
        elif tag == 1:
            if origin or auth:
                return "Bad Teredo encapsulation"
            if len(data) - off < 4:
                return "truncated_Teredo_authentication"
            total = 4 + data[off + 2] + data[off + 3] + 8 + 1
            if len(data) - off < total:
                return "truncated_Teredo_authentication"
            auth = True
            off += total
        elif tag >> 12 == 6:
            if len(data) - off < 40:
                return "truncated_IPv6_in_Teredo"
            return off
        else:
            return "Bad Teredo encapsulation"


@register_detector(_looks_like_teredo)
@register_udp(3544)
def teredo(data: bytes):
    off = _inner_offset(data)
    if isinstance(off, str):
        return off
    bad = exact_ip(data, off, 6)
    if bad == "inner_IP_payload_length_mismatch" and data[off + 6] == 59 and \
            (data[off + 4] << 8 | data[off + 5]) == 0:
        bad = None  # a bubble with trailing bytes: odd, but Zeek still forwards it
    if bad:
        return "Teredo_" + bad
    return LINK_RAW, off, "TEREDO"
