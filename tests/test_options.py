"""Options as a user gives them (issue 12): numbers out of range, '-' for standard input and
output, unknown options, unwritable outputs. Every refusal is one line naming the option and
what it takes, exit status 2, no traceback; all through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from netnskit import PYTHON, netns, small_disk, unprivileged  # noqa: F401  (netns: a fixture)
from pcapkit import CORPUS, ROOT

DEMO = ROOT / "pcaps" / "demo.pcap"
CPUS = len(os.sched_getaffinity(0))


def sniffer(*args, cwd=None, stdin=None, timeout=120) -> subprocess.CompletedProcess:
    """`python -m sniffer ARGS`, by default in a directory of its own (so a file named '-'
    would show)."""
    return subprocess.run([sys.executable, "-m", "sniffer", *map(str, args)], cwd=cwd or ROOT,
                          input=stdin, capture_output=True, timeout=timeout)


def refused(proc: subprocess.CompletedProcess, *wanted: str) -> str:
    """Assert a usage refusal: exit 2, nothing on stdout, one line on stderr holding `wanted`."""
    err = proc.stderr.decode()
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("sniffer: "), err
    for text in wanted:
        assert text in err, (text, err)
    assert proc.stdout == b"", proc.stdout[:200]
    return err


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# -------------------------------------------------------------------------- numeric ranges

# (command line, what the error must name): the cases of the issue, and the other numbers.
OUT_OF_RANGE = [
    (["sockets", "--watch", "--watch-buffer", "3000000000"],
     ["--watch-buffer", "4096 to 1073741824"]),
    (["sockets", "--watch", "--watch-buffer", "100"], ["--watch-buffer", "4096 to 1073741824"]),
    (["live", "-i", "lo", "--buffer", "99999999999"], ["--buffer", "2 to ", "MiB of memory"]),
    (["live", "-i", "lo", "--buffer", "0"], ["--buffer", "2 to "]),
    (["read", DEMO, "--workers", "0"], ["--workers", f"1 to {CPUS}"]),
    (["read", DEMO, "--workers", str(max(64, CPUS + 1))],
     ["--workers", f"1 to {CPUS}", "the CPUs this process may run on"]),
    (["read", DEMO, "--workers", "1.5"], ["--workers", "whole number"]),
    (["sockets", "--port", "99999"], ["--port", "0 to 65535"]),
    (["sockets", "--port", "-5"], ["--port", "0 to 65535"]),
    (["sockets", "--watch", "--interval", "0"], ["--interval", "0.1 to 86400 seconds"]),
    (["sockets", "--watch", "--interval", "-1"], ["--interval", "0.1 to 86400 seconds", "'-1'"]),
    (["sockets", "--watch", "--interval=-1"], ["--interval", "0.1 to 86400 seconds"]),
    (["sockets", "--watch", "--int", "-1"], ["--interval", "0.1 to 86400 seconds"]),
    (["live", "--interval", "-1"], ["--interval", "0.1 to 86400 seconds"]),
    (["live", "--interval", "nan"], ["--interval", "0.1 to 86400 seconds"]),
    (["live", "--hidden-interval", "0.01"], ["--hidden-interval", "0 or 0.1 to 86400"]),
    (["live", "--duration", "-1"], ["--duration", "more than 0 and up to 31536000 seconds"]),
    (["live", "--duration", "0"], ["--duration", "more than 0"]),
    (["live", "--duration", "inf"], ["--duration", "more than 0"]),
    (["live", "--count", "-5"], ["--count", "1 to 1000000000000000"]),
    (["live", "--count", "0"], ["--count", "1 to "]),
    (["live", "--max-flows", "-1"], ["--max-flows", "0 to 100000000"]),
    (["read", DEMO, "--max-flows", "99999999999999999999999"], ["--max-flows", "0 to 100000000"]),
    (["read", DEMO, "--max-rows", "-3"], ["--max-rows", "0 to 1000000000"]),
    (["read", DEMO, "--max-rows", "x" * 5000], ["--max-rows", "..."]),
    (["read", DEMO, "--detect", "--detect-set", "syn_flood_window=inf"],
     ["--detect-set syn_flood_window", "more than 0 and up to 1000000000"]),
    (["read", DEMO, "--detect", "--detect-set", "port_scan_ports=99999999999"],
     ["--detect-set port_scan_ports", "up to 1000000000"]),
]


@pytest.mark.parametrize("argv,wanted", OUT_OF_RANGE,
                         ids=[" ".join(map(str, a)).replace(str(DEMO), "demo")[:60]
                              for a, _ in OUT_OF_RANGE])
def test_number_out_of_range_is_one_line(argv, wanted, tmp_path):
    """Refused while parsing (before a capture, a socket or a file is opened)."""
    refused(sniffer(*argv, cwd=tmp_path), *wanted)
    assert list(tmp_path.iterdir()) == []


def test_every_numeric_option_has_its_range_in_help():
    """No bare int/float option is left, and --help states each range."""
    from sniffer.cli import Range, build_parser
    commands = build_parser().commands
    seen = 0
    for name, parser in commands.items():
        help_text = " ".join(sniffer(name, "--help").stdout.decode().split())
        for action in parser._actions:
            assert action.type not in (int, float), (name, action.option_strings)
            if isinstance(action.type, Range):
                seen += 1
                assert str(action.type) in help_text, (name, action.option_strings, help_text)
    assert seen >= 11


def test_range_ends_are_accepted(tmp_path):
    """The limits themselves run: the largest --workers, --max-flows, --max-rows, --port."""
    want = rows(sniffer("read", DEMO, "--format", "zeek").stdout.decode())
    out = sniffer("read", DEMO, "--format", "zeek", "--workers", CPUS, "--max-flows", 100_000_000)
    assert out.returncode == 0 and rows(out.stdout.decode()) == want, out.stderr
    table = sniffer("read", DEMO, "--format", "table", "--max-rows", 1_000_000_000)
    assert table.returncode == 0 and b"Connections (13)" in table.stdout, table.stderr
    ports = sniffer("sockets", "-tan", "--port", "65535", "--port", "0")
    assert ports.returncode == 0 and b"Traceback" not in ports.stderr, ports.stderr


def test_largest_watch_buffer_reaches_the_kernel(netns):
    """1 GiB, the most Linux takes, fits setsockopt's C int (3000000000 raised TypeError)."""
    w = subprocess.Popen([PYTHON, "-m", "sniffer", "sockets", "--watch", "--json", "-t",
                          "--watch-buffer", str(1 << 30), "--interval", "0.1",
                          "--netns", netns.name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = json.loads(w.stdout.readline())
    finally:
        w.send_signal(signal.SIGINT)
        _, err = w.communicate(timeout=30)
    assert first["event"] == "watching" and first["interval"] == 0.1
    assert w.returncode in (0, 130) and "Traceback" not in err, err


def test_smallest_ring_captures(netns, tmp_path):
    """--buffer 2 (two 1 MiB blocks) and --count 1: a real capture that stops on its own."""
    out = tmp_path / "conn.log"
    live = subprocess.Popen(netns.argv(PYTHON, "-m", "sniffer", "live", "-i", "lo", "--buffer",
                                       "2", "--count", "1", "--duration", "20", "-o", out),
                            stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _send_udp(netns, 5301, until=live)
    finally:
        _, err = live.communicate(timeout=30)
    assert live.returncode == 0 and b"1 packets captured" in err, err


# -------------------------------------------------------------------------- '-' as stdin/stdout

def test_stdin_given_twice():
    err = refused(sniffer("read", "-", "-", stdin=DEMO.read_bytes()), "'-'", "standard input",
                  "twice")
    assert "empty file" not in err and "sniffer read --help" in err


def test_records_to_stdout_with_dash(tmp_path):
    """`-o -` is standard output (as without -o), not a file named '-'."""
    want = rows(sniffer("read", DEMO, "--format", "zeek").stdout.decode())
    proc = sniffer("read", DEMO, "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0 and rows(proc.stdout.decode()) == want and len(want) == 13
    assert proc.stdout.decode().rstrip().splitlines()[-1].startswith("#close")
    js = sniffer("read", DEMO, "-o", "-", "--format", "json", cwd=tmp_path).stdout.decode()
    assert len([json.loads(line) for line in js.splitlines()]) == 13
    assert list(tmp_path.iterdir()) == []


def test_alerts_and_weird_log_to_stdout(tmp_path):
    conn = tmp_path / "conn.log"
    proc = sniffer("read", DEMO, "-o", conn, "--alerts", "-", "--detect-set",
                   "port_scan_ports=2", cwd=tmp_path)
    alerts = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert proc.returncode == 0 and alerts and alerts[0]["kind"] == "port-scan", proc.stderr
    assert len(rows(conn.read_text())) == 13
    notice = sniffer("read", DEMO, "-o", conn, "--alerts", "-", "--alerts-format", "zeek",
                     "--detect-set", "port_scan_ports=2", cwd=tmp_path).stdout.decode()
    assert "#path\tnotice" in notice and "Port_Scan" in notice.split("#fields")[1]
    assert notice.rstrip().splitlines()[-1].startswith("#close")
    weird = sniffer("read", DEMO, "-o", conn, "--weird-log", "-", cwd=tmp_path).stdout.decode()
    assert "#path\tweird" in weird and weird.rstrip().splitlines()[-1].startswith("#close")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conn.log"]


def test_weird_log_dash_on_a_full_disk(tmp_path):
    """`--weird-log - > file` on a full disk: as for a named file, one line (naming stdout) and
    a log that ends at a whole row."""
    trace = CORPUS / "zeek" / "gtp-different-dl-ul" / "trace.pcap"  # ~50 anomalies
    with small_disk(tmp_path / "disk") as disk:
        fs = os.statvfs(disk)
        (disk / "filler").write_bytes(b"x" * (fs.f_bavail * fs.f_frsize - 6000))
        weird = disk / "weird.log"
        with open(weird, "w") as f:
            proc = subprocess.run([sys.executable, "-m", "sniffer", "read", "--format", "zeek",
                                   "-o", os.devnull, "--weird-log", "-", trace], stdout=f,
                                  stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
        text = weird.read_text()
    err = proc.stderr
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "stdout: write failed: No space left on device" in err, err
    assert text.startswith("#separator") and text.endswith("\n"), text[-200:]


@pytest.mark.parametrize("args,wanted", [
    (["--alerts", "-"], ["--alerts -", "-o FILE"]),
    (["-o", "-", "--alerts", "-"], ["-o and --alerts", "standard output"]),
    (["-o", "conn.log", "--alerts", "-", "--weird-log", "-"], ["--alerts and --weird-log"]),
    (["--weird-log", "-"], ["--weird-log -", "-o FILE"]),
])
def test_two_streams_on_stdout_are_refused(args, wanted, tmp_path):
    refused(sniffer("read", DEMO, *args, cwd=tmp_path), *wanted, "sniffer read --help")
    assert list(tmp_path.iterdir()) == []


def test_live_recording_and_json_to_stdout(netns, tmp_path):
    """`live -w - -o /dev/null | sniffer read -` and `live --json -`: the records on stdout;
    with the records on stdout already, `-w -` is refused."""
    refused(sniffer("live", "-i", "lo", "-w", "-", cwd=tmp_path), "-w -", "-o FILE",
            "sniffer live --help")
    rec = subprocess.Popen(netns.argv(PYTHON, "-m", "sniffer", "live", "-i", "lo", "--duration",
                                      "20", "--count", "4", "-o", "/dev/null", "-w", "-"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        _send_udp(netns, 5302, until=rec)
    finally:
        pcapng, err = rec.communicate(timeout=30)
    assert rec.returncode == 0 and b"Traceback" not in err, err
    back = sniffer("read", "-", "--format", "json", stdin=pcapng)
    records = [json.loads(line) for line in back.stdout.decode().splitlines()]
    assert back.returncode == 0 and any(r["id.resp_p"] == 5302 for r in records), back.stderr

    conn = tmp_path / "conn.log"
    js = subprocess.Popen(netns.argv(PYTHON, "-m", "sniffer", "live", "-i", "lo", "--duration",
                                     "20", "--count", "4", "-o", conn, "--json", "-"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        _send_udp(netns, 5303, until=js)
    finally:
        out, err = js.communicate(timeout=30)
    assert js.returncode == 0, err
    assert any(json.loads(line)["id.resp_p"] == 5303 for line in out.decode().splitlines())
    assert any("5303" in row.split("\t") for row in rows(conn.read_text()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conn.log"]


def _send_udp(ns, port: int, until: subprocess.Popen) -> None:
    """UDP datagrams to `port` on the namespace's loopback, every 0.1 s until `until` ends."""
    code = ("import socket, sys, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(100):\n"
            "    s.sendto(b'x', ('127.0.0.1', int(sys.argv[1]))); time.sleep(0.1)\n")
    sender = subprocess.Popen(ns.argv(PYTHON, "-c", code, str(port)))
    try:
        until.wait(timeout=25)
    except subprocess.TimeoutExpired:
        until.send_signal(signal.SIGINT)
    finally:
        sender.kill()
        sender.wait()


# -------------------------------------------------------------------------- messages

@pytest.mark.parametrize("argv,help_hint", [
    (["sockets", "-x"], "sniffer sockets --help"),
    (["read", DEMO, "--bogus"], "sniffer read --help"),
    (["live", "--bogus"], "sniffer live --help"),
    (["--bogus"], "sniffer --help"),
])
def test_unknown_option_points_to_its_command_help(argv, help_hint):
    refused(sniffer(*argv), "unrecognized arguments", help_hint)


def test_unwritable_output_says_why(tmp_path):
    refused(sniffer("read", DEMO, "-o", tmp_path / "no" / "x.log"),
            str(tmp_path / "no" / "x.log"), "cannot write: No such file or directory")
    refused(sniffer("read", DEMO, "-o", tmp_path), str(tmp_path), "cannot write: Is a directory")


def test_unwritable_output_as_another_user_says_why(tmp_path):
    """`read -o /root/x.log` as a user: the path and the system's reason, in one line."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    target = private / "x.log"
    proc = subprocess.run(unprivileged([PYTHON, "-m", "sniffer", "read", DEMO, "-o", target]),
                          capture_output=True, timeout=60, cwd="/")
    refused(proc, f"{target}: cannot write: Permission denied")
    assert not target.exists()
