"""Hidden-socket scenarios: real namespaces, real sockets, and a user-land rootkit.

Each scenario makes a throw-away network namespace, starts a process in it that holds sockets,
and runs the real `sniffer sockets --hidden --json` on that namespace. In the hiding scenarios
the sniffer process is loaded with tests/rootkit/hide_port.c (LD_PRELOAD, the way
/etc/ld.so.preload rootkits load), which hides one port from its /proc/net reads, its sock_diag
replies, or both: the kernel itself is untouched, so the views the rootkit does not filter (and
the bind probe) still see the port. The guard scenario is a busy namespace, with sockets of
every kind and connections churning while the check runs: nothing may be reported.

tests/test_hidden.py asserts on these; docs/gen_detector_table.py puts them in the table.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netnskit import PYTHON, ROOT, NetNS

SOURCE = ROOT / "tests" / "rootkit" / "hide_port.c"

# A TCP listener on 127.0.0.1 and a UDP socket on ::1, both on the same port: the one hidden.
HOLDER = r'''
set_name("snf-backdoor")
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen()
port = lst.getsockname()[1]
udp(socket.AF_INET6, bind=("::1", port))
ready(port=port)
'''

# Sockets of every kind a check must account for, and connections churning all along.
BUSY = r'''
set_name("snf-busy")
def listener(fam, addr, v6only=None):
    s = socket.socket(fam)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, 0)); s.listen(128); KEEP.append(s)
    return s
l4 = listener(socket.AF_INET, "127.0.0.1")
dual = listener(socket.AF_INET6, "::", v6only=0)      # also holds the IPv4 port
only6 = listener(socket.AF_INET6, "::1", v6only=1)
bound = socket.socket(); bound.bind(("127.0.0.1", 0)); KEEP.append(bound)  # bound, never used
for _ in range(2):                                    # two UDP sockets sharing one port
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    r.bind(("127.0.0.1", 5353)); KEEP.append(r)
udp(socket.AF_INET, bind=("127.0.0.1", 0), connect=("127.0.0.1", 9))
udp(socket.AF_INET6, bind=("::1", 0))
for _ in range(5):                                    # established, held open
    c = socket.create_connection(l4.getsockname()); KEEP.append(c)
    KEEP.append(l4.accept()[0])
def serve(lst):
    while True:
        try:
            s, _ = lst.accept()
            s.close()
        except OSError:
            pass
def churn(addr):
    while True:                                       # the client closes first: TIME-WAIT
        try:
            c = socket.create_connection(addr)
            c.close()
        except OSError:
            time.sleep(0.001)
threading.Thread(target=serve, args=(dual,), daemon=True).start()
threading.Thread(target=churn, args=(("127.0.0.1", dual.getsockname()[1]),), daemon=True).start()
time.sleep(0.3)
ready(bound=bound.getsockname()[1])
'''


@dataclass(frozen=True)
class HiddenScenario:
    name: str
    what: str
    holder: str
    hide_from: str | None  # the rootkit's HIDE_FROM; None: no rootkit
    probe: bool = False
    expected: frozenset = frozenset()


SCENARIOS = [
    HiddenScenario("hidden/from-proc", "a userland rootkit hides a listener from /proc/net "
                   "(netstat); sock_diag still lists it", HOLDER, "proc",
                   expected=frozenset({"hidden-socket"})),
    HiddenScenario("hidden/from-sock-diag", "the rootkit hides it from sock_diag (ss); "
                   "/proc/net still lists it", HOLDER, "diag",
                   expected=frozenset({"hidden-socket"})),
    HiddenScenario("hidden/from-both", "hidden from both tables; the bind probe finds the "
                   "port taken", HOLDER, "proc,diag", probe=True,
                   expected=frozenset({"hidden-socket"})),
    HiddenScenario("hidden/guard-busy-namespace", "listeners (IPv4, dual-stack, v6-only), a "
                   "bound-only socket, SO_REUSEPORT, connections churning into TIME-WAIT "
                   "during the check, bind probe on", BUSY, None, probe=True),
]
BY_NAME = {sc.name: sc for sc in SCENARIOS}


@functools.cache
def rootkit() -> Path:
    """hide_port.c compiled once per run (gcc; `.ci/run` installs it where missing)."""
    out = Path(tempfile.mkdtemp(prefix="snf-rootkit-"))
    atexit.register(shutil.rmtree, out, True)
    so = out / "hide_port.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(so), str(SOURCE), "-ldl"],
                   check=True, capture_output=True, text=True, timeout=60)
    return so


def rootkit_env(port: int, hide_from: str) -> dict[str, str]:
    """The environment that loads the rootkit into a process, hiding `port`."""
    return {**os.environ, "LD_PRELOAD": str(rootkit()), "HIDE_PORT": str(port),
            "HIDE_FROM": hide_from}


@dataclass
class Outcome:
    returncode: int
    findings: list[dict]
    stderr: str
    info: dict  # what the holder reported (its ports)

    @property
    def kinds(self) -> set[str]:
        return {"hidden-socket"} if self.findings else set()


@functools.cache
def run(name: str) -> Outcome:
    """Run one scenario (cached: the table generator and the tests share the result)."""
    sc = BY_NAME[name]
    with NetNS() as ns:
        holder = ns.spawn(sc.holder)
        env = rootkit_env(holder.info["port"], sc.hide_from) if sc.hide_from else None
        argv = [PYTHON, "-m", "sniffer", "sockets", "--hidden", "--json", "--netns", ns.name]
        if sc.probe:
            argv.append("--bind-probe")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env=env)
    findings = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return Outcome(proc.returncode, findings, proc.stderr, holder.info)
