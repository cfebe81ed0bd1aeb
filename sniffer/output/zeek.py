"""Streaming conn.log writer in Zeek's ASCII (TSV) layout.

Why byte-for-byte Zeek: the output is diffed against Zeek's own conn.log baselines and read by
zeek-cut and other Zeek tooling, so the header lines, field order, type names and value
formatting follow Zeek's ASCII writer (``logging/writers/ascii`` and the ASCII formatter):
time/interval as ``%.6f``, bool ``T``/``F``, unset ``-``, empty string/set ``(empty)``, set
elements joined by ``,``, and reserved or non-printable content escaped as ``\\xHH``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
# (typing.TYPE_CHECKING without importing typing, and the record types for annotations only:
# `read`'s rows path starts without either)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from sniffer.flows.conn import Conn

SEPARATOR = "\t"
SET_SEPARATOR = ","
EMPTY_FIELD = "(empty)"
UNSET_FIELD = "-"
EVIDENCE_SEPARATOR = "; "  # between the sentences of `evidence` in TSV (none contains it)

#: Zeek's 22 default conn.log fields, in Zeek's order.
ZEEK_FIELDS: tuple[str, ...] = (
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
    "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
    "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
    "tunnel_parents", "ip_proto",
)

#: What sniffer writes by default: Zeek's fields plus the Community ID (as Zeek's
#: ``policy/protocols/conn/community-id-logging`` appends it).
DEFAULT_FIELDS: tuple[str, ...] = ZEEK_FIELDS + ("community_id",)

#: The kernel cross-reference's columns, appended after DEFAULT_FIELDS when present.
VERDICT_FIELDS: tuple[str, ...] = ("verdict", "evidence", "processes", "user", "netns",
                                   "container", "conntrack_id", "nat.orig_h", "nat.orig_p",
                                   "nat.resp_h", "nat.resp_p")

#: Zeek type name of every field this writer knows.
FIELD_TYPES: dict[str, str] = {
    "ts": "time", "uid": "string", "id.orig_h": "addr", "id.orig_p": "port",
    "id.resp_h": "addr", "id.resp_p": "port", "proto": "enum", "service": "string",
    "duration": "interval", "orig_bytes": "count", "resp_bytes": "count",
    "conn_state": "string", "local_orig": "bool", "local_resp": "bool",
    "missed_bytes": "count", "history": "string", "orig_pkts": "count",
    "orig_ip_bytes": "count", "resp_pkts": "count", "resp_ip_bytes": "count",
    "tunnel_parents": "set[string]", "ip_proto": "count", "community_id": "string",
    "orig_l2_addr": "string", "resp_l2_addr": "string",
    "verdict": "string", "evidence": "string", "processes": "vector[string]",
    "user": "string", "netns": "string", "container": "string",
    "conntrack_id": "count", "nat.orig_h": "addr", "nat.orig_p": "port", "nat.resp_h": "addr",
    "nat.resp_p": "port",
}


def field_value(conn: Conn, name: str) -> Any:
    """The value of conn.log field `name` for `conn`; ``None`` means unset.

    Zeek leaves ``history`` and ``tunnel_parents`` unset (not empty) when there is nothing to
    record, so an empty value maps to ``None`` here.
    """
    if name == "id.orig_h":
        return conn.orig_h
    if name == "id.orig_p":
        return conn.orig_p
    if name == "id.resp_h":
        return conn.resp_h
    if name == "id.resp_p":
        return conn.resp_p
    if name == "history":
        return conn.history or None
    if name == "tunnel_parents":
        return list(conn.tunnel_parents) or None
    if name == "processes":
        return [f"{p['pid']}/{p['name']}" for p in conn.processes] if conn.processes else None
    if name == "evidence":
        # One string, sentences joined by "; ": as a vector, Zeek's ',' set separator would
        # turn every comma inside a sentence into \x2c for zeek-cut (JSON keeps the list).
        return EVIDENCE_SEPARATOR.join(conn.evidence) if conn.evidence else None
    if name not in FIELD_TYPES:
        raise ValueError(f"unknown conn.log field {name!r}")
    return getattr(conn, _ATTRS.get(name, name))


def _escape_text(s: str, extra: str = "") -> str:
    """Escape what would break a TSV line: backslash, control characters and `extra`."""
    if s.isprintable() and "\\" not in s and "\t" not in s and not any(c in s for c in extra):
        return s
    out = []
    for c in s:
        if c == "\\" or c in extra or (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0):
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


def _format_string(s: str, extra: str = "") -> str:
    """Zeek's string rendering: empty -> ``(empty)``; a value equal to a placeholder has its
    first character hex-escaped so it cannot be read back as unset/empty."""
    if not s:
        return EMPTY_FIELD
    if s in (UNSET_FIELD, EMPTY_FIELD):
        return f"\\x{ord(s[0]):02x}{s[1:]}"
    return _escape_text(s, extra)


def format_value(value: Any, ztype: str) -> str:
    """Render one value of Zeek type `ztype` the way Zeek's ASCII formatter does."""
    if value is None:
        return UNSET_FIELD
    if ztype in ("time", "interval"):
        return f"{value:.6f}"
    if ztype == "bool":
        return "T" if value else "F"
    if ztype in ("count", "port"):
        return str(int(value))
    if ztype.startswith(("set[", "vector[")):
        if not value:
            return EMPTY_FIELD
        return SET_SEPARATOR.join(_format_string(str(v), SET_SEPARATOR) for v in value)
    return _format_string(str(value))


def format_row(conn: Conn, fields: Sequence[str] = DEFAULT_FIELDS) -> str:
    """One conn.log data line (without the newline). A line that would start with ``#`` gets
    that character escaped, as Zeek does, so readers never take it for a header."""
    line = _row_formatter(tuple(fields))(conn)
    if line.startswith("#"):
        line = "\\x23" + line[1:]
    return line


_ATTRS = {"id.orig_h": "orig_h", "id.orig_p": "orig_p", "id.resp_h": "resp_h",
          "id.resp_p": "resp_p", "nat.orig_h": "nat_orig_h", "nat.orig_p": "nat_orig_p",
          "nat.resp_h": "nat_resp_h", "nat.resp_p": "nat_resp_p"}


def _text(v: Any) -> str:
    """A string field: as it is when nothing in it needs escaping (the usual case)."""
    if v is None:
        return UNSET_FIELD
    if type(v) is str and v and v.isprintable() and "\\" not in v and v != UNSET_FIELD \
            and v != EMPTY_FIELD:
        return v
    return format_value(v, "string")


def _number(v: Any) -> str:
    return UNSET_FIELD if v is None else str(v) if type(v) is int else format_value(v, "count")


@functools.lru_cache(maxsize=16)
def _row_formatter(fields: tuple[str, ...]) -> Callable[[Conn], str]:
    """A formatter for rows of these fields, generated as one function (as dataclasses and
    namedtuple generate theirs): one attribute read and an inline test per field. The
    general `field_value` + `format_value` path costs several times as much, which shows
    when every packet of a flood is a connection."""
    exprs = []
    for i, name in enumerate(fields):
        ztype = FIELD_TYPES.get(name)
        if ztype is None:
            raise ValueError(f"unknown conn.log field {name!r}")
        attr, v = _ATTRS.get(name, name), f"v{i}"
        if not attr.isidentifier() or name in ("processes", "evidence", "tunnel_parents"):
            exprs.append(f"format_value(field_value(c, {name!r}), {ztype!r})")
        elif name == "history":
            exprs.append("_text(c.history or None)")
        elif ztype in ("time", "interval"):
            exprs.append(f"(UNSET if ({v} := c.{attr}) is None else f'{{{v}:.6f}}')")
        elif ztype in ("count", "port"):
            exprs.append(f"(str({v}) if type({v} := c.{attr}) is int else _number({v}))")
        elif ztype == "bool":
            exprs.append(f"(UNSET if ({v} := c.{attr}) is None else 'T' if {v} else 'F')")
        elif ztype in ("string", "addr", "enum"):
            exprs.append(f"_text(c.{attr})")
        else:
            exprs.append(f"format_value(field_value(c, {name!r}), {ztype!r})")
    source = "def row(c):\n    return SEP.join((" + ", ".join(exprs) + ",))\n"
    scope = {"SEP": SEPARATOR, "UNSET": UNSET_FIELD, "_text": _text, "_number": _number,
             "format_value": format_value, "field_value": field_value}
    exec(source, scope)  # noqa: S102 - the source is built above from known field names
    return scope["row"]


def log_timestamp(t: float) -> str:
    """``#open``/``#close`` value: local time as ``%Y-%m-%d-%H-%M-%S`` like Zeek's writer."""
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(t))


def close_line(clock: Callable[[], float] = time.time) -> str:
    """The ``#close`` line that ends every Zeek-style log (conn, weird, notice)."""
    return f"#close{SEPARATOR}{log_timestamp(clock())}\n"


def header_lines(fields: Sequence[str], path: str, open_time: float,
                 types: dict[str, str] = FIELD_TYPES) -> list[str]:
    """The header block Zeek writes before the first row (`types`: each field's Zeek type)."""
    return [
        "#separator \\x09",
        f"#set_separator{SEPARATOR}{SET_SEPARATOR}",
        f"#empty_field{SEPARATOR}{EMPTY_FIELD}",
        f"#unset_field{SEPARATOR}{UNSET_FIELD}",
        f"#path{SEPARATOR}{path}",
        f"#open{SEPARATOR}{log_timestamp(open_time)}",
        "#fields" + SEPARATOR + SEPARATOR.join(fields),
        "#types" + SEPARATOR + SEPARATOR.join(types[f] for f in fields),
    ]


class ZeekWriter:
    """Write `Conn` records to `out` as they arrive; ``close()`` writes the ``#close`` line.

    The header is written at construction so that an input with no connections still gives a
    valid, empty log. `clock` supplies the wall-clock time for ``#open``/``#close`` (Zeek uses
    the wall clock, not packet time); tests pass a fixed one. The writer does not close `out`.
    Use as a context manager, or pass ``writer.write`` as the flow table's `emit`.
    """

    def __init__(self, out: TextIO, fields: Sequence[str] = DEFAULT_FIELDS, *,
                 path: str = "conn", clock: Callable[[], float] = time.time) -> None:
        unknown = [f for f in fields if f not in FIELD_TYPES]
        if unknown:
            raise ValueError(f"unknown conn.log field(s): {', '.join(unknown)}")
        self.out = out
        self.fields = tuple(fields)
        self.clock = clock
        self.closed = False
        self.rows = 0
        out.write("\n".join(header_lines(self.fields, path, clock())) + "\n")

    def write(self, conn: Conn) -> None:
        """Append one connection row."""
        self.out.write(format_row(conn, self.fields) + "\n")
        self.rows += 1

    def write_all(self, conns: Iterable[Conn]) -> None:
        """Append several rows in the given order."""
        for conn in conns:
            self.write(conn)

    def close_line(self) -> str:
        """The ``#close`` trailer (also what a file cut short by a full disk ends with)."""
        return close_line(self.clock)

    def close(self) -> None:
        """Write the ``#close`` trailer once and flush."""
        if not self.closed:
            self.closed = True
            self.out.write(self.close_line())
            self.out.flush()

    def __enter__(self) -> ZeekWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
