"""Differential test: the compiled core's pcap record walk against the Python reader.

The Python reader (sniffer/capture/pcap.py, reached through sniffer.capture.read_file as the
product reads a file) is the reference. On every classic pcap of the reference corpus, the
bundled demo captures, and damaged variants of them (tests/mutants.py, every cut of small
files, patched header and length fields), the core must give identical frames (bytes, time to
the bit, link type, wire length), the identical error (offset and message) after the same
frames, and identical notes (stats, counted at the same packets). Both the thin Python wrapper
(sniffer/capture/corepcap.py) and the raw batch interface with small read windows (records
straddling windows, records longer than a window) are held to it.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mutants
import sharedkit
from sniffer.capture import read_file
from sniffer.capture.corepcap import _core, read_pcap_path
from sniffer.errors import BadInputError
from sniffer.interrupt import STOP, Interrupted
from sniffer.stats import LoggedStats

ROOT = Path(__file__).resolve().parents[1]
PCAP_MAGICS = tuple(mutants.PCAP_MAGICS)
#: read windows for the raw walker: tiny (every record straddles), odd, and the default
WINDOWS = (64, 1000, 4096 + 7, _core.DEFAULT_WINDOW)


def _classic(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) in PCAP_MAGICS


def _corpus_pcaps() -> list[Path]:
    files = [p for p in sorted(sharedkit.CORPUS.rglob("*")) if p.is_file() and _classic(p)]
    assert len(files) > 100, f"expected the corpus's classic pcaps under {sharedkit.CORPUS}"
    return files


CORPUS_PCAPS = _corpus_pcaps()
BUNDLED = sorted((ROOT / "pcaps").glob("*.pcap"))


def _frame(p) -> tuple:
    ts, linktype, data, wirelen = p[:4]
    return ts.hex(), linktype, bytes(data), wirelen  # .hex(): the float to the bit


def _outcome(packets, stats: LoggedStats, log: list) -> dict:
    """Run one reader to its end: frames, error (offset, reason), stats, the logged notes."""
    frames, error = [], None
    try:
        for p in packets:
            stats.ts = p[0]  # as read.py keeps it: notes logged meanwhile carry the time
            frames.append(_frame(p))
    except BadInputError as e:
        error = (e.offset, e.reason)
    return {"frames": frames, "error": error, "stats": dict(stats), "log": log}


def _reference(path: Path) -> dict:
    log: list = []
    stats = LoggedStats(lambda key, ts: log.append((key, ts.hex())))
    return _outcome(read_file(str(path), stats), stats, log)


def _wrapper(path: Path) -> dict:
    log: list = []
    stats = LoggedStats(lambda key, ts: log.append((key, ts.hex())))
    return _outcome(read_pcap_path(str(path), stats), stats, log)


def _raw(path: Path, window: int, max_frames: int = 333) -> dict:
    """The batch interface itself: every frame, the error, the notes."""
    frames, error = [], None
    try:
        walker = _core.PcapWalker(str(path), window=window)
    except _core.CoreError as e:
        return {"frames": [], "error": e.args[:2], "notes": {}}
    while True:
        try:
            data, offsets, lengths, wirelens, times, flags = walker.next_batch(max_frames)
        except _core.CoreError as e:
            error = e.args[:2]
            break
        assert len(offsets) == len(lengths) == len(wirelens) == len(times) == len(flags)
        if not offsets:
            break
        assert offsets[-1] + lengths[-1] == len(data)
        frames += [(t.hex(), walker.linktype, data[o:o + n], w)
                   for o, n, w, t in zip(offsets, lengths, wirelens, times)]
    return {"frames": frames, "error": error, "notes": walker.notes()}


def _notes(stats: dict) -> dict:
    """The reference's stats that the record walk counts."""
    keys = ("snaplen_truncated", "invalid_timestamp", "caplen_over_snaplen",
            "truncated_final_record")
    return {k: v for k, v in stats.items() if k in keys and v}


def assert_same(path: Path, windows=WINDOWS) -> dict:
    """The wrapper and the raw walker (at each window) agree with the reference on `path`."""
    ref = _reference(path)
    got = _wrapper(path)
    assert got["error"] == ref["error"], path
    assert len(got["frames"]) == len(ref["frames"]), path
    assert got["frames"] == ref["frames"], path
    assert got["stats"] == ref["stats"], path
    assert got["log"] == ref["log"], path
    for window in windows:
        raw = _raw(path, window)
        assert raw["frames"] == ref["frames"], (path, window)
        assert raw["error"] == ref["error"], (path, window)
        assert raw["notes"] == _notes(ref["stats"]), (path, window)
    return ref


@pytest.mark.parametrize("path", CORPUS_PCAPS,
                         ids=[str(p.relative_to(sharedkit.CORPUS)) for p in CORPUS_PCAPS])
def test_corpus_pcap_identical(path: Path) -> None:
    assert_same(path)


def test_corpus_covers_the_formats() -> None:
    """Both byte orders and both precisions are among the corpus files compared above."""
    seen = set()
    for p in CORPUS_PCAPS:
        with p.open("rb") as f:
            seen.add(f.read(4))
    assert seen == set(PCAP_MAGICS)


@pytest.mark.parametrize("path", BUNDLED, ids=[p.name for p in BUNDLED])
def test_bundled_pcap_identical(path: Path) -> None:
    ref = assert_same(path)
    assert ref["frames"] and ref["error"] is None


def test_gzipped_corpus_pcap_identical(tmp_path: Path) -> None:
    """The core reads no gzip: the corpus's gzip pcaps, unpacked, compare like the others."""
    done = 0
    for p in sorted(sharedkit.CORPUS.rglob("*")):
        if p.is_file() and p.open("rb").read(2) == b"\x1f\x8b":
            raw = gzip.decompress(p.read_bytes())
            if raw[:4] in PCAP_MAGICS:
                out = tmp_path / (p.name + ".pcap")
                out.write_bytes(raw)
                assert _reference(out)["frames"]
                assert_same(out)
                done += 1
    assert done >= 1


def _small_inputs() -> list[Path]:
    """Small captures of every byte order and precision, for the exhaustive damage tests."""
    by_magic: dict[bytes, list[Path]] = {}
    for p in CORPUS_PCAPS + BUNDLED:
        if p.stat().st_size <= 6000 and len(mutants.Capture.parse(p.read_bytes()).records) >= 3:
            by_magic.setdefault(p.read_bytes()[:4], []).append(p)
    return [p for files in by_magic.values()
            for p in sorted(files, key=lambda f: f.stat().st_size)[:2]]


def test_every_cut_identical(tmp_path: Path) -> None:
    """Every prefix of small files: a truncated header, record header or body."""
    inputs = _small_inputs()
    assert len(inputs) >= 4
    cuts = 0
    for p in inputs:
        raw = p.read_bytes()
        for cut in range(len(raw)):
            out = tmp_path / "cut.pcap"
            out.write_bytes(raw[:cut])
            assert_same(out, windows=(64, 4096 + 7))
            cuts += 1
    assert cuts > 1000


def _patched(raw: bytes, off: int, fmt: str, value: int) -> bytes:
    buf = bytearray(raw)
    struct.pack_into(fmt, buf, off, value)
    return bytes(buf)


def test_patched_fields_identical(tmp_path: Path) -> None:
    """Versions (2.0 to 2.5, 1.x), snaplens, link types with reserved bits, caplen/len at and
    around the limits, at the first, a middle and the last record; ns <-> µs magics."""
    outs = []
    for p in _small_inputs():
        cap = mutants.Capture.parse(p.read_bytes())
        e, raw = cap.e, cap.raw
        for major, minor in ((2, 0), (2, 2), (2, 3), (2, 4), (2, 5), (1, 4), (3, 0)):
            outs.append(_patched(_patched(raw, 4, e + "H", major), 6, e + "H", minor))
        for snap in (0, 1, 14, 60, 262144, 262145, 0xFFFFFFFF):
            outs.append(_patched(raw, 16, e + "I", snap))
        for lt in (0x00010001, 0x04000001, 0xFC000071, 0x03FF0000, 231, 249, 279, 0xFFFF):
            outs.append(_patched(raw, 20, e + "I", lt))
        records = cap.records
        starts = {records[0].start, records[len(records) // 2].start, records[-1].start} \
            if records else set()
        for r in starts:
            for field in (8, 12):
                for v in (0, 1, 262144, 262145, 0x7FFFFFFF, 0xFFFFFFFF, 128 << 20):
                    outs.append(_patched(raw, r + field, e + "I", v))
            outs.append(_patched(raw, r + 4, e + "I", 999_999_999))  # sub-second overflow
            outs.append(_patched(raw, r + 4, e + "I", 0xFFFFFFFF))
        outs.append(mutants.OPERATORS["file_header"](cap, random.Random(1)))
    for i, data in enumerate(outs):
        out = tmp_path / f"patched{i}.pcap"
        out.write_bytes(data)
        assert_same(out, windows=(64, 4096 + 7))


def test_mutants_identical(tmp_path: Path) -> None:
    """The mutation sweep's operators (bit flips, noise, lengths, duplicates, reordering,
    timestamps, concatenation, ...), seeded: the same mutants every run."""
    inputs = _small_inputs() + [p for p in CORPUS_PCAPS if 6000 < p.stat().st_size <= 200_000][:6]
    n = 0
    for p in inputs:
        cap = mutants.Capture.parse(p.read_bytes())
        rng = random.Random(f"core-pcap:{p.name}")
        for _ in range(60):
            _name, data = mutants.mutate(cap, rng)
            out = tmp_path / "mutant.pcap"
            out.write_bytes(data)
            assert_same(out, windows=(64, 4096 + 7))
            n += 1
    assert n >= 500


def _pcap(records: list[tuple[int, int, bytes, int]], linktype: int, snaplen: int = 0) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for sec, usec, data, wirelen in records:
        out += struct.pack("<IIII", sec, usec, len(data), wirelen) + data
    return out


def test_records_longer_than_the_window(tmp_path: Path) -> None:
    """D-Bus records (up to 128 MiB allowed) longer than the read window, among small ones,
    with a snaplen that trims some: the buffer grows for them and the frames stay exact."""
    rng = random.Random(7)
    recs = []
    for i in range(40):
        size = rng.choice((10, 300, 70_000, 300_000, 1_500_000))
        recs.append((1_700_000_000 + i, rng.randrange(1_000_000), rng.randbytes(size), size + i))
    out = tmp_path / "dbus.pcap"
    out.write_bytes(_pcap(recs, 231, snaplen=1_000_000))
    ref = assert_same(out, windows=(64, 65536, 1 << 20))
    assert len(ref["frames"]) == 40 and ref["stats"]["caplen_over_snaplen"] > 0


_U32 = st.one_of(st.sampled_from((0, 1, 999_999, 1_000_000, 999_999_999, 1_000_000_000,
                                  262_144, 262_145, 0x7FFFFFFF, 0xFFFFFFFF)),
                st.integers(0, 0xFFFFFFFF))


@st.composite
def generated_pcaps(draw) -> bytes:
    """A classic pcap from its fields: either byte order and precision, versions around 2.3 and
    2.4, snaplens and link types at the edges, records whose caplen, len and body disagree,
    timestamps past a second, and sometimes a cut anywhere."""
    e = draw(st.sampled_from("<>"))
    magic = draw(st.sampled_from((0xA1B2C3D4, 0xA1B23C4D)))
    major = draw(st.sampled_from((2,) * 10 + (1, 3)))
    minor = draw(st.sampled_from((0, 2, 3, 3, 4, 4, 4, 4, 4, 4, 5)))
    snaplen = draw(st.sampled_from((0, 1, 14, 60, 100, 65535, 262144, 262145, 0xFFFFFFFF)))
    linktype = draw(st.sampled_from((1, 1, 1, 101, 113, 231, 249, 279, 0xF0000001, 0x00010001)))
    out = struct.pack(e + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)
    for _ in range(draw(st.integers(0, 12))):
        body = draw(st.binary(max_size=200))
        # mostly true to the body (the walk goes on), sometimes anything
        anything = st.one_of(_U32, st.integers(0, 300))
        caplen = len(body) if draw(st.integers(0, 5)) else draw(anything)
        wirelen = len(body) + draw(st.sampled_from((0, 0, 1, 1000))) if draw(st.integers(0, 3)) \
            else draw(anything)
        out += struct.pack(e + "IIII", draw(_U32), draw(_U32), caplen, wirelen) + body
    if draw(st.booleans()):
        out = out[:draw(st.integers(0, len(out)))]
    return out


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=generated_pcaps())
def test_generated_pcaps_identical(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "generated.pcap"
        path.write_bytes(data)
        assert_same(path, windows=(64, 4096 + 7))


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    """Errors before the first record: the same offset (or none) and the same words."""
    cases = {"empty.pcap": b"", "short.pcap": b"\xd4\xc3", "text.pcap": b"hello world\n" * 3,
             "header.pcap": _pcap([], 1)[:20]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    paths = [tmp_path / n for n in cases] + [tmp_path / "missing.pcap", tmp_path]
    for p in paths:
        ref = _reference(p)
        assert ref["error"] is not None and not ref["frames"], p
        assert _wrapper(p)["error"] == ref["error"], p


def test_a_core_panic_is_one_error_line(tmp_path: Path, capfd) -> None:
    """A panic in the core (a bug: here one asked for by a test hook) reaches the caller as
    BadInputError naming the file, offset and record, and Rust prints nothing; the walker
    then stays failed."""
    path = ROOT / "pcaps" / "demo.pcap"
    walker = _core.PcapWalker(str(path))
    first = walker.next_batch(3)
    assert len(first[1]) == 3
    walker._panic_next_batch()
    with pytest.raises(_core.CoreError) as info:
        walker.next_batch(3)
    offset, message, errno = info.value.args
    assert offset == walker.offset and errno is None
    assert message.startswith("internal error in the compiled core (a bug) at record 4: ")
    assert "panic requested" in message and "python.rs" in message
    with pytest.raises(_core.CoreError):
        walker.next_batch(3)
    from sniffer.capture.corepcap import _bad
    err = _bad(str(path), info.value)
    assert str(err) == f"{path}: offset {offset}: {message}" and "\n" not in str(err)
    out, errtext = capfd.readouterr()
    assert out == "" and errtext == ""


def test_a_pipe_is_walked_as_it_arrives(tmp_path: Path) -> None:
    """From a FIFO, the frames that arrived come back at once, not when the writer closes or
    a window fills; the rest follow, then the end."""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    first = _pcap([(1, 0, b"one", 3), (2, 0, b"two", 3)], 1)
    closed = threading.Event()

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as w:
            w.write(first)
            time.sleep(2)
            w.write(_pcap([(3, 0, b"three", 5)], 1)[24:])
        closed.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    walker = _core.PcapWalker(str(fifo))
    data, offsets, lengths, *_ = walker.next_batch(100)
    assert not closed.is_set()
    assert [data[o:o + n] for o, n in zip(offsets, lengths)] == [b"one", b"two"]
    data, offsets, lengths, *_ = walker.next_batch(100)
    assert [data[o:o + n] for o, n in zip(offsets, lengths)] == [b"three"]
    assert walker.next_batch(100)[1] == []
    thread.join(10)
    assert closed.is_set()


def test_stop_signal_between_batches() -> None:
    """A stop signal (sniffer.interrupt) ends the walk between two batches."""
    packets = read_pcap_path(str(ROOT / "pcaps" / "demo.pcap"), LoggedStats(lambda k, t: None))
    assert next(packets)
    STOP.signum = 15
    try:
        with pytest.raises(Interrupted):
            for _ in packets:
                pass
    finally:
        STOP.signum = 0
