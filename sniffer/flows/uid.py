"""Connection uids in Zeek's style: "C" followed by base62, stable for the same input."""

from __future__ import annotations

from hashlib import blake2b

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Two base62 digits at a time: a uid costs 9 divisions instead of 17.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def base62(n: int) -> str:
    out = []
    while n >= 62:
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    if n:
        out.append(_ALPHABET[n])
    s = "".join(reversed(out)).lstrip("0")
    return s or "0"


def make_uid(key: tuple, ts: float, serial: int) -> str:
    """A 96-bit hash of the connection key, its start time and its creation number.

    Zeek draws uids from a seeded random pool; a hash gives the same stability (same capture,
    same uids) without global state, so later tools can point at records by uid.
    """
    digest = blake2b(repr((key, ts, serial)).encode(), digest_size=12).digest()
    return "C" + base62(int.from_bytes(digest, "big"))
