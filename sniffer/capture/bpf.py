"""Capture filters (`-f EXPR`): compile a tcpdump expression to classic BPF and attach it.

Compiling: scapy 2.8's `scapy.arch.common.compile_filter` calls libpcap's `pcap_compile`
through ctypes (`scapy.libs.winpcapy`, which loads libpcap.so.0.8 here, the library tcpdump
uses); it no longer shells out to `tcpdump -ddd`. Given a `linktype` it compiles on a "dead"
handle, so it needs neither root nor the interface, and a bad expression comes back as a
`Scapy_Exception` carrying libpcap's reason. If scapy cannot load libpcap (ImportError) we fall
back to `tcpdump -ddd`, which prints the same program. scapy is imported only here, only when
a filter is given: the import costs about 0.3-0.6 s of start-up.

The program is then adjusted the way libpcap's pcap-linux.c adjusts it for a live socket:
- `ret #65535` (scapy compiles with its MTU as the snaplen) becomes `ret #snaplen`: the kernel
  truncates every accepted packet to the value a filter returns.
- On a cooked socket (SOCK_DGRAM, linktype 113) the kernel runs the filter on the packet
  *without* the 16-byte SLL header we synthesize later, so `cook()` shifts every load by 16
  and maps the SLL packet-type and protocol fields to the kernel's ancillary loads
  (libpcap's `fix_offset`). A load of any other SLL byte cannot run in the kernel; then the
  filter runs here, in Python, on the synthesized frame (`run()`), as libpcap falls back to
  filtering in user space.
"""

from __future__ import annotations

import ctypes
import shutil
import socket
import struct
import subprocess

from sniffer.errors import UsageError

Insn = tuple[int, int, int, int]  # (code, jt, jf, k), struct sock_filter

SO_ATTACH_FILTER = 26
SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4
SLL_HDR_LEN = 16
_SCAPY_SNAPLEN = 0xFFFF  # scapy.data.MTU, what compile_filter passes to pcap_open_dead
_TCPDUMP_DLT = {1: "EN10MB", 113: "LINUX_SLL"}

# classic BPF opcode fields (linux/bpf_common.h)
_LD, _LDX, _ST, _STX, _ALU, _JMP, _RET, _MISC = range(8)
_W, _H, _B = 0x00, 0x08, 0x10
_IMM, _ABS, _IND, _MEM, _LEN, _MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
_X = 0x08
_RET_K = _RET | 0x00


def compile_bpf(expr: str, linktype: int, snaplen: int) -> list[Insn]:
    """`expr` as a classic BPF program for frames of `linktype`; UsageError if it is bad."""
    try:
        from scapy.arch.common import compile_filter
        from scapy.error import Scapy_Exception
    except ImportError:  # pragma: no cover - scapy is a dependency
        return _tcpdump(expr, linktype, snaplen)
    try:
        prog = compile_filter(expr, linktype=linktype)
    except ImportError:  # scapy found no libpcap
        return _tcpdump(expr, linktype, snaplen)
    except Scapy_Exception as exc:
        raise UsageError(_reason(expr, str(exc))) from None
    # scapy declares k signed: ancillary offsets (SKF_AD_OFF + n) and masks come back negative
    insns = [(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF) for i in prog.bf_insns[: prog.bf_len]]
    return [(c, jt, jf, snaplen if c == _RET_K and k == _SCAPY_SNAPLEN else k)
            for c, jt, jf, k in insns]


def _reason(expr: str, msg: str) -> str:
    """One line: the expression and libpcap's reason (scapy wraps it in its own sentence)."""
    head = f"Failed to compile filter expression {expr!r} ("
    why = msg[len(head):-1] if msg.startswith(head) and msg.endswith(")") else msg
    why = " ".join(why.split()) or "cannot compile it"
    return f"bad capture filter {expr!r}: {why}"


def _tcpdump(expr: str, linktype: int, snaplen: int) -> list[Insn]:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None or linktype not in _TCPDUMP_DLT:
        raise UsageError(f"cannot compile capture filter {expr!r}: needs libpcap or tcpdump")
    proc = subprocess.run([tcpdump, "-y", _TCPDUMP_DLT[linktype], "-s", str(snaplen), "-ddd",
                           expr], capture_output=True, text=True)
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        raise UsageError(_reason(expr, err[-1].removeprefix("tcpdump: ") if err else ""))
    nums = proc.stdout.split()
    return [tuple(map(int, nums[i:i + 4])) for i in range(1, len(nums), 4)]  # type: ignore[misc]


def cook(prog: list[Insn]) -> list[Insn] | None:
    """The program for the kernel side of a SOCK_DGRAM socket, or None: run it in user space."""
    out: list[Insn] = []
    for code, jt, jf, k in prog:
        cls, mode = code & 0x07, code & 0xE0
        if cls in (_LD, _LDX) and mode in (_ABS, _IND, _MSH) and k < 0x80000000:
            if k >= SLL_HDR_LEN:
                k -= SLL_HDR_LEN
            elif k == 0 and mode == _ABS:
                k = (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF
            elif k == 14 and mode == _ABS:
                k = (SKF_AD_OFF + SKF_AD_PROTOCOL) & 0xFFFFFFFF
            else:
                return None
        out.append((code, jt, jf, k))
    return out


def attach(sock: socket.socket, prog: list[Insn]) -> None:
    """SO_ATTACH_FILTER: the kernel runs `prog` before a packet reaches the ring."""
    insns = b"".join(struct.pack("=HBBI", *i) for i in prog)
    buf = ctypes.create_string_buffer(insns, len(insns))
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(buf))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def run(prog: list[Insn], pkt: bytes, wirelen: int) -> int:
    """Classic BPF in Python: how many bytes of `pkt` to keep (0: drop it).

    Only for the rare cooked-socket filter the kernel cannot run; it costs tens of
    microseconds a packet, so the hot path never comes here otherwise.
    """
    a = x = 0
    mem = [0] * 16
    pc = 0
    n = len(pkt)
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if cls == _LD or cls == _LDX:
            mode, size = code & 0xE0, code & 0x18
            if mode == _IMM:
                v = k
            elif mode == _LEN:
                v = wirelen
            elif mode == _MEM:
                v = mem[k & 15]
            elif mode == _MSH:
                if k >= n:
                    return 0
                v = (pkt[k] & 0x0F) << 2
            else:
                off = k + x if mode == _IND else k
                width = 4 if size == _W else 2 if size == _H else 1
                if off + width > n:
                    return 0
                v = int.from_bytes(pkt[off:off + width], "big")
            if cls == _LD:
                a = v
            else:
                x = v
        elif cls == _ST:
            mem[k & 15] = a
        elif cls == _STX:
            mem[k & 15] = x
        elif cls == _ALU:
            op, src = code & 0xF0, (x if code & _X else k)
            if op == 0x80:
                a = -a
            elif op in (0x30, 0x90) and src == 0:
                return 0  # division by zero ends the program
            else:
                a = _ALU_OPS[op](a, src)
            a &= 0xFFFFFFFF
        elif cls == _JMP:
            op, src = code & 0xF0, (x if code & _X else k)
            if op == 0x00:
                pc += k
            else:
                pc += jt if _JMP_OPS[op](a, src) else jf
        elif cls == _RET:
            return a if code & 0x18 == 0x10 else k
        else:  # MISC: TAX / TXA
            if code & 0xF8 == 0x80:
                a = x
            else:
                x = a


_ALU_OPS = {
    0x00: lambda a, b: a + b, 0x10: lambda a, b: a - b, 0x20: lambda a, b: a * b,
    0x30: lambda a, b: a // b, 0x40: lambda a, b: a | b, 0x50: lambda a, b: a & b,
    0x60: lambda a, b: a << (b & 31), 0x70: lambda a, b: a >> (b & 31),
    0x90: lambda a, b: a % b, 0xA0: lambda a, b: a ^ b,
}
_JMP_OPS = {
    0x10: lambda a, b: a == b, 0x20: lambda a, b: a > b, 0x30: lambda a, b: a >= b,
    0x40: lambda a, b: bool(a & b),
}
