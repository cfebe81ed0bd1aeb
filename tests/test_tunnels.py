"""Tunnels end to end: the inner connection is found, keyed by its own 5-tuple, and points at
the connection (or IP tunnel) that carried it, as Zeek's tunnel_parents does."""

from __future__ import annotations

from pcapkit import ETH, CORPUS, conns, run, write
from scapy.contrib.erspan import ERSPAN_II
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.vxlan import VXLAN

OUT_A, OUT_B = "192.0.2.1", "192.0.2.2"
IN_A, IN_B = "10.1.0.1", "10.1.0.2"


def stamp(pkts, t0=100.0):
    for i, p in enumerate(pkts):
        p.time = t0 + i * 0.01
    return pkts


def echo_pair(wrap):
    """An ICMP echo request and reply, each wrapped by `wrap(inner, reply)`."""
    req = IP(src=IN_A, dst=IN_B) / ICMP(type=8, id=7, seq=1) / (b"x" * 32)
    rep = IP(src=IN_B, dst=IN_A) / ICMP(type=0, id=7, seq=1) / (b"x" * 32)
    return stamp([wrap(req, False), wrap(rep, True)])


def by_proto(rows):
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r["proto"], []).append(r)
    return out


def test_vxlan_inner_connection_has_outer_parent(tmp_path):
    def wrap(inner, reply):
        src, dst = (OUT_B, OUT_A) if reply else (OUT_A, OUT_B)
        return (Ether(**ETH) / IP(src=src, dst=dst) / UDP(sport=50000, dport=4789) / VXLAN(vni=42)
                / Ether(**ETH) / inner)
    rows = by_proto(conns(tmp_path, echo_pair(wrap)))
    # The reply goes to port 50000 from 4789: a second outer connection (as in Zeek's vxlan pair).
    outer = {r["uid"]: r for r in rows["udp"]}
    (icmp,) = rows["icmp"]
    assert (icmp["id.orig_h"], icmp["id.resp_h"], icmp["orig_pkts"], icmp["resp_pkts"]) == (IN_A, IN_B, 1, 1)
    assert set(icmp["tunnel_parents"]) == set(outer) and len(outer) == 2


def test_geneve_carries_ipv6(tmp_path):
    inner = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1234, dport=5678) / b"hello"
    p = Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / UDP(sport=40000, dport=6081) / GENEVE(proto=0x86DD) / inner
    rows = by_proto(conns(tmp_path, stamp([p])))
    (outer,) = rows["udp"][:1] if rows["udp"][0]["id.resp_p"] == 6081 else rows["udp"][1:]
    inner_row = next(r for r in rows["udp"] if r["id.orig_h"] == "2001:db8::1")
    assert inner_row["tunnel_parents"] == [outer["uid"]]


def test_gre_tunnel_parent_is_the_address_pair(tmp_path):
    def gre(inner):
        return Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / GRE(proto=0x0800) / inner
    pkts = stamp([gre(IP(src=IN_A, dst=IN_B) / TCP(sport=1000 + i, dport=22, flags="S"))
                  for i in range(3)])
    rows = conns(tmp_path, pkts)
    assert len(rows) == 3 and all(r["proto"] == "tcp" for r in rows)  # no row for GRE itself
    parents = {tuple(r["tunnel_parents"]) for r in rows}
    assert len(parents) == 1 and len(next(iter(parents))) == 1


def test_ip_in_ip_corpus_6in4():
    out = run(["read", CORPUS / "linktypes" / "6in4_ftp.pcap", "--format", "json"]).stdout
    import json
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert len(rows) == 1 and rows[0]["proto"] == "tcp"
    assert ":" in rows[0]["id.orig_h"] and len(rows[0]["tunnel_parents"]) == 1


def test_pptp_enhanced_gre_corpus():
    import json
    out = run(["read", CORPUS / "linktypes" / "gre-pptp_bigendian.pcap", "--format", "json"]).stdout
    protos = {json.loads(line)["proto"] for line in out.decode().splitlines()}
    assert "unknown_transport" not in protos  # GRE is opened, not logged as protocol 47


def test_gtp_u_with_extension_header(tmp_path):
    inner = IP(src=IN_A, dst=IN_B) / UDP(sport=1111, dport=2222) / b"payload"
    p = (Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / UDP(sport=2152, dport=2152)
         / GTP_U_Header(teid=9, gtp_type=255, E=1, next_ex=0x85) / b"\x01\x10\x05\x00" / inner)
    # The extension header above: length 1 (4 bytes), content, next-extension 0.
    p[GTP_U_Header].length = None
    rows = conns(tmp_path, stamp([p]))
    inner_row = next(r for r in rows if r["id.orig_h"] == IN_A)
    outer_row = next(r for r in rows if r["id.orig_h"] == OUT_A)
    assert inner_row["tunnel_parents"] == [outer_row["uid"]] and inner_row["id.resp_p"] == 2222


def test_erspan_type2(tmp_path):
    inner = Ether(**ETH) / IP(src=IN_A, dst=IN_B) / ICMP() / b"abc"
    p = Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / GRE(seqnum_present=1, sequence_number=5) / ERSPAN_II(session_id=3) / inner
    rows = conns(tmp_path, stamp([p]))
    assert [(r["proto"], r["id.orig_h"]) for r in rows] == [("icmp", IN_A)]


def test_teredo_found_off_its_port(tmp_path):
    inner = IPv6(src="2001:0:4136:e378:8000:63bf:3fff:fdd2", dst="2001:db8::5") / UDP(sport=7, dport=9) / b"x"
    p = Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / UDP(sport=40000, dport=45000) / inner
    rows = conns(tmp_path, stamp([p]))
    assert any(r["id.orig_h"].startswith("2001:0:4136") and r["tunnel_parents"] for r in rows)


def test_depth_limit_and_weird_log(tmp_path):
    pkt = IP(src=IN_A, dst=IN_B) / ICMP() / b"deep"
    for i in range(6):  # six GRE layers: more than Zeek's Tunnel::max_depth (4)
        pkt = IP(src=f"192.0.2.{10 + i}", dst=f"192.0.2.{20 + i}") / GRE(proto=0x0800) / pkt
    path = write(tmp_path, stamp([Ether(**ETH) / pkt]))
    weird = tmp_path / "weird.log"
    out = run(["read", path, "--format", "json", "--weird-log", weird]).stdout.decode()
    assert out == ""  # nothing past the limit became a connection
    assert "exceeded_tunnel_max_depth" in weird.read_text()


def test_malformed_tunnels_are_counted_not_fatal(tmp_path):
    bad_gre = Ether(**ETH) / IP(src=OUT_A, dst=OUT_B, proto=47) / b"\x00"  # 1 byte of GRE
    no_i_flag = Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / UDP(sport=1, dport=4789) / (b"\x00" * 8 + bytes(Ether(**ETH) / IP()))
    path = write(tmp_path, stamp([bad_gre, no_i_flag]))
    weird = tmp_path / "weird.log"
    run(["read", path, "--format", "zeek", "--weird-log", weird])
    text = weird.read_text()
    assert "truncated_GRE" in text and "vxlan_I_flag_not_set" in text
    assert text.rstrip().splitlines()[-1].startswith("#close")


def test_tunnel_changes_beyond_five_give_x(tmp_path):
    """The same inner flow through two alternating outer connections: parents stop at the
    fifth change and the history gets an X, as Zeek's vxlan baseline shows."""
    pkts = []
    for i in range(8):
        sport = 50000 + (i % 2)
        inner = IP(src=IN_A, dst=IN_B) / ICMP(type=8, seq=i) / b"y"
        pkts.append(Ether(**ETH) / IP(src=OUT_A, dst=OUT_B) / UDP(sport=sport, dport=4789)
                    / VXLAN(vni=1) / Ether(**ETH) / inner)
    rows = by_proto(conns(tmp_path, stamp(pkts)))
    (icmp,) = rows["icmp"]
    assert icmp["history"] == "X" and len(icmp["tunnel_parents"]) == 2
