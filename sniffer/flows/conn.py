"""The connection record that leaves the engine: one row of conn.log."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Conn:
    """A finished (or flushed) connection, with Zeek conn.log semantics.

    Addresses are text (``"10.0.0.1"``, ``"2001:db8::1"``); ``None`` means unset (``-`` in
    conn.log). ``proto`` is ``tcp``, ``udp``, ``icmp`` or ``unknown_transport``.
    """

    ts: float
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str
    ip_proto: int
    duration: float | None = None
    orig_bytes: int | None = None
    resp_bytes: int | None = None
    conn_state: str = "OTH"
    local_orig: bool | None = None
    local_resp: bool | None = None
    missed_bytes: int = 0
    history: str = ""
    orig_pkts: int = 0
    orig_ip_bytes: int = 0
    resp_pkts: int = 0
    resp_ip_bytes: int = 0
    tunnel_parents: list[str] = field(default_factory=list)
    service: str | None = None
    community_id: str | None = None
    orig_l2_addr: str | None = None
    resp_l2_addr: str | None = None
    # Set by the kernel cross-reference (`sniffer live`, or `read` of a recording with
    # kernel snapshots): whose connection this is, and why we think so.
    verdict: str | None = None
    evidence: list[str] | None = None
    processes: list[dict] | None = None
    user: str | None = None
    netns: str | None = None
    container: str | None = None
