"""The bounded flow table (`--max-flows`): a flood of half-open attempts cannot grow it without
limit, the established connections in the same capture survive it intact, and the evictions
are reported (issue 7; docs/performance.md, "Memory")."""

from __future__ import annotations

import json
import random

from pcapkit import ETH, Session, run, write
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether


def flood_with_a_real_session(n: int = 3000) -> list:
    """A real session that opens before a SYN flood from random sources and ends after it."""
    s = Session(client="10.0.0.5", server="10.0.0.1", cport=5555, sport=80, t0=1000.0)
    s.handshake()
    s.send(True, "PA", b"GET / HTTP/1.0\r\n\r\n")
    r = random.Random(7)
    flood = []
    t = s.t
    for _ in range(n):
        t += 0.0001
        p = (Ether(**ETH) / IP(src=".".join(str(r.randrange(1, 224)) for _ in range(4)),
                               dst="10.0.0.1") /
             TCP(sport=r.randrange(1024, 65535), dport=80, flags="S", seq=r.getrandbits(32)))
        p.time = t
        flood.append(p)
    s.t = t
    s.send(False, "PA", b"HTTP/1.0 200 OK\r\n\r\nhello")
    s.send(True, "FA")
    s.send(False, "FA")
    s.send(True, "A")
    first, rest = s.pkts[:4], s.pkts[4:]
    return first + flood + rest


def records(tmp_path, pcap, *args) -> tuple[list[dict], str]:
    out = tmp_path / "conn.json"
    proc = run(["read", pcap, "--format", "json", "-o", out, *args])
    return [json.loads(line) for line in out.read_text().splitlines()], proc.stderr.decode()


def test_flood_is_evicted_and_the_real_connection_survives(tmp_path):
    pcap = write(tmp_path, flood_with_a_real_session(), "flood.pcap")
    recs, note = records(tmp_path, pcap, "--max-flows", "500")
    assert len(recs) == 3001  # every attempt is still logged once, evicted or not
    (real,) = [r for r in recs if r["id.orig_p"] == 5555]
    unbounded, _ = records(tmp_path, pcap, "--max-flows", "0")
    assert real == next(r for r in unbounded if r["id.orig_p"] == 5555)  # the same record
    assert (real["conn_state"], real["history"]) == ("SF", "ShADdFf"), real
    assert real["orig_bytes"] == 18 and real["resp_bytes"] == 24, real
    evicted = int(note.split("flows_evicted=")[1].split(",")[0].split()[0])
    assert evicted >= 2500, note  # most of the flood went early, in batches of an eighth
    s0 = [r for r in recs if r["conn_state"] == "S0"]
    assert len(s0) == 3000


def test_no_limit_and_bad_values(tmp_path):
    pcap = write(tmp_path, flood_with_a_real_session(600), "flood.pcap")
    proc = run(["read", pcap, "--format", "json", "-o", tmp_path / "c.json", "--max-flows", "0"])
    assert b"flows_evicted" not in proc.stderr
    bad = run(["read", pcap, "--max-flows", "-1"], check=False)
    assert bad.returncode == 2 and b"--max-flows" in bad.stderr and bad.stderr.count(b"\n") == 1
