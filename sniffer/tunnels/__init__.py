"""Tunnels: protocols that carry whole packets inside packets (GRE, IP-in-IP, VXLAN, Geneve, ...).

Each tunnel is one small module with one decapsulating function, registered here by the UDP port
or IP protocol that carries it, in the manner of Zeek's packet analyzers. A decapsulator takes
the tunnel's payload (the bytes after the outer UDP or IP header) and answers with one of:

* ``(linktype, offset, tunnel_type)``: the inner frame starts at ``payload[offset:]`` and is
  decoded from ``linktype`` (1 Ethernet, 101 raw IP, 105 802.11) by the ordinary decoder;
* a ``str``: the name of the anomaly that stops decapsulation (Zeek's weird or violation name);
* ``None``: a valid tunnel message that carries no packet (a GTP-C message, an AYIYA heartbeat).

The flow table (sniffer.flows.table) calls them: it owns the outer connection, the
encapsulation stack and each inner connection's ``tunnel_parents``.
"""

from __future__ import annotations

from collections.abc import Callable

Decap = Callable[[bytes], "tuple[int, int, str] | str | None"]

LINK_ETHERNET, LINK_RAW, LINK_80211 = 1, 101, 105

#: UDP tunnels by responder port (Zeek dispatches on the connection's responder port).
UDP_PORTS: dict[int, Decap] = {}
#: UDP tunnels tried on any other port when their signature matches (Zeek's protocol detection).
UDP_DETECTORS: list[tuple[Callable[[bytes], bool], Decap]] = []
#: Tunnels carried directly by IP (protocol 4, 41, 47).
IP_PROTOS: dict[int, Decap] = {}
#: Tunnel types whose parent is the IP address pair rather than a UDP connection: Zeek keeps
#: one uid per pair of tunnel endpoints for them, and logs no connection of their own.
IP_LEVEL = frozenset({"IP", "GRE"})
#: Zeek's Tunnel::max_depth: deeper nesting is an anomaly, not decapsulated.
MAX_DEPTH = 4


def _registrar(table: dict[int, Decap]) -> Callable[..., Callable[[Decap], Decap]]:
    def register(*keys: int) -> Callable[[Decap], Decap]:
        def add(fn: Decap) -> Decap:
            for key in keys:
                table[key] = fn
            return fn
        return add
    return register


#: ``@register_udp(4789)``: the function opens UDP packets to that responder port.
register_udp = _registrar(UDP_PORTS)
#: ``@register_ip(47)``: the function opens packets of that IP protocol.
register_ip = _registrar(IP_PROTOS)


def register_detector(detect: Callable[[bytes], bool]) -> Callable[[Decap], Decap]:
    """``@register_detector(test)``: try the function on UDP payloads `test` accepts, any port."""
    def add(fn: Decap) -> Decap:
        UDP_DETECTORS.append((detect, fn))
        return fn
    return add


def exact_ip(data: bytes, off: int, version: int | None = None) -> str | None:
    """Zeek's IP::ParsePacket: an inner IP packet that fills the rest of `data` exactly.

    Returns the anomaly name, or None when the packet is whole. `version` pins 4 or 6.
    """
    n = len(data) - off
    if n < 1:
        return "truncated_inner_IP"
    v = data[off] >> 4
    if version is not None and v != version or v not in (4, 6):
        return "invalid_inner_IP_version"
    if v == 4:
        if n < 20:
            return "truncated_inner_IP"
        total = (data[off + 2] << 8) | data[off + 3]
    else:
        if n < 40:
            return "truncated_inner_IP"
        total = ((data[off + 4] << 8) | data[off + 5]) + 40
    if n < total:
        return "truncated_inner_IP"
    if n > total:
        return "inner_IP_payload_length_mismatch"
    return None


# The registrations: importing the modules fills the tables above.
from sniffer.tunnels import ayiya, geneve, gre, gtp, ipip, teredo, vxlan  # noqa: E402,F401
