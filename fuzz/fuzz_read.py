"""Atheris harness: arbitrary bytes through `sniffer read`'s own pipeline, in-process.

Each input is written to a temporary file and run through `sniffer.read.run_packets` (which
calls `sniffer.capture.open_capture`, the decoder and the flow engine, exactly as `sniffer
read` does), with every finished connection formatted by the Zeek writer. `SnifferError`
(BadInputError included) is the expected answer to a bad capture; any other exception is a
crash, a per-input timeout (libFuzzer ``-timeout``) a hang, ``-rss_limit_mb`` a memory blow-up.

A few bits of the input's CRC vary how it is fed, so one input also reaches the rarer paths:
gzip-wrapped (a stream of unknown size), given twice (the multi-file merge), with
``--ignore-checksums``, and with the detectors on and their alerts written (JSON or Zeek).
Custom blocks with sniffer's own records go through the correlator, as in `sniffer read`.

Run it through fuzz/run.py (bounded time, seeds from the shared corpus, inputs-tried count);
`python fuzz/fuzz_read.py CRASH_FILE` replays one input.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tempfile
import zlib

import atheris

# The project's own tree, not whatever copy of `sniffer` is installed (the script's directory,
# fuzz/, is what Python puts first on the path).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["sniffer"]):
    from sniffer.config import Settings
    from sniffer.detect.engine import Detectors
    from sniffer.errors import SnifferError
    from sniffer.output.alerts import AlertFile
    from sniffer.output.zeek import ZeekWriter
    from sniffer.read import run_packets
    from sniffer.stats import Stats

#: where the input is written: fuzz/run.py passes a directory it removes afterwards
_TMP = os.environ.get("SNIFFER_FUZZ_TMP") or tempfile.mkdtemp(
    prefix="sniffer-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PATH = os.path.join(_TMP, "input")


def run_one(data: bytes, path: str = _PATH) -> int:
    """Feed `data` to the read pipeline as a capture file at `path`; returns the rows written.

    Raises SnifferError for bad input (expected) and anything else for a bug.
    """
    variant = zlib.crc32(data)
    body = gzip.compress(data, compresslevel=1, mtime=0) if variant & 1 else data
    with open(path, "wb") as f:
        f.write(body)
    paths = [path, path] if variant & 2 else [path]
    settings = Settings(ignore_checksums=bool(variant & 4))
    stats = Stats()
    out = io.StringIO()
    writer = ZeekWriter(out)
    detectors = None
    if variant & 8:  # `--alerts FILE`, in Zeek's notice.log layout or as JSON lines
        detectors = Detectors(settings, [], stats)
        detectors.file = AlertFile(path + ".alerts", "zeek" if variant & 16 else "json")
    try:
        error = run_packets(paths, settings, stats, lambda ev: writer.write(ev.conn),
                            detectors=detectors)
    finally:
        if detectors is not None:
            detectors.close()
    writer.close()
    if error is not None:
        raise error
    return out.getvalue().count("\n")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    """One fuzz input: the project's own errors are fine, anything else propagates (a crash)."""
    try:
        run_one(data)
    except SnifferError:
        pass


def main() -> None:
    """libFuzzer command line (corpus directories, -max_total_time, -runs, ...)."""
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
