"""Compare a produced conn.log against an expected Zeek conn.log.

Implements the rules of ``shared/corpus/zeek/README.md``, section "How a log is compared":

* Rows are grouped by transport protocol (for ``unknown_transport`` also ``ip_proto``) and the
  unordered endpoint pair ``{orig_h:orig_p, resp_h:resp_p}``, using only the columns the expected
  log has (a ``zeek-cut`` projection without ``proto``/``id.*`` columns puts all rows in one
  group). Within a group the expected rows are taken in creation order (uid -> index from
  ``UID_SEQUENCE.txt``) and the produced rows in ``ts`` order, and paired in that order. Missing
  and extra rows count as mismatches.
* Compared, where the expected log has the column: the orientation (the same side must be the
  originator), ``proto``, ``duration`` (equal when both round to the same 6 decimals; unset only
  equals unset), ``orig_bytes``, ``resp_bytes``, ``conn_state``, ``local_orig``, ``local_resp``,
  ``missed_bytes``, ``history``, ``orig_pkts``, ``orig_ip_bytes``, ``resp_pkts``,
  ``resp_ip_bytes``, ``ip_proto`` and ``tunnel_parents``.
* ``tunnel_parents`` is compared structurally: a parent uid is replaced by the (expected) row it
  names in the same log -- for the produced log, the expected row its named row was paired with;
  uids that have no row of their own are anonymous labels numbered in order of first appearance
  (separately in each log, walking the paired rows in the expected rows' creation order).
* Not compared: ``ts``, ``uid``, ``service`` and any other column.

Row values are those of :mod:`zeeklog` (strings, ``None`` for unset, tuples for sets).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

ID_FIELDS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")

#: compared columns (besides the orientation), in the order differences are listed
COMPARED_FIELDS = (
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "ip_proto",
    "tunnel_parents",
)

COUNT_FIELDS = frozenset(
    {"orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "ip_proto"}
)

NOT_COMPARED = ("ts", "uid", "service")


class _Missing:
    """Marker for a column that the produced log does not have."""

    def __repr__(self) -> str:
        return "<no such column>"


MISSING = _Missing()


# --------------------------------------------------------------------------- uid index


def load_uid_index(path: str | Path) -> dict[str, int]:
    """Read ``UID_SEQUENCE.txt`` (``index<TAB>uid`` lines, ``#`` comments) into uid -> index."""
    index: dict[str, int] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        num, uid = line.split("\t")
        index[uid.strip()] = int(num)
    return index


# --------------------------------------------------------------------------- results


@dataclass
class FieldDiff:
    name: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.name}: expected {self.expected}, got {self.got}"


@dataclass
class RowDiff:
    kind: str  # "mismatch", "missing" (expected row without produced row) or "extra"
    where: str  # readable 5-tuple (+ uid) of the row
    fields: list[FieldDiff] = field(default_factory=list)

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"MISSING  {self.where}: expected row has no produced counterpart"
        if self.kind == "extra":
            return f"EXTRA    {self.where}: produced row has no expected counterpart"
        lines = [f"MISMATCH {self.where}"]
        lines += [f"    {d}" for d in self.fields]
        return "\n".join(lines)


@dataclass
class Result:
    matched: int  # expected rows whose paired produced row has all compared fields equal
    total: int  # expected rows + extra produced rows
    n_expected: int
    n_produced: int
    compared: list[str]  # what was compared ("orientation" + column names)
    diffs: list[RowDiff] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.matched == self.total and not self.diffs

    def summary(self) -> str:
        return f"{self.matched}/{self.total} rows match ({self.n_expected} expected, {self.n_produced} produced)"

    def report(self, limit: int | None = None) -> str:
        lines = [self.summary()]
        lines += [f"warning: {w}" for w in self.warnings]
        shown = self.diffs if limit is None else self.diffs[:limit]
        lines += [str(d) for d in shown]
        if len(shown) < len(self.diffs):
            lines.append(f"... {len(self.diffs) - len(shown)} more differing rows")
        return "\n".join(lines)

    __str__ = report


# --------------------------------------------------------------------------- normalisation


def _norm_addr(value: object) -> object:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            return value
    return value


def _norm_port(value: object) -> object:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _norm_scalar(name: str, value: object) -> object:
    if value is None or value is MISSING:
        return value
    if name == "duration" and isinstance(value, str):
        try:
            return format(float(value), ".6f")
        except ValueError:
            return value
    if name in COUNT_FIELDS and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _show(value: object) -> str:
    if value is None:
        return "-"
    if value is MISSING:
        return "<no such column>"
    if isinstance(value, tuple):
        return ",".join(value) if value else "(empty)"
    if value == "":
        return "(empty)"
    return str(value)


def _show_ep(row: dict, side: str) -> str:
    """``host:port`` (``[v6]:port``) of one side of a row, for messages."""
    host = _show(row.get(f"id.{side}_h", MISSING))
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{_show(row.get(f'id.{side}_p', MISSING))}"


def _endpoint(row: dict, side: str) -> tuple:
    return (_norm_addr(row.get(f"id.{side}_h", MISSING)), _norm_port(row.get(f"id.{side}_p", MISSING)))


def _describe(row: dict, uid_index: dict[str, int] | None = None) -> str:
    parts = []
    if "proto" in row:
        proto = _show(row["proto"])
        if row.get("proto") == "unknown_transport" and "ip_proto" in row:
            proto += f"({_show(row['ip_proto'])})"
        parts.append(proto)
    if all(f in row for f in ID_FIELDS):
        parts.append(f"{_show_ep(row, 'orig')} -> {_show_ep(row, 'resp')}")
    uid = row.get("uid")
    if isinstance(uid, str):
        if uid_index is not None and uid in uid_index:
            parts.append(f"[uid {uid}, created #{uid_index[uid]}]")
        else:
            parts.append(f"[uid {uid}]")
    return " ".join(parts) if parts else "<row>"


# --------------------------------------------------------------------------- comparison


def compare(
    expected_rows: list[dict],
    expected_fields: list[str],
    produced_rows: list[dict],
    uid_index: dict[str, int],
) -> Result:
    fields = set(expected_fields)
    has_ids = all(f in fields for f in ID_FIELDS)
    has_proto = "proto" in fields
    has_ip_proto = "ip_proto" in fields
    compared = (["orientation"] if has_ids else [f for f in ID_FIELDS if f in fields]) + [
        f for f in COMPARED_FIELDS if f in fields
    ]
    warnings: list[str] = []

    def key(row: dict) -> tuple:
        k: tuple = ()
        if has_proto:
            proto = row.get("proto", MISSING)
            k += (proto,)
            if proto == "unknown_transport" and has_ip_proto:
                k += (_norm_port(row.get("ip_proto", MISSING)),)
        if has_ids:
            k += (frozenset((_endpoint(row, "orig"), _endpoint(row, "resp"))),)
        return k

    # expected rows in creation order; rows whose uid is not in the sequence go last, in file order
    unknown = [r.get("uid") for r in expected_rows if r.get("uid") not in uid_index]
    if unknown:
        warnings.append(
            f"{len(unknown)} expected row(s) have a uid not in UID_SEQUENCE.txt (ordered by file position): "
            + ", ".join(_show(u) for u in unknown[:5])
        )
    big = len(uid_index) + 1
    exp_order = sorted(
        range(len(expected_rows)), key=lambda i: (uid_index.get(expected_rows[i].get("uid"), big), i)
    )

    # produced rows in ts order; rows without a usable ts go last, in file order
    def ts_key(i: int) -> tuple:
        ts = produced_rows[i].get("ts")
        try:
            return (0, float(ts), i)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return (1, 0.0, i)

    prod_order = sorted(range(len(produced_rows)), key=ts_key)
    if produced_rows and any(ts_key(i)[0] for i in prod_order):
        warnings.append("some produced rows have no numeric ts (ordered by file position)")

    exp_groups: dict[tuple, list[int]] = {}
    for i in exp_order:
        exp_groups.setdefault(key(expected_rows[i]), []).append(i)
    prod_groups: dict[tuple, list[int]] = {}
    for i in prod_order:
        prod_groups.setdefault(key(produced_rows[i]), []).append(i)

    # pairing: expected index -> produced index (or None); produced leftovers are extras
    pair_of_exp: dict[int, int | None] = {}
    exp_of_prod: dict[int, int] = {}
    for k, e_list in exp_groups.items():
        p_list = prod_groups.get(k, [])
        for n, e in enumerate(e_list):
            p = p_list[n] if n < len(p_list) else None
            pair_of_exp[e] = p
            if p is not None:
                exp_of_prod[p] = e
    extras = [p for p in prod_order if p not in exp_of_prod]

    # tunnel_parents canonicalisation (see module docstring)
    exp_uid_row = {r["uid"]: i for i, r in enumerate(expected_rows) if isinstance(r.get("uid"), str)}
    prod_uid_row = {r["uid"]: i for i, r in enumerate(produced_rows) if isinstance(r.get("uid"), str)}
    exp_anon: dict[str, int] = {}
    prod_anon: dict[str, int] = {}

    def canon_exp(value: object) -> object:
        if not isinstance(value, tuple):
            return value
        out = set()
        for uid in value:
            if uid in exp_uid_row:
                out.add(("row", exp_uid_row[uid]))
            else:
                out.add(("anon", exp_anon.setdefault(uid, len(exp_anon) + 1)))
        return frozenset(out)

    def canon_prod(value: object) -> object:
        if not isinstance(value, tuple):
            return value
        out = set()
        for uid in value:
            if uid in prod_uid_row:
                p = prod_uid_row[uid]
                out.add(("row", exp_of_prod[p]) if p in exp_of_prod else ("unmatched", p))
            else:
                out.add(("anon", prod_anon.setdefault(uid, len(prod_anon) + 1)))
        return frozenset(out)

    def show_parents(value: object) -> str:
        if not isinstance(value, frozenset):
            return _show(value)
        if not value:
            return "(empty)"
        items = []
        for kind, n in sorted(value, key=lambda t: (t[0], t[1])):
            if kind == "row":
                items.append(f"<expected row {_describe(expected_rows[n])}>")
            elif kind == "anon":
                items.append(f"<uid without row #{n}>")
            else:
                items.append(f"<unpaired produced row {_describe(produced_rows[n])}>")
        return "{" + ", ".join(items) + "}"

    matched = 0
    diffs: list[RowDiff] = []
    for e in exp_order:
        erow = expected_rows[e]
        p = pair_of_exp[e]
        where = _describe(erow, uid_index)
        if p is None:
            # (its tunnel_parents get no anonymous labels: numbering must advance in step in both logs)
            diffs.append(RowDiff("missing", where))
            continue
        prow = produced_rows[p]
        fdiffs: list[FieldDiff] = []
        if has_ids:
            e_orig, p_orig = _endpoint(erow, "orig"), _endpoint(prow, "orig")
            if e_orig != p_orig:
                fdiffs.append(
                    FieldDiff(
                        "orientation",
                        f"originator {_show_ep(erow, 'orig')}",
                        f"originator {_show_ep(prow, 'orig')}",
                    )
                )
        else:
            for f in ID_FIELDS:
                if f in fields:
                    norm = _norm_addr if f.endswith("_h") else _norm_port
                    ev, pv = erow.get(f), prow.get(f, MISSING)
                    if norm(ev) != norm(pv):
                        fdiffs.append(FieldDiff(f, _show(ev), _show(pv)))
        for f in COMPARED_FIELDS:
            if f not in fields:
                continue
            ev, pv = erow.get(f), prow.get(f, MISSING)
            if f == "tunnel_parents":
                ce, cp = canon_exp(ev), canon_prod(pv)
                if ce != cp:
                    fdiffs.append(FieldDiff(f, show_parents(ce), show_parents(cp)))
                continue
            if _norm_scalar(f, ev) != _norm_scalar(f, pv):
                fdiffs.append(FieldDiff(f, _show(ev), _show(pv)))
        if fdiffs:
            if isinstance(prow.get("uid"), str):
                where += f" (produced uid {prow['uid']})"
            diffs.append(RowDiff("mismatch", where, fdiffs))
        else:
            matched += 1
    for p in extras:
        diffs.append(RowDiff("extra", _describe(produced_rows[p])))

    return Result(
        matched=matched,
        total=len(expected_rows) + len(extras),
        n_expected=len(expected_rows),
        n_produced=len(produced_rows),
        compared=compared,
        diffs=diffs,
        warnings=warnings,
    )
