"""Linux NFLOG, LINKTYPE 239 (Zeek: packet_analysis/protocol/nflog).

A 4-byte header (address family, version 0, resource id), then TLVs, each padded to 4 bytes;
the packet is the value of the TLV of type 9 (NFULA_PAYLOAD). TLV lengths and types are in the
capturing host's byte order: libpcap swaps them for Zeek when the file came from a host of the
other byte order; here the order is recognised from the first TLV's type (types are small, so
one of its two bytes is zero). Zeek follows AF_INET (2) and AF_INET6 (10) to IP.
"""

from __future__ import annotations

import struct

from sniffer.decode.links import ETH_IPV4, ETH_IPV6, LinkAnomaly, register_linktype

_TLV_LE = struct.Struct("<HH")
_TLV_BE = struct.Struct(">HH")
_AF = {2: ETH_IPV4, 10: ETH_IPV6}
_PAYLOAD = 9


@register_linktype(239)
def nflog(data: bytes) -> tuple[int, int] | None:
    n = len(data)
    if n <= 4:
        raise LinkAnomaly("truncated_nflog_header")
    if data[1] != 0:
        raise LinkAnomaly("unknown_nflog_version")
    tlv = _TLV_BE if n > 8 and not data[6] and data[7] else _TLV_LE
    p = 4
    while True:
        if n - p <= 4:
            raise LinkAnomaly("nflog_no_pcap_payload")
        length, kind = tlv.unpack_from(data, p)
        if kind == _PAYLOAD:
            p += 4
            break
        if length < 4:
            raise LinkAnomaly("nflog_bad_tlv_len")
        p += (length + 3) & ~3
    et = _AF.get(data[0])
    return None if et is None else (et, p)
