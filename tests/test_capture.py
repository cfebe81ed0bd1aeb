"""Capture stage: the shared link-type corpus, Zeek's pcapng traces, and crafted edge cases."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sniffer.capture import open_capture
from sniffer.errors import BadInputError
from sniffer.stats import Stats

from pcapkit import CORPUS, ROOT

LINKTYPES = CORPUS / "linktypes"


def read_all(paths, stats=None):
    stats = Stats() if stats is None else stats
    return list(open_capture([str(p) for p in paths], stats)), stats


def read_until_error(paths, stats=None):
    """Packets yielded before the BadInputError, and the error."""
    got = []
    with pytest.raises(BadInputError) as ei:
        for pkt in open_capture([str(p) for p in paths], Stats() if stats is None else stats):
            got.append(pkt)
    return got, ei.value


# ---------------------------------------------------------------------------------------------
# builders for crafted files

def pcap_header(e="<", ns=False, major=2, minor=4, snaplen=65535, linktype=1) -> bytes:
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    return struct.pack(e + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)


def pcap_rec(sec, frac, data, wirelen=None, e="<", caplen=None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    wirelen = len(data) if wirelen is None else wirelen
    return struct.pack(e + "IIII", sec, frac, caplen, wirelen) + data


def pcap_file(recs, **kw) -> bytes:
    e = kw.get("e", "<")
    out = [pcap_header(**kw)]
    for r in recs:
        out.append(pcap_rec(*r, e=e))
    return b"".join(out)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def block(e, btype, body) -> bytes:
    body = _pad(body)
    blen = 12 + len(body)
    return struct.pack(e + "II", btype, blen) + body + struct.pack(e + "I", blen)


def shb(e) -> bytes:
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def opt(e, code, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + _pad(value)


def idb(e, linktype=1, snaplen=0, tsresol=None, tsoffset=None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    return block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def epb(e, iface, t, data, wirelen=None) -> bytes:
    wirelen = len(data) if wirelen is None else wirelen
    return block(e, 6, struct.pack(e + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data),
                                   wirelen) + data)


def spb(e, wirelen, data) -> bytes:
    return block(e, 3, struct.pack(e + "I", wirelen) + data)


def pb(e, iface, t, data, wirelen=None) -> bytes:
    wirelen = len(data) if wirelen is None else wirelen
    return block(e, 2, struct.pack(e + "HHIIII", iface, 0, t >> 32, t & 0xFFFFFFFF, len(data),
                                   wirelen) + data)


def write(tmp_path, name, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------------------------------
# the link-type corpus: every file in MANIFEST.tsv

MANIFEST = {r["name"]: r for r in csv.DictReader(
    (LINKTYPES / "MANIFEST.tsv").open(encoding="utf-8"), delimiter="\t")}

# Files whose last record header claims a length libpcap refuses (tcpdump: "pcap_loop: invalid
# packet capture length 4325376, bigger than snaplen of 262144"): the packets before it, then
# the error naming its offset; a damaged header, not a capture cut short, though it runs past
# EOF. (packets before it, offset, reason)
DAMAGED = {"truncated-final-record_tls.pcap": (
    6, 5035, "invalid packet capture length 4325376, bigger than maximum of 262144")}
# The manifest counts EPBs only; the 2 SPBs of this file are cut by their interface's snaplen 128.
TRUNCATED_OVERRIDE = {"pcapng_be_multi-section.pcapng": 6}
# Files libpcap refuses, with the start of our reason and the offset we name.
REJECTED = {
    "bad_linktype-reserved-bits.pcap": (
        20, "savefile linktype reserved field not zero (0x00300000)"),
    "bad_pcap-version-1.4.pcap": (4, "unsupported pcap savefile version 1.4"),
    "bad_pcapng-shb-option-too-long.pcapng": (
        0, "block total length in header 52 and trailer 808464432 don't match"),
}
LINKTYPE_NAMES = {"EN10MB": 1, "NULL": 0, "LINUX_SLL": 113, "RAW(12, OpenBSD)": 12}


def manifest_linktypes(fmt: str) -> set[int]:
    m = re.search(r"linktype (\d+)", fmt)
    if m:
        return {int(m.group(1))}
    idbs = re.search(r"IDBs: (.*?), if_tsresol", fmt).group(1)
    return {int(x) for x in re.findall(r"\((\d+)\)", idbs)}


def test_manifest_covers_every_file():
    files = {p.name for p in LINKTYPES.iterdir() if p.is_file() and p.name != "MANIFEST.tsv"}
    assert files == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_linktype_corpus(name):
    row = MANIFEST[name]
    path = LINKTYPES / name
    fmt = row["link type / format (parsed from file header)"]
    if name in REJECTED:
        offset, reason = REJECTED[name]
        got, err = read_until_error([path])
        assert got == []
        assert err.path == str(path) and err.offset == offset and err.reason == reason
        return
    if name in DAMAGED:
        count, offset, reason = DAMAGED[name]
        got, err = read_until_error([path])
        assert len(got) == count and (err.path, err.offset, err.reason) == (str(path), offset,
                                                                            reason)
        return
    pkts, stats = read_all([path])
    assert len(pkts) == int(row["packets"])
    lts = {p[1] for p in pkts}
    if fmt.startswith("pcapng"):
        assert lts <= manifest_linktypes(fmt)  # some interfaces carry no packet
    elif pkts:
        assert lts == manifest_linktypes(fmt)
    for ts, lt, data, wirelen in pkts:
        assert isinstance(ts, float) and isinstance(data, bytes) and len(data) > 0
        assert type(lt) is int and type(wirelen) is int
    m = re.search(r"(\d+) records caplen<origlen", row["what is special"])
    assert stats["snaplen_truncated"] == TRUNCATED_OVERRIDE.get(name, int(m.group(1)) if m else 0)
    assert sum(len(p[2]) < p[3] for p in pkts) == stats["snaplen_truncated"]
    truncated = "TRUNCATED-FINAL-RECORD" in row["what is special"]
    assert stats["truncated_final_record"] == (1 if truncated else 0)
    assert stats["invalid_timestamp"] == (2 if name == "ts-invalid-nano.pcap" else 0)


def tod(ts: float) -> str:
    """Time of day as tcpdump prints it (UTC, microseconds)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S.%f")


def tcpdump_times(expected: str) -> list[str]:
    lines = (LINKTYPES / "expected" / expected).read_text().splitlines()
    return [re.search(r"\d\d:\d\d:\d\d\.\d+", ln).group(0) for ln in lines if ln.strip()]


def test_nanosecond_pcap_matches_tcpdump():
    pkts, _ = read_all([LINKTYPES / "sll_tcp-handshake-nano.pcap"])
    # libpcap opened at microsecond precision (as Zeek opens files) truncates to microseconds
    assert [tod(p[0]) for p in pkts] == tcpdump_times(
        "sll_tcp-handshake-nano__tcp-handshake-micro.out")
    nano = tcpdump_times("sll_tcp-handshake-nano__tcp-handshake-nano.out")
    assert [tod(p[0]) for p in pkts] == [t[:15] for t in nano]
    assert pkts[0][0] == 1418145369 + 924505 / 1e6  # bit-identical to Zeek's sec + usec/1e6


def test_invalid_nanoseconds_carry_into_seconds():
    pkts, stats = read_all([LINKTYPES / "ts-invalid-nano.pcap"])
    # tcpdump: 17:16:09.999999999, 17:16:10.1000000000 (invalid), 17:16:10.2147483648 (invalid)
    assert [tod(p[0]) for p in pkts] == ["17:16:09.999999", "17:16:11.000000", "17:16:12.147483"]
    assert stats["invalid_timestamp"] == 2
    assert pkts[0][0] < pkts[1][0] < pkts[2][0]


def test_big_endian_pcaps():
    pkts, _ = read_all([LINKTYPES / "gre-pptp_bigendian.pcap"])
    first = tcpdump_times("gre-pptp_bigendian__pptp.out")[:3]
    assert [tod(p[0]) for p in pkts[:3]] == first
    pkts, _ = read_all([LINKTYPES / "nanosec_bigendian.pcap"])
    assert pkts[0][0] == 1766361926 + 167647 / 1e6  # 1766361926 s + 167647291 ns


def test_linktype_corpus_details():
    pkts, _ = read_all([LINKTYPES / "pcapng_eth-sll_ns_snaplen.pcapng"])
    assert {p[1] for p in pkts} == {1, 113}
    pkts, _ = read_all([LINKTYPES / "pcapng_many-interfaces.pcapng"])
    assert sum(p[1] == 1 for p in pkts) == 62 and sum(p[1] == 0 for p in pkts) == 2
    assert tod(min(p[0] for p in pkts)) == "19:35:25.701568"  # capinfos first / last
    assert tod(max(p[0] for p in pkts)) == "19:35:28.292345"
    pkts, stats = read_all([LINKTYPES / "pcapng_be_multi-section.pcapng"])
    assert [p[1] for p in pkts] == [1, 1, 0, 1, 1, 1, 1, 0]  # interface ids restart per section
    assert stats["pcapng_spb_no_timestamp"] == 2 and stats["pcapng_unknown_block"] == 0
    pkts, _ = read_until_error([LINKTYPES / "truncated-final-record_tls.pcap"])
    assert [len(p[2]) for p in pkts] == [74, 74, 66, 361, 66, 4274]


ZEEK_PCAPNG = sorted(CORPUS.glob("zeek/*/trace.pcapng"))


@pytest.mark.parametrize("path", ZEEK_PCAPNG, ids=lambda p: p.parent.name)
def test_zeek_pcapng_traces_read(path):
    pkts, stats = read_all([path])
    assert pkts and all(p[1] == 1 for p in pkts)
    assert stats["truncated_final_record"] == 0


def test_zeek_pcapng_traces_exist():
    assert len(ZEEK_PCAPNG) >= 5


# ---------------------------------------------------------------------------------------------
# classic pcap, crafted

def test_both_byte_orders_and_precisions(tmp_path):
    for e in "<>":
        p = write(tmp_path, "us.pcap", pcap_file([(1700000000, 123456, b"a" * 20)], e=e))
        assert read_all([p])[0] == [(1700000000 + 123456 / 1e6, 1, b"a" * 20, 20)]
        p = write(tmp_path, "ns.pcap",
                  pcap_file([(1700000000, 123456789, b"b" * 20, 60)], e=e, ns=True, linktype=101))
        pkts, stats = read_all([p])
        assert pkts == [(1700000000 + 123456 / 1e6, 101, b"b" * 20, 60)]
        assert stats["snaplen_truncated"] == 1


def test_linktype_fcs_bits_are_masked(tmp_path):
    p = write(tmp_path, "fcs.pcap", pcap_file([(1, 0, b"x" * 8)], linktype=0x14000001))
    assert read_all([p])[0][0][1] == 1


def test_header_only_file_has_no_packets(tmp_path):
    pkts, stats = read_all([write(tmp_path, "h.pcap", pcap_header())])
    assert pkts == [] and not stats


@pytest.mark.parametrize("data,offset,reason", [
    (b"", None, "empty file (0 bytes), not a capture"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", 0, "truncated pcap file header (6 of 24 bytes)"),
    (b"GET / HTTP/1.1\r\n", 0, "not a pcap or pcapng capture (magic 0x47455420)"),
    (pcap_header(major=3), 4, "unsupported pcap savefile version 3.4"),
    (pcap_header(minor=5), 4, "unsupported pcap savefile version 2.5"),
])
def test_damaged_headers(tmp_path, data, offset, reason):
    p = write(tmp_path, "bad.pcap", data)
    got, err = read_until_error([p])
    assert got == [] and (err.path, err.offset, err.reason) == (str(p), offset, reason)
    assert str(err).startswith(str(p))


def test_missing_file_and_directory(tmp_path):
    _, err = read_until_error([tmp_path / "nope.pcap"])
    assert (err.path, err.offset, err.reason) == (str(tmp_path / "nope.pcap"), None,
                                                  "No such file or directory")
    _, err = read_until_error([tmp_path])
    assert err.path == str(tmp_path) and err.offset is None


def test_permission_denied(tmp_path, monkeypatch):
    p = write(tmp_path, "secret.pcap", pcap_header())
    if os.geteuid() == 0:  # root reads anything: make open() refuse as it would for a user
        import sniffer.capture.source as source_mod

        def refuse(*_a, **_k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(source_mod, "open", refuse, raising=False)
    else:
        p.chmod(0)
    _, err = read_until_error([p])
    assert (err.path, err.offset, err.reason) == (str(p), None, "Permission denied")


def test_error_is_raised_from_the_iterator_not_the_call(tmp_path):
    it = open_capture([str(tmp_path / "nope.pcap")], Stats())
    with pytest.raises(BadInputError):
        next(it)


GOOD = [(1700000000 + i, i, bytes([i]) * (40 + i)) for i in range(5)]


@pytest.mark.parametrize("cut", [1, 8, 15, 16, 17, 30])
def test_truncated_last_record_ends_quietly(tmp_path, cut):
    body = pcap_file(GOOD)
    last = pcap_rec(1700000100, 0, b"z" * 40)
    p = write(tmp_path, "t.pcap", body + last[:cut])
    pkts, stats = read_all([p])
    assert len(pkts) == 5 and stats["truncated_final_record"] == 1


def test_corrupt_record_mid_file_names_offset(tmp_path):
    bogus = struct.pack("<IIII", 1, 0, 300000, 60)
    body = pcap_file(GOOD)
    p = write(tmp_path, "c.pcap", body + bogus + b"\0" * 300000 + pcap_rec(2, 0, b"y" * 40))
    got, err = read_until_error([p])
    assert len(got) == 5 and got[-1][2] == GOOD[-1][2]
    assert (err.path, err.offset) == (str(p), len(body))
    assert "invalid packet capture length 300000" in err.reason


@pytest.mark.parametrize("caplen", [0xFFFFFFFF, 300000, 262145, 4325376])
@pytest.mark.parametrize("after", [0, 7, 600, 400000])
def test_refused_length_is_an_error_even_running_past_eof(tmp_path, caplen, after):
    """libpcap refuses a caplen above its maximum wherever the record stands: the check comes
    before "does it run past the end of the file", so a damaged header near the end is not
    taken for a capture cut short (issue 12, item 2)."""
    body = pcap_file(GOOD)
    bogus = struct.pack("<IIII", 1, 0, caplen, 60)
    p = write(tmp_path, "t.pcap", body + bogus + b"\0" * after)
    got, err = read_until_error([p])
    assert [g[2] for g in got] == [g[2] for g in GOOD]
    assert (err.path, err.offset) == (str(p), len(body))
    assert err.reason == f"invalid packet capture length {caplen}, bigger than maximum of 262144"


def test_refused_length_in_a_big_endian_and_an_old_file(tmp_path):
    body = pcap_file(GOOD, e=">")
    p = write(tmp_path, "be.pcap", body + struct.pack(">IIII", 1, 0, 300000, 60))
    assert read_until_error([p])[1].offset == len(body)
    body = pcap_header(minor=2) + struct.pack("<IIII", 1, 0, 20, 20) + b"w" * 20
    p = write(tmp_path, "old.pcap", body + struct.pack("<IIII", 1, 0, 60, 300000))  # swapped
    got, err = read_until_error([p])
    assert len(got) == 1 and err.offset == len(body) and "length 300000" in err.reason


@pytest.mark.parametrize("linktype,limit", [(1, 262144), (231, 128 << 20), (249, 1 << 20),
                                            (279, 8 << 20)])
def test_maximum_caplen_follows_the_link_type_like_libpcap(tmp_path, linktype, limit):
    """libpcap's max_snaplen_for_dlt: D-Bus, USBPcap and EBHSCR frames may be longer."""
    body = pcap_header(snaplen=0, linktype=linktype) + pcap_rec(1, 0, b"a" * 20)
    longest = min(limit, 8 << 20)  # a whole 128 MiB D-Bus record would only slow the test down
    p = write(tmp_path, "ok.pcap", body + pcap_rec(2, 0, b"L" * longest))
    pkts, stats = read_all([p])
    assert [len(x[2]) for x in pkts] == [20, longest] and not stats
    p = write(tmp_path, "bad.pcap", body + struct.pack("<IIII", 2, 0, limit + 1, limit + 1)
              + b"L" * 100)
    got, err = read_until_error([p])
    assert len(got) == 1 and err.offset == len(body)
    assert err.reason == (f"invalid packet capture length {limit + 1}, bigger than maximum of "
                          f"{limit}")


def test_sane_length_running_past_eof_is_truncation(tmp_path):
    """A caplen libpcap accepts whose body the file does not hold: the capture was cut."""
    p = write(tmp_path, "t.pcap", pcap_file(GOOD) + struct.pack("<IIII", 1, 0, 262144, 0)
              + b"\0" * 600)
    pkts, stats = read_all([p])
    assert len(pkts) == 5 and stats["truncated_final_record"] == 1


def test_caplen_over_snaplen_is_cut_like_libpcap(tmp_path):
    p = write(tmp_path, "s.pcap", pcap_file([(1, 0, b"q" * 100, 100), (2, 0, b"r" * 10)],
                                            snaplen=64))
    pkts, stats = read_all([p])
    assert pkts[0][2] == b"q" * 64 and pkts[0][3] == 100 and pkts[1][2] == b"r" * 10
    assert stats["caplen_over_snaplen"] == 1 and stats["snaplen_truncated"] == 1


def test_old_versions_with_swapped_lengths(tmp_path):
    rec = struct.pack("<IIII", 1, 0, 60, 20) + b"w" * 20  # len, caplen order
    p = write(tmp_path, "old.pcap", pcap_header(minor=2) + rec)
    assert read_all([p])[0] == [(1.0, 1, b"w" * 20, 60)]


def test_records_straddling_chunks(tmp_path, monkeypatch):
    import sniffer.capture.pcap as pcap_mod
    monkeypatch.setattr(pcap_mod, "CHUNK", 7)  # every record crosses several reads
    recs = [(1700000000 + i, i, bytes([i % 256]) * (i % 50 + 1)) for i in range(300)]
    p = write(tmp_path, "many.pcap", pcap_file(recs))
    pkts, stats = read_all([p])
    assert [p_[2] for p_ in pkts] == [r[2] for r in recs] and not stats


def test_memory_does_not_grow_with_file_size(tmp_path):
    rec = pcap_rec(1700000000, 0, b"m" * 200)
    p = tmp_path / "big.pcap"
    with p.open("wb") as f:
        f.write(pcap_header())
        f.write(rec * 100_000)  # ~21 MB
    tracemalloc.start()
    n = sum(1 for _ in open_capture([str(p)], Stats()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 100_000 and peak < 8 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# gzip and stdin

def test_gzip_detected_by_magic_not_name(tmp_path):
    raw = pcap_file(GOOD)
    p = write(tmp_path, "plain-name.pcap", gzip.compress(raw))
    assert [x[2] for x in read_all([p])[0]] == [g[2] for g in GOOD]
    png = shb("<") + idb("<") + epb("<", 0, 5_000_000, b"g" * 30)
    p = write(tmp_path, "x.bin", gzip.compress(png))
    assert read_all([p])[0] == [(5.0, 1, b"g" * 30, 30)]


def test_gzip_cut_off(tmp_path):
    z = gzip.compress(pcap_file(GOOD * 50))
    p = write(tmp_path, "cut.pcap.gz", z[: len(z) // 2])
    pkts, stats = read_all([p])
    assert 0 < len(pkts) < 250 and stats["gzip_truncated"] == 1


def test_gzip_corrupt_mid_file_via_stream_path(tmp_path):
    # no file size for gzip: the bogus length is judged by reading on, in bounded chunks
    body = pcap_file(GOOD)
    data = body + struct.pack("<IIII", 1, 0, 300000, 60) + b"\0" * 300100
    got, err = read_until_error([write(tmp_path, "c.pcap.gz", gzip.compress(data))])
    assert len(got) == 5 and err.offset == len(body)
    # a refused length near the end is damage too, not truncation (issue 12, item 2)
    z = gzip.compress(body + struct.pack("<IIII", 1, 0, 300000, 60) + b"\0" * 100)
    got, err = read_until_error([write(tmp_path, "t.pcap.gz", z)])
    assert len(got) == 5 and err.offset == len(body)
    z = gzip.compress(body + struct.pack("<IIII", 1, 0, 3000, 60) + b"\0" * 100)
    pkts, stats = read_all([write(tmp_path, "cut.pcap.gz", z)])
    assert len(pkts) == 5 and stats["truncated_final_record"] == 1


def test_gzip_of_nothing(tmp_path):
    _, err = read_until_error([write(tmp_path, "e.gz", gzip.compress(b""))])
    assert err.reason == "empty gzip stream, not a capture"


STDIN_SCRIPT = """
import json, sys
from sniffer.capture import open_capture
from sniffer.errors import BadInputError
from sniffer.stats import Stats
st = Stats(); out = []
try:
    for ts, lt, data, wl in open_capture(sys.argv[1:], st):
        out.append([ts, lt, data.hex(), wl])
    err = None
except BadInputError as e:
    err = [e.path, e.offset, e.reason]
print(json.dumps({"pkts": out, "stats": dict(st), "err": err}))
"""


def run_stdin(data: bytes, *paths: str) -> dict:
    r = subprocess.run([sys.executable, "-c", STDIN_SCRIPT, *(paths or ["-"])], input=data,
                       capture_output=True, cwd=ROOT, check=True, timeout=60)
    return json.loads(r.stdout)


def test_stdin_pipe_pcap_pcapng_gzip():
    raw = pcap_file(GOOD * 3000)  # bigger than a pipe buffer
    want = [[g[0] + g[1] / 1e6, 1, g[2].hex(), len(g[2])] for g in GOOD * 3000]
    assert run_stdin(raw)["pkts"] == want
    assert run_stdin(gzip.compress(raw))["pkts"] == want
    png = shb(">") + idb(">", 113) + b"".join(epb(">", 0, i * 1_000_000, b"n" * 50)
                                               for i in range(2000))
    r = run_stdin(png)
    assert len(r["pkts"]) == 2000 and r["pkts"][1] == [1.0, 113, ("6e" * 50), 50]


def test_stdin_errors_and_truncation():
    r = run_stdin(b"")
    assert r["err"] == ["<stdin>", None, "empty file (0 bytes), not a capture"]
    r = run_stdin(pcap_file(GOOD) + b"\x01\x02\x03")
    assert len(r["pkts"]) == 5 and r["stats"] == {"truncated_final_record": 1}
    body = pcap_file(GOOD)
    r = run_stdin(body + struct.pack("<IIII", 1, 0, 300000, 60) + b"\0" * 300100)
    assert len(r["pkts"]) == 5 and r["err"][:2] == ["<stdin>", len(body)]
    r = run_stdin(body + struct.pack("<IIII", 1, 0, 0xFFFFFFFF, 60) + b"\0" * 10)
    assert len(r["pkts"]) == 5 and r["err"][:2] == ["<stdin>", len(body)]


def test_stdin_merged_with_a_file(tmp_path):
    a = write(tmp_path, "a.pcap", pcap_file([(10, 0, b"a" * 10), (30, 0, b"a" * 10)]))
    stdin = pcap_file([(20, 0, b"b" * 10), (40, 0, b"b" * 10, 50)]) + b"\x01"
    r = run_stdin(stdin, str(a), "-")
    assert [p[0] for p in r["pkts"]] == [10, 20, 30, 40]
    assert r["stats"] == {"snaplen_truncated": 1, "truncated_final_record": 1}


# ---------------------------------------------------------------------------------------------
# several files

def test_merge_interleaved_files_in_time_order(tmp_path):
    a = write(tmp_path, "a.pcap",
              pcap_file([(10, 0, b"a" * 10), (12, 0, b"a" * 10), (14, 5, b"a" * 10)]))
    b = write(tmp_path, "b.pcapng", shb(">") + idb(">", 101) + epb(">", 0, 11_000_000, b"b" * 10)
              + epb(">", 0, 14_000_005, b"b" * 10) + epb(">", 0, 15_000_000, b"b" * 10))
    pkts, _ = read_all([a, b])
    assert [(p[0], p[1]) for p in pkts] == [(10.0, 1), (11.0, 101), (12.0, 1), (14.000005, 1),
                                            (14.000005, 101), (15.0, 101)]  # ties: first-named


def test_merge_rotated_files_given_out_of_order(tmp_path):
    files = [write(tmp_path, f"r{i}.pcap",
                   pcap_file([(100 * i + k, 0, bytes([i]) * 20) for k in range(50)]))
             for i in range(4)]
    pkts, _ = read_all([files[2], files[0], files[3], files[1]])
    assert [p[0] for p in pkts] == sorted(p[0] for p in pkts) and len(pkts) == 200


def test_merge_counts_stats_once_and_keeps_empty_files(tmp_path):
    a = write(tmp_path, "a.pcap", pcap_file([(1, 0, b"a" * 10, 99)]) + b"\x01")
    e = write(tmp_path, "e.pcap", pcap_header() + b"\x01\x02")
    b = write(tmp_path, "b.pcap", pcap_file([(2, 0, b"b" * 10)]))
    pkts, stats = read_all([a, e, b])
    assert len(pkts) == 2
    assert stats == {"snaplen_truncated": 1, "truncated_final_record": 2}


def test_merge_reports_a_bad_file(tmp_path):
    a = write(tmp_path, "a.pcap", pcap_file(GOOD))
    bad = write(tmp_path, "bad.pcap", b"not a capture at all")
    _, err = read_until_error([a, bad])
    assert err.path == str(bad) and err.offset == 0


def test_merge_corrupt_later_file_keeps_earlier_packets(tmp_path):
    a = write(tmp_path, "a.pcap", pcap_file([(1, 0, b"a" * 10), (5, 0, b"a" * 10)]))
    body = pcap_file([(3, 0, b"b" * 10)])
    b = write(tmp_path, "b.pcap", body + struct.pack("<IIII", 4, 0, 999999, 1) + b"\0" * 1000000)
    got, err = read_until_error([a, b])
    assert [p[0] for p in got] == [1.0, 3.0] and (err.path, err.offset) == (str(b), len(body))


# ---------------------------------------------------------------------------------------------
# pcapng, crafted

def test_pcapng_two_sections_of_different_byte_orders(tmp_path):
    data = (shb("<") + idb("<", 1) + idb("<", 113) + epb("<", 1, 1_000_000, b"x" * 20)
            + shb(">") + idb(">", 101) + epb(">", 0, 2_000_000, b"y" * 20, 40)
            + shb("<") + idb("<", 0) + epb("<", 0, 3_000_000, b"z" * 20))
    pkts, stats = read_all([write(tmp_path, "s.pcapng", data)])
    assert pkts == [(1.0, 113, b"x" * 20, 20), (2.0, 101, b"y" * 20, 40), (3.0, 0, b"z" * 20, 20)]
    assert stats["snaplen_truncated"] == 1


def test_pcapng_interfaces_restart_per_section(tmp_path):
    data = shb("<") + idb("<") + idb("<") + shb(">") + idb(">") + epb(">", 1, 0, b"x" * 4)
    got, err = read_until_error([write(tmp_path, "r.pcapng", data)])
    assert got == [] and err.offset == len(data) - len(epb(">", 1, 0, b"x" * 4))
    assert "no Interface Description Block" in err.reason


@pytest.mark.parametrize("tsresol,t,want", [
    (3, 1_700_000_000_123, 1_700_000_000 + 123000 / 1e6),              # 10^-3
    (9, 1_700_000_000_123_456_789, 1_700_000_000 + 123456 / 1e6),      # 10^-9, truncated to us
    (0x80 | 20, (1_700_000_000 << 20) | (1 << 19), 1_700_000_000.5),    # 2^-20
    (0x80 | 10, (1_700_000_000 << 10) | 1, 1_700_000_000 + 976 / 1e6),  # 2^-10: 976.5625 us
    (0, 1_700_000_000, 1_700_000_000.0),                                # 10^0: whole seconds
])
def test_pcapng_tsresol(tmp_path, tsresol, t, want):
    for e in "<>":
        data = shb(e) + idb(e, tsresol=tsresol) + epb(e, 0, t, b"t" * 14)
        assert read_all([write(tmp_path, "r.pcapng", data)])[0][0][0] == want


def test_pcapng_tsoffset(tmp_path):
    data = (shb("<") + idb("<", tsoffset=1_700_000_000) + idb("<", tsresol=9, tsoffset=-10)
            + epb("<", 0, 5_000_250, b"o" * 14) + epb("<", 1, 20_000_000_500, b"o" * 14))
    pkts, _ = read_all([write(tmp_path, "o.pcapng", data)])
    assert [p[0] for p in pkts] == [1_700_000_005 + 250 / 1e6, 10.0]


def test_pcapng_tsresol_too_high(tmp_path):
    data = shb("<") + idb("<", tsresol=20)
    _, err = read_until_error([write(tmp_path, "h.pcapng", data)])
    assert err.offset == len(shb("<")) and "too high" in err.reason


def test_pcapng_simple_packet_block(tmp_path):
    e = ">"
    data = (shb(e) + idb(e, 1, snaplen=64) + epb(e, 0, 7_000_000, b"e" * 10)
            + spb(e, 100, b"s" * 64) + spb(e, 30, b"u" * 30) + spb(e, 500, b"v" * 40))
    pkts, stats = read_all([write(tmp_path, "spb.pcapng", data)])
    # caplen = min(wirelen, snaplen, block space); no timestamp: the stream's last one is kept
    assert pkts[1:] == [(7.0, 1, b"s" * 64, 100), (7.0, 1, b"u" * 30, 30), (7.0, 1, b"v" * 40, 500)]
    assert stats["pcapng_spb_no_timestamp"] == 3 and stats["snaplen_truncated"] == 2


def test_pcapng_obsolete_packet_block(tmp_path):
    data = shb("<") + idb("<", 9) + pb("<", 0, 3_000_001, b"p" * 33, 80)
    pkts, stats = read_all([write(tmp_path, "pb.pcapng", data)])
    assert pkts == [(3.000001, 9, b"p" * 33, 80)]
    assert stats["pcapng_obsolete_packet_block"] == 1 and stats["snaplen_truncated"] == 1


def test_pcapng_unknown_and_ignored_blocks_skipped(tmp_path):
    data = (shb("<") + block("<", 4, b"\0" * 4) + idb("<") + block("<", 0x1234, b"??")
            + block("<", 5, b"\0" * 8) + epb("<", 0, 0, b"k" * 8) + block("<", 0x80001234, b""))
    pkts, stats = read_all([write(tmp_path, "u.pcapng", data)])
    assert len(pkts) == 1 and stats["pcapng_unknown_block"] == 2


def test_pcapng_packet_before_any_idb(tmp_path):
    data = shb("<") + epb("<", 0, 0, b"k" * 8)
    _, err = read_until_error([write(tmp_path, "n.pcapng", data)])
    assert err.offset == len(shb("<"))


@pytest.mark.parametrize("mangle,reason", [
    (lambda b: b[:4] + struct.pack("<I", 46) + b[8:], "block length 46 is not a multiple of 4"),
    (lambda b: b[:4] + struct.pack("<I", 8) + b[8:], "block length 8 is less than 12"),
    (lambda b: b[:-4] + struct.pack("<I", 999),
     "block total length in header 52 and trailer 999 don't match"),
    (lambda b: b[:4] + struct.pack("<I", 20 << 20) + b[8:] + b"\0" * (21 << 20),
     "block length 20971520 is bigger than maximum 16777216"),
])
def test_pcapng_bad_block_mid_file(tmp_path, mangle, reason):
    head = shb("<") + idb("<") + epb("<", 0, 1_000_000, b"1" * 20)
    bad = mangle(epb("<", 0, 2_000_000, b"2" * 20))
    tail = epb("<", 0, 3, b"3" * 20)
    got, err = read_until_error([write(tmp_path, "b.pcapng", head + bad + tail)])
    assert [p[2] for p in got] == [b"1" * 20]
    assert (err.offset, err.reason) == (len(head), reason)


def test_pcapng_epb_caplen_beyond_block(tmp_path):
    b = bytearray(epb("<", 0, 0, b"x" * 20))
    struct.pack_into("<I", b, 20, 200)
    _, err = read_until_error([write(tmp_path, "c.pcapng", shb("<") + idb("<") + bytes(b))])
    assert "runs past the end of its 52-byte block" in err.reason


@pytest.mark.parametrize("cut", [3, 8, 12, 30])
def test_pcapng_truncated_final_block(tmp_path, cut):
    data = shb("<") + idb("<") + epb("<", 0, 0, b"1" * 20) + epb("<", 0, 0, b"2" * 20)[:cut]
    pkts, stats = read_all([write(tmp_path, "t.pcapng", data)])
    assert len(pkts) == 1 and stats["truncated_final_record"] == 1


@pytest.mark.parametrize("btype", [6, 3, 1, 0x1234])
def test_pcapng_refused_block_length_running_past_eof_is_an_error(tmp_path, btype):
    """Like a pcap caplen: a block length libpcap refuses is damage wherever it stands."""
    head = shb("<") + idb("<") + epb("<", 0, 0, b"1" * 20)
    data = head + struct.pack("<II", btype, 0x7FFFFFFC) + b"\0" * 50
    got, err = read_until_error([write(tmp_path, "t.pcapng", data)])
    assert len(got) == 1 and err.offset == len(head)
    assert err.reason == "block length 2147483644 is bigger than maximum 16777216"


def test_pcapng_sane_block_length_running_past_eof_is_truncation(tmp_path):
    data = (shb("<") + idb("<") + epb("<", 0, 0, b"1" * 20)
            + struct.pack("<II", 6, 16 << 20) + b"\0" * 50)
    pkts, stats = read_all([write(tmp_path, "t.pcapng", data)])
    assert len(pkts) == 1 and stats["truncated_final_record"] == 1


def test_pcapng_dbus_interface_allows_longer_blocks_and_packets(tmp_path):
    """libpcap raises the block limit for a link type with a bigger maximum snaplen."""
    big = b"D" * (17 << 20)  # over 16 MiB: refused on Ethernet, a D-Bus message may be that long
    data = shb("<") + idb("<", 231) + epb("<", 0, 0, big)
    pkts, _ = read_all([write(tmp_path, "d.pcapng", data)])
    assert len(pkts) == 1 and pkts[0][2] == big
    head = shb("<") + idb("<", 1)
    got, err = read_until_error([write(tmp_path, "e.pcapng", head + epb("<", 0, 0, big))])
    assert got == [] and err.offset == len(head) and "bigger than maximum 16777216" in err.reason


def test_pcapng_epb_caplen_over_the_maximum(tmp_path):
    """An EPB of a sane block size whose caplen libpcap would refuse for its link type."""
    head = shb("<") + idb("<") + epb("<", 0, 0, b"1" * 20)
    bad = epb("<", 0, 0, b"x" * 300000)
    got, err = read_until_error([write(tmp_path, "c.pcapng", head + bad + epb("<", 0, 0, b"2"))])
    assert len(got) == 1 and err.offset == len(head)
    assert err.reason == "invalid packet capture length 300000, bigger than maximum of 262144"


def test_pcapng_bad_section_header(tmp_path):
    bad_bom = bytearray(shb("<"))
    bad_bom[8:12] = b"\x01\x02\x03\x04"
    _, err = read_until_error([write(tmp_path, "bom.pcapng", bytes(bad_bom))])
    assert err.offset == 0 and "byte-order magic" in err.reason
    v2 = block("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1))
    _, err = read_until_error([write(tmp_path, "v2.pcapng", v2)])
    assert err.reason == "unsupported pcapng savefile version 2.0"


# ---------------------------------------------------------------------------------------------
# a damaged record in a real capture, through the real command line (issue 12, item 2)

KXUN = CORPUS / "big" / "ndpi_1kxun.pcap"  # 1,723 packets, little-endian, snaplen 262144


def record_offsets(data: bytes) -> list[int]:
    """Where each record header of a little-endian classic pcap starts."""
    pos, out = 24, []
    while pos + 16 <= len(data):
        out.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return out


def as_pcapng(data: bytes) -> tuple[bytes, list[int]]:
    """The same packets as a pcapng file (one Ethernet interface), and where each EPB starts."""
    out, offsets = [shb("<") + idb("<")], []
    size = len(out[0])
    for pos in record_offsets(data):
        sec, usec, caplen, wirelen = struct.unpack_from("<IIII", data, pos)
        b = epb("<", 0, sec * 1_000_000 + usec, data[pos + 16:pos + 16 + caplen], wirelen)
        offsets.append(size)
        out.append(b)
        size += len(b)
    return b"".join(out), offsets


def sniffer_read(src, out: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sniffer", "read", str(src), "--format", "zeek",
                           "-o", str(out)], cwd=ROOT, capture_output=True, input=stdin,
                          timeout=300)


def conn_rows(path: Path) -> list[str]:
    text = path.read_text()
    assert text.rstrip("\n").splitlines()[-1].startswith("#close\t")  # a complete log
    return [ln for ln in text.splitlines() if not ln.startswith("#")]


def rows_of_cut(tmp_path: Path, data: bytes) -> list[str]:
    """conn.log rows of `data` (a file cut just before the damaged record), read cleanly."""
    cut, out = write(tmp_path, "cut.pcap", data), tmp_path / "cut.log"
    proc = sniffer_read(cut, out)
    assert proc.returncode == 0, proc.stderr
    assert all(ln.startswith(("sniffer: note: ", "sniffer: warning: "))  # its bad checksums
               for ln in proc.stderr.decode().splitlines()), proc.stderr
    return conn_rows(out)


@pytest.mark.parametrize("where", ["middle", "near-end", "last"])
@pytest.mark.parametrize("caplen", [0xFFFFFFFF, 300000])
def test_cli_damaged_record_header_is_an_error_not_the_end(tmp_path, where, caplen):
    """A record header claiming a caplen libpcap refuses: exit 2, one line naming the file and
    the record's offset, and conn.log holds the connections of the packets before it -- the
    same rows as reading the file cut at that record. Before the fix, exit 0 and only a note."""
    data = KXUN.read_bytes()
    offsets = record_offsets(data)
    assert len(offsets) == 1723
    at = {"middle": offsets[len(offsets) // 2], "near-end": offsets[-3],
          "last": offsets[-1]}[where]
    damaged = bytearray(data)
    struct.pack_into("<I", damaged, at + 8, caplen)
    bad, out = write(tmp_path, "damaged.pcap", bytes(damaged)), tmp_path / "out.log"
    proc = sniffer_read(bad, out)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (f"sniffer: {bad}: offset {at}: invalid packet capture length "
                                    f"{caplen}, bigger than maximum of 262144\n")
    want = rows_of_cut(tmp_path, data[:at])
    assert len(want) > 40 and conn_rows(out) == want


@pytest.mark.parametrize("how", ["stdin", "gzip", "gzip-stdin"])
def test_cli_damaged_record_on_stdin_and_gzip(tmp_path, how):
    data = KXUN.read_bytes()
    at = record_offsets(data)[-2]  # near the end: the claimed body would run past EOF
    damaged = bytearray(data)
    struct.pack_into("<I", damaged, at + 8, 0xFFFFFFFF)
    payload = gzip.compress(bytes(damaged)) if how.startswith("gzip") else bytes(damaged)
    out = tmp_path / "out.log"
    if how == "gzip":
        src = write(tmp_path, "damaged.pcap.gz", payload)
        proc = sniffer_read(src, out)
    else:
        src = "<stdin>"
        proc = sniffer_read("-", out, stdin=payload)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (f"sniffer: {src}: offset {at}: invalid packet capture length "
                                    "4294967295, bigger than maximum of 262144\n")
    assert conn_rows(out) == rows_of_cut(tmp_path, data[:at])


@pytest.mark.parametrize("where", ["middle", "last"])
def test_cli_pcapng_refused_block_length_vs_truncated_final_block(tmp_path, where):
    """pcapng: an EPB whose block length libpcap refuses is an error wherever it stands; an EPB
    of a sane length cut by the end of the file is the truncated last block (a note, exit 0)."""
    data = KXUN.read_bytes()
    png, offsets = as_pcapng(data)
    at = offsets[len(offsets) // 2] if where == "middle" else offsets[-1]
    want = rows_of_cut(tmp_path, data[:record_offsets(data)[offsets.index(at)]])
    damaged = bytearray(png)
    struct.pack_into("<I", damaged, at + 4, 0x7FFFFFFC)
    bad, out = write(tmp_path, "damaged.pcapng", bytes(damaged)), tmp_path / "out.log"
    proc = sniffer_read(bad, out)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (f"sniffer: {bad}: offset {at}: block length 2147483644 is "
                                    "bigger than maximum 16777216\n")
    assert conn_rows(out) == want
    if where == "last":
        cut = write(tmp_path, "cut.pcapng", png[:at + 40])  # the last EPB cut short
        proc = sniffer_read(cut, out)
        assert proc.returncode == 0
        note = proc.stderr.decode().splitlines()[0]
        assert note.startswith("sniffer: note: ") and "truncated_final_record=1" in note
        assert conn_rows(out) == want
