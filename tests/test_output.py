"""Output writers: Zeek TSV conn.log, JSON lines, and the rich console view."""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from netnskit import PYTHON, Drain, NetNS, can_run
from pcapkit import Session, write
from sharedkit import CORPUS
from test_live import client, pair, read_recording, server, show, sniffing
from sniffer.flows.conn import Conn
from sniffer.output import console as con
from sniffer.output import jsonl, zeek

FIXED_CLOCK = 1_710_410_400.0


def make_conn(**kw: object) -> Conn:
    base: dict[str, object] = dict(
        ts=1710410400.0, uid="CHhAvVGS1DHFjwGM9", orig_h="192.168.1.10", orig_p=49152,
        resp_h="93.184.216.34", resp_p=80, proto="tcp", ip_proto=6, duration=0.071233,
        orig_bytes=74, resp_bytes=198, conn_state="SF", local_orig=True, local_resp=False,
        missed_bytes=0, history="ShADadFf", orig_pkts=6, orig_ip_bytes=318, resp_pkts=4,
        resp_ip_bytes=362, community_id="1:h1eb0VhgdYs0KPGUsg1yGSMBjac=")
    base.update(kw)
    return Conn(**base)  # type: ignore[arg-type]


def write_log(conns: list[Conn], fields: tuple[str, ...] = zeek.DEFAULT_FIELDS) -> str:
    buf = io.StringIO()
    with zeek.ZeekWriter(buf, fields, clock=lambda: FIXED_CLOCK) as w:
        w.write_all(conns)
    return buf.getvalue()


# --- Zeek TSV -------------------------------------------------------------------------------

ZEEK_HEADER = """\
#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#open\tOPEN
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t\
orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\t\
orig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto\tcommunity_id
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\t\
bool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount\tstring
"""


def test_header_and_trailer_layout() -> None:
    text = write_log([])
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(FIXED_CLOCK))
    assert text == ZEEK_HEADER.replace("OPEN", stamp) + f"#close\t{stamp}\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", stamp)


def test_full_row() -> None:
    row = zeek.format_row(make_conn(service="http"))
    assert row.split("\t") == [
        "1710410400.000000", "CHhAvVGS1DHFjwGM9", "192.168.1.10", "49152", "93.184.216.34",
        "80", "tcp", "http", "0.071233", "74", "198", "SF", "T", "F", "0", "ShADadFf", "6",
        "318", "4", "362", "-", "6", "1:h1eb0VhgdYs0KPGUsg1yGSMBjac="]


def test_unset_fields_ipv6_and_sets() -> None:
    c = make_conn(ts=1.5, orig_h="2001:db8:1::10", resp_h="2001:db8:2::443", proto="udp",
                  ip_proto=17, duration=None, orig_bytes=None, resp_bytes=None,
                  local_orig=None, local_resp=None, history="", community_id=None,
                  conn_state="S0", tunnel_parents=["CHhAvVGS1DHFjwGM9", "C4J4Th3PJpwUYZZ6gc"])
    cols = zeek.format_row(c).split("\t")
    assert cols[0] == "1.500000"
    assert cols[2] == "2001:db8:1::10" and cols[4] == "2001:db8:2::443"
    assert cols[7:11] == ["-", "-", "-", "-"]          # service, duration, bytes unset
    assert cols[12:14] == ["-", "-"]                    # local_orig/local_resp unset
    assert cols[15] == "-"                              # empty history is unset
    assert cols[20] == "CHhAvVGS1DHFjwGM9,C4J4Th3PJpwUYZZ6gc"
    assert cols[22] == "-"                              # community_id unset


def test_double_formatting_keeps_six_decimals() -> None:
    cols = zeek.format_row(make_conn(ts=1128727435.6334081, duration=2.0)).split("\t")
    assert cols[0] == "1128727435.633408"
    assert cols[8] == "2.000000"


def test_escaping_like_zeek() -> None:
    assert zeek.format_value("", "string") == "(empty)"
    assert zeek.format_value("-", "string") == "\\x2d"
    assert zeek.format_value("(empty)", "string") == "\\x28empty)"
    assert zeek.format_value("a\tb\\c\x1b", "string") == "a\\x09b\\x5cc\\x1b"
    assert zeek.format_value([], "set[string]") == "(empty)"
    assert zeek.format_value(["a,b", "c"], "set[string]") == "a\\x2cb,c"
    assert zeek.format_value("ünïcode", "string") == "ünïcode"
    assert zeek.format_row(make_conn(uid="#x"), ("uid",)) == "\\x23x"
    # a row's empty string is `(empty)` too, as format_value says (the row's fast path wrote
    # an empty column; the compiled core's writer, held to this one, found it)
    assert zeek.format_row(make_conn(service=""), ("service",)) == "(empty)"


def test_custom_fields_and_unknown_field() -> None:
    c = make_conn(orig_l2_addr="02:00:00:00:00:10", resp_l2_addr=None)
    fields = zeek.ZEEK_FIELDS + ("orig_l2_addr", "resp_l2_addr")
    assert zeek.format_row(c, fields).endswith("\t6\t02:00:00:00:00:10\t-")
    with pytest.raises(ValueError):
        zeek.ZeekWriter(io.StringIO(), ("ts", "bogus"))


def test_close_is_idempotent_and_rows_stream() -> None:
    buf = io.StringIO()
    w = zeek.ZeekWriter(buf, clock=lambda: FIXED_CLOCK)
    w.write(make_conn())
    assert buf.getvalue().count("\n") == 9  # header plus the row, written immediately
    w.close()
    w.close()
    assert buf.getvalue().count("#close") == 1 and w.rows == 1


def _cut(text: str, *columns: str) -> list[list[str]]:
    """What zeek-cut does: find #separator and #fields, print the named columns."""
    sep = "\t"
    names: list[str] = []
    out = []
    for line in text.splitlines():
        if line.startswith("#separator "):
            sep = line.split(" ", 1)[1].encode().decode("unicode_escape")
        elif line.startswith("#fields"):
            names = line.split(sep)[1:]
        elif not line.startswith("#"):
            vals = line.split(sep)
            out.append([vals[names.index(c)] for c in columns])
    return out


def test_readable_by_zeek_cut(tmp_path: Path) -> None:
    conns = [make_conn(), make_conn(uid="C2", orig_h="2001:db8::1", history="")]
    text = write_log(conns)
    expected = [["192.168.1.10", "ShADadFf", "SF"], ["2001:db8::1", "-", "SF"]]
    assert _cut(text, "id.orig_h", "history", "conn_state") == expected
    tool = shutil.which("zeek-cut") or shutil.which("bro-cut")
    if tool is None:
        pytest.skip("zeek-cut/bro-cut not installed")
    res = subprocess.run([tool, "id.orig_h", "history", "conn_state"], input=text,
                         capture_output=True, text=True, check=True)
    assert [line.split("\t") for line in res.stdout.splitlines()] == expected


def _parse_conn(names: list[str], vals: list[str]) -> Conn:
    def get(name: str) -> str:
        return vals[names.index(name)] if name in names else "-"

    def opt(name: str, kind: type) -> object:
        v = get(name)
        if v == "-":
            return None
        return (v == "T") if kind is bool else kind(v)

    ts_text = get("ts")
    return Conn(
        ts=0.0 if "X" in ts_text else float(ts_text), uid=get("uid"), orig_h=get("id.orig_h"),
        orig_p=int(get("id.orig_p")), resp_h=get("id.resp_h"), resp_p=int(get("id.resp_p")),
        proto=get("proto"), ip_proto=int(get("ip_proto")), duration=opt("duration", float),
        orig_bytes=opt("orig_bytes", int), resp_bytes=opt("resp_bytes", int),
        conn_state=get("conn_state"), local_orig=opt("local_orig", bool),  # type: ignore[arg-type]
        local_resp=opt("local_resp", bool), missed_bytes=int(get("missed_bytes")),  # type: ignore[arg-type]
        history="" if get("history") == "-" else get("history"),
        orig_pkts=int(get("orig_pkts")), orig_ip_bytes=int(get("orig_ip_bytes")),
        resp_pkts=int(get("resp_pkts")), resp_ip_bytes=int(get("resp_ip_bytes")),
        tunnel_parents=[] if get("tunnel_parents") == "-" else get("tunnel_parents").split(","),
        service=opt("service", str),  # type: ignore[arg-type]
        orig_l2_addr=opt("orig_l2_addr", str), resp_l2_addr=opt("resp_l2_addr", str))  # type: ignore[arg-type]


def test_round_trip_of_zeek_corpus() -> None:
    """Every row of every Zeek baseline with a #fields header re-renders byte for byte."""
    corpus = CORPUS / "zeek"
    checked = 0
    for log in sorted(corpus.glob("*/conn.log")):
        lines = log.read_text().splitlines()
        fields = [ln for ln in lines if ln.startswith("#fields")]
        if not fields:
            continue
        names = fields[0].split("\t")[1:]
        types = [ln for ln in lines if ln.startswith("#types")][0].split("\t")[1:]
        assert types == [zeek.FIELD_TYPES[n] for n in names], log
        for line in lines:
            if line.startswith("#"):
                continue
            vals = line.split("\t")
            row = zeek.format_row(_parse_conn(names, vals), names)
            if "X" in vals[0]:
                row = vals[0] + row[row.index("\t"):]
            assert row == line, log
            checked += 1
    assert checked > 100


# --- JSON lines -----------------------------------------------------------------------------

def test_json_line_fields_and_types() -> None:
    c = make_conn(duration=None, orig_bytes=None, resp_bytes=None, local_resp=None,
                  tunnel_parents=["CHhAvVGS1DHFjwGM9"], history="", service=None)
    obj = json.loads(jsonl.format_line(c))
    assert list(obj) == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
                         "proto", "conn_state", "local_orig", "missed_bytes", "orig_pkts",
                         "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents",
                         "ip_proto", "community_id"]
    assert obj["ts"] == 1710410400.0 and isinstance(obj["ts"], float)
    assert obj["id.orig_p"] == 49152 and obj["local_orig"] is True
    assert obj["tunnel_parents"] == ["CHhAvVGS1DHFjwGM9"]


def test_json_writer_lines_and_escapes() -> None:
    buf = io.StringIO()
    with jsonl.JsonlWriter(buf) as w:
        w.write(make_conn())
        w.write(make_conn(uid="C\"\x1b[31m", orig_h="2001:db8::1", duration=math.nan))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and " " not in lines[0]
    second = json.loads(lines[1])
    assert second["uid"] == "C\"\x1b[31m" and "\x1b" not in lines[1]
    assert second["duration"] is None  # NaN is written as null, as Zeek does
    assert json.loads(lines[0])["duration"] == 0.071233


# --- console --------------------------------------------------------------------------------

HOSTILE = "[red]x\x1b[31m[/]\u202e"


def demo_conns() -> list[Conn]:
    return [
        make_conn(),
        make_conn(uid=HOSTILE, orig_h="[bold]evil", history="Sr\x1b[2J", conn_state="REJ",
                  duration=0.000412, orig_bytes=0, resp_bytes=0),
        make_conn(orig_h="2001:db8:1::10", resp_h="2001:db8:2::443", resp_p=443,
                  conn_state="RSTO", history="ShADdR"),
        make_conn(proto="icmp", ip_proto=1, orig_p=8, resp_p=0, conn_state="OTH", history="",
                  duration=2.023174, orig_bytes=168, resp_bytes=168),
        make_conn(proto="unknown_transport", ip_proto=132, orig_p=0, resp_p=0, duration=None,
                  orig_bytes=None, resp_bytes=None, conn_state="OTH", history=""),
    ]


@pytest.mark.parametrize("width", [80, 200])
def test_console_shows_hostile_strings_literally(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    stats = {"packets": 48, "bytes": 4603, "bad_IP_checksum": 2, "[blink]evil\x07": 1}
    con.render(demo_conns(), stats, console)
    out = buf.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "[bold]evil" in out
    assert "[blink]evil\\x07" in out
    assert "bad_IP_checksum" in out and "REJ" in out
    if width >= 200:  # the history and uid columns (left out first as the console narrows)
        assert "Sr\\x1b[2J" in out
        assert "[red]x\\x1b[31m[/]" in out
    assert max(len(line) for line in out.splitlines()) <= width


def test_console_with_color_keeps_markup_literal() -> None:
    console = Console(file=io.StringIO(), width=200, force_terminal=True, record=True)
    con.render(demo_conns(), {"packets": 1}, console)
    text = console.export_text(styles=False)
    assert "[bold]evil" in text and "[red]x\\x1b[31m[/]" in text


def test_console_empty_and_row_limit() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    con.render([], {}, console)
    assert "no connections" in buf.getvalue() and "nothing skipped" in buf.getvalue()
    buf.truncate(0)
    con.render([make_conn(uid=f"C{i}") for i in range(30)], {}, console, max_rows=10)
    assert "20 more connections not shown" in buf.getvalue()


def test_helpers() -> None:
    assert con.escape_controls("a\x00b\x7f\u200bc\n") == "a\\x00b\\x7f\\u200bc\\x0a"
    assert con.endpoint("2001:db8::1", 443, "tcp") == "[2001:db8::1]:443"
    assert con.endpoint("10.0.0.1", 0, "unknown_transport") == "10.0.0.1"
    assert con.human_bytes(1536) == "1.5 KiB" and con.human_bytes(None) == "-"
    assert con.human_duration(None) == "-" and con.human_duration(75) == "1m15s"
    assert con._utc(1e300, True) == f"{1e300:.6f}"  # corrupt timestamps do not crash


def test_progress_noop_when_not_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with con.progress(10_000, console=console) as advance:
        advance(5000)
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


def test_progress_on_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with con.progress(10 << 20, console=console, description="[red]demo.pcap") as advance:
        for _ in range(10):
            advance(1 << 20)
    with con.progress(None, console=console) as advance:  # unknown size (stdin)
        advance(100)


# --- demo captures --------------------------------------------------------------------------

def test_demo_pcaps_are_reproducible(tmp_path: Path) -> None:
    """pcaps/make_demo.py regenerates the committed demo files byte for byte."""
    pcaps = Path(__file__).resolve().parents[1] / "pcaps"
    subprocess.run([sys.executable, str(pcaps / "make_demo.py"), str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("demo.pcap", "demo.pcapng"):
        assert (tmp_path / name).read_bytes() == (pcaps / name).read_bytes(), name


# --- tables on a real terminal (issue 12: items 6, 11, 13, 15) ------------------------------
#
# What a user sees: `sniffer read`, `sniffer sockets` and the `live` dashboard on a
# pseudo-terminal of 80, 100 and 200 columns. An address:port or a pid/program is never split
# over two lines (columns are left out or the responder goes under the originator instead).

needs_netns = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))

WIDTHS = (80, 100, 200)
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Long IPv6 addresses (39 characters): an endpoint of 47 with brackets and port.
A4L, B4L = "10.77.0.1", "10.77.0.2"
A6L, B6L = "fd77:1234:5678:9abc:def0:1234:5678:9ab1", "fd77:1234:5678:9abc:def0:1234:5678:9ab2"
CLI, SRV = "snf-cli-longest", "snf-srv-longest"  # 15 bytes: the longest comm


def on_terminal(argv: list[str], cols: int, rows: int = 50, action=None,
                timeout: float = 60) -> tuple[int, list[str]]:
    """Run `argv` on a pseudo-terminal of `cols` x `rows` (its size set as a terminal sets it,
    no COLUMNS in the environment); `action()` runs 2 s in. Exit status and the lines shown,
    rich's colours and cursor moves removed."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            env = {k: v for k, v in os.environ.items()
                   if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
            os.execvpe(argv[0], argv, dict(env, TERM="xterm-256color"))
        finally:
            os._exit(127)
    drain = Drain(fd)
    try:
        if action is not None:
            time.sleep(2.0)
            action()
        deadline = time.monotonic() + timeout
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise AssertionError(f"still running after {timeout} s")
            time.sleep(0.05)
    finally:
        text = CSI.sub("", drain.text())
        os.close(fd)
    return os.waitstatus_to_exitcode(done[1]), [ln.rstrip("\r") for ln in text.split("\n")]


def sniffer(*args: str) -> list[str]:
    return [PYTHON, "-m", "sniffer", *args]


def shown_end(host: str, port: int | None) -> str:
    """An endpoint as a user reads it: IPv6 in brackets."""
    h = f"[{host}]" if ":" in host else host
    return h if port is None else f"{h}:{port}"


def assert_whole(lines: list[str], wanted: set[str], cols: int, what: str) -> None:
    """Every string of `wanted` on one line, and no line wider than the terminal."""
    screen = "\n".join(lines)
    split = sorted(w for w in wanted if not any(w in ln for ln in lines))
    assert not split, f"{what} at {cols} columns: split or missing: {split}\n{screen}"
    widest = max(lines, key=len)
    assert len(widest) <= cols, f"{what}: a line of {len(widest)} at {cols}: {widest!r}"


@needs_netns
def test_read_of_a_recording_on_a_terminal(tmp_path: Path) -> None:
    """`sniffer read` of a `live -w` recording: a verdict column (and a process column where
    it fits) and a verdict breakdown; every endpoint and pid/program whole, at 80, 100, 200."""
    with pair(A4L, B4L, A6L, B6L) as (a, b):
        server(b, SRV, [["tcp", 6, "::", 62976], ["udp", 6, "::", 62977],
                        ["tcp", 4, "0.0.0.0", 2024]])
        with sniffing(a, "va", tmp_path, record=True) as snf:
            cli = client(a, CLI, [["tcp", 6, B6L, 62976], ["udp", 6, B6L, 62977],
                                  ["tcp", 4, B4L, 2024]])
            time.sleep(0.6)
            snf.stop()
        assert snf.pcapng.exists(), snf.stderr
    recs = read_recording(snf.pcapng)  # the same records as --format json
    mine = [r for r in recs if any(p["pid"] == cli.pid for p in r.get("processes") or ())]
    assert len(mine) == 3 and {r["verdict"] for r in mine} == {"attributed"}, show(recs)
    ends = {shown_end(r[f"id.{s}_h"], None if r["proto"] == "unknown_transport"
                      else r[f"id.{s}_p"]) for r in recs for s in ("orig", "resp")}
    progs = {f"{p['pid']}/{p['name']}" for r in recs for p in r.get("processes") or ()}
    assert f"{cli.pid}/{CLI}" in progs
    verdicts = Counter(r["verdict"] for r in recs)
    for cols in WIDTHS:
        status, lines = on_terminal(sniffer("read", str(snf.pcapng)), cols)
        assert status == 0, "\n".join(lines)
        assert_whole(lines, ends, cols, "sniffer read")
        at = next(i for i, ln in enumerate(lines) if "originator" in ln.split())
        header = lines[at] + " " + lines[at + 1]  # the column heads: one line or two
        assert "verdict" in header.split(), (cols, header)
        if cols >= 100:
            assert "process" in header.split(), (cols, header)
            assert_whole(lines, progs, cols, "sniffer read, process column")
        screen = "\n".join(lines)
        assert "By verdict" in screen, screen
        for verdict, n in verdicts.items():
            assert re.search(rf"(^|\s){verdict}\s+{n}(\s|$)", screen, re.M), (verdict, n, screen)


def test_top_talkers_count_a_host_at_both_ends_once(tmp_path: Path) -> None:
    """Connections from 127.0.0.1 to itself count once for it, in conns and in bytes."""
    pkts = []
    for i, (server_h, size) in enumerate([("127.0.0.1", 3000), ("127.0.0.1", 500),
                                          ("127.0.0.1", 20000), ("127.0.0.2", 100)]):
        s = Session(client="127.0.0.1", server=server_h, cport=41000 + i, sport=8000,
                    t0=1000.0 + i).handshake()
        s.send(True, "PA", b"q" * 100)
        s.send(False, "PA", b"r" * size)
        s.send(True, "FA")
        s.send(False, "FA")
        s.send(True, "A")
        pkts += s.pkts
    path = write(tmp_path, pkts)
    recs = [json.loads(ln) for ln in subprocess.run(
        sniffer("read", str(path), "--format", "json"), capture_output=True, text=True,
        check=True).stdout.splitlines()]
    status, lines = on_terminal(sniffer("read", str(path)), 100)
    assert status == 0, "\n".join(lines)
    screen = "\n".join(lines)
    for host in ("127.0.0.1", "127.0.0.2"):
        own = [r for r in recs if host in (r["id.orig_h"], r["id.resp_h"])]
        size = con.human_bytes(sum(r["orig_ip_bytes"] + r["resp_ip_bytes"] for r in own))
        row = re.search(rf"(?<![\d.]){re.escape(host)}\s+(\d+)\s+(\S+ \S+)", screen)
        assert row, screen
        assert (int(row[1]), row[2]) == (len(own), size), (host, row[0], screen)
    assert len(recs) == 4


def test_count_tables_titles_and_empty_panels() -> None:
    """A narrow table keeps its title on one line; an empty one says so, not headers only."""
    for width in WIDTHS:
        buf = io.StringIO()
        con.render([], {"x": 1}, Console(file=buf, width=width, color_system=None))
        out = buf.getvalue()
        assert "Skipped or damaged" in out, out  # one line: the table is as wide as its title
        assert out.count("no connections") == 4, out  # by state, protocol, talkers; the table
        assert "state  conns" not in out and "host" not in out, out


SOCKETS_HELD = r'''
set_name({name!r})
lst = socket.socket(socket.AF_INET6); lst.bind(({b!r}, {port!r})); lst.listen()
cli = socket.socket(socket.AF_INET6); cli.bind(({a!r}, 0)); cli.connect(({b!r}, {port!r}))
acc, _ = lst.accept()
l4 = socket.socket(); l4.bind(("0.0.0.0", {port4!r})); l4.listen()
ready(socks=[desc(s) for s in (lst, cli, acc, l4)])
'''


@needs_netns
def test_sockets_table_on_terminals_of_80_100_200_columns() -> None:
    """`sniffer sockets -tanp`: each local and foreign address:port and each pid/program on
    one line, however narrow the terminal."""
    with NetNS("snfS") as ns:
        for addr in (A6L, B6L):
            ns.run("ip", "addr", "add", f"{addr}/128", "dev", "lo", "nodad")
        holders = [ns.spawn(SOCKETS_HELD.format(name=name, a=A6L, b=B6L, port=port,
                                                port4=port4))
                   for name, port, port4 in ((CLI, 62976, 2024), (SRV, 62977, 2025))]
        wanted = {f"{h.pid}/{name}" for h, name in zip(holders, (CLI, SRV))}
        for h in holders:
            for sock in h["socks"]:
                wanted.add(shown_end(*sock["local"]))
                if sock["peer"]:
                    wanted.add(shown_end(*sock["peer"]))
        for cols in WIDTHS:
            status, lines = on_terminal(sniffer("sockets", "-tanp", "--netns", ns.name), cols)
            assert status == 0, "\n".join(lines)
            assert_whole(lines, wanted, cols, "sniffer sockets")
            if cols >= 200:  # nothing left out
                assert lines[0].split()[:3] == ["Proto", "Recv-Q", "Send-Q"], lines[0]


RAW_UDP = r"""
import socket, struct, sys
dst = sys.argv[1]
for sport, dport in ((40001, 62990), (40002, 62991)):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    for _ in range(20):  # UDP built by hand, checksum 0 (none): no kernel UDP socket at all
        s.sendto(struct.pack("!HHHH", sport, dport, 8 + 200, 0) + b"x" * 200, (dst, 0))
print("ok")
"""

SINK = r"""
set_name("snf-sink")
for port in (62990, 62991):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    KEEP.append(s)  # read by nobody: no answer, no ICMP
ready()
"""

FIN_CLIENT = r"""
set_name("snf-fin")
c = socket.create_connection(({b!r}, 62978), timeout=5)
c.sendall(b"ping")
c.recv(16)
c.shutdown(socket.SHUT_WR)  # FIN; the server's echo loop ends and closes: FIN back
while c.recv(16):
    pass
ready(port=c.getsockname()[1])
"""


@needs_netns
@pytest.mark.parametrize("cols", WIDTHS)
def test_live_dashboard_on_a_terminal(cols: int) -> None:
    """The dashboard at 80, 100 and 200 columns: endpoints whole and IPv6 in brackets; the
    header's "unattributed" agrees with the rows shown; a connection closed by FIN is done,
    not active; an empty "needs attention" box says so."""
    with pair(A4L, B4L, A6L, B6L) as (a, b):
        server(b, SRV, [["tcp", 6, "::", 62976]])
        server(b, SRV, [["tcp", 6, "::", 62978]], keep=False)
        b.spawn(SINK)
        held: dict = {}

        def traffic() -> None:
            held["cli"] = client(a, CLI, [["tcp", 6, B6L, 62976]])
            held["fin"] = a.spawn(FIN_CLIENT.format(b=B6L))
            proc = a.run(PYTHON, "-c", RAW_UDP, B4L, check=False)
            assert "ok" in proc.stdout, proc.stderr

        status, lines = on_terminal(a.argv(*sniffer("live", "-i", "va", "--duration", "6",
                                                    "--interval", "0.2")),
                                    cols, rows=40, action=traffic)
    text = "\n".join(lines)
    assert status == 0, text[-3000:]
    frame = text[text.rindex("sniffer live "):text.rindex("sniffer: ")]  # the last frame
    flines = frame.splitlines()
    cli_port = held["cli"]["conns"][0][2]
    raw = {shown_end(A4L, p) for p in (40001, 40002)} | {shown_end(B4L, p) for p in (62990, 62991)}
    assert_whole(flines, {shown_end(A6L, cli_port), shown_end(B6L, 62976)} | raw, cols,
                 "dashboard")
    assert not re.search(rf"(?<!\[)(?:{re.escape(A6L)}|{re.escape(B6L)})", frame), frame
    if cols >= 100:
        assert_whole(flines, {f"{held['cli'].pid}/{CLI}"}, cols, "dashboard, process")
    # closed by FIN both ways: done, not active
    assert f":{held['fin']['port']}" not in frame, frame
    head = re.search(r"active (\d+)\s+done (\d+)\s+unattributed (\d+)", frame)
    assert head, frame
    rows = [ln for ln in flines[1:] if re.search(r"(^|\s)unattributed(\s|$)", ln)]
    assert int(head[3]) == len(rows) == 2, frame  # the two raw UDP flows, counted and shown
    assert int(head[2]) >= 1, frame
    assert "needs attention" in frame and "nothing unaccounted for" in frame, frame


def test_dashboard_frame_of_real_records() -> None:
    """Dashboard.render on the records of pcaps/demo.pcap, judged against a kernel view where
    three hosts are local and no socket was ever seen: the finished ones needing attention
    show IPv6 in brackets, and the header's count is what the boxes account for."""
    from types import SimpleNamespace

    from sniffer.config import Settings
    from sniffer.correlate import KernelView
    from sniffer.output.dashboard import Dashboard
    from sniffer.capture import open_capture
    from sniffer.engine import CoreEngine, Finished
    from sniffer.stats import Stats

    view = KernelView()
    view.event(0, {"kind": "addresses", "addresses": ["192.168.1.10", "2001:db8:1::10",
                                                      "192.168.1.66"]})
    view.event(0, {"kind": "snapshot", "sockets": []})
    stats = Stats()
    demo = Path(__file__).resolve().parents[1] / "pcaps" / "demo.pcap"
    engine = CoreEngine(Settings(), stats)
    engine.feed(open_capture([str(demo)], stats))
    engine.finish()
    finished: list[Conn] = [ev.conn for ev in engine.take() if isinstance(ev, Finished)]
    for c in finished:
        view.judge(c)
    verdicts = Counter(c.verdict for c in finished)
    live = SimpleNamespace(
        engine=engine, view=view, finished=len(finished), verdicts=verdicts, stats=stats,
        recent=[c for c in finished if c.verdict in ("unattributed", "refused", "unknown")],
        capture=SimpleNamespace(interface="demo", kernel_stats=lambda: {}), detectors=None)
    for width in WIDTHS:
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(Dashboard(live).render(live, width))
        out = console.file.getvalue()  # type: ignore[attr-defined]
        assert max(len(ln) for ln in out.splitlines()) <= width, out
        assert "[2001:db8:1::10]:49200 -> [2001:db8:2::443]:443" in out, out
        head = re.search(r"active (\d+)\s+done (\d+)\s+unattributed (\d+)", out)
        assert head and head.groups() == ("0", str(len(finished)),
                                          str(verdicts["unattributed"])), out
        assert "no active connections" in out
        assert f"needs attention (latest 6 of {len(live.recent)})" in out, out
