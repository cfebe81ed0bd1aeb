"""The kernel's view of sockets: one `KernelSocket` per socket, per namespace, attributed.

Sources, per namespace: sock_diag dumps (TCP, UDP, UDP-Lite over IPv4 and IPv6) and the
/proc/net files for raw and ping sockets; then one /proc/*/fd scan for the owners, cgroup ids for
containers and services, and the password database for user names.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field

from sniffer.kernel import diag, procnet
from sniffer.kernel.cgroups import Cgroups, container_of, service_of
from sniffer.kernel.netns import Netns, entered
from sniffer.kernel.procs import Owners
from sniffer.kernel.users import user_name

PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "udplite": diag.IPPROTO_UDPLITE}
DGRAM_STATES = {7: "UNCONN", 1: "ESTABLISHED"}
# States a socket with no file can only be in while waiting in an accept queue.
UNACCEPTED = frozenset({"SYN-RECV", "ESTABLISHED", "CLOSE-WAIT"})


@dataclass(slots=True)
class KernelSocket:
    """One socket as the kernel sees it (the `sniffer sockets --json` record)."""

    netns: str
    netns_inode: int
    proto: str
    family: int
    state: str
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    recv_q: int
    send_q: int
    uid: int
    user: str
    inode: int
    cookie: int
    interface: str | None = None
    processes: list = field(default_factory=list)
    cgroup: str | None = None
    container: str | None = None
    service: str | None = None
    owner: str = "unknown"

    def to_json(self) -> dict:
        return asdict(self)


def ntop(addr: bytes) -> str:
    """Address text, with v4-mapped IPv6 written as IPv4 (as the wire shows it)."""
    if len(addr) == 4:
        return socket.inet_ntop(socket.AF_INET, addr)
    if addr[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, addr[12:])
    return socket.inet_ntop(socket.AF_INET6, addr)


@dataclass(slots=True)
class Raw:
    """What was read inside one namespace, before attribution."""

    ns: Netns
    rows: list = field(default_factory=list)  # (proto, diag tuple, interface name)
    errors: list = field(default_factory=list)


def read_namespace(ns: Netns, protos: set[str], families: set[int]) -> Raw:
    """Dump every wanted table of one namespace (entering it if it is not ours)."""
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
                        for row in diag.dump(sock, af, number):
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
    me = os.geteuid()
    out = []
    for raw in raws:
        ns = raw.ns
        for proto, row, ifname in raw.rows:
            (fam, st, src, sport, dst, dport, _if, cookie, rq, wq, uid, inode, attrs) = row
            state = state_name(proto, st)
            rec = KernelSocket(
                ns.label, ns.inode, proto, 4 if fam == socket.AF_INET else 6, state, ntop(src),
                sport, ntop(dst), dport, rq, wq, uid, user_name(uid), inode, cookie, ifname)
            cg = diag.cgroup_id(attrs) if attrs else None
            if cg:
                rec.cgroup = cgroups.path(cg)
                rec.container = container_of(rec.cgroup)
                rec.service = service_of(rec.cgroup)
            if inode == 0:
                # No file yet (still in a listener's accept queue) or none any more (closed:
                # TIME-WAIT, or an orphan finishing its close).
                rec.owner = ("time-wait" if state == "TIME-WAIT" else
                             "unaccepted" if state in UNACCEPTED else "orphan")
            elif owners is not None:
                rec.processes = owners.holders(inode)
                if rec.processes:
                    rec.owner = "process"
                elif owners.denied and uid != me:
                    rec.owner = "unknown"
                else:
                    rec.owner = "kernel"
            out.append(rec)
    return out


def state_name(proto: str, st: int) -> str:
    """TCP's state names; datagram sockets are UNCONN (7) or ESTABLISHED (1, connected)."""
    if proto == "tcp":
        return diag.TCP_STATES.get(st, str(st))
    return DGRAM_STATES.get(st, str(st))
