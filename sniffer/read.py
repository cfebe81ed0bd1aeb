"""`sniffer read`: the offline pipeline, capture → decode → flows → output."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from sniffer.capture import open_capture
from sniffer.config import Settings, parse_net, parse_ports
from sniffer.decode import Decoder
from sniffer.errors import BadInputError, SnifferError
from sniffer.flows.conn import Conn
from sniffer.flows.table import FlowTable
from sniffer.stats import Stats


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings(
        ignore_checksums=args.ignore_checksums,
        ignore_checksums_nets=[parse_net(n) for n in args.ignore_checksums_net],
        likely_server_ports=parse_ports(args.likely_server_ports),
        report_gaps_for_partial=args.report_gaps_for_partial,
    )
    if args.local_net:
        settings.local_nets = [parse_net(n) for n in args.local_net]
    return settings


def run_packets(paths: list[str], settings: Settings, stats: Stats, emit,
                advance=None) -> BadInputError | None:
    """Run the pipeline over `paths`; every connection reaches `emit`, even after bad input.

    `advance(n)`, when given, is told roughly how many file bytes each packet took (for a
    progress bar). Returns the input error that stopped the run early, if any (the caller
    reports it after the output is complete).
    """
    decoder = Decoder(settings, stats)
    table = FlowTable(settings, stats, emit)
    decode = decoder.decode
    process = table.process
    packets = 0
    error = None
    try:
        packets_in = open_capture(paths, stats)
        if advance is not None:
            packets_in = _counted(packets_in, advance)
        for ts, linktype, data, wirelen in packets_in:
            packets += 1
            pkt = decode(ts, linktype, data, wirelen)
            if pkt is not None:
                process(ts, pkt)
    except BadInputError as exc:
        error = exc
    finally:
        stats["packets"] += packets
        decoder.flush()
        table.flush()
    return error


def _counted(packets, advance):
    for p in packets:
        advance(len(p[2]) + 16)
        yield p


def _total_size(paths: list[str]) -> int | None:
    try:
        return sum(os.path.getsize(p) for p in paths)
    except OSError:
        return None  # stdin, or a file the reader will report


def run_read(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    fmt = args.format
    out: TextIO
    if args.output:
        try:
            out = open(args.output, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise SnifferError(f"{args.output}: cannot write: {exc.strerror}") from None
    else:
        out = sys.stdout
    if fmt is None:
        fmt = "table" if (out is sys.stdout and sys.stdout.isatty()) else "zeek"
    stats = Stats()
    conns: list[Conn] = []
    writer = None
    if fmt == "zeek":
        from sniffer.output.zeek import ZeekWriter
        writer = ZeekWriter(out)
        emit = writer.write
    elif fmt == "json":
        from sniffer.output.jsonl import JsonlWriter
        writer = JsonlWriter(out)
        emit = writer.write
    else:
        emit = conns.append
    try:
        if sys.stderr.isatty():
            from sniffer.output.console import progress
            total = None if "-" in args.files else _total_size(args.files)
            with progress(total, min_total=8 << 20) as advance:
                error = run_packets(args.files, settings, stats, emit, advance)
        else:
            error = run_packets(args.files, settings, stats, emit)
        if writer is not None:
            writer.close()
        else:
            from rich.console import Console
            from sniffer.output.console import render
            console = Console(file=out, highlight=False, markup=False) if out is not sys.stdout \
                else Console(highlight=False)
            conns.sort(key=lambda c: c.ts)
            render(conns, stats, console, max_rows=args.max_rows or None)
        out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    if error is not None:
        raise error
    _report_skipped(stats, fmt)
    return 0


def _report_skipped(stats: Stats, fmt: str) -> None:
    """Machine formats stay clean; what was skipped or damaged goes to stderr as one line."""
    if fmt == "table":
        return
    notes = [f"{k}={v}" for k, v in sorted(stats.items())
             if k.startswith(("unsupported_linktype", "truncated_final_record"))]
    if notes and os.environ.get("SNIFFER_QUIET") != "1":
        print("sniffer: note: " + ", ".join(notes), file=sys.stderr)
