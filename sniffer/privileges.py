"""`sniffer live --user NAME`: give up root once everything that needs it is open.

Root is needed to open things: the AF_PACKET ring (CAP_NET_RAW), the sock_diag destroy-event
subscription (CAP_NET_ADMIN), setns(2) into another namespace (CAP_SYS_ADMIN), the tracefs
instance of the socket tracer. Once they are open, the packet parser (the code that reads
what strangers send) has no need for any of it; `drop` switches the process to NAME's uid and
gid, clears the supplementary groups and keeps only the capabilities named (none by default),
then sets no_new_privs. What still needs a capability afterwards is reading other users'
/proc/PID/fd (the process attribution): CAP_DAC_READ_SEARCH to list the directory and
CAP_SYS_PTRACE to read the links, both required (checked on Linux 6.18), kept only on request
(`--keep-caps`), because CAP_SYS_PTRACE is enough to take over any other process.

Everything goes through the kernel interfaces directly (prctl and capget/capset via ctypes):
no libcap dependency. The result is checked, not assumed: any mismatch is an error and the
run stops (fail closed) before a single packet is parsed.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pwd
from collections.abc import Iterable
from typing import NamedTuple

from sniffer.errors import SnifferError, UsageError

CAP_DAC_READ_SEARCH = 2
CAP_SETPCAP = 8
CAP_NET_BIND_SERVICE = 10
CAP_SYS_PTRACE = 19
CAP_NAMES = {CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH", CAP_SETPCAP: "CAP_SETPCAP",
             CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE", CAP_SYS_PTRACE: "CAP_SYS_PTRACE"}

# What --keep-caps keeps: reading every process's /proc/PID/fd for attribution.
ATTRIBUTION_CAPS = frozenset({CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE})

PR_CAPBSET_READ, PR_CAPBSET_DROP = 23, 24
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(SnifferError):
    """Dropping privileges failed or did not take: the run stops rather than go on as root."""


class Target(NamedTuple):
    """The account `--user` names."""

    name: str
    uid: int
    gid: int


def target(name: str) -> Target:
    """Look up `--user NAME` before anything is opened, so a typo costs nothing.

    uid 0 is refused: "dropping" to root would keep every file on the host writable.
    """
    try:
        pw = pwd.getpwnam(name)
    except (KeyError, UnicodeEncodeError, ValueError):
        raise UsageError(f"--user {name}: no such user") from None
    if pw.pw_uid == 0:
        raise UsageError(f"--user {name}: uid 0 is root; name an unprivileged user")
    return Target(pw.pw_name, pw.pw_uid, pw.pw_gid)


def needed(keep_caps: bool, bind_probe: bool) -> frozenset[int]:
    """The capabilities to keep after the drop: none, unless `--keep-caps` asks for attribution.

    With --keep-caps and the bind probe on, CAP_NET_BIND_SERVICE too: without it bind() to a
    port below 1024 fails with EACCES before the kernel says whether the port is in use.
    """
    if not keep_caps:
        return frozenset()
    return ATTRIBUTION_CAPS | ({CAP_NET_BIND_SERVICE} if bind_probe else set())


def names(caps: Iterable[int]) -> str:
    return ", ".join(CAP_NAMES.get(c, f"capability {c}") for c in sorted(caps)) or "none"


def mask(caps: Iterable[int]) -> int:
    """Capabilities as the bit mask /proc/PID/status shows (CapEff, CapPrm...)."""
    out = 0
    for c in caps:
        out |= 1 << c
    return out


def status(pid: str | int = "self") -> dict[str, str]:
    """/proc/PID/status as a dict (Uid, Gid, Groups, CapEff, NoNewPrivs...)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


# ------------------------------------------------------------------------------ the kernel

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> int:
    ret = _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3),
                      ctypes.c_ulong(0), ctypes.c_ulong(0))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return ret


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) capability masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    eff, prm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def _capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


# ------------------------------------------------------------------------------ the drop

def drop(who: Target, keep: frozenset[int] = frozenset(), preload: Iterable[str] = ()) -> None:
    """Become `who` for good, with only `keep` as capabilities, and check that it took.

    Order matters: capabilities and the no_new_privs bit belong to a thread, so the process
    must have only one (checked); modules the rest of the run imports are imported first
    (`preload`), since the new user may not be able to read the Python installation; the
    bounding set is cut while CAP_SETPCAP is still there; KEEPCAPS carries the permitted set
    across setresuid, and capset then trims it to `keep` exactly.
    """
    try:
        _drop(who, keep, preload)
    except OSError as exc:
        raise PrivilegeError(f"--user {who.name}: cannot drop privileges "
                             f"({exc.strerror or exc}); not running as root any further") from None
    verify(who, keep)


def _drop(who: Target, keep: frozenset[int], preload: Iterable[str]) -> None:
    tasks = os.listdir("/proc/self/task")
    if len(tasks) != 1:
        raise PrivilegeError(f"--user {who.name}: {len(tasks)} threads running; capabilities "
                             f"are per thread, so the drop must happen while there is one")
    for module in preload:
        importlib.import_module(module)
    effective = capget()[0]
    if effective & (1 << CAP_SETPCAP):  # as root; not under AmbientCapabilities=
        for cap in range(_last_cap() + 1):
            if cap not in keep and _prctl(PR_CAPBSET_READ, cap) == 1:
                _prctl(PR_CAPBSET_DROP, cap)
    try:
        os.setgroups([])
    except PermissionError:
        # Already NAME without CAP_SETGID (started by systemd as NAME): acceptable only if
        # the one group left is NAME's own.
        if not set(os.getgroups()) <= {who.gid}:
            raise
    if keep:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setresgid(who.gid, who.gid, who.gid)
    os.setresuid(who.uid, who.uid, who.uid)
    bits = mask(keep)
    _capset(bits, bits, 0)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if keep:
        _prctl(PR_SET_KEEPCAPS, 0)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def verify(who: Target, keep: frozenset[int]) -> None:
    """Fail closed unless the process is exactly `who` with exactly `keep`: ids, groups,
    every capability set, no_new_privs, and root not regainable."""
    problems = []
    if os.getresuid() != (who.uid,) * 3:
        problems.append(f"uids are {os.getresuid()}")
    if os.getresgid() != (who.gid,) * 3:
        problems.append(f"gids are {os.getresgid()}")
    if not set(os.getgroups()) <= {who.gid}:
        problems.append(f"supplementary groups {os.getgroups()} remain")
    want = mask(keep)
    eff, prm, inh = capget()
    if (eff, prm, inh) != (want, want, 0):
        problems.append(f"capabilities effective {eff:#x}, permitted {prm:#x}, inheritable "
                        f"{inh:#x} (want {want:#x}, {want:#x}, 0)")
    st = status()
    if int(st.get("CapAmb", "0"), 16) != 0:
        problems.append(f"ambient capabilities {st['CapAmb']} remain")
    if st.get("NoNewPrivs") != "1":
        problems.append("no_new_privs is not set")
    for regain in (os.setuid, os.setgid):
        try:
            regain(0)
        except PermissionError:
            continue
        problems.append(f"{regain.__name__}(0) succeeded")
    if problems:
        raise PrivilegeError(f"--user {who.name}: privileges not dropped as required: "
                             + "; ".join(problems) + "; stopping")


def note(who: Target, keep: frozenset[int], bind_probe: bool) -> str:
    """The one stderr line saying what the run cannot see any more, and why."""
    lost = []
    if not ATTRIBUTION_CAPS <= keep:
        lost.append("other users' processes cannot be read, so their sockets show no process "
                    "(verdict unknown where it would be attributed; --keep-caps keeps it)")
    lost.append("no connect() tracing (a very short outgoing connection may show as kernel, "
                "not attributed)")
    if bind_probe and CAP_NET_BIND_SERVICE not in keep:
        lost.append("the bind probe skips ports below 1024")
    return (f"sniffer: note: running as {who.name} (uid {who.uid}) with capabilities: "
            f"{names(keep)}; " + "; ".join(lost))


__all__ = ["ATTRIBUTION_CAPS", "PrivilegeError", "Target", "capget", "drop", "mask", "names",
           "needed", "note", "status", "target", "verify"]
