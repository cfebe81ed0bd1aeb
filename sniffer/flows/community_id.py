"""Community ID v1 flow hashes (https://github.com/corelight/community-id-spec).

Why: the Community ID lets a user pivot from a sniffer connection to the same flow in Zeek,
Suricata or Elastic data with one string comparison. It is computed once per finished
connection, so plain `hashlib` is fast enough and no third-party package is needed.

The hash input is ``seed(2) . saddr . daddr . proto(1) . 0(1) . sport(2) . dport(2)`` in network
byte order, with the endpoints ordered so the smaller (address, port) comes first; port-less
protocols leave out the ports. ICMP and ICMPv6 map (type, code) to a port pair the way Zeek does:
request/reply types become (type, counterpart type) and are ordered like ports, every other type
is one-way (type, code) and is not reordered.
"""

from __future__ import annotations

import base64
import hashlib
import struct

ICMP = 1
TCP = 6
UDP = 17
ICMP6 = 58
SCTP = 132

#: Protocols whose hash input carries the two 16-bit "ports".
PORT_PROTOCOLS = frozenset({ICMP, TCP, UDP, ICMP6, SCTP})

#: ICMPv4 request/reply pairs (echo, router, timestamp, info, mask), as pycommunityid and Zeek.
ICMP4_COUNTERPART: dict[int, int] = {
    8: 0, 0: 8,
    10: 9, 9: 10,
    13: 14, 14: 13,
    15: 16, 16: 15,
    17: 18, 18: 17,
}

#: ICMPv6 request/reply pairs (echo, MLD, RS/RA, NS/NA, node information, HA discovery).
ICMP6_COUNTERPART: dict[int, int] = {
    128: 129, 129: 128,
    130: 131, 131: 130,
    133: 134, 134: 133,
    135: 136, 136: 135,
    139: 140, 140: 139,
    144: 145, 145: 144,
}


def icmp_ports(proto: int, icmp_type: int, icmp_code: int) -> tuple[int, int, bool]:
    """Map an ICMP(v6) type and code to ``(sport, dport, one_way)`` as the spec does.

    For request/reply types the code is ignored and the counterpart type stands in for the
    destination port, so a request and its reply hash alike.
    """
    table = ICMP4_COUNTERPART if proto == ICMP else ICMP6_COUNTERPART
    counterpart = table.get(icmp_type)
    if counterpart is None:
        return icmp_type, icmp_code, True
    return icmp_type, counterpart, False


def community_id(src: bytes, dst: bytes, proto: int, sport: int, dport: int, seed: int = 0) -> str:
    """Return the Community ID v1 string (``"1:<base64 SHA1>"``) of one flow.

    `src`/`dst` are raw address bytes (4 or 16, both the same family). For ICMP/ICMPv6 pass the
    type as `sport` and the code as `dport`; a conn.log ``id.resp_p`` (counterpart type or code)
    works as well, since the code is ignored for request/reply types. For port-less protocols the
    ports are ignored. The result does not depend on which side is `src`.
    """
    if len(src) != len(dst) or len(src) not in (4, 16):
        raise ValueError(f"addresses must both be 4 or 16 bytes, got {len(src)} and {len(dst)}")
    one_way = False
    if proto in (ICMP, ICMP6):
        sport, dport, one_way = icmp_ports(proto, sport, dport)
    has_ports = proto in PORT_PROTOCOLS
    if not has_ports:
        sport = dport = 0
    if not one_way and (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack("!H", seed) + src + dst + struct.pack("!BB", proto, 0)
    if has_ports:
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")
