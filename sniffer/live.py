"""`sniffer live`: capture on an interface, track connections, and hold them against the kernel.

The same engine as `read` (decode → flows), fed by an AF_PACKET ring instead of a file, plus the
kernel cross-reference: a snapshot of the socket tables at start and on an interval, destroy
events as they come, and a look-up of each new local connection the moment its first packet is
seen. Each finished connection gets a verdict (sniffer.correlate). With `-w`, packets and kernel
events are recorded in one pcapng file, so `sniffer read` reproduces the verdicts offline.

Timeouts advance with packet time, as in `read`, so a live run and the replay of its recording
end connections at the same points and give the same records.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable

from sniffer.config import python_engine
from sniffer.correlate import KernelView, keep_seconds
from sniffer.engine import CoreEngine, Engine, Finished, NewConn
from sniffer.flows.conn import ntop, proto_name
from sniffer.stats import Stats


class Live:
    """One live run: capture, engine, kernel monitor, outputs."""

    def __init__(self, args: argparse.Namespace, settings) -> None:
        from sniffer.capture.live import LiveCapture
        from sniffer.kernel.monitor import KernelMonitor
        from sniffer.kernel.netns import current

        self.args = args
        self.stats = Stats()
        self.view = KernelView()
        self.view_keep = keep_seconds(settings, args.interval)  # sockets older are forgotten
        self.writers: list = []
        self.recorder = None
        self.recent: list = []  # finished records worth attention, for the dashboard
        self.finished = 0
        self.verdicts: dict[str, int] = {}  # finished records by verdict, for the dashboard
        self.capture = LiveCapture(args.interface, args.filter, args.promisc, stats=self.stats,
                                   buffer_size=args.buffer << 20)
        if args.write:
            from sniffer.output.pcapng import PcapngWriter
            self.recorder = PcapngWriter(args.write)
            self.recorder.add_interface(self.capture.interface, self.capture.linktype)
        from sniffer.detect.engine import from_args
        self.detectors = from_args(args, settings, self.stats)  # None unless --alerts/--detect
        if python_engine():  # (the reference, for comparisons)
            self.engine = Engine(settings, self.stats, detectors=self.detectors, notices=True)
        else:
            self.engine = CoreEngine(settings, self.stats, detectors=self.detectors,
                                     notices=True, source=args.interface)
        # Kernel events that arrive while a block's events are dispatched (the look-ups of its
        # new connections) are applied and recorded after them: a replay of the recording
        # sees them after the block's packets, and must judge its records the same way.
        self._held: list | None = None
        # Under --user the socket traces stay off: their tracefs instances are root's to remove.
        self.monitor = KernelMonitor(current(), self.kernel_event,
                                     trace=not getattr(args, "user", None))

    # -- the kernel's side ------------------------------------------------------------------
    def kernel_event(self, ts: float, ev: dict) -> None:
        if self._held is not None:
            self._held.append((ts, ev))
            return
        self.view.event(ts, ev)
        if self.detectors is not None:
            self.detectors.kernel_event(ts, ev)
        if self.recorder is not None:
            self.recorder.custom(ev["kind"], ev, ts)

    def dispatch(self) -> None:
        """The engine's events, in order: look-ups for new connections, records judged and
        written."""
        self._held = []
        try:
            for ev in self.engine.take():
                if type(ev) is Finished:
                    self.emit(ev.conn)
                elif type(ev) is NewConn:
                    self.on_new(ev)
        finally:
            held, self._held = self._held, None
            for ts, ev in held:
                self.kernel_event(ts, ev)

    def on_new(self, new: NewConn) -> None:
        """A connection's first packet: if one end is ours, ask the kernel about it now."""
        conn = new.conn
        if conn.proto not in (6, 17):
            return
        orig, resp = ntop(conn.orig_h), ntop(conn.resp_h)
        proto = proto_name(conn.proto)
        ts = new.ts
        local_orig, local_resp = self.view.is_local(orig), self.view.is_local(resp)
        if local_orig:
            self.monitor.lookup(ts, proto, orig, conn.orig_p, resp, conn.resp_p)
        if local_resp:
            self.monitor.lookup(ts, proto, resp, conn.resp_p, orig, conn.orig_p)
        if new.pkttype == 3 and not (local_orig or local_resp) \
                and self.monitor.conntrack is not None:
            # Sent to another host's MAC (a promiscuous capture): this kernel never handled
            # it, so conntrack's silence about it says nothing (sniffer.ctview). Recorded.
            self.kernel_event(ts, {"kind": "conntrack", "netns": self.monitor.ns.label,
                                   "event": "overheard", "entries": [],
                                   "flow": [proto, orig, conn.orig_p, resp, conn.resp_p]})

    # -- records ------------------------------------------------------------------------------
    def emit(self, conn) -> None:
        self.view.judge(conn)
        self.finished += 1
        self.verdicts[conn.verdict] = self.verdicts.get(conn.verdict, 0) + 1
        if self.detectors is not None:
            self.detectors.finished(conn)
        for w in self.writers:
            w.write(conn)
        if conn.verdict in ("unattributed", "refused", "unknown", "not-tracked"):
            self.recent.append(conn)
            del self.recent[:-20]

    # -- the loop -----------------------------------------------------------------------------
    def run(self, dashboard=None, started: Callable[[], None] | None = None) -> None:
        """Capture until stopped; `started()` runs once the first kernel view is in (where
        `--user` drops root: before the first packet is parsed, after the last privileged step)."""
        args = self.args
        now = time.time()
        self.monitor.addresses(now)
        self.monitor.snapshot(now)
        ct_error = self.monitor.start_conntrack(now)
        if ct_error is not None:  # said once; the run goes on without conntrack's verdicts
            from sniffer.output.safe import escape_controls
            print(f"sniffer: note: conntrack not read: {escape_controls(ct_error)}; "
                  "connections between other hosts stay not-local", file=sys.stderr, flush=True)
        if self.monitor.tracer is None and not getattr(args, "user", None):
            from sniffer.output.safe import escape_controls
            print(f"sniffer: note: socket tracing off ({escape_controls(self.monitor.trace_error)}"
                  "): a connection closed before its look-up may be `kernel`, not attributed",
                  file=sys.stderr, flush=True)
        if started is not None:
            if dashboard is not None:
                dashboard(self, True)  # the first frame, while the installation is readable
            started()
        if self.detectors is not None and args.hidden_interval > 0:
            self.monitor.start_hidden_checks(args.hidden_interval, args.bind_probe)
        start = time.monotonic()
        next_snapshot = start + args.interval
        next_tick = start + 0.05
        engine, recorder = self.engine, self.recorder
        # With detectors one frame at a time, as `read` feeds them (sniffer.read.run_packets).
        one = self.detectors is not None
        count = 0
        for block in self.capture.blocks(idle=0.05):
            if block is not None:
                if args.count and count + len(block) > args.count:
                    block = block[:args.count - count]
                count += len(block)
                for part in ([f] for f in block) if one else (block,):
                    if recorder is not None:  # each packet before the kernel events it causes
                        for ts, _lt, data, wirelen, pkttype in part:
                            recorder.packet(0, ts, data, wirelen, pkttype)
                    engine.feed(engine.directed(part))
                    self.dispatch()
                if args.count and count >= args.count:
                    break
            mono = time.monotonic()
            if mono >= next_tick:
                next_tick = mono + 0.05
                ts_now = self.engine.network_time or time.time()
                self.monitor.poll(ts_now)
                for w in self.writers:  # records reach their readers within a tick
                    w.flush()
                if self.detectors is not None:
                    self.detectors.write_settled(ts_now)
                if mono >= next_snapshot:
                    next_snapshot = mono + args.interval
                    self.view.expire(ts_now, self.view_keep)  # bounded in long runs
                    self.monitor.snapshot(ts_now)
                if dashboard is not None:
                    dashboard(self)
                if args.duration and mono - start >= args.duration:
                    break

    def finish(self) -> None:
        """Flush every open connection (with its verdict), close every file validly."""
        if self.monitor.tracer is not None:
            self.monitor.tracer.sync()  # the last connections' traces, before they are judged
        self.monitor.poll(self.engine.network_time or time.time())
        self.engine.finish()
        self.dispatch()
        ks = self.capture.kernel_stats()
        self.stats["kernel_received"] = ks.get("received", 0)
        self.stats["kernel_dropped"] = ks.get("dropped", 0)
        self.capture.close()
        self.monitor.close()
        for w in self.writers:
            w.close()
        if self.recorder is not None:
            self.recorder.close()
        if self.detectors is not None:  # last: a file that cannot be written loses only these
            self.detectors.close()


def run_live(args: argparse.Namespace) -> int:
    from sniffer.kernel.netns import enter, entered, resolve
    from sniffer.read import quiet_collector, settings_from_args

    quiet_collector()
    settings = settings_from_args(args)
    drop = _privilege_drop(args)  # an unknown --user fails here, before anything is opened
    ns = resolve(args.netns) if args.netns else None
    if ns is not None and drop is not None:
        enter(ns)  # for good: after the drop there is no way back (and no need of one)
        scope = contextlib.nullcontext()
    else:
        scope = entered(ns) if ns is not None else contextlib.nullcontext()
    with scope:
        live = Live(args, settings)
        fmt = args.format or ("dashboard" if sys.stdout.isatty() and not args.output else "zeek")
        _outputs(live, args, fmt)
        stop = lambda *_: live.capture.stop()  # noqa: E731 - a signal handler
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # HUP: the terminal closed
            signal.signal(sig, stop)
        try:
            if fmt == "dashboard":
                from sniffer.output.dashboard import Dashboard
                with Dashboard(live) as board:
                    live.run(board.update, drop)
            else:
                live.run(started=drop)
        finally:
            live.finish()
    _report(live)
    return 0


# Imported lazily by the run after the drop: imported before it instead, because the new user
# may not be able to read the Python installation (a pyenv under /root, say).
_AFTER_DROP = ("queue", "threading", "sniffer.kernel.hidden", "sniffer.flows.community_id",
               "sniffer.detect.tcp_common", "sniffer.output.notice", "ipaddress")


def _privilege_drop(args: argparse.Namespace) -> Callable[[], None] | None:
    """`--user NAME [--keep-caps]`: the callable that drops root (None without --user).

    The user is looked up now, so a bad name is a usage error before any socket is opened;
    the capabilities kept depend on what the run will still do (docs/live.md).
    """
    if not args.user:
        if args.keep_caps:
            from sniffer.errors import UsageError
            raise UsageError("--keep-caps goes with --user NAME")
        return None
    from sniffer import privileges

    who = privileges.target(args.user)
    probe = bool(args.bind_probe and (args.alerts or args.detect) and args.hidden_interval > 0)
    keep = privileges.needed(args.keep_caps, probe)

    def drop() -> None:
        from sniffer.output.safe import escape_controls  # before: the new user may not read it
        privileges.drop(who, keep, _AFTER_DROP)
        print(escape_controls(privileges.note(who, keep, probe)), file=sys.stderr, flush=True)

    return drop


def _outputs(live: Live, args: argparse.Namespace, fmt: str) -> None:
    from sniffer.output.zeek import DEFAULT_FIELDS, VERDICT_FIELDS
    fields = DEFAULT_FIELDS + VERDICT_FIELDS
    # LineFile: a full disk stops the run with one line and leaves whole records behind
    from sniffer.output.outfile import LineFile, StdoutLines, open_lines
    if fmt in ("zeek", "json"):
        out = LineFile(args.output) if args.output else StdoutLines()
        if fmt == "zeek":
            from sniffer.output.zeek import ZeekWriter
            writer = ZeekWriter(out, fields)
            out.trailer = writer.close_line
            live.writers.append(_Closing(writer, out))
        else:
            from sniffer.output.jsonl import JsonlWriter
            live.writers.append(_Closing(JsonlWriter(out, fields), out))
    if args.json_file:
        from sniffer.output.jsonl import JsonlWriter
        f = open_lines(args.json_file)
        live.writers.append(_Closing(JsonlWriter(f, fields), f))


class _Closing:
    """A writer plus the file it owns."""

    def __init__(self, writer, out) -> None:
        self.writer, self.out = writer, out

    def write(self, conn) -> None:
        self.writer.write(conn)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.out.close()  # stdout (StdoutLines) is flushed, not closed


def _report(live: Live) -> None:
    s = live.stats
    from sniffer.output.safe import escape_controls  # an interface name is anyone's text
    from sniffer.stats import checksum_warning  # as `read` does: many bad checksums, name -C
    warning = checksum_warning(s)
    if warning:  # before the closing report, which stays the last line
        print("sniffer: " + warning, file=sys.stderr)
    tracer = live.monitor.tracer
    if tracer is not None and tracer.pauses:
        from sniffer.kernel.trace import USE_BUDGET, USE_PAUSE
        print(f"sniffer: note: TCP sends and receives came faster than {USE_BUDGET} a second: "
              f"their tracing paused {tracer.pauses} time(s) for {USE_PAUSE:g} s; owners were "
              "named by state changes, dumps and look-ups then", file=sys.stderr)
    print(f"sniffer: {s['packets']} packets captured on "
          f"{escape_controls(live.capture.interface)}, "
          f"{s['kernel_dropped']} kernel drops, {live.finished} connections"
          + (f", {len(live.detectors.alerts)} alerts" if live.detectors is not None else ""),
          file=sys.stderr)
