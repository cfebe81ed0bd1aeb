"""Property-based robustness of the capture readers, the decoder and the flow engine.

Hypothesis builds hostile input at every layer: arbitrary bytes, pcap and pcapng files whose
headers, records, blocks and options are mostly well formed but with any field able to take
any value, gzip wrappers, sniffer's own custom records with wrong shapes, and arbitrary frames
(raw, or a plausible link header + IPv4/IPv6 + TCP/UDP/ICMP with random fields) for every link
type the decoder knows. Properties: nothing but the project's own errors escapes, every packet
read is within the file and the snaplen limit, timestamps are finite, every step finishes
within a time limit and a memory limit (`bounded`), and every record formats as a Zeek row.

The examples are bounded (``max_examples``) so that the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import signal
import struct
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sniffer.capture import open_capture, read_file
from sniffer.capture.pcap import MAX_SNAPLEN, max_snaplen_for_dlt
from sniffer.capture.pcapng import max_block_for
from sniffer.config import Settings
from sniffer.decode import LINKTYPES, Decoder
from sniffer.detect.engine import Detectors
from sniffer.errors import BadInputError, SnifferError
from sniffer.flows.table import FlowTable
from sniffer.output.zeek import DEFAULT_FIELDS, ZeekWriter, format_row
from sniffer.read import run_packets
from sniffer.stats import Stats

#: seconds one example may take (a hang fails the test instead of stalling CI)
TIME_LIMIT = 20
#: bytes of Python allocations one example may hold at its peak (inputs here are < 64 KiB)
MEMORY_LIMIT = 64 << 20

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
FEW = settings(SETTINGS, max_examples=150)


class Hang(Exception):
    """Raised from the timer signal: an example ran past TIME_LIMIT."""


@contextlib.contextmanager
def bounded(seconds: float = TIME_LIMIT, max_bytes: int = MEMORY_LIMIT) -> Iterator[None]:
    """Fail if the block runs longer than `seconds` or allocates more than `max_bytes`."""
    def alarm(_sig, _frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        assert peak <= max_bytes, f"peak allocation {peak} bytes > {max_bytes}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if started:
            tracemalloc.stop()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory for the capture files the examples write (module-scoped: hypothesis)."""
    with tempfile.TemporaryDirectory(prefix="sniffer-props-") as d:
        yield Path(d)


def read_all(path: Path, custom: bool = False) -> tuple[list, Stats]:
    """Every packet `read_file` yields for `path`; BadInputError propagates."""
    stats = Stats()
    events: list = []
    on_custom = (lambda ts, rec: events.append((ts, rec))) if custom else None
    packets = list(read_file(str(path), stats, on_custom))
    for ts, _rec in events:
        assert isinstance(ts, float | int) and math.isfinite(ts)
    return packets, stats


def check_packets(packets: list, file_size: int) -> None:
    """What a reader yields is sane whatever the file said."""
    for pkt in packets:
        ts, linktype, data, wirelen = pkt[:4]
        assert isinstance(ts, float) and math.isfinite(ts)
        assert isinstance(linktype, int) and 0 <= linktype <= 0xFFFF
        # libpcap's longest packet for the link type (262144 bytes but for D-Bus, USBPcap
        # and EBHSCR), never more than a pcapng block can hold
        assert isinstance(data, bytes) and len(data) <= min(max_snaplen_for_dlt(linktype),
                                                            max_block_for(linktype))
        assert len(data) <= file_size
        assert isinstance(wirelen, int) and wirelen >= 0


def read_checked(path: Path, data: bytes, custom: bool = False) -> list:
    """Read `path` (holding `data`, maybe gzipped) under the bounds; bad input is fine."""
    with bounded():
        try:
            packets, _stats = read_all(path, custom)
        except BadInputError as exc:
            assert exc.path == str(path) and str(exc).startswith(str(path))
            return []
    check_packets(packets, max(len(data), path.stat().st_size))
    return packets


# --- arbitrary bytes ---------------------------------------------------------------------------

MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
          b"\x0a\x0d\x0d\x0a", b"\x1f\x8b")


@SETTINGS
@given(data=st.one_of(st.binary(max_size=2048),
                      st.tuples(st.sampled_from(MAGICS), st.binary(max_size=2048))
                      .map(lambda t: t[0] + t[1])))
def test_arbitrary_bytes_only_bad_input(scratch, data):
    """Any bytes at all, bare or behind a capture magic: packets or BadInputError."""
    path = scratch / "any.bin"
    path.write_bytes(data)
    read_checked(path, data, custom=True)


# --- structured pcap ---------------------------------------------------------------------------

U32 = st.integers(0, 0xFFFFFFFF)
U16 = st.integers(0, 0xFFFF)


def usually(valid, anything: st.SearchStrategy) -> st.SearchStrategy:
    """`valid` most of the time, else any value of `anything` (the corrupt field)."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), anything)


@st.composite
def pcap_files(draw) -> bytes:
    """A classic pcap: file header and records, any field possibly corrupt, maybe cut short."""
    e = draw(st.sampled_from("<>"))
    magic = draw(st.sampled_from((0xA1B2C3D4, 0xA1B23C4D)))
    major = draw(usually(2, U16))
    minor = draw(usually(4, st.integers(0, 6)))
    snaplen = draw(usually(65535, st.sampled_from((0, 1, 64, MAX_SNAPLEN, MAX_SNAPLEN + 1,
                                                   0xFFFFFFFF))))
    linktype = draw(st.one_of(st.sampled_from(sorted(LINKTYPES)), U16, U32))
    out = [struct.pack(e + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)]
    for _ in range(draw(st.integers(0, 8))):
        body = draw(st.binary(max_size=300))
        caplen = draw(usually(len(body), st.one_of(U32, st.integers(0, 400))))
        wirelen = draw(usually(len(body), U32))
        sec = draw(usually(1_000_000 + len(out), U32))
        frac = draw(st.one_of(st.integers(0, 999_999), U32))
        out.append(struct.pack(e + "IIII", sec, frac, caplen, wirelen) + body)
    data = b"".join(out)
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return data


@SETTINGS
@given(data=pcap_files(), gz=st.booleans())
def test_pcap_records_any_field(scratch, data, gz):
    """Any version, snaplen, link type (reserved bits too), caplen, len and timestamp."""
    path = scratch / "t.pcap"
    path.write_bytes(gzip.compress(data, 1) if gz else data)
    read_checked(path, data)


# --- structured pcapng -------------------------------------------------------------------------

def _block(e: str, btype: int, body: bytes, blen: int | None = None,
           trailer: int | None = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return (struct.pack(e + "II", btype, n if blen is None else blen) + body
            + struct.pack(e + "I", n if trailer is None else trailer))


@st.composite
def options(draw, codes: tuple[int, ...]) -> bytes:
    """An options list: known and unknown codes, honest or lying lengths, maybe no end."""
    e = draw(st.shared(st.sampled_from("<>"), key="endian"))
    out = []
    for _ in range(draw(st.integers(0, 4))):
        code = draw(st.one_of(st.sampled_from(codes), U16))
        value = draw(st.binary(max_size=24))
        if code == 9 and draw(st.booleans()):  # if_tsresol: any resolution byte
            value = bytes([draw(st.integers(0, 255))])
        elif code == 14 and draw(st.booleans()):  # if_tsoffset: any 64-bit offset
            value = struct.pack(e + "q", draw(st.integers(-(1 << 63), (1 << 63) - 1)))
        olen = draw(usually(len(value), U16))
        out.append(struct.pack(e + "HH", code, olen) + value + b"\0" * (-len(value) % 4))
    if draw(st.booleans()):
        out.append(b"\0\0\0\0")  # opt_endofopt
    return b"".join(out)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
SOCKET_RECORDS = st.fixed_dictionaries(
    {}, optional={"proto": st.sampled_from(("tcp", "udp")) | JSON_VALUES,
                  "local_addr": st.sampled_from(("10.0.0.1", "::1", "", "x")) | JSON_VALUES,
                  "remote_addr": st.sampled_from(("93.184.216.34", "")) | JSON_VALUES,
                  "local_port": st.integers(-1, 70000) | JSON_VALUES,
                  "remote_port": st.integers(-1, 70000) | JSON_VALUES,
                  "state": st.sampled_from(("LISTEN", "ESTABLISHED")) | JSON_VALUES,
                  "processes": st.lists(st.fixed_dictionaries(
                      {}, optional={"pid": st.integers() | JSON_VALUES,
                                    "name": st.text(max_size=5) | JSON_VALUES}), max_size=2)
                  | JSON_VALUES,
                  "owner": st.sampled_from(("process", "kernel")) | JSON_VALUES,
                  "user": st.text(max_size=5) | JSON_VALUES, "inode": JSON_VALUES,
                  "seen_in": JSON_VALUES, "missing_from": JSON_VALUES,
                  "summary": JSON_VALUES})
KERNEL_EVENTS = st.fixed_dictionaries(
    {"sniffer": st.just(1), "kind": st.sampled_from(("addresses", "snapshot", "sockets",
                                                     "destroy", "hidden", "start", "other"))},
    optional={"ts": st.one_of(st.floats(allow_nan=True), st.integers(), JSON_VALUES),
              "addresses": st.lists(st.sampled_from(("10.0.0.1", "::1", "bad")) | JSON_VALUES,
                                    max_size=3) | JSON_VALUES,
              "local_prefixes": st.lists(st.sampled_from(("10.0.0.0/8", "nope")) | JSON_VALUES,
                                         max_size=3) | JSON_VALUES,
              "sockets": st.lists(SOCKET_RECORDS, max_size=3) | JSON_VALUES,
              "socket": SOCKET_RECORDS | JSON_VALUES})


@st.composite
def pcapng_blocks(draw) -> bytes:
    """One block of any kind the reader knows (and unknown ones), lengths maybe lying."""
    e = draw(st.shared(st.sampled_from("<>"), key="endian"))
    kind = draw(st.sampled_from(("shb", "idb", "idb", "epb", "epb", "epb", "spb", "pb",
                                 "custom", "unknown")))
    if kind == "shb":
        bom = draw(usually(0x1A2B3C4D, U32))
        body = struct.pack(e + "IHHq", bom, draw(usually(1, U16)), 0,
                           draw(st.integers(-(1 << 63), (1 << 63) - 1)))
        body += draw(options((1, 2, 3, 4)))
        btype = 0x0A0D0D0A
    elif kind == "idb":
        linktype = draw(st.one_of(st.sampled_from(sorted(LINKTYPES)), U16))
        snaplen = draw(st.one_of(st.just(0), st.just(65535), U32))
        body = struct.pack(e + "HHI", linktype, 0, snaplen) + draw(options((2, 9, 14)))
        btype = 1
    elif kind in ("epb", "pb"):
        data = draw(st.binary(max_size=200))
        caplen = draw(usually(len(data), st.one_of(U32, st.integers(0, 300))))
        wirelen = draw(usually(len(data), U32))
        iface = draw(st.one_of(st.integers(0, 2), U32 if kind == "epb" else U16))
        th, tl = draw(U32), draw(U32)
        if kind == "epb":
            body = struct.pack(e + "IIIII", iface, th, tl, caplen, wirelen)
        else:
            body = struct.pack(e + "HHIIII", iface, 0, th, tl, caplen, wirelen)
        body += data + b"\0" * (-len(data) % 4) + draw(options((2, 3, 4, 5)))
        btype = 6 if kind == "epb" else 2
    elif kind == "spb":
        data = draw(st.binary(max_size=200))
        body = struct.pack(e + "I", draw(usually(len(data), U32))) + data
        btype = 3
    elif kind == "custom":
        pen = draw(usually(32473, U32))
        payload = draw(st.one_of(KERNEL_EVENTS.map(lambda d: json.dumps(d).encode()),
                                 st.binary(max_size=64)))
        body = struct.pack(e + "I", pen) + payload
        btype = draw(st.sampled_from((0x0BAD, 0x40000BAD)))
    else:
        btype = draw(U32)
        body = draw(st.binary(max_size=64))
    n = 12 + len(body) + (-len(body) % 4)
    blen = draw(usually(n, st.one_of(U32, st.sampled_from((0, 4, 12, 16, 28, 32, n + 4,
                                                           n - 4)))))
    trailer = draw(usually(blen, U32))
    return _block(e, btype, body, blen, trailer)


@st.composite
def pcapng_files(draw) -> bytes:
    e = draw(st.shared(st.sampled_from("<>"), key="endian"))
    shb = _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(e, 1, struct.pack(e + "HHI", draw(st.sampled_from((1, 101, 113))), 0, 0))
    blocks = draw(st.lists(pcapng_blocks(), max_size=10))
    data = shb + (idb if draw(st.booleans()) else b"") + b"".join(blocks)
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return data


@SETTINGS
@given(data=pcapng_files(), gz=st.booleans())
def test_pcapng_blocks_any_field(scratch, data, gz):
    """Sections, interfaces (any tsresol/tsoffset), packet blocks of all three kinds, custom
    and unknown blocks; any length, caplen, interface id or option length."""
    path = scratch / "t.pcapng"
    path.write_bytes(gzip.compress(data, 1) if gz else data)
    read_checked(path, data, custom=True)


@FEW
@given(data=pcapng_files())
def test_pcapng_custom_records_through_the_pipeline(scratch, data):
    """Recordings with custom records of any shape, replayed with the correlator and the
    detectors (as `sniffer read --alerts` does): rows and alerts format, nothing escapes."""
    path = scratch / "rec.pcapng"
    path.write_bytes(data)
    pipeline(path, detect=True)


def _syn(src: bytes, dst: bytes, sport: int, dport: int, flags: int = 2) -> bytes:
    """An Ethernet/IPv4/TCP frame (checksums left zero: the pipeline runs with -C here)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 0x50, flags, 8192, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
    return bytes(12) + b"\x08\x00" + ip + tcp


@st.composite
def recordings(draw) -> bytes:
    """A well-formed recording (`sniffer live -w` layout) whose kernel records have any shape:
    every example reaches the correlator and the detectors' kernel hooks."""
    e = "<"
    out = [_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(e, 1, struct.pack(e + "HHI", 1, 0, 0))]
    local, remote = b"\x0a\x00\x00\x01", b"\x5d\xb8\xd8\x22"
    t = 1_000_000_000
    for _ in range(draw(st.integers(1, 6))):
        ev = draw(KERNEL_EVENTS)
        text = json.dumps(ev, allow_nan=True).encode()
        out.append(_block(e, 0x0BAD, struct.pack(e + "I", 32473) + text))
        a, b = (local, remote) if draw(st.booleans()) else (remote, local)
        frame = _syn(a, b, draw(PORTS), draw(PORTS), draw(st.sampled_from((2, 0x12, 4, 0x10))))
        t += 100_000
        out.append(_block(e, 6, struct.pack(e + "IIIII", 0, t >> 32, t & 0xFFFFFFFF,
                                             len(frame), len(frame)) + frame))
    return b"".join(out)


@FEW
@given(data=recordings())
def test_kernel_records_of_any_shape(scratch, data):
    """Replaying a recording whose custom records lie about their fields (wrong types,
    unparsable addresses, ports past 65535, NaN and 1e400 timestamps): no crash."""
    path = scratch / "kernel.pcapng"
    path.write_bytes(data)
    pipeline(path, detect=True, ignore_checksums=True)


# --- gzip ------------------------------------------------------------------------------------

@FEW
@given(data=pcap_files(), cut=st.integers(0, 1 << 16), flips=st.lists(
    st.tuples(st.integers(0, 1 << 16), st.integers(0, 7)), max_size=4))
def test_gzip_damaged(scratch, data, cut, flips):
    """A gzip stream cut short or with flipped bits: packets before the damage, or bad input."""
    z = bytearray(gzip.compress(data, 1))
    for at, bit in flips:
        if 2 <= at % len(z):  # keep the magic, or it is simply not gzip
            z[at % len(z)] ^= 1 << bit
    z = bytes(z[:max(2, cut % (len(z) + 1))])
    path = scratch / "t.pcap.gz"
    path.write_bytes(z)
    read_checked(path, z)


# --- the decoder and the flow engine -------------------------------------------------------

ADDRS4 = st.sampled_from((b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\x5d\xb8\xd8\x22",
                          b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xe0\x00\x00\x01"))
ADDRS6 = st.sampled_from((bytes(15) + b"\x01", b"\xfe\x80" + bytes(13) + b"\x01",
                          b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02", b"\xff\x02" + bytes(14)))
PORTS = st.sampled_from((0, 53, 80, 443, 2152, 3544, 4789, 5072, 6081, 40000, 65535))
PROTOS = st.sampled_from((1, 6, 6, 6, 17, 17, 58, 4, 41, 47, 132, 0, 43, 44, 60, 255))


@st.composite
def transport(draw, proto: int) -> bytes:
    """A TCP, UDP or ICMP header with random fields (lengths and offsets honest or not)."""
    payload = draw(st.binary(max_size=64))
    if proto == 6:
        doff = draw(usually(5, st.integers(0, 15)))
        opts = draw(st.binary(max_size=40))
        return struct.pack("!HHIIBBHHH", draw(PORTS), draw(PORTS), draw(U32), draw(U32),
                           doff << 4, draw(st.integers(0, 255)), draw(U16), 0,
                           draw(U16)) + opts + payload
    if proto == 17:
        ulen = draw(usually(8 + len(payload), U16))
        return struct.pack("!HHHH", draw(PORTS), draw(PORTS), ulen, 0) + payload
    if proto in (1, 58):
        return bytes([draw(st.integers(0, 255)), draw(st.integers(0, 255))]) + b"\0\0" + \
            draw(st.binary(max_size=8)) + payload
    return payload


@st.composite
def ip_packets(draw, depth: int = 0) -> bytes:
    """IPv4 (maybe options, fragment bits) or IPv6 (maybe extension headers); maybe tunnelled."""
    proto = draw(PROTOS)
    if proto in (4, 41, 47) and depth < 2 and draw(st.booleans()):
        inner = draw(ip_packets(depth + 1))
        l4 = (struct.pack("!HH", 0, 0x0800 if inner[0] >> 4 == 4 else 0x86DD) + inner
              if proto == 47 else inner)
    else:
        l4 = draw(transport(proto))
    if draw(st.booleans()):  # IPv4
        opts = draw(st.one_of(st.just(b""), st.binary(min_size=4, max_size=4)))
        ihl = draw(usually(5 + len(opts) // 4, st.integers(0, 15)))
        tot = draw(usually(20 + len(opts) + len(l4), U16))
        frag = draw(usually(0, st.sampled_from((0x2000, 0x0001, 0x2001, 0x4000, 0x1FFF))))
        hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, draw(U16), frag,
                          draw(st.integers(0, 255)), proto, 0, draw(ADDRS4), draw(ADDRS4))
        return hdr + opts + l4
    ext = b""
    nh = proto
    for _ in range(draw(st.integers(0, 2))):
        ext_type = draw(st.sampled_from((0, 43, 44, 60, 51)))
        if ext_type == 44:
            body = struct.pack("!BBHI", nh, 0, draw(usually(0, U16)), draw(U32))
        else:
            hlen = draw(st.integers(0, 2))
            body = bytes([nh, hlen]) + draw(st.binary(min_size=6 + 8 * hlen,
                                                      max_size=6 + 8 * hlen))
        ext, nh = body + ext, ext_type
    plen = draw(usually(len(ext) + len(l4), U16))
    return struct.pack("!IHBB16s16s", 0x60000000, plen, nh, draw(st.integers(0, 255)),
                       draw(ADDRS6), draw(ADDRS6)) + ext + l4


# A plausible link header for the link types that have a simple one (others: random bytes).
LINK_HEADERS = {
    1: lambda et: bytes(12) + struct.pack("!H", et),
    113: lambda et: bytes(14) + struct.pack("!H", et),
    276: lambda et: struct.pack("!H", et) + bytes(18),
    0: lambda et: struct.pack("<I", 2 if et == 0x0800 else 30),
    108: lambda et: struct.pack("!I", 2 if et == 0x0800 else 24),
}
LINKTYPE_CHOICES = sorted(LINKTYPES) + [2, 147, 65535]


@st.composite
def frames(draw, linktype: int) -> bytes:
    """Raw bytes, or a link header + an IP packet, maybe cut short (snaplen)."""
    kind = draw(st.sampled_from(("raw", "ip", "ip", "ip")))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    ip = draw(ip_packets())
    et = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    make = LINK_HEADERS.get(linktype)
    if make is not None:
        head = make(draw(usually(et, st.sampled_from((0x8100, 0x88A8, 0x8864, 0x8847, 0x0806,
                                                       0x86DD, 0x0800, 0x0000, 0xFFFF)))))
    elif linktype in (12, 14, 101, 228, 229):
        head = b""
    else:
        head = draw(st.binary(max_size=40))
    frame = head + ip
    if draw(st.integers(0, 4)) == 0:
        frame = frame[:draw(st.integers(0, len(frame)))]
    return frame


def check_pkt(pkt) -> None:
    """The decoder's result tuple: (src, dst, proto, ip_len, l4, l4_len, ttl)."""
    src, dst, proto, ip_len, l4, l4_len, ttl = pkt
    assert len(src) in (4, 16) and len(dst) == len(src)
    assert 0 <= proto <= 255 and 0 <= ttl <= 255
    assert isinstance(l4, bytes) and ip_len >= 0 and l4_len >= 0


@st.composite
def frame_batches(draw) -> tuple[int, list[bytes]]:
    linktype = draw(st.sampled_from(LINKTYPE_CHOICES))
    return linktype, draw(st.lists(frames(linktype), min_size=1, max_size=12))


def run_engine(linktype: int, batch: list[bytes], ignore: bool, detect: bool) -> list[str]:
    """Decode `batch`, feed the flow table (and detectors), return the Zeek rows."""
    cfg = Settings(ignore_checksums=ignore)
    stats = Stats()
    decoder = Decoder(cfg, stats)
    rows: list[str] = []
    detectors = Detectors(cfg, [], stats) if detect else None

    def emit(conn) -> None:  # as run_packets wires it
        rows.append(format_row(conn))
        if detectors is not None:
            detectors.finished(conn)

    table = FlowTable(cfg, stats, emit, decoder)
    if detectors is not None:
        table.observer = detectors
        detectors.table = table
    ts = 1000.0
    for i, frame in enumerate(batch):
        ts += 0.25 if i % 3 else -0.1  # a little reordering too
        table.frame = i + 1
        if ts > table.network_time:
            table.tick(ts)
        if detectors is not None:
            detectors.frame(linktype, frame, None)
        pkt = decoder.decode(ts, linktype, frame, len(frame) + i % 2 * 20)
        if pkt is None:
            continue
        check_pkt(pkt)
        rest = decoder.more[:]
        decoder.more.clear()
        for p in [pkt] + rest:
            check_pkt(p)
            table.process(ts, p)
    decoder.flush()
    if detectors is not None:
        detectors.flush()
    table.flush()
    for row in rows:
        assert "\n" not in row and row.count("\t") == len(DEFAULT_FIELDS) - 1
    return rows


@SETTINGS
@given(batch=frame_batches(), ignore=st.booleans(), detect=st.booleans())
def test_decoder_and_flows_any_frames(batch, ignore, detect):
    """Every link type (and unknown ones), any frames: the decoder returns None or a sane
    tuple, the flow table and the detectors take it, every record formats as a row."""
    linktype, frames_ = batch
    with bounded():
        run_engine(linktype, frames_, ignore, detect)


@st.composite
def fragment_trains(draw) -> list[bytes]:
    """IPv4 fragments of one datagram, with overlapping, huge and out-of-order offsets."""
    ident = draw(U16)
    out = []
    for _ in range(draw(st.integers(1, 12))):
        payload = draw(st.binary(min_size=0, max_size=64))
        off = draw(st.one_of(st.integers(0, 16), st.just(0x1FFF), st.integers(0, 0x1FFF)))
        mf = draw(st.booleans())
        tot = 20 + len(payload)
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, ident, (0x2000 if mf else 0) | off,
                          64, draw(st.sampled_from((6, 17, 1))), 0, b"\x0a\0\0\x01",
                          b"\x0a\0\0\x02")
        out.append(bytes(12) + b"\x08\x00" + hdr + payload)
    return out


@FEW
@given(frags=fragment_trains())
def test_fragment_reassembly_any_offsets(frags):
    """Fragment trains with holes, overlaps and offsets at the 64 KiB limit stay bounded."""
    with bounded():
        run_engine(1, frags, True, False)


# --- the whole read pipeline ------------------------------------------------------------------

def pipeline(path: Path, detect: bool = False, ignore_checksums: bool = False) -> int:
    """`run_packets` (what `sniffer read` runs) on `path`, rows through the Zeek writer, alerts
    through the alert file; returns the rows written. Bad input is fine."""
    cfg = Settings(ignore_checksums=ignore_checksums)
    stats = Stats()
    out = io.StringIO()
    writer = ZeekWriter(out)
    detectors = None
    if detect:
        from sniffer.output.alerts import AlertFile
        detectors = Detectors(cfg, [], stats)
        detectors.file = AlertFile(str(path) + ".alerts", "zeek")
    with bounded():
        try:
            error = run_packets([str(path)], cfg, stats, lambda ev: writer.write(ev.conn),
                                detectors=detectors)
        finally:
            if detectors is not None:
                detectors.close()
        writer.close()
    assert error is None or isinstance(error, SnifferError)
    lines = out.getvalue().split("\n")
    assert lines[-1] == "" and lines[-2].startswith("#close\t")
    fields = next(ln for ln in lines if ln.startswith("#fields\t")).split("\t")[1:]
    rows = [ln for ln in lines[:-1] if not ln.startswith("#")]
    for row in rows:
        assert len(row.split("\t")) == len(fields), row
    return len(rows)


def pcap_of(linktype: int, batch: list[bytes], e: str = "<") -> bytes:
    out = [struct.pack(e + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(batch):
        out.append(struct.pack(e + "IIII", 1000 + i // 3, (i * 137_000) % 1_000_000,
                               len(frame), len(frame)) + frame)
    return b"".join(out)


@FEW
@given(batch=frame_batches(), files=st.integers(1, 2))
def test_read_pipeline_generated_captures(scratch, batch, files):
    """Generated frames written as real pcap files (one, or two merged) through `run_packets`
    with the detectors: no exception, a valid Zeek log."""
    linktype, frames_ = batch
    paths = []
    for k in range(files):
        p = scratch / f"gen{k}.pcap"
        p.write_bytes(pcap_of(linktype, frames_[k::files]))
        paths.append(p)
    if files == 1:
        pipeline(paths[0], detect=True)
        return
    stats = Stats()
    with bounded():
        packets = list(open_capture([str(p) for p in paths], stats))
    assert [p[0] for p in packets] == sorted(p[0] for p in packets)  # one time-ordered stream
