"""Who used each TCP connection and UDP flow, from kernel tracepoints fired in that process.

sock_diag cannot name the owner of a connection that opened and closed before anyone looked
(a few milliseconds is enough): by then its socket is a TIME-WAIT remnant with no file, or gone.
These tracepoints fire in the using process's own context; the TCP ones carry the socket's
kernel address (`skaddr`/`sk`, printed with tracefs's `fields` option), which joins them:

* outgoing TCP: `sock:inet_sock_set_state` CLOSE -> SYN_SENT fires inside connect(), in the
  connecting process; the source port is chosen just after, and appears when the socket leaves
  SYN_SENT.
* incoming TCP: the same tracepoint's SYN_RECV -> ESTABLISHED gives an accepted socket's
  addresses and ports (in softirq, no process yet); then `sock:sock_recv_length` and
  `sock:sock_send_length` (every recv/send on it) and the state changes a close makes (to
  FIN_WAIT1, LAST_ACK or CLOSE) fire in the process that accepted and used it, also when that
  process closes first and the socket is a TIME-WAIT remnant before any look-up could come.
* every process that later sends, receives or closes on a traced socket is added to its
  holders (a pre-fork server's worker, a descriptor passed on), and the socket is reported
  again with all of them.
* UDP: no socket tracepoint has a datagram socket's addresses, but the route look-up made in
  the sending process (`fib:fib_table_lookup`, `fib6:fib6_table_lookup`: at connect(), or at
  each sendto() of an unconnected socket) has its ports and the remote address. Those are read
  in a second instance, in the normal text form (where IPv6 addresses print).

Lines in interrupt context (the flags column's third character, 's'/'h'/'H') are not a
process's: the pid there is whoever the CPU interrupted. Read through tracefs, in private
instances, filtered in the kernel: no eBPF toolchain, no effect on other tracing users.
Tracing is host-wide; events are matched to connections by their addresses and ports (IPv6
addresses are not printable in `fields` form, so an IPv6 TCP connection is matched by its
ports and its side).

The trace carries no uid, and by the time the main loop looks (every 50 ms) a short-lived
process may have exited. So a thread per instance blocks on trace_pipe and reads the process's
uid and name from /proc the moment its first event is read. The trace names the thread;
`record-tgid` adds its process (thread group) id, which is what is reported.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENT = "events/sock/inet_sock_set_state"
USE_EVENTS = ("events/sock/sock_recv_length", "events/sock/sock_send_length")
# New threads, to place a thread the trace cannot (one that is new to ftrace's tgid map, and
# may be gone, with its /proc entry, by the time its line is read).
THREAD_EVENT = "events/task/task_newtask"
CLONE_THREAD = 0x00010000
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1, TCP_CLOSE, TCP_LAST_ACK = \
    1, 2, 3, 4, 7, 9
STATE_FILTER = (f"protocol == 6 && (newstate == {TCP_SYN_SENT} || oldstate == {TCP_SYN_SENT} "
                f"|| oldstate == {TCP_SYN_RECV} || newstate == {TCP_FIN_WAIT1} "
                f"|| newstate == {TCP_LAST_ACK} || newstate == {TCP_CLOSE})")
BUFFER_KB = 4096  # per CPU: a burst of sends and receives is not lost while the thread sleeps
# Sends and receives are traced (every TCP send/recv of the host, about 2.5 us of this
# process's CPU each, trace_pipe's formatting included) only up to this many a second: above
# it they are switched off for USE_PAUSE seconds, and the state changes (a few per connection,
# the close among them, in the closing process) name the owners alone.
USE_BUDGET = 20_000
USE_PAUSE = 10.0
MAX_SOCKETS = 65536  # traced sockets remembered at once (a socket is forgotten at CLOSE)
_LINE = re.compile(r"^\s*(?P<comm>.*)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?"
                   r"\[\d+\]\s+(?P<flags>\S+)\s")
_FIELDS = re.compile(r"(\w+)=(\S+)")
# Datagram senders: the route look-up made in the sending process (connect() of a UDP socket,
# or each sendto() of an unconnected one) carries the ports and the remote address. Output
# look-ups have iif 1 (LOOPBACK_IFINDEX); forwarded packets' have their input interface.
ROUTE_EVENTS = ("events/fib/fib_table_lookup", "events/fib6/fib6_table_lookup")
ROUTE_FILTER = "proto == 17 && iif == 1"
_ROUTE = re.compile(r"fib6?_table_lookup: table\s+\d+ oif -?\d+ iif -?\d+ proto 17 "
                    r"(?P<src>[0-9a-fA-F.:]+)/(?P<sport>\d+) -> (?P<dst>[0-9a-fA-F.:]+)/(?P<dport>\d+) ")
# What a pure IPv6 socket's IPv4 address fields hold (net/ipv6/tcp_ipv6.c: LOOPBACK4_IPV6).
_NOT_MAPPED = frozenset({ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv4Address("127.0.0.6")})
_USE = re.compile(r"sock_(?:recv|send)_length: sk=(0x[0-9a-f]+)")


@dataclass(slots=True, frozen=True)
class User:
    """A process that used a socket, read from /proc while it was doing so."""

    pid: int  # the process (thread group) id
    name: str
    uid: int | None  # None: gone before it could be read
    netns: int | None  # inode of its network namespace (None: gone)


@dataclass(slots=True)
class Traced:
    """One traced socket: its ends, its side, and every process seen using it."""

    ev: dict  # the state-change event that gave the addresses and ports
    role: str  # "originator" (connect) or "responder" (accepted)
    users: list[User] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)  # thread ids already placed


class _Instance:
    """A private tracefs instance with some events enabled, read by a thread of its own that
    blocks on trace_pipe (woken by each event) and hands whole lines to `parse`."""

    def __init__(self, root: str, name: str, events: dict[str, str], parse,
                 fields: bool) -> None:
        self.path = os.path.join(root, "instances", name)
        self.events = list(events)
        self._parse = parse
        os.mkdir(self.path)
        try:
            _write(os.path.join(self.path, "options", "fields"), "1" if fields else "0")
            _write(os.path.join(self.path, "options", "record-tgid"), "1")
            _write(os.path.join(self.path, "buffer_size_kb"), str(BUFFER_KB))
            for event, condition in events.items():
                _write(os.path.join(self.path, event, "filter"), condition)
                _write(os.path.join(self.path, event, "enable"), "1")
            self.pipe = os.open(os.path.join(self.path, "trace_pipe"), os.O_RDONLY)
        except OSError:
            self._remove()
            raise
        self._stopping = False
        self._synced = threading.Event()
        self._sync_mark = ""
        self._thread = threading.Thread(target=self._follow, name=f"trace-{name}", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        partial = b""
        while not self._stopping:
            try:
                data = os.read(self.pipe, 1 << 16)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            text = [line.decode("utf-8", "replace") for line in lines]
            self._parse(text)
            mark = self._sync_mark
            if mark and any(mark in line for line in text):
                self._synced.set()

    def sync(self, timeout: float) -> bool:
        """Wait until every event recorded before now has been parsed (at most `timeout` s):
        a marker written now comes after them in trace_pipe's time order."""
        self._synced.clear()
        self._sync_mark = f"sniffer: sync {time.monotonic_ns()}"
        try:
            _write(os.path.join(self.path, "trace_marker"), self._sync_mark + "\n")
        except OSError:
            return False
        return self._synced.wait(timeout)

    def enable(self, events, on: bool) -> None:
        for event in events:
            try:
                _write(os.path.join(self.path, event, "enable"), "1" if on else "0")
            except OSError:
                pass

    def close(self) -> None:
        self._stopping = True
        # A line in our own instance's buffer wakes the thread from its blocking read (a
        # closed descriptor would not, and the instance cannot be removed while it is read).
        try:
            _write(os.path.join(self.path, "trace_marker"), "sniffer: stop\n")
        except OSError:
            pass
        self._thread.join(timeout=2)
        try:
            os.close(self.pipe)
        except OSError:
            pass
        self._remove()

    def _remove(self) -> None:
        self.enable(self.events, False)
        try:
            os.rmdir(self.path)
        except OSError:
            pass


class SocketTracer:
    """Non-blocking reader of traced sockets: `read()` -> list of socket dicts."""

    def __init__(self) -> None:
        root = _tracefs()
        if root is None or not os.path.exists(os.path.join(root, EVENT)):
            raise OSError("tracefs or the sock:inet_sock_set_state tracepoint is not available")
        _sweep(os.path.join(root, "instances"))
        self._connecting: dict[str, User] = {}  # skaddr -> the process in connect()
        self._open: dict[str, Traced] = {}  # skaddr -> an established socket being traced
        self._threads: dict[int, int] = {}  # thread id -> its process id, from task_newtask
        self._routed: dict[tuple, None] = {}  # datagram flows already reported, oldest first
        self._done: list[dict] = []
        self._lock = threading.Lock()
        events = {EVENT: STATE_FILTER}
        events.update({e: "protocol == 6" for e in USE_EVENTS
                       if os.path.exists(os.path.join(root, e))})
        if os.path.exists(os.path.join(root, THREAD_EVENT)):
            events[THREAD_EVENT] = f"clone_flags & {CLONE_THREAD}"
        self._uses = [e for e in USE_EVENTS if e in events]
        self._use_second, self._use_count = 0, 0
        self.paused_until = 0.0  # monotonic time the send/receive events come back on
        self.pauses = 0
        # The socket events need `fields` (the socket's address); the route events need the
        # normal form (IPv6 addresses print only there): two instances.
        self._instances = [_Instance(root, f"sniffer-{os.getpid()}", events,
                                     self._parse_sockets, fields=True)]
        routes = {e: ROUTE_FILTER for e in ROUTE_EVENTS if os.path.exists(os.path.join(root, e))}
        if routes:
            try:
                self._instances.append(_Instance(root, f"sniffer-{os.getpid()}-udp", routes,
                                                 self._parse_routes, fields=False))
            except OSError:
                pass  # UDP senders stay with the look-ups

    def read(self) -> list[dict]:
        """The sockets traced since the last call: {processes, uid, role, via, addresses,
        ports}; a socket comes again when another process is seen using it."""
        if self.paused_until and time.monotonic() >= self.paused_until:
            self.paused_until = 0.0
            self._instances[0].enable(self._uses, True)
        with self._lock:
            out, self._done = self._done, []
        return out

    def sync(self, timeout: float = 1.0) -> None:
        """Parse every event made so far (before the last records are judged, at the end)."""
        deadline = time.monotonic() + timeout
        for instance in self._instances:
            instance.sync(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        for instance in self._instances:
            instance.close()

    def _hand_over(self, done: list[dict]) -> None:
        if done:
            with self._lock:
                self._done += done

    def _parse_sockets(self, lines: list[str]) -> None:
        done: list[dict] = []
        uses = 0
        for line in lines:
            use = _USE.search(line)
            if use is not None:  # the most frequent line: cheap unless its socket is traced
                uses += 1
                traced = self._open.get(use[1])
                if traced is not None:
                    who = _process(line)
                    if who is not None:
                        self._used(traced, who, done)
                continue
            if "task_newtask:" in line:
                self._new_thread(line)
                continue
            ev = parse(line)
            if ev is not None:
                self._state(ev, done)
        self._hand_over(done)
        if uses:
            self._budget(uses)

    def _budget(self, uses: int) -> None:
        """Switch the send/receive events off for a while when they come too fast."""
        now = time.monotonic()
        second = int(now)
        if second != self._use_second:
            self._use_second, self._use_count = second, 0
        self._use_count += uses
        if self._use_count > USE_BUDGET and not self.paused_until:
            self.paused_until = now + USE_PAUSE
            self.pauses += 1
            self._instances[0].enable(self._uses, False)

    def _parse_routes(self, lines: list[str]) -> None:
        """Route look-ups for datagrams, made in the sending process: each new (process,
        ports, remote address) is reported once (a busy server's replies come again and
        again)."""
        done: list[dict] = []
        for line in lines:
            m = _ROUTE.search(line)
            who = _process(line) if m is not None else None
            if who is None:
                continue
            remote = _route_addr(m["dst"])
            lport, rport = int(m["sport"]), int(m["dport"])
            if remote is None or not lport or not rport:
                continue
            key = (who[0], lport, remote, rport)
            if key in self._routed:
                continue
            if len(self._routed) > MAX_SOCKETS:
                self._routed.clear()
            self._routed[key] = None
            user = self._identify(*who)
            done.append({"proto": "udp", "role": "any", "via": "route",
                         "processes": [{"pid": user.pid, "name": user.name}], "uid": user.uid,
                         "netns_inode": user.netns,
                         # an unbound sender's source address is chosen after the look-up
                         "local_addr": None, "local_port": lport, "remote_addr": remote,
                         "remote_port": rport, "family": 6 if ":" in remote else 4})
        self._hand_over(done)

    def _state(self, ev: dict, done: list[dict]) -> None:
        sk, old, new = ev["skaddr"], ev["oldstate"], ev["newstate"]
        if new == TCP_SYN_SENT:
            if len(self._connecting) > MAX_SOCKETS:
                self._connecting.clear()
            # now, while the process is in connect(): it may be gone by the next poll
            self._connecting[sk] = self._identify(ev["tid"], ev["pid"], ev["name"])
            return
        if old == TCP_SYN_SENT:
            who = self._connecting.pop(sk, None)
            if who is not None:
                traced = Traced(ev, "originator", [who])
                done.append(_report(traced))
                if new != TCP_CLOSE:
                    self._remember(sk, traced)
            return
        if old == TCP_SYN_RECV and new == TCP_ESTABLISHED:
            self._remember(sk, Traced(ev, "responder"))  # no process yet: it has to accept
            return
        traced = self._open.get(sk)
        if traced is not None and ev["process"]:  # the process closing it
            self._used(traced, (ev["tid"], ev["pid"], ev["name"]), done)
        if new == TCP_CLOSE:
            self._open.pop(sk, None)  # the address may be reused for another socket

    def _remember(self, sk: str, traced: Traced) -> None:
        if len(self._open) > MAX_SOCKETS:
            self._open.clear()
        self._open[sk] = traced

    def _new_thread(self, line: str) -> None:
        """A new thread: remember its process (the creating thread's)."""
        m = _LINE.match(line)
        f = dict(_FIELDS.findall(line.split("task_newtask:", 1)[1]))
        try:
            tid = _num(f["pid"])
        except (KeyError, ValueError):
            return
        if m is not None:
            creator = _status(int(m["pid"]))[0] or _traced_tgid(m)
            if creator is not None:
                if len(self._threads) > MAX_SOCKETS:
                    self._threads.clear()
                self._threads[tid] = creator

    def _identify(self, tid: int, traced_tgid: int | None, name: str) -> User:
        """The process behind a trace line's thread, read from /proc while it is surely alive.

        Its process id from /proc/TID/status first: the trace's tgid column is ftrace's
        pid -> tgid map, filled at context switches, so a process too new to have been switched
        out shows the tgid of the pid's previous holder (a thread of another process). Only a
        thread already gone is placed by task_newtask or that column. The name from
        /proc/PID/comm likewise: the line's comm comes from the same kind of cache and may show
        `<...>` or an earlier name (before prctl PR_SET_NAME)."""
        tgid, uid = _status(tid)
        if tgid is None:
            tgid = self._threads.get(tid) or traced_tgid or tid
            uid = process_uid(tgid)
        return User(tgid, process_name(tgid) or name, uid, _netns(tgid))

    def _used(self, traced: Traced, who: tuple[int, int | None, str],
              done: list[dict]) -> None:
        if who[0] in traced.threads:  # this thread was placed already
            return
        traced.threads.add(who[0])
        user = self._identify(*who)
        if not any(u.pid == user.pid for u in traced.users):
            traced.users.append(user)
            done.append(_report(traced))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _route_addr(text: str) -> str | None:
    """An address of a route look-up line; None for the unspecified one."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if addr.is_unspecified else str(addr)


def _report(traced: Traced) -> dict:
    ev, first = traced.ev, traced.users[0]
    return {"proto": "tcp", "role": traced.role,
            "via": "connect" if traced.role == "originator" else "accept",
            "processes": [{"pid": u.pid, "name": u.name} for u in traced.users],
            "uid": first.uid, "netns_inode": first.netns, "local_addr": ev["local_addr"],
            "local_port": ev["local_port"], "remote_addr": ev["remote_addr"],
            "remote_port": ev["remote_port"]}


def _process(line: str) -> tuple[int, int | None, str] | None:
    """(thread id, the trace's process id for it, trace name) of a line made in a process's
    context, else None."""
    m = _LINE.match(line)
    if m is None or _in_interrupt(m["flags"]):
        return None
    return int(m["pid"]), _traced_tgid(m), m["comm"].strip() or "?"


def _in_interrupt(flags: str) -> bool:
    return len(flags) > 2 and flags[2] in "sShHz"


def _traced_tgid(m: re.Match) -> int | None:
    """The tgid column of a line (None when the trace shows none); see `_identify`."""
    tgid = m["tgid"]
    return int(tgid) if tgid and tgid.isdigit() and tgid != "0" else None


def _netns(pid: int) -> int | None:
    """The inode of a process's network namespace (None once it is gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _tracefs() -> str | None:
    for root in TRACEFS:
        if os.path.exists(os.path.join(root, "instances")):
            return root
    try:  # not mounted: mount it where the kernel documents it (as perf and bpftrace do)
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS[0]], check=True,
                       capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return TRACEFS[0] if os.path.exists(os.path.join(TRACEFS[0], "instances")) else None


def _sweep(instances: str) -> None:
    """Remove the instances of sniffers that are gone (killed before they could clean up, e.g.
    by the OOM killer): each one keeps tracing host-wide into its own buffer. Only rmdir: the
    kernel refuses (EBUSY) an instance whose trace_pipe is open, so a live sniffer's instance,
    even one in another pid namespace whose pid means nothing here, is never taken away."""
    try:
        names = os.listdir(instances)
    except OSError:
        return
    for name in names:
        pid = name.removeprefix("sniffer-").removesuffix("-udp")
        if name.startswith("sniffer-") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(os.path.join(instances, name))
            except OSError:
                pass


def parse(line: str) -> dict | None:
    """One trace_pipe line of inet_sock_set_state (in `fields` form) -> a dict."""
    if "inet_sock_set_state:" not in line:
        return None
    m = _LINE.match(line)
    if m is None:
        return None
    f = {k: v for k, v in _FIELDS.findall(line.split("inet_sock_set_state:", 1)[1])}
    try:
        family, proto = _num(f["family"]), _num(f["protocol"])
        if proto != 6:
            return None
        ev = {"tid": int(m["pid"]), "pid": _traced_tgid(m), "name": m["comm"].strip() or "?",
              "proto": "tcp",
              "process": not _in_interrupt(m["flags"]),
              "skaddr": f["skaddr"], "oldstate": _num(f["oldstate"]),
              "newstate": _num(f["newstate"]), "local_port": _num(f["sport"]),
              "remote_port": _num(f["dport"]), "local_addr": None, "remote_addr": None}
        local = ipaddress.IPv4Address(_num(f["saddr"]).to_bytes(4, "little"))
        remote = ipaddress.IPv4Address(_num(f["daddr"]).to_bytes(4, "little"))
        # An IPv6 socket's IPv4 fields hold its v4-mapped peer's addresses (a dual-stack
        # socket talking IPv4: the wire shows IPv4), or a placeholder for a real IPv6 peer.
        if family == 2 or (family == 10 and not {local, remote} & _NOT_MAPPED):
            ev["local_addr"], ev["remote_addr"] = str(local), str(remote)
        return ev
    except (KeyError, ValueError, OverflowError):
        return None


def process_uid(pid: int) -> int | None:
    """The effective uid of a running process (None once it is gone)."""
    return _status(pid)[1]


def _status(pid: int) -> tuple[int | None, int | None]:
    """(thread group id, effective uid) of a running process or thread, from /proc."""
    tgid = uid = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    tgid = int(line.split()[1])
                elif line.startswith("Uid:"):
                    uid = int(line.split()[2])
                    break
    except (OSError, ValueError, IndexError):
        pass
    return tgid, uid


def process_name(pid: int) -> str | None:
    """/proc/PID/comm, the name the trace line would have shown (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "replace") or None
    except OSError:
        return None


def _num(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)
