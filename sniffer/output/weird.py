"""weird.log: one row per anomaly, in Zeek's weird.log layout, so Zeek tooling reads it.

Anomalies are what Zeek calls "weirds": a truncated tunnel header, a bad checksum, a tunnel
nested too deep. They are also counted by name in the run's summary. Like Zeek's weird
sampling, a name is logged for its first 1000 occurrences and then once per 1000, so a storm
of broken packets cannot fill the disk; the summary keeps the true count.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from sniffer.output.zeek import SEPARATOR, close_line, format_value, header_lines

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "name", "addl",
          "notice", "peer", "source")
TYPES = {"ts": "time", "uid": "string", "id.orig_h": "addr", "id.orig_p": "port",
         "id.resp_h": "addr", "id.resp_p": "port", "name": "string", "addl": "string",
         "notice": "bool", "peer": "string", "source": "string"}
SAMPLING_THRESHOLD = 1000
SAMPLING_RATE = 1000


@dataclass(slots=True)
class Weird:
    """One anomaly; the connection fields are unset when no connection is involved."""

    ts: float
    name: str
    uid: str | None = None
    orig_h: str | None = None
    orig_p: int | None = None
    resp_h: str | None = None
    resp_p: int | None = None
    addl: str | None = None
    source: str | None = None


class WeirdWriter:
    """Streams `Weird` records to `out`; ``close()`` writes the ``#close`` line."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.time) -> None:
        self.out = out
        self.clock = clock
        self.seen: Counter[str] = Counter()
        out.write("\n".join(header_lines(FIELDS, "weird", clock(), TYPES)) + "\n")

    def write(self, w: Weird) -> None:
        n = self.seen[w.name] = self.seen[w.name] + 1
        if n > SAMPLING_THRESHOLD and n % SAMPLING_RATE:
            return
        values = (w.ts, w.uid, w.orig_h, w.orig_p, w.resp_h, w.resp_p, w.name, w.addl, False,
                  "sniffer", w.source)
        self.out.write(SEPARATOR.join(format_value(v, TYPES[f]) for f, v in zip(FIELDS, values))
                       + "\n")

    def close_line(self) -> str:
        return close_line(self.clock)

    def close(self) -> None:
        self.out.write(self.close_line())
