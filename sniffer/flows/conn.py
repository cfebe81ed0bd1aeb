"""The connection record that leaves the engine: one row of conn.log.

Also the one definition of what every stage must agree on to name a connection: the text of a
raw address (`ntop`), the protocol names of records and alerts (`proto_name`), and the
canonical key of a TCP/UDP flow (`flow_key`), so that an alert, a conn.log row and a Community
ID of the same packet always match.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

#: IP protocol number -> the ``proto`` of a conn.log record and of an alert: Zeek's
#: transport_proto names, so ICMPv6 (58) is "icmp" as in Zeek's conn.log (``ip_proto`` tells
#: the two apart); any other protocol is "unknown_transport".
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}


def proto_name(proto: int) -> str:
    """The ``proto`` field for IP protocol number `proto`."""
    return PROTO_NAMES.get(proto, "unknown_transport")


def ntop(addr: bytes) -> str:
    """A raw 4- or 16-byte address as text, as the packet carries it (an IPv4-mapped IPv6
    address stays IPv6: it was on the wire as one)."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> tuple:
    """The flow table's key of a TCP or UDP packet, the same for both directions: the lower
    (address, port) end first (UDP keys add ``17``). Addresses are raw bytes."""
    if src < dst or (src == dst and sport < dport):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)


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
    # A forwarded connection (sniffer.ctview): conntrack's entry id, and with NAT the other
    # half of the connection, beyond the translation (the fields nat.orig_h ... nat.resp_p).
    conntrack_id: int | None = None
    nat_orig_h: str | None = None
    nat_orig_p: int | None = None
    nat_resp_h: str | None = None
    nat_resp_p: int | None = None
