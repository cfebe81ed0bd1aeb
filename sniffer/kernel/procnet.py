"""/proc/net's socket tables, read the way netstat reads them.

/proc/net/{raw,raw6,icmp,icmp6} fill a gap: raw sockets need the raw_diag module (often absent)
and ping sockets have no diag handler at all; `ss -w` falls back to these files too.
/proc/net/{tcp,tcp6,udp,udp6} are the second opinion of the hidden-socket check
(sniffer.kernel.hidden). Paths go through /proc/thread-self, so a thread that entered another
namespace reads that namespace's tables.
"""

from __future__ import annotations

import socket
import struct

FILES = (("raw", 4, "/proc/thread-self/net/raw"), ("raw", 6, "/proc/thread-self/net/raw6"),
         ("icmp", 4, "/proc/thread-self/net/icmp"), ("icmp", 6, "/proc/thread-self/net/icmp6"))


def _addr(hexaddr: str) -> bytes:
    """Kernel's hex dump of an address: 32-bit words in host byte order."""
    words = bytes.fromhex(hexaddr)
    return b"".join(struct.pack("=I", int.from_bytes(words[i : i + 4], "big"))
                    for i in range(0, len(words), 4))


def read(proto: str, family: int, path: str) -> list[tuple]:
    """Rows as ``(family, state, src, sport, dst, dport, rqueue, wqueue, uid, inode)``."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) < 10:
            continue
        local, remote, st, queues = parts[1], parts[2], parts[3], parts[4]
        lhex, _, lport = local.partition(":")
        rhex, _, rport = remote.partition(":")
        tx, _, rx = queues.partition(":")
        out.append((socket.AF_INET if family == 4 else socket.AF_INET6, int(st, 16), _addr(lhex),
                    int(lport, 16), _addr(rhex), int(rport, 16), int(rx, 16), int(tx, 16),
                    int(parts[7]), int(parts[9])))
    return out
