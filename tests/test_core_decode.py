"""Differential test: the compiled core's decode stage against the Python decoder.

The Python decoder (sniffer/decode/, `Decoder(settings, stats).decode`) is the reference. The
core's (core/src/decode/, reached through `sniffer._core.decode_batch` and `_Decoder`, test
hooks: the engine still runs the Python one) must give, frame for frame, the identical result
tuple `(src, dst, proto, ip_len, l4, l4_len, ttl)` or None, the identical `more` packets
(802.11 A-MSDU), and identical counters (every drop reason, the "not drops" ones, the
fragment events), with the header checksums checked and ignored. Inputs: every frame of every
capture of the reference corpus and the bundled demo captures, those frames mutated (bytes
flipped, cut, wire lengths changed), generated frames for every link type (the strategies of
tests/test_properties.py), fragment sequences (out of order, overlapping, duplicated,
inconsistent, cut by the snaplen, timed out, past the datagram and byte bounds), and the
checksum helpers on generated segments.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sharedkit
from sniffer import _core
from sniffer.capture import open_capture
from sniffer.config import Settings
from sniffer.decode import ETHERTYPES, LINKTYPES, Decoder, l4_checksum_ok, ones_sum
from sniffer.decode.links import UNSUPPORTED_ETHERTYPES
from sniffer.errors import BadInputError
from sniffer.stats import Stats
from test_properties import LINKTYPE_CHOICES, frames, ip_packets

ROOT = Path(__file__).resolve().parents[1]
MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
          b"\x0a\x0d\x0d\x0a")
#: the settings fields the decoder reads
FIELDS = ("ignore_checksums", "ignore_checksums_nets", "frag_timeout", "frag_max_datagrams",
          "frag_max_bytes")
CHECKED, IGNORED = Settings(), Settings(ignore_checksums=True)
#: checked, but not for packets from these sources (the IPv4 header checksum only)
SOME_NETS = Settings(ignore_checksums_nets=["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"])

HYP = settings(max_examples=250, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])


def as_dict(cfg: Settings) -> dict:
    d = {f: getattr(cfg, f) for f in FIELDS}
    d["ignore_checksums_nets"] = [str(n) for n in cfg.ignore_checksums_nets]
    return d


def _tuple(pkt) -> tuple | None:
    if pkt is None:
        return None
    src, dst, proto, ip_len, l4, l4_len, ttl = pkt
    return bytes(src), bytes(dst), proto, ip_len, bytes(l4), l4_len, ttl


def python_decode(cfg: Settings, batch: list) -> tuple[list, dict]:
    """The reference: per frame (packet, more), then the counters after flush()."""
    stats = Stats()
    dec = Decoder(cfg, stats)
    out = []
    for ts, linktype, data, wirelen in batch:
        pkt = dec.decode(ts, linktype, data, wirelen)
        more = [_tuple(p) for p in dec.more]
        dec.more.clear()
        out.append((_tuple(pkt), more))
    dec.flush()
    return out, {k: v for k, v in stats.items() if v}


def core_decode(cfg: Settings, batch: list) -> tuple[list, dict]:
    decoded, stats = _core.decode_batch(as_dict(cfg), batch)
    return [(p, list(more)) for p, more in decoded], dict(stats)


def _show(result: tuple) -> str:
    """A result (packet, more) for a failure message: long transport bytes abridged."""
    def one(p):
        if p is None:
            return None
        l4 = p[4]
        return (p[0].hex(), p[1].hex(), *p[2:4],
                l4[:24].hex() + (f"...({len(l4)} bytes)" if len(l4) > 24 else ""), *p[5:])
    pkt, more = result
    return f"{one(pkt)} more={[one(m) for m in more]}"


def same(cfg: Settings, batch: list, what: str = "") -> int:
    """Both decoders over `batch`: identical results, `more` and counters. -> packets."""
    batch = [(float(ts), lt, bytes(data), wl) for ts, lt, data, wl in batch]
    want, want_stats = python_decode(cfg, batch)
    got, got_stats = core_decode(cfg, batch)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            ts, lt, data, wl = batch[i]
            pytest.fail(f"{what} frame {i + 1} (linktype {lt}, {len(data)} bytes, wirelen {wl}, "
                        f"{cfg}):\ncore   {_show(g)}\npython {_show(w)}"
                        f"\nframe: {data[:256].hex()}{'...' if len(data) > 256 else ''}")
    assert got_stats == want_stats, f"{what}: counters differ"
    return sum(p is not None for p, _ in want)


# --- the registries --------------------------------------------------------------------------

def test_same_link_types_and_ethertypes():
    """The core decodes exactly the link types and encapsulations the Python registers."""
    assert _core.DECODE_LINKTYPES == sorted(LINKTYPES)
    assert _core.DECODE_ETHERTYPES == sorted(ETHERTYPES)
    assert sorted(_core.DECODE_UNSUPPORTED_ETHERTYPES) == sorted(UNSUPPORTED_ETHERTYPES)


# --- captures ----------------------------------------------------------------------------------

def _captures() -> list[Path]:
    files = []
    for p in sorted(sharedkit.CORPUS.rglob("*")) + sorted((ROOT / "pcaps").glob("*")):
        if p.is_file():
            with p.open("rb") as f:
                head = f.read(4)
            if head in MAGICS or head[:2] == b"\x1f\x8b":  # pcap, pcapng, gzip
                files.append(p)
    assert len(files) > 100, f"expected the corpus's captures under {sharedkit.CORPUS}"
    return files


CAPTURES = _captures()


def read_frames(path: Path) -> list:
    """The frames `open_capture` yields for `path` (those before a damaged part)."""
    out = []
    try:
        for pkt in open_capture([str(path)], Stats()):
            out.append(tuple(pkt[:4]))
    except BadInputError:
        pass
    return out


@pytest.fixture(scope="module")
def corpus_frames() -> dict[str, list]:
    return {str(p.relative_to(p.parents[1])): read_frames(p) for p in CAPTURES}


def test_every_corpus_frame(corpus_frames):
    """Every frame of every capture, checksums checked, ignored, and ignored for some nets."""
    frames_seen = packets = 0
    for name, batch in corpus_frames.items():
        for cfg in (CHECKED, IGNORED, SOME_NETS):
            packets += same(cfg, batch, name)
        frames_seen += len(batch)
    assert frames_seen > 50_000 and packets > 0


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        if not b:
            break
        kind = rng.random()
        if kind < 0.6:  # a byte anywhere in the headers, biased to the front
            at = min(int(rng.expovariate(1 / 24)), len(b) - 1)
            b[at] = rng.randrange(256)
        elif kind < 0.8:  # cut (snaplen)
            del b[rng.randrange(len(b) + 1):]
        else:  # a plausible value in a length or type field
            at = rng.randrange(len(b))
            b[at:at + 2] = rng.choice((b"\x00\x00", b"\xff\xff", b"\x81\x00", b"\x08\x00",
                                       b"\x86\xdd", b"\x00\x2c", b"\x45\x00", b"\x60\x00"))
    return bytes(b)


def test_mutated_corpus_frames(corpus_frames):
    """The corpus's frames with bytes changed, cut short, and odd wire lengths (seeded)."""
    rng = random.Random(14)
    total = 0
    for name, batch in corpus_frames.items():
        sample = batch if len(batch) <= 300 else rng.sample(batch, 300)
        mutated = []
        for ts, lt, data, wl in sample * 3:
            data = _mutate(rng, data)
            wl = rng.choice((wl, wl, len(data), len(data) + 20, max(0, len(data) - 30)))
            mutated.append((ts + rng.choice((0, 0, 400)), lt, data, wl))
        for cfg in (CHECKED, IGNORED):
            same(cfg, mutated, f"mutated {name}")
        total += len(mutated)
    assert total > 15_000


# --- generated frames --------------------------------------------------------------------------

@st.composite
def frame_batches(draw) -> list:
    out, ts = [], 1000.0
    for _ in range(draw(st.integers(1, 10))):
        linktype = draw(st.sampled_from(LINKTYPE_CHOICES))
        frame = draw(frames(linktype))
        ts += draw(st.sampled_from((0.0, 0.25, 1.0, -0.1, 400.0)))
        wirelen = len(frame) + draw(st.sampled_from((0, 0, 20, -4)))
        out.append((ts, linktype, frame, wirelen))
    return out


@HYP
@given(batch=frame_batches())
def test_generated_frames(batch):
    """Plausible and random frames for every link type (and unknown ones), any settings."""
    for cfg in (CHECKED, IGNORED):
        same(cfg, batch)


@HYP
@given(ip=st.lists(ip_packets(), min_size=1, max_size=4), linktype=st.sampled_from((101, 228, 229, 12)))
def test_generated_raw_ip(ip, linktype):
    """Raw IP packets: IPv4 options, fragment bits, IPv6 extension chains, tunnels inside."""
    batch = [(1000.0 + i, linktype, p, len(p)) for i, p in enumerate(ip)]
    for cfg in (CHECKED, IGNORED):
        same(cfg, batch)


# --- encapsulations ------------------------------------------------------------------------------

TYPES = st.sampled_from((0x0806, 0x894F, 0x22F3, 1501, 1535, 0x88CC, 0x8100, 0x0800, 0x86DD))


@st.composite
def wrapped(draw, et: int, payload: bytes) -> tuple[int, bytes]:
    """One encapsulation around (`et`, `payload`): -> (its own type, its bytes)."""
    kind = draw(st.sampled_from(("vlan", "vlan", "mpls", "pppoe", "pbb", "vntag", "fabricpath",
                                 "snap", "llc", "other")))
    tag = draw(st.binary(min_size=2, max_size=2))
    if kind == "vlan":
        return draw(st.sampled_from((0x8100, 0x88A8, 0x9100))), tag + struct.pack("!H", et) + payload
    if kind == "mpls":
        labels = [draw(st.binary(min_size=4, max_size=4)) for _ in range(draw(st.integers(1, 3)))]
        labels = [bytes([l[0], l[1], l[2] & 0xFE, l[3]]) for l in labels]
        last = labels[-1]
        labels[-1] = bytes([last[0], last[1], last[2] | 1, last[3]])
        return draw(st.sampled_from((0x8847, 0x8848))), b"".join(labels) + payload
    if kind == "pppoe":
        proto = draw(st.sampled_from((b"\x00\x21" if et == 0x0800 else b"\x00\x57", b"\x21",
                                      b"\x00\x57", b"\xc0\x21", b"\x02\x81")))
        return 0x8864, b"\x11\x00" + tag + struct.pack("!H", len(payload) + 2) + proto + payload
    if kind == "pbb":
        return 0x88E7, tag * 2 + bytes(12) + struct.pack("!H", et) + payload
    if kind == "vntag":
        return 0x8926, tag * 2 + struct.pack("!H", et) + payload
    if kind == "fabricpath":
        return 0x8903, tag + bytes(12) + struct.pack("!H", et) + payload
    if kind == "snap":
        body = draw(st.sampled_from((b"\xaa\xaa\x03\x00\x00\x00", b"\xaa\xaa\x01\x00\x00\x00\x00",
                                     b"\xaa\xaa\x03\x00\x00\x01"))) + struct.pack("!H", et) + payload
        return draw(st.one_of(st.just(len(body)), st.integers(0, 1500))), body
    if kind == "llc":
        body = draw(st.sampled_from((b"\xff\xff", b"\x42\x42\x03", b"\x42\x42\x00\x00", b"\x42")))
        return draw(st.one_of(st.just(len(body)), st.integers(0, 1500))), body + payload
    return draw(TYPES), payload


@st.composite
def encapsulated_frames(draw) -> tuple[int, bytes]:
    """IP inside a stack of encapsulations (VLAN, QinQ, MPLS, PPPoE, PBB, VN-Tag, FabricPath,
    802.3 LLC/SNAP, unknown types; sometimes more than the 16 the decoder follows), behind
    Ethernet, SLL, SLL2, Cisco HDLC or PPP, maybe cut."""
    ip = draw(ip_packets())
    et, body = (0x0800 if ip[0] >> 4 == 4 else 0x86DD), ip
    depth = draw(st.one_of(st.integers(0, 4), st.just(17)))
    for _ in range(depth):
        et, body = draw(wrapped(et, body)) if depth < 17 else (0x8100, b"\0\0" + struct.pack("!H", et) + body)
    linktype = draw(st.sampled_from((1, 1, 1, 113, 276, 104, 9)))
    if linktype == 1:
        frame = bytes(12) + struct.pack("!H", et) + body
    elif linktype == 113:
        frame = bytes(14) + struct.pack("!H", et) + body
    elif linktype == 276:
        frame = struct.pack("!H", et) + bytes(18) + body
    elif linktype == 104:
        frame = b"\x0f\x00" + struct.pack("!H", et) + body
    else:
        frame = draw(st.sampled_from((b"\xff\x03", b""))) + draw(st.sampled_from(
            (b"\x00\x21", b"\x00\x57", b"\x02\x81", b"\x21", b"\x80\x21"))) + body
    if draw(st.integers(0, 3)) == 0:
        frame = frame[:draw(st.integers(0, len(frame)))]
    return linktype, frame


@st.composite
def nflog_frames(draw) -> bytes:
    """NFLOG: TLVs in either byte order, the payload TLV somewhere or missing, lengths lying."""
    e = draw(st.sampled_from("<>"))
    ip = draw(ip_packets())
    out = bytes([draw(st.sampled_from((2, 10, 7))), draw(st.sampled_from((0, 0, 1))), 0, 0])
    for _ in range(draw(st.integers(0, 3))):
        value = draw(st.binary(max_size=12))
        length = draw(st.one_of(st.just(4 + len(value)), st.integers(0, 7)))
        out += struct.pack(e + "HH", length, draw(st.sampled_from((1, 2, 10)))) + value \
            + bytes(-len(value) % 4)
    if draw(st.integers(0, 4)):
        out += struct.pack(e + "HH", 4 + len(ip), 9) + ip
    return out


@HYP
@given(frame_list=st.lists(encapsulated_frames(), min_size=1, max_size=6))
def test_encapsulations(frame_list):
    """Every ethertype-registered shim, nested, truncated, and the encapsulation depth guard."""
    batch = [(1.0 + i, lt, f, len(f)) for i, (lt, f) in enumerate(frame_list)]
    for cfg in (CHECKED, IGNORED):
        same(cfg, batch)


@HYP
@given(frame_list=st.lists(nflog_frames(), min_size=1, max_size=4))
def test_nflog(frame_list):
    batch = [(1.0 + i, 239, f, len(f)) for i, f in enumerate(frame_list)]
    for cfg in (CHECKED, IGNORED):
        same(cfg, batch)


# --- 802.11 A-MSDU -----------------------------------------------------------------------------

SNAP = b"\xaa\xaa\x03\x00\x00\x00"


@st.composite
def amsdu_frames(draw) -> bytes:
    """An 802.11 QoS data frame with the A-MSDU bit: IP and non-IP subframes, lengths lying."""
    flags = draw(st.sampled_from((0x01, 0x02, 0x03, 0x41)))
    head = bytes([0x88, flags]) + bytes(22) + (bytes(6) if flags & 3 == 3 else b"")
    body = b""
    for _ in range(draw(st.integers(1, 5))):
        ip = draw(ip_packets())
        et = draw(st.sampled_from((0x0800 if ip[0] >> 4 == 4 else 0x86DD, 0x0806)))
        sub = SNAP + struct.pack("!H", et) + ip
        if draw(st.integers(0, 5)) == 0:
            sub = draw(st.binary(max_size=12))
        length = draw(st.sampled_from((len(sub),) * 5 + (0, 7, len(sub) + 1, 0xFFFF)))
        body += bytes(12) + struct.pack("!H", length) + sub + bytes(-(14 + len(sub)) % 4)
    frame = head + bytes([draw(st.sampled_from((0x80, 0x00))), 0]) + body
    if draw(st.integers(0, 3)) == 0:
        frame = frame[:draw(st.integers(0, len(frame)))]
    return frame


@HYP
@given(frame_list=st.lists(amsdu_frames(), min_size=1, max_size=4), radiotap=st.booleans())
def test_amsdu(frame_list, radiotap):
    """Several packets in one frame: the first, then `more` in order, anomalies counted."""
    batch = []
    for i, f in enumerate(frame_list):
        if radiotap:
            f = b"\x00\x00\x08\x00" + bytes(4) + f
        batch.append((1.0 + i, 127 if radiotap else 105, f, len(f) + i % 2 * 10))
    for cfg in (CHECKED, IGNORED):
        same(cfg, batch)


# --- every cut and every byte of one frame per link layer ----------------------------------------

def _ip_seeds() -> tuple[bytes, bytes]:
    udp = struct.pack("!HHHH", 1000, 53, 12, 0) + b"abcd"
    return (_v4(A4[0], A4[1], 1, 0, False, 17, udp),
            struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, 64, A6[0], A6[1]) + udp)


def _seed_frames() -> list[tuple[int, bytes]]:
    ip4, ip6 = _ip_seeds()
    snap = SNAP + b"\x08\x00" + ip4
    dot11 = b"\x08\x01" + bytes(22) + snap
    sub = [SNAP + b"\x08\x00" + ip4, SNAP + b"\x86\xdd" + ip6, SNAP + b"\x08\x06" + ip4]
    amsdu = b"\x88\x01" + bytes(22) + b"\x80\x00" + b"".join(
        bytes(12) + struct.pack("!H", len(s)) + s + bytes(-(14 + len(s)) % 4) for s in sub + sub)
    eth = lambda et, body: bytes(12) + struct.pack("!H", et) + body  # noqa: E731
    return [
        (1, eth(0x0800, ip4)), (1, eth(0x86DD, ip6)),
        (1, eth(0x8100, b"\x00\x01\x88\xa8\x00\x02\x08\x00" + ip4)),
        (1, eth(len(snap), snap)), (1, eth(0x8100, b"\x00\x01" + struct.pack("!H", len(snap)) + snap)),
        # the Python tests the two bytes before the 802.3 length for a tag (the TCI here)
        (1, eth(0x8100, b"\x81\x00" + struct.pack("!H", len(snap)) + snap)),
        (1, eth(3, b"\x42\x42\x03" + ip4)), (1, eth(1510, ip4)),
        (1, eth(0x8100, b"\x00\x01\x05\xe6" + ip4)),
        (1, eth(0x8926, b"\x00\x00\x00\x00\x81\x00\x00\x01\x08\x00" + ip4)),
        (1, eth(0x88E7, bytes(4) + eth(0x8903, bytes(2) + eth(0x0800, ip4)))),
        (1, eth(0x8903, bytes(2) + eth(0x86DD, ip6))),
        (1, eth(0x8847, b"\x00\x01\x00\x40\x00\x02\x01\x40" + ip6)),
        (1, eth(0x8864, b"\x11\x00\x00\x01\x00\x1e\x00\x57" + ip6)),
        (1, eth(0x22F3, ip4)), (1, eth(0x894F, ip4)),
        (113, bytes(14) + b"\x08\x00" + ip4), (276, b"\x86\xdd" + bytes(18) + ip6),
        (0, b"\x1e\x00\x00\x00" + ip6), (108, b"\x00\x00\x00\x02" + ip4),
        (101, ip6), (228, ip4), (229, ip6), (12, ip4), (14, ip6),
        (9, b"\xff\x03\x00\x21" + ip4), (9, b"\x02\x81\x00\x00\x01\x40" + ip4),
        (50, b"\xff\x03\x00\x57" + ip6), (50, b"\x0f\x00\x08\x00" + ip4),
        (104, b"\x8f\x00\x86\xdd" + ip6), (10, bytes(21) + ip4),
        (105, dot11), (127, b"\x00\x00\x08\x00" + bytes(4) + dot11), (105, amsdu),
        (127, b"\x00\x00\x08\x00" + bytes(4) + amsdu),
        (239, b"\x02\x00\x00\x00" + struct.pack("<HH", 8, 1) + bytes(4)
         + struct.pack("<HH", 4 + len(ip4), 9) + ip4),
        (239, b"\x0a\x00\x00\x00" + struct.pack(">HH", 5, 1) + bytes(4)
         + struct.pack(">HH", 4 + len(ip6), 9) + ip6),
    ]


def test_every_cut_and_byte_of_each_link_layer():
    """One valid frame per link layer and shim: as is, cut at every length, and with each
    byte set to 0x00, 0xFF and flipped: identical (this reaches every named anomaly)."""
    batch, ts = [], 1000.0
    for linktype, frame in _seed_frames():
        variants = [frame] + [frame[:n] for n in range(len(frame))]
        for i in range(len(frame)):
            for v in (0x00, 0xFF, frame[i] ^ 0x55):
                variants.append(frame[:i] + bytes([v]) + frame[i + 1:])
        for f in variants:
            ts += 0.01
            batch.append((ts, linktype, f, len(frame)))
    assert len(batch) > 10_000
    for cfg in (CHECKED, IGNORED):
        assert same(cfg, batch, "cuts and bytes") > 1000


# --- fragments -----------------------------------------------------------------------------------

def _v4(src: bytes, dst: bytes, ident: int, off8: int, mf: bool, proto: int, data: bytes,
        good: bool = True) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident,
                      (0x2000 if mf else 0) | (off8 & 0x1FFF), 64, proto, 0, src, dst)
    c = (0xFFFF - ones_sum(hdr)) & 0xFFFF if good else 0x1234
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + data


def _v6(src: bytes, dst: bytes, ident: int, off8: int, mf: bool, nh: int, data: bytes,
        hop: bool, route: bool) -> bytes:
    ext, first = b"", 44
    frag = struct.pack("!BBHI", nh, 0, ((off8 << 3) & 0xFFF8) | int(mf), ident)
    if route:  # type 0 routing header with one segment left: its address is the final dst
        ext = struct.pack("!BBBB4x", 44, 2, 0, 1) + bytes(15) + b"\x09"
        first = 43
    if hop:
        ext = struct.pack("!BB6x", first, 0) + ext
        first = 0
    payload = ext + frag + data
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), first, 64, src, dst) + payload


A4 = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", b"\xc0\xa8\x01\x07")
A6 = (b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01", b"\xfe\x80" + bytes(13) + b"\x02")


@st.composite
def fragment_runs(draw) -> tuple[Settings, list]:
    """Datagrams cut into fragments, then reordered, overlapped, duplicated, altered, cut by
    the snaplen, spread in time past the timeout, under small bounds."""
    cfg = Settings(frag_timeout=draw(st.sampled_from((0.0, 1.0, 5.0, 300.0))),
                   frag_max_datagrams=draw(st.sampled_from((1, 2, 3, 16384))),
                   frag_max_bytes=draw(st.sampled_from((0, 65536, 100_000, 64 << 20))),
                   ignore_checksums=draw(st.booleans()))
    pieces = []
    for d in range(draw(st.integers(1, 4))):
        v6 = draw(st.booleans())
        size = draw(st.one_of(st.integers(0, 3000), st.sampled_from((30000, 40000, 65000, 65600))))
        seed = draw(st.integers(1, 255))
        inner = bytes((i * seed + d) & 0xFF for i in range(size))
        nh = draw(st.sampled_from((17, 17, 6, 44, 59, 0)))
        if nh == 44 and v6:  # a fragment header inside the reassembled data
            inner = struct.pack("!BBHI", 17, 0, draw(st.sampled_from((0, 8, 1))), 7) + inner
        step = 8 * draw(st.integers(1, 200))
        cuts = list(range(0, max(len(inner), 1), step))
        ident = draw(st.sampled_from((1, 2, 0x10001)))
        src, dst = (draw(st.sampled_from(A6)), A6[1]) if v6 else (draw(st.sampled_from(A4)), A4[1])
        hop, route = draw(st.booleans()), draw(st.booleans())
        good = draw(st.integers(0, 9)) != 0
        for at in cuts:
            data = inner[at:at + step]
            mf = at + step < len(inner)
            kind = draw(st.sampled_from(("plain",) * 6 + ("overlap", "alter", "dup", "drop",
                                                         "lastmf", "cut")))
            if kind == "drop":
                continue
            off = at
            if kind == "overlap" and off >= 8:
                off -= 8
                data = inner[off:at + step]
            if kind == "alter" and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            if kind == "lastmf":
                mf = True
            if v6:
                pkt = _v6(src, dst, ident & 0xFFFFFFFF, off >> 3, mf, nh, data, hop, route)
            else:
                pkt = _v4(src, dst, ident & 0xFFFF, off >> 3, mf, nh, data, good)
            frame = bytes(12) + (b"\x86\xdd" if v6 else b"\x08\x00") + pkt
            wirelen = len(frame)
            if kind == "cut":
                frame = frame[:draw(st.integers(14, len(frame)))]
            pieces.append((frame, wirelen))
            if kind == "dup":
                pieces.append((frame, wirelen))
    order = draw(st.permutations(range(len(pieces))))
    ts, batch = 1000.0, []
    for i in order:
        ts += draw(st.sampled_from((0.0, 0.0, 0.5, 2.0, 6.0)))
        frame, wirelen = pieces[i]
        batch.append((ts, 1, frame, wirelen))
    return cfg, batch


@settings(HYP, max_examples=300)
@given(run=fragment_runs())
def test_fragment_sequences(run):
    """Reassembly, its counters and its bounds: identical, event for event."""
    cfg, batch = run
    same(cfg, batch, "fragments")


def test_fragment_bounds_reach_the_core():
    """Settings' bounds as the Python applies them (minimums included)."""
    for cfg, want in ((Settings(), (16384, 64 << 20)),
                      (Settings(frag_max_datagrams=0, frag_max_bytes=5), (1, 65536)),
                      (Settings(frag_max_datagrams=7, frag_max_bytes=5 << 20), (7, 5 << 20))):
        py = Decoder(cfg, Stats()).frag
        assert (py.max_datagrams, py.max_bytes) == want
        assert _core._Decoder(as_dict(cfg)).frag_state()[2:] == want


def test_first_fragments_fill_and_evict():
    """tests/test_frag_limits.py's case: 40 first fragments of 30000 bytes, caps hit."""
    frames = [(1000 + i * 0.01, 1, bytes(12) + b"\x08\x00"
               + _v4(A4[0], A4[1], i, 0, True, 17, bytes(30008)), 30056) for i in range(40)]
    for cfg in (Settings(), Settings(frag_max_datagrams=5), Settings(frag_max_bytes=1 << 20)):
        same(cfg, frames, "first fragments")
        dec = _core._Decoder(as_dict(cfg))
        dec.decode_batch(frames)
        pending, held, _, _ = dec.frag_state()
        py = Decoder(cfg, Stats())
        for f in frames:
            py.decode(*f)
        assert (pending, held) == (len(py.frag), py.frag.buffered_bytes)


# --- checksums -----------------------------------------------------------------------------------

@settings(HYP, max_examples=500)
@given(v6=st.booleans(), proto=st.sampled_from((1, 6, 17, 58, 0)), data=st.binary(max_size=80),
       cut=st.integers(-3, 3), fix=st.booleans(), zero=st.booleans())
def test_l4_checksums(v6, proto, data, cut, fix, zero):
    """l4_checksum_ok and ones_sum: the same verdict on right, wrong, zero and cut segments."""
    src, dst = (A6[0], A6[1]) if v6 else (A4[0], A4[1])
    if zero:
        src = dst = bytes(len(src))
        data = bytes(len(data))
    l4_len = max(0, len(data) + cut)
    if fix and len(data) >= 8:  # put the right checksum at offset 6 (UDP's; any field does)
        body = data[:6] + b"\0\0" + data[8:]
        total = ones_sum(src + dst + struct.pack("!HI", proto, l4_len) + body[:l4_len])
        data = body[:6] + struct.pack("!H", (0xFFFF - total) & 0xFFFF) + body[8:]
    assert _core.l4_checksum_ok(src, dst, proto, data, l4_len) == l4_checksum_ok(
        src, dst, proto, data, l4_len)
    assert _core.ones_sum(data) == ones_sum(data)
