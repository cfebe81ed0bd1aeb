"""Classic pcap through the compiled core's record walk (`sniffer._core.PcapWalker`).

The same packets, stats and errors as `sniffer.capture.pcap.read_pcap` (the reference, which
`tests/test_core_pcap.py` holds it to), but the walk is Rust: it reads the file itself in
bounded windows, with the GIL released, and hands frames over in batches (one bytes object plus
per-frame offsets, lengths, wire lengths, times and notes). It reads a path, never seeks, and
does not unwrap gzip: plain files and pipes only.

Any failure of the core is a `BadInputError` naming the file and offset: a damaged file says
the reference's words, and a panic in the core (a bug) says so, at the record it met.
"""

from __future__ import annotations

from types import ModuleType
from typing import Iterator

from sniffer.capture.pcap import Packet
from sniffer.errors import core_failure
from sniffer.interrupt import STOP, Interrupted
from sniffer.stats import Stats

#: frames per batch: enough that the per-batch cost vanishes, few enough to stay responsive
BATCH = 4096


def load_core() -> ModuleType:
    """`sniffer._core`, or ImportError saying how to build it (sniffer/__init__.py makes it
    found from a source tree whose package was installed with `pip install .`)."""
    try:
        from sniffer import _core
    except ImportError:
        raise ImportError("sniffer's compiled core (sniffer._core) is not built: install "
                          "the package with `pip install .` (it needs a Rust toolchain: "
                          "cargo, rustc; see README.md)") from None
    return _core


_core = load_core()
_FLAGS = ((_core.FLAG_CAPLEN_OVER_SNAPLEN, "caplen_over_snaplen"),
          (_core.FLAG_SNAPLEN_TRUNCATED, "snaplen_truncated"),
          (_core.FLAG_INVALID_TIMESTAMP, "invalid_timestamp"))


#: the one-line error for a core failure (the tests and corepcapng use it by this name)
_bad = core_failure


def read_pcap_path(path: str, stats: Stats, name: str | None = None) -> Iterator[Packet]:
    """Yield `(ts, linktype, data, wirelen)` from the classic pcap at `path`, as read_pcap.

    `name` is what errors show (default: `path`). Stats are counted as the reference counts
    them: per frame, just before it is yielded; `truncated_final_record` after the last one.
    """
    name = path if name is None else name
    try:
        walker = _core.PcapWalker(path)
    except (_core.CoreError, _core.PanicException) as e:
        raise _bad(name, e, 0) from None
    linktype = walker.linktype
    while True:
        if STOP.signum:  # between two batches no packet is half-processed
            raise Interrupted(STOP.signum)
        try:
            data, offsets, lengths, wirelens, times, flags = walker.next_batch(BATCH)
        except (_core.CoreError, _core.PanicException) as e:
            raise _bad(name, e, walker.offset) from None
        if not offsets:
            break
        if not any(flags):
            for o, n, w, ts in zip(offsets, lengths, wirelens, times):
                yield ts, linktype, data[o:o + n], w
            continue
        for o, n, w, ts, f in zip(offsets, lengths, wirelens, times, flags):
            if f:
                for bit, key in _FLAGS:
                    if f & bit:
                        stats[key] += 1
            yield ts, linktype, data[o:o + n], w
    truncated = walker.notes().get("truncated_final_record")
    if truncated:
        stats["truncated_final_record"] += truncated
