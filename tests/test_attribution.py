"""Issue 13, "Must show" (first item), the CI-sized run: real servers and clients in two
namespaces, `sniffer live` in A, and every connection attributed to the right pid and program,
whoever closes first; no `ownerless-socket`, `unattributed-connection` or `hidden-listener`
alert. The workload and the checks are tests/attribkit.py's, shared with bench/attrib_bench.py
(500 + 500 TCP and 200 UDP, 10 runs in a row).
"""

from __future__ import annotations

import pytest

import attribkit
from netnskit import can_run

pytestmark = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))


def test_short_connections_are_attributed_to_their_programs(tmp_path):
    """A normal run of 300 short connections: 120 inbound and 120 outbound TCP (half closed by
    the server right after its answer) and 60 UDP request/replies from fresh sockets, IPv4 and
    IPv6 by turns."""
    run = attribkit.run(tmp_path, tcp=120, udp=60)
    print(f"\n{run.report()}\n({run.seconds:.1f} s; {run.sniffer_summary})")
    assert len(run.conns) == 300
    assert run.ok, f"not every connection attributed to its program:\n{run.report()}"
