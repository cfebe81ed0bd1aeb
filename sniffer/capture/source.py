"""Opening an input: a path or `-`, plain or gzip, as a forward-only byte stream.

The readers never seek, so a pipe works exactly like a file. gzip is detected by its magic
(1f 8b), not by the name, because rotated captures are often renamed.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from typing import BinaryIO, Callable

from sniffer.errors import BadInputError
from sniffer.interrupt import STOP, Interrupted
from sniffer.stats import Stats

STDIN_NAME = "<stdin>"
CHUNK = 1 << 20  # read size: big enough that per-read overhead vanishes, small enough for RAM
_GZIP_MAGIC = b"\x1f\x8b"


class _Prefixed(io.RawIOBase):
    """A stream that first replays bytes already sniffed from it (stdin cannot be rewound)."""

    def __init__(self, head: bytes, read: Callable[[int], bytes]) -> None:
        self._head = head
        self._read = read

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head:
            k = min(len(b), len(self._head))
            b[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        data = self._read(len(b))
        b[: len(data)] = data
        return len(data)


def _read1(f: BinaryIO, n: int) -> bytes:
    """One read that may return short but returns b"" only at EOF (keeps pipes responsive)."""
    r1 = getattr(f, "read1", None)
    return r1(n) if r1 is not None else f.read(n)


class Source:
    """An opened capture input.

    `name` is what error messages show; `size` is the byte size when it is a plain regular file,
    else None. `read(n)` returns up to n bytes and b"" only at end of input; the sniffed magic
    bytes are replayed first.
    """

    def __init__(self, name: str, read: Callable[[int], bytes], head: bytes,
                 size: int | None, close: Callable[[], None]) -> None:
        self.name = name
        self.size = size
        self._read = read
        self._head = head
        self.close = close

    def read(self, n: int) -> bytes:
        # Between two chunks no packet is half-processed: the place to honour a stop signal
        # (sniffer.interrupt); while the read blocks, the handler itself raises.
        if STOP.signum:
            raise Interrupted(STOP.signum)
        if self._head:
            head, self._head = self._head, b""
            return head
        STOP.waiting = True
        try:
            return self._read(n)
        finally:
            STOP.waiting = False

    def peek(self, n: int) -> bytes:
        """Up to n bytes that the next reads will return again."""
        data = self.read_exact(n)
        self._head = data + self._head
        return data

    def read_exact(self, n: int) -> bytes:
        """Up to n bytes, fewer only at end of input."""
        parts: list[bytes] = []
        got = 0
        while got < n:
            chunk = self.read(n - got)
            if not chunk:
                break
            if len(chunk) > n - got:  # replayed head longer than asked
                self._head = chunk[n - got:]
                chunk = chunk[: n - got]
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)


def _sniff(read: Callable[[int], bytes], n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def open_source(path: str, stats: Stats) -> Source:
    """Open `path` (`-` = standard input), unwrapping gzip; BadInputError if unusable."""
    if path == "-":
        name = STDIN_NAME
        raw: BinaryIO = sys.stdin.buffer
        if raw.isatty():
            raise BadInputError(name, None, "standard input is a terminal, not a capture")
        size = None
        close: Callable[[], None] = lambda: None  # noqa: E731 - stdin is not ours to close
        read: Callable[[int], bytes] = lambda n: _read1(raw, n)  # noqa: E731
    else:
        name = path
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by Source.close
        except OSError as e:
            raise BadInputError(path, None, e.strerror or str(e)) from None
        try:
            st = os.fstat(raw.fileno())
        except OSError as e:  # pragma: no cover - fstat on an open fd does not fail in practice
            raw.close()
            raise BadInputError(path, None, e.strerror or str(e)) from None
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        close = raw.close
        read = raw.read
    try:
        head = _sniff(read, 4)
    except OSError as e:
        close()
        raise BadInputError(name, None, e.strerror or str(e)) from None
    if not head:
        close()
        raise BadInputError(name, None, "empty file (0 bytes), not a capture")
    if head[:2] != _GZIP_MAGIC:
        return Source(name, read, head, size, close)

    gz = gzip.GzipFile(fileobj=io.BufferedReader(_Prefixed(head, read)), mode="rb")

    def gz_read(n: int) -> bytes:
        try:
            return gz.read1(n)
        except EOFError:  # cut-off gzip: all data before the cut was already returned
            stats["gzip_truncated"] += 1
            return b""
        except (OSError, zlib.error) as e:
            raise BadInputError(name, None, f"gzip: {e}") from None

    try:
        inner = gz_read(4)
    except BadInputError:
        close()
        raise
    if not inner:
        close()
        raise BadInputError(name, None, "empty gzip stream, not a capture")
    return Source(name, gz_read, inner, None, close)
