"""Output writers: Zeek TSV conn.log, JSON lines, and the rich console view."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

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


def _corpus_dir() -> Path | None:
    here = Path(__file__).resolve()
    for cand in (here.parents[1] / "shared", here.parents[2] / "shared", Path("/work/shared")):
        if (cand / "corpus" / "zeek").is_dir():
            return cand / "corpus" / "zeek"
    return None


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
    corpus = _corpus_dir()
    if corpus is None:
        pytest.skip("shared Zeek corpus not present")
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


@pytest.mark.parametrize("width", [80, 160])
def test_console_shows_hostile_strings_literally(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    stats = {"packets": 48, "bytes": 4603, "bad_IP_checksum": 2, "[blink]evil\x07": 1}
    con.render(demo_conns(), stats, console)
    out = buf.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "[bold]evil" in out
    assert "[blink]evil\\x07" in out
    assert "Sr\\x1b[2J" in out
    assert "bad_IP_checksum" in out and "REJ" in out
    if width >= 160:
        assert "[red]x\\x1b[31m[/]" in out  # the uid column
    assert max(len(line) for line in out.splitlines()) <= width


def test_console_with_color_keeps_markup_literal() -> None:
    console = Console(file=io.StringIO(), width=160, force_terminal=True, record=True)
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
