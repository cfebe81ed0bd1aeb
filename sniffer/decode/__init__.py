"""Decode stage: link layer + IP -> ``(src, dst, proto, ip_len, l4, l4_len, ttl)`` tuples.

See docs/design.md for the contract and `sniffer.decode.decoder` for the counters.
"""

from sniffer.decode.checksum import l4_checksum_ok, ones_sum
from sniffer.decode.decoder import Decoder
from sniffer.decode.frag import FragReassembler
from sniffer.decode.links import ETHERTYPES, LINKTYPES, register_ethertype, register_linktype

__all__ = [
    "Decoder",
    "ETHERTYPES",
    "FragReassembler",
    "LINKTYPES",
    "l4_checksum_ok",
    "ones_sum",
    "register_ethertype",
    "register_linktype",
]
