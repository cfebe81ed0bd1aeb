"""Output files that stay valid when the disk fills up.

The writers hand over whole units: lines (a row, a header block, a trailer) to `LineFile`,
pcapng blocks to `BlockFile`. They buffer them and write with os.write; if a write fails
(ENOSPC, EFBIG, EIO ...) the file is cut back to the end of its last whole unit, one short
trailer (`#close` for a Zeek log) is tried in the space that frees, and the run stops with one
line naming the file. So a full disk leaves a log that zeek-cut and JSON readers still read, and
a recording that pcapng readers still read, with every record that fitted.
"""

from __future__ import annotations

import errno
import os
import stat

from sniffer.errors import SnifferError

BUFFER = 1 << 20


class WriteFailed(SnifferError):
    """An output file could not be written; it ends at its last whole line."""


class _WholeFile:
    """Buffered writes of whole units over a file descriptor; a failed write cuts the file
    back to the end of its last whole unit (see the module docstring)."""

    def __init__(self, path: str | None, fd: int | None, buffer: int) -> None:
        self.name = path or "stdout"
        if fd is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise SnifferError(f"{path}: cannot write: {exc.strerror}") from None
            self._owned = True
        else:
            self._owned = False
        self.fd = fd
        try:
            self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
            self._good = os.lseek(fd, 0, os.SEEK_CUR) if self._regular else 0
        except OSError:
            self._regular, self._good = False, 0
        self._buffer = buffer
        self._parts: list = []  # whole units (str or bytes) not yet written
        self._size = 0
        self.failed: WriteFailed | None = None
        self.trailer = None  # callable returning the last unit to try after a failure

    def write(self, unit: str | bytes) -> int:
        """Buffer one whole unit (a line, a block): the file is only ever cut between units."""
        if self.failed is not None:
            raise self.failed
        self._parts.append(unit)
        self._size += len(unit)
        if self._size >= self._buffer:
            self.flush()
        return len(unit)

    def _take(self) -> list:
        parts, self._parts, self._size = self._parts, [], 0
        return parts

    def _chunk(self) -> bytes:
        """The buffered units as the bytes to write (and forget them)."""
        raise NotImplementedError

    def _whole(self, chunk: bytes, done: int) -> int:
        """How many of the `done` bytes written of `chunk` end on a unit boundary."""
        raise NotImplementedError

    def flush(self) -> None:
        if self.failed is not None:
            raise self.failed
        data = self._chunk()
        if not data:
            return
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._fail(exc, self._good + self._whole(data, done))
        self._good += done

    def _fail(self, exc: OSError, end: int) -> None:
        """Cut the file back to `end`, try the trailer, then stop the run with one line."""
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        msg = f"{self.name}: write failed: {reason}"
        if self._regular:
            try:
                os.ftruncate(self.fd, end)
                os.lseek(self.fd, end, os.SEEK_SET)
                tail = self.trailer() if self.trailer is not None else b""
                if isinstance(tail, str):
                    tail = tail.encode()
                if tail:
                    try:
                        if os.write(self.fd, tail) == len(tail):
                            end += len(tail)
                        else:
                            os.ftruncate(self.fd, end)
                    except OSError:
                        os.ftruncate(self.fd, end)
            except OSError:
                pass
            msg += f"; the file ends at its last whole record (byte {end})"
        self.failed = WriteFailed(msg)
        raise self.failed

    def close(self) -> None:
        """Flush and close; after a failure (already reported) only close."""
        try:
            if self.failed is None:
                self.flush()
        finally:
            if self._owned and self.fd >= 0:
                fd, self.fd = self.fd, -1
                os.close(fd)

    def isatty(self) -> bool:
        return False


class LineFile(_WholeFile):
    """A text sink for writers that hand over whole lines (a path, or stdout's descriptor).

    `trailer()` (optional) gives the line to try after a failure, e.g. Zeek's ``#close``.
    """

    def __init__(self, path: str | None, *, fd: int | None = None,
                 buffer: int = BUFFER) -> None:
        super().__init__(path, fd, buffer)

    def _chunk(self) -> bytes:
        # Lines come as str (the Python writers) or as bytes (the core's rows, a batch at once:
        # written as they are, with no decoding to str and encoding back).
        return b"".join(p if isinstance(p, bytes) else p.encode("utf-8", "surrogateescape")
                        for p in self._take())

    def _whole(self, chunk: bytes, done: int) -> int:
        return chunk.rfind(b"\n", 0, done) + 1


class BlockFile(_WholeFile):
    """A binary sink for writers that hand over whole blocks (pcapng: one block a write)."""

    def __init__(self, path: str | None, buffer: int = 1 << 16, *, fd: int | None = None) -> None:
        super().__init__(path, fd, buffer)
        self._ends: list[int] = []  # where each buffered block ends, within the chunk
        self._last_ends: list[int] = []  # the same, for the chunk being written

    def write(self, block: bytes) -> int:
        self._ends.append(self._size + len(block))
        return super().write(block)

    def _chunk(self) -> bytes:
        self._last_ends, self._ends = self._ends, []
        return b"".join(self._take())

    def _whole(self, chunk: bytes, done: int) -> int:
        return max((e for e in self._last_ends if e <= done), default=0)


class StdoutLines:
    """Standard output with the same failure contract as LineFile (no cutting back: stdout may
    be a pipe or a file opened for appending); a closed pipe stays BrokenPipeError, which the
    command line treats as the reader having had enough (`sniffer read x | head`).
    `binary`: for pcapng blocks (`live -w -`), through sys.stdout.buffer."""

    def __init__(self, binary: bool = False) -> None:
        import sys
        self._binary = binary
        self._out = sys.stdout.buffer if binary else sys.stdout
        self.trailer = None
        self.name = "stdout"

    def write(self, text: str | bytes) -> int:
        try:
            if isinstance(text, bytes) and not self._binary:
                # the core's rows on a text stdout: through its buffer, after its pending text
                buffer = getattr(self._out, "buffer", None)
                if buffer is None:  # (a stream of text only, as a test's capture)
                    return self._out.write(text.decode("utf-8", "surrogateescape"))
                self._out.flush()
                return buffer.write(text)
            return self._out.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise WriteFailed(f"stdout: write failed: {exc.strerror}") from None

    def flush(self) -> None:
        try:
            self._out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise WriteFailed(f"stdout: write failed: {exc.strerror}") from None

    def close(self) -> None:
        self.flush()

    def isatty(self) -> bool:
        return self._out.isatty()


def stdout_lines(binary: bool = False) -> LineFile | BlockFile | StdoutLines:
    """Standard output as a LineFile (a BlockFile if `binary`) when it is a regular file we may
    cut back (`> out.log`), else through sys.stdout (a pipe, a terminal, or a test's capture)."""
    import fcntl
    import sys
    try:
        fd = sys.stdout.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode) and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            sys.stdout.flush()
            return BlockFile(None, fd=fd) if binary else LineFile(None, fd=fd)
    except (OSError, ValueError, AttributeError):  # no real descriptor behind sys.stdout
        pass
    return StdoutLines(binary)


def open_lines(path: str) -> LineFile | StdoutLines:
    """An output file named on the command line; '-' is standard output, as for tcpdump -w."""
    return stdout_lines() if path == "-" else LineFile(path)  # type: ignore[return-value]


def check_writable(path: str) -> None:
    """Refuse now, with the system's reason, an output path that could not be created later,
    without creating it (`read` opens its log only once there is something to write)."""
    import errno as e
    try:
        if os.path.isdir(path):
            raise OSError(e.EISDIR, os.strerror(e.EISDIR))
        target, mode = (path, os.W_OK) if os.path.exists(path) else \
            (os.path.dirname(os.path.abspath(path)), os.W_OK | os.X_OK)
        os.stat(target)  # a missing directory, or one we may not look into, says so here
        if not os.access(target, mode):
            readonly = os.statvfs(target).f_flag & os.ST_RDONLY
            code = e.EROFS if readonly else e.EACCES
            raise OSError(code, os.strerror(code))
    except OSError as exc:
        raise SnifferError(f"{path}: cannot write: {exc.strerror}") from None
