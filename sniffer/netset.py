"""Fast membership of raw address bytes in a set of CIDR networks.

Used per packet (ignore-checksums nets) and per connection (local nets), so it works on the raw
4- or 16-byte address the decoder hands over: `ipaddress` objects are far too slow per packet.
The networks become, per IP version and prefix length, a set of network numbers; a lookup is
one ``int.from_bytes`` and one shift plus set test per distinct prefix length. Results are
cached per address (bounded), since traffic repeats addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_CACHE_MAX = 65536


class NetSet:
    """``raw_addr in netset`` for raw 4- or 16-byte addresses."""

    __slots__ = ("_v4", "_v6", "_cache", "nets")

    def __init__(self, nets: Iterable = ()) -> None:
        self.nets = [n if isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                     else ipaddress.ip_network(n, strict=False) for n in nets]
        tables: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        for net in self.nets:
            shift = net.max_prefixlen - net.prefixlen
            tables[net.version].setdefault(shift, set()).add(int(net.network_address) >> shift)
        self._v4 = tuple((s, frozenset(v)) for s, v in sorted(tables[4].items()))
        self._v6 = tuple((s, frozenset(v)) for s, v in sorted(tables[6].items()))
        self._cache: dict[bytes, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

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
