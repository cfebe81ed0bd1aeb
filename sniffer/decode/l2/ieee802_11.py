"""IEEE 802.11, LINKTYPE 105, and with a radiotap header, LINKTYPE 127
(Zeek: packet_analysis/protocol/{ieee802_11,ieee802_11_radio}).

Only data frames that carry data are decoded: a 24-byte header (30 with both To-DS and From-DS
set), 2 more for QoS data, then LLC/SNAP (``AA AA 03 00 00 00``) and an ethertype, which Zeek
follows to IP (and ARP). Management, control and null-data frames, protected QoS frames and
non-SNAP payloads are not IP. An A-MSDU (QoS bit 7) carries several subframes: the first is
returned as usual, the others as a third element, `rest`, which the decoder turns into packets
of their own (`Decoder.more`).
"""

from __future__ import annotations

from sniffer.decode.links import ETH_IPV4, ETH_IPV6, LinkAnomaly, register_linktype

_SNAP = b"\xaa\xaa\x03\x00\x00\x00"  # LLC: SNAP DSAP/SSAP, UI; OUI 0 (an ethertype follows)


def _snap_ip(data: bytes, p: int, n: int) -> tuple[int, int] | None:
    if n < 8:
        raise LinkAnomaly("truncated_802_11_llc_header")
    if data[p : p + 6] != _SNAP:
        return None
    et = (data[p + 6] << 8) | data[p + 7]
    return (et, p + 8) if et == ETH_IPV4 or et == ETH_IPV6 else None


def dot11(data: bytes, off: int) -> tuple[int, int] | None:
    """An 802.11 frame starting at `off`."""
    n = len(data) - off
    if n <= 24:
        raise LinkAnomaly("truncated_802_11_header")
    fc, flags = data[off], data[off + 1]
    if not fc & 0x08 or fc & 0x40:  # not a data frame, or a data subtype without data
        return None
    hl = 30 if flags & 3 == 3 else 24  # a fourth address in a WDS frame
    if hl >= n:
        raise LinkAnomaly("truncated_802_11_header")
    amsdu = False
    if fc & 0x80:  # QoS data: 2-byte QoS control
        amsdu = data[off + hl] & 0x80
        if flags & 0x40:  # protected: encrypted
            return None
        hl += 2
        if hl >= n:
            raise LinkAnomaly("truncated_802_11_header")
    p, n = off + hl, n - hl
    if not amsdu:
        return _snap_ip(data, p, n)
    # A-MSDU: subframes of destination, source, length, then LLC/SNAP, each padded to 4 bytes.
    # The first IP subframe is returned as usual; the later ones, and an anomaly that stops
    # the walk, go in `rest` (IP start/end offsets, or the anomaly's name).
    first = None
    rest: list = []
    end = len(data)
    while p < end:
        if end - p < 14:
            _amsdu_stop(first, rest, "truncated_802_11_amsdu_header")
            break
        sub = (data[p + 12] << 8) | data[p + 13]
        if end - p < sub + 14:
            _amsdu_stop(first, rest, "truncated_802_11_amsdu_packet")
            break
        q = p + 14
        if sub < 8 or data[q : q + 6] != _SNAP:
            _amsdu_stop(first, rest, "invalid_802_11_amsdu_inner_packet")
            break
        et = (data[q + 6] << 8) | data[q + 7]
        if et == ETH_IPV4 or et == ETH_IPV6:
            if first is None:
                first = (et, q + 8)
            else:
                rest.append((q + 8, q + sub))
        pad = -(14 + sub) % 4
        p = q + sub + (pad if end - (q + sub) >= pad else 0)
    if first is None:
        if rest:
            raise LinkAnomaly(rest[0])
        return None
    return (first[0], first[1], rest) if rest else first


def _amsdu_stop(first, rest: list, name: str) -> None:
    if first is None and not rest:
        raise LinkAnomaly(name)
    rest.append(name)


@register_linktype(105)
def ieee802_11(data: bytes) -> tuple[int, int] | None:
    return dot11(data, 0)


@register_linktype(127)
def radiotap(data: bytes) -> tuple[int, int] | None:
    """Radiotap: version, pad, little-endian header length; the 802.11 frame follows."""
    n = len(data)
    if n <= 3:
        raise LinkAnomaly("truncated_radiotap_header")
    hl = data[2] | (data[3] << 8)
    if hl >= n:
        raise LinkAnomaly("truncated_radiotap_header")
    return dot11(data, hl)
