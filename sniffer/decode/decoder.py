"""Link layer + IP decoding: ``Decoder(settings, stats).decode(ts, linktype, data, wirelen)``.

Why the hot path is hand-written
--------------------------------
This function runs once per packet and the whole pipeline has about 1 microsecond per packet in
CPython. A layered dissector (scapy ~130 us, dpkt ~7.5 us per packet) creates an object per
layer; here the common case -- Ethernet, optional VLAN tags, IPv4 or IPv6 -- is one straight-line
function working on the captured ``bytes`` with precompiled ``struct.Struct`` objects, byte
indexing and integer comparisons, and it returns one plain tuple. Rare link types and
encapsulations leave the fast path through the registries in `sniffer.decode.links` (one small
function each, like Zeek's packet analyzers), rare IP cases (IPv6 extension headers, fragments)
through helper methods.

Result: ``(src, dst, proto, ip_len, l4, l4_len, ttl)`` as docs/design.md describes, or ``None``.
Every ``None`` is counted in `stats` under a named reason (Zeek's weird names where Zeek has one):

==============================  ===============================================================
``unsupported_linktype:N``      no decoder registered for LINKTYPE N
``truncated_link_header``       frame shorter than its link/VLAN header
``non_ip``                      ARP, non-SNAP LLC, unknown BSD AF, other non-IP ethertypes
``unsupported_ethertype:0xNNNN`` a known encapsulation not decoded yet (NSH, TRILL)
(Zeek's weird names)           a ``LinkAnomaly`` raised by a link layer in `sniffer.decode.l2`
``truncated_IP``                fewer than 20 (IPv4) / 40 (IPv6) captured bytes
``unknown_ip_version``          version nibble not 4 or 6
``ip_hdr_len_zero``             IPv4 total length 0 (TSO); dropped unless ``ignore_checksums``
``truncated_IP_len``            wire length shorter than the IP total length
``invalid_IP_header_size``      header (incl. IPv6 ext headers) longer than the total length
``internally_truncated_header`` header longer than the captured bytes
``IPv4_min_header_size``        IHL below 5
``bad_IP_checksum``             IPv4 header checksum wrong (not ignored)
``ipv6_no_next``                IPv6 chain ends in No Next Header (59)
``ipv6_esp`` / ``ipv6_mobility``  IPv6 chain ends in ESP / Mobility: Zeek makes no connection
``incompletely_captured_fragment``  snaplen-cut fragment; only offset-0 ones are kept (as is)
``ipv6_nested_fragment``        a second, non-atomic fragment header inside a reassembled one
``too_many_encapsulations``     more than 16 nested encapsulations (a loop guard)
``fragment_*``                  reassembly events, see `sniffer.decode.frag`
==============================  ===============================================================

Not drops, for the summary: ``ip_fragments`` (fragments seen) and ``fragments_reassembled``.

Zeek details followed: the IPv4 fast path checks in IP.cc's order; a TSO zero length is counted
as ``ip_len`` 0 (what ConnSize adds) while the captured bytes stand in for the payload under -C;
IPv6 ``dst`` is Zeek's "final destination" from a type-0 routing header with segments left;
reassembled ``ip_len`` is header (IPv6: unfragmentable part) + all reassembled data. Atomic IPv6
fragments (offset 0, no MF) are stepped over in place rather than reassembled.
"""

from __future__ import annotations

import struct

from sniffer.decode.frag import FragReassembler
from sniffer.decode.links import (
    ETH_IPV4,
    ETH_IPV6,
    ETHERTYPES,
    LINKTYPES,
    UNSUPPORTED_ETHERTYPES,
    LinkAnomaly,
    VLAN_TPIDS,
)
from sniffer.netset import NetSet

# IPv4 header after the version/IHL byte: total length, flags+offset, TTL, protocol, src, dst.
_V4 = struct.Struct("!xxHxxHBBxx4s4s")
# IPv6 header fields after the first 4 bytes: payload length, next header, hop limit.
_V6 = struct.Struct("!HBB")
_V4_WORDS = struct.Struct("!QQI")  # a 20-byte header as 3 integers, for the checksum
_U16 = struct.Struct("!H")
_FRAG6 = struct.Struct("!BxHI")  # next header, offset+flags, identification

# IPv6 extension headers the chain walk steps over (or stops at: 44 fragment, 50 ESP, 59 none,
# 135 mobility).
_V6_EXT = frozenset({0, 43, 60, 44, 51, 135, 50, 59})
_V6_PLAIN_EXT = frozenset({0, 43, 60})  # length in 8-octet units, not counting the first 8
_V6_END = {59: "ipv6_no_next", 50: "ipv6_esp", 135: "ipv6_mobility"}

_TRUNC_V6_EXT = -1  # chain walk: header runs past the captured bytes
_BAD_V6_EXT = -2  # chain walk: header runs past the IPv6 payload length
_MAX_ENCAP_DEPTH = 16


class Decoder:
    """Turns captured frames into IP packet tuples; keeps the fragment reassembly state."""

    def __init__(self, settings, stats) -> None:
        self.settings = settings
        self.stats = stats
        # Packets beyond the first that one frame carried (802.11 A-MSDU): the caller takes
        # them after the packet `decode` returned.
        self.more: list = []
        self.linktypes = LINKTYPES
        self.ethertypes = ETHERTYPES
        self._ignore_all = bool(settings.ignore_checksums)
        self._check_ip = not self._ignore_all
        matcher = NetSet(settings.ignore_checksums_nets or ())
        # Only IPv4 has a header checksum; None means "check every IPv4 header".
        self._ignore_nets = matcher if matcher else None
        self.frag = FragReassembler(
            stats,
            timeout=settings.frag_timeout,
            max_datagrams=settings.frag_max_datagrams,
            max_bytes=settings.frag_max_bytes,
        )

    def flush(self) -> None:
        """End of input: count fragments that never completed (``fragment_incomplete``)."""
        self.frag.flush()

    # ---------------------------------------------------------------------------------------
    # The hot path.

    def decode(self, ts: float, linktype: int, data: bytes, wirelen: int):
        """One captured frame -> ``(src, dst, proto, ip_len, l4, l4_len, ttl)`` or ``None``.

        Hand-written and straight-line on purpose (see the module docstring): this runs once
        per packet, so Ethernet/VLAN/IPv4/IPv6 are parsed inline with struct and integer tests;
        anything rare leaves through a registry lookup or a helper method.
        """
        n = len(data)
        # -- link layer --
        if linktype == 1:
            if n < 14:
                self.stats["truncated_link_header"] += 1
                return None
            etype = (data[12] << 8) | data[13]
            off = 14
            while etype in VLAN_TPIDS:  # 802.1Q / 802.1ad / 0x9100, any depth
                if n < off + 4:
                    self.stats["truncated_link_header"] += 1
                    return None
                etype = (data[off + 2] << 8) | data[off + 3]
                off += 4
        else:
            fn = self.linktypes.get(linktype)
            if fn is None:
                self.stats[f"unsupported_linktype:{linktype}"] += 1
                return None
            try:
                r = fn(data)
            except LinkAnomaly as e:
                self.stats[e.args[0]] += 1
                return None
            except (IndexError, struct.error):
                self.stats["truncated_link_header"] += 1
                return None
            if r is None:
                self.stats["non_ip"] += 1
                return None
            if len(r) == 3:  # several packets in one frame (802.11 A-MSDU)
                etype, off, rest = r
                self._more_in_frame(ts, data, wirelen, rest)
            else:
                etype, off = r
        if etype != ETH_IPV4 and etype != ETH_IPV6:
            r = self._ethertype(etype, data, off)
            if r is None:
                return None
            off = r

        # -- IP: the version nibble decides (as in Zeek, whatever the ethertype said) --
        ip_n = n - off
        if ip_n < 20:
            self.stats["truncated_IP"] += 1
            return None
        b0 = data[off]
        if b0 == 0x45:  # IPv4 without options: the common case, checks in Zeek's order
            tot, frag, ttl, proto, src, dst = _V4.unpack_from(data, off)
            if tot >= 20 and wirelen >= off + tot and not frag & 0x3FFF:
                if self._check_ip:
                    a, b, c = _V4_WORDS.unpack_from(data, off)  # 2**64 == 1 (mod 0xFFFF) too
                    if (a + b + c) % 0xFFFF and self._bad_checksum(src):
                        return None
                return src, dst, proto, tot, data[off + 20 : off + tot], tot - 20, ttl
            return self._ipv4(ts, data, off, ip_n, wirelen)
        if b0 >> 4 == 4:
            return self._ipv4(ts, data, off, ip_n, wirelen)
        if b0 >> 4 == 6:
            if ip_n < 40:
                self.stats["truncated_IP"] += 1
                return None
            plen, nh, hlim = _V6.unpack_from(data, off + 4)
            tot = plen + 40
            if wirelen < off + tot:
                self.stats["truncated_IP_len"] += 1
                return None
            if nh in _V6_EXT:
                return self._v6_chain(ts, data, off, tot, nh, hlim)
            return data[off + 8 : off + 24], data[off + 24 : off + 40], nh, tot, data[
                off + 40 : off + tot
            ], plen, hlim
        self.stats["unknown_ip_version"] += 1
        return None

    # ---------------------------------------------------------------------------------------
    # Rare paths.

    def _more_in_frame(self, ts: float, data: bytes, wirelen: int, rest: list) -> None:
        """The second and later packets of one frame, decoded as raw IP into `self.more`.

        The caller processes the frame's first packet, then these, in order. A name in `rest`
        is the anomaly that ended the frame's walk.
        """
        missing = wirelen - len(data)
        for item in rest:
            if isinstance(item, str):
                self.stats[item] += 1
                continue
            start, end = item
            pkt = self.decode(ts, 101, data[start:end], end - start + missing)
            if pkt is not None:
                self.more.append(pkt)

    def _ethertype(self, etype: int, data: bytes, off: int) -> int | None:
        """Anything but plain IP after the link layer: registry, VLAN tags, non-IP. -> IP offset."""
        stats = self.stats
        for _ in range(_MAX_ENCAP_DEPTH):
            if etype == ETH_IPV4 or etype == ETH_IPV6:
                return off
            if etype in VLAN_TPIDS:
                if len(data) < off + 4:
                    stats["truncated_link_header"] += 1
                    return None
                etype = (data[off + 2] << 8) | data[off + 3]
                off += 4
                continue
            fn = self.ethertypes.get(etype)
            if fn is None:
                if etype in UNSUPPORTED_ETHERTYPES:
                    stats[f"unsupported_ethertype:0x{etype:04x}"] += 1
                else:  # ARP, 802.3 length field (LLC/SNAP/Novell), anything else
                    stats["non_ip"] += 1
                return None
            try:
                r = fn(data, off)
            except LinkAnomaly as e:
                stats[e.args[0]] += 1
                return None
            except (IndexError, struct.error):
                stats["truncated_link_header"] += 1
                return None
            if r is None:
                stats["non_ip"] += 1
                return None
            etype, off = r
        stats["too_many_encapsulations"] += 1
        return None

    def _bad_checksum(self, src: bytes) -> bool:
        """A header checksum failed: True (counted) unless `src` is in ignore_checksums_nets."""
        if self._ignore_nets is not None and src in self._ignore_nets:
            return False
        self.stats["bad_IP_checksum"] += 1
        return True

    def _ipv4(self, ts, data, off, ip_n, wirelen):
        """IPv4 with options, odd lengths or fragments (the checks of Zeek's IP.cc, in order)."""
        stats = self.stats
        tot, frag, ttl, proto, src, dst = _V4.unpack_from(data, off)
        hl = (data[off] & 15) << 2
        counted = tot  # Zeek counts the header's total length, even a TSO zero
        if tot == 0:
            # Segmentation offload zeroes the length; so would a bogus header.
            stats["ip_hdr_len_zero"] += 1
            if not self._ignore_all:
                return None
            tot = ip_n
        if wirelen < off + tot:
            stats["truncated_IP_len"] += 1
            return None
        if hl > tot:
            stats["invalid_IP_header_size"] += 1
            return None
        if hl > ip_n:
            stats["internally_truncated_header"] += 1
            return None
        if hl < 20:
            stats["IPv4_min_header_size"] += 1
            return None
        if (
            self._check_ip
            and int.from_bytes(data[off : off + hl], "big") % 0xFFFF
            and self._bad_checksum(src)
        ):
            return None
        if frag & 0x3FFF:
            return self._v4_fragment(ts, data, off, hl, tot, frag, ttl, proto, src, dst)
        return src, dst, proto, counted, data[off + hl : off + tot], tot - hl, ttl

    def _v4_fragment(self, ts, data, off, hl, tot, frag, ttl, proto, src, dst):
        stats = self.stats
        stats["ip_fragments"] += 1
        foff = (frag & 0x1FFF) << 3
        if len(data) - off < tot:
            # Zeek: reassembling a snaplen-cut fragment is doomed; keep only the first one,
            # which goes on unreassembled (useful for header-only traces).
            stats["incompletely_captured_fragment"] += 1
            if foff:
                return None
            return src, dst, proto, tot, data[off + hl : off + tot], tot - hl, ttl
        r = self.frag.add(
            ts,
            (src, dst, _U16.unpack_from(data, off + 4)[0], proto),
            foff,
            bool(frag & 0x2000),
            data[off + hl : off + tot],
            (hl, ttl),
            65535 - hl,
        )
        if r is None:
            return None
        payload, (hl0, ttl0) = r
        return src, dst, proto, hl0 + len(payload), payload, len(payload), ttl0

    @staticmethod
    def _walk_v6(buf: bytes, p: int, end: int, nh: int):
        """Step over extension headers from `p` (next header `nh`) in `buf[:end]`.

        Returns ``(nh, p, final_dst)``: `nh` is the first non-extension header, or 44 at a
        non-atomic fragment header, or 50/59/135 where the chain ends; it is
        ``_TRUNC_V6_EXT`` if a header runs past ``len(buf)`` and ``_BAD_V6_EXT`` if past `end`
        (the IP payload end). Atomic fragment headers (offset 0, MF clear; RFC 6946) are
        stepped over. `final_dst` is Zeek's "final destination": the last address of the first
        type-0 routing header with segments left (None if there is none); Zeek uses it as the
        connection's responder address.
        """
        n = len(buf)
        final_dst = None
        while nh in _V6_EXT:
            if nh in _V6_PLAIN_EXT:
                if p + 2 > n:
                    return _TRUNC_V6_EXT, p, final_dst
                hlen = (buf[p + 1] + 1) << 3
                if nh == 43 and p + hlen <= n and final_dst is None:
                    # type 0, segments left > 0, even length >= 2 (IPv6_Hdr_Chain::
                    # ProcessRoutingHeader; type 2 only with Zeek's ENABLE_MOBILE_IPV6)
                    rlen = buf[p + 1]
                    if buf[p + 2] == 0 and buf[p + 3] and rlen >= 2 and not rlen & 1:
                        final_dst = buf[p + hlen - 16 : p + hlen]
            elif nh == 44:
                if p + 8 > end:
                    return _BAD_V6_EXT, p, final_dst
                if p + 8 > n:
                    return _TRUNC_V6_EXT, p, final_dst
                if buf[p + 2] or buf[p + 3] & 0xF9:  # offset or MF set: a real fragment
                    return 44, p, final_dst
                hlen = 8
            elif nh == 51:  # AH: length in 4-octet units, minus 2
                if p + 2 > n:
                    return _TRUNC_V6_EXT, p, final_dst
                hlen = (buf[p + 1] + 2) << 2
            else:  # 50 ESP, 59 No Next Header, 135 Mobility: the chain ends here
                return nh, p, final_dst
            if p + hlen > end:
                return _BAD_V6_EXT, p, final_dst
            if p + hlen > n:
                return _TRUNC_V6_EXT, p, final_dst
            nh = buf[p]
            p += hlen
        return nh, p, final_dst

    def _v6_result(self, nh: int, p: int):
        """Map the chain walk's stop reasons to counters; True if the chain reached a protocol."""
        if nh >= 0:
            name = _V6_END.get(nh)
            if name is None:
                return True
            self.stats[name] += 1
        elif nh == _TRUNC_V6_EXT:
            self.stats["internally_truncated_header"] += 1
        else:
            self.stats["invalid_IP_header_size"] += 1
        return False

    def _v6_chain(self, ts, data, off, tot, nh, hlim):
        end = off + tot
        nh, p, fdst = self._walk_v6(data, off + 40, end, nh)
        src = data[off + 8 : off + 24]
        dst = fdst or data[off + 24 : off + 40]
        if nh != 44:
            if not self._v6_result(nh, p):
                return None
            return src, dst, nh, tot, data[p:end], end - p, hlim

        # A real fragment: fragment header at p; headers before it are the unfragmentable part.
        stats = self.stats
        stats["ip_fragments"] += 1
        fnh, offlg, ident = _FRAG6.unpack_from(data, p)
        foff = offlg & 0xFFF8
        if len(data) < end:
            stats["incompletely_captured_fragment"] += 1
            if foff:
                return None
            nh, q, fdst2 = self._walk_v6(data, p + 8, end, fnh)
            if nh == 44:
                stats["ipv6_nested_fragment"] += 1
                return None
            if not self._v6_result(nh, q):
                return None
            return src, fdst or fdst2 or dst, nh, tot, data[q:end], end - q, hlim
        unfrag = p - off
        r = self.frag.add(
            ts,
            (src, dst, ident),
            foff,
            bool(offlg & 1),
            data[p + 8 : end],
            (unfrag, fnh, hlim),
            65535 + 40 - unfrag,
        )
        if r is None:
            return None
        payload, (unfrag, fnh, hlim) = r
        # Zeek: the reassembled packet is the unfragmentable part + the data, fragment header
        # removed, so ip_len = unfragmentable length + reassembled length.
        nh, q, fdst2 = self._walk_v6(payload, 0, len(payload), fnh)
        if nh == 44:
            stats["ipv6_nested_fragment"] += 1
            return None
        if not self._v6_result(nh, q):
            return None
        n = len(payload)
        return src, fdst or fdst2 or dst, nh, unfrag + n, payload[q:], n - q, hlim
