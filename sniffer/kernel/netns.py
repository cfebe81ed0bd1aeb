"""Network namespaces: find them, name them, and step into one to read its socket tables.

A namespace is always resolved to an existing file first, then entered with setns(2) (see
`_setns` for why not pyroute2's `pushns`, which would also *create* a missing namespace: its
flags default to O_CREAT).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from sniffer.errors import UsageError

RUN_NETNS = "/run/netns"


class Netns(NamedTuple):
    """One network namespace: how to reach it and what to call it."""

    label: str  # its /run/netns name, "host" for our own, else "pid:N"
    inode: int
    path: str  # a file that refers to it (/run/netns/NAME or /proc/PID/ns/net)


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def current() -> Netns:
    """The namespace this process is in: by its /run/netns name if it has one, else "host"."""
    ino = _inode("/proc/self/ns/net") or 0
    for ns in named().values():
        if ns.inode == ino:
            return ns
    return Netns("host", ino, "/proc/self/ns/net")


def named() -> dict[int, Netns]:
    """The namespaces with a name under /run/netns, by inode."""
    out: dict[int, Netns] = {}
    try:
        names = sorted(os.listdir(RUN_NETNS))
    except OSError:
        return out
    for name in names:
        path = os.path.join(RUN_NETNS, name)
        ino = _inode(path)
        if ino is not None and ino not in out:
            out[ino] = Netns(name, ino, path)
    return out


def everything() -> list[Netns]:
    """Every distinct namespace on the host: ours, the named ones, and those of processes.

    A namespace can have a name and no process, or processes and no name; each appears once,
    by its name if it has one.
    """
    me = current()
    by_inode = named()
    found = {me.inode: me}
    for ino, ns in by_inode.items():
        found.setdefault(ino, ns)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        path = f"/proc/{entry.name}/ns/net"
        ino = _inode(path)
        if ino is not None and ino not in found:
            found[ino] = Netns(f"pid:{entry.name}", ino, path)
    return list(found.values())


def resolve(spec: str) -> Netns:
    """`--netns` argument: a /run/netns name, ``pid:N``, or a path to a namespace file."""
    if spec.lower().startswith("pid:"):
        pid = spec[4:]
        if not pid.isdigit():
            raise UsageError(f"--netns {spec}: want pid:NUMBER")
        path, label = f"/proc/{pid}/ns/net", f"pid:{pid}"
    elif "/" in spec:
        path, label = spec, spec
    else:
        path, label = os.path.join(RUN_NETNS, spec), spec
    ino = _inode(path)
    if ino is None:
        reason = "no such namespace" if not os.path.exists(path) else "cannot open it"
        raise UsageError(f"--netns {spec}: {reason} ({path})")
    me = current()
    if ino == me.inode and "/" not in spec and not spec.lower().startswith("pid:"):
        return Netns(spec, ino, path)
    for ns in named().values():
        if ns.inode == ino:
            return ns
    return Netns("host" if ino == me.inode else label, ino, path)


@contextmanager
def entered(ns: Netns) -> Iterator[None]:
    """Run the block inside `ns` (a no-op for our own namespace).

    Sockets opened inside stay bound to `ns` after the block, which is what sock_diag needs.
    """
    if ns.inode == _inode("/proc/thread-self/ns/net"):
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _join(ns)
        try:
            yield
        finally:
            _setns(home, "host")
    finally:
        os.close(home)


def enter(ns: Netns) -> None:
    """Move the calling thread into `ns` for good (a no-op for our own namespace).

    For `live --user`: after the drop there is no CAP_SYS_ADMIN to setns back with, and no
    need to, so the run stays where `entered` would have put it.
    """
    if ns.inode == _inode("/proc/thread-self/ns/net"):
        return
    _join(ns)


def _join(ns: Netns) -> None:
    """setns(2) the calling thread into `ns`; a path that cannot be opened is a usage error."""
    try:
        target = os.open(ns.path, os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"namespace {ns.label}: cannot open {ns.path} ({exc.strerror})") from None
    try:
        _setns(target, ns.label)
    finally:
        os.close(target)


_CLONE_NEWNET = 0x40000000


def _setns(fd: int, label: str) -> None:
    """setns(2) into the namespace open on `fd`.

    Python 3.11 has no os.setns, and pyroute2's wrapper costs a 0.15 s import (its package
    imports everything), more than `ss -tanp` takes for 10,000 sockets; this is the same call
    through ctypes. pyroute2 stays the tool for addresses and routes (sniffer.kernel.addrs).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise UsageError(f"namespace {label}: cannot enter ({os.strerror(err)})")
