"""Fast "is this raw address in one of these networks?" for the per-packet path.

`ipaddress` objects are far too slow to test per packet. `AddrMatcher` turns a list of networks
into, per IP version and prefix length, a set of network numbers; a lookup is one
``int.from_bytes`` and one shift plus set test per distinct prefix length. Results are cached
per address (bounded), since traffic repeats addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_CACHE_MAX = 65536


class AddrMatcher:
    """``raw_addr in matcher`` for raw 4- or 16-byte addresses (as the decoder yields them)."""

    __slots__ = ("_v4", "_v6", "_cache")

    def __init__(self, nets: Iterable) -> None:
        tables: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        for net in nets:
            if not isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                net = ipaddress.ip_network(net, strict=False)
            shift = net.max_prefixlen - net.prefixlen
            tables[net.version].setdefault(shift, set()).add(int(net.network_address) >> shift)
        self._v4 = tuple((s, frozenset(v)) for s, v in sorted(tables[4].items()))
        self._v6 = tuple((s, frozenset(v)) for s, v in sorted(tables[6].items()))
        self._cache: dict[bytes, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    @property
    def has_v4(self) -> bool:
        return bool(self._v4)

    def __contains__(self, addr: bytes) -> bool:
        hit = self._cache.get(addr)
        if hit is not None:
            return hit
        table = self._v4 if len(addr) == 4 else self._v6
        a = int.from_bytes(addr, "big")
        hit = False
        for shift, prefixes in table:
            if (a >> shift) in prefixes:
                hit = True
                break
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[addr] = hit
        return hit
