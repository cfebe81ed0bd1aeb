"""`sniffer read` end to end, as a user runs it: files, stdin, gzip, rotation, errors, exit codes."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys

from pcapkit import CORPUS, ROOT, run
from scapy.utils import rdpcap, wrpcap

DEMO = ROOT / "pcaps" / "demo.pcap"
DEMO_NG = ROOT / "pcaps" / "demo.pcapng"


def rows(text: str) -> list[list[str]]:
    """conn.log rows without the uid column (uids are the same, but say so only once)."""
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def zeek(*args, stdin=None) -> str:
    return run(["read", *args, "--format", "zeek"], stdin=stdin).stdout.decode()


def test_demo_pcap_and_pcapng_agree():
    a, b = rows(zeek(DEMO)), rows(zeek(DEMO_NG))
    assert len(a) == 13 and a == b


def test_zeek_header_is_conn_log():
    out = zeek(DEMO)
    assert out.startswith("#separator \\x09\n#set_separator\t,\n")
    fields = next(line for line in out.splitlines() if line.startswith("#fields")).split("\t")[1:]
    assert fields[:3] == ["ts", "uid", "id.orig_h"] and fields[21:] == ["ip_proto", "community_id"]
    assert out.rstrip().splitlines()[-1].startswith("#close\t")


def test_stdin_gzip_and_output_file(tmp_path):
    expected = rows(zeek(DEMO))
    assert rows(zeek("-", stdin=DEMO.read_bytes())) == expected
    gz = tmp_path / "demo.pcap.gz"
    gz.write_bytes(gzip.compress(DEMO.read_bytes()))
    assert rows(zeek(gz)) == expected
    assert rows(zeek("-", stdin=gz.read_bytes())) == expected
    out = tmp_path / "conn.log"
    run(["read", DEMO, "-o", out])  # -o without --format: a file gets conn.log
    assert rows(out.read_text()) == expected


def test_json_lines():
    lines = run(["read", DEMO, "--format", "json"]).stdout.decode().splitlines()
    objs = [json.loads(line) for line in lines]
    assert len(objs) == 13
    assert {"ts", "uid", "id.orig_h", "id.resp_p", "proto", "conn_state", "community_id"} <= set(objs[0])


def test_rotated_files_are_one_stream(tmp_path):
    """A connection split across two rotated files is one connection, as in one file."""
    pkts = rdpcap(str(DEMO))
    half = len(pkts) // 2
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    wrpcap(str(first), pkts[:half])
    wrpcap(str(second), pkts[half:])
    whole = rows(zeek(DEMO))
    assert rows(zeek(second, first)) == whole  # order on the command line does not matter


def test_not_a_capture_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, not a pcap\n")
    proc = run(["read", bad], check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and str(bad) in err and "offset 0" in err
    assert "Traceback" not in err and proc.stdout == b""


def test_missing_file_and_bad_options():
    proc = run(["read", "no/such.pcap"], check=False)
    assert proc.returncode == 2 and "no/such.pcap" in proc.stderr.decode()
    for opt in (["--local-net", "10.0.0.300/8"], ["--likely-server-ports", "80/xyz"],
                ["--ignore-checksums-net", "nope"]):
        proc = run(["read", DEMO, *opt], check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and err.count("\n") == 1 and opt[0] in err, err
        assert "Traceback" not in err


def test_corrupt_mid_file_keeps_what_was_rebuilt(tmp_path):
    data = DEMO.read_bytes()
    # A record header claiming a 300 kB packet, with the file going on after it: corrupt.
    offset = len(data)
    bad = data + struct.pack("<IIII", 1, 0, 300_000, 300_000) + b"\0" * 400_000
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bad)
    out = tmp_path / "conn.log"
    proc = run(["read", path, "-o", out], check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and str(path) in err and f"offset {offset}" in err
    assert rows(out.read_text()) == rows(zeek(DEMO))
    assert out.read_text().rstrip().splitlines()[-1].startswith("#close")


def test_truncated_last_record_is_counted_not_fatal(tmp_path):
    data = DEMO.read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-10])
    proc = run(["read", path, "--format", "zeek"])
    assert "truncated_final_record=1" in proc.stderr.decode()
    assert len(rows(proc.stdout.decode())) >= 12


def test_unsupported_link_type_is_reported(tmp_path):
    path = tmp_path / "bt.pcap"  # LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR (201), not decoded
    rec = b"\x00\x00\x00\x00\x04\x0e\x04\x01\x03\x0c\x00"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 201)
                     + b"".join(struct.pack("<IIII", 1000 + i, 0, len(rec), len(rec)) + rec
                                for i in range(17)))
    proc = run(["read", path, "--format", "zeek"])
    assert "unsupported_linktype:201=17" in proc.stderr.decode()


def test_table_summary(tmp_path):
    out = run(["read", DEMO, "--format", "table"], check=True).stdout.decode()
    for text in ("By state", "By protocol", "Top", "REJ", "Connections (13)"):
        assert text in out


def test_head_closing_the_pipe_ends_quietly():
    big = CORPUS / "big" / "zeek_echo-connections.pcap.gz"
    cmd = f"{sys.executable} -m sniffer read {big} --format zeek | head -3"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True,
                          timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "0"})
    assert proc.stderr == b"", proc.stderr
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3


def test_help_does_not_import_scapy():
    code = ("import sys, sniffer.cli\n"
            "try:\n    sniffer.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('scapy' in sys.modules, 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT).stdout
    assert out.decode().strip().splitlines()[-1] == "False False"
