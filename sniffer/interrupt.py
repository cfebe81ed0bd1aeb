"""Stopping `sniffer read` cleanly on SIGINT, SIGTERM or SIGHUP.

A signal only raises a flag; the capture readers look at it each time they fetch a chunk of
input (sniffer.capture.source), between two packets, so the run stops at a point where every
connection is whole and can be flushed and written as at the end of the input. Checking there,
not per packet, keeps the per-packet path free of it (a chunk is about a megabyte, a few
milliseconds of work). While the reader waits for input (a pipe, a slow disk) the handler
raises at once, since nothing is half-done then. A second signal raises wherever the program
is: the user asked twice.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """The run was stopped by a signal; what was rebuilt until then is still written."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # as a shell reports a process killed by the signal


class _Stop:
    __slots__ = ("signum", "waiting")

    def __init__(self) -> None:
        self.signum = 0        # the signal that asked to stop, 0 while none did
        self.waiting = False   # True while blocked on input: raising there is clean


STOP = _Stop()


def install(forward_to: list[int] | None = None) -> Callable[[], None]:
    """Catch the stop signals (those not ignored at start, as in a background job); returns
    what puts the previous handlers back (a run inside a larger program, a test).

    `forward_to`: pids of `--workers` processes, told to stop (SIGUSR1) on the first signal.
    """
    STOP.signum = 0
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def handler(signum: int, frame: object) -> None:
        again = STOP.signum != 0
        if forward_to and not again:
            for pid in forward_to:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except OSError:
                    pass
        STOP.signum = signum
        if STOP.waiting or again:  # blocked on input, or asked twice: stop here
            raise Interrupted(signum)

    for s, old in before.items():
        if old is not signal.SIG_IGN:
            signal.signal(s, handler)

    def restore() -> None:
        for s, old in before.items():
            if old is not None:  # None: a handler not installed from Python
                signal.signal(s, old)
    return restore


def install_worker() -> None:
    """In a `--workers` process: stop only when the parent says so (SIGUSR1).

    A terminal's Ctrl-C reaches the whole process group; the parent decides, and each worker
    then stops at its next chunk and writes what it has, as a single process would.
    """
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, lambda signum, frame: _worker_stop())


def _worker_stop() -> None:
    if not STOP.signum:
        STOP.signum = signal.SIGUSR1
        if STOP.waiting:
            raise Interrupted(signal.SIGUSR1)
