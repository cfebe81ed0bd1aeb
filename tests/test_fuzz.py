"""Fuzzing `sniffer read` (fuzz/fuzz_read.py, atheris), and the crashes it found, as regressions.

`test_fuzz_bounded` runs the harness for SNIFFER_FUZZ_SECONDS (default 60) through fuzz/run.py,
seeded with the small captures of the shared corpus and the inputs of tests/data/fuzz; any
crash, hang or memory blow-up fails it, and the number of inputs tried is shown in the session
summary.

tests/data/fuzz holds the inputs of the crashes found, one file each (README.md says what
each one did); every one must now read cleanly, with the bad record counted and skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sniffer.capture.custom import timestamp, well_formed
from sniffer.capture.pcapng import read_pcapng
from sniffer.capture.source import open_source
from sniffer.cli import main
from sniffer.stats import Stats

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = sorted((ROOT / "tests" / "data" / "fuzz").glob("*.pcapng"))


@pytest.mark.slow  # a minute of fuzzing
def test_fuzz_bounded(robustness_report):
    seconds = float(os.environ.get("SNIFFER_FUZZ_SECONDS", "60"))
    proc = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run.py"), "--seconds",
                           str(seconds)], cwd=ROOT, capture_output=True, text=True,
                          timeout=seconds + 600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    robustness_report(summary or f"fuzz: no summary (exit {proc.returncode})")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    m = re.search(r"fuzz: (\d+) inputs tried", summary)
    assert m and int(m.group(1)) > 0, summary


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_fuzz_regression_inputs(path, tmp_path):
    """Recordings whose kernel records had the wrong shape crashed the correlator, the
    detectors or the writers; now the record is skipped (counted) and the packet is read."""
    out, alerts = tmp_path / "conn.log", tmp_path / "notice.log"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["read", "--format", "zeek", "-o", str(out), "--alerts", str(alerts),
                   "--alerts-format", "zeek", str(path)])
    assert rc == 0, err.getvalue()
    rows = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(rows) == 1 and "\t10.0.0.1\t40000\t93.184.216.34\t80\ttcp\t" in rows[0]
    assert alerts.read_text().splitlines()[-1].startswith("#close")
    stats = Stats()
    src = open_source(str(path), stats)
    got: list = []
    try:
        packets = list(read_pcapng(src, stats, lambda ts, rec: got.append((ts, rec))))
    finally:
        src.close()
    assert len(packets) == 1
    for ts, rec in got:  # what still reaches the consumers is well formed, at a usable time
        assert timestamp(ts) == ts and well_formed(rec)
    if "timestamp" in path.stem:  # a good record with a bad time: kept, at the stream's time
        assert [ts for ts, _ in got] == [999.0, 0.0]  # the addresses record has ts 999
    else:
        assert stats["pcapng_custom_block_bad"] >= 1


# --- the shapes the reader accepts ------------------------------------------------------------

SOCKET = {"netns": "host", "netns_inode": 4026531840, "proto": "tcp", "family": 4,
          "state": "ESTABLISHED", "local_addr": "10.0.0.1", "local_port": 40000,
          "remote_addr": "93.184.216.34", "remote_port": 80, "recv_q": 0, "send_q": 0,
          "uid": 1000, "user": "alice", "inode": 12345, "cookie": 7, "interface": None,
          "processes": [{"pid": 42, "name": "curl", "fd": 3}], "cgroup_id": None,
          "cgroup": None, "container": None, "service": None, "owner": "process"}


CT_ENTRY = {"netns": "router", "netns_inode": 4026532000, "family": 4, "proto": "tcp",
            "proto_num": 6, "orig": {"src": "10.98.0.1", "dst": "10.97.0.2", "sport": 40000,
                                     "dport": 80},
            "reply": {"src": "10.97.0.2", "dst": "10.97.0.254", "sport": 80, "dport": 40000},
            "state": "SYN_SENT", "timeout": 120, "status": ["CONFIRMED", "SRC_NAT"], "mark": 0,
            "zone": 0, "id": 123, "use": 1, "helper": None, "counters": None, "nat": "SNAT"}
CT_ICMP = dict(CT_ENTRY, proto="icmp", proto_num=1, state=None, nat=None,
               orig={"src": "10.98.0.1", "dst": "10.97.0.2", "sport": None, "dport": None,
                     "type": 8, "code": 0, "id": 7},
               reply={"src": "10.97.0.2", "dst": "10.98.0.1", "sport": None, "dport": None,
                      "type": 0, "code": 0, "id": 7})


def ev(kind: str, **fields) -> dict:
    return {"sniffer": 1, "kind": kind, "ts": 1000.0, **fields}


@pytest.mark.parametrize("rec", [
    ev("addresses", netns="host", addresses=["10.0.0.1", "::1"],
       local_prefixes=["10.0.0.1/32", "::1/128"]),
    ev("snapshot", netns="host", sockets=[SOCKET, dict(SOCKET, local_addr=None, state="x")]),
    ev("sockets", netns="host", source="trace", sockets=[dict(SOCKET, inode=0)]),
    ev("destroy", netns="host", socket=SOCKET),
    ev("hidden", netns="host", sockets=[{
        "netns": "host", "proto": "tcp", "family": 4, "local_addr": "0.0.0.0",
        "local_port": 22, "remote_addr": "", "remote_port": 0, "state": "LISTEN",
        "inode": 0, "seen_in": ["bind probe (EADDRINUSE)"],
        "missing_from": ["sock_diag", "/proc/net/tcp"], "summary": "tcp 0.0.0.0:22"}]),
    ev("start", argv=["live", "-w", "x.pcapng"], host="hôte"),
    ev("resync", netns="host"),
    ev("conntrack", netns="router", event="dump", events=True, entries=[CT_ENTRY, CT_ICMP]),
    ev("conntrack", netns="router", event="new", entries=[CT_ENTRY]),
    ev("conntrack", netns="router", event="destroy", entries=[dict(CT_ENTRY, state=None)]),
    ev("conntrack", netns="router", event="lost", entries=[]),
], ids=lambda r: r["kind"] + "-" + r.get("event", ""))
def test_records_sniffer_writes_are_well_formed(rec):
    assert well_formed(rec)


@pytest.mark.parametrize("rec", [
    ev("addresses", addresses=5),
    ev("addresses", addresses=["10.0.0.1"], local_prefixes=["not-a-net"]),
    ev("snapshot", sockets=7),
    ev("snapshot", sockets=["x"]),
    ev("snapshot", sockets=[dict(SOCKET, local_addr=[1])]),
    ev("snapshot", sockets=[dict(SOCKET, local_addr="10.0.0.300")]),
    ev("snapshot", sockets=[dict(SOCKET, local_port=70000)]),
    ev("snapshot", sockets=[dict(SOCKET, remote_port=True)]),
    ev("snapshot", sockets=[dict(SOCKET, state=None)]),
    ev("snapshot", sockets=[dict(SOCKET, processes=[{"x": 1}])]),
    ev("snapshot", sockets=[dict(SOCKET, processes={"pid": 1})]),
    ev("snapshot", sockets=[dict(SOCKET, user="\ud800")]),
    ev("snapshot", sockets=[dict(SOCKET, netns=["a"])]),
    ev("destroy", socket="x"),
    ev("hidden", sockets=[dict(SOCKET, missing_from=[["a"]])]),
    ev("hidden", sockets=[dict(SOCKET, remote_addr="", remote_port=5)]),
    ev("conntrack", event="update", entries=[]),
    ev("conntrack", event="dump", events="yes", entries=[]),
    ev("conntrack", event="new", entries=CT_ENTRY),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, family=5)]),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, id="123")]),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, nat=["SNAT"])]),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, status="SNAT")]),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, orig="10.0.0.1")]),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, reply=dict(CT_ENTRY["reply"],
                                                                     dst="10.0.0.300"))]),
    ev("conntrack", event="new", entries=[dict(CT_ENTRY, orig=dict(CT_ENTRY["orig"],
                                                                    sport=70000))]),
])
def test_records_of_the_wrong_shape_are_refused(rec):
    assert not well_formed(rec)


@pytest.mark.parametrize("value,want", [
    (1000, 1000.0), (1000.5, 1000.5), (10 ** 400, None), (float("nan"), None),
    (float("inf"), None), (True, None), ("1000", None), (None, None)])
def test_record_timestamps(value, want):
    assert timestamp(value) == want


def test_bad_record_keeps_the_stream_time(tmp_path):
    """A record with an unusable ts is delivered at the stream's time (its last packet)."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + \
            struct.pack("<I", 12 + len(body))

    frame = bytes(12) + b"\x08\x00" + bytes(20)
    data = (block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
            + block(1, struct.pack("<HHI", 1, 0, 0))
            + block(6, struct.pack("<IIIII", 0, 0, 5_000_000, len(frame), len(frame)) + frame)
            + block(0x0BAD, struct.pack("<I", 32473)
                    + b'{"sniffer":1,"kind":"x","ts":' + b"9" * 400 + b"}"))
    path = tmp_path / "t.pcapng"
    path.write_bytes(data)
    stats = Stats()
    src = open_source(str(path), stats)
    got: list = []
    try:
        list(read_pcapng(src, stats, lambda ts, rec: got.append(ts)))
    finally:
        src.close()
    assert got == [5.0]
