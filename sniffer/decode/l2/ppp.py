"""PPP and its framings (Zeek: packet_analysis/protocol/{ppp,ppp_serial,pppoe}).

* LINKTYPE_PPP (9): an optional ``FF 03`` HDLC address/control, then the protocol.
* LINKTYPE_PPP_HDLC (50, Zeek's PPP serial): address, control, protocol. A Cisco HDLC frame
  (address ``0F``/``8F``), which this link type may also carry, is decoded as Cisco HDLC.
* PPPoE session (0x8864): the 6-byte PPPoE header, then the PPP protocol.
* LINKTYPE_C_HDLC (104, Cisco HDLC; no Zeek analyzer): address, control, ethertype.

Zeek follows PPP protocol 0x0021 and 0x0057 to IP and (not after PPPoE) 0x0281 to MPLS. A
protocol field compressed to one odd octet (RFC 1661 section 6.5: ``21`` for IPv4) is
understood too; Zeek reads two octets and so misses such packets.
"""

from __future__ import annotations

from sniffer.decode.links import (
    ETH_IPV4,
    ETH_IPV6,
    LinkAnomaly,
    register_ethertype,
    register_linktype,
)

_PPP_IP = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
_PPP_LINK = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6, 0x0281: 0x8847}


def _protocol(data: bytes, p: int, table: dict[int, int]) -> tuple[int, int] | None:
    b = data[p]
    if b & 1:  # compressed: a two-octet protocol always has an even first octet
        proto, p = b, p + 1
    else:
        proto, p = (b << 8) | data[p + 1], p + 2
    et = table.get(proto)
    return None if et is None else (et, p)


@register_ethertype(0x8864)
def pppoe(data: bytes, off: int) -> tuple[int, int] | None:
    """Version/type, code, session id, length; then PPP."""
    if len(data) - off <= 8:
        raise LinkAnomaly("truncated_pppoe_header")
    return _protocol(data, off + 6, _PPP_IP)


@register_linktype(9)
def ppp(data: bytes) -> tuple[int, int] | None:
    n = len(data)
    if n <= 2:
        raise LinkAnomaly("truncated_ppp_header")
    if data[0] == 0xFF and data[1] == 0x03:
        if n <= 4:
            raise LinkAnomaly("truncated_ppp_hdlc_header")
        return _protocol(data, 2, _PPP_LINK)
    return _protocol(data, 0, _PPP_LINK)


@register_linktype(50)
def ppp_hdlc(data: bytes) -> tuple[int, int] | None:
    if len(data) <= 4:
        raise LinkAnomaly("truncated_ppp_serial_header")
    if data[0] == 0x0F or data[0] == 0x8F:
        return cisco_hdlc(data)
    return _protocol(data, 2, _PPP_LINK)


@register_linktype(104)
def cisco_hdlc(data: bytes) -> tuple[int, int]:
    if len(data) <= 4:
        raise LinkAnomaly("truncated_link_header")
    return (data[2] << 8) | data[3], 4
