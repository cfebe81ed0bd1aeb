"""One exception hierarchy. The CLI maps every `SnifferError` to a one-line message and exit 2."""

from sniffer.output.safe import escape_controls


class SnifferError(Exception):
    """A problem the user can act on (bad input, bad option); never shown as a traceback.

    Its text names files, interfaces and namespaces that anyone may have named (a capture
    called ``$'\\e]0;pwned\\a.pcap'``), and the CLI prints it to a terminal: so `str()` shows
    control and bidi characters as escapes. `args` keep the raw text.
    """

    def __str__(self) -> str:
        return escape_controls(super().__str__())


class BadInputError(SnifferError):
    """A capture file that is not a capture, or is corrupt mid-file.

    `path` and `offset` name where: the message the user sees is
    ``<path>: offset <offset>: <reason>``.
    """

    def __init__(self, path: str, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        where = f"{path}: offset {offset}" if offset is not None else path
        super().__init__(f"{where}: {reason}")


class UsageError(SnifferError):
    """A bad option value (for example a malformed CIDR or port list)."""


def core_failure(name: str, e: BaseException, offset: int | None = None) -> BadInputError:
    """The one-line error for a failure of the compiled core reading `name`: its
    `CoreError(offset, message, errno)` (a damaged file, in the Python reader's words) or a
    panic (a bug, caught at the core's boundary) met at `offset`."""
    import os

    from sniffer import _core
    if isinstance(e, _core.CoreError):
        off, message, errno = e.args
        return BadInputError(name, off, os.strerror(errno) if errno else message)
    return BadInputError(name, offset, f"internal error in the compiled core (a bug): {e}")
