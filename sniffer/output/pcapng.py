"""Streaming pcapng writer for `sniffer live -w FILE.pcapng`.

The recording must let `sniffer read FILE.pcapng` reproduce the live run offline, including what
no peer offers after the fact (socket attribution, kernel verdicts): packets go into Enhanced
Packet Blocks, and sniffer's own observations into Custom Blocks that carry UTF-8 JSON
(``{"sniffer": 1, "kind": ..., "ts": ..., ...}``) and that every other pcapng tool skips.

Layout: one little-endian section (SHB with ``shb_userappl`` and ``shb_os``, section length -1
because we stream), one IDB per interface (``if_name``, ``if_tsresol`` = 9: nanoseconds), then
EPBs and Custom Blocks in the order they are given.

Crash safety: every block is handed to the file in one ``write`` call, and the file is never
rewritten, so at every `flush()` (and after `close()`) the bytes on disk are whole blocks, a
valid pcapng file; a write that fails (a full disk) cuts the file back to its last whole block
and stops the run with one line (sniffer.output.outfile). A crash between flushes leaves at most a cut last block, which readers
(ours: ``truncated_final_record``; libpcap, Wireshark) treat as the end of the capture.
"""

from __future__ import annotations

import json
import os
import struct
import time
from typing import BinaryIO

from sniffer import __version__
from sniffer.capture.pcapng import SNIFFER_PENS

SHB, IDB, EPB = 0x0A0D0D0A, 1, 6
#: Custom Block that pcapng rewriters (editcap, mergecap) may copy into new files: our records
#: describe the packets, so they stay meaningful after cutting or merging the capture.
CUSTOM_COPYABLE = 0x00000BAD
#: The Private Enterprise Number that marks our Custom Blocks. The pcapng spec requires an
#: IANA-assigned PEN and reserves none for private or experimental use; sniffer has no PEN of
#: its own (yet), so it uses 32473, the PEN IANA assigned for documentation and examples
#: (RFC 5612), which by construction belongs to no real vendor whose blocks we could misread.
#: Our payload is additionally self-identifying (a JSON object with ``"sniffer"`` and ``"kind"``),
#: so another 32473 user's block is rejected (counted), not misread. When the project registers
#: its own PEN (free at IANA), put it first in `SNIFFER_PENS` (what the reader accepts; the first is
#: written) and keep 32473 there so old recordings still read.
PEN = SNIFFER_PENS[0]
FORMAT_VERSION = 1  # the "sniffer" key of every custom payload

_BOM = 0x1A2B3C4D
_OPT_END = 0
_SHB_HARDWARE, _SHB_OS, _SHB_USERAPPL = 2, 3, 4
_IF_NAME, _IF_TSRESOL = 2, 9
_EPB_FLAGS = 2
_NS = 1_000_000_000
_RESERVED = frozenset({"sniffer", "kind", "ts"})

# Precompiled formats: block header, EPB fixed part (header + 5 fields), trailer / PEN word.
_HDR = struct.Struct("<II")
_EPB_HEAD = struct.Struct("<IIIIIII")
_U32 = struct.Struct("<I")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by len % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + _PAD[len(value) & 3]


def _options(opts: list[bytes]) -> bytes:
    return b"".join(opts) + struct.pack("<HH", _OPT_END, 0) if opts else b""


def _block(btype: int, body: bytes) -> bytes:
    blen = 12 + len(body)
    return _HDR.pack(btype, blen) + body + _U32.pack(blen)


def _epb_flags(pkttype: int) -> int:
    """epb_flags for a Linux sll_pkttype: direction in bits 0-1, reception type in bits 2-4."""
    if pkttype == 4:  # PACKET_OUTGOING
        return 2  # outbound (reception type does not apply)
    # PACKET_HOST, _BROADCAST, _MULTICAST, _OTHERHOST -> unicast, broadcast, multicast, promisc
    return 1 | ((1, 3, 2, 4)[pkttype] << 2)


# The options tail of an EPB per sll_pkttype (0-4); other values (PACKET_LOOPBACK, ...) and None
# write no option: direction unknown.
_EPB_OPTS: dict[int | None, bytes] = {
    t: _options([_option(_EPB_FLAGS, _U32.pack(_epb_flags(t)))]) for t in range(5)}


class PcapngWriter:
    """Writes a pcapng file block by block; see the module docstring.

    `path_or_file`: a path (``-`` is standard output) or a binary file object, which the writer
    then flushes but does not close.
    """

    def __init__(self, path_or_file: str | os.PathLike | BinaryIO,
                 buffering: int = 1 << 16) -> None:
        if isinstance(path_or_file, (str, os.PathLike)):
            if os.fspath(path_or_file) == "-":  # as LineFile or BlockFile, but not closed
                from sniffer.output.outfile import stdout_lines
                self._f: BinaryIO = stdout_lines(binary=True)  # type: ignore[assignment]
                self._owned = True
            else:  # a full disk cuts the file back to its last whole block (BlockFile)
                from sniffer.output.outfile import BlockFile
                self._f = BlockFile(os.fspath(path_or_file), buffering)  # type: ignore[assignment]
                self._owned = True
        else:
            self._f = path_or_file
            self._owned = False
        self._write = self._f.write
        self._ifaces = 0
        self.closed = False
        u = os.uname()
        opts = [_option(_SHB_HARDWARE, u.machine.encode()),
                _option(_SHB_OS, f"{u.sysname} {u.release}".encode()),
                _option(_SHB_USERAPPL, f"sniffer {__version__}".encode())]
        body = struct.pack("<IHHq", _BOM, 1, 0, -1) + _options(opts)
        self._write(_block(SHB, body))

    def add_interface(self, name: str, linktype: int, snaplen: int = 262144) -> int:
        """Write an Interface Description Block; returns the interface id for `packet`."""
        opts = [_option(_IF_NAME, name.encode("utf-8", "surrogateescape")),
                _option(_IF_TSRESOL, bytes((9,)))]
        self._write(_block(IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(opts)))
        self._ifaces += 1
        return self._ifaces - 1

    def packet(self, iface_id: int, ts: float | tuple[int, int], data: bytes, wirelen: int,
               direction: int | None = None) -> None:
        """Write one Enhanced Packet Block.

        `ts`: seconds since the epoch: ``(sec, nsec)`` keeps nanoseconds; a float is rounded
        to the nearest microsecond (all a float holds at today's epoch; see below). `data`:
        the captured bytes, written as given; `wirelen` is raised to ``len(data)`` if smaller
        (an EPB may not capture more than the wire carried).
        `direction`: the Linux ``sll_pkttype`` (0-3 inbound, 4 outbound) or None (unknown).
        """
        if iface_id >= self._ifaces or iface_id < 0:
            raise ValueError(f"interface {iface_id} was not added")
        if type(ts) is tuple:
            t = ts[0] * _NS + ts[1]
        else:
            # A float near today's epoch resolves only ~0.24 us, so nanoseconds taken from it
            # would be noise; worse, the float sec + usec/1e6 (what readers yield, Zeek's
            # formula) lies up to 0.12 us *below* its microsecond, and its nearest nanosecond
            # would read back one microsecond early. The nearest whole microsecond round-trips
            # bit-identically. (ts - sec is exact; EPB timestamps are unsigned: ts >= 0.)
            sec = int(ts)
            t = sec * _NS + round((ts - sec) * 1e6) * 1000
        caplen = len(data)
        if wirelen < caplen:
            wirelen = caplen
        opts = _EPB_OPTS.get(direction, b"")
        pad = _PAD[caplen & 3]
        blen = 32 + caplen + len(pad) + len(opts)
        self._write(b"".join((
            _EPB_HEAD.pack(EPB, blen, iface_id, t >> 32, t & 0xFFFFFFFF, caplen, wirelen),
            data, pad, opts, _U32.pack(blen))))

    def custom(self, kind: str, payload: dict, ts: float | None = None) -> None:
        """Write a copyable Custom Block holding ``{"sniffer": 1, "kind", "ts", **payload}``.

        `ts` defaults to the payload's ``ts``, else the wall clock now (the clock packet
        timestamps use). `payload` must be JSON-serialisable; it may repeat ``kind`` and ``ts``
        with the same values (an event that names its own kind), never contradict them, and
        may not use ``sniffer``.
        """
        if ts is None:
            ts = payload.get("ts")
            if ts is None:
                ts = time.time()
        if "sniffer" in payload or payload.get("kind", kind) != kind \
                or payload.get("ts", ts) != ts:
            raise ValueError(f"custom payload contradicts its frame: kind={kind!r} ts={ts!r}, "
                             f"payload has { {k: payload[k] for k in _RESERVED & payload.keys()} }")
        rec = {"sniffer": FORMAT_VERSION, "kind": kind, "ts": ts}
        rec.update(payload)
        data = json.dumps(rec, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
        # No options follow, so the data runs to the trailer; the zero padding is not JSON and
        # is stripped by the reader (JSON text never ends in NUL).
        self._write(_block(CUSTOM_COPYABLE, _U32.pack(PEN) + data + _PAD[len(data) & 3]))

    def flush(self) -> None:
        """Push every block written so far to the OS: the file on disk is then valid pcapng."""
        self._f.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._owned:  # flushes, unless a failed write was already reported
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
