"""The live dashboard of `sniffer live`: who is this machine talking to, and who owns it.

A header (interface, packet rate, kernel drops, active connections, verdicts worth attention),
the busiest active connections with their owner and provisional verdict, and the latest
finished connections that nobody accounts for, and (with `--detect`/`--alerts`) the latest
alerts with the connection they belong to. Built for 80 columns and wider: columns are left
out as the terminal narrows, an address:port or a pid/program is never split (docs/live.md);
every string that comes from packets or processes is shown literally.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live as RichLive
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sniffer.output.console import (VERDICT_STYLE, Column, drop, endpoint, fit, fitted_table,
                                    literal, programs, reductions)

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}

#: conn_state values of a TCP connection that is over (closed by FIN both ways, reset,
#: refused) but still in the flow table until Zeek's close delay has passed: not active.
CLOSED_STATES = frozenset({"SF", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR"})

#: Active-connection columns, and what goes first as the terminal narrows (docs/live.md):
#: bytes, then the protocol; then the responder goes under the originator and the steps
#: start again, the process last of all.
ACTIVE_COLUMNS = ("proto", "originator", "responder", "bytes", "process", "verdict")
ACTIVE_STEPS = (drop("bytes"), drop("proto"))
ACTIVE_STEPS_STACKED = ACTIVE_STEPS + (drop("process"),)

#: Cells a panel's border and padding take from the terminal's width.
PANEL_EDGES = 4

#: The most active connections judged for a frame: the busiest (a busy host may hold 100,000).
JUDGED = 1000

#: Verdicts of finished connections listed under "needs attention" (sniffer.live.Live.emit).
ATTENTION = ("unattributed", "refused", "unknown", "not-tracked")


def _end(host: str | None, port: int | None) -> str:
    """An alert's endpoint: ``*`` for what it does not name, IPv6 in brackets."""
    h = "*" if not host else f"[{host}]" if ":" in host else host
    return f"{h}:{'*' if port is None else port}"


def active_layouts() -> list[list[str]]:
    """The active-connection table's layouts for `fit`, richest first."""
    stacked = ["ends" if n == "originator" else n for n in ACTIVE_COLUMNS if n != "responder"]
    return reductions(ACTIVE_COLUMNS, ACTIVE_STEPS) + reductions(stacked, ACTIVE_STEPS_STACKED)


def active_columns(records: list) -> dict[str, Column]:
    """The active-connection columns for these (provisionally judged) records."""
    orig = [endpoint(r.orig_h, r.orig_p, r.proto) for r in records]
    resp = [endpoint(r.resp_h, r.resp_p, r.proto) for r in records]
    return {
        "proto": Column("proto", [literal(r.proto) for r in records]),
        "originator": Column("originator", [literal(o) for o in orig]),
        "responder": Column("responder", [literal(x) for x in resp]),
        "ends": Column("originator\n→ responder",
                       [Text("\n").join([literal(o), literal(f"→ {x}")])
                        for o, x in zip(orig, resp)]),
        "bytes": Column("bytes", [literal(f"{r.orig_ip_bytes + r.resp_ip_bytes:,}")
                                  for r in records], "right"),
        "process": Column("process", [programs(r.processes) for r in records]),
        "verdict": Column("verdict", [literal(r.verdict or "-", VERDICT_STYLE.get(r.verdict, ""))
                                      for r in records]),
    }


class Dashboard:
    """`with Dashboard(live) as board: live.run(board.update)` -- redraws at most twice a second."""

    def __init__(self, live, rows: int = 15) -> None:
        self.live = live
        self.rows = rows
        # Every cell built from packets or processes is a `literal` Text; the console also has
        # markup and highlighting off, so a plain string added later is not restyled either.
        self._rich = RichLive(console=Console(markup=False, highlight=False, emoji=False),
                              auto_refresh=False, transient=False, redirect_stdout=False)
        self._last = 0.0
        self._last_packets = 0
        self._rate = 0.0

    def __enter__(self) -> Dashboard:
        self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.update(self.live, force=True)
        self._rich.__exit__(*exc)

    def update(self, live, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        packets = live.stats["packets"] + getattr(live, "_count_hint", 0)
        if self._last:
            self._rate = (packets - self._last_packets) / max(now - self._last, 1e-6)
        self._last, self._last_packets = now, packets
        self._rich.update(self.render(live), refresh=True)

    def render(self, live, width: int | None = None) -> Group:
        """One frame. Connections over (closed by FIN, reset) but not yet expired are counted
        as done, not active; "unattributed" counts what the two boxes below can show: the
        active connections judged unattributed now (of the JUDGED busiest: ``≥N`` when more
        are open), and the finished ones judged so."""
        width = (width or self._rich.console.width) - PANEL_EDGES
        # The busiest first; at most JUDGED of them judged a frame (about 16 µs each): their
        # records so far, judged against the kernel as of now.
        active, closing, records = live.engine.open_connections(JUDGED, CLOSED_STATES)
        for rec in records:
            live.view.judge(rec)
        unattributed = (sum(1 for r in records if r.verdict == "unattributed")
                        + live.verdicts.get("unattributed", 0))
        at_least = "≥" if len(records) < active else ""  # some were not judged
        ks = live.capture.kernel_stats()
        head = Text.assemble(
            ("sniffer live ", "bold"), literal(live.capture.interface, "bold cyan"),
            f"  {self._rate:,.0f} pkt/s  drops {ks.get('dropped', 0)}  "
            f"active {active}  done {live.finished + closing}  ",
            (f"unattributed {at_least}{unattributed}", "bold red" if unattributed else "green"))
        shown = records[: self.rows]
        columns = active_columns(shown)
        names = fit(columns, active_layouts(), width)
        if "ends" in names:  # two lines a connection: half as many fit on the screen
            shown = shown[: max(1, self.rows // 2)]
            columns = active_columns(shown)
        conns = fitted_table(columns, names, box=None, expand=True, header_style="bold",
                             pad_edge=False)
        title = "active connections"
        if len(shown) < active:
            title += f" ({len(shown)} busiest of {active})"
        panels = [head, Panel(conns if shown else Text("no active connections", style="dim"),
                              title=title, title_align="left")]
        if live.recent:
            recent = Table(box=None, expand=True, show_header=False, pad_edge=False)
            recent.add_column(overflow="fold")
            for c in reversed(live.recent[-6:]):
                recent.add_row(Text.assemble(
                    (f"{c.verdict:<13}", VERDICT_STYLE.get(c.verdict, "")),
                    literal(f"{c.proto} {endpoint(c.orig_h, c.orig_p, c.proto)} -> "
                            f"{endpoint(c.resp_h, c.resp_p, c.proto)} "),
                    literal("; ".join(c.evidence or []), "dim")))
            # live.recent keeps the latest few; live.verdicts counts every finished record
            total = sum(live.verdicts.get(v, 0) for v in ATTENTION)
            shown_recent = min(len(live.recent), 6)
            title = "needs attention" + (f" (latest {shown_recent} of {total})"
                                         if total > shown_recent else "")
            panels.append(Panel(recent, title=title, title_align="left"))
        else:
            panels.append(Panel(Text("nothing unaccounted for", style="green"),
                                title="needs attention", title_align="left"))
        if live.detectors is not None:
            panels.append(self._alerts(live.detectors.alerts))
        return Group(*panels)

    @staticmethod
    def _alerts(alerts: list, rows: int = 5) -> Panel:
        """The latest alerts: severity, kind, the connection (5-tuple and uid), the summary."""
        lines = Table(box=None, expand=True, show_header=False, pad_edge=False)
        lines.add_column(overflow="fold")
        for a in alerts[-rows:][::-1]:
            where = f"{a.proto or '-'} {_end(a.src, a.sport)} -> {_end(a.dst, a.dport)}"
            repeats = a.evidence.get("repeats")
            lines.add_row(Text.assemble(
                literal(f"{a.severity:<7}", SEVERITY_STYLE.get(a.severity, "")),
                literal(f"{a.kind} ", "bold"),
                literal(where + (f" {a.uid}" if a.uid else "") + " "),
                literal(a.summary + (f" (x{repeats + 1})" if repeats else ""), "dim")))
        return Panel(lines if alerts else Text("no alerts", style="green"),
                     title=f"alerts ({len(alerts)})", title_align="left")
