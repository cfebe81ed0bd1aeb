"""Write pcaps/demo.pcapng and pcaps/demo.pcap: small, deterministic demo captures.

Why hand-written containers: scapy builds the packets (and their checksums), but its writers
turn timestamps into floats, which can lose a microsecond. Timestamps here are integer
microseconds and the pcap/pcapng framing is written with `struct`, so re-running gives
byte-identical files. pcaps/README.md says what sniffer should report for each flow.

Run: ``python pcaps/make_demo.py [OUTDIR]``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw

T0 = 1_710_410_400_000_000  # 2024-03-14 10:00:00 UTC, in microseconds
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144

MAC_CLIENT = "02:00:00:00:00:10"
MAC_GW = "02:00:00:00:00:01"
MAC_LAN = "02:00:00:00:00:20"
MAC_SCANNER = "02:00:00:00:00:66"

CLIENT = "192.168.1.10"
GATEWAY = "192.168.1.1"
WEB = "93.184.216.34"
LAN_HOST = "192.168.1.20"
SCANNER = "192.168.1.66"
SSH_SERVER = "10.0.0.5"
V6_CLIENT = "2001:db8:1::10"
V6_SERVER = "2001:db8:2::443"
VLAN_CLIENT = "10.20.0.7"
VLAN_SERVER = "10.20.0.1"

Frame = tuple[int, bytes]  # (timestamp in microseconds, frame bytes)


def eth(src: str, dst: str) -> Ether:
    return Ether(src=src, dst=dst)


class TcpSide:
    """Tracks one TCP endpoint's sequence number so segments stay consistent."""

    def __init__(self, l3: Packet, sport: int, dport: int, isn: int, l2: Packet) -> None:
        self.l2, self.l3, self.sport, self.dport, self.seq = l2, l3, sport, dport, isn
        self.ack = 0

    def seg(self, flags: str, payload: bytes = b"", options: list | None = None) -> bytes:
        pkt = self.l2 / self.l3 / TCP(sport=self.sport, dport=self.dport, seq=self.seq,
                                     ack=self.ack if "A" in flags else 0, flags=flags,
                                     window=64240, options=options or [])
        if payload:
            pkt = pkt / Raw(payload)
        self.seq += len(payload) + ("S" in flags) + ("F" in flags)
        return bytes(pkt)


def tcp_pair(l2o: Packet, l2r: Packet, l3o: Packet, l3r: Packet, sport: int, dport: int,
             isn_o: int, isn_r: int) -> tuple[TcpSide, TcpSide]:
    return TcpSide(l3o, sport, dport, isn_o, l2o), TcpSide(l3r, dport, sport, isn_r, l2r)


def link(o: TcpSide, r: TcpSide) -> None:
    """Set both sides' ACK numbers to the peer's next sequence number."""
    o.ack, r.ack = r.seq, o.seq


MSS = [("MSS", 1460)]
HTTP_REQ = (b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n"
            b"Accept: */*\r\n\r\n")
HTTP_RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n"
             b"Content-Length: 118\r\n\r\n<!doctype html><html><head><title>Example Domain"
             b"</title></head><body><h1>Example Domain</h1><p>demo</p></body></html>\n")


def full_tcp_session(t: int) -> list[Frame]:
    """Flow 1: 3-way handshake, HTTP request and response, FIN/FIN/ACK (SF, ShADadFf)."""
    o, r = tcp_pair(eth(MAC_CLIENT, MAC_GW), eth(MAC_GW, MAC_CLIENT), IP(src=CLIENT, dst=WEB,
                    ttl=64), IP(src=WEB, dst=CLIENT, ttl=56), 49152, 80, 1_000_000, 3_000_000)
    f = [(t, o.seg("S", options=MSS))]
    link(o, r)
    f.append((t + 23_412, r.seg("SA", options=MSS)))
    link(o, r)
    f.append((t + 23_501, o.seg("A")))
    f.append((t + 23_650, o.seg("PA", HTTP_REQ)))
    link(o, r)
    f.append((t + 46_900, r.seg("A")))
    f.append((t + 47_310, r.seg("PA", HTTP_RESP)))
    link(o, r)
    f.append((t + 47_400, o.seg("A")))
    f.append((t + 48_020, o.seg("FA")))
    link(o, r)
    f.append((t + 71_233, r.seg("FA")))
    link(o, r)
    f.append((t + 71_300, o.seg("A")))
    return f


def rejected(t: int) -> list[Frame]:
    """Flow 2: SYN to a closed port, answered by RST/ACK (REJ, Sr)."""
    o, r = tcp_pair(eth(MAC_CLIENT, MAC_LAN), eth(MAC_LAN, MAC_CLIENT),
                    IP(src=CLIENT, dst=LAN_HOST), IP(src=LAN_HOST, dst=CLIENT),
                    49153, 23, 2_000_000, 0)
    f = [(t, o.seg("S", options=MSS))]
    link(o, r)
    f.append((t + 412, r.seg("RA")))
    return f


def half_open_scan(t: int) -> list[Frame]:
    """Flow 3: SYN scan of LAN_HOST: open ports answer SYN-ACK and get a RST from the scanner
    (RSTO, ShR); filtered ports never answer (S0, S)."""
    frames: list[Frame] = []
    open_ports = {22: 5_000_000, 80: 6_000_000}
    for i, port in enumerate((21, 22, 25, 80, 443, 3389)):
        ts = t + i * 150
        o, r = tcp_pair(eth(MAC_SCANNER, MAC_LAN), eth(MAC_LAN, MAC_SCANNER),
                        IP(src=SCANNER, dst=LAN_HOST, ttl=42), IP(src=LAN_HOST, dst=SCANNER),
                        61000, port, 777_000 + port, open_ports.get(port, 0))
        frames.append((ts, o.seg("S", options=MSS)))
        if port in open_ports:
            link(o, r)
            frames.append((ts + 380, r.seg("SA", options=MSS)))
            o.ack = 0
            frames.append((ts + 405, o.seg("R")))
    return sorted(frames)


def midstream(t: int) -> list[Frame]:
    """Flow 4: an SSH session picked up mid-stream: data and ACKs, no SYN (OTH, DadA)."""
    o, r = tcp_pair(eth(MAC_CLIENT, MAC_GW), eth(MAC_GW, MAC_CLIENT),
                    IP(src=CLIENT, dst=SSH_SERVER), IP(src=SSH_SERVER, dst=CLIENT),
                    50022, 22, 40_000_000, 90_000_000)
    link(o, r)
    f = [(t, o.seg("PA", bytes(range(48))))]
    link(o, r)
    f.append((t + 1_900, r.seg("A")))
    f.append((t + 35_000, r.seg("PA", bytes(range(100, 200)) * 2)))
    link(o, r)
    f.append((t + 35_120, o.seg("A")))
    f.append((t + 510_000, o.seg("PA", bytes(range(48, 96)))))
    link(o, r)
    f.append((t + 512_100, r.seg("A")))
    return f


def dns(t: int) -> list[Frame]:
    """Flow 5: a DNS query and its answer over UDP port 53 (SF, Dd)."""
    q = DNS(id=0x1A2B, rd=1, qd=DNSQR(qname="example.com", qtype="A"))
    a = DNS(id=0x1A2B, qr=1, rd=1, ra=1, qd=DNSQR(qname="example.com", qtype="A"),
            an=DNSRR(rrname="example.com", type="A", ttl=3600, rdata=WEB))
    return [
        (t, bytes(eth(MAC_CLIENT, MAC_GW) / IP(src=CLIENT, dst=GATEWAY) /
                  UDP(sport=53535, dport=53) / q)),
        (t + 8_750, bytes(eth(MAC_GW, MAC_CLIENT) / IP(src=GATEWAY, dst=CLIENT) /
                          UDP(sport=53, dport=53535) / a)),
    ]


def ping(t: int) -> list[Frame]:
    """Flow 6: three ICMP echo requests and replies, one second apart (OTH, ports 8/0)."""
    frames: list[Frame] = []
    for i in range(3):
        ts = t + i * 1_000_000
        # 56 bytes as ping(8) sends: a struct timeval of the send time, then 0x10..0x37
        data = struct.pack("<qq", ts // 1_000_000, ts % 1_000_000) + bytes(range(0x10, 0x38))
        frames.append((ts, bytes(eth(MAC_CLIENT, MAC_GW) / IP(src=CLIENT, dst=WEB, id=100 + i) /
                                 ICMP(type=8, id=0x4D2, seq=i + 1) / Raw(data))))
        frames.append((ts + 23_100 + i * 37, bytes(
            eth(MAC_GW, MAC_CLIENT) / IP(src=WEB, dst=CLIENT, ttl=56, id=900 + i) /
            ICMP(type=0, id=0x4D2, seq=i + 1) / Raw(data))))
    return frames


def ipv6_tcp(t: int) -> list[Frame]:
    """Flow 7: IPv6 TCP: handshake, data both ways, then the client aborts (RSTO, ShADdR)."""
    o, r = tcp_pair(eth(MAC_CLIENT, MAC_GW), eth(MAC_GW, MAC_CLIENT),
                    IPv6(src=V6_CLIENT, dst=V6_SERVER, hlim=64),
                    IPv6(src=V6_SERVER, dst=V6_CLIENT, hlim=58), 49200, 443, 11_000, 77_000)
    f = [(t, o.seg("S", options=[("MSS", 1440)]))]
    link(o, r)
    f.append((t + 31_000, r.seg("SA", options=[("MSS", 1440)])))
    link(o, r)
    f.append((t + 31_090, o.seg("A")))
    f.append((t + 31_200, o.seg("PA", b"\x16\x03\x01" + bytes(61))))
    link(o, r)
    f.append((t + 62_800, r.seg("PA", b"\x16\x03\x03" + bytes(125))))
    link(o, r)
    f.append((t + 62_870, o.seg("A")))
    f.append((t + 90_000, o.seg("RA")))
    return f


def vlan_tcp(t: int) -> list[Frame]:
    """Flow 8: TCP inside 802.1Q VLAN 100, established and never closed (S1, ShADa)."""
    o, r = tcp_pair(eth(MAC_CLIENT, MAC_LAN) / Dot1Q(vlan=100),
                    eth(MAC_LAN, MAC_CLIENT) / Dot1Q(vlan=100),
                    IP(src=VLAN_CLIENT, dst=VLAN_SERVER), IP(src=VLAN_SERVER, dst=VLAN_CLIENT),
                    40400, 8080, 123_456, 654_321)
    f = [(t, o.seg("S", options=MSS))]
    link(o, r)
    f.append((t + 610, r.seg("SA", options=MSS)))
    link(o, r)
    f.append((t + 700, o.seg("A")))
    f.append((t + 910, o.seg("PA", b"PING demo\n")))
    link(o, r)
    f.append((t + 1_400, r.seg("A")))
    return f


def frames() -> list[Frame]:
    """All demo frames in time order (flows interleave a little, as on a real link)."""
    s = 1_000_000
    out = (full_tcp_session(T0) + rejected(T0 + 2 * s) + half_open_scan(T0 + 3 * s)
           + midstream(T0 + 4 * s + 250_000) + dns(T0 + 6 * s) + ping(T0 + 7 * s)
           + ipv6_tcp(T0 + 8 * s + 500_000) + vlan_tcp(T0 + 9 * s + 400_000))
    return sorted(out, key=lambda fr: fr[0])


def pcap_bytes(frs: list[Frame]) -> bytes:
    """Classic little-endian pcap, microsecond timestamps, Ethernet."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    for ts, data in frs:
        out.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(data), len(data)))
        out.append(data)
    return b"".join(out)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_bytes(frs: list[Frame]) -> bytes:
    """pcapng: SHB, one Ethernet IDB (if_name eth0, if_tsresol 6), one EPB per frame."""
    end = struct.pack("<HH", 0, 0)
    shb = (struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
           + _option(4, b"sniffer pcaps/make_demo.py") + end)
    idb = (struct.pack("<HHI", LINKTYPE_ETHERNET, 0, SNAPLEN) + _option(2, b"eth0")
           + _option(9, b"\x06") + end)
    out = [_block(0x0A0D0D0A, shb), _block(1, idb)]
    for ts, data in frs:
        epb = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
        out.append(_block(6, epb + data + b"\0" * (-len(data) % 4)))
    return b"".join(out)


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    frs = frames()
    (outdir / "demo.pcap").write_bytes(pcap_bytes(frs))
    (outdir / "demo.pcapng").write_bytes(pcapng_bytes(frs))
    print(f"wrote {len(frs)} packets to {outdir / 'demo.pcap'} and {outdir / 'demo.pcapng'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
