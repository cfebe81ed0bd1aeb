"""Each namespace's own addresses and routes, through pyroute2's IPRoute.

The cross-reference needs them: a packet that claims one of this host's addresses but arrives
from the wire, and which end of a connection is local, are decided against these sets. The
kernel's local routing table (table 255) is the authority on "is this address mine": it also
holds whole local prefixes such as 127.0.0.0/8 and AnyIP routes.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from sniffer.kernel.netns import Netns, entered

RTN_LOCAL = 2
LOCAL_TABLE = 255


@dataclass(slots=True)
class NetnsAddresses:
    """Addresses on the interfaces of one namespace, and its local and main routes."""

    netns: str
    addresses: list[dict] = field(default_factory=list)  # {interface, address, prefixlen, family}
    local_prefixes: list[str] = field(default_factory=list)  # table 255 RTN_LOCAL routes
    routes: list[dict] = field(default_factory=list)  # main table: {dst, gateway, interface}

    def is_local(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip in ipaddress.ip_network(p, strict=False) for p in self.local_prefixes
                   if ipaddress.ip_network(p, strict=False).version == ip.version)


def read(ns: Netns) -> NetnsAddresses:
    from pyroute2 import IPRoute  # heavy import: only when addresses are asked for

    out = NetnsAddresses(ns.label)
    with entered(ns):
        with IPRoute() as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            for a in ipr.get_addr():
                out.addresses.append({
                    "interface": names.get(a["index"], str(a["index"])),
                    "address": a.get_attr("IFA_ADDRESS"), "prefixlen": a["prefixlen"],
                    "family": 4 if a["family"] == socket.AF_INET else 6})
            for family in (socket.AF_INET, socket.AF_INET6):
                for r in ipr.get_routes(family=family, table=LOCAL_TABLE):
                    if r["type"] == RTN_LOCAL and r.get_attr("RTA_DST"):
                        out.local_prefixes.append(f"{r.get_attr('RTA_DST')}/{r['dst_len']}")
                for r in ipr.get_routes(family=family, table=254):
                    dst = r.get_attr("RTA_DST")
                    out.routes.append({
                        "dst": f"{dst}/{r['dst_len']}" if dst else "default",
                        "gateway": r.get_attr("RTA_GATEWAY"),
                        "interface": names.get(r.get_attr("RTA_OIF"))})
    return out
