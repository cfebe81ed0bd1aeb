"""Recording (`sniffer live -w FILE.pcapng`): the pcapng writer, and reading its records back.

The writer is checked three ways: against our own reader (`open_capture(..., on_custom)`:
order, timestamps, link types, lengths, custom payloads), against the raw bytes (nanosecond
timestamps, epb_flags), and against the Wireshark / libpcap tools when installed (Debian
packages tshark, wireshark-common for capinfos, tcpdump).
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import CookedLinux
from scapy.packet import raw
from scapy.utils import wrpcap

from pcapkit import Session, run
from sniffer import __version__
from sniffer.capture import open_capture
from sniffer.errors import BadInputError
from sniffer.output.pcapng import PEN, PcapngWriter
from sniffer.stats import Stats

NS = 1_000_000_000
T0 = 1_700_000_000


# ---------------------------------------------------------------------------------------------
# a recording: Ethernet TCP session on eth0, SLL UDP on "any", custom records in between

def _tcp_frames() -> list[bytes]:
    s = Session(t0=0.0).handshake()
    s.send(True, "PA", b"GET / HTTP/1.0\r\n\r\n")
    s.send(False, "A")
    s.send(False, "PA", b"HTTP/1.0 200 OK\r\n\r\nhello")
    s.send(True, "FA")
    s.send(False, "FA")
    s.send(True, "A")
    return [raw(p) for p in s.pkts]


def _sll(pkttype: int, src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return raw(CookedLinux(pkttype=pkttype, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\1")
               / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def scenario() -> list[tuple]:
    """Writer calls, in order: ("iface", name, linktype, snaplen) / ("pkt", iface, ts, data,
    wirelen, direction) / ("custom", kind, payload, ts)."""
    tcp = _tcp_frames()
    dns_q = _sll(4, "10.0.0.1", "10.0.0.53", 5353, 53, b"q" * 29)   # outgoing
    dns_r = _sll(0, "10.0.0.53", "10.0.0.1", 53, 5353, b"r" * 61)   # to us
    return [
        ("iface", "eth0", 1, 262144),
        ("custom", "start", {"argv": ["live", "-w", "x.pcapng"], "host": "hôte"}, T0 + 0.5),
        ("iface", "any", 113, 65535),
        ("pkt", 0, (T0 + 1, 1), tcp[0], len(tcp[0]), 4),                 # SYN, outbound
        ("custom", "socket", {"conn": ["10.0.0.1", 40000, "93.184.216.34", 80],
                              "pid": 4242, "comm": "curl"}, T0 + 1.000000002),
        ("pkt", 0, (T0 + 1, 20_999_999), tcp[1], len(tcp[1]), 0),        # SYN-ACK, host
        ("pkt", 0, T0 + 1.03, tcp[2], len(tcp[2]), 4),                   # float timestamp
        ("pkt", 1, (T0 + 1, 30_500_000), dns_q, len(dns_q), 4),
        ("custom", "verdict", {"v": "ok", "n": 1}, None),                # ts: wall clock
        ("pkt", 1, (T0 + 1, 30_623_456), dns_r, len(dns_r) + 100, 0),   # snaplen-cut
        ("pkt", 0, (T0 + 1, 40_000_000), tcp[3], len(tcp[3]), 4),
        ("pkt", 0, (T0 + 1, 50_000_000), tcp[4], len(tcp[4]), 1),        # broadcast
        ("pkt", 0, (T0 + 1, 60_000_000), tcp[5], len(tcp[5]), 2),        # multicast
        ("pkt", 0, (T0 + 1, 70_000_000), tcp[6], len(tcp[6]), 3),        # other host
        ("custom", "x", {}, T0 + 2),
        ("pkt", 0, (T0 + 1, 80_000_999), tcp[7], len(tcp[7]), None),     # direction unknown
        ("pkt", 0, (T0 + 1, 90_000_000), tcp[8], len(tcp[8]), 5),        # PACKET_LOOPBACK
        ("custom", "stop", {"packets": 11, "drops": 0}, T0 + 3.25),    # after the last packet
    ]


def record(ops: list[tuple], out, each=None) -> None:
    """Play `ops` into a PcapngWriter on `out`.

    `each(writer, i)`, if given, runs after the header (i = -1) and after every call, each
    time after a flush.
    """
    with PcapngWriter(out) as w:
        if each:
            w.flush()
            each(w, -1)
        for i, op in enumerate(ops):
            if op[0] == "iface":
                assert w.add_interface(*op[1:]) == sum(o[0] == "iface" for o in ops[:i])
            elif op[0] == "pkt":
                w.packet(*op[1:])
            else:
                _, kind, payload, ts = op
                w.custom(kind, payload, ts)
            if each:
                w.flush()
                each(w, i)


def reader_ts(ts) -> float:
    """What our reader yields for a written timestamp: whole microseconds, Zeek's formula."""
    t = _ns(ts)
    return t // NS + (t % NS // 1000) / 1e6


def _ns(ts) -> int:
    if isinstance(ts, tuple):
        return ts[0] * NS + ts[1]
    return int(ts) * NS + round((ts - int(ts)) * 1e6) * 1000  # floats: whole microseconds


def expected_events(ops: list[tuple]) -> list[tuple]:
    linktypes = [op[2] for op in ops if op[0] == "iface"]
    events = []
    for op in ops:
        if op[0] == "pkt":
            _, iface, ts, data, wirelen, _dir = op
            events.append(("pkt", reader_ts(ts), linktypes[iface], data, wirelen))
        elif op[0] == "custom":
            _, kind, payload, ts = op
            events.append(("custom", ts, {"sniffer": 1, "kind": kind, "ts": ts, **payload}))
    return events


def read_events(paths, stats=None):
    """Packets and custom records as one list, in the order the reader delivered them."""
    stats = Stats() if stats is None else stats
    events: list[tuple] = []
    for pkt in open_capture([str(p) for p in paths], stats,
                            lambda ts, rec: events.append(("custom", ts, rec))):
        events.append(("pkt", *pkt))
    return events, stats


def same_events(got, want) -> None:
    """`want` has None for a wall-clock ts (a custom written without one): match any float."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w[0] == "custom" and w[1] is None:
            assert g[0] == "custom" and isinstance(g[1], float) and g[1] == g[2]["ts"]
            assert {k: v for k, v in g[2].items() if k != "ts"} == \
                {k: v for k, v in w[2].items() if k != "ts"}
        else:
            assert g == w


@pytest.fixture
def recorded(tmp_path) -> tuple[Path, list[tuple]]:
    ops = scenario()
    path = tmp_path / "rec.pcapng"
    record(ops, path)
    return path, ops


# ---------------------------------------------------------------------------------------------
# raw bytes

def blocks(data: bytes) -> list[tuple[int, bytes]]:
    """(block type, body) of every block of a little-endian file."""
    out, pos = [], 0
    while pos < len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        assert blen % 4 == 0 and struct.unpack_from("<I", data, pos + blen - 4)[0] == blen
        out.append((btype, data[pos + 8:pos + blen - 4]))
        pos += blen
    assert pos == len(data)
    return out


def options(body: bytes, start: int) -> dict[int, bytes]:
    opts, o = {}, start
    while o < len(body):
        code, olen = struct.unpack_from("<HH", body, o)
        if code == 0:
            assert olen == 0 and o + 4 == len(body)
            break
        opts[code] = body[o + 4:o + 4 + olen]
        o += 4 + (olen + 3 & ~3)
    return opts


def test_raw_layout(recorded):
    path, ops = recorded
    bl = blocks(path.read_bytes())
    assert [b[0] for b in bl][:2] == [0x0A0D0D0A, 1]
    shb = bl[0][1]
    assert struct.unpack_from("<IHHq", shb) == (0x1A2B3C4D, 1, 0, -1)
    shb_opts = options(shb, 16)
    assert shb_opts[4] == f"sniffer {__version__}".encode() and shb_opts[3].startswith(b"Linux")
    idbs = [b for t, b in bl if t == 1]
    assert [struct.unpack_from("<HHI", b) for b in idbs] == [(1, 0, 262144), (113, 0, 65535)]
    assert [options(b, 8) for b in idbs] == [{2: b"eth0", 9: b"\x09"}, {2: b"any", 9: b"\x09"}]

    pkts = [op for op in ops if op[0] == "pkt"]
    epbs = [b for t, b in bl if t == 6]
    assert len(epbs) == len(pkts)
    flags = {0: 1 | 1 << 2, 1: 1 | 3 << 2, 2: 1 | 2 << 2, 3: 1 | 4 << 2, 4: 2}
    for body, (_, iface, ts, data, wirelen, direction) in zip(epbs, pkts):
        i, th, tl, caplen, wl = struct.unpack_from("<IIIII", body)
        t = th << 32 | tl
        assert (i, caplen, wl, body[20:20 + caplen]) == (iface, len(data), wirelen, data)
        if isinstance(ts, tuple):
            assert t == ts[0] * NS + ts[1]  # nanoseconds kept exactly
        else:  # the microsecond nearest to the float's exact value
            assert t % 1000 == 0 and abs(Fraction(t, NS) - Fraction(ts)) <= Fraction(1, 2 * 10**6)
        opts = options(body, 20 + (caplen + 3 & ~3))
        if direction in flags:
            assert opts == {2: struct.pack("<I", flags[direction])}
        else:
            assert opts == {}

    customs = [(t, b) for t, b in bl if t in (0xBAD, 0x40000BAD)]
    want = [op for op in ops if op[0] == "custom"]
    assert len(customs) == len(want)
    for (btype, body), (_, kind, payload, ts) in zip(customs, want):
        assert btype == 0xBAD and struct.unpack_from("<I", body)[0] == PEN == 32473
        rec = json.loads(body[4:].rstrip(b"\0").decode("utf-8"))
        assert list(rec)[:3] == ["sniffer", "kind", "ts"] and rec["sniffer"] == 1
        assert rec["kind"] == kind and {k: rec[k] for k in payload} == payload
        assert rec["ts"] == ts or ts is None


def test_block_order_is_call_order(recorded):
    path, ops = recorded
    kinds = {"iface": 1, "pkt": 6, "custom": 0xBAD}
    assert [t for t, _ in blocks(path.read_bytes())] == [0x0A0D0D0A] + [kinds[o[0]] for o in ops]


# ---------------------------------------------------------------------------------------------
# reading back with our reader

def test_read_back_in_file_order(recorded):
    path, ops = recorded
    got, stats = read_events([path])
    same_events(got, expected_events(ops))
    assert stats["snaplen_truncated"] == 1  # the one written with wirelen > len(data)
    assert stats["truncated_final_record"] == 0
    assert not [k for k in stats if k.startswith("pcapng_")]


def test_timestamps_whole_microseconds_like_zeek(recorded):
    path, _ = recorded
    ts = [e[1] for e in read_events([path])[0] if e[0] == "pkt"]
    # the reader keeps libpcap's (and so Zeek's) microsecond view of nanosecond files
    assert ts[0] == T0 + 1 + 0 / 1e6
    assert ts[1] == T0 + 1 + 20999 / 1e6
    assert ts[2] == T0 + 1 + 30000 / 1e6
    assert ts[4] == T0 + 1 + 30623 / 1e6
    assert ts[9] == T0 + 1 + 80000 / 1e6


def test_float_timestamps_round_trip_bit_identically(tmp_path):
    # what a live run feeds its engine (sec + usec/1e6, as the reader computes it) must read
    # back as the very same float, or an offline replay could differ from the live verdicts
    rnd = random.Random(7)
    stamps = [s + u / 1e6 for s, u in [(T0, 260000), (T0, 999999), (T0, 0), (0, 1), (1, 999999),
                                       (2**32 - 1, 999999)]]
    stamps += [rnd.randrange(2**31) + rnd.randrange(10**6) / 1e6 for _ in range(3000)]
    path = tmp_path / "f.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface("eth0", 1)
        for ts in stamps:
            w.packet(0, ts, b"\0" * 14, 14)
    assert [e[1] for e in read_events([path])[0]] == stamps


def test_without_on_custom_nothing_changes(recorded):
    path, ops = recorded
    stats = Stats()
    pkts = list(open_capture([str(path)], stats))
    assert [("pkt", *p) for p in pkts] == [e for e in expected_events(ops) if e[0] == "pkt"]
    assert not [k for k in stats if k.startswith("pcapng_")]


def test_pcap_file_with_on_custom(tmp_path):
    s = Session(t0=T0).handshake()
    wrpcap(str(tmp_path / "t.pcap"), s.pkts)
    got, _ = read_events([tmp_path / "t.pcap"])
    assert [e[0] for e in got] == ["pkt"] * 3


def _custom_block(pen: int, data: bytes, btype: int = 0xBAD) -> bytes:
    data += b"\0" * (-len(data) % 4)
    blen = 16 + len(data)
    return struct.pack("<III", btype, blen, pen) + data + struct.pack("<I", blen)


def test_foreign_and_undecodable_custom_blocks(tmp_path):
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.add_interface("lo", 1)
        w.custom("a", {}, 1.0)
        w.packet(0, 2.0, b"\0" * 14, 14)
    good = buf.getvalue()
    tail = b"".join([
        _custom_block(10949, b"netflix bblog"),                       # another PEN
        _custom_block(PEN, b"\xff\xfe not utf-8"),
        _custom_block(PEN, b"{not json"),
        _custom_block(PEN, b"[1, 2]"),                                # not an object
        _custom_block(PEN, b'{"kind": "k"}'),                         # no "sniffer"
        _custom_block(PEN, b'{"sniffer": 1, "kind": 3}'),             # kind not a string
        struct.pack("<II", 0xBAD, 12) + struct.pack("<I", 12),       # no room for a PEN
        _custom_block(PEN, b'{"sniffer": 1, "kind": "late"}', 0x40000BAD),  # no ts: stream's
        _custom_block(PEN, b'{"sniffer": 2, "kind": "v2", "ts": 5}'),
    ])
    path = tmp_path / "f.pcapng"
    path.write_bytes(good + tail)
    got, stats = read_events([path])
    assert got == [
        ("custom", 1.0, {"sniffer": 1, "kind": "a", "ts": 1.0}),
        ("pkt", 2.0, 1, b"\0" * 14, 14),
        ("custom", 2.0, {"sniffer": 1, "kind": "late"}),
        ("custom", 5, {"sniffer": 2, "kind": "v2", "ts": 5}),
    ]
    assert stats["pcapng_custom_block_other"] == 1 and stats["pcapng_custom_block_bad"] == 6
    assert stats["pcapng_unknown_block"] == 0
    # without on_custom: skipped silently, as before
    stats = Stats()
    assert len(list(open_capture([str(path)], stats))) == 1
    assert not [k for k in stats if k.startswith("pcapng_")]


def test_merge_delivers_records_with_their_files_packets(tmp_path):
    def write(name, ops):
        record([("iface", "eth0", 1, 262144)] + ops, tmp_path / name)
        return tmp_path / name

    def pkt(t):
        return ("pkt", 0, float(t), bytes([t]) * 14, 14, None)

    def cus(kind, ts):
        return ("custom", kind, {}, ts)

    a = write("a.pcapng", [cus("a0", 0.5), pkt(1), cus("a1", 1.5), pkt(3), cus("a2", 3.5)])
    b = write("b.pcapng", [cus("b0", 0.7), pkt(2), pkt(4), cus("b1", 4.5)])
    c = write("c.pcapng", [cus("c0", 2.5)])  # records only
    b.write_bytes(b.read_bytes() + _custom_block(12345, b"foreign"))
    got, stats = read_events([a, b, c])
    order = [e[2]["kind"] if e[0] == "custom" else e[1] for e in got]
    assert order == ["a0", 1.0, "b0", 2.0, "c0", "a1", 3.0, "a2", 4.0, "b1"]
    assert stats["pcapng_custom_block_other"] == 1  # counted once, though the merge peeks
    # the packets alone merge exactly as without on_custom
    plain = list(open_capture([str(a), str(b), str(c)], Stats()))
    assert [("pkt", *p) for p in plain] == [e for e in got if e[0] == "pkt"]


def test_merge_with_stdin_keeps_records(tmp_path):
    a = tmp_path / "a.pcapng"
    record([("iface", "eth0", 1, 262144), ("custom", "a0", {}, 0.5),
            ("pkt", 0, 1.0, b"a" * 14, 14, None)], a)
    b = tmp_path / "b.pcapng"
    record([("iface", "eth0", 1, 262144), ("custom", "b0", {}, 0.5),
            ("pkt", 0, 2.0, b"b" * 14, 14, None), ("custom", "b1", {}, 2.5)], b)
    code = ("import sys; from sniffer.capture import open_capture; from sniffer.stats import "
            "Stats\nfor p in open_capture(sys.argv[1:], Stats(), lambda t, r: print(r['kind'])):"
            " print(p[0])")
    with b.open("rb") as stdin:
        out = subprocess.run([sys.executable, "-c", code, "-", str(a)], stdin=stdin,
                             capture_output=True, check=True, timeout=60).stdout.decode().split()
    assert out == ["a0", "1.0", "b0", "2.0", "b1"]


# ---------------------------------------------------------------------------------------------
# crash safety: every flush leaves a valid file

def test_every_flush_point_is_a_valid_capture(tmp_path):
    ops = scenario()
    path = tmp_path / "live.pcapng"
    want = expected_events(ops)
    sizes = []

    def check(w, i):
        data = path.read_bytes()  # what another process sees now
        sizes.append(len(data))
        snap = tmp_path / "snap.pcapng"
        snap.write_bytes(data)
        got, stats = read_events([snap])
        n = sum(op[0] in ("pkt", "custom") for op in ops[:i + 1])
        same_events(got, want[:n])
        assert stats["truncated_final_record"] == 0
        assert [t for t, _ in blocks(data)][0] == 0x0A0D0D0A

    record(ops, path, each=check)
    assert sizes == sorted(set(sizes))  # every call wrote one more block, and it is on disk
    assert sizes[-1] == path.stat().st_size


def test_cut_anywhere_reads_the_whole_blocks_before_the_cut(recorded, tmp_path):
    path, ops = recorded
    data = path.read_bytes()
    ends, pos = [], 0
    for btype, body in blocks(data):
        pos += len(body) + 12
        ends.append((pos, btype))
    want = expected_events(ops)
    for cut in range(ends[0][0], len(data) + 1):
        (tmp_path / "cut.pcapng").write_bytes(data[:cut])
        got, stats = read_events([tmp_path / "cut.pcapng"])
        whole = [t for end, t in ends if end <= cut]
        n = sum(t in (6, 0xBAD) for t in whole)
        same_events(got, want[:n])
        assert stats["truncated_final_record"] == (0 if cut in {e for e, _ in ends} else 1)


# ---------------------------------------------------------------------------------------------
# writer API

def test_writer_api_errors_and_file_objects(tmp_path):
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    with pytest.raises(ValueError):
        w.packet(0, 1.0, b"x", 1)  # no interface yet
    assert w.add_interface("wlan0", 127) == 0 and w.add_interface("eth1", 1, 96) == 1
    with pytest.raises(ValueError):
        w.packet(2, 1.0, b"x", 1)
    for payload, ts in [({"sniffer": 1}, None), ({"kind": "other"}, None), ({"ts": 2.0}, 1.0)]:
        with pytest.raises(ValueError):
            w.custom("k", payload, ts)
    w.custom("k", {"kind": "k", "ts": 3.0, "x": 1})  # an event naming its own kind and time
    with pytest.raises(ValueError):
        w.custom("k", {"x": float("nan")})  # not JSON
    w.packet(1, 1.0, b"abc", 2)  # wirelen below the captured length: raised to it
    w.close()
    w.close()
    assert not buf.closed  # a file object is flushed, not closed
    assert blocks(buf.getvalue())[-1] == (6, struct.pack("<IIIII", 1, 0, NS, 3, 3) + b"abc\0")
    (tmp_path / "o.pcapng").write_bytes(buf.getvalue())
    assert read_events([tmp_path / "o.pcapng"])[0] == [
        ("custom", 3.0, {"sniffer": 1, "kind": "k", "ts": 3.0, "x": 1}), ("pkt", 1.0, 1, b"abc", 3)]


def test_json_padding_every_length(tmp_path):
    path = tmp_path / "p.pcapng"
    ops = [("iface", "eth0", 1, 262144)] + [("custom", "k", {"s": "é" * n}, float(n))
                                            for n in range(9)]
    record(ops, path)
    got, stats = read_events([path])
    assert [e[2]["s"] for e in got] == ["é" * n for n in range(9)]
    assert not stats


def test_empty_recording_is_valid(tmp_path):
    path = tmp_path / "e.pcapng"
    PcapngWriter(path).close()
    assert read_events([path]) == ([], Stats())


def test_bad_path_is_one_error_naming_the_file(tmp_path):
    from sniffer.errors import SnifferError
    path = tmp_path / "no" / "such" / "dir.pcapng"
    with pytest.raises(SnifferError, match=f"{path}: cannot write: No such file"):
        PcapngWriter(path)


def test_full_disk_leaves_whole_blocks(tmp_path):
    """A recording that fills a real 64 KiB tmpfs: cut at its last whole block, still read."""
    from netnskit import small_disk
    from sniffer.output.outfile import WriteFailed
    with small_disk(tmp_path / "disk") as mnt:
        path = mnt / "rec.pcapng"
        w = PcapngWriter(path, buffering=1000)
        w.add_interface("eth0", 1)
        with pytest.raises(WriteFailed, match="No space left on device; the file ends at"):
            for i in range(100_000):
                w.packet(0, 1000.0 + i, bytes(range(256)) * 3, 768)
        w.close()
        assert 50_000 < path.stat().st_size <= 65536
        from sniffer.stats import Stats
        stats = Stats()
        pkts = list(open_capture([str(path)], stats))
        assert not stats.get("truncated_final_record"), dict(stats)  # no block cut in two
        assert len(pkts) > 60 and all(p[2] == bytes(range(256)) * 3 for p in pkts)


def test_reader_still_rejects_garbage_after_records(tmp_path):
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.custom("k", {}, 1.0)
    path = tmp_path / "g.pcapng"
    path.write_bytes(buf.getvalue() + struct.pack("<II", 0xBAD, 21) + b"\0" * 40)
    with pytest.raises(BadInputError):
        read_events([path])


# ---------------------------------------------------------------------------------------------
# `sniffer read` on a recording

def _conn_rows(stdout: bytes) -> list[str]:
    return [ln for ln in stdout.decode().splitlines() if not ln.startswith("#")]


def test_sniffer_read_zeek_on_a_recording(recorded, tmp_path):
    path, ops = recorded
    proc = run(["read", path, "--format", "zeek"])
    rows = [r.split("\t") for r in _conn_rows(proc.stdout)]
    assert sorted((r[2], r[3], r[4], r[5], r[6]) for r in rows) == [
        ("10.0.0.1", "40000", "93.184.216.34", "80", "tcp"),
        ("10.0.0.1", "5353", "10.0.0.53", "53", "udp"),
    ]
    # the custom blocks change nothing: the same recording without them reads the same
    bare = tmp_path / "bare.pcapng"
    record([op for op in ops if op[0] != "custom"], bare)
    assert _conn_rows(run(["read", bare, "--format", "zeek"]).stdout) == _conn_rows(proc.stdout)
    assert proc.stderr.decode() == run(["read", bare, "--format", "zeek"]).stderr.decode()


def test_recording_reads_like_the_same_packets_in_pcap(tmp_path):
    s = Session(t0=T0 + 0.25).handshake()
    s.send(True, "PA", b"x" * 100)
    s.send(False, "A")
    s.send(True, "FA")
    s.send(False, "FA")
    s.send(True, "A")
    wrpcap(str(tmp_path / "ref.pcap"), s.pkts)
    rec = tmp_path / "rec.pcapng"
    with PcapngWriter(rec) as w:
        w.add_interface("eth0", 1)
        for i, p in enumerate(s.pkts):
            w.custom("tick", {"i": i})
            w.packet(0, float(p.time), raw(p), len(p), 4 if i % 2 else 0)
    ref = run(["read", tmp_path / "ref.pcap", "--format", "zeek"]).stdout
    assert _conn_rows(run(["read", rec, "--format", "zeek"]).stdout) == _conn_rows(ref)
    assert len(_conn_rows(ref)) == 1


# ---------------------------------------------------------------------------------------------
# other tools accept the file (skipped only where the tool is not installed)

def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_tshark_reads_the_recording(recorded):
    path, ops = recorded
    tshark = _tool("tshark")
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-E", "separator=|",
                          "-e", "frame.time_epoch", "-e", "frame.interface_name",
                          "-e", "frame.len", "-e", "frame.cap_len",
                          "-e", "frame.packet_flags_direction"],
                         capture_output=True, check=True, timeout=120).stdout.decode()
    rows = [ln.split("|") for ln in out.splitlines() if ln.split("|")[1]]  # customs: no iface
    pkts = [op for op in ops if op[0] == "pkt"]
    assert len(rows) == len(pkts)
    names = ["eth0", "any"]
    for row, (_, iface, ts, data, wirelen, direction) in zip(rows, pkts):
        t = _ns(ts)
        assert row[0] == f"{t // NS}.{t % NS:09d}"  # nanoseconds intact
        assert row[1:4] == [names[iface], str(wirelen), str(len(data))]
        want_dir = {4: "0x00000002"}.get(direction, "0x00000001" if direction in range(4) else "")
        assert row[4] == want_dir


def test_capinfos_at_every_flush_point(tmp_path):
    capinfos = _tool("capinfos")
    ops = scenario()
    path = tmp_path / "live.pcapng"
    counts = []

    def check(w, i):
        proc = subprocess.run([capinfos, "-M", "-c", "-I", str(path)],
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        counts.append(int(re.search(r"Number of packets:\s+(\d+)",
                                    proc.stdout.decode()).group(1)))

    record(ops, path, each=check)
    want, n = [0], 0
    for op in ops:
        n += op[0] == "pkt"
        want.append(n)
    assert counts == want


def test_tcpdump_reads_a_one_linktype_recording(tmp_path):
    tcpdump = _tool("tcpdump")
    ops = [op for op in scenario() if op[0] != "iface" and (op[0] != "pkt" or op[1] == 0)]
    path = tmp_path / "eth.pcapng"
    record([("iface", "eth0", 1, 262144)] + ops, path)
    proc = subprocess.run([tcpdump, "-nn", "--nano", "-tt", "-r", str(path)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    pkts = [op for op in ops if op[0] == "pkt"]
    assert len(lines) == len(pkts)
    for ln, op in zip(lines, pkts):
        t = _ns(op[2])
        assert ln.startswith(f"{t // NS}.{t % NS:09d} IP 10.0.0.1.40000 > 93.184.216.34.80") \
            or ln.startswith(f"{t // NS}.{t % NS:09d} IP 93.184.216.34.80 > 10.0.0.1.40000")
