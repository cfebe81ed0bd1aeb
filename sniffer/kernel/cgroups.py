"""Socket cgroup ids -> cgroup paths -> container or systemd service.

sock_diag reports each socket's cgroup-v2 id, which is the inode of its directory in the
cgroup2 hierarchy; walking that hierarchy once maps ids to paths without any /proc scan.
"""

from __future__ import annotations

import os
import re

_CONTAINER = re.compile(
    r"(?:docker|cri-containerd|crio|libpod|containerd)[-:]([0-9a-f]{12,64})(?:\.scope)?$"
    r"|/docker/([0-9a-f]{12,64})$|/lxc(?:\.payload)?\.([^/]+)$"
    r"|/kubepods[^/]*/(?:[^/]+/)*pod[^/]+/([0-9a-f]{12,64})$")
_UNIT = re.compile(r"([^/]+\.(?:service|scope))$")


def cgroup2_mounts() -> list[str]:
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    out.append(left.split(" ")[4])
    except OSError:
        pass
    return out


class Cgroups:
    """Lazily walks the cgroup2 tree the first time an id is asked for."""

    __slots__ = ("_paths",)

    def __init__(self) -> None:
        self._paths: dict[int, str] | None = None

    def _walk(self) -> dict[int, str]:
        paths: dict[int, str] = {}
        for root in cgroup2_mounts():
            for dirpath, _dirs, _files in os.walk(root):
                try:
                    ino = os.stat(dirpath).st_ino
                except OSError:
                    continue
                paths.setdefault(ino, "/" + os.path.relpath(dirpath, root).lstrip("."))
        return paths

    def path(self, cgroup_id: int | None) -> str | None:
        if not cgroup_id:
            return None
        if self._paths is None:
            self._paths = self._walk()
        return self._paths.get(cgroup_id)


def container_of(path: str | None) -> str | None:
    if not path:
        return None
    m = _CONTAINER.search(path)
    if not m:
        return None
    return next(g for g in m.groups() if g)[:12]


def service_of(path: str | None) -> str | None:
    if not path:
        return None
    m = _UNIT.search(path)
    return m.group(1) if m else None
