"""Differential test: the compiled core's pcapng block walk against the Python reader.

The Python reader (sniffer/capture/pcapng.py, `read_pcapng`) is the reference. On every pcapng
of the reference corpus, the bundled demo, recordings like `sniffer live -w` makes (custom
records among the packets, directions), hand-made files of the rare block kinds (SPB, obsolete
PB, unknown and foreign custom blocks, both byte orders, timestamp resolutions and offsets,
D-Bus blocks longer than the read window) and damaged variants of them all (tests/mutants.py,
every cut of a recording), the product path (`read_file`, which walks plain pcapng files with
the core) must give identical frames (time to the bit, link type, bytes, wire length, direction),
the same custom records at the same places among the frames, the identical error (offset and
message) after the same frames, and identical stats counted at the same packets. Small read
windows (blocks straddling windows, blocks longer than a window) are held to it too.
"""

from __future__ import annotations

import gzip
import json
import random
import struct
from pathlib import Path

import pytest

import mutants
import sharedkit
from sniffer.capture import read_file
from sniffer.capture.corepcap import _core
from sniffer.capture.corepcapng import read_pcapng_path
from sniffer.capture.pcapng import SNIFFER_PENS, read_pcapng
from sniffer.capture.source import open_source
from sniffer.errors import BadInputError
from sniffer.interrupt import STOP, Interrupted
from sniffer.output.pcapng import PcapngWriter
from sniffer.stats import LoggedStats
from test_recording import record, scenario

ROOT = Path(__file__).resolve().parents[1]
SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
#: read windows for the core: tiny (every block straddles), odd
WINDOWS = (64, 4096 + 7)


def _corpus_pcapngs() -> list[Path]:
    files = [p for p in sorted(sharedkit.CORPUS.rglob("*"))
             if p.is_file() and p.open("rb").read(4) == SHB_MAGIC]
    assert len(files) >= 10, f"expected the corpus's pcapng files under {sharedkit.CORPUS}"
    return files


CORPUS = _corpus_pcapngs()
BUNDLED = sorted((ROOT / "pcaps").glob("*.pcapng"))


def _run(packets, stats: LoggedStats, log: list, events: list) -> dict:
    """Run one reader to its end: frames and custom records in delivery order, the error,
    the stats and the notes logged (with the time of the packet read last)."""
    error = None
    try:
        for p in packets:
            stats.ts = p[0]  # as read.py keeps it
            events.append(("pkt", p[0].hex(), p[1], bytes(p[2]), *p[3:]))
    except BadInputError as e:
        error = (e.offset, e.reason)
    return {"events": events, "error": error, "stats": dict(stats), "log": log}


def _outcome(reader, path: Path, customs: bool, directions: bool) -> dict:
    log: list = []
    events: list = []
    stats = LoggedStats(lambda key, ts: log.append((key, ts.hex())))
    on_custom = (lambda ts, rec: events.append(("custom", ts.hex(), json.dumps(rec)))) \
        if customs else None
    return _run(reader(path, stats, on_custom, directions), stats, log, events)


def _reference(path, stats, on_custom, directions):
    yield from read_pcapng(open_source(str(path), stats), stats, on_custom, directions)


def _product(path, stats, on_custom, directions):
    return read_file(str(path), stats, on_custom, directions)


def _windowed(window: int):
    def reader(path, stats, on_custom, directions):
        return read_pcapng_path(str(path), stats, None, on_custom, directions, window=window)
    return reader


def assert_same(path: Path, windows=WINDOWS) -> dict:
    """The product path (and the core at small windows) agree with the reference on `path`,
    with and without custom records and directions."""
    assert path.read_bytes()[:4] == SHB_MAGIC, path  # what read_file hands to either reader
    first = None
    for customs, directions in ((True, True), (False, False), (True, False), (False, True)):
        ref = _outcome(_reference, path, customs, directions)
        first = first or ref
        got = _outcome(_product, path, customs, directions)
        assert got["error"] == ref["error"], (path, customs, directions)
        assert got["events"] == ref["events"], (path, customs, directions)
        assert got["stats"] == ref["stats"], (path, customs, directions)
        assert got["log"] == ref["log"], (path, customs, directions)
        if customs and directions:
            for window in windows:
                raw = _outcome(_windowed(window), path, customs, directions)
                assert raw == ref, (path, window)
    return first


@pytest.mark.parametrize("path", CORPUS + BUNDLED,
                         ids=[p.name if p in BUNDLED else str(p.relative_to(sharedkit.CORPUS))
                              for p in CORPUS + BUNDLED])
def test_pcapng_identical(path: Path) -> None:
    ref = assert_same(path)
    assert ref["events"] or ref["error"]


def test_gzipped_corpus_pcapng_identical(tmp_path: Path) -> None:
    """The core reads no gzip (read_file falls back to the reference for it): the corpus's
    gzip pcapngs, unpacked, compare like the others; the gzip files themselves still read."""
    for p in sorted(sharedkit.CORPUS.rglob("*")):
        if p.is_file() and p.open("rb").read(2) == b"\x1f\x8b":
            raw = gzip.decompress(p.read_bytes())
            if raw[:4] == SHB_MAGIC:
                out = tmp_path / (p.name + ".pcapng")
                out.write_bytes(raw)
                assert_same(out)


def test_mutants_identical(tmp_path: Path) -> None:
    """The mutation sweep's operators on every pcapng (40 mutants each), seeded."""
    n = 0
    inputs = [p for p in CORPUS + BUNDLED if p.stat().st_size <= 100_000]
    inputs.append(_recording(tmp_path / "rec.pcapng"))
    for p in inputs:
        cap = mutants.Capture.parse(p.read_bytes())
        rng = random.Random(f"core-pcapng:{p.name}:{p.stat().st_size}")
        for _ in range(40):
            _name, data = mutants.mutate(cap, rng)
            out = tmp_path / "mutant.pcapng"
            out.write_bytes(data)
            if data[:4] == SHB_MAGIC:
                assert_same(out, windows=(64,))
            n += 1
    assert n >= 400


def _recording(path: Path) -> Path:
    """A `sniffer live -w` style recording: interfaces, packets with directions, custom
    records before, between and after them."""
    record(scenario(), path)
    return path


def test_recording_identical(tmp_path: Path) -> None:
    ref = assert_same(_recording(tmp_path / "rec.pcapng"))
    kinds = [e[0] for e in ref["events"]]
    assert "custom" in kinds and "pkt" in kinds and kinds[-1] == "custom"
    assert any(e[-1] is not None for e in ref["events"] if e[0] == "pkt")


def test_every_cut_of_a_recording_identical(tmp_path: Path) -> None:
    raw = _recording(tmp_path / "rec.pcapng").read_bytes()
    out = tmp_path / "cut.pcapng"
    for cut in range(4, len(raw), 3):
        out.write_bytes(raw[:cut])
        assert_same(out, windows=(64,))


# --- hand-made files of the rare kinds ------------------------------------------------------

def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    blen = 12 + len(body)
    return struct.pack(e + "II", btype, blen) + body + struct.pack(e + "I", blen)


def _shb(e: str, major: int = 1) -> bytes:
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, major, 0, -1))


def _idb(e: str, linktype: int, snaplen: int = 0, opts: bytes = b"") -> bytes:
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def _opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _epb(e: str, iface: int, t: int, data: bytes, wirelen: int, opts: bytes = b"") -> bytes:
    body = struct.pack(e + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data), wirelen)
    return _block(e, 6, body + data + b"\0" * (-len(data) % 4) + opts)


def _custom(e: str, pen: int, payload: bytes, btype: int = 0x0BAD) -> bytes:
    return _block(e, btype, struct.pack(e + "I", pen) + payload)


def _rare_kinds(e: str) -> bytes:
    pen = SNIFFER_PENS[0]
    out = _shb(e)
    out += _idb(e, 1, 96, _opt(e, 9, b"\x09") + _opt(e, 14, struct.pack(e + "q", -5)))
    out += _idb(e, 113, 0, _opt(e, 9, b"\x94"))  # 2^-20
    out += _idb(e, 101, 40, _opt(e, 9, b"\x00"))  # whole seconds
    out += _custom(e, pen, json.dumps({"sniffer": 1, "kind": "start"}).encode())
    out += _epb(e, 0, 1_700_000_000_123_456_789, b"A" * 100, 1500,
                _opt(e, 2, struct.pack(e + "I", 1 | 3 << 2)) + _opt(e, 0, b""))
    out += _block(e, 3, struct.pack(e + "I", 80) + b"s" * 60)  # SPB: no time
    out += _block(e, 0x12345, b"unknown")
    out += _custom(e, 99, b"other pen")
    out += _custom(e, pen, b"{not json", 0x40000BAD)
    out += _custom(e, pen, json.dumps({"sniffer": 1, "kind": "x", "ts": 5.5}).encode())
    out += _block(e, 2, struct.pack(e + "HHIIII", 1, 0, 0, 1_000_000 * 3 + 12345, 5, 9)
                  + b"pbpb\x01")  # obsolete PB
    out += _block(e, 5, b"\0" * 16)  # ISB: ignored
    out += _epb(e, 2, 1_700_000_001, b"B" * 50, 50, _opt(e, 2, struct.pack(e + "I", 2)))
    out += _custom(e, pen, b'{"sniffer": 1, "kind": "stop", "ts": 1e400}')
    out += _shb(e)  # a second section: interfaces start over
    out += _idb(e, 1, 0)
    out += _epb(e, 0, 1_700_000_002_000_000, b"C" * 10, 10)
    return out


@pytest.mark.parametrize("e", ["<", ">"])
def test_rare_blocks_identical(tmp_path: Path, e: str) -> None:
    path = tmp_path / "rare.pcapng"
    path.write_bytes(_rare_kinds(e))
    ref = assert_same(path)
    assert ref["error"] is None
    for key in ("pcapng_spb_no_timestamp", "pcapng_obsolete_packet_block", "pcapng_unknown_block",
                "pcapng_custom_block_other", "pcapng_custom_block_bad", "caplen_over_snaplen"):
        assert ref["stats"].get(key), key
    # and damaged: every cut, and a sweep of mutants
    raw = path.read_bytes()
    for cut in range(4, len(raw), 5):
        path.write_bytes(raw[:cut])
        assert_same(path, windows=(64,))
    cap = mutants.Capture.parse(raw)
    rng = random.Random(f"rare:{e}")
    for _ in range(80):
        data = mutants.mutate(cap, rng)[1]
        if data[:4] == SHB_MAGIC:
            path.write_bytes(data)
            assert_same(path, windows=(64,))


def test_errors_identical(tmp_path: Path) -> None:
    """Each error of the reader, at the block that causes it."""
    e = "<"
    head = _shb(e) + _idb(e, 1, 0)
    good = _epb(e, 0, 10**15, b"x" * 20, 20)
    cases = [
        head + good + _epb(e, 1, 0, b"x", 1),  # no such interface
        head + good + _epb(e, 0, 0, b"x" * 8, 8)[:-4] + b"\x99\0\0\0",  # trailer mismatch
        head + good + struct.pack("<II", 6, 33) + b"\0" * 40,  # not a multiple of 4
        head + good + struct.pack("<II", 6, 8) + b"\0" * 40,  # less than 12
        head + good + struct.pack("<II", 6, 1 << 26) + b"\0" * 40,  # over the maximum
        head + good + _block(e, 6, b"\0" * 16),  # short EPB
        head + good + _block(e, 3, b""),  # short SPB
        _shb(e) + _block(e, 3, b"\0" * 8),  # SPB without interface
        head + good + _block(e, 2, b"\0" * 8),  # short PB
        head + good + _shb(e, major=2),  # version
        head + good + _shb(e)[:8] + b"\x01\x02\x03\x04" + _shb(e)[12:],  # bad byte order
        head + good + _block(e, 0x0A0D0D0A, struct.pack("<IHH", 0x1A2B3C4D, 1, 0)),  # short
        head + _idb(e, 1, 0, _opt(e, 9, b"\x14")),  # tsresol 10^-20
        head + _idb(e, 1, 0, _opt(e, 9, b"\xc0")),  # tsresol 2^-64
        head + _idb(e, 1, 0, _opt(e, 9, b"\x06\x06")),  # tsresol length
        head + _idb(e, 1, 0, _opt(e, 14, b"\0" * 4)),  # tsoffset length
        head + _idb(e, 1, 0, struct.pack("<HH", 3, 200)),  # option past the block
        head + _block(e, 1, b"\0" * 4),  # short IDB
        head + good + _epb(e, 0, 0, b"x" * 8, 300)[:20] + struct.pack("<I", 1000)
        + _epb(e, 0, 0, b"x" * 8, 300)[24:],  # caplen past the block
        _shb(e) + _idb(e, 1, 10) + _epb(e, 0, 0, b"x" * 262145, 262145),  # caplen over max
    ]
    for i, data in enumerate(cases):
        path = tmp_path / f"err{i}.pcapng"
        path.write_bytes(data)
        ref = assert_same(path)
        assert ref["error"] is not None, i


def test_blocks_longer_than_the_window(tmp_path: Path) -> None:
    """D-Bus blocks (longer than 16 MiB allowed once its interface is known) and ordinary
    ones among small windows: the buffer grows for them and the frames stay exact."""
    e = "<"
    rng = random.Random(5)
    out = _shb(e) + _idb(e, 231, 0) + _idb(e, 1, 0)
    for i in range(30):
        size = rng.choice((10, 300, 70_000, 300_000, 1_500_000))
        iface = 0 if size > 262144 else rng.randrange(2)
        out += _epb(e, iface, (1_700_000_000 + i) * 10**6, rng.randbytes(size), size)
    path = tmp_path / "dbus.pcapng"
    path.write_bytes(out)
    ref = assert_same(path, windows=(64, 65536))
    assert len(ref["events"]) == 30 and ref["error"] is None


def test_custom_only_and_empty_recordings(tmp_path: Path) -> None:
    """A recording holding only custom records (no packet at all), and an empty one."""
    path = tmp_path / "only.pcapng"
    with PcapngWriter(path) as w:
        for i in range(5):
            w.custom("k", {"i": i}, float(i))
    ref = assert_same(path)
    assert [e[0] for e in ref["events"]] == ["custom"] * 5
    PcapngWriter(path).close()
    assert_same(path)


def test_a_missing_file_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(_core.CoreError):
        _core.PcapngWalker(str(tmp_path / "missing.pcapng"))


def test_stop_signal_between_batches() -> None:
    """A stop signal (sniffer.interrupt) ends the walk between two batches."""
    packets = read_pcapng_path(str(ROOT / "pcaps" / "demo.pcapng"), LoggedStats())
    assert next(packets)
    STOP.signum = 15
    try:
        with pytest.raises(Interrupted):
            for _ in packets:
                pass
    finally:
        STOP.signum = 0
