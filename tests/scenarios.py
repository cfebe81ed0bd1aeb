"""The detector scenario catalogue: every crafted capture the detector tests use, in one place.

A scenario is a capture built with scapy, the extra `sniffer read` arguments it needs, the kinds
it must raise (an empty set for a false-alarm guard) and the kinds that are checked (None: every
kind; a kind outside `checked` may be reported without failing the scenario). The tests take
their packets from here; docs/gen_detector_table.py runs every scenario, and the Suricata corpus
cases that carry an expectation, and writes the table in docs/detectors.md.

Every Ether() carries explicit MAC addresses (pcapkit.ETH): scapy must never resolve one.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pcapkit import CORPUS, ETH, Session, run, write
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import CookedLinux, Ether

PACKET_KINDS = frozenset({"land", "bogon-source", "local-source-from-wire", "syn-flood",
                          "port-scan", "backscatter"})
TCP_KINDS = frozenset({"rst-injection", "data-injection", "ttl-anomaly", "out-of-window"})

LOOP_ETH = dict(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
C, S = "10.0.0.1", "93.184.216.34"  # pcapkit's Session client and server


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    build: Callable[[], list]
    expected: frozenset = frozenset()
    checked: frozenset | None = None  # None: every kind, whatever detector raises it
    args: tuple = ()


def timed(pkts, t0=1000.0, dt=0.01):
    for i, p in enumerate(pkts):
        p.time = t0 + i * dt
    return pkts


# -- packet-level scenarios ---------------------------------------------------------------------


def land():
    p = Ether(**ETH) / IP(src="10.0.0.5", dst="10.0.0.5") / TCP(sport=139, dport=139, flags="S")
    return timed([p, p.copy()])


def land_guards():
    # A loopback capture (Linux lo: zero MACs): a self-connect is legal there, and so is any
    # connection from an address to itself, to 127.0.0.1 or to one of the host's own addresses.
    # Loopback addresses to themselves are loopback traffic whatever the frame (a capture of lo
    # rewritten to Ethernet, as in Zeek's geneve-vxlan-truncated trace).
    return timed([
        Ether(**LOOP_ETH) / IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=5000, dport=5000),
        Ether(**LOOP_ETH) / IP(src="10.0.0.5", dst="10.0.0.5") / UDP(sport=1000, dport=2000),
        Ether(**ETH) / IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=11803, dport=6081),
        Ether(**ETH) / IPv6(src="::1", dst="::1") / UDP(sport=11803, dport=4789),
    ])


def land_other_ports():
    # From the wire (a cooked capture: arrived, addressed to us), our own address to itself
    # with different ports, and another host's: forged (Snort's 116:151 and `sameip` ignore
    # the ports too).
    sll = dict(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0", proto=0x0800)
    return timed([
        CookedLinux(**sll) / IP(src="10.0.0.9", dst="10.0.0.9") / UDP(sport=4444, dport=5555),
        CookedLinux(**sll) / IP(src="10.0.0.5", dst="10.0.0.5") / TCP(sport=40000, dport=80,
                                                                      flags="S"),
    ])


def bogon_sources():
    return timed([
        Ether(**ETH) / IP(src="127.0.0.1", dst="10.0.0.9") / UDP(sport=5, dport=6),
        Ether(**ETH) / IP(src="224.0.0.5", dst="10.0.0.9") / UDP(sport=5, dport=6),
        Ether(**ETH) / IP(src="224.0.0.5", dst="10.0.0.8") / UDP(sport=5, dport=6),  # repeat
        Ether(**ETH) / IP(src="0.0.0.7", dst="10.0.0.9") / TCP(sport=5, dport=80),
        Ether(**ETH) / IP(src="255.255.255.255", dst="10.0.0.9") / UDP(sport=5, dport=6),
        Ether(**ETH) / IPv6(src="::1", dst="2001:db8::1") / UDP(sport=5, dport=6),
        Ether(**ETH) / IPv6(src="ff02::1", dst="2001:db8::1") / UDP(sport=5, dport=6),
        Ether(**ETH) / IPv6(src="::ffff:10.0.0.1", dst="2001:db8::1") / UDP(sport=5, dport=6),
    ])


def bogon_guards():
    return timed([
        # DHCP discover from a host without an address
        Ether(**ETH) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
        / (b"\x01" * 240),
        # IPv6 duplicate address detection: a neighbour solicitation from ::
        Ether(**ETH) / IPv6(src="::", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1"),
        # loopback traffic captured on lo
        Ether(**LOOP_ETH) / IP(src="127.0.0.1", dst="127.0.0.53") / UDP(sport=4000, dport=53),
        Ether(**ETH) / IPv6(src="::1", dst="::1") / UDP(sport=4000, dport=53),
        # documentation, CGN, link-local and NAT64 sources are left alone (labs use them)
        Ether(**ETH) / IP(src="192.0.2.2", dst="203.0.113.80") / TCP(sport=4000, dport=80),
        Ether(**ETH) / IP(src="100.64.1.1", dst="10.0.0.1") / TCP(sport=4000, dport=80),
        Ether(**ETH) / IP(src="169.254.169.254", dst="10.0.0.1") / TCP(sport=80, dport=4000),
        Ether(**ETH) / IPv6(src="64:ff9b::808:808", dst="2001:db8::1") / UDP(sport=53, dport=4000),
    ])


def _sll(pkttype: int, src: str, dst: str, ttl: int = 64):
    return (CookedLinux(pkttype=pkttype, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0",
                        proto=0x0800) / IP(src=src, dst=dst, ttl=ttl) / UDP(sport=7, dport=9))


def local_source_sll():
    # A Linux cooked capture says which way each frame went.
    return timed([
        _sll(0, "10.0.0.9", "10.0.0.7"),  # arrived, addressed to us: spoofed
        _sll(4, "10.0.0.9", "10.0.0.7"),  # our own outgoing packet: fine
        _sll(1, "10.0.0.9", "10.0.0.255"),  # a broadcast coming back: left alone
    ])


def local_source_ttl():
    # Ethernet capture, no direction: our own packets (initial TTL) are fine, a packet that
    # crossed routers with our source address is not ours.
    return timed([
        Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.7", ttl=64) / UDP(sport=7, dport=9),
        Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.7", ttl=3) / UDP(sport=7, dport=33434),
        Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.7", ttl=57) / UDP(sport=7, dport=9),
    ])


def syn_flood():
    pkts = []
    for i in range(150):  # spoofed sources, never completing
        pkts.append(Ether(**ETH) / IP(src=f"198.18.{i // 250}.{i % 250 + 1}", dst="10.0.0.1")
                    / TCP(sport=1024 + i, dport=80, flags="S", seq=i))
    return timed(pkts, dt=0.005)


def syn_flood_one_tuple():
    """hping-style: one 4-tuple, a new ISN each SYN, no handshake (Suricata's 3whs_syn_flood)."""
    syn = dict(sport=40000, dport=80, flags="S")
    return timed([Ether(**ETH) / IP(src="198.18.0.7", dst="10.0.0.1")
                  / TCP(seq=1000 + 7919 * i, **syn) for i in range(12)], dt=0.05)


def retransmitted_syns():
    """A client retrying an unanswered SYN repeats its ISN: 15 retries."""
    syn = TCP(sport=40000, dport=80, flags="S", seq=4242)
    return timed([Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.1") / syn for _ in range(15)],
                 dt=1.0)


def busy_server(n=300):
    pkts = []
    for i in range(n):
        s = Session(client=f"172.16.{i // 200}.{i % 200 + 1}", server="10.0.0.1",
                    cport=30000 + i, sport=443, t0=1000.0 + i * 0.01)
        s.handshake()
        s.send(True, "PA", b"GET / HTTP/1.1\r\n\r\n")
        s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n")
        s.send(True, "FA")
        s.send(False, "FA")
        s.send(True, "A")
        pkts += s.pkts
    pkts.sort(key=lambda p: p.time)
    return pkts


def busy_client():
    # One client opening connections to 60 different servers (a browser), all answered.
    pkts = []
    for i in range(60):
        s = Session(client="10.0.0.2", server=f"93.184.{i}.1", cport=40000 + i,
                    sport=443, t0=1000.0 + i * 0.5)
        s.handshake()
        s.send(True, "PA", b"x")
        s.send(True, "RA")
        pkts += s.pkts
    return pkts


def port_scan():
    pkts = []
    for port in range(20, 60):  # nmap -sS against one host: closed ports answer RST
        pkts.append(Ether(**ETH) / IP(src="10.9.9.9", dst="10.0.0.1") /
                    TCP(sport=61000, dport=port, flags="S", seq=7))
        pkts.append(Ether(**ETH) / IP(src="10.0.0.1", dst="10.9.9.9") /
                    TCP(sport=port, dport=61000, flags="RA", seq=0, ack=8))
    for i in range(30):  # and port 22 across a subnet, unanswered
        pkts.append(Ether(**ETH) / IP(src="10.9.9.9", dst=f"10.1.0.{i + 1}") /
                    TCP(sport=61001, dport=22, flags="S", seq=7))
    return timed(pkts)


def backscatter_synacks():
    # Normal traffic first (the capture's opening seconds are a grace period), then a victim
    # answering SYNs someone sent in our name: SYN-ACKs to 10.0.0.9 we never asked for.
    s = Session(client="10.0.0.9", server="93.184.216.34", t0=1000.0).handshake()
    pkts = list(s.pkts)
    for i in range(8):
        p = Ether(**ETH) / IP(src="203.0.113.7", dst="10.0.0.9", ttl=50) / \
            TCP(sport=80, dport=20000 + i * 7, flags="SA", seq=99, ack=1000 + i)
        p.time = 1010.0 + i
        pkts.append(p)
    return pkts


def backscatter_icmp():
    s = Session(client="10.0.0.9", server="93.184.216.34", t0=1000.0).handshake()
    pkts = list(s.pkts)
    t = 1010.0
    # ICMP unreachables quoting UDP packets 10.0.0.9 never sent
    for i in range(6):
        t += 0.5
        p = Ether(**ETH) / IP(src="198.51.100.1", dst="10.0.0.9") / ICMP(type=3, code=3) / \
            IPerror(src="10.0.0.9", dst=f"198.51.100.{i + 2}") / UDPerror(sport=5353 + i, dport=53)
        p.time = t
        pkts.append(p)
    return pkts


def traceroute():
    # UDP probes out, time-exceeded and port-unreachable back, all quoting them.
    pkts = []
    t = 1005.0
    for i in range(30):  # 30 hops: 30 ports of one host, unanswered by UDP
        probe = Ether(**ETH) / IP(src="10.0.0.9", dst="93.184.216.34", ttl=i + 1) / \
            UDP(sport=40000, dport=33434 + i)
        probe.time = t
        t += 0.05
        code_type = (11, 0) if i < 29 else (3, 3)
        reply = Ether(**ETH) / IP(src=f"10.{i}.0.1", dst="10.0.0.9") / \
            ICMP(type=code_type[0], code=code_type[1]) / bytes(probe[IP])[:28]
        reply.time = t
        t += 0.05
        pkts += [probe, reply]
    return pkts


def udp_port_scan():
    # nmap -sU of 40 ports: empty probes, a few closed ports answering ICMP port unreachable
    # (Linux rate-limits them), the rest silent.
    pkts = []
    for port in range(1000, 1040):
        probe = Ether(**ETH) / IP(src="10.9.9.9", dst="10.0.0.1") / UDP(sport=53211, dport=port)
        pkts.append(probe)
        if port % 13 == 0:
            pkts.append(Ether(**ETH) / IP(src="10.0.0.1", dst="10.9.9.9") /
                        ICMP(type=3, code=3) / bytes(probe[IP])[:28])
    return timed(pkts)


def udp_peers():
    # A DHT node asking 40 silent peers, and a media session on 20 ports of one peer, answered.
    pkts = [Ether(**ETH) / IP(src="10.0.0.9", dst=f"198.51.100.{i + 1}") /
            UDP(sport=6881, dport=6881) / b"d1:ad2:id20:" for i in range(40)]
    for port in range(16384, 16404):
        pkts.append(Ether(**ETH) / IP(src="10.0.0.9", dst="203.0.113.5") /
                    UDP(sport=port, dport=port) / (b"\x80" + bytes(171)))
        pkts.append(Ether(**ETH) / IP(src="203.0.113.5", dst="10.0.0.9") /
                    UDP(sport=port, dport=port) / (b"\x80" + bytes(171)))
    return timed(pkts)


def asymmetric_route():
    # Only the server->client half of many conversations: SYN-ACKs first, then data.
    pkts = []
    for i in range(10):
        s = Session(client=f"172.16.0.{i + 1}", server="10.0.0.1", cport=30000 + i, sport=443,
                    t0=1005.0 + i)
        s.handshake()
        s.send(False, "PA", b"hello")
        s.send(False, "FA")
        pkts += [p for p in s.pkts if p[IP].src == "10.0.0.1"]
    return pkts


def nat_ttls():
    # Many hosts behind one NAT address with different OS TTLs, and different hosts with
    # different hop counts.
    pkts = []
    for i in range(20):
        s = Session(client="198.51.100.20", server=f"10.0.1.{i + 1}", cport=50000 + i, sport=80,
                    t0=1000.0 + i * 0.2)
        ttl = (64, 128, 255, 61, 117)[i % 5]
        s.send(True, "S", ttl=ttl)
        s.send(False, "SA")
        s.send(True, "A", ttl=ttl)
        s.send(True, "PA", b"GET /", ttl=ttl)
        s.send(False, "PA", b"200 OK")
        pkts += s.pkts
    pkts.sort(key=lambda p: p.time)
    return pkts


# -- TCP injection and evasion scenarios --------------------------------------------------------


def established(ttl_c=64, ttl_s=64, **kw) -> Session:
    s = Session(**kw)
    s.send(True, "S", ttl=ttl_c)
    s.send(False, "SA", ttl=ttl_s)
    s.send(True, "A", ttl=ttl_c)
    s.send(True, "PA", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ttl=ttl_c)
    s.send(False, "A", ttl=ttl_s)
    return s


def close(s: Session, ttl_c=64, ttl_s=64) -> Session:
    s.send(False, "FA", ttl=ttl_s)
    s.send(True, "FA", ttl=ttl_c)
    s.send(False, "A", ttl=ttl_s)
    return s


def download(s: Session, n=6, size=1000, ttl=64):
    for i in range(n):
        s.send(False, "A", bytes([65 + i]) * size, ttl=ttl)
    s.send(True, "A")


def rst_then_data():
    s = established()
    s.send(False, "RA", advance=False, dt=0.001)  # the forged one: the server "resets"...
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\nhello")  # ...and answers all the same
    s.send(True, "A")
    return s.pkts


def rst_foreign_ttl():
    s = established(ttl_s=52)
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n", ttl=52)
    s.send(True, "A")
    s.send(False, "RA", advance=False, ttl=64)
    return s.pkts


def racing_rsts():
    s = established()
    s.send(False, "R", seq=5001 + 3000, advance=False, dt=0.0005)
    s.send(False, "R", seq=5001 + 9000, advance=False, dt=0.0005)
    return s.pkts


def overlap_different_bytes():
    s = established(ttl_s=55)
    real = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    fake = b"HTTP/1.1 302 Found\r\nLocation: http://evil/\r\n\r\n"
    download(s, n=1, ttl=55)  # a first response: the server's TTL profile is set
    s.send(True, "PA", b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.send(False, "PA", fake, advance=False, ttl=64, dt=0.002)  # the injector wins the race
    s.send(False, "PA", real, ttl=55, dt=0.03)
    s.send(True, "A")
    return s.pkts


def data_foreign_ttl():
    s = established(ttl_s=50)
    download(s, n=2, ttl=50)
    s.send(False, "PA", b"HTTP/1.1 403 Forbidden\r\n\r\n", ttl=120)
    return s.pkts


def ttl_on_fin():
    s = established()
    s.send(False, "PA", b"x" * 100)
    s.send(True, "A")
    s.send(False, "FA", ttl=200)
    return s.pkts


def beyond_window():
    s = established()
    s.send(False, "PA", b"y" * 50, seq=5001 + 50_000_000, advance=False)
    s.send(True, "A")  # the receiver's duplicate ACK: it discarded the segment
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n")
    s.send(True, "A")
    return s.pkts


def ack_unsent():
    s = established()
    s.send(True, "A", ack=5001 + 100_000)  # acknowledges 100 kB the server never sent
    s.send(False, "A")  # the server's next segment: its snd_nxt is still 5001
    return s.pkts


def ipv6_overlap():
    s = established(v6=True, client="2001:db8::1", server="2001:db8::2")
    s.send(True, "PA", b"AAAA", advance=False)
    s.send(True, "PA", b"AAAB")
    return s.pkts


def identical_retransmission():
    s = established()
    p = s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\nbody")
    s.pkts.append(p.copy())
    s.pkts[-1].time = p.time + 0.2
    s.send(True, "A", dt=0.21)
    return close(s).pkts


def keepalive_garbage_octet():
    s = established()
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\nbody")
    s.send(True, "A")
    s.send(True, "A", b"\x00", seq=s.seq[True] - 1, advance=False, dt=60)  # keep-alive probe
    s.send(False, "A", dt=0.01)
    s.send(True, "A", seq=s.seq[True] - 1, advance=False, dt=60)  # without the octet
    s.send(False, "A")
    return close(s).pkts


def zero_window_probe():
    s = established()
    s.send(False, "A", b"z" * 1000)
    s.send(True, "A", window=0)  # the client's buffer is full
    s.send(False, "A", b"z", advance=False, dt=0.2)  # window probe: the next byte
    s.send(True, "A", window=0)
    s.send(False, "A", b"z", advance=False, dt=0.4)
    s.send(True, "A", window=8192)
    s.send(False, "A", b"z" * 500)
    s.send(True, "A")
    return close(s).pkts


def sack_retransmission():
    s = established()
    segs = [bytes([97 + i]) * 1000 for i in range(4)]
    base = s.seq[False]
    for i, data in enumerate(segs):
        p = s.send(False, "A", data)
        if i == 1:
            s.pkts.pop()  # lost before the receiver (and the sensor)
            lost = p
    sack = [(base + 2000, base + 4000)]
    s.send(True, "A", ack=base + 1000)
    s.pkts[-1][TCP].options = [("NOP", None), ("NOP", None), ("SAck", sack[0])]
    s.pkts.append(lost.copy())  # the retransmission SACK asked for
    s.pkts[-1].time = s.t + 0.05
    s.t += 0.05
    s.send(True, "A")
    return close(s).pkts


def midstream_pickup():
    s = Session(isn_c=3_000_000_000, isn_s=100)  # no handshake seen: windows unknown
    s.send(False, "A", b"q" * 1400)
    s.send(True, "A", ack=100 + 9_000_000)  # acks data the sensor never saw
    s.send(False, "A", b"r" * 1400, seq=100 + 20_000_000, advance=False)
    s.send(True, "A", window=3)
    s.send(False, "A", b"s" * 1400, seq=100 + 20_001_400, advance=False)
    return s.pkts


def ttl_differs_between_hosts():
    s = established(ttl_c=64, ttl_s=113)  # NAT, another OS, more hops: per host, not per flow
    download(s, ttl=113)
    s.send(False, "RA", advance=False, ttl=113)
    return s.pkts


def route_flap_and_rst_exchange():
    s = established()
    s.send(False, "A", b"a" * 500, ttl=63)
    s.send(False, "A", b"b" * 500, ttl=65)
    s.send(True, "A")
    # the client aborts; the server's data in flight draws RSTs carrying its ACKs as seq
    s.send(True, "RA", advance=False)
    s.send(False, "A", b"c" * 500)
    s.send(True, "R", seq=s.seq[True], advance=False, dt=0.001)
    s.send(False, "A", b"d" * 500)
    s.send(True, "R", seq=s.seq[True], advance=False, dt=0.001)
    return s.pkts


def capture_loss():
    s = established()
    download(s, n=3)
    s.seq[False] += 5_000_000  # the sensor misses 5 MB of the server's data and the ACKs
    s.send(True, "A")  # an ACK for data the sensor never saw
    s.send(False, "A", b"t" * 1000)
    s.send(True, "A")
    return close(s).pkts


def tso_super_segment():
    # Captured on the sending host with TSO/GSO: the stack hands the NIC one 30000-byte segment
    # (IP total length to match, far beyond the 1460-byte MSS); the NIC cuts it up on the wire.
    s = established()
    body = bytes(range(256)) * 117 + bytes(48)  # 30000 bytes
    base = s.seq[True]
    s.send(True, "PA", body)
    s.send(False, "A")  # the server acknowledges the whole range
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n")
    s.send(True, "A")
    # later, a (spurious) retransmission of part of that range, as normal-MSS segments
    for off in range(0, 4380, 1460):
        s.send(True, "A", body[off:off + 1460], seq=base + off, dt=0.2 if off == 0 else 0.001)
    s.send(False, "A")
    return close(s).pkts


def checksum_offload():
    # Captured on the sending host with checksum offload: the client's outgoing segments carry
    # the checksum the stack left for the NIC to fill in (wrong as captured).
    s = established()
    s.send(True, "PA", b"POST /x HTTP/1.1\r\nContent-Length: 2000\r\n\r\n")
    s.send(True, "A", b"p" * 1000)
    s.send(True, "A", b"q" * 1000)
    s.send(False, "A")
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n")
    s.send(True, "A")
    close(s)
    for p in s.pkts:
        if p[IP].src == C:  # every outgoing segment, the SYN too
            p[TCP].chksum = 0x1234  # a pseudo-header sum, as the stack leaves it for the NIC
    return s.pkts


def paws_old_timestamp():
    # TCP timestamps on every segment; a retransmission (same bytes) carries an old TSval
    # (a retransmitting stack may reuse the original's), then a zero-window probe.
    s = Session()
    tsv = {True: 100_000, False: 700_000}
    def send(from_client, flags, payload=b"", tsval=None, **kw):
        p = s.send(from_client, flags, payload, **kw)
        tsv[from_client] += 10
        mine = tsv[from_client] if tsval is None else tsval
        p[TCP].options = [("NOP", None), ("NOP", None),
                          ("Timestamp", (mine, tsv[not from_client] if "A" in flags else 0))]
        return p
    send(True, "S")
    send(False, "SA")
    send(True, "A")
    send(True, "PA", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    send(False, "A")
    seg_seq, seg_ts = s.seq[False], tsv[False] + 10
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"w" * 1000
    send(False, "PA", data)
    send(False, "A", b"v" * 1000, dt=0.05)
    send(False, "PA", data, seq=seg_seq, tsval=seg_ts - 5, dt=0.3)  # retransmission, old TSval
    send(True, "A", window=0)  # the client's buffer is full
    send(False, "A", b"u", advance=False, dt=0.2)  # window probe: the next byte
    send(True, "A", window=0)
    send(False, "A", b"u", advance=False, dt=0.4, tsval=seg_ts - 5)  # probe, old TSval again
    send(True, "A", window=8192)
    send(False, "A", b"u" * 300)
    send(True, "A")
    send(False, "FA")
    send(True, "FA")
    send(False, "A")
    return s.pkts


def _k(*kinds):
    return frozenset(kinds)


def _tcp(name, what, build, *expected):
    """A scenario of the TCP detectors: only their kinds are checked."""
    return Scenario(name, what, build, _k(*expected), checked=TCP_KINDS)


SCENARIOS = [
    Scenario("land", "TCP SYN with source = destination address and port", land, _k("land")),
    Scenario("land-guards", "on loopback (zero MACs): a self-connect; same address, other ports; "
             "127.0.0.1 and ::1 to themselves in Ethernet frames", land_guards),
    Scenario("land-other-ports", "from the wire: same address, different ports (UDP from "
             "our address to itself; a TCP SYN)", land_other_ports,
             _k("land", "local-source-from-wire"),
             args=("--local-addr", "10.0.0.9")),
    Scenario("bogon-sources", "loopback, multicast, 0/8, broadcast and v4-mapped sources",
             bogon_sources, _k("bogon-source")),
    Scenario("bogon-guards", "DHCP from 0.0.0.0, DAD from ::, traffic on lo, doc/CGN/link-local"
             "/NAT64 sources", bogon_guards),
    Scenario("local-source-sll", "cooked capture: our address arriving from the wire",
             local_source_sll, _k("local-source-from-wire"), args=("--local-addr", "10.0.0.9")),
    Scenario("local-source-sll-no-addr", "the same capture without --local-addr",
             local_source_sll),
    Scenario("local-source-ttl", "no direction: our address with a TTL that crossed routers",
             local_source_ttl, _k("local-source-from-wire"), args=("--local-addr", "10.0.0.9")),
    Scenario("syn-flood", "150 SYNs from spoofed sources to one port, never completing",
             syn_flood, _k("syn-flood"), checked=_k("syn-flood", "port-scan")),
    Scenario("syn-flood-one-tuple", "hping-style: one 4-tuple, a new ISN each SYN",
             syn_flood_one_tuple, _k("syn-flood")),
    Scenario("retransmitted-syns", "one client retrying an unanswered SYN 15 times",
             retransmitted_syns, checked=PACKET_KINDS),
    Scenario("busy-server", "300 clients completing HTTP exchanges with one server",
             busy_server, checked=PACKET_KINDS),
    Scenario("busy-client", "one client connecting to 60 servers, all answered",
             busy_client, checked=PACKET_KINDS),
    Scenario("port-scan", "nmap -sS of 40 ports on one host, then port 22 across a subnet",
             port_scan, _k("port-scan")),
    Scenario("backscatter-synacks", "unsolicited SYN-ACKs to our address", backscatter_synacks,
             _k("backscatter"), args=("--local-addr", "10.0.0.9")),
    Scenario("backscatter-icmp", "ICMP unreachables quoting packets we never sent",
             backscatter_icmp, _k("backscatter")),
    Scenario("udp-port-scan", "nmap -sU of 40 ports on one host, a few ICMP port unreachables",
             udp_port_scan, _k("port-scan")),
    Scenario("udp-peers", "UDP to 40 silent peers (DHT), and 20 answered ports of one peer "
             "(RTP)", udp_peers),
    Scenario("traceroute", "UDP traceroute, 30 hops: ICMP errors quoting our own probes",
             traceroute),
    Scenario("asymmetric-route", "only the server-to-client half of 10 conversations",
             asymmetric_route),
    Scenario("nat-ttls", "hosts behind one NAT address with different OS TTLs", nat_ttls,
             args=("--local-addr", "10.0.1.1")),
    _tcp("rst-then-data", "a RST, then its sender keeps sending data",
         rst_then_data, "rst-injection"),
    _tcp("rst-foreign-ttl", "a RST whose TTL differs from its sender's",
         rst_foreign_ttl, "rst-injection", "ttl-anomaly"),
    _tcp("racing-rsts", "two RSTs with different seq in quick succession",
         racing_rsts, "rst-injection"),
    _tcp("overlap-different-bytes", "an injected 302 races the real 200 at the same seq",
         overlap_different_bytes, "data-injection", "ttl-anomaly"),
    _tcp("data-foreign-ttl", "a data segment with a foreign TTL",
         data_foreign_ttl, "data-injection", "ttl-anomaly"),
    _tcp("ttl-on-fin", "a FIN with a foreign TTL", ttl_on_fin, "ttl-anomaly"),
    _tcp("beyond-window", "a segment 50 MB beyond the window, then a duplicate ACK",
         beyond_window, "out-of-window"),
    _tcp("ack-unsent", "an ACK for 100 kB never sent", ack_unsent, "out-of-window"),
    _tcp("ipv6-overlap", "IPv6: overlapping segments with different bytes",
         ipv6_overlap, "data-injection"),
    _tcp("identical-retransmission", "a retransmission with the same bytes",
         identical_retransmission),
    _tcp("keepalive-garbage-octet", "keep-alive probes with and without a garbage octet",
         keepalive_garbage_octet),
    _tcp("zero-window-probe", "zero-window probes", zero_window_probe),
    _tcp("sack-retransmission", "a lost segment retransmitted after a SACK", sack_retransmission),
    _tcp("midstream-pickup", "a connection picked up mid-stream (no handshake)", midstream_pickup),
    _tcp("ttl-differs-between-hosts", "client and server with different TTLs, a real RST",
         ttl_differs_between_hosts),
    _tcp("route-flap-and-rst-exchange", "a TTL flap of one hop, then a genuine RST exchange",
         route_flap_and_rst_exchange),
    _tcp("capture-loss", "the sensor misses 5 MB of data and its ACKs", capture_loss),
    _tcp("tso-super-segment", "TSO on the sender: one 30000-byte segment (MSS 1460), ACKed, "
         "then part of it resent as MSS-sized segments, same bytes", tso_super_segment),
    _tcp("checksum-offload", "checksum offload: the client's segments captured with wrong TCP "
         "checksums (dropped before the detectors: weird bad_TCP_checksum, history C)",
         checksum_offload),
    _tcp("paws-old-timestamp", "TCP timestamps: a same-bytes retransmission and a window probe "
         "with an old TSval", paws_old_timestamp),
]
BY_NAME = {s.name: s for s in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS)


# -- Suricata corpus cases with an expectation --------------------------------------------------

SURICATA = CORPUS / "suricata"

#: case -> (kind, sender, receiver) of the alert it must raise. From the MANIFEST row:
#: security-4710-01 "Forged RST (RST+ACK ...) right after the 3WHS, then the real HTTP
#: request/response continue" (client 192.168.111.128:56369 -> 192.168.112.136:80: the RST and
#: the request are the client's; test.yaml: suspected_rst_inject once);
#: bug-3286-02 "forged RST+ACK and FIN+ACK with bogus TS val 100 arrive before the real SYN/ACK"
#: (pcap packets 2 and 3, from the server 192.168.1.90:80 to 192.168.1.43:35532);
#: firewall-...-out-of-window "a data segment whose seq is ~100000 beyond the window" (the
#: client 192.0.2.10:43210's third packet to 198.51.100.5:80);
#: eve-payload-01 "Two segments with identical seq/len but different payload ("GOOD" then
#: "EVIL")" (1.1.1.1:12345 -> 2.2.2.2:8080).
SURICATA_EXPECTED = {
    "security-4710-01": ("rst-injection", ("192.168.111.128", 56369), ("192.168.112.136", 80)),
    "bug-3286-02-linux-evasion": ("rst-injection", ("192.168.1.90", 80), ("192.168.1.43", 35532)),
    "firewall-tcp-session-stream-out-of-window": (
        "out-of-window", ("192.0.2.10", 43210), ("198.51.100.5", 80)),
    "eve-payload-01-tcp-exact-overlap": ("data-injection", ("1.1.1.1", 12345), ("2.2.2.2", 8080)),
}

#: the suricata tcp-syn-flood cases (MANIFEST.tsv) -> (src or None, dst, dport) of the alert.
#: bug-7657-01: "Many SYNs on the same 4-tuple with different ISNs (hping-style)";
#: firewall-...-drop-precedence: "200 SYNs from many source ports ... in ~1 s" (a target-level
#: flood: the alert names the target, not one connection).
SURICATA_FLOODS = {
    "bug-7657-01": ("100.73.5.8", "100.73.2.4", 80),
    "firewall-tcp-session-syn-flood-drop-precedence": (None, "198.51.100.5", 443),
}


#: what each of those cases is, in a few words (the MANIFEST's what_it_tests, shortened).
SURICATA_WHAT = {
    "security-4710-01": "a forged RST right after the handshake, then the real HTTP exchange",
    "bug-3286-02-linux-evasion": "PAWS evasion: forged RST+ACK and FIN+ACK before the real "
                                 "SYN-ACK",
    "firewall-tcp-session-stream-out-of-window": "a data segment ~100000 beyond the window",
    "eve-payload-01-tcp-exact-overlap": "two segments, same seq and length, GOOD then EVIL",
    "bug-7657-01": "hping-style SYNs on one 4-tuple with new ISNs, beside a real connection",
    "firewall-tcp-session-syn-flood-drop-precedence": "200 SYNs from many source ports in ~1 s",
}


def suricata_rows() -> list[dict]:
    """The rows of the Suricata corpus MANIFEST.tsv ([] when the corpus is absent)."""
    import csv
    manifest = SURICATA / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def suricata_pcaps(row) -> list[Path]:
    return [SURICATA / row["name"] / p for p in row["pcap_files"].split(",")]


def suricata_scenarios() -> list[tuple[dict, frozenset, frozenset]]:
    """(MANIFEST row, expected kinds, checked kinds) of each case with an expectation."""
    out = []
    for row in suricata_rows():
        if row["name"] in SURICATA_EXPECTED:
            out.append((row, _k(SURICATA_EXPECTED[row["name"]][0]), TCP_KINDS))
        elif row["name"] in SURICATA_FLOODS:
            out.append((row, _k("syn-flood"), _k("syn-flood")))
    return out


# -- running them: each capture once per process ------------------------------------------------

_WORK: list[Path] = []


def _workdir() -> Path:
    if not _WORK:
        _WORK.append(Path(tempfile.mkdtemp(prefix="sniffer-scenarios-")))
        atexit.register(shutil.rmtree, _WORK[0], True)
    return _WORK[0]


def read_capture(pcap: Path, out_dir: Path, *args) -> tuple[list[dict], list[dict]]:
    """(alerts, conn records) of the real `sniffer read pcap --format json --alerts`."""
    alerts, conns = out_dir / (pcap.name + ".alerts"), out_dir / (pcap.name + ".conn.json")
    run(["read", pcap, "--format", "json", "-o", conns, "--alerts", alerts, *args])
    return ([json.loads(line) for line in alerts.read_text().splitlines()],
            [json.loads(line) for line in conns.read_text().splitlines()])


@functools.cache
def result(name: str) -> tuple[list[dict], list[dict]]:
    """(alerts, conn records) of scenario `name`, run once per process."""
    sc = BY_NAME[name]
    d = _workdir() / name
    d.mkdir()
    return read_capture(write(d, sc.build(), name + ".pcap"), d, *sc.args)


@functools.cache
def suricata_result(case: str) -> tuple[list[dict], list[dict]]:
    """(alerts, conn records) of the Suricata corpus case `case` (its first pcap)."""
    row = next(r for r in suricata_rows() if r["name"] == case)
    d = _workdir() / ("suricata-" + case)
    d.mkdir()
    return read_capture(suricata_pcaps(row)[0], d)


def verdict(expected: frozenset, checked: frozenset | None, reported) -> str:
    """ok, MISSED (an expected kind not reported), FALSE ALARM (a checked kind not expected)."""
    seen = set(reported) if checked is None else set(reported) & checked
    words = ["MISSED"] * bool(expected - seen) + ["FALSE ALARM"] * bool(seen - expected)
    return ", ".join(words) or "ok"
