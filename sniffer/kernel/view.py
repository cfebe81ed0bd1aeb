"""The kernel's view of sockets: one `KernelSocket` per socket, per namespace, attributed.

Sources, per namespace: sock_diag dumps (TCP, UDP, UDP-Lite over IPv4 and IPv6) and the
/proc/net files for raw and ping sockets; then one /proc/*/fd scan for the owners, cgroup ids for
containers and services, and the password database for user names.
"""

from __future__ import annotations

import socket

from sniffer.flows.conn import ntop as wire_ntop
from sniffer.kernel import diag, procnet
from sniffer.kernel.cgroups import Cgroups, container_of, service_of
from sniffer.kernel.netns import Netns, entered
from sniffer.kernel.procs import Owners
from sniffer.kernel.users import user_name

PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "udplite": diag.IPPROTO_UDPLITE}
DGRAM_STATES = {7: "UNCONN", 1: "ESTABLISHED"}
# States a socket with no file can only be in while waiting in an accept queue.
UNACCEPTED = frozenset({"SYN-RECV", "ESTABLISHED", "CLOSE-WAIT"})


class KernelSocket:
    """One socket as the kernel sees it (the `sniffer sockets --json` record).

    A plain slotted class rather than a dataclass: `sniffer sockets` builds one per socket,
    tens of thousands per run, and the start-up of the dataclasses module alone is a tenth of
    what `ss` needs for the whole job.
    """

    FIELDS = ("netns", "netns_inode", "proto", "family", "state", "local_addr", "local_port",
              "remote_addr", "remote_port", "recv_q", "send_q", "uid", "user", "inode", "cookie",
              "interface", "processes", "cgroup_id", "cgroup", "container", "service", "owner")
    __slots__ = FIELDS

    def __init__(self, netns: str, netns_inode: int, proto: str, family: int, state: str,
                 local_addr: str, local_port: int, remote_addr: str, remote_port: int,
                 recv_q: int, send_q: int, uid: int, user: str, inode: int, cookie: int,
                 interface: str | None = None, owner: str = "unknown") -> None:
        self.netns, self.netns_inode, self.proto, self.family = netns, netns_inode, proto, family
        self.state, self.local_addr, self.local_port = state, local_addr, local_port
        self.remote_addr, self.remote_port, self.recv_q, self.send_q = (
            remote_addr, remote_port, recv_q, send_q)
        self.uid, self.user, self.inode, self.cookie = uid, user, inode, cookie
        self.interface = interface
        self.processes: list[dict] = []
        self.cgroup_id: int | None = None
        self.cgroup = self.container = self.service = None
        self.owner = owner

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


_TEXT: dict[bytes, str] = {}
_V4MAPPED = b"\0" * 10 + b"\xff\xff"


def ntop(addr: bytes) -> str:
    """Address text, with v4-mapped IPv6 written as IPv4 (as the wire shows it).

    Cached: a host's sockets share few addresses, and this runs twice per socket.
    """
    text = _TEXT.get(addr)
    if text is None:
        if len(_TEXT) > 65536:
            _TEXT.clear()
        text = _TEXT[addr] = _ntop(addr)
    return text


def _ntop(addr: bytes) -> str:
    """`sniffer.flows.conn.ntop`, but a v4-mapped socket address is the IPv4 one its packets
    carry (a dual-stack socket's peer 10.0.0.2 is ::ffff:10.0.0.2 to the kernel)."""
    if addr[:12] == _V4MAPPED:
        return wire_ntop(addr[12:])
    return wire_ntop(addr)


class Raw:
    """What was read inside one namespace, before attribution."""

    __slots__ = ("ns", "rows", "errors")

    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self.rows: list = []  # (proto, diag tuple, interface name)
        self.errors: list[str] = []


def read_namespace(ns: Netns, protos: set[str], families: set[int], attrs: bool = True) -> Raw:
    """Dump every wanted table of one namespace (entering it if it is not ours).

    `attrs` False skips the netlink attributes (cgroup ids), for outputs that do not show them.
    """
    raw = Raw(ns)
    with entered(ns):
        sock = diag.open_diag_socket()
        try:
            for name, number in PROTOS.items():
                if name not in protos:
                    continue
                for fam in (4, 6):
                    if fam not in families:
                        continue
                    af = socket.AF_INET if fam == 4 else socket.AF_INET6
                    try:
                        for row in diag.dump(sock, af, number, attrs=attrs):
                            raw.rows.append((name, row, _ifname(row[6])))
                    except diag.DiagError as exc:
                        if exc.errno != 2 or name != "udplite":  # no UDP-Lite module: nothing to say
                            raw.errors.append(f"{name}/{fam}: {exc.strerror}")
        finally:
            sock.close()
        for name, fam, path in procnet.FILES:
            if name in protos and fam in families:
                for r in procnet.read(name, fam, path):
                    f, st, src, sp, dst, dp, rq, wq, uid, inode = r
                    raw.rows.append((name, (f, st, src, sp, dst, dp, 0, 0, rq, wq, uid, inode, {}),
                                     None))
    return raw


def _ifname(index: int) -> str | None:
    if not index:
        return None
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def attribute(raws: list[Raw], owners: Owners | None) -> list[KernelSocket]:
    """Turn raw rows into records with processes, user, cgroup, container and owner reason."""
    cgroups = Cgroups()
    out = []
    append = out.append
    holders = owners.holders if owners is not None else None
    by_inode = owners.by_inode if owners is not None else {}
    for raw in raws:
        label, ns_inode = raw.ns.label, raw.ns.inode
        for proto, row, ifname in raw.rows:
            (fam, st, src, sport, dst, dport, _if, cookie, rq, wq, uid, inode, attrs) = row
            state = diag.TCP_STATES.get(st, str(st)) if proto == "tcp" else \
                DGRAM_STATES.get(st, str(st))
            rec = KernelSocket(label, ns_inode, proto, 4 if fam == 2 else 6, state, ntop(src),
                               sport, ntop(dst), dport, rq, wq, uid, user_name(uid), inode, cookie,
                               ifname)
            if attrs:
                cg = diag.cgroup_id(attrs)
                if cg:
                    rec.cgroup_id = cg
                    rec.cgroup = cgroups.path(cg)
                    rec.container = container_of(rec.cgroup)
                    rec.service = service_of(rec.cgroup)
            if inode == 0:
                # No file yet (still in a listener's accept queue) or none any more (closed:
                # TIME-WAIT, or an orphan finishing its close).
                rec.owner = ("time-wait" if state == "TIME-WAIT" else
                             "unaccepted" if state in UNACCEPTED else "orphan")
            elif holders is not None:
                if inode in by_inode:
                    rec.processes = holders(inode)
                    rec.owner = "process"
                elif owners.blind:
                    # Some /proc/PID/fd could not be read (not root, hidepid): any of those
                    # processes may hold it, whatever the socket's uid (a root process can own
                    # a socket made under another uid, PID 1 holds socket-activated listeners).
                    rec.owner = "unknown"
                elif proto == "tcp" and state != "LISTEN":
                    # A connection with a file that no process has open: its descriptor is in
                    # flight in a unix socket (SCM_RIGHTS), the way a program hides a socket
                    # from lsof, or a kernel service's connection (NFS, SMB, iSCSI).
                    rec.owner = "no-process"
                else:
                    rec.owner = "kernel"  # tunnel endpoints (VXLAN, WireGuard), kernel servers
            append(rec)
    return out


def state_name(proto: str, st: int) -> str:
    """TCP's state names; datagram sockets are UNCONN (7) or ESTABLISHED (1, connected)."""
    if proto == "tcp":
        return diag.TCP_STATES.get(st, str(st))
    return DGRAM_STATES.get(st, str(st))
