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

#: Stats names that are totals, not skipped or damaged input.
TOTAL_KEYS = ("packets", "bytes")

#: Below this console width the connection table drops its less important columns.
WIDE = 140


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


def _utc(ts: float, wide: bool) -> str:
    """Packet time in UTC; a timestamp no calendar can show (corrupt file) stays a number."""
    try:
        dt = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6f}"
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if wide else dt.strftime("%H:%M:%S.%f")[:-3]


def _count_table(title: str, headers: tuple[str, ...], rows: Sequence[Sequence[object]],
                 styles: Mapping[int, Callable[[object], str]] | None = None) -> Table:
    """A small summary table; column 0 is left-aligned, the rest right-aligned numbers."""
    table = Table(title=title, title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, padding=(0, 1, 0, 0), expand=False)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 or h == "meaning" else "right")
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
        talker_bytes[c.orig_h] += c.orig_ip_bytes + c.resp_ip_bytes
        talker_bytes[c.resp_h] += c.orig_ip_bytes + c.resp_ip_bytes
        talker_conns[c.orig_h] += 1
        talker_conns[c.resp_h] += 1
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
        _count_table("By state", state_headers, state_rows, {0: state_style}),
        _count_table("By protocol", ("proto", "conns", "pkts", "IP bytes"), proto_rows),
        _count_table(f"Top {top} talkers", ("host", "conns", "IP bytes"), talker_rows),
    ]
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


def conn_table(conns: list[Conn], width: int, max_rows: int | None = None) -> Table:
    """One row per connection. Columns are dropped as the console narrows: below 100 there is
    no time or duration, below `WIDE` bytes are combined and there are no packets or uid.
    Times are shown to the millisecond; the exact values are in the zeek/json outputs."""
    wide, medium = width >= WIDE, width >= 100
    shown = conns if max_rows is None else conns[:max_rows]
    title = f"Connections ({len(conns)})"
    if len(shown) < len(conns):
        title += f", first {len(shown)} shown"
    table = Table(title=title, title_style="bold", caption="times UTC" if medium else None,
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold",
                  padding=(0, 1, 0, 0), expand=False)
    if medium:
        table.add_column("start" if wide else "time", no_wrap=True)
    table.add_column("proto", no_wrap=True)
    table.add_column("originator", overflow="fold", min_width=15)
    table.add_column("responder", overflow="fold", min_width=15)
    table.add_column("state", no_wrap=True)
    table.add_column("history", overflow="fold", max_width=12)
    if medium:
        table.add_column("dur", justify="right", no_wrap=True)
    if wide:
        table.add_column("orig bytes", justify="right", no_wrap=True)
        table.add_column("resp bytes", justify="right", no_wrap=True)
        table.add_column("pkts o/r", justify="right", no_wrap=True)
        table.add_column("uid", overflow="fold", style="dim")
    else:
        table.add_column("bytes o/r", justify="right", no_wrap=True)
    for c in shown:
        cells = [literal(_utc(c.ts, wide), "dim")] if medium else []
        cells += [
            literal(_proto_label(c)),
            literal(endpoint(c.orig_h, c.orig_p, c.proto)),
            literal(endpoint(c.resp_h, c.resp_p, c.proto)),
            literal(c.conn_state, STATE_STYLES.get(c.conn_state, "")),
            literal(c.history or "-"),
        ]
        if medium:
            cells.append(literal(human_duration(c.duration)))
        if wide:
            cells += [literal(human_bytes(c.orig_bytes)), literal(human_bytes(c.resp_bytes)),
                      literal(f"{c.orig_pkts}/{c.resp_pkts}"), literal(c.uid, "dim")]
        else:
            cells.append(literal(f"{short_bytes(c.orig_bytes)}/{short_bytes(c.resp_bytes)}"
                                 if c.orig_bytes is not None else "-"))
        table.add_row(*cells)
    return table


def render(conns: list[Conn], stats: Mapping[str, int], console: Console, *,
           max_rows: int | None = 1000) -> None:
    """Print the summary, then the connection table (at most `max_rows` rows; None = all)."""
    width = console.width
    console.print(summary(conns, stats, width))
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
