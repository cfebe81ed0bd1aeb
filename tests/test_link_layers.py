"""Rare link layers and shims (sniffer.decode.l2): MPLS, PPPoE, PPP, Cisco HDLC, PBB, VN-Tag,
FabricPath, 802.3 LLC/SNAP, FDDI, 802.11 (+ radiotap), NFLOG.

Each is checked on the shared corpus where a capture exists (the Zeek pairs end to end, through
`sniffer read`), on frames crafted with scapy, and on truncated or malformed variants, which must
be counted under a named anomaly (Zeek's weird name where Zeek has one) and never raise.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections import Counter
from pathlib import Path

import pytest
from scapy.all import (
    ARP,
    IP,
    LLC,
    SNAP,
    TCP,
    UDP,
    CookedLinux,
    Dot1AD,
    Dot1Q,
    Dot3,
    Dot11,
    Dot11Beacon,
    Dot11QoS,
    Ether,
    IPv6,
    PPPoE,
    RadioTap,
    RawPcapReader,
    raw,
)
from scapy.contrib.mpls import MPLS

import zeekcorpus
from sniffer.config import Settings
from sniffer.decode import LINKTYPES, Decoder
from sniffer.decode.l2.ethernet import ethernet_at
from sniffer.decode.links import ETHERTYPES, UNSUPPORTED_ETHERTYPES, LinkAnomaly
from sniffer.stats import Stats

from pcapkit import CORPUS

LINKTYPES_DIR = CORPUS / "linktypes"

SRC, DST = "10.0.0.1", "10.0.0.2"
IP4 = IP(src=SRC, dst=DST) / TCP(sport=1025, dport=80, flags="S")
IP6 = IPv6(src="fe80::1", dst="fe80::2") / UDP(sport=5353, dport=5353) / b"six"
RAW4, RAW6 = raw(IP4), raw(IP6)
ETH = Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb")


def A4(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


def make(**kw):
    stats = Stats()
    return Decoder(Settings(**kw), stats), stats


def dec1(data, linktype=1, wirelen=None, **kw):
    """Decode one frame (bytes or scapy packet) -> (result, {counter: n} of what was counted)."""
    dec, stats = make(**kw)
    data = data if isinstance(data, bytes) else raw(data)
    r = dec.decode(0.0, linktype, data, len(data) if wirelen is None else wirelen)
    return r, {k: v for k, v in stats.items() if v}


def ok(data, linktype=1, proto=6, **kw):
    """The frame decodes to the crafted IP packet (protocol `proto`), counting nothing."""
    r, counted = dec1(data, linktype, **kw)
    assert r is not None, counted
    assert r[2] == proto and not counted
    return r


def dropped(data, linktype=1, reason="non_ip", **kw):
    r, counted = dec1(data, linktype, **kw)
    assert r is None and counted == {reason: 1}


def read_capture(path: Path):
    reader = RawPcapReader(str(path))
    out = [(m.sec + m.usec / 1e6, reader.linktype, d, m.wirelen) for d, m in reader]
    reader.close()
    return out


def decode_file(path: Path, **kw):
    dec, stats = make(**kw)
    results = [r for ts, lt, d, w in read_capture(path) if (r := dec.decode(ts, lt, d, w))]
    dec.flush()
    return results, {k: v for k, v in stats.items() if v}


def test_registrations():
    for et in (0x8847, 0x8848, 0x8864, 0x88E7, 0x8926, 0x8903, 0, 0x05DC, 0x05DD):
        assert et in ETHERTYPES and et not in UNSUPPORTED_ETHERTYPES
    for lt in (9, 10, 50, 104, 105, 127, 239):
        assert lt in LINKTYPES


# --- the Zeek corpus, end to end --------------------------------------------------------------

ZEEK_PAIRS = ["vlan-mpls-mixed", "pbb", "pppoe", "ppp-dlt", "radiotap", "cisco-fabric-path",
              "vntag", "llc-rst-storm"]


@pytest.mark.parametrize("name", ZEEK_PAIRS)
def test_zeek_pair(name, tmp_path):
    pairs = {p.name: p for p in zeekcorpus.load_pairs("all")}
    outcome = zeekcorpus.evaluate(pairs[name], tmp_path)
    if not outcome.ok:
        pytest.fail(zeekcorpus.format_outcome(outcome), pytrace=False)


def zeek_trace(name: str) -> Path:
    d = CORPUS / "zeek" / name
    return next(d.glob("trace.*"))


# --- MPLS ------------------------------------------------------------------------------------


def test_mpls_single_and_stacked_labels():
    ok(ETH / MPLS(label=16, s=1) / IP4)
    ok(ETH / MPLS(label=16, s=0) / MPLS(label=17, s=0) / MPLS(label=18, s=1) / IP4)
    ok(ETH / MPLS(label=16, s=1) / IP6, proto=17)  # the version nibble decides
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8848) / MPLS(s=1) / IP4)  # multicast (Zeek registers 0x8847 only)


def test_mpls_inside_vlan_tags():
    ok(ETH / Dot1Q(vlan=7) / MPLS(s=1) / IP4)
    ok(ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / MPLS(s=0) / MPLS(s=1) / IP6, proto=17)


def test_mpls_malformed():
    # No bottom-of-stack label before the frame ends.
    dropped(ETH / MPLS(s=0) / MPLS(s=0), reason="truncated_link_header")
    dropped(raw(ETH / MPLS(s=1))[:16], reason="truncated_link_header")
    # Ethernet pseudowire (control word, then a frame): not IP, as in Zeek.
    dropped(ETH / MPLS(s=1) / b"\x00\x00\x00\x00" / ETH / IP4, reason="unknown_ip_version")


def test_mpls_corpus_vlan_mpls_mixed():
    results, counted = decode_file(zeek_trace("vlan-mpls-mixed"), ignore_checksums=True)
    assert len(results) == 47 and not counted


def test_mpls_corpus_tcpreplay_mixed():
    frames = read_capture(LINKTYPES_DIR / "mixed_tcpreplay-test.pcap")
    frames = [f for f in frames if f[2][12:14] == b"\x88\x47"]
    dec, stats = make(ignore_checksums=True)
    results = [r for ts, lt, d, w in frames if (r := dec.decode(ts, lt, d, w))]
    # 16 MPLS frames: 5 ICMP echoes (one or two labels), one whose IP length is longer than the
    # frame, 10 Ethernet pseudowires (not IP, as in Zeek).
    assert len(frames) == 16 and len(results) == 5
    assert {(r[0], r[1], r[2]) for r in results} == {(A4("192.168.10.1"), A4("192.168.40.1"), 1)}
    assert {k: v for k, v in stats.items() if v} == {"unknown_ip_version": 10,
                                                     "truncated_IP_len": 1}


# --- PPPoE, PPP, Cisco HDLC ------------------------------------------------------------------


def test_pppoe_session():
    ok(ETH / PPPoE(sessionid=1) / b"\x00\x21" / IP4)
    ok(ETH / PPPoE(sessionid=1) / b"\x00\x57" / IP6, proto=17)
    ok(ETH / Dot1Q(vlan=939) / Dot1Q(vlan=744) / PPPoE() / b"\x00\x21" / IP4)  # QinQ
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8864) / PPPoE() / b"\x21" / IP4)  # protocol field compressed to 8 bits
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8864) / PPPoE() / b"\x57" / IP6, proto=17)


def test_pppoe_not_ip_and_malformed():
    dropped(ETH / PPPoE() / b"\xc0\x21\x01\x01\x00\x04")  # LCP
    dropped(ETH / PPPoE() / b"\x02\x81" / MPLS(s=1) / IP4)  # Zeek: no MPLS after PPPoE
    dropped(raw(ETH / PPPoE() / b"\x00\x21" / IP4)[:22], reason="truncated_pppoe_header")
    dropped(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8863) / PPPoE(code=0x09))  # discovery


@pytest.mark.parametrize("name,n", [("pppoe_http-8bit-proto.pcap", 30),
                                    ("qinq-pppoe_http-rst.pcap", 10)])
def test_pppoe_corpus_linktypes(name, n):
    results, counted = decode_file(LINKTYPES_DIR / name)
    assert len(results) == n and not counted
    assert len({frozenset((r[0], r[1])) for r in results}) == 1  # one conversation


def test_pppoe_corpus_zeek():
    results, counted = decode_file(zeek_trace("pppoe"))
    assert Counter(len(r[0]) for r in results) == {16: 25}  # IPv6 only
    assert counted == {"non_ip": 40}  # LCP, IPCP, IPv6CP, discovery


def test_ppp_linktype_9():
    ok(b"\x00\x21" + RAW4, 9)
    ok(b"\xff\x03\x00\x21" + RAW4, 9)  # HDLC-like framing
    ok(b"\xff\x03\x00\x57" + RAW6, 9, proto=17)
    ok(b"\x21" + RAW4, 9)  # compressed protocol field
    ok(b"\x02\x81" + raw(MPLS(s=1)) + RAW4, 9)  # MPLS unicast over PPP
    dropped(b"\xc0\x21\x01\x01\x00\x04", 9)  # LCP
    dropped(b"\x00\x21", 9, reason="truncated_ppp_header")
    dropped(b"\xff\x03\x00\x21", 9, reason="truncated_ppp_hdlc_header")


def test_ppp_hdlc_linktype_50():
    ok(b"\xff\x03\x00\x21" + RAW4, 50)
    ok(b"\xff\x03\x00\x57" + RAW6, 50, proto=17)
    ok(b"\x0f\x00\x08\x00" + RAW4, 50)  # Cisco HDLC on the same link type
    dropped(b"\xff\x03\x80\x21" + b"\x01" * 8, 50)  # IPCP
    dropped(b"\xff\x03\x00\x21", 50, reason="truncated_ppp_serial_header")


def test_cisco_hdlc_linktype_104():
    ok(b"\x0f\x00\x08\x00" + RAW4, 104)
    ok(b"\x8f\x00\x86\xdd" + RAW6, 104, proto=17)
    ok(b"\x0f\x00\x88\x47" + raw(MPLS(s=1)) + RAW4, 104)
    dropped(b"\x8f\x00\x80\x35" + b"\x00" * 20, 104)  # SLARP
    dropped(b"\x0f\x00\x08\x00", 104, reason="truncated_link_header")


def test_ppp_corpus():
    results, counted = decode_file(LINKTYPES_DIR / "ppp9_frag-tcp-syn.pcap")
    (r,) = results  # three fragments of one SYN
    assert r[2] == 6 and r[3] == 44 and counted == {"ip_fragments": 3, "fragments_reassembled": 1}
    results, counted = decode_file(zeek_trace("ppp-dlt"))
    assert len(results) == 26 and not counted
    results, counted = decode_file(LINKTYPES_DIR / "chdlc_http.pcap")
    assert len(results) == 17 and not counted
    assert {r[0] for r in results} == {A4("192.168.2.7"), A4("65.55.116.183")}


# --- PBB, VN-Tag, FabricPath -----------------------------------------------------------------

ITAG = b"\x00\x01\x00\x02"  # PCP/DEI/UCA, I-SID 0x000100 + 2
VNTAG = b"\x80\x01\x00\x02"  # direction, pointer, destination and source VIFs


def test_pbb():
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x88E7) / ITAG / ETH / IP4)
    ok(ETH / Dot1AD(vlan=3, type=0x88E7) / ITAG / ETH / Dot1Q(vlan=9) / IP6, proto=17)
    dropped(raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x88E7) / ITAG / ETH / IP4)[:32], reason="truncated_PBB_header")
    dropped(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x88E7) / ITAG / ETH / ARP())


def test_vntag():
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8926) / (VNTAG + b"\x81\x00") / Dot1Q(vlan=4) / IP4)
    dropped(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8926) / (VNTAG + b"\x08\x00") / IP4)  # Zeek: only VLAN after VN-Tag
    dropped(raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8926))[:14] + VNTAG + b"\x81", reason="truncated_vntag_header")


def test_fabricpath():
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8903) / b"\x00\x3f" / ETH / IP4)
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8903) / b"\x00\x3f" / ETH / Dot1Q(vlan=5) / IP6, proto=17)
    dropped(raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8903) / b"\x00\x3f" / ETH)[:30], reason="truncated_link_header_cfp")
    # An inner 802.3 frame whose SNAP carries IP.
    inner = Dot3(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / LLC() / SNAP(code=0x0800) / IP4
    ok(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8903) / b"\x00\x3f" / inner)


def test_ethernet_at_helper():
    data = b"\x00" * 6 + raw(ETH / IP4)
    assert ethernet_at(data, 6) == (0x0800, 20)
    with pytest.raises(LinkAnomaly, match="truncated_ethernet_frame"):
        ethernet_at(data[:20], 6)


# --- 802.3 LLC / SNAP ------------------------------------------------------------------------


def test_llc_snap_ip():
    ok(Dot3() / LLC() / SNAP(OUI=0, code=0x0800) / IP4)
    ok(Dot3() / LLC() / SNAP(OUI=0, code=0x86DD) / IP6, proto=17)
    # A 2-byte control field (not unnumbered).
    ok(Dot3() / LLC(dsap=0xAA, ssap=0xAA, ctrl=0) / b"\x00" / SNAP(code=0x0800) / IP4)
    # After a VLAN tag, whose type field is a length.
    payload = raw(LLC() / SNAP(code=0x0800) / IP4)
    ok(raw(ETH / Dot1Q(vlan=2, type=len(payload))) + payload)
    # After Linux SLL with protocol ETH_P_802_2 (4).
    ok(raw(CookedLinux(proto=4)) + payload, 113)


def test_llc_not_ip():
    dropped(Dot3() / LLC() / SNAP(OUI=0x00000C, code=0x2000) / b"cdp")  # Cisco OUI
    dropped(Dot3() / LLC() / SNAP(code=0x0806) / ARP())
    dropped(Dot3() / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"\x00" * 35))  # spanning tree
    dropped(Dot3() / (b"\xff\xff" + b"\x00" * 28))  # Novell raw 802.3


def test_llc_malformed():
    frame = raw(Dot3() / LLC() / SNAP(code=0x0800) / IP4)
    dropped(frame[:30], reason="truncated_ethernet_frame")  # shorter than the 802.3 length
    dropped(raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=5)) + b"\xaa\xaa\x03\x00\x00", reason="truncated_snap_header")
    # After a VLAN tag (TPID, TCI, then the length), fewer than 2 bytes of LLC: the tag's
    # analyzer says so (its TPID is 6 bytes before the LLC, not the TCI's 4; a TCI that read
    # as a TPID, 0x8100, was the only way here before).
    dropped(raw(ETH / Dot1Q(vlan=5, type=3)) + b"\xaa", reason="truncated_VLAN_header")
    dropped(raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=2)) + b"\x42\x42", reason="truncated_llc_header")
    dropped(raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x05EE)) + RAW4, reason="undefined_ether_type")
    dropped(raw(ETH / Dot1Q(type=0x05EE)) + RAW4, reason="undefined_vlan_protocol")


# --- FDDI ------------------------------------------------------------------------------------

FDDI_HDR = b"\x50" + b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01"
FDDI_SNAP = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"


def test_fddi():
    ok(FDDI_HDR + FDDI_SNAP + RAW4, 10)
    ok(FDDI_HDR + FDDI_SNAP[:6] + b"\x86\xdd" + RAW6, 10, proto=17)
    dropped(FDDI_HDR + FDDI_SNAP, 10, reason="FDDI_analyzer_failed")
    # As in Zeek, the SNAP type is not looked at: ARP reaches the IP stage.
    dropped(FDDI_HDR + FDDI_SNAP[:6] + b"\x08\x06" + raw(ARP()), 10, reason="unknown_ip_version")


def test_fddi_corpus_snaplen_cut():
    results, counted = decode_file(zeek_trace("llc-rst-storm"), ignore_checksums=True)
    assert len(results) == 1333 and not counted
    assert all(r[3] == 40 and r[4][13] & 4 for r in results)  # RSTs, header only


# --- 802.11 and radiotap ---------------------------------------------------------------------

LLC_IP4 = LLC() / SNAP(code=0x0800) / IP4
LLC_IP6 = LLC() / SNAP(code=0x86DD) / IP6


def test_dot11_data_frames():
    ok(Dot11(type=2, subtype=0, FCfield="to_DS") / LLC_IP4, 105)
    ok(Dot11(type=2, subtype=0, FCfield="from_DS") / LLC_IP6, 105, proto=17)
    ok(Dot11(type=2, subtype=0, FCfield="to_DS+from_DS", addr4="00:00:00:00:00:04") / LLC_IP4, 105)
    ok(Dot11(type=2, subtype=8) / Dot11QoS(TID=5) / LLC_IP4, 105)
    ok(Dot11(type=2, subtype=8, FCfield="to_DS+from_DS") / Dot11QoS() / LLC_IP6, 105, proto=17)


def test_dot11_not_ip():
    dropped(Dot11(type=0, subtype=8) / Dot11Beacon() / (b"\x00" * 20), 105)  # management
    dropped(Dot11(type=1, subtype=13) / (b"\x00" * 30), 105)  # control (ack)
    dropped(Dot11(type=2, subtype=4) / (b"\x00" * 30), 105)  # null data
    dropped(Dot11(type=2, subtype=8, FCfield="protected") / Dot11QoS() / (b"\x00" * 40), 105)
    dropped(Dot11(type=2, subtype=0) / LLC(dsap=0x42, ssap=0x42) / (b"\x00" * 30), 105)
    dropped(Dot11(type=2, subtype=0) / LLC() / SNAP(code=0x0806) / ARP(), 105)


def test_dot11_malformed():
    dropped(raw(Dot11(type=2))[:24], 105, reason="truncated_802_11_header")
    dropped(raw(Dot11(type=2, FCfield="to_DS+from_DS") / LLC_IP4)[:30], 105,
            reason="truncated_802_11_header")
    dropped(raw(Dot11(type=2, subtype=8) / Dot11QoS())[:26], 105, reason="truncated_802_11_header")
    dropped(raw(Dot11(type=2)) + b"\xaa\xaa\x03", 105, reason="truncated_802_11_llc_header")


def amsdu(*subframes: bytes) -> bytes:
    out = b""
    for i, body in enumerate(subframes):
        sub = b"\x00" * 12 + struct.pack("!H", len(body)) + body
        if i < len(subframes) - 1:
            sub += b"\x00" * (-len(sub) % 4)
        out += sub
    return raw(Dot11(type=2, subtype=8) / Dot11QoS(A_MSDU_Present=1)) + out


def test_dot11_amsdu_every_subframe():
    d = Decoder(Settings(), Stats())
    r = d.decode(0.0, 105, amsdu(raw(LLC_IP4), raw(LLC_IP6), raw(LLC_IP4)), 10_000)
    assert r[0] == A4(SRC)  # the first subframe is the packet returned ...
    assert [p[2] for p in d.more] == [17, 6]  # ... the others follow in Decoder.more
    cut = amsdu(raw(LLC_IP4))[: -len(raw(LLC_IP4)) + 4]
    dropped(cut, 105, reason="truncated_802_11_amsdu_packet")
    dropped(raw(Dot11(type=2, subtype=8) / Dot11QoS(A_MSDU_Present=1)) + b"\x00" * 10, 105,
            reason="truncated_802_11_amsdu_header")
    dropped(amsdu(b"\x42\x42\x03" + b"\x00" * 20), 105, reason="invalid_802_11_amsdu_inner_packet")


def test_radiotap():
    ok(RadioTap() / Dot11(type=2, subtype=8, FCfield="to_DS") / Dot11QoS() / LLC_IP4, 127)
    ok(RadioTap(present="Flags+Rate", Flags=0, Rate=2) / Dot11(type=2) / LLC_IP6, 127, proto=17)
    dropped(b"\x00\x00\x08", 127, reason="truncated_radiotap_header")
    dropped(b"\x00\x00\x40\x00" + b"\x00" * 40, 127, reason="truncated_radiotap_header")
    dropped(raw(RadioTap()) + raw(Dot11(type=2))[:20], 127, reason="truncated_802_11_header")


def test_radiotap_corpus():
    results, counted = decode_file(zeek_trace("radiotap"), ignore_checksums=True)
    assert Counter(len(r[0]) for r in results) == {4: 2, 16: 1} and not counted


# --- NFLOG -----------------------------------------------------------------------------------


def nflog(af: int, packet: bytes, order: str = "<", version: int = 0, tlvs=None) -> bytes:
    def tlv(kind: int, value: bytes) -> bytes:
        body = struct.pack(order + "HH", 4 + len(value), kind) + value
        return body + b"\x00" * (-len(body) % 4)

    if tlvs is None:
        tlvs = [tlv(1, b"\x08\x00\x03\x00"), tlv(10, b"drop\x00"), tlv(9, packet)]
    return bytes([af, version]) + b"\x00\x07" + b"".join(tlvs)


def test_nflog():
    ok(nflog(2, RAW4), 239)
    ok(nflog(10, RAW6), 239, proto=17)
    ok(nflog(2, RAW4, order=">"), 239)  # captured on a big-endian host
    dropped(nflog(7, RAW4), 239)  # another address family


def test_nflog_malformed():
    dropped(b"\x02\x00\x00", 239, reason="truncated_nflog_header")
    dropped(nflog(2, RAW4, version=1), 239, reason="unknown_nflog_version")
    dropped(nflog(2, b"", tlvs=[struct.pack("<HH", 8, 1) + b"\x08\x00\x03\x00"]), 239,
            reason="nflog_no_pcap_payload")
    dropped(nflog(2, b"", tlvs=[struct.pack("<HH", 2, 1) + b"\x00" * 8]), 239,
            reason="nflog_bad_tlv_len")
    dropped(nflog(2, b"", tlvs=[struct.pack("<HH", 400, 1) + b"\x00" * 8]), 239,
            reason="nflog_no_pcap_payload")


# --- never crash -----------------------------------------------------------------------------

GOOD = [
    (1, raw(ETH / Dot1Q() / MPLS(s=0) / MPLS(s=1) / IP4)),
    (1, raw(ETH / Dot1Q() / Dot1Q() / PPPoE() / b"\x00\x21" / IP4)),
    (1, raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x88E7) / ITAG / ETH / Dot1Q() / IP4)),
    (1, raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8926) / (VNTAG + b"\x81\x00") / Dot1Q() / IP4)),
    (1, raw(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x8903) / b"\x00\x3f" / ETH / IP4)),
    (1, raw(Dot3() / LLC() / SNAP(code=0x0800) / IP4)),
    (9, b"\xff\x03\x00\x21" + RAW4),
    (50, b"\xff\x03\x00\x57" + RAW6),
    (104, b"\x0f\x00\x08\x00" + RAW4),
    (10, FDDI_HDR + FDDI_SNAP + RAW4),
    (105, raw(Dot11(type=2, subtype=8, FCfield="to_DS+from_DS") / Dot11QoS() / LLC_IP4)),
    (105, amsdu(raw(LLC_IP4), raw(LLC_IP6))),
    (127, raw(RadioTap() / Dot11(type=2) / LLC_IP6)),
    (239, nflog(2, RAW4)),
]


@pytest.mark.parametrize("linktype,frame", GOOD,
                         ids=[f"lt{lt}-{i}" for i, (lt, _) in enumerate(GOOD)])
def test_every_cut_and_mutation_is_decoded_or_counted(linktype, frame):
    r, counted = dec1(frame, linktype)
    assert r is not None and not counted
    rng = random.Random(linktype * 1000 + len(frame))
    frames = [frame[:n] for n in range(len(frame))]
    for _ in range(300):
        b = bytearray(frame)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(len(b), 48))] = rng.randrange(256)
        frames.append(bytes(b))
    dec, stats = make(ignore_checksums=True)
    for f in frames:
        before = sum(stats.values())
        r = dec.decode(0.0, linktype, f, len(f))  # never raises
        if r is None:
            assert sum(stats.values()) > before, f.hex()
        else:
            assert len(r[0]) in (4, 16) and len(r[4]) <= r[5]
