"""Many bad checksums (checksum offloading) are explained, in every output mode (issue 12, item 5).

A capture taken on a host whose NIC fills in TCP/UDP checksums holds that host's packets with
wrong ones: without `-C` they are dropped and the connections lose most of their bytes. Like
Zeek (base/misc/find-checksum-offloading.zeek), `sniffer read` and `sniffer live` then print a
one-line warning naming `-C`; the counts of bad checksums go in the usual note line. The real
capture here is nDPI's 1kxun trace: 409 of its 1,723 packets have a bad TCP checksum.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from netnskit import Drain
from pcapkit import CORPUS, ETH, ROOT, write

KXUN = CORPUS / "big" / "ndpi_1kxun.pcap"
WARNING = ("sniffer: warning: 409 of 1723 packets (24%) had invalid TCP checksums and were not "
           "counted, most likely from NIC checksum offloading on the capturing host; use -C "
           "(--ignore-checksums) to count them, or --ignore-checksums-net CIDR for packets "
           "from some addresses only")


def sniffer(*args, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "SNIFFER_QUIET"}
    return subprocess.run([sys.executable, "-m", "sniffer", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env, **kw)


def ip_bytes(records: list[dict]) -> int:
    return sum(r["orig_ip_bytes"] + r["resp_ip_bytes"] for r in records)


@pytest.mark.parametrize("fmt", ["zeek", "json", "table"])
def test_offloaded_capture_warns_in_every_format(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    proc = sniffer("read", KXUN, "--format", fmt, "-o", out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    if fmt == "table":  # the table's summary lists the counters itself
        assert lines == [WARNING]
        # ... and carries the warning (rich wraps it at the file's 80 columns)
        assert " ".join(WARNING.removeprefix("sniffer: ").split()) in " ".join(
            out.read_text().split())
    else:
        assert lines == ["sniffer: note: weird:bad_TCP_checksum=409", WARNING]


def test_with_C_the_bytes_come_back_and_nothing_is_said(tmp_path):
    plain, ignored = tmp_path / "plain.json", tmp_path / "C.json"
    assert sniffer("read", KXUN, "--format", "json", "-o", plain).stderr.splitlines()[-1] == WARNING
    proc = sniffer("read", KXUN, "--format", "json", "-o", ignored, "-C")
    assert proc.returncode == 0 and proc.stderr == ""
    lost = [json.loads(ln) for ln in plain.read_text().splitlines()]
    kept = [json.loads(ln) for ln in ignored.read_text().splitlines()]
    assert ip_bytes(lost) < ip_bytes(kept) / 2  # "loses most of its bytes without -C"


def test_ignore_checksums_net_lowers_the_count(tmp_path):
    """--ignore-checksums-net for one address keeps that address's packets: fewer are bad."""
    proc = sniffer("read", KXUN, "--format", "zeek", "-o", tmp_path / "n.log",
                   "--ignore-checksums-net", "192.168.2.126/32")
    note, warning = proc.stderr.splitlines()
    assert note == "sniffer: note: weird:bad_TCP_checksum=283"
    assert warning.startswith("sniffer: warning: 283 of 1723 packets (16%) had invalid TCP")


def test_quiet_turns_both_lines_off(tmp_path):
    proc = sniffer("read", KXUN, "--format", "zeek", "-o", tmp_path / "q.log",
                   env={**os.environ, "SNIFFER_QUIET": "1"})
    assert proc.returncode == 0 and proc.stderr == ""


def test_table_on_a_terminal_shows_it_in_the_summary_only(tmp_path):
    """On a terminal the summary carries the warning; stderr does not repeat it there."""
    master, slave = os.openpty()
    drain = Drain(master)
    try:
        proc = subprocess.run([sys.executable, "-m", "sniffer", "read", str(KXUN), "--max-rows",
                               "3"], cwd=ROOT, stdout=slave, stderr=subprocess.PIPE, text=True,
                              timeout=300, env={**os.environ, "TERM": "dumb"})
    finally:
        os.close(slave)
        screen = drain.text()
        os.close(master)
    assert proc.returncode == 0 and proc.stderr == ""
    assert " ".join(WARNING.removeprefix("sniffer: ").split()) in " ".join(screen.split())
    assert "weird:bad_TCP_checksum" in screen and "409" in screen


def frames(n_good: int, n_bad: int, bad: str) -> list:
    """`n_good` valid UDP packets, then `n_bad` with a wrong `bad` (UDP or TCP) checksum."""
    pkts = []
    for i in range(n_good + n_bad):
        wrong = {"chksum": 0x1234} if i >= n_good else {}
        l4 = (TCP(sport=40000 + i, dport=80, flags="S", **wrong) if bad == "TCP" and wrong
              else UDP(sport=50000 + i, dport=53, **wrong))
        p = Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2") / l4 / b"q"
        p.time = 1000.0 + i
        pkts.append(p)
    return pkts


@pytest.mark.parametrize("good,bad,kind,warned", [
    (38, 2, "UDP", False),  # 2 of 40 = 5%: not more than 5%
    (37, 3, "UDP", True),   # 3 of 40 = 7.5%
    (37, 3, "TCP", True),
    (39, 1, "TCP", False),
])
def test_the_rule_is_more_than_five_percent_of_one_kind(tmp_path, good, bad, kind, warned):
    pcap = write(tmp_path, frames(good, bad, kind))
    proc = sniffer("read", pcap, "--format", "json", "-o", tmp_path / "o.json")
    lines = proc.stderr.splitlines()
    assert lines[0] == f"sniffer: note: weird:bad_{kind}_checksum={bad}"
    if warned:
        pct = f"{bad / (good + bad):.0%}"
        assert lines[1].startswith(f"sniffer: warning: {bad} of {good + bad} packets ({pct}) "
                                   f"had invalid {kind} checksums") and " -C " in lines[1]
    else:
        assert len(lines) == 1


def test_live_warns_too(tmp_path):
    """`sniffer live` on a namespace's loopback receiving UDP with bad checksums (sent through
    a raw socket, so no offloading fixes them): its closing report carries the warning."""
    from netnskit import NetNS
    from test_live import sniffing

    with NetNS() as ns, sniffing(ns, "lo", tmp_path) as snf:
        code = (
            "import socket, struct\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)\n"
            "for i in range(20):\n"
            "    s.sendto(struct.pack('!HHHH', 50000 + i, 9, 9, 0x1234) + b'x', "
            "('127.0.0.1', 0))\n")
        ns.run(sys.executable, "-c", code)
        time.sleep(1.5)  # time to take them off the capture ring, even on a loaded machine
        snf.stop()
    warning = [ln for ln in snf.stderr.splitlines() if ln.startswith("sniffer: warning: ")]
    assert len(warning) == 1, snf.stderr
    assert "invalid UDP checksums" in warning[0] and " -C " in warning[0]


def test_no_warning_for_a_clean_capture(tmp_path):
    pcap = write(tmp_path, frames(10, 0, "UDP"))
    proc = sniffer("read", pcap, "--format", "zeek", "-o", tmp_path / "o.log")
    assert proc.returncode == 0 and proc.stderr == ""
