"""Fast membership of raw address bytes in a set of CIDR networks.

Used per packet (ignore-checksums nets) and per connection (local nets), so it works on the raw
4- or 16-byte address the decoder hands over, without building `ipaddress` objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class NetSet:
    """A set of networks; `addr in netset` with `addr` as raw bytes (4 or 16)."""

    __slots__ = ("_v4", "_v6", "nets")

    def __init__(self, nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()) -> None:
        self.nets = list(nets)
        # (prefix length, masked network int) grouped by length: one dict lookup per length.
        self._v4 = self._index([n for n in self.nets if n.version == 4], 32)
        self._v6 = self._index([n for n in self.nets if n.version == 6], 128)

    @staticmethod
    def _index(nets: list, bits: int) -> list[tuple[int, set[int]]]:
        by_len: dict[int, set[int]] = {}
        for n in nets:
            by_len.setdefault(n.prefixlen, set()).add(int(n.network_address) >> (bits - n.prefixlen))
        return [(bits - plen, s) for plen, s in sorted(by_len.items())]

    def __bool__(self) -> bool:
        return bool(self.nets)

    def __contains__(self, addr: bytes) -> bool:
        table = self._v4 if len(addr) == 4 else self._v6
        if not table:
            return False
        value = int.from_bytes(addr, "big")
        for shift, prefixes in table:
            if value >> shift in prefixes:
                return True
        return False
