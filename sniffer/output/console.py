"""Human output for ``--format table``: a summary and a connection table, plus a progress bar.

Why so careful with text: addresses, histories, services and stats names can carry bytes chosen
by whoever sent the packets or wrote the file. Everything that did not come from this module is
wrapped in a rich `Text` (never parsed as markup) after control and format characters are
escaped, so a crafted "[red]" or ESC sequence is shown, not obeyed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from sniffer.flows.conn import Conn
from sniffer.output.safe import escape_controls

#: Short meanings of Zeek's conn_state values (scripts/base/protocols/conn/main.zeek).
STATE_MEANINGS: dict[str, str] = {
    "S0": "attempt, no reply",
    "S1": "established, not closed",
    "SF": "normal establish and close",
    "REJ": "attempt rejected",
    "S2": "established, orig close only",
    "S3": "established, resp close only",
    "RSTO": "orig aborted (RST)",
    "RSTR": "resp sent RST",
    "RSTOS0": "orig SYN then RST",
    "RSTRH": "resp SYN-ACK then RST",
    "SH": "orig SYN then FIN",
    "SHR": "resp SYN-ACK then FIN",
    "OTH": "no SYN / not TCP",
}

STATE_STYLES: dict[str, str] = {
    "SF": "green", "S1": "green", "S0": "yellow", "REJ": "red", "RSTO": "magenta",
    "RSTR": "magenta", "RSTOS0": "magenta", "RSTRH": "magenta", "SH": "yellow",
    "SHR": "yellow", "S2": "cyan", "S3": "cyan", "OTH": "dim",
}

#: Verdicts of the kernel cross-reference (sniffer.correlate): colour, and what each means.
VERDICT_STYLE = {"attributed": "green", "kernel": "cyan", "refused": "yellow",
                 "unattributed": "bold red", "not-local": "dim", "unknown": "magenta",
                 "forwarded": "blue", "not-tracked": "bold red"}
VERDICT_MEANINGS: dict[str, str] = {
    "attributed": "a process's socket",
    "kernel": "held by the kernel",
    "refused": "no socket, refused",
    "unattributed": "traffic, no socket",
    "not-local": "neither end local",
    "forwarded": "conntrack: forwarded",
    "not-tracked": "conntrack never saw it",
    "unknown": "too little evidence",
}

#: Stats names that are totals, not skipped or damaged input.
TOTAL_KEYS = ("packets", "bytes")

#: Cells between two columns of every table here (padding plus divider, or two paddings).
GAP = 2


def literal(value: object, style: str = "") -> Text:
    """`value` as text that rich shows verbatim: no markup, no emoji codes, controls escaped."""
    return Text(escape_controls(str(value)), style=style, no_wrap=False)


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; short enough for a narrow table column."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def short_bytes(n: int | None) -> str:
    """1536 -> '1.5K': for the combined bytes column of a narrow table."""
    if n is None:
        return "-"
    if n < 1000:
        return str(n)
    value = float(n)
    for unit in ("K", "M", "G", "T"):
        value /= 1024
        if value < 999.5 or unit == "T":
            return f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
    return str(n)  # pragma: no cover


def human_duration(d: float | None) -> str:
    """Seconds as '-', '850ms', '12.3s', '4m05s' or '2h03m'."""
    if d is None:
        return "-"
    if d < 1:
        return f"{d * 1000:.0f}ms" if d >= 0.001 else f"{d * 1e6:.0f}µs"
    if d < 60:
        return f"{d:.1f}s"
    if d < 3600:
        return f"{int(d // 60)}m{int(d % 60):02d}s"
    return f"{int(d // 3600)}h{int(d % 3600 // 60):02d}m"


def endpoint(host: str, port: int, proto: str) -> str:
    """``host:port`` with IPv6 in brackets; port-less transports show the host only."""
    h = f"[{host}]" if ":" in host else host
    return h if proto == "unknown_transport" else f"{h}:{port}"


def lines(*parts: str, style: str = "") -> Text:
    """Several literal values, one per line of a cell (each line is kept whole)."""
    return Text("\n").join(literal(p, style) for p in parts) if parts else literal("-", style)


def programs(processes: Sequence[Mapping] | None) -> Text:
    """``pid/name`` of each process, one per line: a name may hold commas or spaces."""
    return lines(*(f"{p['pid']}/{p['name']}" for p in processes or ()))


@dataclass(slots=True)
class Column:
    """One column a table may show. A cell is never split (an address:port, a pid/program,
    a number): the column is as wide as its widest line, or left out."""

    header: str
    cells: list[Text]
    justify: str = "left"
    max_width: int | None = None  # free text (a history) longer than this is folded

    def need(self) -> int:
        """Cells this column takes on screen without splitting what must stay whole."""
        widest = max([cell_len(h) for h in self.header.split("\n")]
                     + [cell_len(line) for cell in self.cells for line in cell.plain.split("\n")])
        return widest if self.max_width is None else min(widest, self.max_width)


def fit(columns: Mapping[str, Column], layouts: Sequence[Sequence[str]], width: int) -> list[str]:
    """The first layout (column names, richest first; names not in `columns` are skipped)
    whose columns fit in `width` without splitting a cell; the last one if none does."""
    need = {name: col.need() for name, col in columns.items()}
    chosen: list[str] = []
    for layout in layouts:
        chosen = [name for name in layout if name in columns]
        if sum(need[n] for n in chosen) + GAP * (len(chosen) - 1) <= width:
            break
    return chosen


def reductions(full: Sequence[str], steps: Sequence[Callable[[list[str]], list[str]]]
               ) -> list[list[str]]:
    """`full`, then `full` with the first step applied, the first two, ...: layouts for `fit`."""
    out = [list(full)]
    for step in steps:
        out.append(step(list(out[-1])))
    return out


def drop(*names: str) -> Callable[[list[str]], list[str]]:
    """A reduction step: leave out these columns."""
    return lambda layout: [n for n in layout if n not in names]


def swap(old: str, *new: str) -> Callable[[list[str]], list[str]]:
    """A reduction step: show `old` in a shorter form (one or more columns in its place)."""
    def step(layout: list[str]) -> list[str]:
        return [m for n in layout for m in (new if n == old else (n,))]
    return step


def stack(top: str, under: str, both: str) -> Callable[[list[str]], list[str]]:
    """A reduction step: column `under` goes beneath `top`, the two shown as one column
    `both` (two lines a row)."""
    return lambda layout: [both if n == top else n for n in layout if n != under]


def fitted_table(columns: Mapping[str, Column], names: Sequence[str], **table_args) -> Table:
    """A rich Table of the named columns; cells that must stay whole are `no_wrap`."""
    table = Table(**table_args)
    for name in names:
        col = columns[name]
        table.add_column(Text(col.header), justify=col.justify,  # type: ignore[arg-type]
                         no_wrap=col.max_width is None, overflow="fold",
                         max_width=col.max_width)
    rows = len(next(iter(columns.values())).cells) if columns else 0
    for i in range(rows):
        table.add_row(*(columns[n].cells[i] for n in names))
    return table


def _utc(ts: float, wide: bool) -> str:
    """Packet time in UTC; a timestamp no calendar can show (corrupt file) stays a number."""
    try:
        dt = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6f}"
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if wide else dt.strftime("%H:%M:%S.%f")[:-3]


def _count_table(title: str, headers: tuple[str, ...], rows: Sequence[Sequence[object]],
                 styles: Mapping[int, Callable[[object], str]] | None = None,
                 empty: str = "none") -> RenderableType:
    """A small summary table; column 0 is left-aligned, the rest right-aligned numbers.
    Without rows, the title and `empty` (a table of headers only says nothing)."""
    if not rows:
        return Group(Text(title, style="bold"), Text(empty, style="dim"))
    # At least as wide as its title, so the title never wraps over a narrow table.
    table = Table(title=title, title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, padding=(0, 1, 0, 0), expand=False, min_width=len(title))
    for i, h in enumerate(headers):
        # column 0 holds a host, a state or an event name: kept whole
        table.add_column(h, justify="left" if i == 0 or h == "meaning" else "right",
                         no_wrap=i == 0)
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            style = styles[i](v) if styles and i in styles else ""
            cells.append(literal(v, style))
        table.add_row(*cells)
    return table


def summary(conns: list[Conn], stats: Mapping[str, int], width: int) -> RenderableType:
    """Connections by state and protocol, top talkers, input totals, skipped/damaged input."""
    by_state = Counter(c.conn_state for c in conns)
    state_rows: list[tuple[object, ...]] = []
    for state, n in by_state.most_common():
        meaning = STATE_MEANINGS.get(state, "")
        state_rows.append((state, n, meaning) if width >= 100 else (state, n))
    state_headers = ("state", "conns", "meaning") if width >= 100 else ("state", "conns")

    proto_conns: Counter[str] = Counter()
    proto_pkts: Counter[str] = Counter()
    proto_bytes: Counter[str] = Counter()
    talker_bytes: Counter[str] = Counter()
    talker_conns: Counter[str] = Counter()
    for c in conns:
        proto_conns[c.proto] += 1
        proto_pkts[c.proto] += c.orig_pkts + c.resp_pkts
        proto_bytes[c.proto] += c.orig_ip_bytes + c.resp_ip_bytes
        # a host talking to itself (both ends) counts once for that host
        for host in {c.orig_h, c.resp_h}:
            talker_bytes[host] += c.orig_ip_bytes + c.resp_ip_bytes
            talker_conns[host] += 1
    proto_rows = [(p.replace("unknown_transport", "other"), n, proto_pkts[p],
                   human_bytes(proto_bytes[p]))
                  for p, n in proto_conns.most_common()]
    top = 10 if width >= 100 else 5
    talker_rows = [(h, talker_conns[h], human_bytes(b))
                   for h, b in sorted(talker_bytes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]

    input_rows: list[tuple[object, ...]] = [("connections", len(conns))]
    if "packets" in stats:
        input_rows.append(("packets", stats["packets"]))
    if "bytes" in stats:
        input_rows.append(("bytes", human_bytes(stats["bytes"])))
    skipped = sorted(((k, n) for k, n in stats.items()
                      if k not in TOTAL_KEYS and n and not str(k).startswith("alert")),
                     key=lambda kv: (-kv[1], str(kv[0])))
    # Detector alerts (sniffer.detect): `alert:<kind>` counts, and `alerts_dropped` past the cap.
    alert_rows = sorted(((str(k)[6:], n) for k, n in stats.items()
                         if str(k).startswith("alert:") and n),
                        key=lambda kv: (-kv[1], kv[0]))
    if stats.get("alerts_dropped"):
        alert_rows.append(("(dropped past the cap)", stats["alerts_dropped"]))

    def state_style(v: object) -> str:
        return STATE_STYLES.get(str(v), "")

    parts: list[RenderableType] = [
        _count_table("Input", ("", "total"), input_rows),
        _count_table("By state", state_headers, state_rows, {0: state_style},
                     empty="no connections"),
        _count_table("By protocol", ("proto", "conns", "pkts", "IP bytes"), proto_rows,
                     empty="no connections"),
        _count_table(f"Top {top} talkers", ("host", "conns", "IP bytes"), talker_rows,
                     empty="no connections"),
    ]
    # Records of `live`, or `read` of a `live -w` recording, carry the kernel's verdict.
    by_verdict = Counter(c.verdict for c in conns if c.verdict)
    if by_verdict:
        verdict_rows = [(v, n, VERDICT_MEANINGS.get(v, "")) if width >= 100 else (v, n)
                        for v, n in by_verdict.most_common()]
        verdict_headers = ("verdict", "conns", "meaning") if width >= 100 else ("verdict", "conns")
        parts.append(_count_table("By verdict", verdict_headers, verdict_rows,
                                  {0: lambda v: VERDICT_STYLE.get(str(v), "")}))
    if alert_rows:
        parts.append(_count_table("Alerts", ("kind", "alerts"), alert_rows,
                                  {0: lambda _v: "red"}))
    if skipped:
        parts.append(_count_table("Skipped or damaged", ("event", "count"), list(skipped),
                                  {0: lambda _v: "yellow"}))
    else:
        parts.append(Group(Text("Skipped or damaged", style="bold"),
                           Text("nothing skipped", style="green")))
    return Columns(parts, padding=(1, 3), equal=False, expand=False)


def _proto_label(c: Conn) -> str:
    """Zeek's proto, with the IP protocol number for the catch-all ``unknown_transport``."""
    return f"ip/{c.ip_proto}" if c.proto == "unknown_transport" else c.proto


#: The connection table's columns, left to right, when the console is wide enough.
CONN_COLUMNS = ("start", "proto", "originator", "responder", "state", "history", "dur",
                "orig bytes", "resp bytes", "pkts", "verdict", "process", "uid")

#: What goes first as the console narrows (docs/read.md): an address:port or a pid/program is
#: never split; when even the two endpoints do not fit side by side, the responder goes under
#: the originator and the steps start again.
CONN_STEPS_SIDE = (drop("uid"), drop("pkts"), swap("start", "time"),
                   swap("orig bytes", "bytes"), swap("resp bytes"), drop("dur"),
                   drop("time"), drop("history"), drop("bytes"))
CONN_STEPS_STACKED = CONN_STEPS_SIDE + (drop("state"), drop("process"), drop("verdict"),
                                        drop("proto"))


def _conn_columns(shown: Sequence[Conn]) -> dict[str, Column]:
    """Every column the connection table may show, for these rows; verdict and process only
    when the records carry them (`live`, or `read` of a `live -w` recording)."""
    orig = [endpoint(c.orig_h, c.orig_p, c.proto) for c in shown]
    resp = [endpoint(c.resp_h, c.resp_p, c.proto) for c in shown]
    cols = {
        "start": Column("start", [literal(_utc(c.ts, True), "dim") for c in shown]),
        "time": Column("time", [literal(_utc(c.ts, False), "dim") for c in shown]),
        "proto": Column("proto", [literal(_proto_label(c)) for c in shown]),
        "originator": Column("originator", [literal(o) for o in orig]),
        "responder": Column("responder", [literal(r) for r in resp]),
        "ends": Column("originator\n→ responder",
                       [lines(o, f"→ {r}") for o, r in zip(orig, resp)]),
        "state": Column("state", [literal(c.conn_state, STATE_STYLES.get(c.conn_state, ""))
                                  for c in shown]),
        "history": Column("history", [literal(c.history or "-") for c in shown],
                          max_width=12),
        "dur": Column("dur", [literal(human_duration(c.duration)) for c in shown], "right"),
        "orig bytes": Column("orig bytes", [literal(human_bytes(c.orig_bytes)) for c in shown],
                             "right"),
        "resp bytes": Column("resp bytes", [literal(human_bytes(c.resp_bytes)) for c in shown],
                             "right"),
        "bytes": Column("bytes o/r", [literal(f"{short_bytes(c.orig_bytes)}/"
                                              f"{short_bytes(c.resp_bytes)}"
                                              if c.orig_bytes is not None else "-")
                                      for c in shown], "right"),
        "pkts": Column("pkts o/r", [literal(f"{c.orig_pkts}/{c.resp_pkts}") for c in shown],
                       "right"),
        "uid": Column("uid", [literal(c.uid, "dim") for c in shown]),
    }
    if any(c.verdict for c in shown):
        cols["verdict"] = Column("verdict", [literal(c.verdict or "-",
                                                     VERDICT_STYLE.get(c.verdict or "", ""))
                                             for c in shown])
    if any(c.processes for c in shown):
        cols["process"] = Column("process", [programs(c.processes) for c in shown])
    return cols


def conn_layouts() -> list[list[str]]:
    """The connection table's layouts for `fit`, richest first (see CONN_STEPS_SIDE)."""
    side = reductions(CONN_COLUMNS, CONN_STEPS_SIDE)
    stacked = [["ends" if n == "originator" else n for n in CONN_COLUMNS if n != "responder"]]
    return side + reductions(stacked[0], CONN_STEPS_STACKED)


def conn_table(conns: list[Conn], width: int, max_rows: int | None = None) -> Table:
    """One row per connection, with the columns that fit in `width` (see CONN_STEPS_SIDE).
    Times are shown to the millisecond; the exact values are in the zeek/json outputs."""
    shown = conns if max_rows is None else conns[:max_rows]
    title = f"Connections ({len(conns)})"
    if len(shown) < len(conns):
        title += f", first {len(shown)} shown"
    columns = _conn_columns(shown)
    names = fit(columns, conn_layouts(), width)
    timed = "start" in names or "time" in names
    return fitted_table(columns, names, title=title, title_style="bold",
                        caption="times UTC" if timed else None, box=box.SIMPLE_HEAD,
                        show_edge=False, pad_edge=False, header_style="bold",
                        padding=(0, 1, 0, 0), expand=False)


def render(conns: list[Conn], stats: Mapping[str, int], console: Console, *,
           max_rows: int | None = 1000) -> None:
    """Print the summary, then the connection table (at most `max_rows` rows; None = all)."""
    width = console.width
    console.print(summary(conns, stats, width))
    from sniffer.stats import checksum_warning  # many bad checksums: say why, name -C
    warning = checksum_warning(stats)
    if warning:
        console.print(Text(warning, style="yellow"))
    console.print()
    if conns:
        console.print(conn_table(conns, width, max_rows))
        if max_rows is not None and len(conns) > max_rows:
            console.print(Text(f"... {len(conns) - max_rows} more connections not shown "
                               "(use --format zeek or json for all)", style="dim"))
    else:
        console.print(Text("no connections", style="dim"))


@contextmanager
def progress(total_bytes: int | None, *, description: str = "reading",
             console: Console | None = None, min_total: int = 0,
             step: int = 1 << 20) -> Iterator[Callable[[int], None]]:
    """``with progress(size) as advance: advance(n)`` -- a byte progress bar on stderr.

    Shown only when stderr (or the given console) is a terminal and `total_bytes` is unknown
    (None, e.g. stdin) or at least `min_total`; otherwise `advance` is a no-op. `advance` only
    adds to a local counter and pushes to rich every `step` bytes, so calling it per packet
    stays cheap. The bar disappears when the block ends.
    """
    con = console or Console(stderr=True)
    if not con.is_terminal or (total_bytes is not None and total_bytes < min_total):
        yield _noop
        return
    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(), console=con, transient=True)
    task = bar.add_task(escape_controls(description), total=total_bytes)
    pending = 0

    def advance(n: int) -> None:
        nonlocal pending
        pending += n
        if pending >= step:
            bar.advance(task, pending)
            pending = 0

    with bar:
        try:
            yield advance
        finally:
            if pending:
                bar.advance(task, pending)


def _noop(n: int) -> None:
    """`advance` when no bar is shown."""
