"""Who opened each outgoing TCP connection, from the kernel's own trace of connect().

sock_diag cannot name the owner of a connection that opened and closed before anyone looked
(a few milliseconds is enough): by then its socket is a TIME-WAIT remnant with no file. The
`sock:inet_sock_set_state` tracepoint fires in the connecting process itself when a socket
goes CLOSE -> SYN_SENT, so that trace line carries the process's pid and name; the source port
is chosen just after, and appears when the socket leaves SYN_SENT. The two lines are joined on
the socket's kernel address (`skaddr`, printed with tracefs's `fields` option). Read through
tracefs, in a private instance, filtered in the kernel to those transitions: no eBPF
toolchain, no effect on other tracing users. Tracing is host-wide; events are matched to
connections by their addresses and ports (IPv6 addresses are not printable in this mode, so an
IPv6 connection is matched by its ports).

The trace carries no uid, and by the time the main loop looks (every 50 ms) a short-lived
client may have exited. So a thread blocks on trace_pipe and reads the process's uid from
/proc/PID/status the moment its connect() is traced, while it is still inside that call.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import threading

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENT = "events/sock/inet_sock_set_state"
TCP_SYN_SENT = 2
_LINE = re.compile(r"^\s*(?P<comm>.*)-(?P<pid>\d+)\s+(?:\(\s*\S+\)\s+)?\[\d+\]")
_FIELDS = re.compile(r"(\w+)=(\S+)")


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


class ConnectTracer:
    """Non-blocking reader of connect() events: `read()` -> list of connection dicts."""

    def __init__(self) -> None:
        root = _tracefs()
        if root is None or not os.path.exists(os.path.join(root, EVENT)):
            raise OSError("tracefs or the sock:inet_sock_set_state tracepoint is not available")
        _sweep(os.path.join(root, "instances"))
        self.instance = os.path.join(root, "instances", f"sniffer-{os.getpid()}")
        os.mkdir(self.instance)
        try:
            self._write(os.path.join(self.instance, "options", "fields"), "1")
            self._write(os.path.join(self.instance, EVENT, "filter"),
                        f"newstate == {TCP_SYN_SENT} || oldstate == {TCP_SYN_SENT}")
            self._write(os.path.join(self.instance, EVENT, "enable"), "1")
            self.pipe = os.open(os.path.join(self.instance, "trace_pipe"), os.O_RDONLY)
        except OSError:
            self._remove()
            raise
        self._partial = b""
        self._connecting: dict[str, tuple[int, str, int | None]] = {}  # skaddr -> (pid, prog, uid)
        self._done: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._follow, name="connect-trace", daemon=True)
        self._thread.start()

    @staticmethod
    def _write(path: str, text: str) -> None:
        with open(path, "w") as f:
            f.write(text)

    def read(self) -> list[dict]:
        """The connections traced since the last call: {pid, name, uid, addresses, ports}."""
        with self._lock:
            out, self._done = self._done, []
        return out

    def _follow(self) -> None:
        """The reading thread: blocks on trace_pipe (woken by each event) until close()."""
        while not self._stopping:
            try:
                data = os.read(self.pipe, 1 << 16)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                return
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        text = self._partial + data
        lines = text.split(b"\n")
        self._partial = lines.pop()
        pending = self._connecting
        done = []
        for line in lines:
            ev = parse(line.decode("utf-8", "replace"))
            if ev is None:
                continue
            if ev["newstate"] == TCP_SYN_SENT:
                if len(pending) > 65536:
                    pending.clear()
                # now, while the process is in connect(): it may be gone by the next poll
                # The name from the process itself: the trace line's comm comes from ftrace's
                # pid -> comm cache, filled at context switches, so a line read at once may
                # show `<...>` or the name of the pid's previous holder, or of this process
                # before it renamed itself (prctl PR_SET_NAME).
                name = process_name(ev["pid"]) or ev["name"]
                pending[ev["skaddr"]] = (ev["pid"], name, process_uid(ev["pid"]))
            elif ev["oldstate"] == TCP_SYN_SENT:
                who = pending.pop(ev["skaddr"], None)
                if who is not None:
                    ev["pid"], ev["name"], ev["uid"] = who
                    done.append(ev)
        if done:
            with self._lock:
                self._done += done

    def close(self) -> None:
        self._stopping = True
        # A line in our own instance's buffer wakes the thread from its blocking read (a
        # closed descriptor would not, and the instance cannot be removed while it is read).
        try:
            self._write(os.path.join(self.instance, "trace_marker"), "sniffer: stop\n")
        except OSError:
            pass
        self._thread.join(timeout=2)
        try:
            os.close(self.pipe)
        except OSError:
            pass
        self._remove()

    def _remove(self) -> None:
        try:
            self._write(os.path.join(self.instance, EVENT, "enable"), "0")
        except OSError:
            pass
        try:
            os.rmdir(self.instance)
        except OSError:
            pass


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
        pid = name.removeprefix("sniffer-")
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
        ev = {"pid": int(m["pid"]), "name": m["comm"].strip() or "?", "proto": "tcp",
              "skaddr": f["skaddr"], "oldstate": _num(f["oldstate"]),
              "newstate": _num(f["newstate"]), "local_port": _num(f["sport"]),
              "remote_port": _num(f["dport"]), "local_addr": None, "remote_addr": None}
        if family == 2:
            ev["local_addr"] = str(ipaddress.IPv4Address(_num(f["saddr"]).to_bytes(4, "little")))
            ev["remote_addr"] = str(ipaddress.IPv4Address(_num(f["daddr"]).to_bytes(4, "little")))
        return ev
    except (KeyError, ValueError, OverflowError):
        return None


def process_uid(pid: int) -> int | None:
    """The effective uid of a running process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[2])
    except (OSError, ValueError, IndexError):
        pass
    return None


def process_name(pid: int) -> str | None:
    """/proc/PID/comm, the name the trace line would have shown (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "replace") or None
    except OSError:
        return None


def _num(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)
