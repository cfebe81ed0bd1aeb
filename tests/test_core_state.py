"""The compiled engine's state handed from one engine to another mid-input (issue 14: the
open connections and the clock at the end of one input are something another engine can take
over; issue 17 reads rotated files on a cluster).

Engine A is fed frames 1..k and exports its state; engine B imports it, is fed k+1..n and
finishes. The events of A and then B must be exactly those of one engine fed 1..n: every
record with the frame and firing that order it, every weird, and the stats. Inputs: every
capture of the shared corpus and bundled pcaps, cut at several points (among them right after
a fragment that leaves its datagram pending, and right after a TCP SYN), and generated traffic
(tests/corediff.py) cut anywhere, also with a table small enough to evict. Then: bytes that are
not a state are refused with a clear error, and the state of open TCP connections stays within
the issue's budget of about 300 bytes each.
"""

from __future__ import annotations

import random
import struct
from dataclasses import astuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corediff
from sniffer.config import Settings
from sniffer.engine import CoreEngine, Finished
from sniffer.stats import LoggedStats
from test_core_engine import CAPTURES, _settings

Frame = tuple[float, int, bytes, int]


def run_split(frames: list[Frame], cfg: Settings, cuts=(), shard=None) -> tuple[list, list, dict]:
    """(records, weirds, stats) of a chain of engines over `frames`, each handing its state to
    the next after the frames before each cut (no cuts: one engine)."""
    eng = CoreEngine(cfg, LoggedStats(), weirds=True, shard=shard)
    out: list = []
    prev = 0
    for k in cuts:
        eng.feed(frames[prev:k])
        data = eng.export_state()
        out += eng.take()
        eng = CoreEngine.from_state(cfg, LoggedStats(), data, weirds=True, shard=shard)
        prev = k
    eng.feed(frames[prev:])
    eng.finish()
    out += eng.take()
    recs = [(astuple(e.conn), e.frame, e.firing) for e in out if type(e) is Finished]
    wrd = [astuple(e) for e in out if type(e) is not Finished]
    return recs, wrd, {k: v for k, v in eng.stats.items() if v}


def assert_same_split(frames: list[Frame], cfg: Settings, cuts, what: str, shard=None) -> None:
    whole = run_split(frames, cfg, shard=shard)
    split = run_split(frames, cfg, cuts, shard=shard)
    problems = corediff.differences(whole, split)
    assert not problems, f"{what}, cut at {list(cuts)} of {len(frames)}:\n" + "\n".join(
        p.replace("python", "one   ").replace("core  ", "split ") for p in problems)


def probe(frames: list[Frame], cfg: Settings) -> tuple[int, dict]:
    """What the state after `frames` holds: (open connections, the stats of an engine that
    imports it and finishes at once: fragment_incomplete counts pending datagrams)."""
    eng = CoreEngine(cfg, LoggedStats())
    eng.feed(frames)
    b = CoreEngine.from_state(cfg, LoggedStats(), eng.export_state())
    n = b.core.open_count
    b.finish()
    return n, dict(b.stats)


# --- cut points --------------------------------------------------------------------------
def _ip_at(linktype: int, data: bytes) -> int | None:
    """Where the IP header starts in a frame (Ethernet with VLANs, raw IP), or None."""
    if linktype == 1:
        off = 12
        while data[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
            off += 4
        return off + 2 if data[off:off + 2] in (b"\x08\x00", b"\x86\xdd") else None
    return 0 if linktype in (12, 14, 101, 228, 229) else None


def _kind(frame: Frame) -> str | None:
    """"frag": an IP fragment with more to come; "syn": a TCP SYN without ACK; else None."""
    _, linktype, data, _ = frame
    at = _ip_at(linktype, data)
    if at is None or len(data) < at + 40:
        return None
    v = data[at] >> 4
    if v == 4:
        ihl = (data[at] & 15) * 4
        if data[at + 6] & 0x20:
            return "frag"
        l4, proto = at + ihl, data[at + 9]
    elif v == 6:
        proto, l4 = data[at + 6], at + 40
        if proto == 44 and len(data) >= l4 + 8 and data[l4 + 3] & 1:
            return "frag"
    else:
        return None
    if proto == 6 and len(data) > l4 + 13 and data[l4 + 13] & 0x12 == 0x02:
        return "syn"
    return None


def cuts_for(frames: list[Frame]) -> list[int]:
    """Even cuts, and right after the first pending fragment and the first SYN."""
    n = len(frames)
    cuts = {1, n // 4, n // 2, 3 * n // 4, n - 1}
    found: dict[str, int] = {}
    for i, f in enumerate(frames[:20000]):
        k = _kind(f)
        if k and k not in found and i + 1 < n:
            found[k] = i + 1
    cuts |= set(found.values())
    return sorted(c for c in cuts if 0 < c < n)


def read_frames(path) -> list[Frame]:
    """A capture's frames, as far as it reads (a damaged file ends early)."""
    from sniffer.capture import open_capture
    from sniffer.errors import BadInputError

    frames = []
    try:
        for ts, linktype, data, wirelen in open_capture([str(path)], LoggedStats()):
            frames.append((ts, linktype, bytes(data), wirelen))
    except BadInputError:
        pass
    return frames


# --- the corpus --------------------------------------------------------------------------
@pytest.mark.skipif(not CAPTURES, reason="shared corpus missing")
@pytest.mark.parametrize("path,args", CAPTURES, ids=[str(p.relative_to(p.parents[1]))
                                                    for p, _ in CAPTURES])
def test_corpus_capture_split(path, args):
    frames = read_frames(path)
    if len(frames) < 2:
        return  # (nothing to cut: the other tests cover empty and one-frame files)
    assert_same_split(frames, _settings(args), cuts_for(frames), str(path))


@pytest.mark.skipif(not CAPTURES, reason="shared corpus missing")
def test_corpus_small_table_split():
    """Cuts after evictions: the corpus's busiest captures in a table of 16 connections."""
    cfg = Settings(max_flows=16)
    evicted = 0
    for path, _ in CAPTURES:
        if "big" not in path.parts and "syn" not in path.name:
            continue
        frames = read_frames(path)
        cuts = cuts_for(frames)
        assert_same_split(frames, cfg, cuts, str(path))
        evicted += probe(frames[:cuts[len(cuts) // 2]], cfg)[1].get("flows_evicted", 0)
    assert evicted > 0


@pytest.mark.skipif(not CAPTURES, reason="shared corpus missing")
def test_corpus_shard_split():
    """`read --workers 2`'s shards (the link-type captures: the owner function decodes the
    rarer link layers with a decoder of its own, fragments included)."""
    for path, args in CAPTURES:
        if "linktypes" not in path.parts:
            continue
        frames = read_frames(path)
        if len(frames) >= 2:
            for me in (0, 1):
                assert_same_split(frames, _settings(args), cuts_for(frames), f"{path} shard {me}",
                                  shard=(2, me))


# --- generated traffic -------------------------------------------------------------------
SEQUENCES = settings(max_examples=120, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@SEQUENCES
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 400),
       max_flows=st.sampled_from((100_000, 0, 16)), ignore=st.booleans(),
       cuts=st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_generated_traffic_split(seed, n, max_flows, ignore, cuts):
    cfg = Settings(max_flows=max_flows, ignore_checksums=ignore)
    frames = corediff.traffic(random.Random(seed), n)
    at = sorted({min(len(frames) - 1, max(1, int(c * len(frames)))) for c in cuts})
    assert_same_split(frames, cfg, at, f"seed {seed}")


# --- hand-made cases ---------------------------------------------------------------------
A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
RNG = random.Random(14)


def tcp(ts: float, src: bytes, dst: bytes, sp: int, dp: int, seq: int, ack: int, flags: int,
        payload: bytes = b"") -> Frame:
    seg = bytearray(struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 0x50, flags, 65535, 0, 0)
                    + payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg)) if len(src) == 4 else \
        src + dst + struct.pack("!IxxxB", len(seg), 6)
    struct.pack_into("!H", seg, 16, corediff._csum(pseudo + bytes(seg)))
    ip = corediff._ip(src, dst, 6, bytes(seg), RNG)
    return ts, 101, ip, len(ip)


def conversation(t: float, src: bytes, dst: bytes, sp: int, dp: int = 80) -> list[Frame]:
    """A full TCP exchange: handshake, data both ways, FINs."""
    c, s = 1000, 5000
    return [tcp(t, src, dst, sp, dp, c, 0, 0x02), tcp(t + .01, dst, src, dp, sp, s, c + 1, 0x12),
            tcp(t + .02, src, dst, sp, dp, c + 1, s + 1, 0x10),
            tcp(t + .03, src, dst, sp, dp, c + 1, s + 1, 0x18, b"GET / HTTP/1.0\r\n\r\n"),
            tcp(t + .04, dst, src, dp, sp, s + 1, c + 19, 0x18, b"HTTP/1.0 200 OK\r\n\r\n"),
            tcp(t + .05, src, dst, sp, dp, c + 19, s + 20, 0x11),
            tcp(t + .06, dst, src, dp, sp, s + 20, c + 20, 0x11),
            tcp(t + .07, src, dst, sp, dp, c + 20, s + 21, 0x10)]


def fragmented_udp(t: float) -> list[Frame]:
    payload = bytes(range(256)) * 4
    seg = bytearray(struct.pack("!HHHH", 5000, 53, 8 + len(payload), 0) + payload)
    corediff._l4(A, B, 17, seg, 6, random.Random(0))
    ip = corediff._ip(A, B, 17, bytes(seg), RNG)
    parts = corediff._fragments(ip, random.Random(1))
    return [(t + i * .001, 101, p, len(p)) for i, p in enumerate(parts)]


def test_cut_inside_a_fragment_train():
    frames = conversation(1.0, A, B, 40000)[:3] + fragmented_udp(1.5) \
        + conversation(2.0, A, B, 40001)
    cut = 4  # after the train's first fragment
    assert probe(frames[:cut], Settings())[1].get("fragment_incomplete") == 1
    assert run_split(frames, Settings())[2].get("fragments_reassembled") == 1
    assert_same_split(frames, Settings(), [cut], "fragment train")


def test_cut_mid_handshake_and_with_timers_pending():
    """Cut after the SYN and after the SYN-ACK; then B's only frame comes 400 s later and
    the timers A set fire in B."""
    conv = conversation(1.0, A, B, 40000)
    frames = conv[:2] + conversation(1.5, A, B, 40001) + conv[2:4] \
        + [tcp(401.0, A, B, 40002, 443, 7, 0, 0x02)]
    for cuts in ([1], [2], [1, 2], [len(frames) - 1]):
        assert_same_split(frames, Settings(), cuts, "handshake")
    open_, _ = probe(frames[:1], Settings())
    assert open_ == 1
    recs = run_split(frames, Settings(), [len(frames) - 1])[0]
    fired = [r for r in recs if isinstance(r[2], tuple) and r[2][0] != "flush"]
    assert fired, "no record ended by a timer after the cut"


def test_chain_of_many_engines():
    """Every frame in an engine of its own: each hands over to the next."""
    frames = corediff.traffic(random.Random(17), 120)
    assert_same_split(frames, Settings(max_flows=16), range(1, len(frames)), "chain")


# --- errors --------------------------------------------------------------------------------
def test_bytes_that_are_not_a_state_are_refused():
    from sniffer import _core

    eng = CoreEngine(Settings(), LoggedStats())
    eng.feed(conversation(1.0, A, B, 40000)[:3] + fragmented_udp(1.5)[:1])
    good = eng.export_state()
    assert good[:4] == b"SNFS"
    rng = random.Random(5)
    bad = [b"", b"garbage", good[:4], good[:5], good[:-1], good + b"\0",
           b"SNFS\x63" + good[5:], bytes(rng.randrange(256) for _ in range(200)),
           b"SNFS\x01" + bytes(rng.randrange(256) for _ in range(200))]
    for i in range(200):  # one byte changed anywhere (a refusal, or a state: never a crash)
        b = bytearray(good)
        b[rng.randrange(4, len(b))] ^= 1 << rng.randrange(8)
        try:
            CoreEngine.from_state(Settings(), LoggedStats(), bytes(b)).finish()
        except ValueError as e:
            assert str(e)
    for b in bad:
        with pytest.raises(ValueError, match="engine state"):
            CoreEngine.from_state(Settings(), LoggedStats(), b)
    with pytest.raises(ValueError, match="shard"):
        _core.Engine.import_state(Settings(), good, shard=(2, 0))


# --- size --------------------------------------------------------------------------------
def test_state_of_open_tcp_connections_is_compact():
    """The issue's budget: about 300 bytes per open TCP connection (here established ones
    that exchanged data, each with its timers)."""
    n = 5000
    frames = []
    for i in range(n):
        src = bytes([10, 1, i >> 8, i & 255])
        frames += conversation(1.0 + i * 1e-3, src, B, 1024 + i % 60000)[:5]
    frames.sort(key=lambda f: f[0])
    eng = CoreEngine(Settings(), LoggedStats())
    base = len(eng.export_state())
    eng.feed(frames)
    assert eng.core.open_count == n
    per_conn = (len(eng.export_state()) - base) / n
    print(f"state per open TCP connection: {per_conn:.1f} bytes")
    assert per_conn <= 300
