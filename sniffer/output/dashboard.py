"""The live dashboard of `sniffer live`: who is this machine talking to, and who owns it.

A header (interface, packet rate, kernel drops, active connections, verdicts worth attention),
the busiest active connections with their owner and provisional verdict, and the latest
finished connections that nobody accounts for, and (with `--detect`/`--alerts`) the latest
alerts with the connection they belong to. Built for 80 columns and wider; every string
that comes from packets or processes is shown literally.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live as RichLive
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sniffer.output.console import literal

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}
VERDICT_STYLE = {"attributed": "green", "kernel": "cyan", "refused": "yellow",
                 "unattributed": "bold red", "not-local": "dim", "unknown": "magenta"}


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

    def render(self, live) -> Group:
        table = live.table
        active = sorted(table.conns.values(),
                        key=lambda c: c.orig_ip_bytes + c.resp_ip_bytes, reverse=True)
        attention = sum(1 for c in live.recent if c.verdict == "unattributed")
        ks = live.capture.kernel_stats()
        head = Text.assemble(
            ("sniffer live ", "bold"), literal(live.capture.interface, "bold cyan"),
            f"  {self._rate:,.0f} pkt/s  drops {ks.get('dropped', 0)}  "
            f"active {len(table.conns)}  done {live.finished}  ",
            (f"unattributed {attention}", "bold red" if attention else "green"))
        conns = Table(box=None, expand=True, header_style="bold", pad_edge=False)
        conns.add_column("proto", no_wrap=True)
        conns.add_column("originator", overflow="fold")
        conns.add_column("responder", overflow="fold")
        conns.add_column("bytes", justify="right", no_wrap=True)
        conns.add_column("process", overflow="fold")
        conns.add_column("verdict", no_wrap=True)
        for c in active[: self.rows]:
            rec = table.record(c)  # a provisional record, judged against the kernel as of now
            live.view.judge(rec)
            proc = ",".join(f"{p['pid']}/{p['name']}" for p in rec.processes or []) or "-"
            conns.add_row(literal(rec.proto), literal(f"{rec.orig_h}:{rec.orig_p}"),
                          literal(f"{rec.resp_h}:{rec.resp_p}"),
                          f"{rec.orig_ip_bytes + rec.resp_ip_bytes:,}", literal(proc),
                          Text(rec.verdict or "-", style=VERDICT_STYLE.get(rec.verdict, "")))
        recent = Table(box=None, expand=True, show_header=False, pad_edge=False)
        recent.add_column(overflow="fold")
        for c in reversed(live.recent[-6:]):
            line = Text.assemble((f"{c.verdict:<13}", VERDICT_STYLE.get(c.verdict, "")),
                                 literal(f"{c.proto} {c.orig_h}:{c.orig_p} -> {c.resp_h}:{c.resp_p} "),
                                 literal("; ".join(c.evidence or []), "dim"))
            recent.add_row(line)
        panels = [head, Panel(conns, title="active connections", title_align="left"),
                  Panel(recent or Text("nothing unaccounted for", style="green"),
                        title="needs attention", title_align="left")]
        if live.detectors is not None:
            panels.append(self._alerts(live.detectors.alerts))
        return Group(*panels)

    @staticmethod
    def _alerts(alerts: list, rows: int = 5) -> Panel:
        """The latest alerts: severity, kind, the connection (5-tuple and uid), the summary."""
        lines = Table(box=None, expand=True, show_header=False, pad_edge=False)
        lines.add_column(overflow="fold")
        for a in alerts[-rows:][::-1]:
            where = f"{a.proto or '-'} {a.src or '*'}:{a.sport if a.sport is not None else '*'}" \
                    f" -> {a.dst or '*'}:{a.dport if a.dport is not None else '*'}"
            repeats = a.evidence.get("repeats")
            lines.add_row(Text.assemble(
                literal(f"{a.severity:<7}", SEVERITY_STYLE.get(a.severity, "")),
                literal(f"{a.kind} ", "bold"),
                literal(where + (f" {a.uid}" if a.uid else "") + " "),
                literal(a.summary + (f" (x{repeats + 1})" if repeats else ""), "dim")))
        return Panel(lines if alerts else Text("no alerts", style="green"),
                     title=f"alerts ({len(alerts)})", title_align="left")
