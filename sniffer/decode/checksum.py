"""Internet checksums (RFC 1071) with one big-integer operation instead of a loop over words.

The trick: read the buffer as one big-endian integer. Because 0x10000 == 1 (mod 0xFFFF), that
integer is congruent modulo 0xFFFF to the plain sum of its 16-bit words, and the ones'-complement
sum *is* the plain sum reduced modulo 0xFFFF (end-around carry), with 0xFFFF ("negative zero")
and 0 identified. So ``int.from_bytes(buf, "big") % 0xFFFF == 0`` says "the ones'-complement sum
is all ones", i.e. the checksum over the buffer (checksum field included) verifies. Both steps run
in C, ~50x faster than summing words in Python.
"""

from __future__ import annotations

_TCP, _UDP, _ICMP = 6, 17, 1


def ones_sum(data: bytes) -> int:
    """Ones'-complement sum of the 16-bit big-endian words of `data`, modulo 0xFFFF.

    An odd trailing byte is padded with a zero byte, as RFC 1071 says. The result is in
    0..0xFFFE, where 0 stands for both 0x0000 and 0xFFFF: a header or segment whose checksum
    field is correct gives 0.
    """
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    return v % 0xFFFF


def l4_checksum_ok(src: bytes, dst: bytes, proto: int, l4: bytes, l4_len: int) -> bool:
    """True if the TCP/UDP/ICMP/ICMPv6 checksum of `l4` is right (or cannot or need not be checked).

    `src`/`dst` are the raw addresses (4 or 16 bytes) and pick the IPv4 or IPv6 pseudo-header;
    `l4_len` is the transport length the IP header claims (the pseudo-header length field).
    * ICMP over IPv4 (proto 1) has no pseudo-header.
    * UDP over IPv4 with checksum 0 means "no checksum": ok. (Over IPv6 the checksum is
      mandatory; Zeek's VXLAN exception for IPv6 is the caller's business.)
    * A snaplen-truncated segment (``len(l4) < l4_len``) cannot be verified and is accepted, as
      Zeek accepts packets with caplen < len.
    """
    n = len(l4)
    if n < l4_len:
        return True
    if n > l4_len:
        l4 = l4[:l4_len]
    body = int.from_bytes(l4, "big")
    if l4_len & 1:
        body <<= 8
    if proto == _ICMP and len(src) == 4:
        total = body
    else:
        if proto == _UDP and len(src) == 4 and l4_len >= 8 and l4[6] == 0 and l4[7] == 0:
            return True
        # Pseudo-header words: addresses, protocol, length (v4: 16-bit, v6: 32-bit length and
        # 24 zero bits + next header; the modulo arithmetic makes both the same sum).
        total = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + l4_len + body
    # total == 0 only for all-zero data, whose true sum is +0 (not all ones): invalid.
    return total != 0 and total % 0xFFFF == 0
