"""`sniffer sockets` for people: netstat's columns, as a rich table on a terminal, else text.

Process names are chosen by whoever starts a process, so every value is printed literally:
rich markup is never interpreted and control characters are escaped.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from typing import TextIO

from sniffer.kernel.view import KernelSocket
from sniffer.output.safe import escape_controls

HEADERS = ("Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State", "User",
           "PID/Program name", "Netns")


@lru_cache(maxsize=4096)
def _service(port: int, proto: str) -> str:
    try:
        return socket.getservbyport(port, "udp" if proto in ("udp", "udplite") else "tcp")
    except OSError:
        return str(port)


def endpoint(addr: str, port: int, proto: str, numeric: bool, remote: bool) -> str:
    host = f"[{addr}]" if ":" in addr else addr
    if port == 0 and (remote or proto in ("raw", "icmp")):
        return f"{host}:*"
    if numeric or proto in ("raw", "icmp"):
        return f"{host}:{port}"
    return f"{host}:{_service(port, proto)}"


def _proto(s: KernelSocket) -> str:
    return s.proto + ("6" if s.family == 6 else "")


def _programs(s: KernelSocket) -> str:
    if s.processes:
        return ",".join(f"{p['pid']}/{p['name']}" for p in s.processes)
    return "-" if s.owner in ("process", "unknown") else f"- ({s.owner})"


def _row(s: KernelSocket, numeric: bool) -> tuple[str, ...]:
    return (_proto(s), str(s.recv_q), str(s.send_q),
            endpoint(s.local_addr, s.local_port, s.proto, numeric, False),
            endpoint(s.remote_addr, s.remote_port, s.proto, numeric, True),
            s.state, s.user, _programs(s), s.netns)


def render(rows: list[KernelSocket], out: TextIO, *, numeric: bool, processes: bool,
           show_netns: bool) -> None:
    keep = [i for i in range(len(HEADERS))
            if (processes or HEADERS[i] != "PID/Program name") and (show_netns or HEADERS[i] != "Netns")]
    table = [tuple(r[i] for i in keep) for r in (_row(s, numeric) for s in rows)]
    headers = tuple(HEADERS[i] for i in keep)
    if out.isatty():
        _rich(headers, table, out, [s.processes for s in rows])
    else:
        text_table(headers, table, out, QUEUES)


def text_table(headers: tuple[str, ...], table: list[tuple[str, ...]], out: TextIO,
               right: frozenset[str] = frozenset()) -> None:
    """Plain aligned columns for a pipe: the `right` ones right-aligned (numbers, as netstat
    prints its queues), the last one unpadded."""
    # Each cell escaped before the widths are measured: a name with ESC or a newline stays
    # one line, sends nothing to a terminal reading the pipe, and keeps the columns aligned.
    table = [r if "".join(r).isprintable() else tuple(escape_controls(c) for c in r)
             for r in table]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]
    fmt = " ".join(("{:>%d}" if h in right else "{:<%d}") % w if i < len(widths) - 1 else "{}"
                   for i, (h, w) in enumerate(zip(headers, widths))).format
    out.write("\n".join([fmt(*headers)] + [fmt(*r) for r in table]) + "\n")


QUEUES = frozenset({"Recv-Q", "Send-Q"})  # right-aligned, as netstat prints them
STACKED = "Local Address\n→ Foreign Address"


def _rich(headers: tuple[str, ...], table: list[tuple[str, ...]], out: TextIO,
          processes: list[list[dict] | None]) -> None:
    from rich.console import Console

    from sniffer.output.console import (Column, drop, fit, fitted_table, lines, literal,
                                        programs, reductions, stack)
    # What the table leaves out first as the terminal narrows (docs/sockets.md): the queues,
    # the user; then the foreign address goes under the local one and the steps go on with
    # the namespace, the state, the protocol. An address:port or a pid/program is never split.
    steps = (drop("Recv-Q", "Send-Q"), drop("User"),
             stack("Local Address", "Foreign Address", STACKED), drop("Netns"), drop("State"),
             drop("Proto"), drop("PID/Program name"))
    cells = {h: [literal(r[i]) for r in table] for i, h in enumerate(headers)}
    if "PID/Program name" in cells:  # one pid/program a line: a name may hold a comma
        cells["PID/Program name"] = [programs(p) if p else cell
                                     for p, cell in zip(processes, cells["PID/Program name"])]
    columns = {h: Column(h, cells[h], "right" if h in QUEUES else "left")
               for h in headers}
    columns[STACKED] = Column(STACKED, [
        lines(r[headers.index("Local Address")], "→ " + r[headers.index("Foreign Address")])
        for r in table])
    console = Console(file=out, highlight=False, markup=False, emoji=False)
    names = fit(columns, reductions(headers, steps), console.width)
    # Every cell is a `literal` Text (controls escaped, never parsed as markup); markup and
    # highlighting are off as well, so nothing added later as a plain string is restyled.
    console.print(fitted_table(columns, names, box=None, header_style="bold", pad_edge=False))


def watch_time(ts: float) -> str:
    """A watch line's time: local date and time to the millisecond (JSON has the epoch)."""
    import time
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def watch_line(event: str, rec: dict, *, numeric: bool, ts: float | None = None) -> str:
    """One line per watch event, for people (starting with its time when `ts` is given)."""
    when = f"{watch_time(ts)} " if ts is not None else ""
    if event in ("watching", "resync", "netns-new", "netns-gone"):
        return when + f"{event}: " + escape_controls(" ".join(f"{k}={v}" for k, v in rec.items()))
    local = endpoint(rec["local_addr"], rec["local_port"], rec["proto"], numeric, False)
    remote = endpoint(rec["remote_addr"], rec["remote_port"], rec["proto"], numeric, True)
    procs = ",".join(f"{p['pid']}/{p['name']}" for p in rec.get("processes") or []) or "-"
    extra = ""
    if "bytes_received" in rec:
        extra = f" rx={rec['bytes_received']} tx={rec.get('bytes_acked', 0)}"
    return when + escape_controls(f"{event:8} {rec['proto']:7} {local:>28} {remote:<28} "
                                  f"{rec['state']:12} {procs} [{rec['netns']}]{extra}")
