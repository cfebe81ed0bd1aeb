"""Ethernet's relatives (Zeek: packet_analysis/protocol/{ethernet,llc,snap,novell_802_3,pbb,vntag}).

* 802.3 frames, whose type field is a length (<= 1500): SNAP (``AA AA``) with OUI 0 carrying IP
  is decoded; Novell raw 802.3 (``FF FF``) and other LLC frames are not IP (Zeek registers
  nothing after them). Type values 1501..1535 are ``undefined_ether_type``.
* Cisco FabricPath (0x8903): a 16-byte outer header in front of the original Ethernet frame.
* 802.1ah PBB (0x88e7): a 4-byte I-tag, then the customer's whole Ethernet frame.
* VN-Tag (0x8926): a 4-byte tag then a type, which Zeek follows only into a VLAN tag.

`ethernet_at` is Zeek's Ethernet analyzer on a frame that starts at an offset (for an inner
frame: PBB here, or a tunnel).
"""

from __future__ import annotations

from sniffer.decode.links import (
    ETH_IPV4,
    ETH_IPV6,
    VLAN_TPIDS,
    LinkAnomaly,
    register_ethertype,
)


def llc(data: bytes, off: int, n: int) -> tuple[int, int] | None:
    """IEEE 802.2 at `off` with `n` bytes of 802.3 payload: SNAP carrying IP, else None."""
    b0, b1 = data[off], data[off + 1]
    if b0 == 0xAA and b1 == 0xAA:  # SNAP
        if n < 3:
            raise LinkAnomaly("truncated_snap_llc_header")
        p = off + (3 if data[off + 2] & 3 == 3 else 4)  # unnumbered control: 1 byte, else 2
        if n < p - off + 5:
            raise LinkAnomaly("truncated_snap_header")
        if data[p] or data[p + 1] or data[p + 2]:  # OUI not 0: not an ethertype
            return None
        et = (data[p + 3] << 8) | data[p + 4]
        return (et, p + 5) if et == ETH_IPV4 or et == ETH_IPV6 else None  # Zeek: IP, ARP
    if b0 == 0xFF and b1 == 0xFF:  # Novell raw 802.3 (IPX)
        return None
    if n < 3 or (data[off + 2] & 3 != 3 and n < 4):
        raise LinkAnomaly("truncated_llc_header")
    return None  # Zeek dispatches plain LLC on the DSAP and registers nothing


def _after_type(data: bytes, frame: int) -> tuple[int, int] | None:
    """The type/length field of the Ethernet header at `frame` (Zeek's Ethernet analyzer)."""
    et = (data[frame + 12] << 8) | data[frame + 13]
    off = frame + 14
    if et >= 1536:
        return et, off
    if et <= 1500:
        n = len(data) - off
        if n < et:
            raise LinkAnomaly("truncated_ethernet_frame")
        return llc(data, off, n)
    raise LinkAnomaly("undefined_ether_type")


def ethernet_at(data: bytes, frame: int) -> tuple[int, int] | None:
    """An Ethernet frame starting at `frame` -> (type, offset after the header) or None."""
    n = len(data) - frame
    if n <= 16:
        raise LinkAnomaly("truncated_ethernet_frame")
    if data[frame + 12] == 0x89 and data[frame + 13] == 0x03:
        if n <= 30:
            raise LinkAnomaly("truncated_link_header_cfp")
        frame += 16
    return _after_type(data, frame)


@register_ethertype(*range(1501))
def ieee802_3(data: bytes, off: int) -> tuple[int, int] | None:
    """A length instead of a type: 802.2 LLC follows."""
    length = (data[off - 2] << 8) | data[off - 1]
    n = len(data) - off
    if off == 14:  # right after the Ethernet header (the decoder's fast path)
        if n < length:
            raise LinkAnomaly("truncated_ethernet_frame")
    elif off >= 18 and (data[off - 6] << 8 | data[off - 5]) in VLAN_TPIDS:  # after a VLAN tag
        # (the tag is TPID, TCI, then this length: the TPID stands 6 bytes before `off`)
        if n < 2:
            raise LinkAnomaly("truncated_VLAN_header")
        n = min(n, length)  # Zeek's VLAN analyzer trims to the 802.3 length
    return llc(data, off, n)


@register_ethertype(*range(1501, 1536))
def undefined_type(data: bytes, off: int) -> None:
    raise LinkAnomaly("undefined_ether_type" if off == 14 else "undefined_vlan_protocol")


@register_ethertype(0x8903)
def fabricpath(data: bytes, off: int) -> tuple[int, int] | None:
    """Cisco FabricPath: outer addresses + 0x8903 + a 2-byte tag, then the original frame."""
    if len(data) - off <= 16:  # Zeek: the outer 16 bytes and an inner Ethernet header
        raise LinkAnomaly("truncated_link_header_cfp")
    return _after_type(data, off + 2)


@register_ethertype(0x88E7)
def pbb(data: bytes, off: int) -> tuple[int, int] | None:
    """802.1ah provider backbone bridging: I-tag (PCP/DEI/UCA, 24-bit I-SID), customer frame."""
    if len(data) - off <= 18:
        raise LinkAnomaly("truncated_PBB_header")
    return ethernet_at(data, off + 4)


@register_ethertype(0x8926)
def vntag(data: bytes, off: int) -> tuple[int, int] | None:
    """VN-Tag (802.1Qbh): 4 bytes of tag, then a type; Zeek registers only VLAN tags after it."""
    if len(data) - off <= 6:
        raise LinkAnomaly("truncated_vntag_header")
    et = (data[off + 4] << 8) | data[off + 5]
    return (et, off + 6) if et in VLAN_TPIDS else None
