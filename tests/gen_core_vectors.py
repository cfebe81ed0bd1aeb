"""Write the Rust core's test vectors from the Python reference (run after changing either):

    python tests/gen_core_vectors.py && (cd core && cargo fmt)

core/src/flows/uid_vectors.rs (uids and Python float reprs), core/src/output/zeek_vectors.rs
(conn.log rows of corpus records and edge cases). The Rust tests include them, so `cargo test`
holds the core to the Python engine without running Python. Community ID vectors are few and
written inline in core/src/flows/community_id.rs.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import random
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sharedkit import CORPUS  # noqa: E402

from sniffer.capture import open_capture  # noqa: E402
from sniffer.config import Settings  # noqa: E402
from sniffer.engine import Engine, Finished  # noqa: E402
from sniffer.flows.uid import make_uid  # noqa: E402
from sniffer.output.zeek import format_row  # noqa: E402
from sniffer.stats import Stats  # noqa: E402


def rstr(v: str) -> str:
    """An exact Rust string literal."""
    out = '"'
    for ch in v:
        o = ord(ch)
        if ch == '"':
            out += '\\"'
        elif ch == "\\":
            out += "\\\\"
        elif 0x20 <= o < 0x7F:
            out += ch
        else:
            out += f"\\u{{{o:x}}}"
    return out + '"'


def bits(v: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def f64(v: float) -> str:
    return f"f64::from_bits(0x{bits(v):016x})"


def uid_vectors() -> str:
    keys = [
        (b"\n\x00\x00\x01", 12345, b"\n\x00\x00\x02", 80),
        (b"\xc0\xa8\x01\x01", 53000, b"\x08\x08\x08\x08", 53, 17),
        (b"'\"\\ab", 1, b"zz\x7f\x80\xff", 2),
        (b"a'b", 0, b"c", 0, 6),
        (b'a"b', 0, b"c'd\"", 0, 47),
        (b"\t\r\n ~", 8, b"\x1f ", 0, 1, 1),
        (b"\x20\x01\x0d\xb8" + bytes(12), 0, b"\xfe\x80" + bytes(13) + b"\x01", 0, 58),
        ("tunnel", b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"),
    ]
    tss = [0.0, 1e-05, 0.0001, 1.5, 1000.0, 1234567890.123456, 1700000000.1234567, 1e16,
           9999999999999998.0, 1.5e22, 123456789.0, 5e-324, 2.5e-7, 0.1, 1 / 3,
           1436.9999999999998]

    def part(p) -> str:
        if isinstance(p, bytes):
            return 'KeyPart::Bytes(b"' + "".join(f"\\x{c:02x}" for c in p) + '")'
        if isinstance(p, int):
            return f"KeyPart::Int({p})"
        return f"KeyPart::Str({rstr(p)})"

    rows = []
    for i, (k, ts) in enumerate(itertools.product(keys, tss)):
        serial = [0, 1, 65537, 2**40 + 3][i % 4]
        rows.append(f"    (&[{', '.join(part(p) for p in k)}], 0x{bits(ts):016x}, {serial}, "
                    f"{rstr(repr((k, ts, serial)))}, {rstr(make_uid(k, ts, serial))}),")
    rng = random.Random(7)
    vals = [rng.randint(0, 2**32) + rng.randint(0, 10**6) / 1e6 for _ in range(300)]
    vals += [rng.randint(0, 2**32) + rng.randint(0, 10**9) / 1e9 for _ in range(200)]
    for _ in range(300):
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if x == x and abs(x) != float("inf"):
            vals.append(x)
    floats = [f"    (0x{bits(v):016x}, {rstr(repr(v))})," for v in vals]
    return ("// Made by tests/gen_core_vectors.py from sniffer.flows.uid.make_uid: key, ts bits, "
            "serial, repr, uid.\n"
            "pub(super) const VECTORS: &[(&[KeyPart<'static>], u64, u64, &str, &str)] = &[\n"
            + "\n".join(rows) + "\n];\n\n// Random timestamps and doubles, with Python's repr.\n"
            "pub(super) const FLOATS: &[(u64, &str)] = &[\n" + "\n".join(floats) + "\n];\n")


def zeek_vectors() -> str:
    rng = random.Random(3)
    files = sorted(glob.glob(str(CORPUS / "zeek" / "**" / "*.pcap"), recursive=True))[:60]
    conns = []
    for f in files + [str(ROOT / "pcaps" / "demo.pcap")]:
        stats = Stats()
        engine = Engine(Settings(), stats)
        try:
            engine.feed(open_capture([f], stats))
        except Exception:  # a damaged corpus file: what was read is enough
            pass
        engine.finish()
        found = [ev.conn for ev in engine.take() if isinstance(ev, Finished)]
        conns += rng.sample(found, min(6, len(found)))
    base = conns[0]
    conns += [
        dataclasses.replace(base, history="", tunnel_parents=[], duration=None, orig_bytes=None,
                            resp_bytes=None, local_orig=None, local_resp=None,
                            community_id=None),
        dataclasses.replace(base, history="-", service="(empty)",
                            tunnel_parents=["CabC", "C,x\\y"], local_orig=True,
                            local_resp=False),
        dataclasses.replace(base, uid="#weird", history="a\tb\x01\x7f\x9f\u2028é", service=""),
        dataclasses.replace(base, ts=1234567890.1234565, duration=0.0000005, orig_bytes=0),
        dataclasses.replace(base, ts=5e-7, duration=2.5e-7, history="ShAdDaFf",
                            tunnel_parents=[""]),
    ]

    def opt(v, f) -> str:
        return "None" if v is None else f"Some({f(v)})"

    def text(v: str) -> str:
        return rstr(v) + ".into()"

    def flag(v: bool) -> str:
        return "true" if v else "false"

    lines = []
    for c in conns:
        fields = [
            f"ts: {f64(c.ts)}", f"uid: {text(c.uid)}", f"orig_h: {text(c.orig_h)}",
            f"orig_p: {c.orig_p}", f"resp_h: {text(c.resp_h)}", f"resp_p: {c.resp_p}",
            f"proto: {text(c.proto)}", f"ip_proto: {c.ip_proto}",
            f"service: {opt(c.service, text)}", f"duration: {opt(c.duration, f64)}",
            f"orig_bytes: {opt(c.orig_bytes, str)}", f"resp_bytes: {opt(c.resp_bytes, str)}",
            f"conn_state: {text(c.conn_state)}", f"local_orig: {opt(c.local_orig, flag)}",
            f"local_resp: {opt(c.local_resp, flag)}", f"missed_bytes: {c.missed_bytes}",
            f"history: {text(c.history)}", f"orig_pkts: {c.orig_pkts}",
            f"orig_ip_bytes: {c.orig_ip_bytes}", f"resp_pkts: {c.resp_pkts}",
            f"resp_ip_bytes: {c.resp_ip_bytes}",
            "tunnel_parents: vec![" + ", ".join(text(t) for t in c.tunnel_parents) + "]",
            f"community_id: {opt(c.community_id, text)}",
        ]
        lines.append("        (ConnRecord { " + ", ".join(fields) + f" }}, {rstr(format_row(c))}),")
    return ("// Made by tests/gen_core_vectors.py: records of the Python engine (corpus traces and "
            "edge cases)\n// and the row sniffer.output.zeek.format_row writes for each.\n"
            "pub(super) fn vectors() -> Vec<(ConnRecord, &'static str)> {\n    vec![\n"
            + "\n".join(lines) + "\n    ]\n}\n")


def main() -> None:
    (ROOT / "core" / "src" / "flows" / "uid_vectors.rs").write_text(uid_vectors())
    (ROOT / "core" / "src" / "output" / "zeek_vectors.rs").write_text(zeek_vectors())


if __name__ == "__main__":
    main()
