"""`sniffer sockets --conntrack` for people: one row per conntrack entry, both tuples shown.

The same style as `sniffer sockets` (sniffer/output/sockets.py): a rich table on a terminal,
plain aligned text when piped; an address:port is never split. Namespace names are chosen by
whoever made them, so every cell is escaped.
"""

from __future__ import annotations

from typing import TextIO

from sniffer.kernel.conntrack import CtEntry, CtTuple
from sniffer.output.safe import escape_controls
from sniffer.output.sockets import endpoint, text_table

#: Status flags the text leaves out: CONFIRMED is every listed entry, SEEN_REPLY is said the
#: other way round (UNREPLIED, as conntrack -L does), and the NAT bits have their own column.
QUIET_STATUS = frozenset({"CONFIRMED", "SEEN_REPLY", "SRC_NAT", "DST_NAT", "SRC_NAT_DONE",
                          "DST_NAT_DONE"})


def _end(t: CtTuple, addr: str, port: int | None, proto: str, numeric: bool) -> str:
    if t.icmp is not None or port is None:
        return f"[{addr}]" if ":" in addr else addr
    return endpoint(addr, port, proto, numeric, False)


def _flags(e: CtEntry) -> str:
    names = ([] if "SEEN_REPLY" in e.status else ["UNREPLIED"]) + [
        s for s in e.status if s not in QUIET_STATUS]
    return ",".join(names) or "-"


def _icmp(t: CtTuple) -> str:
    return f"type={t.icmp[0]} code={t.icmp[1]} id={t.icmp[2]}" if t.icmp else ""


def _row(e: CtEntry, numeric: bool) -> dict[str, str]:
    proto = e.proto + ("6" if e.family == 6 and e.proto not in ("icmpv6",) else "")
    c = e.counters
    return {
        "Proto": proto,
        "Timeout": "-" if e.timeout is None else str(e.timeout),
        "State": e.state or "-",
        "Source": _end(e.orig, e.orig.src, e.orig.sport, e.proto, numeric),
        "Destination": _end(e.orig, e.orig.dst, e.orig.dport, e.proto, numeric),
        "Reply Source": _end(e.reply, e.reply.src, e.reply.sport, e.proto, numeric),
        "Reply Destination": _end(e.reply, e.reply.dst, e.reply.dport, e.proto, numeric),
        "NAT": e.nat or "-",
        "Flags": _flags(e),
        "ICMP": _icmp(e.orig) or "-",
        "Mark": str(e.mark),
        "Zone": str(e.zone),
        "Packets": f"{c['orig_packets']}/{c['reply_packets']}" if c else "-",
        "Bytes": f"{c['orig_bytes']}/{c['reply_bytes']}" if c else "-",
        "Netns": e.netns,
    }


HEADERS = ("Proto", "Timeout", "State", "Source", "Destination", "Reply Source",
           "Reply Destination", "NAT", "Flags", "ICMP", "Mark", "Zone", "Packets", "Bytes",
           "Netns")
RIGHT = frozenset({"Timeout", "Mark", "Zone", "Packets", "Bytes"})


def headers(rows: list[CtEntry], show_netns: bool) -> tuple[str, ...]:
    """The columns worth showing: ICMP, Zone and the counters only when some entry has them."""
    skip = set()
    if not any(e.orig.icmp for e in rows):
        skip.add("ICMP")
    if not any(e.zone for e in rows):
        skip.add("Zone")
    if not any(e.counters for e in rows):
        skip |= {"Packets", "Bytes"}
    if not show_netns:
        skip.add("Netns")
    return tuple(h for h in HEADERS if h not in skip)


def render(rows: list[CtEntry], out: TextIO, *, numeric: bool, show_netns: bool) -> None:
    names = headers(rows, show_netns)
    table = [tuple(escape_controls(r[h]) for h in names) for r in (_row(e, numeric) for e in rows)]
    if out.isatty():
        _rich(names, table, out)
    else:
        text_table(names, table, out, RIGHT)


STACKED = ("Source\n→ Reply Destination", "Destination\n→ Reply Source")


def _rich(names: tuple[str, ...], table: list[tuple[str, ...]], out: TextIO) -> None:
    from rich.console import Console

    from sniffer.output.console import (Column, drop, fit, fitted_table, lines, literal,
                                        reductions, stack)
    # What the table leaves out first as the terminal narrows: the counters, mark and zone,
    # the ICMP ids, the timeout; then the reply tuple goes under the original one, then the
    # flags, the namespace, the state. An address:port is never split.
    stacked = (stack("Source", "Reply Destination", STACKED[0]),
               stack("Destination", "Reply Source", STACKED[1]))
    steps = (drop("Packets", "Bytes"), drop("Mark", "Zone"), drop("ICMP"), drop("Timeout"),
             lambda layout: stacked[1](stacked[0](layout)), drop("Flags"), drop("Netns"),
             drop("State"))
    columns = {h: Column(h, [literal(r[i]) for r in table], "right" if h in RIGHT else "left")
               for i, h in enumerate(names)}
    at = names.index
    columns[STACKED[0]] = Column(STACKED[0], [
        lines(r[at("Source")], "→ " + r[at("Reply Destination")]) for r in table])
    columns[STACKED[1]] = Column(STACKED[1], [
        lines(r[at("Destination")], "→ " + r[at("Reply Source")]) for r in table])
    console = Console(file=out, highlight=False, markup=False, emoji=False)
    chosen = fit(columns, reductions(names, steps), console.width)
    console.print(fitted_table(columns, chosen, box=None, header_style="bold", pad_edge=False))
