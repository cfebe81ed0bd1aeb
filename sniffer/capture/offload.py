"""Checksums the network card (or veth) was meant to fill in: a capture artefact, completed.

A packet this host sends with checksum offload is captured before its TCP/UDP checksum is
computed: the field holds only the pseudo-header's partial sum, and the kernel marks the frame
TP_STATUS_CSUMNOTREADY in the capture ring (veth does this in both directions). Such a packet
is not damaged, so the checksum is completed here, as the card would have, before the engine
sees or the recorder writes it: live analysis and the replay of its recording then agree.
"""

from __future__ import annotations

_VLAN = (0x8100, 0x88A8, 0x9100)
_L4_CSUM = {6: 16, 17: 6}  # where TCP's and UDP's checksum field sits


def _ip_offset(data: bytes, linktype: int) -> int | None:
    if linktype == 1:
        off, etype = 14, (data[12] << 8) | data[13]
        while etype in _VLAN and len(data) >= off + 4:
            etype, off = (data[off + 2] << 8) | data[off + 3], off + 4
    elif linktype == 113:
        off, etype = 16, (data[14] << 8) | data[15]
    elif linktype == 276:
        off, etype = 20, (data[0] << 8) | data[1]
    elif linktype in (12, 14, 101):
        return 0
    else:
        return None
    return off if etype in (0x0800, 0x86DD) else None


def complete(data: bytes, linktype: int) -> bytes:
    """`data` with its TCP/UDP checksum computed, or unchanged when it cannot be (not IP, cut
    by the snaplen, an IPv6 extension header, another transport)."""
    try:
        off = _ip_offset(data, linktype)
        if off is None or len(data) < off + 20:
            return data
        version = data[off] >> 4
        if version == 4:
            ihl = (data[off] & 15) * 4
            total = (data[off + 2] << 8) | data[off + 3]
            proto = data[off + 9]
            src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
            l4 = off + ihl
        elif version == 6:
            total = ((data[off + 4] << 8) | data[off + 5]) + 40
            proto = data[off + 6]
            src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
            l4 = off + 40
        else:
            return data
        where = _L4_CSUM.get(proto)
        end = off + total
        if where is None or len(data) < end or end - l4 < where + 2:
            return data
        buf = bytearray(data)
        buf[l4 + where : l4 + where + 2] = b"\0\0"
        seg = bytes(buf[l4:end])
        total_sum = (int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + len(seg)
                     + int.from_bytes(seg + b"\0" if len(seg) & 1 else seg, "big"))
        folded = total_sum % 0xFFFF or 0xFFFF
        csum = ~folded & 0xFFFF
        if csum == 0 and proto == 17:
            csum = 0xFFFF  # UDP: zero means "no checksum"
        buf[l4 + where : l4 + where + 2] = csum.to_bytes(2, "big")
        return bytes(buf)
    except IndexError:
        return data
