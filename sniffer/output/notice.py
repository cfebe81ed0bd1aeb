"""notice.log: the detectors' alerts in Zeek's notice.log layout (`--alerts-format zeek`).

Analysts who already feed Zeek logs to a SIEM or to zeek-cut get the alerts in the shape they
know: one row per alert, `note` naming its kind as a Zeek notice type (``Sniffer::Rst_Injection``
for ``rst-injection``), `msg` its one-line summary and `sub` its severity and evidence (compact
JSON, so nothing is lost). `id.*` are the offending packet's sender and receiver, as in the JSON
alerts; `n` is how many times the alert fired (1 + its aggregated repeats).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from sniffer.detect import Alert
from sniffer.output.zeek import SEPARATOR, format_value, header_lines

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "note",
          "msg", "sub", "src", "dst", "p", "n", "peer_descr", "actions", "community_id")
TYPES = {"ts": "time", "uid": "string", "id.orig_h": "addr", "id.orig_p": "port",
         "id.resp_h": "addr", "id.resp_p": "port", "proto": "enum", "note": "enum",
         "msg": "string", "sub": "string", "src": "addr", "dst": "addr", "p": "port",
         "n": "count", "peer_descr": "string", "actions": "set[enum]", "community_id": "string"}


def note_name(kind: str) -> str:
    """``rst-injection`` -> ``Sniffer::Rst_Injection`` (Zeek notice types are Module::Name)."""
    return "Sniffer::" + "_".join(part.capitalize() for part in kind.split("-"))


def header(clock: Callable[[], float] = time.time) -> str:
    """The log's header lines (written when the file is opened)."""
    return "\n".join(header_lines(FIELDS, "notice", clock(), TYPES)) + "\n"


def row(a: Alert, jsonable: Callable) -> str:
    """One alert as one notice.log row; `jsonable` renders evidence values."""
    sub = json.dumps({"severity": a.severity, "evidence": a.evidence}, default=jsonable,
                     separators=(",", ":"))
    values = (a.ts, a.uid, a.src, a.sport, a.dst, a.dport, a.proto, note_name(a.kind),
              a.summary, sub, a.src, a.dst, a.dport, 1 + a.evidence.get("repeats", 0),
              "sniffer", {"Notice::ACTION_LOG"}, a.community_id)
    return SEPARATOR.join(format_value(v, TYPES[f]) for f, v in zip(FIELDS, values)) + "\n"

