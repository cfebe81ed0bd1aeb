"""The kernel half of `sniffer live`: snapshots, destroy events and on-demand look-ups.

Everything it learns becomes an event dict (the same ones a recording stores in pcapng custom
blocks), handed to `sink(ts, event)`: the correlator applies it, the recorder writes it, so a
replay of the recording sees the kernel exactly as the live run did.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable

from sniffer.kernel import diag
from sniffer.kernel.netns import Netns, entered
from sniffer.kernel.procs import Owners
from sniffer.kernel.users import user_name
from sniffer.kernel.view import Raw, attribute, read_namespace

Sink = Callable[[float, dict], None]
PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}


class KernelMonitor:
    """One namespace's sockets, watched: dumps on an interval, destroy events, look-ups."""

    conntrack = None  # sniffer.kernel.conntrack.Watch, once start_conntrack succeeded

    def __init__(self, ns: Netns, sink: Sink, lookup_budget: int = 500,
                 trace: bool = True) -> None:
        self.ns = ns
        self.sink = sink
        with entered(ns):
            self.diag = diag.open_diag_socket()
            self.events = diag.open_destroy_listener(diag.open_diag_socket())
        self.owners = Owners()
        self.known: dict[int, dict] = {}  # cookie -> last record (to name a destroyed socket)
        self.lookup_budget = lookup_budget  # look-ups per second, so a flood cannot stall us
        self._budget_left = lookup_budget
        self._budget_second = 0
        self.tracer = None
        self.trace_error: str | None = None  # why `tracer` is None
        self._hidden = None  # findings of the hidden-socket thread (start_hidden_checks)
        self._probe_cookies: set[int] | None = None
        self._ownerless: dict[int, int] = {}  # cookie -> inode: confirmed by a second look
        self._stop = None
        if not trace:  # `live --user`: its tracefs instance could not be removed after the drop
            self.trace_error = "socket tracing is off"
            return
        try:
            from sniffer.kernel.trace import SocketTracer
            self.tracer = SocketTracer()
        except OSError as exc:  # no tracefs: short connections may stay unowned
            self.trace_error = str(exc)

    def start_hidden_checks(self, interval: float, probe: bool = False) -> None:
        """Run the hidden-socket check (sniffer.kernel.hidden) now and every `interval` seconds.

        It runs in a thread of its own, because the bind probe takes seconds; its findings
        wait in a queue until `poll` hands them to the sink as a `hidden` event.
        """
        import queue
        import threading
        from sniffer.kernel import hidden

        self._hidden = queue.SimpleQueue()
        self._stop = threading.Event()
        if probe:
            self._probe_cookies = hidden.PROBE_COOKIES  # the probe's own sockets: not news

        def loop() -> None:
            while True:
                try:
                    found = hidden.check(self.ns, probe)
                except OSError:  # the namespace went away, or a table could not be read
                    found = []
                if found:
                    self._hidden.put(found)
                if self._stop.wait(interval):
                    return

        threading.Thread(target=loop, name="hidden-socket-check", daemon=True).start()

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        self.diag.close()
        self.events.close()
        if self.tracer is not None:
            self.tracer.close()
        if self.conntrack is not None:
            self.conntrack.close()

    # -- what the namespace is -----------------------------------------------------------------
    def start_conntrack(self, ts: float) -> str | None:
        """Watch the namespace's conntrack table (sniffer.kernel.conntrack.Watch): its events
        from now on (read by `poll`), and a dump of it now. Returns None, or why conntrack
        cannot be read (no CAP_NET_ADMIN, no ctnetlink): the run goes on without it."""
        from sniffer.kernel.conntrack import Watch
        try:
            watch = Watch(self.ns, self.sink)
        except OSError as exc:
            return ("its events need CAP_NET_ADMIN" if exc.errno == errno.EPERM
                    else f"cannot subscribe to its events ({exc})")
        error = watch.dump(ts)
        if error is not None:
            watch.close()
            return error
        self.conntrack = watch
        return None

    def addresses(self, ts: float) -> None:
        from sniffer.kernel.addrs import read
        view = read(self.ns)
        self.sink(ts, {"kind": "addresses", "netns": self.ns.label,
                       "addresses": sorted({a["address"] for a in view.addresses}),
                       "local_prefixes": view.local_prefixes})

    def snapshot(self, ts: float) -> None:
        self.owners = Owners.scan()
        raw = read_namespace(self.ns, set(PROTOS), {4, 6})
        self._report(ts, "snapshot", raw)

    # -- what changed ----------------------------------------------------------------------------
    def poll(self, ts: float) -> None:
        """Drain socket traces, hidden-socket findings and destroy events; on an overflow,
        say so and re-dump."""
        if self.conntrack is not None:
            self.conntrack.poll(ts)
        while self._hidden is not None and not self._hidden.empty():
            found = self._hidden.get()
            self.sink(ts, {"kind": "hidden", "netns": self.ns.label,
                           "sockets": [h.to_json() for h in found]})
        if self.tracer is not None:
            # Tracing is host-wide: keep what processes of this namespace did (one gone before
            # its namespace could be read is kept; its addresses and ports still have to match).
            traced = [t for t in self.tracer.read()
                      if t.get("netns_inode") in (None, self.ns.inode)]
            if traced:
                self.sink(ts, {"kind": "sockets", "netns": self.ns.label, "source": "trace",
                               "sockets": [_traced_record(self.ns, t, self._socket_uid(t))
                                           for t in traced]})
        while True:
            try:
                rows = list(diag.read_events(self.events))
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.sink(ts, {"kind": "resync", "netns": self.ns.label})
                self.snapshot(ts)
                continue
            if not rows:
                return
            probes = self._probe_cookies
            for row in rows:
                if probes and row[7] in probes:  # a socket of our own bind probe
                    probes.discard(row[7])
                    continue
                rec = self._record(row)
                known = self.known.pop(rec["cookie"], None)
                self._ownerless.pop(rec["cookie"], None)
                if known is not None:
                    rec = known  # as it was while alive: its state then, and its owner
                self.sink(ts, {"kind": "destroy", "netns": self.ns.label, "socket": rec})

    def lookup(self, ts: float, proto: str, local: str, lport: int, remote: str,
               rport: int) -> None:
        """Ask the kernel for this one connection's socket, and who holds it, right now."""
        second = int(time.monotonic())
        if second != self._budget_second:
            self._budget_second, self._budget_left = second, self.lookup_budget
        if self._budget_left <= 0 or proto not in PROTOS:
            return
        self._budget_left -= 1
        family = socket.AF_INET6 if ":" in local else socket.AF_INET
        try:
            row = diag.lookup(self.diag, family, PROTOS[proto], socket.inet_pton(family, local),
                              lport, socket.inet_pton(family, remote), rport)
        except OSError:
            return
        if row is None:
            return
        raw = Raw(self.ns)
        raw.rows.append((proto, row, None))
        if row[11]:
            self.owners.find(row[11])
        self._report(ts, "sockets", raw)

    def _confirm(self, records: list[dict], doubtful: list[tuple[dict, tuple]]) -> list[dict]:
        """The second look at sockets seen with a file but no holder: every /proc/PID/fd
        again, then each socket again by its 4-tuple (in that order, so a socket still there
        with the same cookie and inode had its file all along, unheld during the rescan).

        Held now: the holders are its owner. Closed meanwhile (inode 0, or gone): what the
        kernel shows now (time-wait, orphan), or nothing. Unheld and unchanged: confirmed
        `no-process`, remembered by cookie so later snapshots need not look twice.
        """
        self.owners.rescan({rec["inode"] for rec, _ in doubtful})
        replace: dict[int, dict | None] = {}
        for rec, row in doubtful:
            if self.owners.by_inode.get(rec["inode"]):
                rec["processes"], rec["owner"] = self.owners.holders(rec["inode"]), "process"
                continue
            family = socket.AF_INET if row[0] == socket.AF_INET else socket.AF_INET6
            try:
                now = diag.lookup(self.diag, family, PROTOS[rec["proto"]], row[2], row[3],
                                  row[4], row[5])
            except OSError:
                now = None
            if now is not None and now[7] == rec["cookie"] and now[11] == rec["inode"]:
                if len(self._ownerless) > 65536:
                    self._ownerless.clear()
                self._ownerless[rec["cookie"]] = rec["inode"]
                continue
            again = None
            if now is not None and now[7] == rec["cookie"]:
                closed = Raw(self.ns)
                closed.rows.append((rec["proto"], now, rec["interface"]))
                (again,) = [s.to_json() for s in attribute([closed], self.owners)]
            replace[id(rec)] = again
        if not replace:
            return records
        return [replace.get(id(r), r) for r in records if replace.get(id(r), r) is not None]

    def _socket_uid(self, t: dict) -> int | None:
        """The uid of a traced connection's socket as a dump or look-up saw it (for a process
        that exited before its uid could be read). Not from TIME-WAIT, SYN-RECV or destroy
        records: the kernel reports uid 0 for those, whoever owned the socket."""
        if t.get("uid") is not None:
            return t["uid"]
        for rec in self.known.values():
            if rec["local_port"] == t["local_port"] and rec["remote_port"] == t["remote_port"] \
                    and rec["inode"] and rec["proto"] == "tcp" \
                    and (t["local_addr"] is None or (rec["local_addr"], rec["remote_addr"])
                         == (t["local_addr"], t["remote_addr"])):
                return rec["uid"]
        return None

    def _report(self, ts: float, kind: str, raw: Raw) -> None:
        """Attribute what was read, remember it by cookie (to name it when destroyed), send it.

        A connection found with a file but no holder is only provisionally ownerless (one
        look, two reads that are not one instant): `_confirm` looks again before it is sent.
        """
        records = [s.to_json() for s in attribute([raw], self.owners)]
        doubtful = [(rec, row) for rec, (_, row, _) in zip(records, raw.rows)
                    if rec["owner"] == "no-process"
                    and self._ownerless.get(rec["cookie"]) != rec["inode"]]
        if doubtful:
            records = self._confirm(records, doubtful)
        for rec in records:
            if rec["cookie"]:
                self.known[rec["cookie"]] = rec
        self.sink(ts, {"kind": kind, "netns": self.ns.label, "sockets": records})

    def _record(self, row: tuple) -> dict:
        raw = Raw(self.ns)
        proto = {6: "tcp", 17: "udp"}.get(row[12].get(diag.INET_DIAG_PROTOCOL, b"\x06")[0], "tcp")
        raw.rows.append((proto, row, None))
        (rec,) = attribute([raw], None)
        out = rec.to_json()
        # A destroy message leaves the uid at 0 whoever owned the socket: not root, unknown.
        out["uid"] = out["user"] = None
        return out


def _traced_record(ns: Netns, t: dict, uid: int | None) -> dict:
    """A socket record for a traced connection: its processes are known (the one that
    connected or accepted, and every one seen using it since), its descriptors are not.

    `uid` was read from the first process while it was using the socket (or from the socket
    as a dump saw it). `role` says which end the socket is; `via` which trace named it."""
    if uid is None:
        from sniffer.kernel.trace import process_uid
        uid = process_uid(t["processes"][0]["pid"])
    state = ("UNCONN" if t["proto"] == "udp" else
             "SYN-SENT" if t["role"] == "originator" else "ESTABLISHED")
    return {"netns": ns.label, "netns_inode": ns.inode, "proto": t["proto"],
            "family": t.get("family") or (4 if t["local_addr"] else 6), "state": state,
            "local_addr": t["local_addr"], "local_port": t["local_port"],
            "remote_addr": t["remote_addr"], "remote_port": t["remote_port"],
            "recv_q": 0, "send_q": 0, "uid": uid, "user": user_name(uid) if uid is not None else None,
            "inode": 0, "cookie": 0, "interface": None,
            "processes": [{"pid": p["pid"], "name": p["name"], "fd": -1} for p in t["processes"]],
            "cgroup_id": None, "cgroup": None, "container": None, "service": None,
            "owner": "process", "role": t["role"], "via": t["via"]}
