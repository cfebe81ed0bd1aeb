"""Named counters every stage adds to; the summary prints them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

#: Counters that describe the input rather than something wrong with it.
INFORMATIONAL = frozenset({
    "packets", "bytes", "ip_fragments", "fragments_reassembled", "tunneled_packets",
    "snaplen_truncated", "non_ip",
})


class Stats(Counter):
    """`stats["bad_IP_checksum"] += 1`: counts of packets, drops and anomalies by name."""


class LoggedStats(Stats):
    """Stats that also report each anomaly of the decode and capture stages to `sink`.

    Used only when a weird.log is written, so plain runs keep Counter's C-speed updates. The
    flow stage logs its own anomalies (``weird:*``) with their connection; `ts` is the time of
    the packet being read, kept current by the pipeline.
    """

    def __init__(self, sink: Callable[[str, float], None]) -> None:
        super().__init__()
        self.sink = sink
        self.ts = 0.0

    def __setitem__(self, key: str, value: int) -> None:
        grew = value > self.get(key, 0)
        super().__setitem__(key, value)
        if grew and key not in INFORMATIONAL and not key.startswith(("weird:", "alert")):
            self.sink(key, self.ts)
