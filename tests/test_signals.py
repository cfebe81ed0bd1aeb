"""Signals, pipes and full disks: `sniffer read` stops cleanly and what it wrote stays valid.

Real child processes signalled mid-run, a real pipe closed by `head`, a real tmpfs filled up.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import netnskit
from pcapkit import CORPUS, ROOT
from zeeklog import parse_text

ECHO = CORPUS / "big" / "zeek_echo-connections.pcap.gz"


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """300,000 packets of the benchmark's mix."""
    path = tmp_path_factory.mktemp("big") / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), str(path),
                    "--packets", "300000"], check=True, capture_output=True, timeout=120)
    return path


#: copies of `big` in `long`, each two hours after the last (every connection of one has
#: timed out when the next begins)
COPIES = 8


@pytest.fixture(scope="module")
def long(big) -> Path:
    """`big` COPIES times over (2.4 M packets, about 1.8 GB): the compiled engine reads the
    mix at about 1.5 M packets/s, so this is the run that lasts long enough to interrupt."""
    raw = big.read_bytes()
    head, body = raw[:24], memoryview(raw)[24:]
    records = []
    off, first, last = 0, None, 0.0
    while off + 16 <= len(body):
        sec, usec, caplen = struct.unpack_from("<III", body, off)
        records.append((off, sec, usec, caplen))
        first = sec if first is None else first
        last = sec
        off += 16 + caplen
    shift = (last - first) + 7200
    path = big.with_name("long.pcap")
    with open(path, "wb") as f:
        f.write(head)
        for k in range(COPIES):
            for off, sec, usec, caplen in records:
                f.write(struct.pack("<II", sec + k * shift, usec))
                f.write(body[off + 8:off + 16 + caplen])
    return path


def sniffer(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sniffer", *map(str, args)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def full(long) -> dict[str, dict]:
    """The uninterrupted run's records, by uid."""
    out = long.with_suffix(".log")
    subprocess.run([sys.executable, "-m", "sniffer", "read", "--format", "zeek", "-o", str(out),
                    str(long)], cwd=ROOT, check=True, timeout=300)
    return {r["uid"]: r for r in parse_text(out.read_text()).rows}


def check_log(text: str) -> list[dict]:
    """A complete Zeek log: whole rows of the right width (parse_text checks), a #close."""
    assert text.endswith("\n"), repr(text[-200:])
    assert text.splitlines()[-1].startswith("#close\t"), text[-200:]
    rows = parse_text(text).rows
    assert len({r["uid"] for r in rows}) == len(rows)
    return rows


@pytest.mark.slow  # `long`: 2.4 M packets
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_mid_run_flushes_every_connection(long, full, tmp_path, sig):
    out = tmp_path / "conn.log"
    p = sniffer("read", "--format", "zeek", "-o", out, long)
    time.sleep(0.5)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(sig)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 128 + sig, (p.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted by {signal.Signals(sig).name}" in lines[0], err
    rows = check_log(out.read_text())
    # the connections still open were flushed as at the end of the input, with the identity
    # (uid, start time, addresses) the full run gives them
    assert len(rows) > 1000 and len(rows) < len(full)
    for r in rows:
        f = full[r["uid"]]
        assert (r["ts"], r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) == \
            (f["ts"], f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"])


@pytest.mark.slow
def test_sigterm_stops_every_worker(long, tmp_path):
    out = tmp_path / "conn.log"
    p = sniffer("read", "--workers", "2", "--format", "zeek", "-o", out, long)
    time.sleep(1.0)
    assert p.poll() is None
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 143 and "interrupted by SIGTERM" in err, (p.returncode, err)
    assert len(check_log(out.read_text())) > 1000
    time.sleep(0.2)
    orphans = subprocess.run(["pgrep", "-f", f"sniffer read --workers 2 .* {out}"],
                             capture_output=True, text=True).stdout.split()
    assert not orphans, f"workers left running: {orphans}"


@pytest.mark.slow
def test_sigterm_while_waiting_on_a_pipe(big, tmp_path):
    """`tcpdump -w - | sniffer read -`: killed while blocked on input, it still writes."""
    out = tmp_path / "conn.log"
    p = sniffer("read", "--format", "zeek", "-o", out, "-", stdin=subprocess.PIPE)
    with open(big, "rb") as f:
        p.stdin.buffer.write(f.read(4 << 20))  # the rest never comes
    p.stdin.flush()
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=30)[1]
    assert p.returncode == 143, (p.returncode, err)
    assert len(check_log(out.read_text())) > 100


def test_output_into_head_ends_quietly():
    for fmt in ("zeek", "json"):  # 500 records: more than a pipe holds
        p = sniffer("read", "--format", fmt, ECHO, stdout=subprocess.PIPE)
        head = subprocess.run(["head", "-n", "3"], stdin=p.stdout, capture_output=True,
                              timeout=60)
        p.stdout.close()
        err = p.communicate(timeout=60)[1]
        assert len(head.stdout.splitlines()) == 3
        assert p.returncode == 0 and err == "", (fmt, p.returncode, err)


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB tmpfs: writes past it fail with ENOSPC."""
    with netnskit.small_disk(tmp_path / "disk") as disk:
        yield disk


def test_full_disk_is_one_line_and_the_log_stays_valid(small_disk):
    out = small_disk / "conn.log"
    p = sniffer("read", "--format", "zeek", "-o", out, ECHO)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "No space left" in lines[0], err
    assert "Traceback" not in err
    rows = check_log(out.read_text())  # cut at the last whole row, #close fitted after it
    assert 100 < len(rows) < 500


def test_full_disk_through_stdout_and_for_the_weird_log(small_disk):
    target = small_disk / "conn.json"
    with open(target, "w") as f:
        p = sniffer("read", "--format", "json", ECHO, stdout=f)
        err = p.communicate(timeout=120)[1]
    assert p.returncode == 2 and err.count("\n") == 1 and "stdout" in err, err
    text = target.read_text()
    assert text.endswith("\n")
    assert len([json.loads(line) for line in text.splitlines()]) > 100
    os.unlink(target)

    # a weird.log that fills the disk: the run stops with one line, the log ends whole
    weird = small_disk / "weird.log"
    trace = CORPUS / "zeek" / "gtp-different-dl-ul" / "trace.pcap"
    room = 6000  # one 4 kB page of tmpfs: the header fits, the trace's ~50 anomalies do not
    with open(small_disk / "filler", "wb") as f:
        f.write(b"x" * (os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
                        - room))
    p = sniffer("read", "--format", "zeek", "-o", os.devnull, "--weird-log", weird, trace)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 2 and err.count("\n") == 1 and str(weird) in err, err
    text = weird.read_text()
    assert text.startswith("#separator") and text.endswith("\n"), text
    parse_text(text)  # whole rows only
