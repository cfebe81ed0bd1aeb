"""`--watch`: keep the kernel view live, so sockets that live less than a poll still show.

Each namespace gets a sock_diag socket subscribed to the destroy groups: the kernel sends one
message per freed TCP/UDP socket, with its final tcp_info counters but no inode or uid, so
ownership comes from the last dump that saw the socket (joined on the socket cookie). Dumps
repeat every `interval` seconds to find new sockets; an overflow (ENOBUFS) triggers an
immediate re-dump and a `resync` event, so a gap is visible rather than silent.

With `rescan` (`--all-netns`), the namespaces themselves are looked for again at each dump:
one created since is watched from then on (`netns-new`), one that went away is dropped
(`netns-gone`). Our destroy listener holds a reference to its namespace, so a deleted one
lives on until we let go of it; it is recognised as gone when no name and no process refers
to it any more.
"""

from __future__ import annotations

import errno
import select
import time
from collections.abc import Callable

from sniffer.errors import UsageError
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
                 buffer: int = 32 << 20,
                 rescan: Callable[[], list[Netns]] | None = None) -> None:
        self.namespaces = namespaces
        self.rescan = rescan
        self.protos = protos
        self.families = families
        self.emit = emit
        self.interval = interval
        self.keep = keep
        self.buffer = buffer
        self.known: dict[tuple[int, int], KernelSocket] = {}  # (netns inode, cookie) -> socket
        # Sockets the last dump no longer showed: their destroy event may still be queued
        # (the socket went while the dump ran), and must still name their owner.
        self.vanished: dict[tuple[int, int], KernelSocket] = {}
        self.listeners: dict[int, tuple[Netns, object]] = {}

    def _subscribe(self) -> None:
        for ns in list(self.namespaces):
            try:
                self._listen(ns)
            except UsageError:
                if self.rescan is None:
                    raise
                # --all-netns: gone between being listed and being entered
                self.namespaces = [n for n in self.namespaces if n.inode != ns.inode]

    def _listen(self, ns: Netns) -> None:
        with entered(ns):
            sock = diag.open_destroy_listener(diag.open_diag_socket(), self.buffer)
        self.listeners[sock.fileno()] = (ns, sock)

    def _update_namespaces(self) -> None:
        """`--all-netns`: start watching namespaces created since, stop on those gone."""
        if self.rescan is None:
            return
        now = {ns.inode: ns for ns in self.rescan()}
        mine = {ns.inode for ns in self.namespaces}
        for fd, (ns, sock) in list(self.listeners.items()):
            if ns.inode not in now:
                self._forget(fd, "no name and no process refers to it any more")
            elif now[ns.inode].path != ns.path:  # its process ended, another one is in it
                moved = ns._replace(path=now[ns.inode].path)
                self.listeners[fd] = (moved, sock)
                self.namespaces = [moved if n.inode == ns.inode else n for n in self.namespaces]
        for ino, ns in now.items():
            if ino in mine:
                continue
            try:
                self._listen(ns)
            except (UsageError, OSError):  # gone again already, or not ours to enter
                continue
            self.namespaces.append(ns)
            self.emit("netns-new", {"netns": ns.label, "netns_inode": ns.inode})

    def _forget(self, fd: int, reason: str) -> None:
        ns, sock = self.listeners.pop(fd)
        try:  # what its last sockets said before it went
            while rows := list(diag.read_events(sock)):
                for row in rows:
                    self._destroyed(ns, row)
        except OSError:
            pass
        sock.close()
        self.namespaces = [n for n in self.namespaces if n.inode != ns.inode]
        for key in [k for k in self.known if k[0] == ns.inode]:
            del self.known[key]
        self.emit("netns-gone", {"netns": ns.label, "netns_inode": ns.inode, "reason": reason})

    def _read_all(self) -> list:
        raws = []
        for ns in list(self.namespaces):
            try:
                raws.append(read_namespace(ns, self.protos, self.families))
            except UsageError as exc:
                if self.rescan is None:
                    raise  # --netns NAME: the one namespace asked for must stay readable
                fd = next(f for f, (n, _) in self.listeners.items() if n.inode == ns.inode)
                self._forget(fd, f"it can no longer be entered ({exc})")
        return raws

    def _dump(self, event_for_new: str) -> None:
        self._update_namespaces()
        # The tables first, then the processes: a socket made between the two is not in this
        # dump, rather than in it without its owner (and remembered so until destroyed).
        raws = self._read_all()
        seen = set()
        for rec in attribute(raws, Owners.scan()):
            if not rec.cookie:
                continue
            key = (rec.netns_inode, rec.cookie)
            seen.add(key)
            if key not in self.known:
                self.known[key] = rec
                if self.keep(rec):
                    self.emit(event_for_new, rec.to_json())
        self.vanished = {}
        for key in [k for k in self.known if k not in seen]:
            rec = self.vanished[key] = self.known.pop(key)
            if rec.state == "TIME-WAIT" and self.keep(rec):  # TIME-WAIT ends without an event
                self.emit("gone", rec.to_json())

    def _destroyed(self, ns: Netns, row: tuple) -> None:
        fam, st, src, sport, dst, dport, ifindex, cookie, rq, wq, uid, inode, attrs = row
        proto = PROTO_NAMES.get(attrs.get(diag.INET_DIAG_PROTOCOL, b"\x06")[0], "tcp")
        rec = self.known.pop((ns.inode, cookie), None) or \
            self.vanished.pop((ns.inode, cookie), None)
        if rec is None:  # born and gone between two dumps: no owner known
            rec = KernelSocket(ns.label, ns.inode, proto, 4 if fam == 2 else 6,
                               state_name(proto, st), ntop(src), sport, ntop(dst), dport, rq, wq,
                               uid, "", inode, cookie, owner="unknown")
            if not self.keep(rec):
                return
            out = rec.to_json()
            # The kernel's destroy message leaves the uid at 0 for every socket (it fills
            # addresses, cookie and counters only): not root, unknown.
            out["uid"] = out["user"] = None
        elif not self.keep(rec):
            return
        else:
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
        while True:
            timeout = max(0.0, next_dump - time.monotonic())
            ready, _, _ = select.select(list(self.listeners), [], [], timeout)
            for fd in ready:
                if fd not in self.listeners:  # its namespace went away during this round
                    continue
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
                        break  # a steady stream of events must not hold back the dumps
                        # (new sockets, new namespaces); the rest is read after the dump
            if time.monotonic() >= next_dump:
                self._dump("open")
                next_dump = time.monotonic() + self.interval

