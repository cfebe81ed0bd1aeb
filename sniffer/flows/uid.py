"""Connection uids in Zeek's style: "C" followed by base62, stable for the same input."""

from __future__ import annotations

import hashlib

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out)) or "0"


def make_uid(key: tuple, ts: float, serial: int) -> str:
    """A 96-bit hash of the connection key, its start time and its creation number.

    Zeek draws uids from a seeded random pool; a hash gives the same stability (same capture,
    same uids) without global state, so later tools can point at records by uid.
    """
    digest = hashlib.blake2b(repr((key, ts, serial)).encode(), digest_size=12).digest()
    return "C" + base62(int.from_bytes(digest, "big"))
