"""Test helpers for `sniffer sockets`: throw-away network namespaces, socket-holding child
processes inside them, an unprivileged wrapper, and a parser for `ss` output.

Everything here runs as root and touches only namespaces it creates itself (named `snf-<hex>`),
plus, for `unprivileged()`, a private mount namespace that exists only for that one command.

- `NetNS`: context manager (and the `netns` pytest fixture): `ip netns add`, `lo` up with
  127.0.0.1 and ::1, and on exit every process left in it is killed and the namespace deleted.
- `NetNS.spawn(code)` / `spawn_unshared(code)`: run a Python snippet as a long-lived child in the
  namespace. The snippet opens sockets and calls `ready(**info)`, which prints one line
  `ready <json>` and then blocks until the test closes the child's stdin (or kills it).
  The returned `Holder` has `.pid`, `.info` (the JSON) and `.proc` (the Popen).
- `parse_ss(text)`: `ss -tuanp` / `ss -tanp` / `ss -wanp` output → `Sock` tuples, normalised the
  way docs/sockets-json.md writes sockets (v4-mapped → IPv4, `*` → `::`/`0.0.0.0`, port `*` → 0,
  ss state names → schema state names, `%ifname` suffix → `interface`).
- `json_sock(obj)`: one `sniffer sockets --json` object → the same `Sock` tuple, for comparisons.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import json
import os
import re
import secrets
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the venv's interpreter: its realpath is the base one, without our packages
NOBODY = 65534


def _run(argv, *, timeout=20, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {proc.returncode}: "
                             f"{proc.stderr.strip()}")
    return proc


@contextmanager
def small_disk(where: Path, size: str = "64k") -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `where` (created): writes past it fail with ENOSPC."""
    where.mkdir()
    _run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


class Drain:
    """Reads a pty's master side in a thread until the child closes its side, so a chatty
    child (a live display) never blocks on a full terminal; `text()` is what it wrote."""

    def __init__(self, fd: int) -> None:
        self.fd, self.chunks = fd, []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not data:
                return
            self.chunks.append(data)

    def data(self, timeout: float = 10) -> bytes:
        """Every byte so far, once the child closed its side (or after `timeout`)."""
        self.thread.join(timeout)
        return b"".join(self.chunks)

    def text(self, timeout: float = 10) -> str:
        return self.data(timeout).decode("utf-8", "replace")


def read_terminal(pid: int, fd: int, timeout: float = 30) -> str:
    """Everything a `pty.fork()` child wrote to its terminal until it exited (decoded)."""
    drain = Drain(fd)
    drain.thread.join(timeout)
    os.waitpid(pid, 0)
    return drain.text()


def can_run() -> str | None:
    """None if this machine can run the netns tests, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    for tool in ("ip", "ss", "unshare", "setpriv"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(os.pathsep) + ["/usr/sbin", "/sbin"]):
            return f"needs {tool}"
    return None


# --------------------------------------------------------------------------- child processes

PRELUDE = r'''
import errno, json, os, socket, sys, threading, time

def set_name(name):
    """The process name (comm) that ss and sniffer report."""
    with open("/proc/self/comm", "w") as f:
        f.write(name)

def ino(s):
    return os.fstat(s.fileno()).st_ino

def desc(s, **extra):
    """fd, inode and addresses of a socket, for the test to build its expectations."""
    d = {"fd": s.fileno(), "inode": ino(s), "local": list(s.getsockname()[:2])}
    try:
        d["peer"] = list(s.getpeername()[:2])
    except OSError:
        d["peer"] = None
    d.update(extra)
    return d

KEEP = []  # sockets the child holds open until it exits

def udp(fam, bind=None, connect=None, dev=None):
    """A UDP socket, optionally bound to a device and an address, and connected; kept open."""
    u = socket.socket(fam, socket.SOCK_DGRAM)
    if dev:
        u.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
    if bind:
        u.bind(bind)
    if connect:
        u.connect(connect)
    KEEP.append(u)
    return u

def hold():
    """Block until stdin closes (the test ends us), then exit without cleanup."""
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
    os._exit(0)

def ready(**info):
    info.setdefault("pid", os.getpid())
    sys.stdout.write("ready " + json.dumps(info) + "\n")
    sys.stdout.flush()
    hold()

def fork_child(name):
    """fork(); the child renames itself, reports its pid through a pipe and holds every
    inherited fd until stdin closes. Returns the child's pid (in the parent)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        set_name(name)
        os.write(w, b"x")
        os.close(w)
        hold()
    os.close(w)
    os.read(r, 1)
    os.close(r)
    return pid
'''


class Holder:
    """A child process holding sockets open; `info` is what it passed to `ready()`."""

    def __init__(self, proc: subprocess.Popen, info: dict, errfile) -> None:
        self.proc, self.info, self._err = proc, info, errfile
        self.pid: int = proc.pid

    def __getitem__(self, key):
        return self.info[key]

    def stop(self) -> None:
        """Close stdin (the child and its forks exit), then make sure: SIGKILL by pid."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()


def _start_holder(prefix: list[str], code: str, timeout: float) -> Holder:
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([*prefix, PYTHON, "-c", PRELUDE + "\n" + code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                            cwd="/", start_new_session=True)
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"holder not ready after {timeout} s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"holder exited (status {proc.wait(timeout=5)}) before ready")
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith("ready "):
            raise AssertionError(f"holder printed {line!r} instead of 'ready ...'")
        info = json.loads(line[len("ready "):])
    except BaseException as exc:
        proc.kill()
        proc.wait(timeout=5)
        err.seek(0)
        msg = err.read().decode(errors="replace").strip()
        err.close()
        if isinstance(exc, AssertionError):
            raise AssertionError(f"{exc}; holder stderr:\n{msg}") from None
        raise
    return Holder(proc, info, err)


def spawn_unshared(code: str, timeout: float = 10) -> Holder:
    """A holder in a new, *unnamed* network namespace (`unshare --net`, lo brought up).
    The namespace lives exactly as long as the process; stop it with `.stop()`."""
    return _start_holder(["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"],
                         code, timeout)


# --------------------------------------------------------------------------- namespaces

class NetNS:
    """A uniquely named network namespace with lo up (IPv4 and IPv6), deleted on exit."""

    def __init__(self, prefix: str = "snf") -> None:
        self.name = f"{prefix}-{secrets.token_hex(4)}"
        self.holders: list[Holder] = []
        self.created = False
        # Processes that only visit (a `sockets --all-netns` watcher reading its tables from
        # inside): close() must not take them for the namespace's own and kill them.
        self.visitors: set[int] = set()

    # lifecycle
    def __enter__(self) -> "NetNS":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def create(self) -> None:
        _run(["ip", "netns", "add", self.name])
        self.created = True
        try:
            _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
            if self.sysctl("net.ipv6.conf.lo.disable_ipv6") != "0":
                self.sysctl("net.ipv6.conf.lo.disable_ipv6", "0")
            addrs = _run(["ip", "-n", self.name, "-6", "addr", "show", "dev", "lo"]).stdout
            if "::1/128" not in addrs:
                _run(["ip", "-n", self.name, "addr", "add", "::1/128", "dev", "lo", "nodad"])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for h in self.holders:
            try:
                h.stop()
            except Exception:
                pass
        self.holders.clear()
        if not self.created:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = self.pids() - self.visitors
            if not pids:
                break
            for pid in pids:  # only processes inside our own namespace
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        _run(["ip", "netns", "del", self.name], check=False)
        self.created = False

    # facts
    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def inode(self) -> int:
        return os.stat(self.path).st_ino

    def pids(self) -> set[int]:
        out = _run(["ip", "netns", "pids", self.name], check=False).stdout
        return {int(p) for p in out.split()}

    # running things inside
    def argv(self, *argv) -> list[str]:
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def run(self, *argv, timeout=20, check=True, **kw) -> subprocess.CompletedProcess:
        return _run(self.argv(*argv), timeout=timeout, check=check, **kw)

    def sysctl(self, key: str, value: str | None = None) -> str:
        if value is None:
            return self.run("sysctl", "-n", key).stdout.strip()
        self.run("sysctl", "-q", "-w", f"{key}={value}")
        return value

    def mac(self, ifname: str) -> str:
        """The link-layer address of `ifname` in this namespace (for crafted Ether() frames,
        which must never leave scapy to resolve addresses itself)."""
        return json.loads(self.run("ip", "-j", "link", "show", "dev", ifname).stdout)[0]["address"]

    def ss(self, *args) -> str:
        return self.run("ss", *args).stdout

    def spawn(self, code: str, *, user: bool = False, timeout: float = 10) -> Holder:
        """Run `code` (after PRELUDE) in this namespace until the test ends; `user=True`
        runs it as nobody (see `unprivileged`)."""
        prefix = self.argv(*(unprivileged([]) if user else []))
        h = _start_holder(prefix, code, timeout)
        self.holders.append(h)
        return h


@pytest.fixture
def netns():
    if reason := can_run():
        pytest.skip(reason)
    with NetNS() as ns:
        yield ns


# --------------------------------------------------------------------------- unprivileged runs

@functools.cache
def _needed_paths() -> list[str]:
    """What a child started with PYTHON must reach: the interpreter as named (a venv's bin/)
    and as resolved (the base installation's), the venv and base prefixes, the source tree and
    every directory of the child's own sys.path (site-packages, an editable install's .pth
    entries), both as written and resolved; a path below another one is left out."""
    probe = subprocess.run([PYTHON, "-c", "import json, sys; print(json.dumps(sys.path))"],
                           capture_output=True, text=True, check=True, cwd="/", timeout=30)
    paths = [os.path.dirname(PYTHON), os.path.dirname(os.path.realpath(PYTHON)), sys.prefix,
             sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(ROOT),
             *json.loads(probe.stdout)]
    need = {f(p) for p in paths if os.path.isabs(p) and os.path.isdir(p)
            for f in (os.path.abspath, os.path.realpath)}
    return sorted(p for p in need
                  if not any(q != p and p.startswith(q.rstrip("/") + "/") for q in need))


def _blocked_dirs() -> list[tuple[str, list[str]]]:
    """Directories that `nobody` cannot traverse (e.g. /root, 0700) on the way to the Python
    installation, the virtual environment or the source tree, each with the paths below it
    that must stay reachable."""
    out: dict[str, list[str]] = {}
    for p in _needed_paths():
        parts = Path(p).parts
        for i in range(2, len(parts) + 1):
            anc = str(Path(*parts[:i]))
            if not os.stat(anc).st_mode & stat.S_IXOTH:
                out.setdefault(anc, []).append(p)
                break
    return sorted(out.items())


_STAGE: str | None = None


def unprivileged(argv: list[str], uid: int = NOBODY, gid: int = NOBODY) -> list[str]:
    """argv that runs `argv` as uid/gid with no capabilities and no supplementary groups.

    If the interpreter lives below a directory other users cannot enter (pyenv under /root),
    the command runs in a private mount namespace where that directory is replaced by a
    tmpfs (mode 755) into which only the needed subtrees are bind-mounted back. Nothing
    changes outside that throw-away mount namespace."""
    global _STAGE
    script = ["set -e", "umask 022"]
    blocked = _blocked_dirs()
    if blocked:
        if _STAGE is None:
            _STAGE = tempfile.mkdtemp(prefix="snf-stage-")  # stays empty outside the mount ns
            atexit.register(os.rmdir, _STAGE)
        script.append(f"mount -t tmpfs -o mode=700 snfstage {_STAGE}")
        for i, (top, subs) in enumerate(blocked):
            orig = f"{_STAGE}/{i}"
            script += [f"mkdir {orig}", f"mount --bind '{top}' {orig}",
                       f"mount -t tmpfs -o mode=755 snfhide '{top}'"]
            for sub in subs:
                rel = os.path.relpath(sub, top)
                script += [f"mkdir -p '{top}/{rel}'", f"mount --bind '{orig}/{rel}' '{top}/{rel}'"]
    script.append(f'exec setpriv --reuid={uid} --regid={gid} --clear-groups '
                  f'env HOME=/ "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", "\n".join(script), "sh", *map(str, argv)]


# --------------------------------------------------------------------------- ss parsing

# ss state names (iproute2 misc/ss.c sstate_name) → docs/sockets-json.md state names.
SS_STATES = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN-SENT", "SYN-RECV": "SYN-RECV",
    "FIN-WAIT-1": "FIN-WAIT-1", "FIN-WAIT-2": "FIN-WAIT-2", "TIME-WAIT": "TIME-WAIT",
    "UNCONN": "UNCONN", "CLOSE-WAIT": "CLOSE-WAIT", "LAST-ACK": "LAST-ACK",
    "LISTEN": "LISTEN", "CLOSING": "CLOSING",
}
SCHEMA_STATES = {"ESTABLISHED", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
                 "CLOSE", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "UNCONN"}
_USER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')


class Sock(NamedTuple):
    """One socket, normalised; `processes` is a frozenset of (name, pid, fd)."""
    proto: str
    state: str
    local_addr: str
    local_port: int
    peer_addr: str
    peer_port: int
    processes: frozenset
    interface: str | None = None

    @property
    def key(self) -> tuple:
        """The 7-tuple (proto, state, local, lport, peer, pport, processes)."""
        return tuple(self)[:7]

    @property
    def pids(self) -> set[int]:
        return {pid for _, pid, _ in self.processes}


class SsLine(NamedTuple):
    sock: Sock
    family: int
    recv_q: int
    send_q: int


def norm_addr(a: str) -> str:
    """Canonical text form; v4-mapped IPv6 written as IPv4."""
    ip = ipaddress.ip_address(a)
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def _endpoint(tok: str) -> tuple[str, int, str | None, int | None]:
    """'[::1]:80', '0.0.0.0%lo:53', '[fe80::1]%eth0:5', '*:*' → (addr, port, ifname, family)
    where addr is raw text ('*' kept) and family is 4, 6 or None (unknown: '*')."""
    host, sep, port = tok.rpartition(":")
    if not sep:
        raise ValueError(f"no port in ss address {tok!r}")
    ifname = None
    if host.startswith("["):
        end = host.index("]")
        addr, tail = host[1:end], host[end + 1:]
        if tail.startswith("%"):
            ifname = tail[1:]
        family = 6
    else:
        addr, pct, ifn = host.partition("%")
        if pct:
            ifname = ifn
        family = None if addr == "*" else (6 if ":" in addr else 4)
    return addr, (0 if port == "*" else int(port)), ifname, family


def parse_ss_lines(text: str, proto: str | None = None, star_family: int = 6) -> list[SsLine]:
    """Parse `ss -[tuw]anp` output. Without a Netid column (one protocol only: `ss -tanp`,
    `ss -wanp`) pass `proto`. A wildcard `*` address belongs to the family of the other
    endpoint on the line, else `star_family` (ss >= 4.15 prints `*` only for a dual-stack
    IPv6 wildcard; IPv4 shows as 0.0.0.0)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    head = lines[0].split()
    if head[0] not in ("Netid", "State"):
        raise ValueError(f"not ss output: {lines[0]!r}")
    netid = head[0] == "Netid"
    if not netid and proto is None:
        raise ValueError("ss output without a Netid column: pass proto=")
    out = []
    for ln in lines[1:]:
        if netid:
            parts = ln.split(None, 6)
            p, state, rq, sq, local, peer = parts[:6]
        else:
            parts = ln.split(None, 5)
            p = proto
            state, rq, sq, local, peer = parts[:5]
        rest = parts[6 if netid else 5] if len(parts) > (6 if netid else 5) else ""
        (la, lp, lif, lfam), (pa, pp, _, pfam) = _endpoint(local), _endpoint(peer)
        family = lfam or pfam or star_family
        any_ = "::" if family == 6 else "0.0.0.0"
        la = norm_addr(any_ if la == "*" else la)
        pa = norm_addr(any_ if pa == "*" else pa)
        st = SS_STATES[state]
        if st == "UNCONN" and p == "tcp":
            st = "CLOSE"  # ss prints TCP_CLOSE as UNCONN
        procs = frozenset((n.replace('\\"', '"'), int(pid), int(fd))
                          for n, pid, fd in _USER.findall(rest))
        out.append(SsLine(Sock(p, st, la, lp, pa, pp, procs, lif), family, int(rq), int(sq)))
    return out


def parse_ss(text: str, proto: str | None = None, star_family: int = 6) -> list[Sock]:
    return [x.sock for x in parse_ss_lines(text, proto, star_family)]


def json_sock(obj: dict) -> Sock:
    """A `sniffer sockets --json` object as a Sock (addresses only canonicalised, never
    un-mapped: the schema requires sniffer to write v4-mapped addresses as IPv4 itself)."""
    def canon(a):
        return str(ipaddress.ip_address(a))
    return Sock(obj["proto"], obj["state"], canon(obj["local_addr"]), obj["local_port"],
                canon(obj["remote_addr"]), obj["remote_port"],
                frozenset((p["name"], p["pid"], p["fd"]) for p in obj["processes"]),
                obj.get("interface"))
