"""LiveCapture (sniffer/capture/live.py) on real traffic between two throw-away namespaces.

Each test builds its own pair: namespaces A and B joined by a veth (vA in A: 10.99.0.1/24,
fd99::1/64; vB in B: .2 and ::2). The capture runs in a child process inside A (CHILD below:
it prints `ready {...}`, captures, and on end of stdin waits until nothing has arrived for
200 ms, stops, and prints `done {...}` with the packets as JSON). Traffic is sent from B.
Nothing touches the host's own interfaces.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import struct
import subprocess
import time

import pytest

from netnskit import PYTHON, NetNS, can_run, unprivileged

pytestmark = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))

A4, B4, A6, B6 = "10.99.0.1", "10.99.0.2", "fd99::1", "fd99::2"

CHILD = r"""
import json, os, signal, sys, threading, time
from sniffer.capture.live import LiveCapture
from sniffer.errors import SnifferError, UsageError
from sniffer.stats import Stats
args = json.loads(sys.argv[1])
stats = Stats()
try:
    cap = LiveCapture(args.get("iface"), bpf=args.get("bpf"), promisc=args.get("promisc", False),
                      snaplen=args.get("snaplen", 262144), stats=stats,
                      **({"buffer_size": args["buffer"]} if "buffer" in args else {}))
except SnifferError as exc:
    print("error " + json.dumps([type(exc).__name__, str(exc)]), flush=True)
    sys.exit(0)
if args.get("tcp"):
    import socket
    srv = socket.socket(socket.AF_INET6)
    srv.bind(("::", args["tcp"])); srv.listen()
    def echo():
        while True:
            c, _ = srv.accept()
            while d := c.recv(4096):
                c.sendall(d)
            c.close()
    threading.Thread(target=echo, daemon=True).start()
if args.get("sink"):
    import socket
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("0.0.0.0", args["sink"]))
print("ready " + json.dumps({"interface": cap.interface, "linktype": cap.linktype,
                             "scapy": "scapy" in sys.modules}), flush=True)
if args.get("lo_udp"):
    import socket
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"lo", ("127.0.0.1", args["lo_udp"]))
count = 0
stopped_at = None
def stop():
    global stopped_at
    stopped_at = time.monotonic()
    cap.stop()
def quiesce():  # end of stdin: stop once nothing has arrived for 200 ms
    sys.stdin.read()
    seen = -1
    while seen != count:
        seen = count
        time.sleep(0.2)
    stop()
threading.Thread(target=quiesce, daemon=True).start()
if args.get("stop_thread"):
    threading.Timer(args["stop_thread"], stop).start()
if args.get("stop_signal"):
    signal.signal(signal.SIGALRM, lambda *_: stop())
    signal.setitimer(signal.ITIMER_REAL, args["stop_signal"])
packets = []
slow = args.get("slow", 0)
error = None
ticks = 0
try:
    for item in cap.packets(args["idle"]) if args.get("idle") else cap:
        if item is None:
            ticks += 1
            continue
        ts, lt, data, wirelen, pkttype = item
        count += 1
        if slow and count % 100 == 0:
            time.sleep(slow)
        if not args.get("count_only"):
            packets.append([ts, lt, data.hex(), wirelen, pkttype])
except SnifferError as exc:
    error = [type(exc).__name__, str(exc)]
ended = time.monotonic()
kstats = cap.kernel_stats()
cap.close()
print("done " + json.dumps({"packets": packets, "count": count, "kernel": kstats,
                            "stats": dict(stats), "error": error, "ticks": ticks,
                            "stop_delay": None if stopped_at is None else ended - stopped_at}),
      flush=True)
"""

SEND = r"""
import json, socket, struct, sys, time
a = json.loads(sys.argv[1])
def ping(dst, ident):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"ping"
    csum = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    csum = (csum & 0xFFFF) + (csum >> 16)
    body = body[:2] + struct.pack("!H", ~csum & 0xFFFF) + body[4:]
    s.sendto(body, (dst, 0)); s.settimeout(2)
    while s.recv(2048)[20] != 0:  # until the echo reply
        pass
for dst in a.get("ping", []):
    ping(dst, 0x5151)
for host, port in a.get("tcp", []):
    c = socket.create_connection((host, port), timeout=5)
    c.sendall(b"hello"); c.recv(100); c.close()
for host, port, size in a.get("udp", []):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"u" * size, (host, port))
if a.get("frames"):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("vB", 0))
    for f in a["frames"]:
        s.send(bytes.fromhex(f))
if "burst" in a:
    host, port, n = a["burst"]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg, dst, send = b"b" * 18, (host, port), s.sendto
    for _ in range(n):
        send(msg, dst)
time.sleep(a.get("linger", 0))
"""


# --------------------------------------------------------------------------- helpers

class Pair:
    """Namespaces `a` and `b` joined by vA (in a) and vB (in b), addresses up, ND done."""

    def __init__(self, a: NetNS, b: NetNS) -> None:
        self.a, self.b = a, b
        subprocess.run(["ip", "link", "add", "vA", "netns", a.name, "type", "veth", "peer",
                        "name", "vB", "netns", b.name], check=True)
        for ns, dev, v4, v6 in ((a, "vA", A4, A6), (b, "vB", B4, B6)):
            ns.run("ip", "addr", "add", f"{v4}/24", "dev", dev)
            ns.run("ip", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ns.run("ip", "link", "set", dev, "up")
        self.mac_a = bytes.fromhex(a.run("cat", "/sys/class/net/vA/address").stdout.strip().replace(":", ""))
        self.mac_b = bytes.fromhex(b.run("cat", "/sys/class/net/vB/address").stdout.strip().replace(":", ""))

    def send(self, **what) -> None:
        self.b.run(PYTHON, "-c", SEND, json.dumps(what), timeout=30)

    def capture(self, **args) -> "Capture":
        return Capture(self.a, args)


class Capture:
    """The CHILD capture process inside a namespace."""

    def __init__(self, ns: NetNS, args: dict) -> None:
        self.proc = subprocess.Popen(ns.argv(PYTHON, "-c", CHILD, json.dumps(args)),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.kind, self.info = self._line(10)

    def _line(self, timeout: float) -> tuple[str, object]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise AssertionError(f"capture child said nothing: {self.proc.stderr.read()}")
        kind, _, rest = line.partition(" ")
        return kind, json.loads(rest)

    def finish(self, timeout: float = 20) -> dict:
        try:
            out, err = self.proc.communicate("", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        done = [ln for ln in out.splitlines() if ln.startswith("done ")]
        assert done, f"capture child failed: {err}"
        res = json.loads(done[0][5:])
        res["packets"] = [Pkt(*p) for p in res["packets"]]
        return res


class Pkt:
    """One captured packet with a few header fields parsed (Ethernet or SLL, then IP)."""

    def __init__(self, ts: float, lt: int, data: str, wirelen: int, pkttype: int) -> None:
        self.ts, self.lt, self.data, self.wirelen, self.pkttype = ts, lt, bytes.fromhex(data), wirelen, pkttype
        d = self.data
        off = 14 if lt == 1 else 16
        self.ethertype = struct.unpack_from(">H", d, off - 2)[0]
        self.vlan = None
        if self.ethertype == 0x8100:
            self.vlan, self.ethertype = struct.unpack_from(">HH", d, off)
            off += 4
        self.l3 = off
        self.src = self.dst = self.proto = self.sport = self.dport = self.icmp_type = None
        self.iplen = None
        if self.ethertype == 0x0800:
            ihl = (d[off] & 15) * 4
            self.iplen = struct.unpack_from(">H", d, off + 2)[0]
            self.proto = d[off + 9]
            self.src, self.dst = _ip(d[off + 12:off + 16]), _ip(d[off + 16:off + 20])
            l4 = off + ihl
        elif self.ethertype == 0x86DD:
            self.iplen = struct.unpack_from(">H", d, off + 4)[0] + 40
            self.proto = d[off + 6]
            self.src, self.dst = _ip(d[off + 8:off + 24]), _ip(d[off + 24:off + 40])
            l4 = off + 40
        else:
            return
        if self.proto in (6, 17) and len(d) >= l4 + 4:
            self.sport, self.dport = struct.unpack_from(">HH", d, l4)
        if self.proto in (1, 58):
            self.icmp_type = d[l4]
        self.tcp_flags = d[l4 + 13] if self.proto == 6 else None

    def __repr__(self) -> str:
        return (f"<{self.lt} {self.src}:{self.sport} > {self.dst}:{self.dport} p{self.proto} "
                f"type={self.pkttype} len={len(self.data)}/{self.wirelen}>")


def _ip(raw: bytes) -> str:
    import ipaddress
    return str(ipaddress.ip_address(raw))


@pytest.fixture
def pair():
    with NetNS("snfA") as a, NetNS("snfB") as b:
        yield Pair(a, b)


def _udp(pkts: list[Pkt], port: int) -> list[Pkt]:
    return [p for p in pkts if p.proto == 17 and p.dport == port]


# --------------------------------------------------------------------------- tests

def test_ethernet_capture(pair):
    """ICMP, TCP and UDP over IPv4 and IPv6 on a veth: linktype 1, times, lengths, direction."""
    cap = pair.capture(iface="vA", tcp=7000, sink=5000)
    assert cap.kind == "ready"
    assert cap.info == {"interface": "vA", "linktype": 1, "scapy": False}
    t0 = time.time()
    pair.send(ping=[A4], tcp=[[A4, 7000], [A6, 7000]], udp=[[A4, 5000, 100], [A6, 5000, 1200]])
    t1 = time.time()
    res = cap.finish()
    pkts = res["packets"]
    assert pkts and all(p.lt == 1 for p in pkts)
    ts = [p.ts for p in pkts]
    assert ts == sorted(ts)
    ours = [p.ts for p in pkts if {p.src, p.dst} in ({A4, B4}, {A6, B6})]
    assert len(ours) >= 16 and t0 - 0.01 <= ours[0] and ours[-1] <= t1 + 0.1
    assert all(abs(t * 1e6 - round(t * 1e6)) < 0.01 for t in ts)  # microsecond precision
    for p in pkts:
        assert p.wirelen == len(p.data), p
        if p.iplen is not None:
            assert p.wirelen == 14 + p.iplen, p
        if p.data[6:12] == pair.mac_a:
            assert p.pkttype == 4, p  # our own transmissions: PACKET_OUTGOING
        elif p.data[0] & 1:
            assert p.pkttype in (1, 2), p  # broadcast / multicast from B
        else:
            assert p.data[6:12] == pair.mac_b and p.pkttype == 0, p
    icmp = [(p.src, p.icmp_type, p.pkttype) for p in pkts if p.proto == 1]
    assert icmp == [(B4, 8, 0), (A4, 0, 4)]
    for host in (A4, A6):
        syn = [p for p in pkts if p.proto == 6 and p.tcp_flags & 0x02 and host in (p.src, p.dst)]
        assert [(p.src == host, p.pkttype) for p in syn] == [(False, 0), (True, 4)]
    assert [(p.src, len(p.data)) for p in _udp(pkts, 5000)] == [(B4, 142), (B6, 1262)]
    assert any(p.ethertype == 0x86DD and p.pkttype == 2 for p in pkts)  # neighbour solicitation
    k = res["kernel"]
    assert k["dropped"] == 0
    # (a stray IPv6 multicast report may arrive between the end of the loop and this read)
    assert 0 <= k["received"] - len(pkts) <= 2


def test_filter_and_snaplen(pair):
    """`udp port 5000` lets only those datagrams through; a kernel filter returns the snaplen."""
    cap = pair.capture(iface="vA", bpf="udp port 5000", snaplen=200)
    assert cap.info["scapy"] is True
    pair.send(ping=[A4], udp=[[A4, 5001, 10], [A4, 5000, 10], [A6, 5000, 1000], [A4, 5000, 3000]])
    res = cap.finish()
    got = [(p.src, p.dport, len(p.data), p.wirelen) for p in res["packets"]]
    # 3000 bytes leave B as two IPv4 fragments; only the first carries the UDP port.
    assert got == [(B4, 5000, 52, 52), (B6, 5000, 200, 1062), (B4, 5000, 200, 1514)]
    assert res["kernel"]["received"] == 3


def test_direction_filter(pair):
    """`outbound` on Ethernet compiles to the kernel's packet-type ancillary load."""
    cap = pair.capture(iface="vA", bpf="outbound and icmp")
    pair.send(ping=[A4])
    got = [(p.src, p.icmp_type, p.pkttype) for p in cap.finish()["packets"]]
    assert got == [(A4, 0, 4)]


def test_bad_filter_and_interface(pair):
    from sniffer.capture.live import LiveCapture
    from sniffer.errors import SnifferError, UsageError
    from sniffer.kernel.netns import entered, resolve

    with entered(resolve(pair.a.name)):
        with pytest.raises(UsageError) as bad:
            LiveCapture("vA", bpf="udp port nosuchservice")
        with pytest.raises(UsageError) as nodev:
            LiveCapture("vZ9")
        with pytest.raises(UsageError) as noroute:
            LiveCapture(None)
        pair.a.run("ip", "route", "add", "default", "via", B4)
        with LiveCapture(None) as cap:
            assert (cap.interface, cap.linktype) == ("vA", 1)
        pair.a.run("ip", "link", "set", "vA", "down")
        with pytest.raises(SnifferError, match="^capturing on vA: the interface is down$"):
            LiveCapture("vA")
    msg = str(bad.value)
    assert "\n" not in msg and "'udp port nosuchservice'" in msg and "nosuchservice" in msg
    assert "vZ9" in str(nodev.value)
    assert "default route" in str(noroute.value)


@pytest.mark.skipif(not shutil.which("tcpdump"), reason="needs tcpdump")
@pytest.mark.parametrize("expr", ["udp port 5000", "tcp[tcpflags] & tcp-syn != 0 or icmp6",
                                  "net 10.0.0.0/8 and greater 100", "inbound and not arp"])
@pytest.mark.parametrize("linktype", [1, 113])
def test_bpf_compilers_agree(expr, linktype):
    """scapy's compile_filter (libpcap through ctypes) and the `tcpdump -ddd` fallback give the
    same program, with the snaplen in its accepting returns."""
    from sniffer.capture import bpf
    prog = bpf.compile_bpf(expr, linktype, 1234)
    assert prog == bpf._tcpdump(expr, linktype, 1234)
    assert {k for c, _, _, k in prog if c == 6} == {0, 1234}


def test_needs_cap_net_raw(pair):
    out = pair.a.run(*unprivileged([PYTHON, "-c", CHILD, json.dumps({"iface": "vA"})]),
                     cwd="/").stdout
    kind, _, rest = out.partition(" ")
    assert kind == "error"
    name, msg = json.loads(rest)
    assert name == "SnifferError"
    assert msg.startswith("capturing on vA needs CAP_NET_RAW (run as root): ")


@pytest.mark.parametrize("bpf, expect", [
    (None, None),
    # kernel filter on the cooked socket: SLL pkttype and offsets remapped (libpcap fix_offset)
    ("inbound and udp port 5000", [("127.0.0.1", 0, 772), ("10.99.0.2", 0, 1)]),
    # link[2:2] (the SLL hatype) cannot run in the kernel: filtered here instead
    ("udp port 5000 and link[2:2] == 1", [("10.99.0.2", 0, 1)]),
])
def test_any(pair, bpf, expect):
    """`any`: linktype 113 with SLL headers; loopback packets once; cooked filters."""
    cap = pair.capture(iface="any", bpf=bpf, lo_udp=5000)
    assert cap.info["linktype"] == 113 and cap.info["interface"] == "any"
    pair.send(udp=[[A4, 5000, 100]])
    res = cap.finish()
    pkts = res["packets"]
    for p in pkts:
        assert p.lt == 113 and p.wirelen == len(p.data)
        pkttype, hatype, halen = struct.unpack_from(">HHH", p.data)
        assert pkttype == p.pkttype
        if p.iplen is not None:
            assert p.wirelen == 16 + p.iplen
    udp = [(p.src, p.pkttype, struct.unpack_from(">H", p.data, 2)[0]) for p in _udp(pkts, 5000)]
    if expect is not None:
        assert udp == expect
        return
    assert sorted(udp) == [("10.99.0.2", 0, 1), ("127.0.0.1", 0, 772)]  # lo: once, not twice
    b = next(p for p in pkts if p.src == B4 and p.proto == 17)
    assert b.data[:16] == struct.pack(">HHH", 0, 1, 6) + pair.mac_b + b"\0\0" + b"\x08\x00"
    unreach = next(p for p in pkts if p.src == A4 and p.proto == 1)  # port 5000 is closed
    assert unreach.pkttype == 4 and unreach.data[6:12] == pair.mac_a
    lo = next(p for p in pkts if p.src == "127.0.0.1" and p.proto == 17)
    assert lo.data[:16] == struct.pack(">HHH", 0, 772, 6) + bytes(8) + b"\x08\x00"


def _tagged_udp(pair: Pair, tpid: int, tci: int, payload: bytes) -> bytes:
    """An Ethernet frame B -> A with an in-band 802.1Q/802.1ad tag around IPv4/UDP to port 5000."""
    udp = struct.pack(">HHHH", 40000, 5000, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                               bytes([10, 99, 0, 2]), bytes([10, 99, 0, 1])))
    csum = sum(struct.unpack(">10H", ip))
    csum = (csum & 0xFFFF) + (csum >> 16)
    ip[10:12] = struct.pack(">H", ~csum & 0xFFFF)
    return pair.mac_a + pair.mac_b + struct.pack(">HHH", tpid, tci, 0x0800) + bytes(ip) + udp


def test_vlan_tag_reinserted(pair):
    """The receive path takes an 802.1Q/802.1ad tag out of the frame (skb_vlan_untag, as a NIC
    with VLAN offload does); the capture must see it put back (TP_STATUS_VLAN_VALID)."""
    frames = [_tagged_udp(pair, 0x8100, 3 << 13 | 10, b"q" * 20),
              _tagged_udp(pair, 0x88A8, 20, b"ad" * 10)]
    raw, cooked = pair.capture(iface="vA"), pair.capture(iface="any")
    pair.send(frames=[f.hex() for f in frames])  # injected on vB, inside namespace B
    got_raw = [p for p in raw.finish()["packets"] if p.data[12:14] in (b"\x81\x00", b"\x88\xa8")]
    assert [p.data for p in got_raw] == frames
    assert [p.wirelen for p in got_raw] == [len(f) for f in frames]
    got_any = [p for p in cooked.finish()["packets"] if p.data[14:16] in (b"\x81\x00", b"\x88\xa8")]
    assert [p.data[14:] for p in got_any] == [f[12:] for f in frames]
    assert [p.data[:14] for p in got_any] == [struct.pack(">HHH", 0, 1, 6) + pair.mac_b + b"\0\0"] * 2
    assert [p.wirelen for p in got_any] == [len(f) + 2 for f in frames]


def test_promisc(pair):
    def promiscuity() -> int:
        out = pair.a.run("ip", "-d", "link", "show", "vA").stdout
        return int(out.split("promiscuity ")[1].split()[0])
    cap = pair.capture(iface="vA", promisc=True)
    assert promiscuity() == 1
    cap.finish()
    assert promiscuity() == 0


@pytest.mark.parametrize("how, idle", [("stop_thread", None), ("stop_signal", None),
                                       ("stop_thread", 0.05)])
def test_stop_is_prompt(pair, how, idle):
    """stop() from a thread or a signal handler ends a blocked iteration at once; with
    packets(idle=) the iteration also yields None on a quiet link."""
    cap = pair.capture(iface="vA", idle=idle, **{how: 0.3})
    kind, done = cap._line(10)  # stdin stays open: only the timer or the signal stops it
    cap.proc.communicate("", timeout=10)
    assert kind == "done"
    assert done["error"] is None and done["stop_delay"] < 0.1
    if idle:
        assert 3 <= done["ticks"] <= 7, done  # (a stray IPv6 MLD report may come too)
    else:
        assert done["ticks"] == 0


def test_interface_disappears(pair):
    cap = pair.capture(iface="vA")
    pair.b.run("ip", "link", "del", "vB")
    res = cap.finish()
    assert res["error"] == ["SnifferError",
                            "capture on vA ended: the interface went down or disappeared"]


@pytest.mark.parametrize("ring, slow", [(256 << 20, 0), (2 << 20, 0.002)])
def test_burst_and_kernel_stats(pair, ring, slow):
    """50,000 datagrams as fast as B can send them. With `sniffer live`'s default ring (256 MiB)
    nothing is lost even when the reader loses its core for a while (a busy 2-core machine: a
    partly filled block is handed over every 2 ms, so a 32 MiB ring of 1 MiB blocks covered only
    64 ms of starvation and dropped up to 40% here); with a 2 MiB ring and a deliberately slow
    reader the kernel drops some. received == captured + dropped either way."""
    n = 50_000
    args = {"iface": "vA", "bpf": "udp dst port 5001", "count_only": True, "sink": 5001,
            "slow": slow, "buffer": ring}
    cap = pair.capture(**args)
    rx0 = _rx_packets(pair.a)
    pair.send(ping=[A4], burst=[A4, 5001, n])  # the ping resolves ARP first
    arrived = _rx_packets(pair.a) - rx0
    res = cap.finish()
    k = res["kernel"]
    assert k["received"] == res["count"] + k["dropped"]
    assert k["received"] == n  # every datagram reached vA and passed the filter
    assert n <= arrived - 1 <= n + 10  # (the ping; maybe a stray IPv6 solicitation)
    assert res["stats"] == {"kernel_received": k["received"], "kernel_dropped": k["dropped"]}
    if slow:
        assert k["dropped"] > 0
    else:
        assert k["dropped"] == 0 and res["count"] == n


def _rx_packets(ns: NetNS) -> int:
    return int(ns.run("cat", "/sys/class/net/vA/statistics/rx_packets").stdout)
