"""Which processes hold which sockets: the /proc/PID/fd scan that `ss -p` and `lsof` do.

Socket inodes come from one sockfs for the whole host, so one scan serves every namespace.
Each readlink has its own try: descriptors vanish between listing and reading.
"""

from __future__ import annotations

import os
from collections.abc import Iterator


class Owners:
    """inode -> [(pid, fd)], plus program names.

    What could not be looked at is kept too, because a socket whose holder was not found may
    then belong to one of those processes (owner `unknown`, not `kernel`): `denied` counts the
    processes whose /proc/PID/fd could not be read (`denied_pids` names them) and `hidden` is
    the hidepid= option of /proc when it hides other users' processes altogether.
    """

    __slots__ = ("by_inode", "denied", "denied_pids", "hidden", "_names")

    def __init__(self) -> None:
        self.by_inode: dict[int, list[tuple[int, int]]] = {}
        self.denied = 0
        self.denied_pids: list[int] = []
        self.hidden: str | None = None
        self._names: dict[int, str] = {}

    @property
    def blind(self) -> bool:
        """Whether some process's descriptors could not be seen (so an unheld socket's owner
        is unknown rather than the kernel)."""
        return bool(self.denied or self.hidden)

    @classmethod
    def scan(cls) -> Owners:
        owners = cls()
        owners.hidden = hidden_processes()
        by_inode = owners.by_inode
        readlink = os.readlink
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            base = f"/proc/{pid}/fd/"
            try:
                fds = os.listdir(base)
            except PermissionError:
                owners.denied += 1
                owners.denied_pids.append(int(pid))
                continue
            except OSError:
                continue
            ipid = int(pid)
            for fd in fds:
                try:
                    link = readlink(base + fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inode = int(link[8:-1])
                    entry = by_inode.get(inode)
                    if entry is None:
                        by_inode[inode] = [(ipid, int(fd))]
                    else:
                        entry.append((ipid, int(fd)))
        return owners

    def find(self, inode: int) -> list[tuple[int, int]]:
        """Who holds `inode`, scanning only as far as needed (newest processes first).

        For one new socket a full scan would be wasted: it is usually held by one process, and
        the process that opened a connection a moment ago is usually among the newest.
        """
        hit = self.by_inode.get(inode)
        if hit:
            return hit
        pids = sorted((int(p) for p in os.listdir("/proc") if p.isdigit()), reverse=True)
        for pid in pids:
            for fd, ino in _sockets_of(pid):
                self._hold(ino, pid, fd)
            if inode in self.by_inode:
                self.name(pid)  # while the process still exists
                return self.by_inode[inode]
        return []

    def rescan(self, inodes: set[int]) -> None:
        """A second look for sockets the first one found unheld: every process's descriptors
        again, now, keeping (and naming) only the holders of `inodes`.

        A scan and a sock_diag dump are not one instant: a socket opened or accepted between
        them is in the dump but not in the scan, which alone would make it look ownerless.
        """
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            for fd, ino in _sockets_of(pid):
                if ino in inodes:
                    self._hold(ino, pid, fd)
                    self.name(pid)  # while the process still exists

    def _hold(self, inode: int, pid: int, fd: int) -> None:
        entry = self.by_inode.setdefault(inode, [])
        if (pid, fd) not in entry:
            entry.append((pid, fd))

    def name(self, pid: int) -> str:
        """The program name (/proc/PID/comm, as `ss -p` shows it)."""
        name = self._names.get(pid)
        if name is None:
            try:
                with open(f"/proc/{pid}/comm", "rb") as f:
                    name = f.read().rstrip(b"\n").decode("utf-8", "replace")
            except OSError:
                name = "?"
            self._names[pid] = name
        return name

    def holders(self, inode: int) -> list[dict]:
        entry = self.by_inode.get(inode)
        if not entry:
            return []
        names = self._names
        if len(entry) > 1:
            entry = sorted(entry)
        return [{"pid": pid, "name": names.get(pid) or self.name(pid), "fd": fd}
                for pid, fd in entry]


def _sockets_of(pid: int) -> Iterator[tuple[int, int]]:
    """(fd, inode) of each socket process `pid` holds; none once it is gone or unreadable."""
    base = f"/proc/{pid}/fd/"
    try:
        fds = os.listdir(base)
    except OSError:
        return
    for fd in fds:
        try:
            link = os.readlink(base + fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            yield int(fd), int(link[8:-1])


def hidden_processes(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The `hidepid=` option of /proc if it hides other users' processes from us, else None.

    With hidepid=invisible (2) or ptraceable (4), /proc lists only the processes we may
    look at, so a denial is never seen: without this, their sockets would look ownerless.
    Root (CAP_SYS_PTRACE) and members of the mount's `gid=` group see everything.
    """
    if os.geteuid() == 0:
        return None
    option = None
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 5 or fields[4] != "/proc" or " - proc " not in line:
                    continue
                opts = line.split(" - ", 1)[1].split()[-1].split(",")
                option = next((o for o in opts if o.startswith("hidepid=")), None)
                gid = next((o[4:] for o in opts if o.startswith("gid=")), None)
                if gid is not None and gid.isdigit() and \
                        (int(gid) == os.getegid() or int(gid) in os.getgroups()):
                    option = None  # the mount's trusted group sees every process
    except OSError:
        return None
    if option in ("hidepid=2", "hidepid=invisible", "hidepid=4", "hidepid=ptraceable"):
        return option
    return None
