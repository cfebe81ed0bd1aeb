"""conn.log as JSON lines, the way Zeek's JSON writer (``LogAscii::use_json=T``) writes it.

Why Zeek's shape: pipelines that already ingest Zeek JSON (field names ``id.orig_h`` etc., epoch
``ts`` as a number, unset fields left out, sets as arrays) take sniffer output unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from sniffer.flows.conn import Conn
from sniffer.output.zeek import DEFAULT_FIELDS, FIELD_TYPES, field_value


def to_dict(conn: Conn, fields: Sequence[str] = DEFAULT_FIELDS) -> dict[str, Any]:
    """The JSON object of one connection, in field order; unset (``None``) fields are omitted."""
    obj: dict[str, Any] = {}
    for name in fields:
        if name == "processes":  # structured in JSON: [{pid, name, fd}]
            if conn.processes:
                obj[name] = conn.processes
            continue
        if name == "evidence":  # a list of sentences in JSON (one joined string in TSV)
            if conn.evidence:
                obj[name] = [str(e) for e in conn.evidence]
            continue
        value = field_value(conn, name)
        if value is None:
            continue
        ztype = FIELD_TYPES[name]
        if ztype in ("time", "interval"):
            value = float(value)
            if not math.isfinite(value):
                value = None  # Zeek's JSON writer turns NaN/inf into null
        elif ztype in ("count", "port"):
            value = int(value)
        elif ztype == "bool":
            value = bool(value)
        elif ztype.startswith(("set[", "vector[")):
            value = [str(v) for v in value]
        else:
            value = str(value)
        obj[name] = value
    return obj


def format_line(conn: Conn, fields: Sequence[str] = DEFAULT_FIELDS) -> str:
    """One compact JSON object (no newline), UTF-8 text as Zeek writes it."""
    line = json.dumps(to_dict(conn, fields), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)
    return line if line.isprintable() else _escape_unprintable(line)


def _escape_unprintable(line: str) -> str:
    """JSON escapes for what `ensure_ascii=False` leaves raw: C1 controls (U+009B is a CSI to
    many terminals), bidi overrides and other format characters (from process names, say),
    line separators, lone surrogates. The value read back is the same; the line is safe to
    show on a terminal (`sniffer live --format json` writes it there)."""
    out = []
    for c in line:
        if c.isprintable():
            out.append(c)
            continue
        n = ord(c)
        if n > 0xFFFF:  # a surrogate pair, as JSON spells characters beyond the BMP
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
        else:
            out.append(f"\\u{n:04x}")
    return "".join(out)


class JsonlWriter:
    """Write one JSON object per line to `out` as connections arrive (no header or trailer)."""

    def __init__(self, out: TextIO, fields: Sequence[str] = DEFAULT_FIELDS) -> None:
        unknown = [f for f in fields if f not in FIELD_TYPES]
        if unknown:
            raise ValueError(f"unknown conn.log field(s): {', '.join(unknown)}")
        self.out = out
        self.fields = tuple(fields)
        self.rows = 0

    def write(self, conn: Conn) -> None:
        """Append one connection."""
        self.out.write(format_line(conn, self.fields) + "\n")
        self.rows += 1

    def write_all(self, conns: Iterable[Conn]) -> None:
        """Append several connections in the given order."""
        for conn in conns:
            self.write(conn)

    def close(self) -> None:
        """Flush; the stream itself stays open (it may be stdout)."""
        self.out.flush()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
