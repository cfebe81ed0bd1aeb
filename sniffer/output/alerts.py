"""`--alerts FILE`: the detectors' alerts as JSON lines, or Zeek's notice.log (`--alerts-format zeek`).

The file is opened when the run starts (a path that cannot be written stops the run before it
begins) and alerts are appended as they are written: `read` writes them all, in time order,
when the input ends; `live` writes each one once it has settled (see
`Detectors.settled`), so `tail -f` shows alerts while the capture runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from sniffer.detect import Alert
from sniffer.errors import SnifferError
from sniffer.flows.conn import ntop
from sniffer.output.zeek import close_line

FIELDS = ("ts", "kind", "severity", "uid", "community_id", "proto", "src", "sport", "dst",
          "dport", "summary", "evidence")


def jsonable(v):
    """Evidence values JSON has no type for: raw addresses, byte strings, sets, tuples."""
    if isinstance(v, bytes):
        if len(v) in (4, 16):
            return ntop(v)
        return v.hex()
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    if isinstance(v, tuple):
        return list(v)
    return str(v)


def alert_dict(a: Alert) -> dict:
    obj = {name: getattr(a, name) for name in FIELDS}
    if not math.isfinite(a.ts):
        obj["ts"] = None
    return obj


class AlertFile:
    """One alerts file, open for the whole run."""

    def __init__(self, path: str, fmt: str = "json") -> None:
        self.path, self.zeek = ("stdout" if path == "-" else path), fmt == "zeek"
        from sniffer.output.outfile import open_lines
        self.out = open_lines(path)  # a full disk leaves whole lines (and notice.log's #close)
        if self.zeek:
            from sniffer.output.notice import header
            self.out.trailer = close_line
            self._write(header())

    def write(self, alerts: Iterable[Alert]) -> None:
        """Append `alerts` (in time order) and flush, so a reader sees whole lines."""
        if self.zeek:
            from sniffer.output.notice import row
            text = "".join(row(a, jsonable) for a in sorted(alerts, key=lambda a: a.ts))
        else:
            text = "".join(json.dumps(alert_dict(a), default=jsonable, separators=(",", ":"))
                           + "\n" for a in sorted(alerts, key=lambda a: a.ts))
        if text:
            self._write(text)

    def close(self) -> None:
        if self.zeek:
            self._write(close_line())
        self.out.close()

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:  # `--alerts - | head`: the reader had enough (sniffer.cli)
            raise
        except OSError as exc:
            raise SnifferError(f"{self.path}: cannot write: {exc.strerror}") from None
