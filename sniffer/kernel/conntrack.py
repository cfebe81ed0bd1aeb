"""The kernel's conntrack table, per namespace: what `conntrack -L` lists, as records.

Read through ctnetlink (NETLINK_NETFILTER) with pyroute2's NFCTSocket, one dump of every
family (AF_UNSPEC) inside the namespace. A NAT'd flow is one entry whose reply tuple is not the
original one reversed: the translation is computed from the two tuples (`nat`), not only taken
from the status bits. Needs CAP_NET_ADMIN in the namespace's user namespace (nfnetlink refuses
every message otherwise), so a user who is not root gets one usage line, never a traceback.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from sniffer.errors import UsageError
from sniffer.kernel.netns import Netns, entered

#: IP protocol numbers as conntrack -L names them.
PROTO_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 41: "ipv6", 47: "gre",
               58: "icmpv6", 132: "sctp", 136: "udplite"}
#: TCP conntrack states (include/uapi/linux/netfilter/nf_conntrack_tcp.h), as conntrack -L
#: writes them; 9 was LISTEN and is SYN_SENT2 (simultaneous open) since Linux 2.6.31.
TCP_STATES = {0: "NONE", 1: "SYN_SENT", 2: "SYN_RECV", 3: "ESTABLISHED", 4: "FIN_WAIT",
              5: "CLOSE_WAIT", 6: "LAST_ACK", 7: "TIME_WAIT", 8: "CLOSE", 9: "SYN_SENT2"}
#: Status bits (include/uapi/linux/netfilter/nf_conntrack_common.h), lowest first.
STATUS_BITS = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
               "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
               "TEMPLATE", "UNTRACKED", "HELPER", "OFFLOAD", "HW_OFFLOAD")
ICMP_PROTOS = frozenset({1, 58})


@dataclass(slots=True)
class CtTuple:
    """One direction of a flow as conntrack keys it. ICMP has no ports: `sport`/`dport` are
    None and `icmp` holds (type, code, id)."""

    src: str
    dst: str
    sport: int | None
    dport: int | None
    icmp: tuple[int, int, int] | None = None

    def to_json(self) -> dict:
        out: dict = {"src": self.src, "dst": self.dst, "sport": self.sport, "dport": self.dport}
        if self.icmp is not None:
            out["type"], out["code"], out["id"] = self.icmp
        return out


@dataclass(slots=True)
class CtEntry:
    """One conntrack entry (the `sniffer sockets --conntrack --json` record)."""

    netns: str
    netns_inode: int
    family: int  # 4 or 6
    proto: str
    proto_num: int
    orig: CtTuple
    reply: CtTuple
    state: str | None  # TCP only
    timeout: int | None
    status: list[str]
    mark: int
    zone: int
    id: int | None
    use: int | None
    helper: str | None
    counters: dict | None  # {orig_packets, orig_bytes, reply_packets, reply_bytes}: accounting on
    nat: str | None  # "SNAT", "DNAT", "SNAT+DNAT": the reply tuple is not the original reversed

    def to_json(self) -> dict:
        return {"netns": self.netns, "netns_inode": self.netns_inode, "family": self.family,
                "proto": self.proto, "proto_num": self.proto_num, "orig": self.orig.to_json(),
                "reply": self.reply.to_json(), "state": self.state, "timeout": self.timeout,
                "status": self.status, "mark": self.mark, "zone": self.zone, "id": self.id,
                "use": self.use, "helper": self.helper, "counters": self.counters,
                "nat": self.nat}

    def addresses(self) -> tuple[str, ...]:
        return (self.orig.src, self.orig.dst, self.reply.src, self.reply.dst)

    def ports(self) -> tuple[int | None, ...]:
        return (self.orig.sport, self.orig.dport, self.reply.sport, self.reply.dport)


def nat_kind(orig: CtTuple, reply: CtTuple) -> str | None:
    """What translation the tuples show. Without NAT the reply tuple is the original reversed;
    a changed reply destination is the source rewritten (SNAT, masquerade), a changed reply
    source the destination rewritten (DNAT, a port forward)."""
    snat = (reply.dst, reply.dport) != (orig.src, orig.sport)
    dnat = (reply.src, reply.sport) != (orig.dst, orig.dport)
    if snat and dnat:
        return "SNAT+DNAT"
    return "SNAT" if snat else "DNAT" if dnat else None


def status_names(bits: int) -> list[str]:
    return [name for i, name in enumerate(STATUS_BITS) if bits & (1 << i)]


def _tuple(nla, family: int) -> CtTuple:
    ip, proto = nla.get_attr("CTA_TUPLE_IP"), nla.get_attr("CTA_TUPLE_PROTO")
    v = "V4" if family == 4 else "V6"
    src, dst = ip.get_attr(f"CTA_IP_{v}_SRC"), ip.get_attr(f"CTA_IP_{v}_DST")
    num = proto.get_attr("CTA_PROTO_NUM")
    if num in ICMP_PROTOS:
        p = "CTA_PROTO_ICMP" if num == 1 else "CTA_PROTO_ICMPV6"
        icmp = (proto.get_attr(f"{p}_TYPE"), proto.get_attr(f"{p}_CODE"), proto.get_attr(f"{p}_ID"))
        return CtTuple(src, dst, None, None, icmp)
    return CtTuple(src, dst, proto.get_attr("CTA_PROTO_SRC_PORT"),
                   proto.get_attr("CTA_PROTO_DST_PORT"))


def _counters(msg) -> dict | None:
    orig, reply = msg.get_attr("CTA_COUNTERS_ORIG"), msg.get_attr("CTA_COUNTERS_REPLY")
    if orig is None or reply is None:
        return None

    def get(nla, what: str) -> int:
        value = nla.get_attr(f"CTA_COUNTERS_{what}")
        return value if value is not None else nla.get_attr(f"CTA_COUNTERS32_{what}") or 0
    return {"orig_packets": get(orig, "PACKETS"), "orig_bytes": get(orig, "BYTES"),
            "reply_packets": get(reply, "PACKETS"), "reply_bytes": get(reply, "BYTES")}


def _entry(ns: Netns, msg) -> CtEntry | None:
    family = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(msg["nfgen_family"])
    orig_nla, reply_nla = msg.get_attr("CTA_TUPLE_ORIG"), msg.get_attr("CTA_TUPLE_REPLY")
    if family is None or orig_nla is None or reply_nla is None:
        return None  # another layer 3 (bridge, ARP): not a flow of IP
    orig, reply = _tuple(orig_nla, family), _tuple(reply_nla, family)
    num = orig_nla.get_attr("CTA_TUPLE_PROTO").get_attr("CTA_PROTO_NUM")
    state = None
    info = msg.get_attr("CTA_PROTOINFO")
    tcp = info.get_attr("CTA_PROTOINFO_TCP") if info is not None else None
    if tcp is not None:
        code = tcp.get_attr("CTA_PROTOINFO_TCP_STATE")
        state = TCP_STATES.get(code, f"STATE_{code}")
    status = status_names(msg.get_attr("CTA_STATUS") or 0)
    return CtEntry(ns.label, ns.inode, family, PROTO_NAMES.get(num, "unknown"), num, orig, reply,
                   state, msg.get_attr("CTA_TIMEOUT"), status,
                   msg.get_attr("CTA_MARK") or 0, msg.get_attr("CTA_ZONE") or 0,
                   msg.get_attr("CTA_ID"), msg.get_attr("CTA_USE"), msg.get_attr("CTA_HELP"),
                   _counters(msg), nat_kind(orig, reply))


def read(ns: Netns) -> list[CtEntry]:
    """Every conntrack entry of `ns` (entering it if it is not ours), IPv4 and IPv6."""
    from pyroute2.netlink.exceptions import NetlinkError  # heavy import: only when asked
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTSocket

    out: list[CtEntry] = []
    with entered(ns):
        try:
            with NFCTSocket(nfgen_family=socket.AF_UNSPEC) as ct:
                for msg in ct.dump():
                    entry = _entry(ns, msg)
                    if entry is not None:
                        out.append(entry)
        except (NetlinkError, OSError) as exc:
            code = exc.code if isinstance(exc, NetlinkError) else exc.errno
            if code == 1:  # EPERM
                raise UsageError(f"--conntrack: reading the conntrack table of {ns.label} needs "
                                 "CAP_NET_ADMIN (run as root)") from None
            raise UsageError(f"--conntrack: namespace {ns.label}: cannot read the conntrack "
                             f"table ({exc})") from None
    return out
