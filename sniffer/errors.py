"""One exception hierarchy. The CLI maps every `SnifferError` to a one-line message and exit 2."""


class SnifferError(Exception):
    """A problem the user can act on (bad input, bad option); never shown as a traceback."""


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
