"""The kernel view of `sniffer live` stays bounded over a long run (issue 12, item 18).

`Live` calls `KernelView.expire(now, keep_seconds(settings, --interval))` at each snapshot;
these tests make the same calls over six hours of network time with the socket records
`sniffer sockets --json` produces, and check both sides of the bound: memory stays flat, and
a socket is still remembered as long as a connection record may ask for it.
"""

from __future__ import annotations

from sniffer.config import Settings
from sniffer.correlate import KernelView, keep_seconds
from sniffer.flows.conn import Conn

LOCAL, PEER = "10.0.0.1", "10.0.0.2"
HOURS = 6


def sock(lport: int, rport: int, state: str = "ESTAB") -> dict:
    return {"proto": "tcp", "local_addr": LOCAL, "local_port": lport, "remote_addr": PEER,
            "remote_port": rport, "state": state, "inode": 1000 + lport,
            "processes": [{"name": "client", "pid": 4242}], "owner": "client"}


def record(ts: float, lport: int, rport: int) -> Conn:
    return Conn(ts, "C1", LOCAL, lport, PEER, rport, "tcp", 6, conn_state="SF",
                history="ShADadFf", orig_pkts=5, resp_pkts=5)


def test_long_run_view_is_bounded_and_keeps_what_records_need():
    settings, interval = Settings(), 1.0
    keep = keep_seconds(settings, interval)
    # every timeout that can delay a record's end is inside the horizon
    assert keep > settings.long_inactivity_timeout + settings.tcp_connection_linger + interval
    view = KernelView()
    view.event(0.0, {"kind": "addresses", "addresses": [LOCAL]})
    listener = {**sock(8080, 0, "LISTEN"), "remote_addr": "0.0.0.0"}
    ssh = sock(50022, 22)
    largest = 0
    for t in range(HOURS * 3600):
        # a snapshot a second: the listener, and one new short-lived connection each time;
        # the SSH session's socket is last seen one hour before the end
        socks = [listener, sock(1024 + t % 60000, 80)]
        if t < (HOURS - 1) * 3600:
            socks.append(ssh)
        view.event(float(t), {"kind": "snapshot", "sockets": socks})
        if t % 7 == 0:
            view.event(float(t), {"kind": "destroy", "socket": sock(1024 + t % 60000, 80)})
        view.expire(float(t), keep)
        largest = max(largest, view.size())
    # Without forgetting: 21,600 connections and 3,086 destroy events. With it: what was seen
    # within the horizon (one a second, a seventh destroyed) plus a minute between passes.
    bound = (keep + 60) * (1 + 1 / 7) + 3
    assert largest <= bound, (largest, bound)
    assert view.size() < HOURS * 3600 / 4
    # The idle SSH session ended by its inactivity timeout (port 22: an hour), its record
    # judged after that: its socket, last seen an hour ago, still accounts for it.
    end = float(HOURS * 3600)
    rec = record(end - 3600 - 10, 50022, 22)
    view.judge(rec)
    assert rec.verdict == "attributed", (rec.verdict, rec.evidence)
    # A connection whose socket was seen only at the start of the run is forgotten.
    old = record(10.0, 1024 + 10, 80)
    view.judge(old)
    assert old.verdict != "attributed", (old.verdict, old.evidence)
    assert ("tcp", LOCAL, 8080) in view.listening  # re-seen at every snapshot: kept


def test_connect_trace_wins_over_a_socket_without_process_in_both_families():
    """A socket record without a process (here `no-process`) and a connect() trace naming the
    originator's process: the trace attributes it, for IPv6 (whose traces carry only ports,
    as `sniffer.kernel.monitor._traced_record` writes them) as for IPv4 (issue 13)."""
    for local, peer in ((LOCAL, PEER), ("fd00::1", "fd00::2")):
        view = KernelView()
        view.event(0.0, {"kind": "addresses", "addresses": [local]})
        view.event(0.0, {"kind": "snapshot", "sockets": []})
        bare = {**sock(40000, 443), "local_addr": local, "remote_addr": peer, "processes": [],
                "owner": "no-process"}
        traced = {**sock(40000, 443), "state": "SYN-SENT", "inode": 0, "cookie": 0,
                  "processes": [{"name": "curl", "pid": 77, "fd": -1}], "owner": "process"}
        if ":" in local:
            traced["local_addr"] = traced["remote_addr"] = None
        else:
            traced["remote_addr"] = peer
        view.event(1.0, {"kind": "sockets", "source": "trace", "sockets": [traced]})
        view.event(1.1, {"kind": "snapshot", "sockets": [bare]})
        c = Conn(1.0, "C1", local, 40000, peer, 443, "tcp", 6, conn_state="SF",
                 history="ShADadFf", orig_pkts=5, resp_pkts=5)
        view.judge(c)
        assert c.verdict == "attributed" and c.processes[0]["pid"] == 77, (local, c.evidence)
