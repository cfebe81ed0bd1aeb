"""`sniffer read`: the offline pipeline, capture → decode → flows → output."""

from __future__ import annotations

import argparse
import os
import sys
from itertools import islice

from sniffer.config import Settings, apply_detect_setting, parse_net, parse_ports, python_engine
from sniffer.errors import BadInputError, SnifferError, UsageError
from sniffer.interrupt import Interrupted
from sniffer.stats import LoggedStats, Stats, checksum_warning

# (typing.TYPE_CHECKING, without importing typing: every import is start-up time)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from sniffer.engine import Finished
    from sniffer.flows.conn import Conn


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings(
        ignore_checksums=args.ignore_checksums,
        ignore_checksums_nets=[parse_net(n, "--ignore-checksums-net")
                               for n in args.ignore_checksums_net],
        likely_server_ports=parse_ports(args.likely_server_ports),
        report_gaps_for_partial=args.report_gaps_for_partial,
    )
    if getattr(args, "max_flows", None) is not None:
        if args.max_flows < 0:
            raise UsageError(f"--max-flows: must be 0 (no limit) or more, got {args.max_flows}")
        settings.max_flows = args.max_flows
    if getattr(args, "frag_max_datagrams", None) is not None:
        settings.frag_max_datagrams = args.frag_max_datagrams
    if getattr(args, "frag_max_mib", None) is not None:
        settings.frag_max_bytes = args.frag_max_mib << 20
    if args.local_net:
        settings.local_nets = [parse_net(n, "--local-net") for n in args.local_net]
    for spec in getattr(args, "detect_set", ()):
        apply_detect_setting(settings, spec)
    return settings


#: Frames fed to the engine at a time: its events are taken (judged, written) after each batch.
BATCH = 512


def run_packets(paths: list[str], settings: Settings, stats: Stats, emit,
                advance=None, weird=None, detectors=None,
                shard=None) -> BadInputError | Interrupted | None:
    """Run the engine over `paths`; every connection reaches `emit(Finished)`, even after bad
    input.

    `advance(n)`, when given, is told roughly how many file bytes each packet took (for a
    progress bar); `weird(record)`, when given, receives each anomaly for weird.log (then
    `stats` must be a LoggedStats); `detectors` (sniffer.detect.engine.Detectors), when given,
    observes the run. `shard`, ``(n, me)``, makes this run shard `me` of `n` (`--workers`,
    sniffer.workers). Returns the input error or the stop signal (sniffer.interrupt)
    that ended the run early, if any: the caller reports it after the output is complete.
    """
    # (imported here: the rows path below needs neither, and every import is start-up time)
    from sniffer.engine import CoreEngine, Engine, Finished, KernelEvent
    if not python_engine():
        engine = CoreEngine(settings, stats, detectors=detectors, weirds=weird is not None,
                            shard=shard, source=", ".join(paths))
    else:  # the reference (SNIFFER_ENGINE=python)
        if shard is not None:
            from sniffer.workers import make_owner
            shard = (make_owner(shard[0], settings), shard[1])
        engine = Engine(settings, stats, detectors=detectors, weirds=weird is not None,
                        shard=shard)
    from sniffer.capture import open_capture
    from sniffer.correlate import KernelView
    # A recording of `sniffer live -w` carries the kernel's view in custom blocks: replay it
    # into the same correlator, so the records get the verdicts the live run gave them. Its
    # events join the engine's, in file order, so each record is judged on the view as it was
    # when the record ended, whatever the batch.
    view = KernelView()

    def on_custom(ts: float, ev: dict) -> None:
        engine.note(KernelEvent(ts, ev))
        if detectors is not None:  # (they watch packets as they are fed: tell them now)
            detectors.kernel_event(ts, ev)

    def dispatch() -> None:
        for ev in engine.take():
            kind = type(ev)
            if kind is Finished:
                conn = ev.conn
                if view.snapshots or view.local:
                    view.judge(conn)
                emit(ev)
                if detectors is not None:
                    detectors.finished(conn)
            elif kind is KernelEvent:
                view.event(ev.ts, ev.event)
            else:
                weird(ev)

    # With detectors one frame at a time: they watch packets as they are fed, and records
    # as they end; a batch would show them later packets before an earlier record.
    batch = 1 if detectors is not None else BATCH
    error = None
    try:
        frames = open_capture(paths, stats, on_custom, directions=detectors is not None)
        if detectors is not None:
            frames = engine.directed(frames)
        if advance is not None:
            frames = _counted(frames, advance)
        frames = iter(frames)
        while True:
            before = engine.frames
            engine.feed(islice(frames, batch))
            dispatch()
            if engine.frames - before < batch:
                break
    except (BadInputError, Interrupted) as exc:
        error = exc
    finally:
        engine.finish()
        dispatch()
    return error


def plain_pcap(path: str) -> bool:
    """Whether `path` is a regular, uncompressed classic pcap file: the core can walk it,
    track it and write its rows without a frame or a record crossing into Python."""
    if path == "-" or not os.path.isfile(path):
        return False
    from sniffer import _core
    try:
        with open(path, "rb") as f:
            return _core.is_pcap(f.read(4))
    except OSError:
        return False


#: Frames the core walks between two looks at the clock (a stop signal, the progress bar).
CORE_BATCH = 65536
#: Connections ended at a time at the end of the input (about 0.7 MB of rows).
CORE_FLUSH = 4096


def run_rows(path: str, settings: Settings, stats: Stats, output: "_Output", fmt: str,
             advance=None) -> BadInputError | Interrupted | None:
    """`read FILE --format zeek|json`: the core walks the classic pcap at `path`, tracks it
    and writes the conn.log rows itself; Python only writes the text out. The same rows, stats and
    errors as run_packets (tests/test_core_engine.py holds the two to each other)."""
    from sniffer import _core
    from sniffer.errors import core_failure as _bad
    from sniffer.interrupt import STOP

    error = None
    try:
        walker = _core.PcapWalker(path)
    except (_core.CoreError, _core.PanicException) as e:
        return _bad(path, e, 0)
    engine = _core.Engine(settings, rows=fmt)
    done = 0

    def write() -> None:
        rows = engine.take_rows()
        if rows:
            if output.out is None:
                output.open_raw(verdicts=False)
            output.write_raw(rows)

    try:
        while True:
            if STOP.signum:
                raise Interrupted(STOP.signum)
            try:
                n = engine.feed_pcap(walker, CORE_BATCH)
            except (_core.CoreError, _core.PanicException) as e:
                raise _bad(path, e, walker.offset) from None
            write()
            if advance is not None:
                advance(walker.offset - done)
                done = walker.offset
            if n == 0:
                break
    except (BadInputError, Interrupted) as exc:
        error = exc
    finally:
        try:
            # (in parts, each part's rows written before the next: they never pile up)
            while engine.finish(CORE_FLUSH):
                write()
        except (_core.CoreError, _core.PanicException) as e:  # (a bug: reported, not raised)
            error = error or _bad(path, e, walker.offset)
        write()
        for key, n in engine.counters().items():
            stats[key] += n
        truncated = walker.notes().get("truncated_final_record")
        if truncated:
            stats["truncated_final_record"] += truncated
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


class _Output:
    """Where records go: opened on the first record, or at the end of a run that read packets.

    So an input that fails before its first packet (not a capture, missing file) leaves no
    empty log behind, while a run that stops mid-file still writes everything it rebuilt.
    """

    def __init__(self, path: str | None, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.out: TextIO | None = None
        self.writer = None
        self.conns: list[Conn] = []
        if path:
            from sniffer.output.outfile import check_writable
            check_writable(path)

    def _open(self, first: Conn | None = None, verdicts: bool | None = None) -> None:
        from sniffer.output.outfile import LineFile, stdout_lines
        # LineFile: a full disk leaves the file cut at its last whole record
        self.out = LineFile(self.path) if self.path else stdout_lines()
        from sniffer.output.zeek import DEFAULT_FIELDS, VERDICT_FIELDS
        if verdicts is None:
            verdicts = first is not None and bool(first.verdict)
        fields = DEFAULT_FIELDS + (VERDICT_FIELDS if verdicts else ())
        if self.fmt == "zeek":
            from sniffer.output.zeek import ZeekWriter
            self.writer = ZeekWriter(self.out, fields)
            self.out.trailer = self.writer.close_line
        elif self.fmt == "json":
            from sniffer.output.jsonl import JsonlWriter
            self.writer = JsonlWriter(self.out, fields)

    def emit_finished(self, ev: Finished) -> None:
        self.emit(ev.conn)

    def emit(self, conn: Conn) -> None:
        if self.fmt == "table":
            self.conns.append(conn)
            return
        if self.writer is None:
            self._open(conn)
        self.writer.write(conn)

    def open_raw(self, verdicts: bool) -> None:
        """For `--workers`: open with the verdict fields or without; rows come formatted."""
        self._open(verdicts=verdicts)

    def write_raw(self, row: str | bytes) -> None:
        self.out.write(row)

    def finish(self, stats: Stats, max_rows: int | None) -> None:
        if self.out is None:
            self._open()
        try:
            if self.writer is not None:
                self.writer.close()
            elif self.fmt == "table":
                from rich.console import Console
                from sniffer.output.console import render
                console = Console(file=self.out, highlight=False, markup=False) \
                    if self.path else Console(highlight=False, markup=False)
                self.conns.sort(key=lambda c: c.ts)
                render(self.conns, stats, console, max_rows=max_rows)
            self.out.flush()
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            raise SnifferError(f"{self.path or 'stdout'}: write failed: {exc.strerror}") from None
        finally:
            if self.path and self.out is not None:
                self.out.close()


def _weird_log(path: str | None):
    if not path:
        return None
    from sniffer.output.outfile import open_lines
    from sniffer.output.weird import WeirdWriter
    out = open_lines(path)
    writer = WeirdWriter(out)
    out.trailer = writer.close_line
    return writer


def quiet_collector() -> None:
    """Make the cyclic garbage collector run rarely during a run.

    The engine's objects form no cycles once a connection is removed (sniffer.flows.table
    breaks the one it has), yet the collector's default thresholds made it walk every live
    connection over and over: a third of a SYN flood's run time. It stays on, for safety,
    with a young-generation threshold of 100,000 allocations instead of 700.
    """
    import gc
    gc.freeze()  # what was imported so far is never garbage
    gc.set_threshold(100_000, 50, 1000)


def run_read(args: argparse.Namespace) -> int:
    from sniffer import interrupt
    quiet_collector()
    restore = interrupt.install()
    try:
        return _run_read(args)
    finally:
        restore()


def _run_read(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    fmt = args.format
    if fmt is None:
        fmt = "table" if (not args.output and sys.stdout.isatty()) else "zeek"
    output = _Output(args.output, fmt)
    if getattr(args, "workers", 1) > 1:
        return _run_workers(args, settings, fmt, output)
    weirds = _weird_log(args.weird_log)
    weird = weirds.write if weirds is not None else None
    stats = Stats() if weirds is None else LoggedStats()  # (the engine logs through it)
    detectors = None
    if getattr(args, "alerts", None) or getattr(args, "detect", False):
        from sniffer.detect.engine import from_args  # (not imported by plain runs)
        detectors = from_args(args, settings, stats)
    # The whole per-packet path and the rows in the core: one plain pcap to conn.log text.
    rows = (fmt in ("zeek", "json") and weird is None and detectors is None
            and len(args.files) == 1 and not python_engine() and plain_pcap(args.files[0]))

    def run(advance) -> BadInputError | Interrupted | None:
        if rows:
            return run_rows(args.files[0], settings, stats, output, fmt, advance)
        return run_packets(args.files, settings, stats, output.emit_finished, advance, weird,
                           detectors)

    try:
        if sys.stderr.isatty():
            from sniffer.output.console import progress
            total = None if "-" in args.files else _total_size(args.files)
            with progress(total, min_total=8 << 20) as advance:
                error = run(advance)
        else:
            error = run(None)
    finally:
        if detectors is not None:  # even when interrupted: the alerts raised so far
            detectors.close()
        if weirds is not None:
            weirds.close()
            weirds.out.close()
    if error is None or stats["packets"] or output.out is not None:
        output.finish(stats, args.max_rows or None)
    if error is not None:
        raise error
    _report_skipped(stats, fmt, _table_on_screen(args, fmt))
    return 0


def _run_workers(args: argparse.Namespace, settings: Settings, fmt: str, output) -> int:
    from sniffer import workers
    args.format = fmt
    workers.check_args(args)
    result = workers.run(args, settings, args.workers, output)
    stats = Stats()
    stats.update(result["stats"])
    output.finish(stats, None)
    if result["error"] is not None:
        raise result["error"]
    _report_skipped(stats, fmt, _table_on_screen(args, fmt))
    return 0


def _table_on_screen(args: argparse.Namespace, fmt: str) -> bool:
    """Whether the table (with its summary) went to the terminal rather than to a file."""
    return fmt == "table" and args.output in (None, "", "-") and sys.stdout.isatty()


def _report_skipped(stats: Stats, fmt: str, on_screen: bool = False) -> None:
    """Machine formats stay clean; what was skipped or damaged goes to stderr as one line.

    Then, in every format, the checksum-offloading warning (sniffer.stats.checksum_warning)
    as one more line, unless the table's summary already showed it on the terminal
    (`on_screen`).
    """
    if os.environ.get("SNIFFER_QUIET") == "1":
        return
    notes = [f"{k}={v}" for k, v in sorted(stats.items())
             if k.startswith(("unsupported_", "truncated_final_record", "bad_IP_checksum",
                              "weird:bad_TCP_checksum", "weird:bad_UDP_checksum",
                              "weird:bad_ICMP_checksum", "flows_evicted"))]
    if notes and fmt != "table":
        print("sniffer: note: " + ", ".join(notes), file=sys.stderr)
    warning = checksum_warning(stats)
    if warning and not on_screen:
        print("sniffer: " + warning, file=sys.stderr)
