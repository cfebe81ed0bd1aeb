"""Write the Rust core's tunnel test vectors from the Python reference (run after changing either):

    python tests/gen_tunnel_vectors.py && (cd core && cargo fmt)

core/src/tunnels/vectors.rs holds payloads (valid messages of every tunnel, built by hand,
every truncation of each, flipped bits, random bytes) and the answer of every Python
decapsulator, of both detection tests and of the detector walk for each, plus exact_ip on
random offsets and versions, and the UDP port and IP protocol tables. core/src/tunnels/tests.rs
holds the Rust module to them, so `cargo test` compares the two without running Python.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sniffer import tunnels  # noqa: E402
from sniffer.tunnels import ayiya, geneve, gre, gtp, ipip, teredo, vxlan  # noqa: E402

OUT = ROOT / "core" / "src" / "tunnels" / "vectors.rs"
# The Rust enum Decapsulator's order (Decapsulator::ALL).
DECAPS = [ayiya.ayiya, geneve.geneve, gre.gre, gtp.gtp, ipip.ipv4_in_ip, ipip.ipv6_in_ip,
          teredo.teredo, vxlan.vxlan]
TEREDO_SRC = bytes.fromhex("20010000" "4136e378" "8000" "63bf" "3fff" "fdd2")
PLAIN_SRC = bytes.fromhex("fe80000000000000" "0000000000000001")


def ipv4(data: bytes = b"ab", proto: int = 17, pad: int = 0) -> bytes:
    body = struct.pack("!HHHH", 1234, 53, 8 + len(data), 0) + data if proto == 17 else data
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + body + bytes(pad)


def ipv6(data: bytes = b"xy", nh: int = 17, src: bytes = PLAIN_SRC, dst: bytes = PLAIN_SRC,
         pad: int = 0, plen: int | None = None) -> bytes:
    body = struct.pack("!HHHH", 1234, 53, 8 + len(data), 0) + data if nh == 17 else data
    return struct.pack("!IHBB16s16s", 0x60000000, len(body) if plen is None else plen, nh, 64,
                       src, dst) + body + bytes(pad)


def eth(packet: bytes, ethertype: int = 0x0800) -> bytes:
    return bytes.fromhex("020000000002" "020000000001") + struct.pack("!H", ethertype) + packet


def gre_hdr(flags: int, proto: int) -> bytes:
    n = sum(4 for bit in (0x8000, 0x2000, 0x1000, 0x0080) if flags & bit)
    return struct.pack("!HH", flags, proto) + bytes(range(1, n + 1))


def bases() -> list[bytes]:
    """Valid (and nearly valid) messages of every tunnel."""
    out: list[bytes] = []
    # AYIYA: identity 2**idlen bytes, signature siglen*4 bytes; "forward" (opcode 1) carries.
    for b0, b1, b2, nh, inner in ((0x41, 0x52, 0x11, 41, ipv6()), (0x41, 0x52, 0x11, 4, ipv4()),
                                  (0x01, 0x00, 0x01, 4, ipv4()), (0x41, 0x52, 0x10, 41, b""),
                                  (0x21, 0x12, 0x11, 17, ipv4()), (0x41, 0x52, 0x11, 41, b""),
                                  (0x61, 0x52, 0x11, 4, ipv4())):
        hdr = 8 + (1 << (b0 >> 4)) + (b1 >> 4) * 4
        out.append(bytes([b0, b1, b2, nh]) + b"\x5f\x00\x00\x01" + bytes(range(hdr - 8)) + inner)
    out.append(bytes([0xF1, 0x52, 0x11, 4]) + bytes(40))  # a 32 KiB identity: truncated
    # Geneve: version 0, options, protocol.
    for optlen, proto, inner in ((0, 0x6558, eth(ipv4())), (2, 0x0800, ipv4()), (1, 0x86DD, ipv6()),
                                 (0, 0x1234, ipv4()), (0, 0x0800, b""), (0x3F, 0x0800, ipv4())):
        head = bytes([optlen, 0, proto >> 8, proto & 0xFF, 0, 0, 1, 0])
        out.append(head + bytes(optlen * 4) + inner)
    out.append(bytes([0x40, 0, 0x65, 0x58, 0, 0, 1, 0]) + eth(ipv4()))
    # VXLAN.
    out.append(bytes([0x08, 0, 0, 0, 0, 0, 1, 0]) + eth(ipv4()))
    out.append(bytes([0x00, 0, 0, 0, 0, 0, 1, 0]) + eth(ipv4()))
    out.append(bytes([0x08, 0, 0, 0, 0, 0, 1, 0]))
    # GRE version 0.
    for flags in (0x0000, 0x8000, 0x2000, 0x1000, 0xB000, 0x4000, 0x0008, 0x0080):
        out.append(gre_hdr(flags, 0x0800) + ipv4())
    out.append(gre_hdr(0x2000, 0x86DD) + ipv6())
    out.append(gre_hdr(0x0000, 0x6558) + eth(ipv4()))
    out.append(gre_hdr(0x0000, 0x88BE) + eth(ipv4()))  # ERSPAN I
    out.append(gre_hdr(0x1000, 0x88BE) + bytes(8) + eth(ipv4()))  # ERSPAN II
    out.append(gre_hdr(0x1000, 0x22EB) + bytes(12) + eth(ipv4()))  # ERSPAN III
    out.append(gre_hdr(0x1000, 0x22EB) + bytes(11) + b"\x01" + bytes(8) + eth(ipv4()))
    for proto in (0x8200, 0x8210, 0x8300, 0x8370, 0x8380, 0x9000, 0x9001, 0x8201):
        out.append(gre_hdr(0x0000, proto) + bytes.fromhex("0801") + bytes(22))
    # GRE version 1 (PPTP): key always, sequence and ack optional, then PPP.
    for flags, ppp, inner in ((0x3081, 0x0021, ipv4()), (0x2001, 0x0057, ipv6()),
                              (0x3001, 0x0021, ipv4(pad=3)), (0x2081, 0xC021, b"\x01\x02\x00\x04"),
                              (0x2001, 0x0021, ipv6()), (0x2001, 0x0057, ipv4())):
        out.append(gre_hdr(flags, 0x880B) + struct.pack("!BBH", 0xFF, 0x03, ppp) + inner)
    out.append(gre_hdr(0x2001, 0x0800) + ipv4())
    out.append(gre_hdr(0x0002, 0x0800) + ipv4())
    # GTPv1: G-PDU plain, with sequence, with an extension chain; echo; GTP'; version 2.
    def gtp_msg(flags: int, msg: int, tail: bytes, inner: bytes) -> bytes:
        return struct.pack("!BBHI", flags, msg, len(tail) + len(inner), 0x11223344) + tail + inner
    out.append(gtp_msg(0x30, 0xFF, b"", ipv4()))
    out.append(gtp_msg(0x30, 0xFF, b"", ipv6()))
    out.append(gtp_msg(0x32, 0xFF, b"\x00\x07\x00\x00", ipv4()))
    chain = b"\x00\x00\x00\x85" + b"\x01\x10\x00\xC0" + b"\x02" + bytes(7)  # two extensions
    out.append(gtp_msg(0x34, 0xFF, chain, ipv4()))
    out.append(gtp_msg(0x34, 0xFF, b"\x00\x00\x00\x85" + b"\x00\x10\x00\x00", ipv4()))
    out.append(gtp_msg(0x30, 0xFF, b"", ipv4(pad=2)))
    out.append(gtp_msg(0x30, 0xFF, b"", eth(ipv4())))
    out.append(gtp_msg(0x32, 0x01, b"\x00\x01\x00\x00", b""))
    out.append(gtp_msg(0x20, 0xFF, b"", ipv4()))
    out.append(gtp_msg(0x48, 0x20, b"", bytes(12)))
    # Teredo: bare IPv6, origin indication, authentication + origin, bubble with trailing bytes.
    origin = bytes.fromhex("0000" "f227" "be1af0f0")
    auth = bytes.fromhex("0001" "02" "03") + b"id" + b"key" + bytes(8) + b"\x00"
    out.append(ipv6(src=TEREDO_SRC))
    out.append(ipv6(dst=TEREDO_SRC))
    out.append(ipv6())
    out.append(origin + ipv6(src=TEREDO_SRC))
    out.append(origin + ipv6())
    out.append(auth + origin + ipv6())
    out.append(auth + ipv6())
    out.append(origin + origin + ipv6())
    out.append(ipv6(b"", nh=59, pad=5))
    out.append(ipv6(b"", nh=59))
    out.append(ipv6(pad=2, src=TEREDO_SRC))
    out.append(auth + origin + ipv6(b"", nh=59, pad=3, src=TEREDO_SRC))
    # IP in IP.
    out.append(ipv4())
    out.append(ipv4(pad=1))
    out.append(ipv4(b"hello", proto=6))
    out.append(ipv6(b""))
    out.append(ipv6(pad=4))
    out.append(ipv6(plen=0))
    return out


def answer(result) -> str:
    if isinstance(result, tuple):
        link, off, kind = result
        return f"{link} {off} {kind}"
    if isinstance(result, str):
        return "!" + result
    assert result is None
    return "-"


def detect(data: bytes) -> str:
    for test, fn in tunnels.UDP_DETECTORS:
        if test(data):
            return fn.__name__
    return "-"


def main() -> None:
    rng = random.Random(14)
    payloads = bases()
    n_bases = len(payloads)
    prefixes = [b"\x30\xff", b"\x32\xff", b"\x34\xff", b"\x08", b"\x00\x00", b"\x00\x01", b"\x60",
                b"\x41\x52\x11", b"\x45", b"\x20\x01", b"\x30\x81\x88\x0b", b"\x00\x00\x22\xeb",
                b"\x10\x00\x88\xbe", b"\x00\x00\x65\x58", b"\x01\x00\x08\x00"]
    for i in range(900):
        size = rng.choice([rng.randrange(0, 16), rng.randrange(0, 64), rng.randrange(40, 90)])
        data = bytearray(rng.randbytes(size))
        if i % 3:
            prefix = rng.choice(prefixes)
            data[:len(prefix)] = prefix
        payloads.append(bytes(data))

    answers: dict[str, int] = {}

    def ans(text: str) -> int:
        return answers.setdefault(text, len(answers))

    cases: list[tuple[int, int, int, int, list[int]]] = []

    def case(index: int, length: int, pos: int = 0, mask: int = 0) -> None:
        data = bytearray(payloads[index][:length])
        if mask and pos < len(data):
            data[pos] ^= mask
        data = bytes(data)
        cols = [ans(answer(fn(data))) for fn in DECAPS]
        cols.append(ans(str(ayiya._looks_like_ayiya(data))))
        cols.append(ans(str(teredo._looks_like_teredo(data))))
        cols.append(ans(detect(data)))
        cases.append((index, length, pos, mask, cols))

    for index in range(n_bases):
        data = payloads[index]
        for length in range(len(data) + 1):
            case(index, length)
        for _ in range(40):
            case(index, len(data), rng.randrange(min(len(data), 56)), 1 << rng.randrange(8))
    for index in range(n_bases, len(payloads)):
        case(index, len(payloads[index]))

    exact: list[tuple[int, int, int, int, int]] = []
    for _ in range(2500):
        index = rng.randrange(len(payloads))
        size = len(payloads[index])
        length = rng.randrange(size + 1)
        off = rng.choice([0, 0, rng.randrange(length + 3), rng.randrange(100)])
        version = rng.choice([0, 4, 6, 5])
        data = payloads[index][:length]
        got = tunnels.exact_ip(data, off, version or None)
        exact.append((index, length, off, version, ans("-" if got is None else "!" + got)))
    # Inner IP packets at offsets, exact or not.
    for index in range(n_bases):
        data = payloads[index]
        for off in range(min(len(data), 48)):
            if data[off] >> 4 in (4, 6):
                for version in (0, 4, 6):
                    got = tunnels.exact_ip(data, off, version or None)
                    text = "-" if got is None else "!" + got
                    exact.append((index, len(data), off, version, ans(text)))

    def row(name: str, kind: str, items: list[str]) -> str:
        return f"pub(super) const {name}: {kind} = &[{', '.join(items)}];"

    lines = [
        "// Made by tests/gen_tunnel_vectors.py from sniffer.tunnels: payloads and the Python",
        "// answers: \"link off KIND\" (inner frame), \"!name\" (anomaly), \"-\" (None, or no",
        "// detector), True/False (a detection test), a function name (the detector walk).",
        "",
        "/// Decapsulators (Python function names), in the order of the answer columns.",
        row("DECAPS", "&[&str]", [f'"{fn.__name__}"' for fn in DECAPS]),
        "/// UDP_DETECTORS, in registration order.",
        row("DETECTORS", "&[&str]", [f'"{fn.__name__}"' for _, fn in tunnels.UDP_DETECTORS]),
        "/// UDP_PORTS: responder port, function.",
        row("UDP_PORTS", "&[(u16, &str)]",
            [f'({k}, "{fn.__name__}")' for k, fn in sorted(tunnels.UDP_PORTS.items())]),
        "/// IP_PROTOS: protocol, function.",
        row("IP_PROTOS", "&[(u8, &str)]",
            [f'({k}, "{fn.__name__}")' for k, fn in sorted(tunnels.IP_PROTOS.items())]),
        "/// IP_LEVEL tunnel types.",
        row("IP_LEVEL", "&[&str]", [f'"{k}"' for k in sorted(tunnels.IP_LEVEL)]),
        f"pub(super) const MAX_DEPTH: usize = {tunnels.MAX_DEPTH};",
        "",
        "/// Every distinct answer; the tables below index it.",
        "pub(super) const ANSWERS: &[&str] = &[",
    ]
    lines += [f'    "{text}",' for text in answers]
    lines += ["];", "", "/// Payloads, hex.", "pub(super) const PAYLOADS: &[&str] = &["]
    lines += [f'    "{data.hex()}",' for data in payloads]
    lines += ["];", "",
              "/// (payload, length, xor position, xor mask, answers: DECAPS..., looks_like_ayiya,",
              "/// looks_like_teredo, udp_detect).",
              "pub(super) const CASES: &[(u16, u16, u16, u8, [u16; 11])] = &["]
    lines += [f"    ({i}, {n}, {p}, {m}, [{', '.join(map(str, cols))}]),"
              for i, n, p, m, cols in cases]
    lines += ["];", "", "/// exact_ip: (payload, length, offset, version (0: None), answer).",
              "pub(super) const EXACT: &[(u16, u16, u16, u8, u16)] = &["]
    lines += [f"    ({i}, {n}, {o}, {v}, {a})," for i, n, o, v, a in exact]
    lines += ["];"]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{OUT}: {len(payloads)} payloads, {len(cases)} cases, {len(exact)} exact_ip, "
          f"{len(answers)} answers, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
