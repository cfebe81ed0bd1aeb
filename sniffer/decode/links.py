"""Rare link layers and rare ethertypes, as small registered functions (Zeek's packet analyzers).

The decoder handles Ethernet (LINKTYPE 1), 802.1Q/802.1ad/0x9100 tags and IPv4/IPv6 inline,
because that is nearly all traffic. Everything else goes through two dicts:

* ``LINKTYPES[linktype](data) -> (ethertype, offset) | None``: parse the link header of a frame
  and say what follows it and where. ``None`` means "not IP" (counted ``non_ip``). A function may
  simply index past the end of a short frame: the IndexError/struct.error is caught and counted
  as ``truncated_link_header``.
* ``ETHERTYPES[ethertype](data, offset) -> (ethertype, offset) | None``: an encapsulation found by
  ethertype (after Ethernet, a VLAN tag, SLL, ...), same conventions. The result is looked up
  again, so encapsulations nest (PPPoE -> PPP -> IP, MPLS -> IP, ...).

The ethertype returned for IP is ``ETH_IPV4`` (0x0800) or ``ETH_IPV6`` (0x86DD). As in Zeek, both
lead to one IP stage where the version nibble decides, so a raw-IP link layer may return either.

A function that finds the frame malformed raises ``LinkAnomaly(name)``: the frame is dropped
and counted under ``name`` (Zeek's weird name where Zeek has one, e.g. ``truncated_pppoe_header``).

Adding a link type is one function plus ``@register_linktype(N)``; adding an encapsulation is
one function plus ``@register_ethertype(0xNNNN)`` (both take several numbers). The rarer link
layers and shims live in `sniffer.decode.l2`, one small module per family, imported at the end
of this module so that importing the registries registers them. Encapsulations not decoded
(NSH, TRILL) are listed in ``UNSUPPORTED_ETHERTYPES`` so they are counted as such rather than as
plain non-IP traffic.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})

LinkFn = Callable[[bytes], "tuple[int, int] | None"]
EtherFn = Callable[[bytes, int], "tuple[int, int] | None"]

LINKTYPES: dict[int, LinkFn] = {}
ETHERTYPES: dict[int, EtherFn] = {}

# Encapsulations that usually carry IP but are not decoded yet; counted
# `unsupported_ethertype:0xNNNN` instead of `non_ip` so the summary shows what was missed.
# (Registering an ethertype removes it from here.)
UNSUPPORTED_ETHERTYPES = {
    0x894F: "NSH",
    0x22F3: "TRILL",
}

_U16 = struct.Struct("!H")
_U32_BE = struct.Struct("!I")
_U32_LE = struct.Struct("<I")


class LinkAnomaly(Exception):
    """Raised by a registered function: drop the frame, count it under ``args[0]``."""


def register_linktype(*linktypes: int) -> Callable[[LinkFn], LinkFn]:
    """Decorator: ``@register_linktype(113)`` makes the function handle that LINKTYPE_ number."""

    def deco(fn: LinkFn) -> LinkFn:
        for linktype in linktypes:
            LINKTYPES[linktype] = fn
        return fn

    return deco


def register_ethertype(*ethertypes: int) -> Callable[[EtherFn], EtherFn]:
    """Decorator: ``@register_ethertype(0x8864)`` makes the function decode that ethertype."""

    def deco(fn: EtherFn) -> EtherFn:
        for ethertype in ethertypes:
            ETHERTYPES[ethertype] = fn
            UNSUPPORTED_ETHERTYPES.pop(ethertype, None)
        return fn

    return deco


# --- link types ----------------------------------------------------------------------------


@register_linktype(1)
def ethernet(data: bytes) -> tuple[int, int]:
    """Ethernet II / 802.3 (the decoder inlines this; registered for completeness and reuse)."""
    return _U16.unpack_from(data, 12)[0], 14


@register_linktype(113)
def linux_sll(data: bytes) -> tuple[int, int]:
    """Linux cooked capture v1: 16-byte header, protocol (ethertype) in the last two bytes."""
    return _U16.unpack_from(data, 14)[0], 16


@register_linktype(276)
def linux_sll2(data: bytes) -> tuple[int, int]:
    """Linux cooked capture v2: 20-byte header, protocol (ethertype) in the first two bytes."""
    if len(data) < 20:
        raise IndexError("short SLL2 header")
    return _U16.unpack_from(data, 0)[0], 20


def _raw_ip(data: bytes) -> tuple[int, int]:
    """No link header: the IP version nibble decides."""
    return (ETH_IPV6 if data[0] >> 4 == 6 else ETH_IPV4), 0


for _lt in (12, 14, 101):  # DLT_RAW as written by OpenBSD (12) and BSD/OS (14); LINKTYPE_RAW
    LINKTYPES[_lt] = _raw_ip


@register_linktype(228)
def raw_ipv4(data: bytes) -> tuple[int, int]:
    """LINKTYPE_IPV4: raw IPv4 (the IP stage still checks the version nibble)."""
    return ETH_IPV4, 0


@register_linktype(229)
def raw_ipv6(data: bytes) -> tuple[int, int]:
    """LINKTYPE_IPV6: raw IPv6."""
    return ETH_IPV6, 0


# BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD, BSD/OS),
# 28 (FreeBSD, DragonFly) or 30 (Darwin). Captures travel between systems, so accept them all.
_BSD_AF = {2: ETH_IPV4, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6}


@register_linktype(0)
def bsd_null(data: bytes) -> tuple[int, int] | None:
    """DLT_NULL: 4-byte address family in the *capturing host's* byte order; try both."""
    af = _U32_LE.unpack_from(data, 0)[0]
    if af > 0xFFFF:
        af = _U32_BE.unpack_from(data, 0)[0]
    et = _BSD_AF.get(af)
    return None if et is None else (et, 4)


@register_linktype(108)
def bsd_loop(data: bytes) -> tuple[int, int] | None:
    """DLT_LOOP (OpenBSD): like DLT_NULL but the address family is in network byte order."""
    et = _BSD_AF.get(_U32_BE.unpack_from(data, 0)[0])
    return None if et is None else (et, 4)


# --- the rarer link layers and shims register themselves (after the registries exist) -------

from sniffer.decode.l2 import (  # noqa: E402,F401  (imported for their registrations)
    ethernet,
    fddi,
    ieee802_11,
    mpls,
    nflog,
    ppp,
)
