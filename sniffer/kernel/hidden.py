"""Sockets one kernel view shows and another hides: the `hidden-socket` check.

A rootkit hides a port by filtering one of the ways user space asks about sockets: the seq
files under /proc/net (what netstat and lsof read), sock_diag netlink (what ss asks), or the
library calls of the asking process itself. Like unhide-tcp, we ask three ways and compare:

* sock_diag dumps of TCP (every state, and sockets bound but neither listening nor connected,
  which kernels from 6.7 list) and UDP, IPv4 and IPv6;
* /proc/net/{tcp,tcp6,udp,udp6};
* optionally a bind probe: bind() to every port of the wildcard address, TCP and UDP, IPv4 and
  IPv6. EADDRINUSE where neither table lists a socket on that port means something holds the
  port unseen. The probe holds each free port for a few microseconds, so a service binding at
  that very moment could fail: it runs only when asked.

Sockets come and go between two reads. Each table is therefore read twice, around the other
(diag, proc, diag, proc): a socket counts as hidden from one view only if the other view shows
it, with the same inode, before and after, so it existed all along. A port the probe finds busy
must stay busy and unlisted through three more rounds of reads and probes. Known, honest
differences are not reported:
bound-only TCP sockets (sock_diag lists them, /proc/net never has).
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sniffer.kernel import diag, procnet
from sniffer.kernel.netns import Netns, entered
from sniffer.kernel.view import ntop, state_name

TCP_BOUND_INACTIVE = 13  # asks for sockets bound, neither listening nor connecting (6.7+)
STATES = diag.ALL_STATES | (1 << TCP_BOUND_INACTIVE)
TCP_CLOSE = 7  # ... which the kernel then reports in this state; /proc/net never lists them
PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
PROBE_PORTS = range(1, 65536)
CONFIRM = 3  # rounds a bind-probe suspect must survive (see bind_probe)
SO_COOKIE = 57  # <linux/socket.h>; not in Python 3.11's socket module

#: Socket cookies of the probe's own sockets, so that their destroy events (a sweep closes
#: ~260,000 sockets) are recognised and dropped (sniffer.kernel.monitor), not recorded and
#: correlated as if some program had opened them. The monitor discards each as it arrives.
PROBE_COOKIES: set[int] = set()
PROBE_COOKIES_MAX = 1 << 20  # events lost to an overflow never discard theirs: forget them


@dataclass(slots=True)
class HiddenSocket:
    """One socket (or busy port) a kernel view does not show."""

    netns: str
    proto: str
    family: int
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    state: str
    inode: int
    seen_in: list[str] = field(default_factory=list)
    missing_from: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = f"{self.local_addr}:{self.local_port}"
        if self.remote_port:
            where += f" -> {self.remote_addr}:{self.remote_port}"
        what = f"{self.proto} {where} {self.state}".rstrip()
        return (f"{what} is seen by {' and '.join(self.seen_in)} but missing from "
                f"{' and '.join(self.missing_from)}")

    def to_json(self) -> dict:
        return {"netns": self.netns, "proto": self.proto, "family": self.family,
                "local_addr": self.local_addr, "local_port": self.local_port,
                "remote_addr": self.remote_addr, "remote_port": self.remote_port,
                "state": self.state, "inode": self.inode, "seen_in": self.seen_in,
                "missing_from": self.missing_from, "summary": self.summary()}


# A socket's identity across views: (proto, family, src, sport, dst, dport, inode) -> state.
Table = dict[tuple, int]


def _diag_table(protos: Iterable[str]) -> Table:
    out: Table = {}
    sock = diag.open_diag_socket()
    try:
        for name in protos:
            for af in (socket.AF_INET, socket.AF_INET6):
                try:
                    rows = list(diag.dump(sock, af, PROTOS[name], STATES, attrs=False))
                except diag.DiagError:
                    continue
                for fam, st, src, sp, dst, dp, _if, _ck, _rq, _wq, _uid, inode, _a in rows:
                    out[(name, fam, src, sp, dst, dp, inode)] = st
    finally:
        sock.close()
    return out


def _proc_table(protos: Iterable[str]) -> Table:
    out: Table = {}
    for name in protos:
        for fam in (4, 6):
            path = f"/proc/thread-self/net/{name}{'6' if fam == 6 else ''}"
            for af, st, src, sp, dst, dp, _rq, _wq, _uid, inode in procnet.read(name, fam, path):
                out[(name, af, src, sp, dst, dp, inode)] = st
    return out


def _finding(ns: Netns, key: tuple, st: int, seen: str, missing: str) -> HiddenSocket:
    name, fam, src, sp, dst, dp, inode = key
    return HiddenSocket(ns.label, name, 4 if fam == socket.AF_INET else 6, ntop(src), sp,
                        ntop(dst), dp, state_name(name, st), inode, [seen], [missing])


def compare_views(ns: Netns, protos: Iterable[str] = ("tcp", "udp")
                  ) -> tuple[list[HiddenSocket], list[Table]]:
    """sock_diag against /proc/net, each read twice around the other.

    Returns the findings and the four tables read (for the bind probe's accounting).
    """
    protos = [p for p in protos if p in PROTOS]
    with entered(ns):
        d1 = _diag_table(protos)
        p1 = _proc_table(protos)
        d2 = _diag_table(protos)
        p2 = _proc_table(protos)
    found = []
    for key, st in d2.items():
        if key in d1 and key not in p1 and key not in p2 and not (
                key[0] == "tcp" and st in (TCP_CLOSE, TCP_BOUND_INACTIVE)):
            found.append(_finding(ns, key, st, "sock_diag", f"/proc/net/{key[0]}"))
    for key, st in p2.items():
        if key in p1 and key not in d2 and key not in d1:
            found.append(_finding(ns, key, st, f"/proc/net/{key[0]}", "sock_diag"))
    return found, [d1, p1, d2, p2]


def _busy(proto: str, family: int, port: int) -> bool:
    """Whether bind() to the wildcard address on `port` fails because the port is taken."""
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        PROBE_COOKIES.add(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8),
                                         sys.byteorder))
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        s.close()
    return False


def _ports(tables: Iterable[Table]) -> set[tuple[str, int]]:
    return {(key[0], key[3]) for t in tables for key in t}


def bind_probe(ns: Netns, accounted: list[Table], protos: Iterable[str] = ("tcp", "udp"),
               ports: Iterable[int] = PROBE_PORTS) -> list[HiddenSocket]:
    """Ports that refuse a bind although no table lists a socket on them.

    A port is accounted for by any socket of the same protocol on it, either family (an IPv6
    socket without IPV6_V6ONLY also holds the IPv4 port). A busy, unaccounted port is read
    and probed again, three times, before it is reported, so a socket born during the sweep
    is not one.
    """
    protos = [p for p in protos if p in PROTOS]
    known = _ports(accounted)
    if len(PROBE_COOKIES) > PROBE_COOKIES_MAX:
        PROBE_COOKIES.clear()
    suspects = []
    with entered(ns):
        for name in protos:
            for af in (socket.AF_INET, socket.AF_INET6):
                for port in ports:
                    if (name, port) not in known and _busy(name, af, port):
                        suspects.append((name, af, port))
        # Dumps are not atomic: a socket born in a hash bucket the dump has passed is missed.
        # Under heavy churn a port can be busy at two probes and missed by the read between
        # them, so a suspect must survive CONFIRM rounds of (read both tables, probe again).
        for _ in range(CONFIRM):
            if not suspects:
                return []
            time.sleep(0.05)
            again = _ports([_diag_table(protos), _proc_table(protos)])
            suspects = [(n, af, p) for n, af, p in suspects
                        if (n, p) not in again and _busy(n, af, p)]
        confirmed = suspects
    return [HiddenSocket(ns.label, n, 4 if af == socket.AF_INET else 6,
                         "0.0.0.0" if af == socket.AF_INET else "::", p, "", 0, "", 0,
                         ["bind probe (EADDRINUSE)"], ["sock_diag", f"/proc/net/{n}"])
            for n, af, p in confirmed]


def check(ns: Netns, probe: bool = False,
          protos: Iterable[str] = ("tcp", "udp")) -> list[HiddenSocket]:
    """Every hidden socket of one namespace; `probe` adds the bind sweep (about 3 s)."""
    found, tables = compare_views(ns, protos)
    if probe:
        found += bind_probe(ns, tables, protos)
    return found
