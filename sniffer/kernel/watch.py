"""`--watch`: keep the kernel view live, so sockets that live less than a poll still show.

Each namespace gets a sock_diag socket subscribed to the destroy groups: the kernel sends one
message per freed TCP/UDP socket, with its final tcp_info counters but no inode or uid, so
ownership comes from the last dump that saw the socket (joined on the socket cookie). Dumps
repeat every `interval` seconds to find new sockets; an overflow (ENOBUFS) triggers an
immediate re-dump and a `resync` event, so a gap is visible rather than silent.
"""

from __future__ import annotations

import errno
import select
import time
from collections.abc import Callable

from sniffer.kernel import diag
from sniffer.kernel.netns import Netns, entered
from sniffer.kernel.procs import Owners
from sniffer.kernel.view import KernelSocket, attribute, ntop, read_namespace, state_name

PROTO_NAMES = {6: "tcp", 17: "udp", diag.IPPROTO_UDPLITE: "udplite"}


class Watcher:
    """Streams events to `emit(event_name, record_dict)` until interrupted."""

    def __init__(self, namespaces: list[Netns], protos: set[str], families: set[int],
                 emit: Callable[[str, dict], None], interval: float = 1.0,
                 keep: Callable[[KernelSocket], bool] = lambda s: True,
                 buffer: int = 32 << 20) -> None:
        self.namespaces = namespaces
        self.protos = protos
        self.families = families
        self.emit = emit
        self.interval = interval
        self.keep = keep
        self.buffer = buffer
        self.known: dict[tuple[int, int], KernelSocket] = {}  # (netns inode, cookie) -> socket
        self.listeners: dict[int, tuple[Netns, object]] = {}

    def _subscribe(self) -> None:
        for ns in self.namespaces:
            with entered(ns):
                sock = diag.open_destroy_listener(diag.open_diag_socket(), self.buffer)
            self.listeners[sock.fileno()] = (ns, sock)

    def _dump(self, event_for_new: str) -> None:
        owners = Owners.scan()
        seen = set()
        for rec in attribute([read_namespace(ns, self.protos, self.families)
                              for ns in self.namespaces], owners):
            if not rec.cookie:
                continue
            key = (rec.netns_inode, rec.cookie)
            seen.add(key)
            if key not in self.known:
                self.known[key] = rec
                if self.keep(rec):
                    self.emit(event_for_new, rec.to_json())
        for key in [k for k in self.known if k not in seen]:
            rec = self.known.pop(key)
            if rec.state == "TIME-WAIT" and self.keep(rec):  # TIME-WAIT ends without an event
                self.emit("gone", rec.to_json())

    def _destroyed(self, ns: Netns, row: tuple) -> None:
        fam, st, src, sport, dst, dport, ifindex, cookie, rq, wq, uid, inode, attrs = row
        proto = PROTO_NAMES.get(attrs.get(diag.INET_DIAG_PROTOCOL, b"\x06")[0], "tcp")
        rec = self.known.pop((ns.inode, cookie), None)
        if rec is None:  # born and gone between two dumps: no owner known
            rec = KernelSocket(ns.label, ns.inode, proto, 4 if fam == 2 else 6,
                               state_name(proto, st), ntop(src), sport, ntop(dst), dport, rq, wq,
                               uid, "", inode, cookie, owner="unknown")
        if not self.keep(rec):
            return
        out = rec.to_json()
        info = diag.tcp_info(attrs)
        if info:
            out.update(info)
        out["final_state"] = state_name(proto, st)
        self.emit("destroy", out)

    def run(self) -> None:
        self._subscribe()
        self.emit("watching", {"netns": [ns.label for ns in self.namespaces],
                               "interval": self.interval})
        self._dump("open")
        next_dump = time.monotonic() + self.interval
        fds = list(self.listeners)
        while True:
            timeout = max(0.0, next_dump - time.monotonic())
            ready, _, _ = select.select(fds, [], [], timeout)
            for fd in ready:
                ns, sock = self.listeners[fd]
                while True:
                    try:
                        rows = list(diag.read_events(sock))
                    except OSError as exc:
                        if exc.errno != errno.ENOBUFS:
                            raise
                        self.emit("resync", {"netns": ns.label,
                                             "reason": "kernel dropped destroy events (ENOBUFS)"})
                        self._dump("open")
                        continue
                    if not rows:
                        break
                    for row in rows:
                        self._destroyed(ns, row)
            if time.monotonic() >= next_dump:
                self._dump("open")
                next_dump = time.monotonic() + self.interval
