"""Connection uids in Zeek's style: "C" followed by base62, stable for the same input."""

from __future__ import annotations

from hashlib import blake2b

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Byte value -> base62 digit (value % 62): a digest becomes digits with one C-level translate
# instead of a division per digit, which showed in floods, where every packet is a connection.
_DIGITS = bytes(_ALPHABET[b % 62] for b in range(256))


def make_uid(key: tuple, ts: float, serial: int) -> str:
    """A hash of the connection key, its start time and its serial number: "C" + 16 digits.

    Zeek draws uids from a seeded random pool; a hash gives the same stability (same capture,
    same uids) without global state, so later tools can point at records by uid. 16 base62
    digits from 16 hash bytes carry about 95 bits (Zeek's uids carry 96).
    """
    digest = blake2b(repr((key, ts, serial)).encode(), digest_size=16).digest()
    return "C" + digest.translate(_DIGITS).decode("ascii")
