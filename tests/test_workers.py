"""`sniffer read --workers N` writes the records one process writes, in the same order (issue 7).

Every pair of the Zeek corpus (tunnels, fragments, VLAN, MPLS, 802.11 and the rest) is read
with one worker and with three (as many as there are CPUs to run them, up to three: more are
refused); the logs must be the same line for line (the #open/#close
wall-clock stamps aside). A synthetic capture of the benchmark's mix does the same at scale.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import zeekcorpus
from pcapkit import ROOT, run

PAIRS = [p for p in zeekcorpus.load_pairs("all") if not p.exclude]
SEVERAL = min(3, len(os.sched_getaffinity(0)))  # `--workers` takes 1 to the usable CPUs


def conn_log(trace, *args) -> tuple[list[str], str]:
    proc = run(["read", trace, *args, "--format", "zeek", "-o", "/dev/stdout"])
    lines = proc.stdout.decode().splitlines()
    return [ln for ln in lines if not ln.startswith(("#open", "#close"))], proc.stderr.decode()


@pytest.mark.slow  # the whole Zeek corpus a second time
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_three_workers_write_what_one_writes(pair):
    one, _ = conn_log(pair.trace, *pair.args)
    three, _ = conn_log(pair.trace, *pair.args, "--workers", str(SEVERAL))
    assert three == one


def test_benchmark_mix_sharded(tmp_path):
    pcap = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(pcap),
                    "--packets", "30000", "--seed", "3"], check=True, capture_output=True)
    one, err1 = conn_log(pcap)
    two, err2 = conn_log(pcap, "--workers", "2")
    assert len(one) > 1000 and two == one
    assert err1 == err2


def test_what_workers_refuse(tmp_path):
    trace = PAIRS[0].trace
    for args, why in ((["-"], "standard input"), ([trace, "--format", "table"], "--format"),
                      ([trace, "--format", "json", "--detect"], "detectors")):
        proc = run(["read", *args, "--workers", "2"], check=False, stdin=b"")
        err = proc.stderr.decode()
        assert proc.returncode == 2 and why in err and err.count("\n") == 1, err
