"""The kernel's conntrack table, per namespace: what `conntrack -L` lists, as records.

Read through ctnetlink (NETLINK_NETFILTER), one dump of every family (AF_UNSPEC) inside the
namespace, its messages parsed here: pyroute2's parser managed about 2,300 entries a second
(two minutes for a busy router's table, and less than its event rate), this one about 35,000.
A NAT'd flow is one entry whose reply tuple is not the original one reversed: the translation
is computed from the two tuples (`nat`), not only taken from the status bits. Needs
CAP_NET_ADMIN in the namespace's user namespace (nfnetlink refuses every message otherwise),
so a user who is not root gets one usage line, never a traceback.

`sniffer live` also follows the table (`Watch`): a dump, then the NEW and DESTROY events.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
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
NETLINK_NETFILTER = 12
#: ctnetlink's multicast groups (enum nfnetlink_groups) and message types (subsystem 1 << 8).
GROUP_NEW, GROUP_DESTROY = 1, 3
_CT_NEW, _CT_GET, _CT_DELETE = 0x100, 0x101, 0x102
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLM_F_CREATE = 0x400  # a NEW message with it is a new entry; without it, an update
_NLMSGHDR = struct.Struct("=IHH")
_NLMSGHDR_FULL = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_U8, _BE16, _BE32, _BE64 = (struct.Struct(f) for f in ("B", ">H", ">I", ">Q"))
# enum ctattr_type, ctattr_tuple (include/uapi/linux/netfilter/nfnetlink_conntrack.h)
_CTA_TUPLE_ORIG, _CTA_TUPLE_REPLY, _CTA_STATUS, _CTA_PROTOINFO, _CTA_HELP = 1, 2, 3, 4, 5
_CTA_TIMEOUT, _CTA_MARK, _CTA_COUNTERS_ORIG, _CTA_COUNTERS_REPLY = 7, 8, 9, 10
_CTA_USE, _CTA_ID, _CTA_ZONE = 11, 12, 18
_CTA_TUPLE_IP, _CTA_TUPLE_PROTO = 1, 2


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


def _attrs(data: bytes, off: int, end: int) -> dict[int, tuple[int, int]]:
    """The netlink attributes in data[off:end]: type (flags masked) -> (start, end) of the
    payload."""
    out = {}
    while off + 4 <= end:
        length, kind = _NLA.unpack_from(data, off)
        if length < 4:
            break
        out[kind & 0x3FFF] = (off + 4, min(off + length, end))
        off += (length + 3) & ~3
    return out


def _nested(data: bytes, a: dict, kind: int) -> dict:
    span = a.get(kind)
    return _attrs(data, *span) if span else {}


def _u(data: bytes, a: dict, kind: int, fmt: struct.Struct) -> int | None:
    span = a.get(kind)
    if span is None or span[1] - span[0] < fmt.size:
        return None
    return fmt.unpack_from(data, span[0])[0]


def _addr(data: bytes, a: dict, kind: int, family: int) -> str | None:
    span = a.get(kind)
    size = 4 if family == 4 else 16
    if span is None or span[1] - span[0] < size:
        return None
    return socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6,
                            data[span[0]:span[0] + size])


def _tuple(data: bytes, a: dict, family: int) -> tuple[CtTuple, int | None] | None:
    """A CTA_TUPLE_* nest: the tuple and its protocol number (None: not a full tuple)."""
    ip, proto = _nested(data, a, _CTA_TUPLE_IP), _nested(data, a, _CTA_TUPLE_PROTO)
    v6 = 2 if family == 6 else 0  # CTA_IP_V6_SRC/DST follow the V4 ones
    src, dst = _addr(data, ip, 1 + v6, family), _addr(data, ip, 2 + v6, family)
    num = _u(data, proto, 1, _U8)
    if src is None or dst is None or num is None:
        return None
    if num in ICMP_PROTOS:
        first = 4 if num == 1 else 7  # CTA_PROTO_ICMP_ID, _TYPE, _CODE; then the ICMPV6 ones
        icmp = (_u(data, proto, first + 1, _U8), _u(data, proto, first + 2, _U8),
                _u(data, proto, first, _BE16))
        return CtTuple(src, dst, None, None, icmp), num
    return CtTuple(src, dst, _u(data, proto, 2, _BE16), _u(data, proto, 3, _BE16)), num


def _counters(data: bytes, a: dict) -> dict | None:
    orig, reply = _nested(data, a, _CTA_COUNTERS_ORIG), _nested(data, a, _CTA_COUNTERS_REPLY)
    if not orig or not reply:
        return None

    def get(c: dict, what: int) -> int:  # 64-bit counters, or the old 32-bit ones
        value = _u(data, c, what, _BE64)
        return value if value is not None else _u(data, c, what + 2, _BE32) or 0
    return {"orig_packets": get(orig, 1), "orig_bytes": get(orig, 2),
            "reply_packets": get(reply, 1), "reply_bytes": get(reply, 2)}


def parse_entry(ns: Netns, data: bytes, off: int, end: int) -> CtEntry | None:
    """One ctnetlink message (dump reply or event) at data[off:end], header included."""
    family = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(data[off + 16] if end > off + 16 else 0)
    if family is None:
        return None  # another layer 3 (bridge, ARP): not a flow of IP
    a = _attrs(data, off + 20, end)  # after nlmsghdr (16) and nfgenmsg (4)
    orig = _tuple(data, _nested(data, a, _CTA_TUPLE_ORIG), family)
    reply = _tuple(data, _nested(data, a, _CTA_TUPLE_REPLY), family)
    if orig is None or reply is None:
        return None
    (orig, num), (reply, _) = orig, reply
    state = None
    tcp = _nested(data, _nested(data, a, _CTA_PROTOINFO), 1)  # CTA_PROTOINFO_TCP
    if tcp:
        code = _u(data, tcp, 1, _U8)  # CTA_PROTOINFO_TCP_STATE
        state = TCP_STATES.get(code, f"STATE_{code}")
    helper = _nested(data, a, _CTA_HELP).get(1)  # CTA_HELP_NAME
    if helper is not None:
        helper = data[helper[0]:helper[1]].split(b"\0", 1)[0].decode("ascii", "replace")
    return CtEntry(ns.label, ns.inode, family, PROTO_NAMES.get(num, "unknown"), num, orig, reply,
                   state, _u(data, a, _CTA_TIMEOUT, _BE32),
                   status_names(_u(data, a, _CTA_STATUS, _BE32) or 0),
                   _u(data, a, _CTA_MARK, _BE32) or 0, _u(data, a, _CTA_ZONE, _BE16) or 0,
                   _u(data, a, _CTA_ID, _BE32), _u(data, a, _CTA_USE, _BE32), helper,
                   _counters(data, a), nat_kind(orig, reply))


def _messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, flags, start, end) of each netlink message in one datagram."""
    off = 0
    while off + 16 <= len(data):
        length, msg_type, flags = _NLMSGHDR.unpack_from(data, off)
        if length < 16:
            return
        yield msg_type, flags, off, min(off + length, len(data))
        off += (length + 3) & ~3


def dump(ns: Netns) -> Iterator[CtEntry]:
    """Every conntrack entry of `ns`, IPv4 and IPv6, as the dump yields them (a busy router
    holds hundreds of thousands: consumers take them a chunk at a time). The caller is in
    `ns` (or in `entered(ns)`); an error comes as OSError with the kernel's errno."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        # nlmsghdr + nfgenmsg (AF_UNSPEC: every family, version 0, res_id 0)
        sock.send(_NLMSGHDR_FULL.pack(20, _CT_GET, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
                  + b"\0\0\0\0")
        while True:
            data = sock.recv(1 << 20)
            for msg_type, _flags, off, end in _messages(data):
                if msg_type == _NLMSG_DONE:
                    return
                if msg_type == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, off + 16)[0] if end >= off + 20 else 0
                    if code:
                        raise OSError(code, os.strerror(code))
                    return
                if msg_type == _CT_NEW:
                    entry = parse_entry(ns, data, off, end)
                    if entry is not None:
                        yield entry
    finally:
        sock.close()


def open_events(ns: Netns, rcvbuf: int = 32 << 20) -> socket.socket:
    """A ctnetlink socket in `ns` subscribed to the NEW and DESTROY event groups.

    `read_events` drains it without waiting. Binding the groups needs CAP_NET_ADMIN
    (PermissionError otherwise); a large buffer (SO_RCVBUFFORCE, root only) absorbs bursts,
    and an overflow shows as ENOBUFS.
    """
    with entered(ns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, (1 << (GROUP_NEW - 1)) | (1 << (GROUP_DESTROY - 1))))
    except OSError:
        sock.close()
        raise
    return sock


def read_events(sock: socket.socket, ns: Netns,
                limit: int = 8192) -> list[tuple[str, CtEntry]]:
    """The ("new" | "destroy", entry) events waiting on `sock` (at most about `limit`, so one
    poll cannot stall the capture: the rest wait for the next); raises OSError(ENOBUFS) when
    the kernel dropped some."""
    out: list[tuple[str, CtEntry]] = []
    while len(out) < limit:
        try:
            data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        for msg_type, flags, off, end in _messages(data):
            what = ("new" if msg_type == _CT_NEW and flags & _NLM_F_CREATE else
                    "destroy" if msg_type == _CT_DELETE else None)
            if what is not None:
                entry = parse_entry(ns, data, off, end)
                if entry is not None:
                    out.append((what, entry))
    return out


def read(ns: Netns) -> list[CtEntry]:
    """Every conntrack entry of `ns` (entering it if it is not ours), IPv4 and IPv6."""
    with entered(ns):
        try:
            return list(dump(ns))
        except OSError as exc:
            if exc.errno == 1:  # EPERM
                raise UsageError(f"--conntrack: reading the conntrack table of {ns.label} needs "
                                 "CAP_NET_ADMIN (run as root)") from None
            raise UsageError(f"--conntrack: namespace {ns.label}: cannot read the conntrack "
                             f"table ({exc})") from None


#: Entries per `conntrack` event: a dump of a busy router is many events, never one huge one.
CHUNK = 1000
#: With conntrack events off (net.netfilter.nf_conntrack_events=0) the table is dumped again
#: on each poll at most this often (seconds): the dumps are then the only view.
DUMP_EVERY = 5.0


class Watch:
    """`sniffer live`'s view of the namespace's conntrack table: a dump at start, then the
    kernel's NEW and DESTROY events, each handed to `sink(ts, event)` as a `conntrack` event
    (the same dicts a recording stores, so `read` replays them):

        {"kind": "conntrack", "netns": ..., "event": "dump" | "new" | "destroy" | "lost",
         "entries": [CtEntry.to_json(), ...], "events": bool (dump only)}

    "lost": the kernel dropped events (its buffer overflowed); a dump follows.
    """

    def __init__(self, ns: Netns, sink) -> None:
        self.ns, self.sink = ns, sink
        self.sock = open_events(ns)  # before the dump: nothing falls between the two
        self.events_on = _events_enabled(ns)
        self.next_dump = 0.0  # monotonic time of the next dump (events off only)
        self.dump_error: str | None = None

    def dump(self, ts: float) -> str | None:
        """Dump the table as `dump` events of CHUNK entries (at least one event); None, or
        why the dump failed (the events already sent stand)."""
        import time

        self.next_dump = time.monotonic() + DUMP_EVERY
        chunk: list[dict] = []
        sent = False
        try:
            with entered(self.ns):
                for entry in dump(self.ns):
                    chunk.append(entry.to_json())
                    if len(chunk) >= CHUNK:
                        self._send(ts, "dump", chunk)
                        chunk, sent = [], True
        except OSError as exc:
            self.dump_error = ("reading the table needs CAP_NET_ADMIN" if exc.errno == 1 else
                               f"cannot read the table ({exc})")
            return self.dump_error
        if chunk or not sent:
            self._send(ts, "dump", chunk)
        return None

    def poll(self, ts: float) -> None:
        """Hand over the events waiting, in order (a run of one kind is one event); after an
        overflow, say so (`lost`) and dump again."""
        import errno
        import time
        try:
            events = read_events(self.sock, self.ns)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            self.sink(ts, {"kind": "conntrack", "netns": self.ns.label, "event": "lost",
                           "entries": []})
            self.dump(ts)  # what is there now; the events after it come at the next poll
            return
        run: list[dict] = []
        kind = None
        for what, entry in events:
            if what != kind or len(run) >= CHUNK:
                if run:
                    self._send(ts, kind, run)
                kind, run = what, []
            run.append(entry.to_json())
        if run:
            self._send(ts, kind, run)
        if not self.events_on and self.dump_error is None and time.monotonic() >= self.next_dump:
            self.dump(ts)

    def close(self) -> None:
        self.sock.close()

    def _send(self, ts: float, what: str, entries: list[dict]) -> None:
        ev = {"kind": "conntrack", "netns": self.ns.label, "event": what, "entries": entries}
        if what == "dump":
            ev["events"] = self.events_on
        self.sink(ts, ev)


def _events_enabled(ns: Netns) -> bool:
    """net.netfilter.nf_conntrack_events of `ns` (0: the kernel sends no events; 1 and 2, the
    default: it does, to listeners)."""
    try:
        with entered(ns), open("/proc/sys/net/netfilter/nf_conntrack_events") as f:
            return f.read().strip() != "0"
    except OSError:
        return True  # not readable: assume the default
