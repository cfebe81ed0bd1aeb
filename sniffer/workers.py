"""`sniffer read --workers N`: connections sharded across processes by their host pair.

Why processes: the per-packet path is Python, and threads would share one core. Each worker
reads the whole input (walking the records costs a fraction of decoding them), moves the clock
on every frame, so timers fire at the same frames as in a single process, and decodes and
tracks only the frames whose host pair hashes to it (`owner`). A connection's packets, its
fragments, the tunnels it rides in and the ICMP messages between the same two hosts all share
the outer host pair, so one worker sees all of them.

Each record leaves its worker with a key that says when a single process would have written it:
the frame being read, whether a timer (with its due time and the connection's serial number) or
the packet itself ended it, or the end of the input (in creation order). Serial numbers and
uids depend only on the input (sniffer.flows.table). The parent merges the workers' keyed
streams, so `--workers N` writes the records one process writes, in the same order.

Frames whose IP header is not at a fixed place (MPLS, PPPoE, 802.11 and the other link layers
of docs/tunnels.md) all go to worker 0: a connection seen both through such a link and through
a plain one could be split between two workers. The bounded flow table is per worker
(--max-flows / N each), so when evictions happen they may differ from one process's.
"""

from __future__ import annotations

import heapq
import json
import os
import struct
import tempfile

from sniffer import interrupt
from sniffer.errors import BadInputError, SnifferError, UsageError

_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
_RAW_IP = frozenset({12, 14, 101, 228, 229})
_VERSION = {4: 0x0800, 6: 0x86DD}
_TEREDO = b"\x20\x01\x00\x00"  # 2001:0::/32
_DOUBLE = struct.Struct(">d").pack
FLUSH = "999999999999"  # frame field of the records written at the end of the input


def make_owner(n: int, settings=None):
    """`owner(linktype, data) -> worker`: a symmetric hash of the outer IP addresses.

    Tunnels go to worker 0, all of them: an inner connection can ride between several outer
    host pairs (a Teredo client talks through a relay and straight to its peer), so its outer
    packets must meet in one worker. A tunnel is an IP-in-IP or GRE packet, UDP to or from a
    tunnel port or with a tunnel's signature (sniffer.tunnels), or IPv6 with a Teredo address.
    Link layers without a fixed IP offset are decoded by a private decoder to find the addresses
    (its counters are thrown away; the owner decodes the frame for real).
    """
    from sniffer.tunnels import IP_PROTOS, UDP_DETECTORS, UDP_PORTS

    private = None

    def classify(src: bytes, dst: bytes, proto: int, l4: bytes) -> int:
        if proto in IP_PROTOS:
            return 0
        if proto == 17 and len(l4) >= 8:
            if (l4[0] << 8 | l4[1]) in UDP_PORTS or (l4[2] << 8 | l4[3]) in UDP_PORTS:
                return 0
            payload = l4[8:]
            if any(detect(payload) for detect, _ in UDP_DETECTORS):
                return 0
        if len(src) == 16:
            if src[:4] == _TEREDO or dst[:4] == _TEREDO:
                return 0
            x = int.from_bytes(src, "big") ^ int.from_bytes(dst, "big")
            x = (x ^ x >> 64) & 0xFFFFFFFFFFFFFFFF
        else:
            x = int.from_bytes(src, "big") ^ int.from_bytes(dst, "big")
        return (x * 0x9E3779B97F4A7C15 >> 40) % n

    def decoded(linktype: int, data: bytes) -> int:
        nonlocal private
        if private is None:
            from sniffer.config import Settings
            from sniffer.decode import Decoder
            from sniffer.stats import Stats
            private = Decoder(settings or Settings(), Stats())
        pkt = private.decode(0.0, linktype, data, len(data))
        private.more.clear()
        if pkt is None:  # not IP, damaged, or a fragment still waiting: worker 0
            return 0
        return classify(pkt[0], pkt[1], pkt[2], pkt[4])

    tcp4: dict[bytes, int] = {}  # IPv4 address pair -> worker, for plain TCP frames
    tcp6: dict[bytes, int] = {}

    def by_pair(cache: dict[bytes, int], pair: bytes, half: int) -> int:
        w = cache.get(pair)
        if w is None:
            if len(cache) > 65536:
                cache.clear()
            w = cache[pair] = classify(pair[:half], pair[half:], 6, b"")
        return w

    def owner(linktype: int, data: bytes) -> int:
        # The common cases first, cached by address pair: TCP on untagged Ethernet, IPv4 not
        # a fragment, IPv6 without extension headers. Every worker classifies every frame, so
        # this is most of a worker's cost for the frames it does not own.
        if linktype == 1 and data[23:24] == b"\x06" and data[12:14] == b"\x08\x00" \
                and not (data[20] & 0x3F or data[21]):
            return by_pair(tcp4, data[26:34], 4)
        if linktype == 1 and data[20:21] == b"\x06" and data[12:14] == b"\x86\xdd":
            return by_pair(tcp6, data[22:54], 16)
        if linktype == 1 and len(data) >= 34:
            off, et = 14, data[12] << 8 | data[13]
            while et in _VLAN and len(data) >= off + 4:
                et = data[off + 2] << 8 | data[off + 3]
                off += 4
        elif linktype in _RAW_IP and data:
            off, et = 0, _VERSION.get(data[0] >> 4, 0)
        elif linktype == 113 and len(data) >= 16:  # Linux cooked (SLL)
            off, et = 16, data[14] << 8 | data[15]
        elif linktype == 276 and len(data) >= 20:  # SLL2
            off, et = 20, data[0] << 8 | data[1]
        else:
            return decoded(linktype, data)
        if et == 0x0800 and len(data) >= off + 20:
            ihl = (data[off] & 15) * 4
            if data[off + 6] & 0x3F or data[off + 7]:  # a fragment: by addresses alone
                return classify(data[off + 12:off + 16], data[off + 16:off + 20], 0, b"")
            proto = data[off + 9]
            return classify(data[off + 12:off + 16], data[off + 16:off + 20], proto,
                            data[off + ihl:] if proto == 17 else b"")
        if et == 0x86DD and len(data) >= off + 40:
            proto = data[off + 6]
            return classify(data[off + 8:off + 24], data[off + 24:off + 40], proto,
                            data[off + 40:] if proto == 17 else b"")
        return decoded(linktype, data)

    return owner


def check_args(args) -> None:
    """What a sharded run cannot do (yet): each refusal is one line, exit status 2."""
    if "-" in args.files:
        raise UsageError("--workers: every worker reads the input itself; standard input "
                         "can be read once only (give files)")
    if args.format not in ("zeek", "json"):
        raise UsageError("--workers: write --format zeek or --format json (the table needs "
                         "every record in one process)")
    if args.alerts or args.detect or args.weird_log:
        raise UsageError("--workers: the detectors and --weird-log need one process for now")


def run(args, settings, n: int, output) -> dict:
    """Run `n` workers over args.files, merge their records into `output`; return the stats."""
    from sniffer.output.zeek import DEFAULT_FIELDS, VERDICT_FIELDS

    settings.max_flows = (settings.max_flows + n - 1) // n if settings.max_flows else 0
    tmp = tempfile.mkdtemp(prefix="sniffer-workers-")
    files = [os.path.join(tmp, f"w{i}") for i in range(n)]
    pids: list[int] = []
    restore = interrupt.install(forward_to=pids)  # a stop signal reaches every worker, once
    try:
        for i in range(n):
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    interrupt.install_worker()
                    _worker(args.files, settings, n, i, files[i],
                            args.format, DEFAULT_FIELDS, DEFAULT_FIELDS + VERDICT_FIELDS)
                    code = 0
                except BaseException as exc:  # noqa: BLE001 - reported by the parent
                    try:
                        with open(files[i] + ".stats", "w") as f:
                            json.dump({"crash": f"{type(exc).__name__}: {exc}"}, f)
                    except OSError:
                        pass
                finally:
                    os._exit(code)
            pids.append(pid)
        failed = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        pids = []
        results = [_load(f + ".stats") for f in files]
        crash = next((r["crash"] for r in results if "crash" in r), None)
        if crash or any(failed):
            raise SnifferError(f"--workers: a worker failed: {crash or failed}")
        _merge(files, output)
        stats: dict = {}
        error = None
        for r in results:
            for k, v in r["stats"].items():
                stats[k] = stats.get(k, 0) + v
            if r.get("error") and error is None:
                error = BadInputError(*r["error"])
        if interrupt.STOP.signum:  # the workers stopped early, each with what it had
            error = interrupt.Interrupted(interrupt.STOP.signum)
        return {"stats": stats, "error": error}
    finally:
        for pid in pids:  # interrupted while waiting: leave no worker behind
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
        for f in files:
            for path in (f, f + ".stats"):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        os.rmdir(tmp)
        restore()


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"crash": "no result"}


def _worker(paths, settings, n: int, me: int, path: str, fmt: str, plain,
            with_verdicts) -> None:
    """One shard: run the pipeline, write `key TAB flag TAB row` lines, then the stats."""
    from sniffer.engine import Finished
    from sniffer.output import jsonl, zeek
    from sniffer.read import run_packets
    from sniffer.stats import Stats

    fmt_row = zeek.format_row if fmt == "zeek" else jsonl.format_line
    count = [0]
    out = open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20)

    def emit(ev: Finished) -> None:
        conn, f = ev.conn, ev.firing
        count[0] += 1
        if f is None:  # the packet itself ended it
            key = f"{ev.frame:012d}1{count[0]:010d}"
        elif f[0] == "flush":
            key = f"{FLUSH}2{f[1]:016x}"
        else:  # a timer, due at f[0], of the connection with serial f[1], of kind f[2]
            key = f"{ev.frame:012d}0{_DOUBLE(f[0]).hex()}{f[1]:016x}{f[2]:02d}{count[0]:010d}"
        verdict = conn.verdict is not None
        out.write(f"{key}\t{'v' if verdict else '-'}\t"
                  f"{fmt_row(conn, with_verdicts if verdict else plain)}\n")

    stats = Stats()
    error = run_packets(paths, settings, stats, emit, shard=(n, me))
    out.close()
    bad = error if isinstance(error, BadInputError) else None
    with open(path + ".stats", "w") as f:
        json.dump({"stats": dict(stats),
                   "error": [bad.path, bad.offset, bad.reason] if bad else None}, f)


def _merge(files: list[str], output) -> None:
    """The workers' records in one process's order, through `output` (read._Output)."""
    streams = [open(f, encoding="utf-8") for f in files]
    try:
        first = True
        for line in heapq.merge(*streams, key=lambda ln: ln[:ln.index("\t")]):
            _, flag, row = line.split("\t", 2)
            if first:
                output.open_raw(verdicts=flag == "v")
                first = False
            output.write_raw(row)
    finally:
        for s in streams:
            s.close()
