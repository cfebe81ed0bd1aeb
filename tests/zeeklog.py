"""Parser for Zeek TSV logs (as written by Zeek, by btest baselines and by ``zeek-cut -m``).

Handles three shapes:

* a normal Zeek ASCII log: ``#separator``/``#set_separator``/``#empty_field``/``#unset_field``/
  ``#path``/``#open``/``#fields``/``#types`` header lines, the rows, ``#close``;
* the same preceded by the btest header line (``### BTest baseline data ...``);
* a partial ``zeek-cut -m`` projection: no ``#`` header besides (optionally) the btest header; the
  first line is the tab-separated column list, the following lines are rows.

Values are returned as strings, except:

* the unset field (``-`` by default) becomes ``None``;
* the empty field (``(empty)``) becomes ``""`` for scalar columns and ``()`` for set/vector columns;
* set/vector columns (``#types`` ``set[...]``/``vector[...]``, or a name in :data:`SET_FIELDS` when
  there are no types) become a tuple of strings, in the order they are written.

Nothing else is interpreted (numbers stay strings; ``ts`` may be the btest mask
``XXXXXXXXXX.XXXXXX``): field-specific meaning belongs to the comparator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

BTEST_HEADER_PREFIX = "### BTest baseline"

#: Columns known to be sets, used when a log carries no ``#types`` line (zeek-cut projections).
SET_FIELDS = frozenset({"tunnel_parents"})


class ZeekLogError(ValueError):
    """The text is not a well-formed Zeek TSV log."""


@dataclass
class ZeekLog:
    fields: list[str]
    rows: list[dict[str, object]]
    types: list[str] | None = None
    path: str | None = None
    #: the separators actually used
    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    #: True if the log was a header-less column-list projection (zeek-cut -m)
    partial: bool = False
    btest_header: bool = False
    meta: dict[str, str] = field(default_factory=dict)

    def __iter__(self):
        """Allows ``rows, fields = parse_log(...)``."""
        yield self.rows
        yield self.fields


_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _unescape_header(value: str) -> str:
    return _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def parse_text(text: str, source: str = "<text>") -> ZeekLog:
    log = ZeekLog(fields=[], rows=[])
    fields: list[str] | None = None
    set_cols: set[str] | None = None
    lines = text.splitlines()

    def where(lineno: int) -> str:
        return f"{source}:{lineno}"

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if lineno == 1 and line.startswith(BTEST_HEADER_PREFIX):
            log.btest_header = True
            continue
        if not line.strip():
            continue
        if line.startswith("#"):
            if fields is not None and log.partial:
                raise ZeekLogError(f"{where(lineno)}: '#' header line after the column list of a projection")
            if line.startswith("#separator"):
                # '#separator \x09': the value follows a single space (the separator itself
                # is not known yet).
                value = line[len("#separator"):].lstrip(" ")
                log.separator = _unescape_header(value)
                if not log.separator:
                    raise ZeekLogError(f"{where(lineno)}: empty #separator")
                continue
            key, _, value = line[1:].partition(log.separator)
            if key == "fields":
                new = value.split(log.separator)
                if fields is not None and new != fields:
                    raise ZeekLogError(f"{where(lineno)}: second #fields line with different columns")
                fields = new
            elif key == "types":
                log.types = value.split(log.separator)
            elif key == "set_separator":
                log.set_separator = _unescape_header(value)
            elif key == "empty_field":
                log.empty_field = value
            elif key == "unset_field":
                log.unset_field = value
            elif key == "path":
                log.path = value
            else:
                log.meta[key] = value
            continue
        cols = line.split(log.separator)
        if fields is None:
            # header-less projection: this line is the column list
            fields = cols
            log.partial = True
            continue
        if len(cols) != len(fields):
            raise ZeekLogError(
                f"{where(lineno)}: {len(cols)} columns, expected {len(fields)} ({' '.join(fields)})"
            )
        if set_cols is None:
            set_cols = _set_columns(fields, log.types, source)
        row: dict[str, object] = {}
        for name, value in zip(fields, cols):
            row[name] = _convert(value, name in set_cols, log)
        log.rows.append(row)

    if fields is None:
        raise ZeekLogError(f"{source}: no column list (#fields line or zeek-cut header)")
    if len(set(fields)) != len(fields):
        raise ZeekLogError(f"{source}: duplicate column names: {fields}")
    if log.types is not None and len(log.types) != len(fields):
        raise ZeekLogError(f"{source}: #types has {len(log.types)} entries for {len(fields)} fields")
    log.fields = fields
    return log


def _set_columns(fields: list[str], types: list[str] | None, source: str) -> set[str]:
    if types is not None:
        if len(types) != len(fields):
            raise ZeekLogError(f"{source}: #types has {len(types)} entries for {len(fields)} fields")
        return {f for f, t in zip(fields, types) if t.startswith(("set[", "vector["))}
    return {f for f in fields if f in SET_FIELDS}


def _convert(value: str, is_set: bool, log: ZeekLog) -> object:
    if value == log.unset_field:
        return None
    if value == log.empty_field:
        return () if is_set else ""
    if is_set:
        return tuple(value.split(log.set_separator))
    return value


def parse_log(path: str | Path) -> ZeekLog:
    path = Path(path)
    return parse_text(path.read_text(encoding="utf-8", errors="surrogateescape"), source=str(path))
