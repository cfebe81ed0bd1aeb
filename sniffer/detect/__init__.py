"""Detectors: spoofing and injection, from the flow engine's view of each packet.

The flow table calls an *observer* (when one is attached; otherwise it costs one attribute
check per packet): `packet(ts, pkt, encap)` for every decoded IP packet before the flows see it,
`tcp(ts, conn, is_orig, flags, seq, ack, win, payload, ttl)` for every valid TCP segment after
the TCP state machine has run, and `finished(record)` for each finished connection record.
`sniffer.detect.engine.Detectors` fans these out to the detector modules of this package and
collects `Alert` records (see engine.py for the detector interface).

Registering a detector module is one line in `DETECTORS` below: its dotted module name, e.g.
``"sniffer.detect.tcp_rst_injection",``. The module defines a class ``Detector(engine)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Detector modules, one line each (each defines ``Detector``; see sniffer/detect/engine.py).
DETECTORS: list[str] = [
    "sniffer.detect.land",
    "sniffer.detect.bogon_source",
    "sniffer.detect.local_source",
    "sniffer.detect.syn_flood",
    "sniffer.detect.port_scan",
    "sniffer.detect.backscatter",
    "sniffer.detect.tcp_rst",
    "sniffer.detect.tcp_data",
    "sniffer.detect.tcp_ttl",
    "sniffer.detect.tcp_window",
    "sniffer.detect.kernel_view",
]


@dataclass(slots=True)
class Alert:
    """One alert: a stable `kind`, a severity, a one-line summary and its evidence."""

    ts: float
    kind: str
    severity: str  # low, medium, high
    summary: str
    evidence: dict = field(default_factory=dict)
    uid: str | None = None
    community_id: str | None = None
    proto: str | None = None
    src: str | None = None
    sport: int | None = None
    dst: str | None = None
    dport: int | None = None
